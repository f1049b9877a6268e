import type { MedplumClient, WithId } from '@medplum/core';
import type { MessageHeader, Organization, Patient, Task } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BOT_NAME_SYSTEM, HL7_SENDER_SYSTEM, SENDER_TIMEZONE_EXTENSION } from '../../src/constants.ts';
import { LedgerExtension, MESSAGE_KEY_SYSTEM, MESSAGE_REPLAY_TAG, messageKey, outcomeOf } from '../../src/fhir/ledger.ts';
import { readHl7Message, readMessageHeader } from '../../src/hl7/message.ts';
import { buildReplayTask } from '../../src/inbound/replay.ts';
import type { LedgerCounts } from '../../src/inbound/stats.ts';
import { adtA01, controlIdOf, SYSTEMS, testPatient, vxuV04 } from '../support/hl7-messages.ts';
import type { TestPatient } from '../support/hl7-messages.ts';
import { ackCode, MllpSender } from '../support/mllp-sender.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import type { HubCliResult } from '../support/hub-cli.ts';
import { hubCliEnv, runHubCli } from '../support/hub-cli.ts';
import { changedCounts, ledgerTotals } from '../support/ledger-counts.ts';
import { waitFor } from '../support/wait.ts';


/**
 * Dead letters and their replay. A message is dead-lettered by a genuine configuration problem
 * (its sender's settings name a time zone that does not exist, so a required time without UTC
 * offset cannot be read) or by an identity conflict in the stored data; the operator fixes the
 * cause and replays, with `hub hl7 replay` (the CLI as a child process) or by creating a replay
 * Task through the FHIR API. The message then commits, the dead letter becomes `resolved` with a
 * link to the replay's ledger entry, the Task completes, replaying again changes nothing, and the
 * ledger statistics add up at every step.
 */
describe('HL7 dead letters and replay', () => {
  let target: E2eTarget;
  let client: MedplumClient;
  let env: NodeJS.ProcessEnv;
  const senders: (MllpSender)[] = [];
  const cleanup: string[] = [];

  beforeAll(async () => {
    target = await startE2eTarget();
    client = target.client;
    env = hubCliEnv(target);
  });

  afterAll(async () => {
    for (const sender of senders) {
      await sender.close();
    }
    for (const reference of cleanup.reverse()) {
      const [type, id] = reference.split('/');
      await client.deleteResource(type as 'Organization', id).catch(() => undefined);
    }
    await target?.stop();
  });

  /**
   * Delivers a message the way a sender would: over MLLP on the channel when the target exposes
   * it, otherwise (a stock target without the agent's address) with `Bot/$execute` on hl7-inbound,
   * the same pipeline.
   */
  async function deliver(channel: string, er7: string): Promise<string> {
    const address = target.kind === 'local' ? target.mllp(channel) : target.mllp('northside-adt');
    if (!('skip' in address)) {
      const sender =
        channel === 'state-iis' && target.kind === 'local'
          ? new MllpSender(address.host, address.port, '2.5.1', 'latin1')
          : new MllpSender(address.host, address.port);
      senders.push(sender);
      const [ack] = await sender.send(er7);
      return ack;
    }
    const ack = await client.executeBot({ system: BOT_NAME_SYSTEM, value: 'hl7-inbound' }, er7, 'x-application/hl7-v2+er7');
    return String(ack);
  }

  /** Runs `hub hl7 ...` as a child process against the target. */
  function hub(args: string[], timeoutMs = 60_000): Promise<HubCliResult> {
    return runHubCli(['hl7', ...args], env, timeoutMs);
  }

  /** A sender of its own whose settings name a time zone that does not exist. */
  async function misconfiguredSender(facility: string): Promise<WithId<Organization>> {
    const org = await client.createResource<Organization>({
      resourceType: 'Organization',
      name: `${facility} (HL7 sender settings, e2e)`,
      identifier: [{ system: HL7_SENDER_SYSTEM, value: facility }],
      extension: [{ url: SENDER_TIMEZONE_EXTENSION, valueString: 'America/Chicgo' }],
    });
    cleanup.push(`Organization/${org.id}`);
    return org;
  }

  async function fixTimeZone(org: WithId<Organization>): Promise<void> {
    await client.updateResource<Organization>({ ...org, extension: [{ url: SENDER_TIMEZONE_EXTENSION, valueString: 'America/Chicago' }] });
  }

  /** A VXU from `facility` whose administration time (RXA-3) has no UTC offset. */
  function vxuFrom(facility: string, p: TestPatient): string {
    return vxuV04(p)
      .replace('|IISAPP|STATEIIS|', `|IISAPP|${facility}|`)
      .replace(/\rRXA\|0\|1\|20240301\|/, '\rRXA|0|1|202403011015|');
  }

  async function ledgerOf(er7: string): Promise<WithId<MessageHeader>[]> {
    const header = readMessageHeader(readHl7Message(er7));
    return client.searchResources('MessageHeader', { _tag: `${MESSAGE_KEY_SYSTEM}|${messageKey(header)}`, _sort: '_lastUpdated' });
  }

  const totals = (): Promise<LedgerCounts> => ledgerTotals(client);
  const changed = changedCounts;

  async function tasksFor(entry: string): Promise<WithId<Task>[]> {
    return client.searchResources('Task', { focus: entry, _sort: '_lastUpdated' });
  }

  async function versions(references: string[]): Promise<Record<string, string | undefined>> {
    const result: Record<string, string | undefined> = {};
    for (const reference of references) {
      result[reference] = (await client.readReference({ reference })).meta?.versionId;
    }
    return result;
  }

  /** Checks a dead letter resolved by a replay and returns the replay's ledger entry. */
  async function expectResolved(deadLetter: string): Promise<WithId<MessageHeader>> {
    const entry = await client.readReference<MessageHeader>({ reference: deadLetter });
    expect(outcomeOf(entry)).toBe('resolved');
    const resolvedBy = entry.extension?.find((e) => e.url === LedgerExtension.resolvedBy)?.valueReference?.reference;
    expect(resolvedBy).toMatch(/^MessageHeader\//);
    const replay = (await client.readReference({ reference: resolvedBy as string })) as WithId<MessageHeader>;
    expect(outcomeOf(replay)).toBe('committed');
    expect(replay.meta?.tag).toContainEqual(expect.objectContaining(MESSAGE_REPLAY_TAG));
    expect(replay.extension?.find((e) => e.url === LedgerExtension.replayOf)?.valueReference?.reference).toBe(deadLetter);
    return replay;
  }

  test('a sender with a misconfigured time zone is dead-lettered; after the fix `hub hl7 replay` commits it, once', async () => {
    const facility = `E2EIIS${testPatient().tag}`;
    const org = await misconfiguredSender(facility);
    const p = testPatient('Okonkwo', 'Ada');
    const msg = vxuFrom(facility, p);
    const start = await totals();

    const ack = await deliver('state-iis', msg);
    expect(ackCode(ack)).toBe('AE');
    expect(ack).toMatch(/\rERR\|\|RXA\^1\^3\|102\^Data type error\^HL70357\|E\|/);
    expect(ack).toContain("unknown time zone 'America/Chicgo'");
    const [deadEntry] = await ledgerOf(msg);
    expect(outcomeOf(deadEntry)).toBe('dead-letter');
    const deadLetter = `MessageHeader/${deadEntry.id}`;
    const received = await totals();
    expect(changed(received, start)).toEqual({ received: 1, deadLettered: 1 });

    // The operator's listing: ids, sender, type, control id and error; no patient data.
    const listing = await hub(['dead-letters', '--limit', '1000']);
    expect(listing.code).toBe(0);
    const line = listing.stdout.split('\n').find((l) => l.startsWith(deadLetter)) as string;
    expect(line).toContain(`${facility}/IISAPP`);
    expect(line).toContain('VXU^V04');
    expect(line).toContain(controlIdOf(msg));
    expect(line).toContain('RXA-3 (102)');
    expect(listing.stdout).not.toContain(p.mrn);
    expect(listing.stdout).not.toContain(p.family);
    expect(listing.stdout).not.toContain('202403011015');

    // Replayed before the fix: it fails again, the exit code says so, the dead letter stays open.
    const early = await hub(['replay', deadLetter, '--timeout', '30']);
    expect(early.code, early.stdout + early.stderr).toBe(1);
    expect(early.stdout).toMatch(new RegExp(`${deadLetter} .*: Task/[\\w-]+: failed: replay answered AE \\(dead-letter\\)`));
    expect(outcomeOf(await client.readReference<MessageHeader>({ reference: deadLetter }))).toBe('dead-letter');
    const failedReplay = await totals();
    expect(changed(failedReplay, received)).toEqual({ replays: 1 });

    // Fixed, then replayed with the CLI: it commits.
    await fixTimeZone(org);
    const replayRun = await hub(['replay', deadLetter, '--timeout', '30']);
    expect(replayRun.code, replayRun.stdout + replayRun.stderr).toBe(0);
    expect(replayRun.stdout).toMatch(new RegExp(`${deadLetter} .*: Task/[\\w-]+: completed: committed -> MessageHeader/[\\w-]+`));
    expect(replayRun.stdout).toContain('Replayed 1: 1 completed, 0 failed.');
    const replay = await expectResolved(deadLetter);
    const [task] = (await tasksFor(deadLetter)).filter((t) => t.output?.[0]?.valueReference?.reference === `MessageHeader/${replay.id}`);
    expect(task.status).toBe('completed');

    const [patient] = await client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` });
    const [immunization] = await client.searchResources('Immunization', { patient: `Patient/${patient.id}` });
    expect(immunization.occurrenceDateTime).toBe('2024-03-01T10:15:00-06:00');
    expect(replay.focus?.map((f) => f.reference)).toEqual(expect.arrayContaining([`Patient/${patient.id}`, `Immunization/${immunization.id}`]));
    const afterReplay = await totals();
    expect(changed(afterReplay, failedReplay)).toEqual({ deadLettered: -1, resolved: 1, replays: 1 });

    // Replaying again changes nothing.
    const written = await versions((replay.focus ?? []).map((f) => f.reference as string));
    const again = await hub(['replay', deadLetter, '--timeout', '30']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain('completed: nothing to replay: the message is resolved');
    expect(await versions(Object.keys(written))).toEqual(written);
    expect(changed(await totals(), afterReplay)).toEqual({});

    const stats = await hub(['stats']);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(new RegExp(`${facility}/IISAPP\\s+1\\s+0\\s+0\\s+0\\s+1\\s+0\\s+2`));
    expect(stats.stdout).toMatch(/received = committed \+ rejected \+ dead-lettered \+ resolved: (\d+) = \d+ \+ \d+ \+ \d+ \+ \d+ \(holds for every sender\)/);
  });

  test('a replay Task created through the FHIR API replays a dead letter after its configuration is fixed', async () => {
    const facility = `E2EIIS${testPatient().tag}`;
    const org = await misconfiguredSender(facility);
    const p = testPatient('Haddad', 'Omar');
    const msg = vxuFrom(facility, p);
    const start = await totals();
    expect(ackCode(await deliver('state-iis', msg))).toBe('AE');
    const [deadEntry] = await ledgerOf(msg);
    const deadLetter = `MessageHeader/${deadEntry.id}`;
    await fixTimeZone(org);

    const task = await client.createResource(buildReplayTask({ reference: deadLetter }, 'e2e: time zone corrected'));
    const done = await waitFor(
      'the replay Task to finish',
      async () => {
        const current = await client.readResource('Task', task.id);
        return current.status === 'requested' || current.status === 'in-progress' ? undefined : current;
      },
      30_000,
      100
    );
    expect(done.status).toBe('completed');
    expect(done.businessStatus?.text).toBe('committed');
    const replay = await expectResolved(deadLetter);
    expect(done.output?.[0]?.valueReference?.reference).toBe(`MessageHeader/${replay.id}`);
    const [patient] = await client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` });
    expect(await client.searchResources('Immunization', { patient: `Patient/${patient.id}` })).toHaveLength(1);
    const afterReplay = await totals();
    expect(changed(afterReplay, start)).toEqual({ received: 1, resolved: 1, replays: 1 });

    // A second Task for the same entry, and one for the replay's own entry: nothing to replay.
    const written = await versions((replay.focus ?? []).map((f) => f.reference as string));
    for (const focus of [deadLetter, `MessageHeader/${replay.id}`]) {
      const again = await client.createResource(buildReplayTask({ reference: focus }));
      const finished = await waitFor('the second replay Task', async () => {
        const current = await client.readResource('Task', again.id);
        return current.status === 'requested' || current.status === 'in-progress' ? undefined : current;
      }, 30_000, 100);
      expect(finished.status).toBe('completed');
      expect(finished.businessStatus?.text).toMatch(/^nothing to replay: the message is (resolved|committed)$/);
    }
    expect(await versions(Object.keys(written))).toEqual(written);
    expect(changed(await totals(), afterReplay)).toEqual({});
  });

  test('an identity conflict resolved by hand (a duplicate patient merged) is replayed with `hub hl7 replay --all`', async (ctx) => {
    ctx.skip(target.kind === 'stock', 'stock target: --all would also replay the dead letters of other users of the server');
    // Two registrations of one person: the MRN from the ADT feed, the enterprise id from another system.
    const p = testPatient('Castellanos', 'Lucia');
    const empi = `EMPI${p.tag}`;
    expect(ackCode(await deliver('northside-adt', adtA01(p)))).toBe('AA');
    const [registered] = await client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` });
    const duplicate = await client.createResource<Patient>({
      resourceType: 'Patient',
      active: true,
      identifier: [{ system: 'https://northside.example.org/fhir/sid/empi', value: empi }],
      name: [{ family: p.family, given: [p.given] }],
    });
    const start = await totals();

    // An update naming both identifiers matches both patients: AE, dead-lettered.
    const msg = adtA01(p, { event: 'A08', time: '20240316120000' }).replace(
      `|${p.mrn}^^^NSH^MR|`,
      `|${p.mrn}^^^NSH^MR~${empi}^^^EMPI^PI|`
    );
    const ack = await deliver('northside-adt', msg);
    expect(ackCode(ack)).toBe('AE');
    expect(ack).toContain('match 2 stored resources');
    const [deadEntry] = await ledgerOf(msg);
    const deadLetter = `MessageHeader/${deadEntry.id}`;
    expect(changed(await totals(), start)).toEqual({ received: 1, deadLettered: 1 });

    // Resolved by hand: the duplicate is merged into the registered patient.
    const merged = await client.updateResource<Patient>({
      ...duplicate,
      active: false,
      link: [{ other: { reference: `Patient/${registered.id}` }, type: 'replaced-by' }],
    });
    const open = await hub(['dead-letters']);
    expect(open.stdout).toContain(deadLetter);
    const run = await hub(['replay', '--all', '--timeout', '30']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain(`${deadLetter} (NORTHSIDE/ADTSYS ADT^A08 ${controlIdOf(msg)})`);
    await expectResolved(deadLetter);
    const survivor = await client.readResource('Patient', registered.id);
    expect(survivor.identifier).toContainEqual(expect.objectContaining({ value: empi }));
    expect((await client.readResource('Patient', merged.id)).meta?.versionId).toBe(merged.meta?.versionId);
    expect((await hub(['dead-letters'])).stdout).toContain('No open dead letters.');
    expect(changed(await totals(), start)).toEqual({ received: 1, resolved: 1, replays: 1 });
  });

  test('the CLI refuses bad arguments and unknown entries', async () => {
    const usage = await hub(['replay']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('Give the MessageHeader ids to replay, or --all');
    const unknown = await hub(['replay', 'MessageHeader/00000000-0000-4000-8000-000000000000', '--timeout', '5']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('MessageHeader/00000000-0000-4000-8000-000000000000: cannot be read');
    const badLimit = await hub(['dead-letters', '--limit', 'x']);
    expect(badLimit.code).toBe(2);
  });
});
