import type { WithId } from '@medplum/core';
import { Hl7Context, Hl7Message } from '@medplum/core';
import type { AuditEvent, Bundle, Identifier, Resource } from '@medplum/fhirtypes';
import fc from 'fast-check';
import { Buffer } from 'node:buffer';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MESSAGE_KEY_SYSTEM, MESSAGE_OUTCOME_SYSTEM, messageKey } from '../../src/fhir/ledger.ts';
import { isReplaced, matchesOnlyRetired, tokens } from '../../src/fhir/writer.ts';
import { stripControlCharacters } from '../../src/fhir/strings.ts';
import { decodeEscapes } from '../../src/hl7/fields.ts';
import type { MessageHeaderInfo } from '../../src/hl7/message.ts';
import { readHl7Message, readMessageHeader, standInForUnreadable } from '../../src/hl7/message.ts';
import { readMappingConfigFiles } from '../../src/mapping/config-files.ts';
import { MappingContext } from '../../src/mapping/context.ts';
import { findMessageMapper } from '../../src/mapping/messages/registry.ts';
import type { MessagePlan } from '../../src/mapping/plan.ts';
import { MappingError } from '../../src/mapping/plan.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';

/**
 * Property-based fuzzing of the HL7 inbound path through the real MLLP listeners of the local
 * runtime (agent bridge -> hl7-inbound bot in the sandbox -> FHIR API -> ACK).
 *
 * Inputs: the corpus (test/corpus/**\/*.hl7), the bot's fixtures and a few built-in messages,
 * mutated by fast-check (segments and fields dropped, duplicated, swapped; delimiters, escapes,
 * non-ASCII and random bytes inserted; wrong MSH-2; MSH-9/MSH-10 missing; very long fields; only
 * an MSH; random segment names; LF/CRLF/CR mixes; truncation; BOM), plus fully random payloads.
 * Every identifier field (PID-3, PV1-19, ORC/OBR-2/3, SPM-2, TXA-12, SCH-1/2...) gets a suffix
 * unique to the message (`FZnnnnnnX`) and MSH-10 is `C<uid>`, so what each message wrote can be
 * found precisely. Messages go over six concurrent raw MLLP connections (node:net, so that any
 * bytes can be framed and every frame written back is seen: duplicates, CAs, unreadable ACKs) to
 * every channel (icu-monitors is in enhanced mode, state-iis is ISO 8859-1), one message in flight
 * per connection.
 *
 * Properties, checked after every batch:
 * - every frame the bridge can parse as HL7 (it starts with MSH) gets exactly one application
 *   ACK (AA/AE/AR) within 10 s whose MSA-2 equals its MSH-10 (and exactly one CA on the enhanced
 *   channel, none elsewhere); nothing else is ever written back;
 * - a frame the bridge cannot parse is dropped without an answer, and the connection stays
 *   usable: a valid message sent next on it is answered AA;
 * - the ledger has exactly one MessageHeader per answered message (per message key), with the
 *   outcome of its ACK (AA committed, AE dead-letter, AR rejected); overall, ledger entries =
 *   application ACKs sent;
 * - nothing is half-written: no resource other than the ledger, raw-message Binaries and
 *   AuditEvents carries the unique id of a message answered AE/AR; for a message answered AA,
 *   every resource of its plan (the pure mapping, run here with the seed/ configuration) is
 *   found by its identifiers, exactly once when the identifiers are the message's own;
 * - reading and mapping a message never crash: bad data is refused with a MappingError (AE),
 *   never with "Write failed" or "Mapping failed" (a map producing invalid FHIR, a writer bug);
 * - the bot never fails (no AuditEvent with a failed outcome), /healthcheck answers throughout
 *   and every listener stays open.
 *
 * Reproducible: fixed fast-check seed; `FUZZ_SEED`, `FUZZ_RUNS` (number of generated messages,
 * default 1500, about 1,900 sent with probes and re-sends, 40-50 s on 2 cores), `FUZZ_PATH`
 * (replay one failing batch, printed on failure; same corpus and code needed) and
 * `FUZZ_TIME_LIMIT_MS` (stop generating after that long, default 60 s) override it;
 * `FUZZ_KEEP_GOING=1` collects every violation of the run instead of stopping at the first
 * failing batch. Local runtime only (the checks observe the runtime's store commits).
 */

const ROOT = join(import.meta.dirname, '..', '..');
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x5eed_4c7;
const MESSAGES = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : 1500;
const REPLAY_PATH = process.env.FUZZ_PATH || undefined;
const TIME_LIMIT_MS = process.env.FUZZ_TIME_LIMIT_MS ? Number(process.env.FUZZ_TIME_LIMIT_MS) : 60_000;
/** Collect every violation of the run instead of stopping at the first failing batch (exploration). */
const KEEP_GOING = process.env.FUZZ_KEEP_GOING === '1';
/** Messages per fast-check run: six connections, six messages each. */
const BATCH = 36;
const ACK_TIMEOUT_MS = 10_000;
/** How long a dropped frame is given to (wrongly) produce an answer before the probe goes out. */
const DROP_GRACE_MS = 40;
/** Connections, by channel: every channel, the ADT one twice. */
const CONNECTIONS = ['northside-adt', 'acme-lab', 'northside-ehr', 'icu-monitors', 'state-iis', 'northside-adt'];
/** Resource types that legitimately carry a message's unique id whatever its outcome. */
const LEDGER_TYPES = new Set(['MessageHeader', 'Binary', 'AuditEvent']);
const UID_PATTERN = /FZ\d{6}X/g;

// ---------------------------------------------------------------------------------------------
// Seeds

/** Built-in seeds (written for this test) so the fuzzing is meaningful before the corpus grows. */
const BUILTIN_SEEDS: readonly string[] = [
  [
    'MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20240312081500||ADT^A01^ADT_A01|NS100001|P|2.5.1|||AL|NE||UNICODE UTF-8',
    'EVN|A01|20240312081500|||JSMITH^Smith^Jane',
    'PID|1||448812^^^NSH^MR~E77120^^^EMPI^PI||Okafor^Chidi^Emeka^^Mr.||19781104|M||2054-5^Black or African American^CDCREC|1200 Lakeview Ave^Apt 4B^Springfield^IL^62704^USA^H||^PRN^PH^^1^217^5550143~^NET^Internet^chidi.okafor@example.com|^WPN^PH^^1^217^5550199|en^English^ISO639|M^Married^HL70002|||||N^Not Hispanic^HL70189',
    'PD1|||Northside Family Practice^^NSFP',
    'NK1|1|Okafor^Ada|SPO^Spouse^HL70063|1200 Lakeview Ave^^Springfield^IL^62704|^PRN^PH^^1^217^5550144',
    'PV1|1|I|4W^402^B^NSH||||1234567890^Patel^Ravi^^^Dr^^^NPI|||MED||||1|||1234567890^Patel^Ravi^^^Dr^^^NPI|IN|V20240312-01^^^NSHV^VN|||||||||||||||||||||||||20240312081000',
    'AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives',
    'DG1|1||I10^Essential hypertension^I10|||W',
    'IN1|1|BCBS-PPO^Blue Cross PPO|60054|Blue Cross Blue Shield of Illinois|||||||||||1|Okafor^Chidi|SEL^Self^HL70063|19781104||||||||||||||||||XYZ123456789',
  ].join('\r'),
  [
    'MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|202403121402||ADT^A08^ADT_A01|NS100002|P|2.3',
    'EVN|A08|202403121402',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi^E||19781104|M|||1200 Lakeview Ave^Apt 4B^Springfield^IL^62704||(217)555-0143|||M',
    'PV1|1|I|4W^402^B^NSH|||||||MED||||||||IN|V20240312-01^^^NSHV^VN|||||||||||||||||||||||||20240312081000',
  ].join('\n'),
  [
    'MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20240315093000||ADT^A40^ADT_A39|NS100003|P|2.5.1',
    'EVN|A40|20240315093000',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi^Emeka||19781104|M',
    'MRG|448899^^^NSH^MR',
  ].join('\r\n'),
  [
    'MSH|^~\\&|LABSYS|ACMELAB|HUB|NORTHSIDE|20240312103045-0500||ORU^R01^ORU_R01|ACM552001|P|2.5.1',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi||19781104|M',
    'PV1|1|O|LAB',
    'ORC|RE|ORD7731^NSHORD|ACC99120^ACME||CM',
    'OBR|1|ORD7731^NSHORD|ACC99120^ACME|BMP^Basic metabolic panel^99ACM|||20240312090000|||||||20240312091500||1234567890^Patel^Ravi^^^^^^NPI||||||20240312103000|||F',
    'OBX|1|NM|GLU^Glucose^99ACM||98|mg/dL|70-99|N|||F|||20240312100000',
    'OBX|2|NM|NA^Sodium^99ACM||141|mmol/L|136-145|N|||F',
    'OBX|3|NM|2823-3^Potassium^LN||5.6|mmol/L|3.5-5.1|H|||F',
    'NTE|1|L|Specimen slightly hemolyzed \\T\\ repeat advised',
    'OBX|4|ST|2075-0^Chloride^LN||>120|mmol/L|98-107|HH|||F',
    'SPM|1|SP1001&ACME||SER^Serum^HL70487|||||||||||||20240312091500',
  ].join('\r'),
  [
    'MSH|^~\\&|MONITOR|ICU|HUB|NORTHSIDE|20240312110000||ORU^R01^ORU_R01|ICU0001|P|2.6',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi',
    'PV1|1|I|ICU^12^A',
    'OBR|1||VS20240312110000^ICU|85353-1^Vital signs panel^LN|||20240312110000',
    'OBX|1|NM|8867-4^Heart rate^LN||72|/min^^UCUM|60-100|N|||F|||20240312110000',
    'OBX|2|NM|8480-6^Systolic blood pressure^LN||128|mm[Hg]^^UCUM||N|||F|||20240312110000',
    'OBX|3|NM|59408-5^SpO2^LN||97|%^^UCUM|90-100|N|||F|||20240312110000',
  ].join('\r'),
  [
    'MSH|^~\\&|EHR|NORTHSIDE|LABSYS|ACMELAB|20240312084500||ORM^O01^ORM_O01|NSO20001|P|2.4',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi||19781104|M',
    'PV1|1|O|CLINIC^^^NSH',
    'ORC|NW|ORD7731^NSHORD||GRP100^NSHORD|SC||^^^20240312090000^^R||20240312084500|||1234567890^Patel^Ravi^^^^^^NPI',
    'OBR|1|ORD7731^NSHORD||BMP^Basic metabolic panel^99ACM|||20240312084500||||||||||1234567890^Patel^Ravi^^^^^^NPI',
    'DG1|1||R73.09^Other abnormal glucose^I10',
  ].join('\r'),
  [
    'MSH|^~\\&|EHR|NORTHSIDE|LABSYS|ACMELAB|20240312084600||OML^O21^OML_O21|NSO20002|P|2.5.1',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi||19781104|M',
    'ORC|NW|ORD7732^NSHORD|||||||20240312084600|||1234567890^Patel^Ravi^^^^^^NPI',
    'TQ1|1||||||20240312090000||R',
    'OBR|1|ORD7732^NSHORD||4548-4^Hemoglobin A1c^LN',
    'SPM|1|SP2002&NSHORD||BLD^Whole blood^HL70487',
  ].join('\r'),
  [
    'MSH|^~\\&|IIS|STATEIIS|HUB|NORTHSIDE|20240312120000-0600||VXU^V04^VXU_V04|IIS30001|P|2.5.1|||ER|AL||8859/1',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi^^^^^L|Nwosu^Ngozi^^^^^M|19781104|M|||1200 Lakeview Ave^^Springfield^IL^62704^USA^P',
    'ORC|RE||IZ-778812^STATEIIS',
    'RXA|0|1|20240301|20240301|141^Influenza, seasonal, injectable^CVX|0.5|mL^mL^UCUM||00^New immunization record^NIP001|1234567890^Patel^Ravi^^^^^^NPI|^^^NSFP||||FL4521|20250630|SKB^GlaxoSmithKline^MVX|||CP|A',
    'RXR|C28161^Intramuscular^NCIT|LD^Left deltoid^HL70163',
    'OBX|1|CE|64994-7^Vaccine funding program eligibility^LN|1|V01^Not VFC eligible^HL70064||||||F|||20240301',
  ].join('\r'),
  [
    'MSH|^~\\&|EHR|NORTHSIDE|HUB|HUB|20240312150000||MDM^T02^MDM_T02|NSD40001|P|2.5.1',
    'EVN|T02|20240312150000',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi||19781104|M',
    'PV1|1|I|4W^402^B^NSH',
    'TXA|1|DS^Discharge summary^HL70270|TX|20240312145500|1234567890^Patel^Ravi^^^^^^NPI||20240312145500|||||DOC55120^NORTHSIDE|||||AU',
    'OBX|1|TX|18842-5^Discharge summary^LN||Patient admitted with hypertension.~Discharged in stable condition.||||||F',
  ].join('\r'),
  [
    'MSH|^~\\&|SCHED|NORTHSIDE|HUB|HUB|20240312160000||SIU^S12^SIU_S12|NSS50001|P|2.5.1',
    'SCH|APT8812^NORTHSIDE|APT8812^NORTHSIDE|||||FOLLOWUP^Follow-up visit^HL70276|ROUTINE|30|min|^^30^20240320090000^20240320093000||||||||||||||BOOKED',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi||19781104|M',
    'RGS|1',
    'AIS|1||99213^Office visit^C4|20240320090000|||30|min',
    'AIP|1||1234567890^Patel^Ravi^^^^^^NPI|ATND',
    'AIL|1||CLINIC^101^^NSH',
  ].join('\r'),
];

/**
 * Identifier fields that get the message's unique suffix: segment -> [field, components].
 * Everything else that identifies a resource (synthetic identifiers of observations, allergies,
 * next of kin...) is derived from these, so it carries the suffix too. Practitioners, locations
 * and organizations stay shared between messages, as in real feeds.
 */
const IDENTIFIER_FIELDS: Readonly<Record<string, readonly (readonly [number, readonly number[]])[]>> = {
  PID: [[2, [1]], [3, [1]], [4, [1]], [18, [1]]],
  MRG: [[1, [1]], [2, [1]], [3, [1]], [5, [1]]],
  PV1: [[19, [1]], [50, [1]]],
  ORC: [[2, [1]], [3, [1]], [4, [1]]],
  OBR: [[2, [1]], [3, [1]]],
  SPM: [[2, [1, 2]]],
  TXA: [[12, [1]], [13, [1]], [14, [1]], [15, [1]]],
  SCH: [[1, [1]], [2, [1]]],
  IN1: [[36, [1]]],
};

function loadSeeds(): { name: string; text: string }[] {
  const seeds = BUILTIN_SEEDS.map((text, i) => ({ name: `builtin-${i}`, text }));
  for (const dir of [join(ROOT, 'bots', 'hl7-inbound', 'fixtures'), join(ROOT, 'test', 'corpus')]) {
    for (const file of hl7Files(dir)) {
      const bytes = readFileSync(file);
      const utf8 = bytes.toString('utf8');
      seeds.push({ name: relative(ROOT, file), text: utf8.includes('\ufffd') ? bytes.toString('latin1') : utf8 });
    }
  }
  return seeds;
}

function hl7Files(dir: string): string[] {
  if (!existsSync(dir)) {
    return [];
  }
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? hl7Files(join(dir, e.name)) : e.name.endsWith('.hl7') ? [join(dir, e.name)] : []))
    .sort();
}

// ---------------------------------------------------------------------------------------------
// Cases: what fast-check generates (plain data; the payload is built from it at send time)

type Mutation =
  | { readonly op: 'dropSegment' | 'dupSegment'; readonly at: number }
  | { readonly op: 'swapSegments'; readonly a: number; readonly b: number }
  | { readonly op: 'dropField' | 'dupField'; readonly seg: number; readonly field: number }
  | { readonly op: 'swapFields'; readonly seg: number; readonly a: number; readonly b: number }
  | { readonly op: 'setField'; readonly seg: number; readonly field: number; readonly value: string }
  | { readonly op: 'longField'; readonly seg: number; readonly field: number; readonly length: number; readonly char: string }
  | { readonly op: 'segmentName'; readonly at: number; readonly name: string }
  | { readonly op: 'insertSegment'; readonly at: number; readonly line: string }
  | { readonly op: 'msh2'; readonly value: string }
  | { readonly op: 'mshField'; readonly field: 7 | 9 | 10 | 12; readonly action: 'clear' | 'cut' }
  | { readonly op: 'onlyMsh' }
  | { readonly op: 'eol'; readonly pattern: readonly string[]; readonly trailing: string }
  | { readonly op: 'insertText'; readonly pos: number; readonly text: string }
  | { readonly op: 'truncate'; readonly perMille: number }
  | { readonly op: 'prefix'; readonly text: string }
  | { readonly op: 'randomBytes'; readonly pos: number; readonly bytes: readonly number[] };

type CaseBody =
  | { readonly kind: 'hl7'; readonly seed: number; readonly mutations: readonly Mutation[] }
  | { readonly kind: 'bytes'; readonly bytes: readonly number[] }
  | { readonly kind: 'text'; readonly text: string };

interface FuzzCase {
  readonly body: CaseBody;
  /** Send the same payload again after its answer (a sender retrying). */
  readonly resend: boolean;
}

/** Segment index: -1 is MSH, anything else a segment after it. */
const segmentIndex = fc.oneof({ weight: 1, arbitrary: fc.constant(-1) }, { weight: 12, arbitrary: fc.nat(60) });
const fieldIndex = fc.nat(45);

const specialValue = fc.oneof(
  fc.constantFrom(
    '|', '^', '~', '\\', '&', '^~\\&', '""', '"', '\\F\\', '\\S\\', '\\T\\', '\\R\\', '\\E\\', '\\X0D\\', '\\X0D0A\\', '\\X41\\',
    '\\XZZ\\', '\\X\\', '\\H\\', '\\N\\', '\\.br\\', '\\.sp2\\', '\\Z99\\', '\\', '\\F', 'a\\E\\b', '\\C2842\\', '\\M2442\\', '\\\\'
  ),
  fc.constantFrom('Müller', 'Ångström', '李小龙', 'Δοκιμή', 'عربى', '🙂👍🏽', '\u0000', '\u00ff', '\u200b', '\ufeff', '\ufffd', '\ud800', 'e\u0301', '\u0085'),
  fc.constantFrom(
    '20240230', '2024', '202403121', '20240312250000', '20240312120000+2500', '20240312120000.1234-0500', '99999999999999',
    '0', '-1', '1e999', 'NaN', '١٢٣', ' ', '\t', 'a\rb', 'a\nb', 'a\r\nb', 'A^B~C^D&E', '^^^^^^^^', '~~~~', '&&&', '""^""', '~""'
  ),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 })
);

const segmentName = fc.oneof(
  fc.constantFrom('ZZZ', 'ZPD', 'PID', 'PV1', 'OBX', 'OBR', 'ORC', 'NTE', 'MSH', 'EVN', 'MSA', 'X1', 'pid', 'PIDX', '', '1AB', 'SPM', 'RXA', 'TXA', 'SCH'),
  fc.string({ maxLength: 4 })
);

const eolChunk = fc.constantFrom('\r', '\n', '\r\n', '\r\r', '\n\n', '\r\n\r\n', '\n\r');

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('dropSegment' as const, 'dupSegment' as const), at: segmentIndex }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('swapSegments' as const), a: segmentIndex, b: segmentIndex }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('dropField' as const, 'dupField' as const), seg: segmentIndex, field: fieldIndex }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('swapFields' as const), seg: segmentIndex, a: fieldIndex, b: fieldIndex }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant('setField' as const), seg: segmentIndex, field: fieldIndex, value: specialValue }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('longField' as const),
      seg: segmentIndex,
      field: fieldIndex,
      length: fc.oneof(fc.integer({ min: 1000, max: 8000 }), fc.integer({ min: 30_000, max: 70_000 })),
      char: fc.constantFrom('A', 'é', '9', '^', '~', '\\', ' '),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('segmentName' as const), at: segmentIndex, name: segmentName }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('insertSegment' as const),
      at: segmentIndex,
      line: fc.oneof(
        fc.constantFrom('ZZZ|1|custom', 'NTE|1||free text', 'OBX|9|NM|8867-4^Heart rate^LN||abc|/min', 'PID|2||OTHER^^^NSH^MR', 'EVN|', 'MSH|^~\\&|X', 'MSA|AA|X', ''),
        fc.tuple(segmentName, fc.string({ maxLength: 40 })).map(([n, rest]) => `${n}|${rest}`)
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('msh2' as const),
      value: fc.oneof(fc.constantFrom('', '^', '^~', '^~\\', '^~\\&#', '~^\\&', '^~\\&^', '^^^^', 'ab', '^~&\\', '\\^~&', '^~\\&\\'), fc.string({ maxLength: 6 })),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('mshField' as const), field: fc.constantFrom(7 as const, 9 as const, 10 as const, 12 as const), action: fc.constantFrom('clear' as const, 'cut' as const) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'onlyMsh' as const }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('eol' as const), pattern: fc.array(eolChunk, { minLength: 1, maxLength: 4 }), trailing: fc.constantFrom('', '\r', '\n', '\r\n', '\r\r\r', ' \r', '\r\u0000') }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('insertText' as const), pos: fc.nat(), text: specialValue }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), perMille: fc.integer({ min: 0, max: 999 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('prefix' as const), text: fc.constantFrom('\ufeff', ' ', '\r\n', '\u0000', '\t', 'X') }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('randomBytes' as const), pos: fc.nat(), bytes: fc.array(fc.nat(255), { minLength: 1, maxLength: 12 }) }) }
);

function caseArbitrary(seedCount: number): fc.Arbitrary<FuzzCase> {
  const hl7 = fc.record({
    kind: fc.constant('hl7' as const),
    seed: fc.nat(seedCount - 1),
    mutations: fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 4, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 4 }) }),
  });
  const bytes = fc.record({ kind: fc.constant('bytes' as const), bytes: fc.array(fc.nat(255), { maxLength: 1500 }) });
  const text = fc.record({
    kind: fc.constant('text' as const),
    text: fc
      .tuple(
        fc.constantFrom('', 'MSH', 'MSH|', 'MSH|^~\\&|', 'MSH^', 'MSH|^~\\&|A|B|C|D|E||ADT^A01|', 'MSA|AA|X', 'ACK', 'msh|^~\\&|'),
        fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }))
      )
      .map(([prefix, rest]) => prefix + rest),
  });
  return fc.record({
    body: fc.oneof({ weight: 17, arbitrary: hl7 }, { weight: 1, arbitrary: bytes }, { weight: 2, arbitrary: text }),
    resend: fc.integer({ min: 0, max: 99 }).map((n) => n < 3),
  });
}

// ---------------------------------------------------------------------------------------------
// Building the payload of a case

/** Splits a segment into fields by the separator (MSH-1 is the separator: parts[1] is MSH-2). */
function pick(index: number, length: number): number {
  if (length <= 1 || index < 0) {
    return 0;
  }
  return 1 + (index % (length - 1));
}

function applySegmentMutations(segments: string[], fs: string, mutations: readonly Mutation[]): { segments: string[]; noControlId: boolean } {
  let segs = [...segments];
  let noControlId = false;
  const withFields = (seg: number, fn: (parts: string[]) => void): void => {
    if (segs.length === 0) {
      return;
    }
    const i = pick(seg, segs.length);
    const parts = segs[i].split(fs);
    fn(parts);
    segs[i] = parts.join(fs);
  };
  const fieldAt = (parts: string[], field: number): number => 1 + (field % Math.max(1, parts.length + 2));
  for (const m of mutations) {
    switch (m.op) {
      case 'dropSegment':
        if (segs.length) {
          segs.splice(pick(m.at, segs.length), 1);
        }
        break;
      case 'dupSegment':
        if (segs.length) {
          const i = pick(m.at, segs.length);
          segs.splice(i + 1, 0, segs[i]);
        }
        break;
      case 'swapSegments':
        if (segs.length) {
          const a = pick(m.a, segs.length);
          const b = pick(m.b, segs.length);
          [segs[a], segs[b]] = [segs[b], segs[a]];
        }
        break;
      case 'dropField':
        withFields(m.seg, (parts) => {
          if (parts.length > 1) {
            parts.splice(1 + (m.field % (parts.length - 1)), 1);
          }
        });
        break;
      case 'dupField':
        withFields(m.seg, (parts) => {
          if (parts.length > 1) {
            const f = 1 + (m.field % (parts.length - 1));
            parts.splice(f, 0, parts[f]);
          }
        });
        break;
      case 'swapFields':
        withFields(m.seg, (parts) => {
          if (parts.length > 1) {
            const a = 1 + (m.a % (parts.length - 1));
            const b = 1 + (m.b % (parts.length - 1));
            [parts[a], parts[b]] = [parts[b], parts[a]];
          }
        });
        break;
      case 'setField':
      case 'longField':
        withFields(m.seg, (parts) => {
          const f = fieldAt(parts, m.field);
          while (parts.length <= f) {
            parts.push('');
          }
          parts[f] = m.op === 'setField' ? m.value : m.char.repeat(m.length);
        });
        break;
      case 'segmentName':
        if (segs.length) {
          const i = pick(m.at, segs.length);
          segs[i] = m.name + segs[i].slice(3);
        }
        break;
      case 'insertSegment':
        segs.splice(pick(m.at, segs.length + 1), 0, m.line);
        break;
      case 'msh2':
        if (segs[0]?.startsWith('MSH')) {
          const parts = segs[0].split(fs);
          parts[1] = m.value;
          segs[0] = parts.join(fs);
        }
        break;
      case 'mshField':
        if (segs[0]?.startsWith('MSH')) {
          const parts = segs[0].split(fs);
          if (m.action === 'cut') {
            parts.length = Math.min(parts.length, m.field - 1);
          } else if (parts.length > m.field - 1) {
            parts[m.field - 1] = '';
          }
          segs[0] = parts.join(fs);
          noControlId ||= m.field <= 10;
        }
        break;
      case 'onlyMsh':
        segs = segs.slice(0, 1);
        break;
      default:
        break;
    }
  }
  return { segments: segs, noControlId };
}

/** Appends the message's unique suffix to every identifier field (and sets MSH-10). */
function injectUid(segments: string[], uid: string, setControlId: boolean): string[] {
  const msh = segments[0];
  if (!msh?.startsWith('MSH') || msh.length < 5) {
    return segments;
  }
  const fs = msh.charAt(3);
  const encoding = msh.slice(4).split(fs)[0] ?? '';
  const component = encoding.charAt(0) || '^';
  const repetition = encoding.charAt(1) || '~';
  const subcomponent = encoding.charAt(3) || '&';
  return segments.map((segment, index) => {
    const parts = segment.split(fs);
    if (index === 0) {
      if (setControlId && parts.length >= 10) {
        parts[9] = 'C' + uid;
      }
      return parts.join(fs);
    }
    const fields = IDENTIFIER_FIELDS[parts[0]];
    if (!fields) {
      return segment;
    }
    for (const [field, components] of fields) {
      if (!parts[field]) {
        continue;
      }
      parts[field] = parts[field]
        .split(repetition)
        .map((rep) => {
          const comps = rep.split(component);
          for (const c of components) {
            if (comps[c - 1]) {
              const subs = comps[c - 1].split(subcomponent);
              if (subs[0] && subs[0] !== '""') {
                subs[0] = `${subs[0]}-${uid}`;
              }
              comps[c - 1] = subs.join(subcomponent);
            }
          }
          return comps.join(component);
        })
        .join(repetition);
    }
    return parts.join(fs);
  });
}

/**
 * @param fuzzCase - The case.
 * @param seeds - The seed messages.
 * @param uid - The message's unique id.
 * @param encoding - The channel's encoding.
 * @returns The bytes to frame and send (never containing FS, so always exactly one frame).
 */
function buildPayload(fuzzCase: FuzzCase, seeds: readonly string[], uid: string, encoding: string): Buffer {
  const body = fuzzCase.body;
  let bytes: Buffer;
  if (body.kind === 'bytes') {
    bytes = Buffer.from(body.bytes);
  } else if (body.kind === 'text') {
    bytes = encode(body.text, encoding);
  } else {
    const seed = seeds[body.seed].replace(/^\ufeff/, '');
    const fs = seed.startsWith('MSH') ? seed.charAt(3) : '|';
    const original = seed.split(/\r\n|\r|\n/).filter((s) => s.length > 0);
    const mutated = applySegmentMutations(original, fs, body.mutations);
    const segments = injectUid(mutated.segments, uid, !mutated.noControlId);
    const eol = body.mutations.filter((m) => m.op === 'eol').at(-1);
    const pattern = eol?.pattern ?? ['\r'];
    let text = segments.map((s, i) => (i === 0 ? s : pattern[(i - 1) % pattern.length] + s)).join('') + (eol?.trailing ?? '');
    for (const m of body.mutations) {
      if (m.op === 'insertText' && text.length) {
        const pos = m.pos % text.length;
        text = text.slice(0, pos) + m.text + text.slice(pos);
      } else if (m.op === 'truncate') {
        text = text.slice(0, Math.floor((text.length * m.perMille) / 1000));
      } else if (m.op === 'prefix') {
        text = m.text + text;
      }
    }
    bytes = encode(text, encoding);
    for (const m of body.mutations) {
      if (m.op === 'randomBytes') {
        const pos = bytes.length ? m.pos % bytes.length : 0;
        bytes = Buffer.concat([bytes.subarray(0, pos), Buffer.from(m.bytes), bytes.subarray(pos)]);
      }
    }
  }
  // FS (0x1C) would end the MLLP frame early: one payload is always one frame here.
  return Buffer.from(bytes.filter((b) => b !== 0x1c));
}

function encode(text: string, encoding: string): Buffer {
  return Buffer.from(text, isLatin1(encoding) ? 'latin1' : 'utf8');
}

/** As the agent decodes a frame (iconv-lite: the BOM is stripped). */
function decode(bytes: Buffer, encoding: string): string {
  return bytes.toString(isLatin1(encoding) ? 'latin1' : 'utf8').replace(/^\ufeff/, '');
}

function isLatin1(encoding: string): boolean {
  return /^(latin1|iso-?8859-?1|8859\/1)$/i.test(encoding);
}

function probeMessage(uid: string): string {
  return [
    `MSH|^~\\&|PROBE|NORTHSIDE|HUB|HUB|20240312120000||ADT^A01^ADT_A01|C${uid}|P|2.5.1`,
    'EVN|A01|20240312120000',
    `PID|1||PR-${uid}^^^NSH^MR||Probe^Paula||19800101|F`,
    `PV1|1|O|CLINIC^^^NSH||||||||||||||||PV-${uid}^^^NSHV^VN`,
  ].join('\r');
}

// ---------------------------------------------------------------------------------------------
// What a payload is expected to produce

/** One payload sent, what it is expected to produce and what it got. */
interface Sent {
  readonly seq: number;
  readonly uid: string;
  readonly channel: string;
  readonly kind: 'case' | 'resend' | 'probe';
  readonly fuzzCase?: FuzzCase;
  readonly payload: Buffer;
  /** The frame as the agent decodes it. */
  readonly text: string;
  /** The agent can parse it (Hl7Message.parse: it starts with MSH) and runs the bot. */
  readonly parseable: boolean;
  /**
   * MSH-1 is a usable separator (not empty, CR or LF). Without one the answer cannot be an ER7
   * ACK a sender could read (it is built with the message's own delimiters); it must still come.
   */
  readonly delimited: boolean;
  /** MSH-10 as sent (the 10th field of the first segment). */
  readonly controlId: string;
  /** The text the bot receives (the agent's and the sandbox's parse/serialise round trips). */
  readonly raw: string;
  readonly acks: string[];
  cas: number;
  readonly extra: string[];
  ackCode?: string;
  ackText?: string;
  /** The answer could not be read as an ACK (a message without usable delimiters). */
  unreadableAck?: boolean;
}

function expectation(payload: Buffer, encoding: string): Pick<Sent, 'text' | 'parseable' | 'delimited' | 'controlId' | 'raw'> {
  const text = decode(payload, encoding);
  const parseable = text.startsWith('MSH');
  const fs = text.charAt(3);
  const delimited = parseable && fs !== '' && !/[\r\n]/.test(fs);
  const controlId = delimited ? (text.split(/[\r\n]/)[0].split(fs)[9] ?? '') : '';
  let raw = text;
  if (parseable) {
    for (let i = 0; i < 3; i++) {
      raw = Hl7Message.parse(raw).toString();
    }
  }
  return { text, parseable, delimited, controlId, raw };
}

/** The ledger key the pipeline records for a message (readable: strict header; else its stand-in's). */
function ledgerKeyOf(raw: string): string {
  let header: MessageHeaderInfo;
  try {
    header = readMessageHeader(readHl7Message(raw));
  } catch (_err) {
    header = readMessageHeader(standInForUnreadable(raw));
  }
  return messageKey(header);
}

/**
 * MSA-1, MSA-2 and MSA-3 of an ACK as ER7 text, split by the separator that follows `MSA` (the
 * ACK uses the message's own field separator, which may not survive the encoding: a lone
 * surrogate becomes U+FFFD).
 */
function readAck(text: string): { code: string; controlId: string; text: string } {
  const msa = text.split(/[\r\n]+/).find((s) => s.startsWith('MSA'));
  const fs = msa?.charAt(3);
  const parts = fs && msa ? msa.split(fs) : [];
  return { code: (parts[1] ?? '').toUpperCase(), controlId: parts[2] ?? '', text: parts[3] ?? '' };
}

/**
 * The agent answers CA from its own parse (`@medplum/hl7`), before the bot runs; with letters as
 * delimiters (MSH-2 "HV[I") that parse loses MSH-10, so its CA has an empty MSA-2, as the stock
 * agent's would.
 */
function agentLosesControlId(raw: string): boolean {
  try {
    return !Hl7Message.parse(raw).getSegment('MSH')?.getField(10)?.toString();
  } catch (_err) {
    return true;
  }
}

/**
 * Compares an ACK's MSA-2 with the MSH-10 sent, as control ids survive the round trip: trimmed,
 * lone surrogates as U+FFFD. An answer to a message whose delimiters could not be used is in
 * default delimiters: its MSA-2 is escaped and has no control characters.
 */
function sameControlId(msa2: string, sent: string): boolean {
  const same = (a: string, b: string): boolean => wellFormed(a.trim()) === wellFormed(b.trim());
  return same(msa2, sent) || same(decodeEscapes(msa2, new Hl7Context()), stripControlCharacters(sent));
}

function wellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

// ---------------------------------------------------------------------------------------------
// A raw MLLP connection (frames of any bytes; answers collected in arrival order)

class MllpConnection {
  readonly channel: string;
  readonly encoding: string;
  readonly enhanced: boolean;
  private readonly host: string;
  private readonly port: number;
  private socket?: Socket;
  private buffer = Buffer.alloc(0);
  private readonly frames: string[] = [];
  private waiter?: () => void;
  closedByPeer = 0;

  constructor(channel: string, host: string, port: number, encoding: string, enhanced: boolean) {
    this.channel = channel;
    this.host = host;
    this.port = port;
    this.encoding = encoding;
    this.enhanced = enhanced;
  }

  async open(): Promise<void> {
    const socket = connect({ host: this.host, port: this.port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket === socket) {
        this.closedByPeer++;
        this.socket = undefined;
      }
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket = socket;
  }

  async write(payload: Buffer): Promise<void> {
    if (!this.socket) {
      await this.open();
    }
    this.socket?.write(Buffer.concat([Buffer.from([0x0b]), payload, Buffer.from([0x1c, 0x0d])]));
  }

  /** @returns The next answer, or undefined when none arrives within `timeoutMs`. */
  async next(timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        return undefined;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.frames.shift();
  }

  /** @returns Every answer received and not yet read. */
  drain(): string[] {
    return this.frames.splice(0);
  }

  close(): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const start = this.buffer.indexOf(0x0b);
      const end = this.buffer.indexOf(Buffer.from([0x1c, 0x0d]), start + 1);
      if (start < 0 || end < 0) {
        break;
      }
      this.frames.push(decode(this.buffer.subarray(start + 1, end), this.encoding));
      this.buffer = this.buffer.subarray(end + 2);
    }
    this.waiter?.();
  }
}

// ---------------------------------------------------------------------------------------------
// The run

interface Violation {
  readonly sent?: Sent;
  readonly what: string;
}

const OUTCOME_OF_ACK: Record<string, string> = { AA: 'committed', AE: 'dead-letter', AR: 'rejected' };

describe('HL7 inbound fuzzing over MLLP', () => {
  let target: E2eTarget;
  let skip: string | undefined;
  const connections: MllpConnection[] = [];

  // What the runtime committed, observed commit by commit.
  const ledger = new Map<string, Map<string, string>>(); // key -> id -> outcome
  let ledgerEntries = 0;
  const carriers = new Map<string, Set<string>>(); // uid -> Type/id currently carrying it
  const carried = new Map<string, Set<string>>(); // Type/id -> uids
  const botFailures: string[] = [];

  beforeAll(async () => {
    target = await startE2eTarget();
    if (target.kind !== 'local' || !target.runtime) {
      skip = 'the fuzz test observes the local runtime (run without MEDPLUM_BASE_URL)';
      return;
    }
    const listeners = target.runtime.agents.listeners();
    for (const channel of CONNECTIONS) {
      const listener = listeners.find((l) => l.channel === channel);
      if (!listener) {
        throw new Error(`no MLLP listener for channel ${channel}`);
      }
      const connection = new MllpConnection(channel, listener.host, listener.port, listener.encoding, listener.enhancedMode === 'standard');
      await connection.open();
      connections.push(connection);
    }
    target.runtime.store.onCommit((changes) => {
      try {
        for (const change of changes) {
          observe(change.interaction, change.resource);
        }
      } catch (err) {
        botFailures.push(`commit observer failed: ${String(err)}`);
      }
    });
  });

  afterAll(async () => {
    for (const connection of connections) {
      connection.close();
    }
    await target?.stop();
  });

  function observe(interaction: string, resource: WithId<Resource>): void {
    const ref = `${resource.resourceType}/${resource.id}`;
    if (resource.resourceType === 'MessageHeader') {
      const tags = resource.meta?.tag ?? [];
      const key = tags.find((t) => t.system === MESSAGE_KEY_SYSTEM)?.code ?? '';
      const outcome = tags.find((t) => t.system === MESSAGE_OUTCOME_SYSTEM)?.code ?? '';
      const entries = ledger.get(key) ?? new Map<string, string>();
      if (interaction === 'delete') {
        ledgerEntries -= entries.delete(resource.id) ? 1 : 0;
      } else {
        ledgerEntries += entries.has(resource.id) ? 0 : 1;
        entries.set(resource.id, outcome);
      }
      ledger.set(key, entries);
      return;
    }
    if (resource.resourceType === 'AuditEvent') {
      const event = resource as AuditEvent;
      if (event.outcome && event.outcome !== '0') {
        botFailures.push(`${ref} outcome ${event.outcome}: ${(event.outcomeDesc ?? '').slice(-600)}`);
      }
      return;
    }
    if (LEDGER_TYPES.has(resource.resourceType)) {
      return;
    }
    for (const uid of carried.get(ref) ?? []) {
      carriers.get(uid)?.delete(ref);
    }
    carried.delete(ref);
    if (interaction === 'delete') {
      return;
    }
    const uids = new Set(JSON.stringify(resource).match(UID_PATTERN) ?? []);
    carried.set(ref, uids);
    for (const uid of uids) {
      let set = carriers.get(uid);
      if (!set) {
        set = new Set();
        carriers.set(uid, set);
      }
      set.add(ref);
    }
  }

  test('every message is answered once, recorded once, and written all or nothing', { timeout: 240_000 }, async (ctx) => {
    if (skip) {
      ctx.skip(skip);
      return;
    }
    const runtime = target.runtime!;
    const seeds = loadSeeds();
    const seedTexts = seeds.map((s) => s.text);
    const config = readMappingConfigFiles(join(ROOT, 'seed'));
    const listenerCount = runtime.agents.listeners().length;

    let counter = 0;
    const nextUid = (): string => `FZ${String(++counter).padStart(6, '0')}X`;
    const all: Sent[] = [];
    const expectedOutcomes = new Map<string, string[]>();
    const reportedDifference = new Map<string, string>();
    let checkedBotFailures = 0;

    // /healthcheck throughout
    const healthFailures: string[] = [];
    let healthChecks = 0;
    let polling = true;
    ctx.onTestFinished(() => {
      polling = false;
    });
    const poller = (async () => {
      while (polling) {
        const started = Date.now();
        try {
          const res = await fetch(`${runtime.baseUrl}healthcheck`, { signal: AbortSignal.timeout(5000) });
          if (res.status !== 200) {
            healthFailures.push(`healthcheck answered ${res.status}`);
          }
          await res.arrayBuffer();
        } catch (err) {
          healthFailures.push(`healthcheck failed after ${Date.now() - started} ms: ${String(err)}`);
        }
        healthChecks++;
        await sleep(250);
      }
    })();

    const newSent = (connection: MllpConnection, kind: Sent['kind'], payload: Buffer, uid: string, fuzzCase?: FuzzCase): Sent => {
      const sent: Sent = {
        seq: all.length,
        uid,
        channel: connection.channel,
        kind,
        fuzzCase,
        payload,
        ...expectation(payload, connection.encoding),
        acks: [],
        cas: 0,
        extra: [],
      };
      all.push(sent);
      return sent;
    };

    /** Sends one payload and collects its answers; returns the violations seen on the wire. */
    const exchange = async (connection: MllpConnection, sent: Sent, previous: Sent | undefined): Promise<Violation[]> => {
      const violations: Violation[] = [];
      for (const frame of connection.drain()) {
        previous?.extra.push(frame);
      }
      await connection.write(sent.payload);
      if (!sent.parseable) {
        await sleep(DROP_GRACE_MS);
        sent.extra.push(...connection.drain());
        return violations;
      }
      const deadline = Date.now() + ACK_TIMEOUT_MS;
      while (sent.acks.length === 0) {
        const frame = await connection.next(deadline - Date.now());
        if (frame === undefined) {
          violations.push({ sent, what: `no application ACK within ${ACK_TIMEOUT_MS} ms` });
          break;
        }
        if (!sent.delimited) {
          // Without delimiters neither the CA nor the application ACK can be read: count frames.
          if (connection.enhanced && sent.cas === 0) {
            sent.cas++;
          } else {
            sent.acks.push(frame);
            sent.ackCode = readAck(frame).code || 'AR';
            sent.unreadableAck = !readAck(frame).code;
          }
          continue;
        }
        const ack = readAck(frame);
        if (ack.code === 'CA' && (sameControlId(ack.controlId, sent.controlId) || (ack.controlId === '' && agentLosesControlId(sent.raw)))) {
          sent.cas++;
        } else if (['AA', 'AE', 'AR'].includes(ack.code) && sameControlId(ack.controlId, sent.controlId)) {
          sent.acks.push(frame);
          sent.ackCode = ack.code;
          sent.ackText = ack.text;
        } else {
          sent.extra.push(frame);
        }
      }
      return violations;
    };

    let sendMs = 0;
    let checkMs = 0;
    const lastSent = new Map<MllpConnection, Sent>();
    const runBatch = async (cases: FuzzCase[]): Promise<Violation[]> => {
      const batchStart = all.length;
      const batchStartTime = Date.now();
      const perConnection = connections.map((connection, c) => ({ connection, cases: cases.filter((_, i) => i % connections.length === c) }));
      const violations: Violation[] = [];
      for (const connection of connections) {
        const late = connection.drain();
        if (late.length) {
          violations.push({ sent: lastSent.get(connection), what: `answer(s) arrived after the end of its batch: ${late.map(oneLine).join(' || ')}` });
        }
      }
      await Promise.all(
        perConnection.map(async ({ connection, cases: mine }) => {
          let previous: Sent | undefined;
          for (const fuzzCase of mine) {
            const uid = nextUid();
            const sent = newSent(connection, 'case', buildPayload(fuzzCase, seedTexts, uid, connection.encoding), uid, fuzzCase);
            const found = await exchange(connection, sent, previous);
            violations.push(...found);
            previous = sent;
            if (found.length && !KEEP_GOING) {
              return;
            }
            if (!sent.parseable) {
              // The bridge dropped the frame: the connection must still work.
              const probeUid = nextUid();
              const probe = newSent(connection, 'probe', encode(probeMessage(probeUid), connection.encoding), probeUid);
              const probeViolations = await exchange(connection, probe, previous);
              previous = probe;
              violations.push(...probeViolations);
              if (probe.ackCode && probe.ackCode !== 'AA') {
                violations.push({ sent: probe, what: `probe after a dropped frame answered ${probe.ackCode} (${probe.ackText})` });
              }
              if (probeViolations.length && !KEEP_GOING) {
                return;
              }
            } else if (fuzzCase.resend) {
              const again = newSent(connection, 'resend', sent.payload, uid, fuzzCase);
              const found2 = await exchange(connection, again, previous);
              previous = again;
              violations.push(...found2);
              if (found2.length && !KEEP_GOING) {
                return;
              }
            }
          }
          // Late or duplicated answers to the last message of the batch.
          await sleep(DROP_GRACE_MS);
          previous?.extra.push(...connection.drain());
          if (previous) {
            lastSent.set(connection, previous);
          }
        })
      );
      const batch = all.slice(batchStart);
      const checkStart = Date.now();
      sendMs += checkStart - batchStartTime;
      violations.push(...checkAnswers(batch));
      violations.push(...checkLedger(batch));
      violations.push(...checkMapping(batch));
      violations.push(...(await checkWrites(batch)));
      checkMs += Date.now() - checkStart;
      for (const failure of healthFailures.splice(0)) {
        violations.push({ what: failure });
      }
      for (const failure of botFailures.slice(checkedBotFailures)) {
        violations.push({ what: `bot run failed: ${failure}` });
      }
      checkedBotFailures = botFailures.length;
      const open = runtime.agents.listeners().length;
      if (open !== listenerCount) {
        violations.push({ what: `${listenerCount - open} MLLP listener(s) closed` });
      }
      for (const connection of connections) {
        if (connection.closedByPeer) {
          violations.push({ what: `the runtime closed a connection on ${connection.channel}` });
          connection.closedByPeer = 0;
        }
      }
      return violations;
    };

    const checkAnswers = (batch: Sent[]): Violation[] => {
      const violations: Violation[] = [];
      for (const sent of batch) {
        if (sent.extra.length) {
          violations.push({ sent, what: `unexpected answer(s): ${sent.extra.map(oneLine).join(' || ')}` });
        }
        if (!sent.parseable) {
          continue;
        }
        if (sent.acks.length !== 1) {
          violations.push({ sent, what: `${sent.acks.length} application ACKs` });
        }
        if (sent.ackCode === 'AE' && /^(Write|Mapping) failed/.test(sent.ackText ?? '') && !/Precondition Failed|conflict/i.test(sent.ackText ?? '')) {
          // Bad data is refused by the maps with a clear reason; a failing write or map is a hub defect.
          violations.push({ sent, what: `refused for a hub defect, not a data problem: ${sent.ackText}` });
        }
        const expectedCas = connections.find((c) => c.channel === sent.channel)?.enhanced ? 1 : 0;
        if (sent.acks.length === 1 && sent.cas !== expectedCas) {
          violations.push({ sent, what: `${sent.cas} commit ACKs (CA), expected ${expectedCas}` });
        }
      }
      return violations;
    };

    const checkLedger = (batch: Sent[]): Violation[] => {
      const touched = new Map<string, Sent>();
      for (const sent of batch) {
        if (sent.ackCode) {
          const key = ledgerKeyOf(sent.raw);
          const list = expectedOutcomes.get(key) ?? [];
          list.push(OUTCOME_OF_ACK[sent.ackCode]);
          expectedOutcomes.set(key, list);
          touched.set(key, sent);
        }
      }
      const violations: Violation[] = [];
      for (const [key, sent] of touched) {
        const expected = [...(expectedOutcomes.get(key) ?? [])].sort();
        const actual = [...(ledger.get(key)?.values() ?? [])].sort();
        const difference = outcomeDifference(expected, actual);
        // A key shared by several messages (no MSH-3/4/10) is reported once per new discrepancy.
        if (difference !== (reportedDifference.get(key) ?? '')) {
          reportedDifference.set(key, difference);
          if (difference) {
            violations.push({ sent, what: `ledger for key '${key}': ${difference} (expected [${expected.join(', ')}], found [${actual.join(', ')}])` });
          }
        }
      }
      return violations;
    };

    /** The message maps refuse bad data with MappingError (AE with ERR), never with a crash. */
    const checkMapping = (batch: Sent[]): Violation[] => {
      const violations: Violation[] = [];
      for (const sent of batch) {
        if (!sent.parseable || sent.kind !== 'case') {
          continue;
        }
        let message: Hl7Message;
        try {
          message = readHl7Message(sent.raw);
        } catch (_err) {
          continue;
        }
        try {
          const header = readMessageHeader(message);
          findMessageMapper(header)?.(message, new MappingContext(header, config));
        } catch (err) {
          if (!(err instanceof MappingError)) {
            const stack = err instanceof Error ? (err.stack ?? '').split('\n').slice(0, 3).join(' / ') : String(err);
            violations.push({ sent, what: `reading or mapping the message crashed instead of refusing it with a MappingError: ${stack}` });
          }
        }
      }
      return violations;
    };

    const checkWrites = async (batch: Sent[]): Promise<Violation[]> => {
      const violations: Violation[] = [];
      const receptions = new Map<string, Sent[]>();
      for (const sent of batch) {
        if (sent.ackCode && sent.kind !== 'probe') {
          receptions.set(sent.uid, [...(receptions.get(sent.uid) ?? []), sent]);
        }
      }
      const searches: { sent: Sent; key: string; type: string; query: Identifier[]; own: boolean; replaced: boolean }[] = [];
      for (const [uid, list] of receptions) {
        const first = list[0];
        const codes = list.map((s) => s.ackCode);
        if (list.length > 1 && codes[0] === 'AA' && codes.some((c) => c !== 'AA')) {
          violations.push({ sent: list[1], what: `re-sent message answered ${codes.join(' then ')}` });
        }
        if (!codes.includes('AA')) {
          const present = [...(carriers.get(uid) ?? [])];
          if (present.length) {
            violations.push({ sent: first, what: `answered ${codes.join('/')} but ${present.join(', ')} carry its identifiers (half-written)` });
          }
          continue;
        }
        let plan: MessagePlan;
        try {
          const message = readHl7Message(first.raw);
          const header = readMessageHeader(message);
          const mapper = findMessageMapper(header);
          if (!mapper) {
            throw new Error(`no mapper for ${header.messageCode}^${header.triggerEvent}`);
          }
          plan = mapper(message, new MappingContext(header, config));
        } catch (err) {
          violations.push({ sent: first, what: `answered AA but the pure mapping fails: ${String(err)}` });
          continue;
        }
        for (const p of plan.resources) {
          const own = p.identifiers.filter((i) => i.value?.includes(uid));
          searches.push({ sent: first, key: p.key, type: p.resource.resourceType, query: own.length ? own : p.identifiers, own: own.length > 0, replaced: isReplaced(p.resource) });
        }
      }
      if (searches.length) {
        const response = await target.client.executeBatch({
          resourceType: 'Bundle',
          type: 'batch',
          entry: searches.map((s) => ({ request: { method: 'GET', url: `${s.type}?identifier=${encodeURIComponent(tokens(s.query))}&_count=20` } })),
        });
        searches.forEach((s, i) => {
          const entry = response.entry?.[i];
          if (!entry?.response?.status?.startsWith('2')) {
            violations.push({ sent: s.sent, what: `search for ${s.key} failed: ${entry?.response?.status}` });
            return;
          }
          let found = ((entry.resource as Bundle | undefined)?.entry ?? []).map((e) => e.resource as Resource);
          if (found.length > 1) {
            // As the writer resolves: a merged-away record is not the survivor holding its old numbers.
            found = s.replaced ? found.filter((r) => !matchesOnlyRetired(r, s.query)) : found.filter((r) => !isReplaced(r));
          }
          if (found.length === 0) {
            const inStore = s.query.flatMap((q) => runtime.store.idsWithToken(s.type, 'identifier', q.system ?? '', q.value ?? ''));
            violations.push({ sent: s.sent, what: `answered AA but planned ${s.key} is not stored (store index: ${inStore.join(',')}; search ${tokens(s.query)})` });
          } else if (found.length > 1) {
            violations.push({ sent: s.sent, what: `planned ${s.key} is stored ${found.length} times (${found.map((r) => `${r.resourceType}/${r.id}`).join(', ')})` });
          }
        });
      }
      return violations;
    };

    // ---- run
    const started = Date.now();
    const violationsSeen: Violation[] = [];
    const numRuns = Math.max(1, Math.ceil(MESSAGES / BATCH));
    console.log(`hl7-fuzz: seed ${SEED}, ${numRuns} runs of ${BATCH} messages, ${seeds.length} seed messages (${seeds.filter((s) => s.name.startsWith('test/corpus')).length} from the corpus)`);
    // At the time limit fast-check resolves fc.check without waiting for the batch in flight, which
    // goes on sending and then checks `all.slice(batchStart)`: that slice would take in the final
    // probes sent below, and one not answered yet was reported with "0 application ACKs". The run
    // waits for that batch (its violations count) before anything else is sent.
    let batchInFlight: Promise<void> = Promise.resolve();
    const details = await fc.check(
      fc.asyncProperty(fc.array(caseArbitrary(seeds.length), { minLength: BATCH, maxLength: BATCH }), (cases) => {
        batchInFlight = (async () => {
          const violations = await runBatch(cases);
          if (violations.length) {
            violationsSeen.push(...violations);
            if (!KEEP_GOING) {
              throw new Error(`${violations.length} violation(s)`);
            }
          }
        })();
        return batchInFlight;
      }),
      { seed: SEED, numRuns, endOnFailure: true, interruptAfterTimeLimit: TIME_LIMIT_MS, ...(REPLAY_PATH ? { path: REPLAY_PATH } : {}) }
    );
    await batchInFlight.catch(() => undefined);
    const fuzzMs = Date.now() - started;

    // ---- after the run: nothing more written back, every channel still answering, the whole ledger
    const finalViolations: Violation[] = [];
    await sleep(200);
    for (const connection of connections) {
      const late = connection.drain();
      if (late.length) {
        finalViolations.push({ sent: lastSent.get(connection), what: `answer(s) arrived after the end of its batch: ${late.map(oneLine).join(' || ')}` });
      }
    }
    for (const channel of new Set(CONNECTIONS)) {
      const listener = runtime.agents.listeners().find((l) => l.channel === channel);
      if (!listener) {
        finalViolations.push({ what: `listener ${channel} is gone` });
        continue;
      }
      const fresh = new MllpConnection(channel, listener.host, listener.port, listener.encoding, listener.enhancedMode === 'standard');
      await fresh.open();
      const uid = nextUid();
      const probe = newSent(fresh, 'probe', encode(probeMessage(uid), fresh.encoding), uid);
      finalViolations.push(...(await exchange(fresh, probe, undefined)));
      if (probe.ackCode !== 'AA') {
        finalViolations.push({ sent: probe, what: `final probe on ${channel} answered ${probe.ackCode ?? 'nothing'}` });
      }
      fresh.close();
    }
    polling = false;
    await poller;
    const answered = all.filter((s) => s.ackCode);
    const stored = await target.client.search('MessageHeader', { _count: '0', _total: 'accurate' });
    const byOutcome: Record<string, number> = {};
    for (const entries of ledger.values()) {
      for (const outcome of entries.values()) {
        byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
      }
    }
    const byAck: Record<string, number> = {};
    for (const s of answered) {
      byAck[s.ackCode as string] = (byAck[s.ackCode as string] ?? 0) + 1;
    }
    if (stored.total !== answered.length || ledgerEntries !== answered.length) {
      finalViolations.push({ what: `ledger has ${stored.total} entries (${ledgerEntries} observed), ${answered.length} messages were answered` });
    }
    for (const [ack, outcome] of Object.entries(OUTCOME_OF_ACK)) {
      if ((byAck[ack] ?? 0) !== (byOutcome[outcome] ?? 0)) {
        finalViolations.push({ what: `${byAck[ack] ?? 0} ${ack} answers but ${byOutcome[outcome] ?? 0} '${outcome}' ledger entries` });
      }
    }
    finalViolations.push(...healthFailures.map((what) => ({ what })));

    const reasons = new Map<string, number>();
    for (const s of answered.filter((a) => a.ackCode !== 'AA')) {
      const reason = `${s.ackCode} ${(s.ackText ?? '').replace(/FZ\d{6}X/g, '<uid>').replace(/\d+/g, 'n').slice(0, 110)}`;
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    const cases = all.filter((s) => s.kind === 'case').length;
    console.log(
      [
        `hl7-fuzz: ${all.length} messages sent (${cases} generated, ${all.filter((s) => s.kind === 'resend').length} re-sent, ${all.filter((s) => s.kind === 'probe').length} probes) ` +
          `over ${connections.length} connections in ${(fuzzMs / 1000).toFixed(1)} s (${((all.length / fuzzMs) * 1000).toFixed(1)} msg/s)` +
          `${details.interrupted ? `, stopped by the ${TIME_LIMIT_MS} ms limit after ${details.numRuns} runs` : ''}`,
        `  answers: ${Object.entries(byAck).map(([k, v]) => `${k} ${v}`).join(', ')}; dropped by the agent (not HL7): ${all.filter((s) => !s.parseable).length}; ` +
          `unreadable answers (no MSH-1): ${all.filter((s) => s.unreadableAck).length}; ` +
          `ledger: ${stored.total} entries; healthchecks: ${healthChecks}; sending ${(sendMs / 1000).toFixed(1)} s, checks ${(checkMs / 1000).toFixed(1)} s`,
        `  most frequent AE/AR reasons:`,
        ...[...reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([r, n]) => `    ${String(n).padStart(5)}  ${r}`),
        // A write the server refused means the mapping produced invalid FHIR (or crashed): worth a look.
        `  writes refused (AE 'Write failed'):`,
        ...([...reasons.entries()].filter(([r]) => r.includes('Write failed')).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([r, n]) => `    ${String(n).padStart(5)}  ${r}`).join('\n') || '    none').split('\n'),
      ].join('\n')
    );

    const violations = [...violationsSeen, ...finalViolations];
    if (details.failed || violations.length) {
      const replay = details.failed ? `FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath ?? ''}` : `FUZZ_SEED=${SEED}`;
      const report = [
        `HL7 fuzzing found ${violations.length} violation(s); reproduce with ${replay} npx vitest run test/e2e/hl7-fuzz.test.ts`,
        ...violationSummary(violations),
        ...examplesPerKind(violations, 20).map(describeViolation),
        ...(details.failed && violationsSeen.length === 0 ? [`fast-check: ${String(details.errorInstance)}`] : []),
      ].join('\n\n');
      console.log(report);
      expect.fail(report);
    }
    expect(answered.length).toBeGreaterThan(0);
  });
});

/** @returns What is missing from and extra in `actual` compared with `expected` (multisets), or ''. */
function outcomeDifference(expected: readonly string[], actual: readonly string[]): string {
  const count = (list: readonly string[]): Map<string, number> => {
    const map = new Map<string, number>();
    list.forEach((x) => map.set(x, (map.get(x) ?? 0) + 1));
    return map;
  };
  const e = count(expected);
  const a = count(actual);
  const parts: string[] = [];
  for (const outcome of new Set([...e.keys(), ...a.keys()])) {
    const d = (e.get(outcome) ?? 0) - (a.get(outcome) ?? 0);
    if (d > 0) {
      parts.push(`${d} '${outcome}' entr${d === 1 ? 'y' : 'ies'} missing`);
    } else if (d < 0) {
      parts.push(`${-d} unexpected '${outcome}' entr${d === -1 ? 'y' : 'ies'}`);
    }
  }
  return parts.join(', ');
}

/** @returns The kind of a violation: its text with numbers, ids and quoted values folded. */
function kindOf(v: Violation): string {
  return v.what
    .split('\n')[0]
    .replace(/'[^']*'|"[^"]*"|\([^)]*\)|FZ\d{6}X|[0-9a-f-]{36}|\d+/g, '…')
    .slice(0, 160);
}

/** @returns The first violation of each kind (at most `max`). */
function examplesPerKind(violations: readonly Violation[], max: number): Violation[] {
  const seen = new Set<string>();
  return violations.filter((v) => !seen.has(kindOf(v)) && seen.add(kindOf(v)) && seen.size <= max);
}

/** One line per kind of violation, with its count. */
function violationSummary(violations: readonly Violation[]): string[] {
  const kinds = new Map<string, number>();
  for (const v of violations) {
    const kind = kindOf(v);
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return kinds.size > 1 ? ['kinds of violations:', ...[...kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${String(n).padStart(4)}  ${k}`)] : [];
}

function oneLine(text: string): string {
  const line = JSON.stringify(text);
  return line.length > 300 ? line.slice(0, 300) + '…"' : line;
}

function describeViolation(v: Violation): string {
  if (!v.sent) {
    return `- ${v.what}`;
  }
  const s = v.sent;
  const payload = s.payload.length > 4000 ? `${s.payload.length} bytes, starting ${oneLine(s.text.slice(0, 1500))}` : oneLine(s.text);
  return [
    `- ${v.what}`,
    `  message #${s.seq} (${s.kind}) on ${s.channel}, uid ${s.uid}, MSH-10 ${JSON.stringify(s.controlId)}, answered ${s.ackCode ?? '-'} ${s.ackText ? JSON.stringify(s.ackText) : ''}`,
    `  payload (as decoded): ${payload}`,
    `  payload (base64): ${s.payload.length > 4000 ? '(too long)' : s.payload.toString('base64')}`,
    ...(s.fuzzCase?.body.kind === 'hl7' ? [`  mutations: ${JSON.stringify(s.fuzzCase.body.mutations).slice(0, 1500)}`] : []),
  ].join('\n');
}
