import type { MessageHeader, Task } from '@medplum/fhirtypes';
import { clip, hideValues } from '../fhir/strings.ts';
import { LedgerExtension, outcomeOf } from '../fhir/ledger.ts';
import type { LedgerCounts } from '../inbound/stats.ts';
import { isReplay } from '../inbound/stats.ts';
import { TASK_OUTCOME_SYSTEM, TaskOutcome } from '../metriport/task-outcome.ts';
import { DELIVERY_STATE_SYSTEM } from '../outbound/queue.ts';
import { FILE_OUTCOME_SYSTEM, FileOutcome } from '../sftp/ledger.ts';

/**
 * The status model of `hub status` and the status page, and the pure functions that build it from
 * ledger items. Every channel of the hub keeps a ledger in FHIR: HL7 messages as MessageHeaders
 * (src/fhir/ledger.ts), Metriport webhook messages, SFTP files, partner deliveries and lab orders
 * as Tasks. Each item there is reduced to a {@link LedgerItem} (channel, reception time, state,
 * sanitised error) and counted here; nothing of an item's content (payloads, message text, file
 * names) is kept.
 */

/** The kinds of channel. */
export type ChannelKind = 'hl7' | 'metriport' | 'sftp' | 'partner' | 'lab';

/**
 * Where one item of a ledger stands. Each received item is in exactly one state, so the counts
 * add up: received = committed + rejected + deadLettered + resolved + delivered + retrying + pending.
 */
export type ItemState = 'committed' | 'rejected' | 'dead-letter' | 'resolved' | 'delivered' | 'retrying' | 'pending';

/** Counts of one channel (or all of them) over the items received in the status window. */
export interface ChannelCounts {
  /** Items that entered the channel: messages, webhook messages, files, events or orders to send. */
  received: number;
  /** Inbound items written to the record (HL7 AA, webhook messages processed, files processed). */
  committed: number;
  /** Inbound items refused as unreadable or unsupported (HL7 AR, unreadable bodies, files nothing could be read from). */
  rejected: number;
  /** Items that failed and wait for an operator: the open dead letters. */
  deadLettered: number;
  /** HL7 messages that were dead letters (or rejected) and were committed later by a replay. */
  resolved: number;
  /** Outbound items the other side acknowledged (partner 2xx, lab AA). */
  delivered: number;
  /** Items whose last attempt failed and that will be tried again by themselves. */
  retrying: number;
  /** Items queued or in progress, not tried yet (or being processed). */
  pending: number;
}

/** Received items and errors in one time bucket (by reception time). */
export interface TimeBucket {
  /** Start of the bucket, ISO 8601. */
  readonly start: string;
  /** Items received in the bucket. */
  throughput: number;
  /** Of those, the ones that were not committed or delivered at once: rejected, dead-lettered, resolved later, retrying. */
  errors: number;
}

/** The last error of a channel. */
export interface ChannelError {
  /** When it was recorded, ISO 8601. */
  readonly time: string;
  /** What happened, with quoted values hidden (no patient data). */
  readonly text: string;
}

/** The status of one channel. */
export interface ChannelStatus {
  /** `total` for the sum of all channels. */
  readonly kind: ChannelKind | 'total';
  /** Stable key: `hl7:<sender endpoint>`, `metriport`, `sftp:<source name>`, `partner:Endpoint/<id>`, `lab:Device/<id>`. */
  readonly key: string;
  /** For people: the HL7 sender `<facility>/<application>`, the partner's or lab's name, the SFTP source's name. */
  readonly name: string;
  readonly counts: ChannelCounts;
  /** Age of the oldest item still queued or in progress (all time), in seconds; null when none. */
  readonly oldestPendingAgeSeconds: number | null;
  readonly lastError: ChannelError | null;
  /** Throughput and errors per bucket over the chart window, oldest first. */
  readonly buckets: TimeBucket[];
}

/** Kinds of dead letter, each with its own replay. */
export type DeadLetterKind = 'hl7-message' | 'metriport-webhook' | 'partner-delivery' | 'lab-order' | 'sftp-file';

/** An open dead letter, without patient data. */
export interface DeadLetterItem {
  readonly kind: DeadLetterKind;
  /** The ledger entry: a MessageHeader id for `hl7-message`, a Task id otherwise. */
  readonly id: string;
  /** The channel's key. */
  readonly channel: string;
  /** When the item was received (or the event happened), ISO 8601. */
  readonly time: string;
  /** What failed, with quoted values hidden. */
  readonly error: string;
  /** Ids only: the HL7 message type and control id, the focus of a delivery, the Metriport message type. */
  readonly detail: string;
  /** Whether the page can replay it (SFTP files are fixed and put back in the folder instead). */
  readonly replayable: boolean;
}

/** A ledger that could not be read (the caller's AccessPolicy, or the server), and why. */
export interface UnavailableSource {
  readonly source: string;
  readonly reason: string;
}

/** What {@link collectStatus} returns: JSON-serialisable. */
export interface HubStatus {
  readonly generatedAt: string;
  /** Counts cover items received at or after this time. */
  readonly since: string;
  /** The chart window: buckets of `bucketSeconds` from `start` to `end`. */
  readonly window: { readonly start: string; readonly end: string; readonly bucketSeconds: number };
  readonly channels: ChannelStatus[];
  /** The sum over the channels; buckets summed too. */
  readonly total: ChannelStatus;
  /** Whether received = committed + rejected + deadLettered + resolved + delivered + retrying + pending for every channel. */
  readonly invariantHolds: boolean;
  /** Open dead letters (all time), oldest first. */
  readonly deadLetters: DeadLetterItem[];
  /** True when there are more open dead letters than listed. */
  readonly deadLettersTruncated: boolean;
  readonly unavailable: UnavailableSource[];
  /** Depths of the stock server's job queues (Redis), when asked for. */
  readonly queueDepth?: QueueDepthStatus;
}

/** Depths of the stock server's BullMQ queues. */
export type QueueDepthStatus =
  | { readonly reachable: true; readonly queues: { readonly name: string; readonly waiting: number; readonly delayed: number; readonly active: number; readonly failed: number }[] }
  | { readonly reachable: false; readonly reason: string };

/** One item of a ledger, reduced to what the status needs. */
export interface LedgerItem {
  readonly channel: string;
  /** Reception time, epoch ms. */
  readonly received: number;
  /** Last change, epoch ms. */
  readonly changed: number;
  readonly state: ItemState;
  /** Sanitised error text, for items that failed. */
  readonly error?: string;
}

/** The chart window. */
export interface StatusWindow {
  /** Start, epoch ms (a multiple of the bucket size). */
  readonly start: number;
  readonly bucketMs: number;
  readonly buckets: number;
}

/** Longest error text kept (the ledger entry has the full text). */
const MAX_ERROR_LENGTH = 300;

/**
 * @param now - The current time, epoch ms.
 * @param bucketSeconds - Bucket size.
 * @param buckets - Number of buckets.
 * @returns The window ending with the bucket that holds `now`, aligned to the bucket size so that
 * successive refreshes draw the same buckets.
 */
export function statusWindow(now: number, bucketSeconds: number, buckets: number): StatusWindow {
  const bucketMs = bucketSeconds * 1000;
  const end = Math.floor(now / bucketMs) * bucketMs + bucketMs;
  return { start: end - buckets * bucketMs, bucketMs, buckets };
}

/** @returns All counts zero. */
export function emptyCounts(): ChannelCounts {
  return { received: 0, committed: 0, rejected: 0, deadLettered: 0, resolved: 0, delivered: 0, retrying: 0, pending: 0 };
}

const STATE_COUNT: Record<ItemState, keyof ChannelCounts> = {
  committed: 'committed',
  rejected: 'rejected',
  'dead-letter': 'deadLettered',
  resolved: 'resolved',
  delivered: 'delivered',
  retrying: 'retrying',
  pending: 'pending',
};

/**
 * @param state - An item's state.
 * @returns True when the item did not go through at once: rejected, dead-lettered, resolved
 * later by a replay, or retrying.
 */
export function isErrorState(state: ItemState): boolean {
  return state === 'rejected' || state === 'dead-letter' || state === 'resolved' || state === 'retrying';
}

/**
 * @param counts - Counts of a channel.
 * @returns True when every received item is in exactly one state.
 */
export function countsAddUp(counts: ChannelCounts): boolean {
  return (
    counts.received ===
    counts.committed + counts.rejected + counts.deadLettered + counts.resolved + counts.delivered + counts.retrying + counts.pending
  );
}

/**
 * Counts items received at or after `since`.
 * @param items - Items of one channel.
 * @param since - Epoch ms.
 * @returns The counts.
 */
export function countItems(items: readonly LedgerItem[], since: number): ChannelCounts {
  const counts = emptyCounts();
  for (const item of items) {
    if (item.received >= since) {
      counts.received++;
      counts[STATE_COUNT[item.state]]++;
    }
  }
  return counts;
}

/**
 * @param counts - The counts the HL7 ledger statistics give for a sender (src/inbound/stats.ts).
 * @returns The same as channel counts (replays and duplicates are not receptions of their own).
 */
export function countsFromLedger(counts: LedgerCounts): ChannelCounts {
  return {
    ...emptyCounts(),
    received: counts.received,
    committed: counts.committed,
    rejected: counts.rejected,
    deadLettered: counts.deadLettered,
    resolved: counts.resolved,
  };
}

/**
 * @param items - Items of one channel.
 * @param window - The chart window.
 * @returns Throughput and errors per bucket, by reception time.
 */
export function bucketItems(items: readonly LedgerItem[], window: StatusWindow): TimeBucket[] {
  const buckets = emptyBuckets(window);
  for (const item of items) {
    const index = Math.floor((item.received - window.start) / window.bucketMs);
    if (index >= 0 && index < buckets.length) {
      buckets[index].throughput++;
      if (isErrorState(item.state)) {
        buckets[index].errors++;
      }
    }
  }
  return buckets;
}

/**
 * @param window - The chart window.
 * @returns Its buckets, all zero.
 */
export function emptyBuckets(window: StatusWindow): TimeBucket[] {
  return Array.from({ length: window.buckets }, (_, i) => ({ start: new Date(window.start + i * window.bucketMs).toISOString(), throughput: 0, errors: 0 }));
}

/**
 * @param items - Items of one channel (any time).
 * @returns The newest error among them.
 */
export function lastErrorOf(items: readonly LedgerItem[]): ChannelError | null {
  let last: LedgerItem | undefined;
  for (const item of items) {
    if (item.error && (!last || item.changed > last.changed)) {
      last = item;
    }
  }
  return last ? { time: new Date(last.changed).toISOString(), text: last.error as string } : null;
}

/**
 * @param receivedTimes - Reception times (epoch ms) of items still queued or in progress.
 * @param now - The current time, epoch ms.
 * @returns The oldest one's age in whole seconds, or null.
 */
export function oldestAgeSeconds(receivedTimes: readonly number[], now: number): number | null {
  const valid = receivedTimes.filter((t) => Number.isFinite(t));
  return valid.length ? Math.max(0, Math.floor((now - Math.min(...valid)) / 1000)) : null;
}

/**
 * Sums channels (counts and buckets, bucket by bucket).
 * @param channels - Channels over the same window.
 * @param window - The window.
 * @returns The total, as a channel named `total`.
 */
export function totalOf(channels: readonly ChannelStatus[], window: StatusWindow): ChannelStatus {
  const counts = emptyCounts();
  const buckets = emptyBuckets(window);
  let oldest: number | null = null;
  let lastError: ChannelError | null = null;
  for (const channel of channels) {
    for (const key of Object.keys(counts) as (keyof ChannelCounts)[]) {
      counts[key] += channel.counts[key];
    }
    channel.buckets.forEach((b, i) => {
      if (buckets[i]) {
        buckets[i].throughput += b.throughput;
        buckets[i].errors += b.errors;
      }
    });
    if (channel.oldestPendingAgeSeconds !== null && (oldest === null || channel.oldestPendingAgeSeconds > oldest)) {
      oldest = channel.oldestPendingAgeSeconds;
    }
    if (channel.lastError && (!lastError || channel.lastError.time > lastError.time)) {
      lastError = channel.lastError;
    }
  }
  return { kind: 'total', key: 'total', name: 'total', counts, oldestPendingAgeSeconds: oldest, lastError, buckets };
}

/**
 * @param text - An error text from a ledger.
 * @returns The text with quoted values hidden ({@link hideValues}, as `hub hl7 dead-letters`
 * prints it), on one line, cut to a bounded length.
 */
export function sanitizeError(text: string): string {
  const line = hideValues(text).replace(/\s+/g, ' ').trim();
  return clip(line, MAX_ERROR_LENGTH);
}

/**
 * Reduces an HL7 ledger entry to an item of its sender's channel.
 * @param entry - A ledger entry that is not a replay.
 * @param receivedAt - When it was received (its first version's time), epoch ms.
 * @returns The item, or undefined for a replay or an entry without outcome.
 */
export function hl7Item(entry: MessageHeader, receivedAt: number): LedgerItem | undefined {
  // The four ledger outcomes are item states of their own.
  const state: ItemState | undefined = outcomeOf(entry);
  if (!state || isReplay(entry)) {
    return undefined;
  }
  const error = entry.extension?.find((e) => e.url === LedgerExtension.error)?.valueString;
  return {
    channel: hl7ChannelKey(entry.source?.endpoint ?? '(unknown sender)'),
    received: receivedAt,
    changed: Date.parse(entry.meta?.lastUpdated ?? '') || receivedAt,
    state,
    // A message committed later keeps its reception error, but it is no longer the channel's last error.
    ...(error && state !== 'resolved' && state !== 'committed' ? { error: sanitizeError(error) } : {}),
  };
}

/**
 * @param sender - `MessageHeader.source.endpoint` of a ledger entry.
 * @returns The channel key.
 */
export function hl7ChannelKey(sender: string): string {
  return `hl7:${sender}`;
}

/** A Task reduced to its state and error. */
export interface TaskState {
  readonly state: ItemState;
  readonly error?: string;
}

/**
 * A Metriport webhook Task (src/metriport/webhook.ts, process-task.ts): processed (`completed`,
 * whatever the outcome) is committed; an unreadable body is rejected; any other failure is a dead
 * letter to re-drive; `requested`, `in-progress` and `on-hold` (waiting for another message of
 * the same patient) are pending.
 * @param task - The Task.
 * @returns Its state.
 */
export function metriportTaskState(task: Task): TaskState {
  const outcome = codeOf(task, TASK_OUTCOME_SYSTEM);
  if (task.status === 'completed') {
    return { state: 'committed' };
  }
  if (task.status === 'failed') {
    return { state: outcome === TaskOutcome.unreadable ? 'rejected' : 'dead-letter', error: taskError(task, outcome) };
  }
  return { state: 'pending' };
}

/**
 * An SFTP file Task (src/sftp/ledger.ts): processed (or a duplicate of a processed file) is
 * committed; a file nothing could be read from is rejected; a file with rows or messages that
 * failed (moved to the error folder) is a dead letter; a file whose processing stopped on an error
 * is retrying (the next poll takes it again); `in-progress` is pending.
 * @param task - The Task.
 * @returns Its state.
 */
export function sftpTaskState(task: Task): TaskState {
  const outcome = codeOf(task, FILE_OUTCOME_SYSTEM);
  if (task.status === 'completed') {
    return { state: 'committed' };
  }
  if (task.status === 'failed') {
    const state: ItemState = outcome === FileOutcome.rejected ? 'rejected' : outcome === FileOutcome.partlyProcessed ? 'dead-letter' : 'retrying';
    return { state, error: taskError(task, outcome) };
  }
  return { state: 'pending' };
}

/**
 * A queued outbound Task, a partner delivery or a lab order (src/outbound/queue.ts): `completed`
 * is delivered; `failed` is a dead letter (retry window over, refused for good, or an order that
 * could not be built); `requested` after a failed attempt is retrying; anything else is pending.
 * @param task - The Task.
 * @returns Its state.
 */
export function queueTaskState(task: Task): TaskState {
  const state = codeOf(task, DELIVERY_STATE_SYSTEM);
  if (task.status === 'completed') {
    return { state: 'delivered' };
  }
  if (task.status === 'failed') {
    return { state: 'dead-letter', error: taskError(task, state) };
  }
  if (state === 'retrying') {
    return { state: 'retrying', error: taskError(task, undefined) };
  }
  return { state: 'pending' };
}

/**
 * @param task - A ledger Task.
 * @param channel - Its channel's key.
 * @param state - Its state.
 * @returns The item.
 */
export function taskItem(task: Task, channel: string, state: TaskState): LedgerItem {
  const received = taskReceived(task);
  return {
    channel,
    received,
    changed: Date.parse(task.lastModified ?? task.meta?.lastUpdated ?? '') || received,
    state: state.state,
    ...(state.error ? { error: state.error } : {}),
  };
}

/**
 * @param task - A ledger Task.
 * @returns When its item was received (`authoredOn`: the reception, or the event time of a queued
 * item), epoch ms.
 */
export function taskReceived(task: Task): number {
  return Date.parse(task.authoredOn ?? task.meta?.lastUpdated ?? '');
}

function codeOf(task: Task, system: string): string | undefined {
  return task.businessStatus?.coding?.find((c) => c.system === system)?.code;
}

function taskError(task: Task, outcome: string | undefined): string {
  const text = task.businessStatus?.text ? sanitizeError(task.businessStatus.text) : '';
  return [outcome, text].filter(Boolean).join(': ') || task.status;
}
