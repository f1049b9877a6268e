import type { MessageHeader, Task } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { LedgerExtension, MESSAGE_OUTCOME_SYSTEM, MESSAGE_REPLAY_TAG } from '../fhir/ledger.ts';
import { TASK_OUTCOME_SYSTEM } from '../metriport/task-outcome.ts';
import { DELIVERY_STATE_SYSTEM } from '../outbound/queue.ts';
import { FILE_OUTCOME_SYSTEM } from '../sftp/ledger.ts';
import type { ChannelStatus, ItemState, LedgerItem } from './status-model.ts';
import {
  bucketItems,
  countItems,
  countsAddUp,
  countsFromLedger,
  hl7Item,
  lastErrorOf,
  metriportTaskState,
  oldestAgeSeconds,
  queueTaskState,
  sanitizeError,
  sftpTaskState,
  statusWindow,
  taskItem,
  totalOf,
} from './status-model.ts';

const HOUR = 3600_000;
const NOW = Date.parse('2025-03-10T12:30:00Z');

function item(state: ItemState, received: number, extra: Partial<LedgerItem> = {}): LedgerItem {
  return { channel: 'c', received, changed: received, state, ...extra };
}

function task(status: Task['status'], coding?: { system: string; code: string }, text?: string, authoredOn = '2025-03-10T11:15:00Z'): Task {
  return {
    resourceType: 'Task',
    status,
    intent: 'order',
    authoredOn,
    ...(coding || text ? { businessStatus: { ...(coding ? { coding: [coding] } : {}), ...(text ? { text } : {}) } } : {}),
  };
}

describe('status window and buckets', () => {
  test('the window ends with the bucket holding now, aligned to the bucket size', () => {
    const window = statusWindow(NOW, 3600, 24);
    expect(new Date(window.start).toISOString()).toBe('2025-03-09T13:00:00.000Z');
    expect(window.start + window.buckets * window.bucketMs).toBe(Date.parse('2025-03-10T13:00:00Z'));
    // A refresh a few minutes later draws the same buckets.
    expect(statusWindow(NOW + 20 * 60_000, 3600, 24).start).toBe(window.start);
  });

  test('items are bucketed by reception time; errors are the items that did not go through at once', () => {
    const window = statusWindow(NOW, 3600, 3);
    const buckets = bucketItems(
      [
        item('committed', NOW),
        item('dead-letter', NOW - 1000),
        item('resolved', NOW - HOUR),
        item('delivered', NOW - HOUR),
        item('retrying', NOW - 2 * HOUR),
        item('committed', NOW - 3 * HOUR), // before the window
        item('pending', window.start + 3 * HOUR), // after it
      ],
      window
    );
    expect(buckets.map((b) => [b.start, b.throughput, b.errors])).toEqual([
      ['2025-03-10T10:00:00.000Z', 1, 1],
      ['2025-03-10T11:00:00.000Z', 2, 1],
      ['2025-03-10T12:00:00.000Z', 2, 1],
    ]);
  });
});

describe('counts', () => {
  test('each item counts once, in its state, when received since the lower bound; the counts add up', () => {
    const states: ItemState[] = ['committed', 'rejected', 'dead-letter', 'resolved', 'delivered', 'retrying', 'pending', 'pending'];
    const counts = countItems([...states.map((s) => item(s, NOW)), item('committed', NOW - 2 * HOUR)], NOW - HOUR);
    expect(counts).toEqual({ received: 8, committed: 1, rejected: 1, deadLettered: 1, resolved: 1, delivered: 1, retrying: 1, pending: 2 });
    expect(countsAddUp(counts)).toBe(true);
    expect(countsAddUp({ ...counts, received: 9 })).toBe(false);
  });

  test('HL7 ledger statistics become channel counts (duplicates and replays are not receptions of their own)', () => {
    const counts = countsFromLedger({ received: 7, committed: 4, rejected: 1, deadLettered: 1, resolved: 1, duplicates: 2, replays: 3 });
    expect(counts).toEqual({ received: 7, committed: 4, rejected: 1, deadLettered: 1, resolved: 1, delivered: 0, retrying: 0, pending: 0 });
    expect(countsAddUp(counts)).toBe(true);
  });

  test('the total sums counts and buckets, keeps the oldest pending age and the newest error', () => {
    const window = statusWindow(NOW, 3600, 2);
    const channel = (key: string, received: number, age: number | null, error: string | null, time: string): ChannelStatus => ({
      kind: 'partner',
      key,
      name: key,
      counts: { ...countItems([item('delivered', NOW)], 0), received, delivered: received },
      oldestPendingAgeSeconds: age,
      lastError: error ? { time, text: error } : null,
      buckets: bucketItems([item('delivered', NOW), item('retrying', NOW - HOUR)], window),
    });
    const total = totalOf([channel('a', 2, 30, 'old', '2025-03-10T10:00:00.000Z'), channel('b', 3, null, 'new', '2025-03-10T11:00:00.000Z')], window);
    expect(total.counts.received).toBe(5);
    expect(total.counts.delivered).toBe(5);
    expect(total.buckets.map((b) => [b.throughput, b.errors])).toEqual([
      [2, 2],
      [2, 0],
    ]);
    expect(total.oldestPendingAgeSeconds).toBe(30);
    expect(total.lastError?.text).toBe('new');
    expect(total.kind).toBe('total');
  });

  test('oldest pending age in whole seconds; none when nothing is pending', () => {
    expect(oldestAgeSeconds([NOW - 90_500, NOW - 1000], NOW)).toBe(90);
    expect(oldestAgeSeconds([], NOW)).toBeNull();
    expect(oldestAgeSeconds([Number.NaN], NOW)).toBeNull();
  });

  test('the last error is the newest item with one', () => {
    expect(lastErrorOf([item('committed', NOW)])).toBeNull();
    const last = lastErrorOf([item('dead-letter', NOW - HOUR, { error: 'older' }), item('rejected', NOW - 2 * HOUR, { changed: NOW, error: 'newer' })]);
    expect(last).toEqual({ time: new Date(NOW).toISOString(), text: 'newer' });
  });
});

describe('error texts', () => {
  test('quoted values are hidden, the text is one bounded line', () => {
    expect(sanitizeError(`PID-7 (102): '19800102' is not a date;\n "Rivera" unknown`)).toBe(`PID-7 (102): '…' is not a date; "…" unknown`);
    expect(sanitizeError('x'.repeat(1000)).length).toBe(300);
  });
});

describe('HL7 ledger entries', () => {
  const entry = (outcome: string, extra: Partial<MessageHeader> = {}): MessageHeader => ({
    resourceType: 'MessageHeader',
    meta: { lastUpdated: '2025-03-10T12:00:00Z', tag: [{ system: MESSAGE_OUTCOME_SYSTEM, code: outcome }] },
    eventCoding: { code: 'A01' },
    source: { endpoint: 'https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/ADTSYS' },
    extension: [{ url: LedgerExtension.error, valueString: "PID-7 (102): '1980x' is not a date" }],
    ...extra,
  });

  test('a reception becomes an item of its sender with its outcome and sanitised error', () => {
    const received = Date.parse('2025-03-10T11:00:00Z');
    expect(hl7Item(entry('dead-letter'), received)).toEqual({
      channel: 'hl7:https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/ADTSYS',
      received,
      changed: Date.parse('2025-03-10T12:00:00Z'),
      state: 'dead-letter',
      error: "PID-7 (102): '…' is not a date",
    });
    // Resolved by a replay since: received as an error, but no longer the sender's last error.
    expect(hl7Item(entry('resolved'), received)).toMatchObject({ state: 'resolved' });
    expect(hl7Item(entry('resolved'), received)?.error).toBeUndefined();
  });

  test('replays and entries without an outcome are not receptions', () => {
    const replay = entry('committed');
    replay.meta?.tag?.push({ ...MESSAGE_REPLAY_TAG });
    expect(hl7Item(replay, NOW)).toBeUndefined();
    expect(hl7Item({ ...entry('x'), meta: { tag: [] } }, NOW)).toBeUndefined();
  });
});

describe('Task ledgers', () => {
  test('Metriport: processed is committed, unreadable rejected, other failures dead letters, the rest pending', () => {
    expect(metriportTaskState(task('completed', { system: TASK_OUTCOME_SYSTEM, code: 'merged' }))).toEqual({ state: 'committed' });
    expect(metriportTaskState(task('failed', { system: TASK_OUTCOME_SYSTEM, code: 'unreadable' }, 'no meta')).state).toBe('rejected');
    expect(metriportTaskState(task('failed', { system: TASK_OUTCOME_SYSTEM, code: 'error' }, 'download failed'))).toEqual({ state: 'dead-letter', error: 'error: download failed' });
    for (const status of ['requested', 'in-progress', 'on-hold'] as const) {
      expect(metriportTaskState(task(status)).state).toBe('pending');
    }
  });

  test('SFTP files: processed committed, unreadable rejected, partly processed dead letters, stopped on an error retrying', () => {
    expect(sftpTaskState(task('completed', { system: FILE_OUTCOME_SYSTEM, code: 'duplicate' })).state).toBe('committed');
    expect(sftpTaskState(task('failed', { system: FILE_OUTCOME_SYSTEM, code: 'rejected' })).state).toBe('rejected');
    expect(sftpTaskState(task('failed', { system: FILE_OUTCOME_SYSTEM, code: 'partly-processed' }, '2 of 10 rows failed'))).toEqual({
      state: 'dead-letter',
      error: 'partly-processed: 2 of 10 rows failed',
    });
    expect(sftpTaskState(task('failed', { system: FILE_OUTCOME_SYSTEM, code: 'error' })).state).toBe('retrying');
    expect(sftpTaskState(task('in-progress')).state).toBe('pending');
  });

  test('queues (partners, labs): delivered, dead letter, retrying after a failed attempt, pending otherwise', () => {
    expect(queueTaskState(task('completed', { system: DELIVERY_STATE_SYSTEM, code: 'delivered' })).state).toBe('delivered');
    expect(queueTaskState(task('failed', { system: DELIVERY_STATE_SYSTEM, code: 'dead-letter' }, 'not delivered within the retry window'))).toEqual({
      state: 'dead-letter',
      error: 'dead-letter: not delivered within the retry window',
    });
    // An order that could not be built has a text only.
    expect(queueTaskState(task('failed', undefined, 'not sendable: no placer number'))).toEqual({ state: 'dead-letter', error: 'not sendable: no placer number' });
    expect(queueTaskState(task('requested', { system: DELIVERY_STATE_SYSTEM, code: 'retrying' }, 'attempt 2 failed: HTTP 503'))).toEqual({
      state: 'retrying',
      error: 'attempt 2 failed: HTTP 503',
    });
    expect(queueTaskState(task('requested', { system: DELIVERY_STATE_SYSTEM, code: 'replayed' })).state).toBe('pending');
    expect(queueTaskState(task('requested')).state).toBe('pending');
  });

  test('a Task item is received at authoredOn and changed at lastModified', () => {
    const t = { ...task('failed', undefined, 'x', '2025-03-10T09:00:00Z'), lastModified: '2025-03-10T10:00:00Z' };
    expect(taskItem(t, 'lab:Device/1', queueTaskState(t))).toEqual({
      channel: 'lab:Device/1',
      received: Date.parse('2025-03-10T09:00:00Z'),
      changed: Date.parse('2025-03-10T10:00:00Z'),
      state: 'dead-letter',
      error: 'x',
    });
  });
});
