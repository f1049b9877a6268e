import type { MedplumClient, WithId } from '@medplum/core';
import type { MessageHeader } from '@medplum/fhirtypes';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MESSAGE_KEY_SYSTEM, messageKey, outcomeOf } from '../../src/fhir/ledger.ts';
import { readHl7Message, readMessageHeader } from '../../src/hl7/message.ts';
import type { LedgerCounts } from '../../src/inbound/stats.ts';
import { adtA01, adtA08, adtWithoutPatientId, controlIdOf, oruR01, SYSTEMS, testPatient, unsupportedQuery } from '../support/hl7-messages.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import type { HubCliResult } from '../support/hub-cli.ts';
import { hubCliEnv, runHubCli } from '../support/hub-cli.ts';
import { changedCounts, ledgerTotals } from '../support/ledger-counts.ts';


/**
 * `hub hl7 import <file>` (the CLI as a child process, as an operator runs it) against
 * startE2eTarget(): the messages of an HL7 batch file go through the inbound bot's `$execute`,
 * the pipeline MLLP messages take, so each gets exactly one ledger entry with the outcome its ACK
 * says (committed, dead-lettered, rejected); the command shows a running count on stderr, a
 * summary by ACK code and the control ids of the messages not answered AA, and exits 1 for them.
 * A truncated batch is refused whole.
 */
describe('hub hl7 import', () => {
  let target: E2eTarget;
  let client: MedplumClient;
  let env: NodeJS.ProcessEnv;
  let folder: string;

  beforeAll(async () => {
    target = await startE2eTarget();
    client = target.client;
    env = hubCliEnv(target);
    folder = await mkdtemp(join(tmpdir(), 'hub-hl7-import-'));
  });

  afterAll(async () => {
    await target?.stop();
    await rm(folder, { recursive: true, force: true });
  });

  /** Runs `hub hl7 ...` as a child process; stderr is a pipe, as in CI. */
  function hub(args: string[], timeoutMs = 60_000): Promise<HubCliResult> {
    return runHubCli(['hl7', ...args], env, timeoutMs);
  }

  async function writeBatch(name: string, content: string): Promise<string> {
    const path = join(folder, name);
    await writeFile(path, content);
    return path;
  }

  /** An HL7 batch file as partners send it: FHS, BHS, the messages, BTS and FTS with their counts, CRLF line ends. */
  function batchFile(messages: string[]): string {
    return [
      'FHS|^~\\&|ADTSYS|NORTHSIDE|HUB|NORTHSIDE|20240315090000||e2e-batch.hl7',
      'BHS|^~\\&|ADTSYS|NORTHSIDE|HUB|NORTHSIDE|20240315090000||||B1',
      ...messages.map((m) => m.replaceAll('\r', '\r\n')),
      `BTS|${messages.length}`,
      'FTS|1',
      '',
    ].join('\r\n');
  }

  async function ledgerOf(er7: string): Promise<WithId<MessageHeader>[]> {
    const header = readMessageHeader(readHl7Message(er7));
    return client.searchResources('MessageHeader', { _tag: `${MESSAGE_KEY_SYSTEM}|${messageKey(header)}` });
  }

  const totals = (): Promise<LedgerCounts> => ledgerTotals(client);
  const changed = changedCounts;

  test('a batch file: one ledger entry per message as over MLLP, a running count, the summary by ACK code, exit 1 for the dead letter', async () => {
    const p = testPatient('Abernathy', 'Rosalind');
    const deadLettered = adtWithoutPatientId(testPatient('Fairweather', 'Ines'));
    const unsupported = unsupportedQuery();
    const messages = [adtA01(p), oruR01(p), deadLettered, adtA08(p), unsupported];
    const file = await writeBatch('batch.hl7', batchFile(messages));
    const before = await totals();

    const run = await hub(['import', file]);
    expect(run.code, run.stdout + run.stderr).toBe(1);

    // The running count went to stderr (a pipe: plain lines, the last one with the counts by ACK).
    expect(run.stderr).toMatch(/^hl7 import: 5\/5 in \S+: AA 3, AE 1, AR 1$/m);
    expect(run.stdout).toContain('Importing 5 message(s) through the bot hl7-inbound (utf-8), 1 at a time');
    // FHS and BHS are lines 1 and 2, the A01 has 8 segments and the ORU 10: the third message's MSH is line 21.
    expect(run.stdout).toContain(`message 3 (line 21) MSH-10 ${controlIdOf(deadLettered)}: AE (ERR 101 at PID-3)`);
    expect(run.stdout).toMatch(new RegExp(`message 5 \\(line \\d+\\) MSH-10 ${controlIdOf(unsupported)}: AR \\(ERR 200 at MSH-9\\)`));
    expect(run.stdout).toContain('Imported 5 message(s): AA 3, AE 1, AR 1 (AE: dead-lettered, AR: rejected; see hub hl7 dead-letters and hub hl7 stats)');
    // Only the two failures are listed, by control id: the committed ones are not named.
    expect(run.stdout).not.toContain(controlIdOf(messages[0]));
    for (const output of [run.stdout, run.stderr]) {
      expect(output).not.toContain(p.family);
      expect(output).not.toContain(p.mrn);
      expect(output).not.toContain('Fairweather');
    }

    // Exactly one ledger entry per message, with the outcome its ACK said.
    const outcomes = await Promise.all(messages.map(async (m) => (await ledgerOf(m)).map((e) => outcomeOf(e))));
    expect(outcomes).toEqual([['committed'], ['committed'], ['dead-letter'], ['committed'], ['rejected']]);
    expect(changed(await totals(), before)).toEqual({ received: 5, committed: 3, deadLettered: 1, rejected: 1 });

    // The data is written as for an MLLP message: the A08's new address on the patient, the lab results.
    const [patient] = await client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` });
    expect(patient.address?.[0]?.line).toEqual(['48 Elm Ave', 'Apt 2']);
    expect(await client.searchResources('Observation', { subject: `Patient/${patient.id}` })).toHaveLength(4);

    // The dead letter is in the operator's list, like any other.
    const letters = await hub(['dead-letters', '--limit', '1000']);
    const [deadEntry] = await ledgerOf(deadLettered);
    expect(letters.stdout).toContain(`MessageHeader/${deadEntry.id}`);
  });

  test('plain concatenated messages through a named channel, --parallel 3: all AA, exit 0; importing again only adds duplicates', async () => {
    // The four admissions share a ward and a payor no message named before: the parallel
    // messages race to create them, and the writer resolves the race (it reads history, which the
    // inbound bots' policies allow).
    const ward = 'IMP' + Date.now().toString(36).toUpperCase();
    const patients = [testPatient('Lindqvist', 'Maren'), testPatient('Osei', 'Kwame'), testPatient('Duarte', 'Ines'), testPatient('Nakamura', 'Aiko')];
    const messages = patients.map((p) => adtA01(p).replace('4W^401^A^NSH', `${ward}^401^A^NSH`).replace('|BCBSIL|', `|${ward}PAY|`));
    // No batch header: messages one after another, LF line ends.
    const file = await writeBatch('plain.hl7', messages.map((m) => m.replaceAll('\r', '\n')).join('\n') + '\n');
    const before = await totals();

    const run = await hub(['import', file, '--parallel', '3', '--channel', 'northside-adt']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain('Importing 4 message(s) through the channel northside-adt (utf-8), 3 at a time');
    expect(run.stdout).toContain('Imported 4 message(s): AA 4, AE 0, AR 0');
    expect(run.stderr).toMatch(/^hl7 import: 4\/4 in \S+: AA 4, AE 0, AR 0$/m);
    const wards = (await client.searchResources('Location', { _count: '1000' })).filter((l) => JSON.stringify(l.identifier ?? []).includes(ward));
    expect(wards).toHaveLength(1);
    const afterFirst = await totals();
    expect(changed(afterFirst, before)).toEqual({ received: 4, committed: 4 });
    for (const p of patients) {
      const [patient] = await client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` });
      expect(patient.name?.[0]?.family).toBe(p.family);
    }

    const again = await hub(['import', file, '--channel', 'northside-adt']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(changed(await totals(), afterFirst)).toEqual({ received: 4, committed: 4, duplicates: 4 });
  });

  test('a truncated batch is refused whole: nothing is sent, the ledger does not change', async () => {
    const p = testPatient('Marchetti', 'Livia');
    const messages = [adtA01(p), adtA08(p)];
    // The transfer stopped after the first message: BTS and FTS still say what was meant to come.
    const full = batchFile(messages);
    const truncated = full.replace(messages[1].replaceAll('\r', '\r\n') + '\r\n', '');
    const file = await writeBatch('truncated.hl7', truncated);
    const before = await totals();

    const run = await hub(['import', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('Not imported: the file is not an intact HL7 file (1 problem(s)); no message was sent');
    expect(run.stderr).toMatch(/BTS-1 says 2 messages, the batch holds 1/);
    expect(changed(await totals(), before)).toEqual({});
    expect(await ledgerOf(messages[0])).toHaveLength(0);

    const missing = await hub(['import', join(folder, 'Marchetti-no-such-file.hl7')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('The file cannot be read (ENOENT)');
    expect(missing.stderr).not.toContain('Marchetti');

    const usage = await hub(['import']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('Give the file to import');
  });
});
