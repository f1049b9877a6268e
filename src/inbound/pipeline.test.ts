import type { MessageHeader, Patient } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { useLocalAdmin } from '../../test/support/local-admin.ts';
import { HL7_SENDER_SYSTEM, SENDER_TIMEZONE_EXTENSION } from '../constants.ts';
import { outcomeOf } from '../fhir/ledger.ts';
import type { InboundResult } from './pipeline.ts';
import { processInboundMessage } from './pipeline.ts';

const admin = useLocalAdmin();

const msa = (result: InboundResult, field: number): string => result.ack.getSegment('MSA')?.getField(field)?.toString() ?? '';

/** Every reception is answered and recorded, whatever it holds. */
async function expectRecorded(result: InboundResult): Promise<MessageHeader> {
  expect(result.ledger, `${result.ackCode} ${msa(result, 3)}`).toMatch(/^MessageHeader\//);
  const entry = await admin.medplum.readReference<MessageHeader>({ reference: result.ledger as string });
  expect(outcomeOf(entry)).toBe(result.outcome);
  return entry;
}

describe('processInboundMessage with hostile headers and structures', () => {
  test('a blank sending application, or one with control characters, still commits and is recorded', async () => {
    for (const [i, msh3] of [' ', '\u0007', 'A  \tB'].entries()) {
      const text = `MSH|^~\\&|${msh3}|NORTHSIDE|HUB|HUB|20240312081500-0500||ADT^A01^ADT_A01|HDR${i}|P|2.5.1\rEVN|A01|20240312081500-0500\rPID|1||HDR${i}^^^NSH^MR||Doe^Jane\rPV1|1|O`;
      const result = await processInboundMessage(admin.medplum, text);
      expect(result.ackCode, msa(result, 3)).toBe('AA');
      await expectRecorded(result);
    }
  });

  test('a control character in MSH-9 or MSH-10, or a blank receiver, is answered and recorded', async () => {
    for (const text of [
      'MSH|^~\\&|APP|NORTHSIDE|HUB|HUB|20240312081500||ADT^A0\u00078|CTL1|P|2.5.1\rPID|1||CTL1^^^NSH^MR||Doe^Jane',
      'MSH|^~\\&|APP|NORTHSIDE|HUB|HUB|20240312081500||ADT^A08|CTL\u00102|P|2.5.1\rPID|1||CTL2^^^NSH^MR||Doe^Jane',
      'MSH|E||K#| ',
      'MSH|^~\\&|APP|NORTHSIDE| |\t|20240312081500||ZZZ^Z01|CTL3|P|2.5.1',
    ]) {
      const result = await processInboundMessage(admin.medplum, text);
      expect(['AA', 'AE', 'AR']).toContain(result.ackCode);
      await expectRecorded(result);
    }
  });

  test('header fields longer than the standard allows are refused (AR), and recorded', async () => {
    for (const [field, text] of [
      [4, `MSH|^~\\&|APP|${'\\\\'.repeat(19_000)}|HUB|HUB|20240312081500-0500||ADT^A08|LONG1|P|2.5.1\rPID|1||L1^^^NSH^MR`],
      [10, `MSH|^~\\&|APP|NORTHSIDE|HUB|HUB|20240312081500-0500||ADT^A08|${'9'.repeat(200)}|P|2.5.1\rPID|1||L1^^^NSH^MR`],
    ] as const) {
      const result = await processInboundMessage(admin.medplum, text);
      expect(result.ackCode).toBe('AR');
      expect(msa(result, 3)).toMatch(new RegExp(`^MSH-${field} is longer than`));
      await expectRecorded(result);
    }
  });

  test('letters as delimiters (MSH-2 "S~\\&", "H)<%e") or an empty MSH-2: AR echoing MSH-10, in default delimiters', async () => {
    for (const msh2 of ['S~\\&', '$M', 'H)<%e', '']) {
      const result = await processInboundMessage(admin.medplum, `MSH|${msh2}|APP|NORTHSIDE|HUB|HUB|20240101||ADT^A01|DLM1|P|2.5\rPID|1`);
      expect(result.ackCode).toBe('AR');
      expect(msa(result, 2)).toBe('DLM1');
      expect(result.ack.context.getMsh2()).toBe('^~\\&');
      expect(result.ack.getSegment('ERR')?.getField(3)?.toString()).toBe('100^Segment sequence error^HL70357');
      await expectRecorded(result);
    }
  });

  test('control characters inside data fields are dropped, not a reason to refuse the message', async () => {
    for (const [i, family] of ['Do\u0007e', '\u0007', 'Do\\X07\\e', '\u001b[31mDoe', ' \u000b '].entries()) {
      const text = `MSH|^~\\&|APP|NORTHSIDE|HUB|HUB|20240312081500-0500||ADT^A08|CCH${i}|P|2.5.1\rPID|1||CCH${i}^^^NSH^MR||${family}^Jane^\u0007||19800101\u0007|F\u0007\rPV1|1|O|\u0007`;
      const result = await processInboundMessage(admin.medplum, text);
      expect(result.ackCode, `${JSON.stringify(family)}: ${msa(result, 3)}`).toBe('AA');
    }
  });

  test('a merge of two unknown patients commits, and the same merge sent again (new MSH-10) changes nothing', async () => {
    const a40 = (id: string): string =>
      [
        `MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261109100000-0500||ADT^A40^ADT_A39|${id}|P|2.5.1`,
        'EVN|A40|20261109095900-0500',
        'PID|1||MRG100234^^^NSH^MR~MRGE9000123^^^EMPI^PI||KOWALSKI^ANNA',
        'MRG|MRG100899^^^NSH^MR~MRGE9000123^^^EMPI^PI',
      ].join('\r');
    const first = await processInboundMessage(admin.medplum, a40('MRG1'));
    expect(first.ackCode, msa(first, 3)).toBe('AA');
    const stored = async (): Promise<Patient[]> =>
      (await admin.medplum.searchResources('Patient', { _count: '1000' })).filter((p) => p.identifier?.some((i) => i.value === 'MRG100899'));
    const before = await stored();
    const again = await processInboundMessage(admin.medplum, a40('MRG2'));
    expect(again.ackCode, msa(again, 3)).toBe('AA');
    expect(before.map((p) => p.active).sort()).toEqual([false, true]);
    const versions = (patients: readonly Patient[]): string[] => patients.map((p) => `${p.id}@${p.meta?.versionId}`).sort();
    expect(versions(await stored())).toEqual(versions(before));
  });

  test("an identifier holding '|' (sent as \\F\\) is refused with AE: it could never be found again", async () => {
    const text = 'MSH|^~\\&|APP|NORTHSIDE|HUB|HUB|20240312081500-0500||ADT^A08|PIPE1|P|2.5.1\rPID|1||A\\F\\1^^^NSH^MR||Doe^Jane';
    const result = await processInboundMessage(admin.medplum, text);
    expect(result.ackCode).toBe('AE');
    expect(msa(result, 3)).toMatch(/^An identifier of Patient \(.*\) contains '/);
    await expectRecorded(result);
  });

  test('a field read by the map and by the pipeline is reported once', async () => {
    const text = 'MSH|^~\\&|APP|WARNONCE|HUB|HUB|20240312081500-0500||ADT^A08|WRN1|P|2.5.1\rEVN|A08|20241399\rPID|1||WRN1^^^NSH^MR||Doe^Jane\rPV1|1|O';
    const result = await processInboundMessage(admin.medplum, text);
    const locations = result.ack.getAll('ERR').map((err) => err.getField(2)?.toString());
    expect(result.ackCode, msa(result, 3)).toBe('AA');
    expect(locations.filter((l) => l === 'EVN^1^2')).toHaveLength(1);
    expect(new Set(locations).size).toBe(locations.length);
  });

  test('a dead letter is resolved when the sender sends the same message again after the fix', async () => {
    const text = 'MSH|^~\\&|APP|LATEFIX|HUB|HUB|20240312081500||ADT^A08|FIX1|P|2.5.1\rEVN|A08|20240312081500\rPID|1||FIX1^^^NSH^MR||Doe^Jane||19800101120000|F\rPV1|1|O';
    const failed = await processInboundMessage(admin.medplum, text);
    expect(failed.ackCode, msa(failed, 3)).toBe('AE');
    await admin.medplum.createResource({
      resourceType: 'Organization',
      identifier: [{ system: HL7_SENDER_SYSTEM, value: 'LATEFIX' }],
      extension: [{ url: SENDER_TIMEZONE_EXTENSION, valueString: 'America/Chicago' }],
    });
    const again = await processInboundMessage(admin.medplum, text);
    expect(again.ackCode, msa(again, 3)).toBe('AA');
    const entry = await admin.medplum.readReference<MessageHeader>({ reference: failed.ledger as string });
    expect(outcomeOf(entry)).toBe('resolved');
  });

  test('SPM before ORC/OBR (specimen-first orders) commits', async () => {
    const text = 'MSH|^~\\&|EHR|NORTHSIDE|LABSYS|ACMELAB|20240312084500||ORM^O01^ORM_O01|SPM1|P|2.4\rPID|1||SPM1^^^NSH^MR\rSPM|1|S1\rORC|NW|ORD-SPM1^NSHORD\rOBR|1|ORD-SPM1^NSHORD||BMP^BMP^99ACM';
    const result = await processInboundMessage(admin.medplum, text);
    expect(result.ackCode, msa(result, 3)).toBe('AA');
  });

  test('the same dose twice in one VXU is recorded once, and later VXUs for it still commit', async () => {
    const rxa = 'RXA|0|999|19990607|19990607|20^DTAP^CVX|.5';
    const vxu = (id: string, rxas: number): string =>
      [`MSH|^~\\&|EPICIMM|NORTHSIDE|IIS|STATEIIS|19990607101500||VXU^V04|${id}|P|2.3`, 'PID|||VXU552201^^^NSH^MR||KOWALSKI^ADAM^P||19980521|M', ...Array(rxas).fill(rxa)].join('\r');
    const first = await processInboundMessage(admin.medplum, vxu('VXD1', 2));
    expect(first.ackCode).toBe('AA');
    expect(first.ack.getSegment('ERR')?.getField(4)?.toString()).toBe('W');
    const again = await processInboundMessage(admin.medplum, vxu('VXD2', 1));
    expect(again.ackCode, msa(again, 3)).toBe('AA');
    // The only immunizations of this runtime.
    expect(await admin.medplum.searchResources('Immunization', { _count: '100' })).toHaveLength(1);
  });
});
