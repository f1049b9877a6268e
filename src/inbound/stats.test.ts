import type { WithId } from '@medplum/core';
import type { MessageHeader } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, test } from 'vitest';
import { useLocalAdmin } from '../../test/support/local-admin.ts';
import type { LedgerDetails } from '../fhir/ledger.ts';
import { buildLedgerEntry, markResolved } from '../fhir/ledger.ts';
import type { MessageHeaderInfo } from '../hl7/message.ts';
import type { LedgerCounts } from './stats.ts';
import { controlIdOf, invariantHolds, ledgerStats, listDeadLetters, senderLabel } from './stats.ts';

const admin = useLocalAdmin();

function header(facility: string, application: string, type: string, controlId: string): MessageHeaderInfo {
  const [messageCode, triggerEvent] = type.split('^');
  return {
    sendingApplication: application,
    sendingFacility: facility,
    receivingApplication: 'HUB',
    receivingFacility: 'HUB',
    dateTime: '20240101120000',
    messageCode,
    triggerEvent,
    messageStructure: '',
    controlId,
    processingId: 'P',
    version: '2.5.1',
    characterSet: '',
  };
}

async function record(h: MessageHeaderInfo, details: LedgerDetails): Promise<WithId<MessageHeader>> {
  return admin.medplum.createResource(buildLedgerEntry(h, details));
}

const zero: LedgerCounts = { received: 0, committed: 0, rejected: 0, deadLettered: 0, resolved: 0, duplicates: 0, replays: 0 };

// The runtime is shared: each test writes under senders of its own and looks only at those.
function sendersOf(stats: Awaited<ReturnType<typeof ledgerStats>>, facility: string): Record<string, LedgerCounts> {
  return Object.fromEntries(
    stats.senders
      .filter((s) => senderLabel(s.sender).startsWith(facility + '/'))
      .map(({ sender, ...counts }) => [senderLabel(sender), counts])
  );
}

describe('ledgerStats', () => {
  test('an empty ledger counts nothing and the invariant holds', async () => {
    const stats = await ledgerStats(admin.medplum, { since: new Date(Date.now() + 3600_000).toISOString() });
    expect(stats.total).toEqual(zero);
    expect(stats.senders).toEqual([]);
    expect(stats.invariantHolds).toBe(true);
  });

  test('counts every outcome per sender and in total, across pages', async () => {
    const fac = 'F' + randomUUID().slice(0, 8);
    const adt = (ctl: string): MessageHeaderInfo => header(fac, 'ADTSYS', 'ADT^A01', ctl);
    const lab = (ctl: string): MessageHeaderInfo => header(fac, 'LABSYS', 'ORU^R01', ctl);

    // ADT: two commits, one duplicate of the first, one rejection, one open dead letter, and a
    // dead letter resolved by a replay; plus a failed replay of the open one.
    const first = await record(adt('1'), { outcome: 'committed', ackCode: 'AA', focus: ['Patient/x'], contentHash: 'h1' });
    await record(adt('2'), { outcome: 'committed', ackCode: 'AA', contentHash: 'h2' });
    await record(adt('1'), { outcome: 'committed', ackCode: 'AA', duplicateOf: { reference: `MessageHeader/${first.id}` }, contentHash: 'h1' });
    await record(adt('3'), { outcome: 'rejected', ackCode: 'AR', error: 'MSH-9 (200): Unsupported message type ADT^Z99' });
    const open = await record(adt('4'), { outcome: 'dead-letter', ackCode: 'AE', error: 'PID-3 (101): PID-3 has no identifier' });
    const fixed = await record(adt('5'), { outcome: 'dead-letter', ackCode: 'AE', error: 'Write failed' });
    const replay = await record(adt('5'), { outcome: 'committed', ackCode: 'AA', replayOf: { reference: `MessageHeader/${fixed.id}` } });
    await markResolved(admin.medplum, fixed, { reference: `MessageHeader/${replay.id}` });
    await record(adt('4'), { outcome: 'dead-letter', ackCode: 'AE', error: 'still wrong', replayOf: { reference: `MessageHeader/${open.id}` } });
    // LAB: one commit.
    await record(lab('9'), { outcome: 'committed', ackCode: 'AA' });

    const stats = await ledgerStats(admin.medplum, { pageSize: 3 });
    expect(sendersOf(stats, fac)).toEqual({
      [`${fac}/ADTSYS`]: { received: 6, committed: 3, rejected: 1, deadLettered: 1, resolved: 1, duplicates: 1, replays: 2 },
      [`${fac}/LABSYS`]: { ...zero, received: 1, committed: 1 },
    });
    expect(stats.invariantHolds).toBe(true);
    expect(invariantHolds(stats.total)).toBe(true);
    // The resolved entry was updated while it stayed in the result set: counted once.
    expect(stats.total.received).toBe(stats.senders.reduce((n, s) => n + s.received, 0));
  });

  test('since counts messages received from then on, by reception time (not by when a dead letter was resolved)', async () => {
    const fac = 'S' + randomUUID().slice(0, 8);
    const h = (ctl: string): MessageHeaderInfo => header(fac, 'ADTSYS', 'ADT^A08', ctl);
    await record(h('old-commit'), { outcome: 'committed', ackCode: 'AA' });
    const oldDead = await record(h('old-dead'), { outcome: 'dead-letter', ackCode: 'AE', error: 'x' });
    await sleep(30);
    const cutoff = new Date().toISOString();
    await sleep(30);
    await record(h('new-commit'), { outcome: 'committed', ackCode: 'AA' });
    await record(h('new-dead'), { outcome: 'dead-letter', ackCode: 'AE', error: 'y' });
    // The old dead letter is replayed and resolved after the cutoff: its reception stays before it.
    const replay = await record(h('old-dead'), { outcome: 'committed', ackCode: 'AA', replayOf: { reference: `MessageHeader/${oldDead.id}` } });
    await markResolved(admin.medplum, oldDead, { reference: `MessageHeader/${replay.id}` });

    const recent = sendersOf(await ledgerStats(admin.medplum, { since: cutoff }), fac);
    expect(recent[`${fac}/ADTSYS`]).toEqual({ ...zero, received: 2, committed: 1, deadLettered: 1, replays: 1 });
    const all = sendersOf(await ledgerStats(admin.medplum), fac);
    expect(all[`${fac}/ADTSYS`]).toEqual({ ...zero, received: 4, committed: 2, deadLettered: 1, resolved: 1, replays: 1 });
    // A date without time is midnight UTC.
    const byDate = await ledgerStats(admin.medplum, { since: '2000-01-01' });
    expect(byDate.since).toBe('2000-01-01T00:00:00.000Z');
    await expect(ledgerStats(admin.medplum, { since: 'yesterday' })).rejects.toThrow(/not an ISO 8601/);
  });
});

describe('listDeadLetters', () => {
  test('lists open dead letters oldest first, without replays or resolved ones, up to the limit', async () => {
    const fac = 'D' + randomUUID().slice(0, 8);
    const a = await record(header(fac, 'EHR', 'ORM^O01', 'ctl-a'), { outcome: 'dead-letter', ackCode: 'AE', error: 'ORC-2 (101): ORC-2 is missing' });
    const b = await record(header(fac, 'EHR', 'SIU^S12', 'ctl^b'), { outcome: 'dead-letter', ackCode: 'AE', error: 'SCH-1 (101): SCH-1 is missing' });
    const c = await record(header(fac, 'EHR', 'MDM^T02', 'ctl-c'), { outcome: 'dead-letter', ackCode: 'AE', error: 'z' });
    const replay = await record(header(fac, 'EHR', 'MDM^T02', 'ctl-c'), { outcome: 'committed', ackCode: 'AA', replayOf: { reference: `MessageHeader/${c.id}` } });
    await markResolved(admin.medplum, c, { reference: `MessageHeader/${replay.id}` });
    await record(header(fac, 'EHR', 'ORM^O01', 'ctl-a'), { outcome: 'dead-letter', ackCode: 'AE', error: 'again', replayOf: { reference: `MessageHeader/${a.id}` } });

    const mine = (await listDeadLetters(admin.medplum, { pageSize: 2 })).filter((d) => senderLabel(d.sender).startsWith(fac + '/'));
    expect(mine).toEqual([
      { id: a.id, received: a.meta?.lastUpdated, sender: a.source?.endpoint, type: 'ORM^O01', controlId: 'ctl-a', error: 'ORC-2 (101): ORC-2 is missing' },
      { id: b.id, received: b.meta?.lastUpdated, sender: b.source?.endpoint, type: 'SIU^S12', controlId: 'ctl^b', error: 'SCH-1 (101): SCH-1 is missing' },
    ]);
    expect(senderLabel(mine[0].sender)).toBe(`${fac}/EHR`);

    const all = await listDeadLetters(admin.medplum);
    const limited = await listDeadLetters(admin.medplum, { limit: 1, pageSize: 1 });
    expect(limited).toEqual(all.slice(0, 1));
    expect(await listDeadLetters(admin.medplum, { limit: 0 })).toEqual([]);
  });

  test('controlIdOf reads MSH-10 from the key tag', () => {
    const entry = buildLedgerEntry(header('NORTHSIDE', 'ADT SYS', 'ADT^A01', 'MSG 00042'), { outcome: 'committed', ackCode: 'AA' });
    expect(controlIdOf(entry)).toBe('MSG_00042');
  });
});
