import type { MedplumClient, WithId } from '@medplum/core';
import type { Bundle, MessageHeader } from '@medplum/fhirtypes';
import { HUB_SID } from '../constants.ts';
import { createdTime } from '../fhir/history.ts';
import type { MessageOutcome } from '../fhir/ledger.ts';
import { LedgerExtension, MESSAGE_KEY_SYSTEM, MESSAGE_OUTCOME_SYSTEM, MESSAGE_REPLAY_TAG, outcomeOf } from '../fhir/ledger.ts';

/**
 * Counts and listings over the message ledger (src/fhir/ledger.ts): one MessageHeader per
 * received message, plus one per replay. Everything here is computed from ledger entries read
 * page by page (`_tag` with the four outcome codes, `_sort=_lastUpdated`, following `next`
 * links): only plain token searches and the server's own paging links are used, so it works the
 * same on the local runtime (offset links) and on a stock server (cursor links, no offset limit).
 * Duplicates are only recognisable from an extension, which no search parameter indexes, so
 * per-tag `_summary=count` queries could not give every figure anyway.
 */

/** Outcome codes of ledger entries, as tagged by {@link MESSAGE_OUTCOME_SYSTEM}. */
const OUTCOMES: readonly MessageOutcome[] = ['committed', 'rejected', 'dead-letter', 'resolved'];

/** Page size of ledger reads (the stock server's maximum `_count` is 1000). */
const PAGE_SIZE = 500;

/** Counts of ledger entries: for one sender or in total. */
export interface LedgerCounts {
  /** Receptions: ledger entries that are not replays. */
  received: number;
  /** Receptions committed (duplicates included). */
  committed: number;
  /** Receptions answered AR (unreadable or unsupported). */
  rejected: number;
  /** Receptions answered AE and not replayed successfully yet: the open dead letters. */
  deadLettered: number;
  /** Receptions that were dead letters (or rejections) and were later replayed successfully. */
  resolved: number;
  /** Committed receptions that repeated an already committed message (nothing written). */
  duplicates: number;
  /** Ledger entries written by replays (not receptions; any outcome). */
  replays: number;
}

/** The counts of one sender. */
export interface SenderLedgerCounts extends LedgerCounts {
  /** The sender as the ledger records it: `MessageHeader.source.endpoint`. */
  readonly sender: string;
}

/** What {@link ledgerStats} returns. */
export interface LedgerStats {
  /** The lower bound of reception times counted, when one was given. */
  readonly since?: string;
  /** Per sender, sorted by sender. */
  readonly senders: SenderLedgerCounts[];
  readonly total: LedgerCounts;
  /**
   * Whether received = committed + rejected + deadLettered + resolved holds for every sender and
   * in total. Every reception has exactly one outcome tag, so it holds unless an entry was
   * edited by hand (two outcome tags, or none of the four).
   */
  readonly invariantHolds: boolean;
}

/** Options of {@link ledgerStats}. */
export interface LedgerStatsOptions {
  /** Count only messages received at or after this time (ISO 8601). */
  readonly since?: string;
  /** Entries per page (default 500; the stock server allows at most 1000). */
  readonly pageSize?: number;
}

/**
 * Counts the ledger per sender and in total ({@link readLedgerEntries}, then {@link countLedger}).
 * @param medplum - A client allowed to search MessageHeader (the hub's admin client).
 * @param options - Time window.
 * @returns The counts.
 */
export async function ledgerStats(medplum: MedplumClient, options: LedgerStatsOptions = {}): Promise<LedgerStats> {
  const entries = await readLedgerEntries(medplum, options);
  return countLedger(entries, { since: options.since, receivedAt: (entry) => ledgerReceivedAt(medplum, entry) });
}

/**
 * Reads the ledger entries of the four outcomes; with `since`, those last updated at or after it,
 * a superset of the messages received since then ({@link countLedger} refines it).
 * @param medplum - A client allowed to search MessageHeader.
 * @param options - Time window and page size.
 * @returns The entries, each once.
 */
export async function readLedgerEntries(medplum: MedplumClient, options: LedgerStatsOptions = {}): Promise<WithId<MessageHeader>[]> {
  const query: Record<string, string> = {
    _tag: OUTCOMES.map((code) => `${MESSAGE_OUTCOME_SYSTEM}|${code}`).join(','),
  };
  if (options.since) {
    query._lastUpdated = `ge${normalizeSince(options.since)}`;
  }
  return readAllEntries(medplum, query, options.pageSize);
}

/**
 * Counts ledger entries per sender and in total. With `since`, an entry counts when its message
 * was received at or after that time ({@link ledgerReceivedAt}).
 * @param entries - Ledger entries.
 * @param options - The time window, and how to learn when an entry was received.
 * @param options.since - Count only messages received at or after this time (ISO 8601).
 * @param options.receivedAt - Reception time of an entry, epoch ms.
 * @returns The counts.
 */
export async function countLedger(
  entries: readonly WithId<MessageHeader>[],
  options: { readonly since?: string; readonly receivedAt: (entry: WithId<MessageHeader>) => Promise<number> }
): Promise<LedgerStats> {
  const since = options.since ? normalizeSince(options.since) : undefined;
  const bySender = new Map<string, SenderLedgerCounts>();
  const total = emptyCounts();
  for (const entry of entries) {
    if (since && (await options.receivedAt(entry)) < Date.parse(since)) {
      continue;
    }
    const sender = senderOf(entry);
    let counts = bySender.get(sender);
    if (!counts) {
      counts = { sender, ...emptyCounts() };
      bySender.set(sender, counts);
    }
    count(counts, entry);
    count(total, entry);
  }
  const senders = [...bySender.values()].sort((a, b) => a.sender.localeCompare(b.sender));
  return {
    ...(since ? { since } : {}),
    senders,
    total,
    invariantHolds: [...senders, total].every(invariantHolds),
  };
}

/**
 * @param counts - Counts of a sender or the total.
 * @returns True when received = committed + rejected + deadLettered + resolved.
 */
export function invariantHolds(counts: LedgerCounts): boolean {
  return counts.received === counts.committed + counts.rejected + counts.deadLettered + counts.resolved;
}

/** An open dead letter, as {@link listDeadLetters} returns it: no patient data. */
export interface DeadLetter {
  /** The ledger entry's id (a MessageHeader). */
  readonly id: string;
  /** When the message was received (the entry's `meta.lastUpdated`; dead letters are never updated). */
  readonly received: string;
  /** `MessageHeader.source.endpoint`. */
  readonly sender: string;
  /** Message type, e.g. `ADT^A01`. */
  readonly type: string;
  /** MSH-10, from the entry's message key tag. */
  readonly controlId: string;
  /** The error recorded with the entry (field, HL7 table 0357 code, text). */
  readonly error: string;
}

/** Options of {@link listDeadLetters}. */
export interface ListDeadLettersOptions {
  /** At most this many (oldest first); all when absent. */
  readonly limit?: number;
  /** Entries per page (default 500). */
  readonly pageSize?: number;
}

/**
 * Lists the open dead letters, oldest first: receptions answered AE that no replay has resolved
 * yet. Entries written by failed replays are not listed (they are not receptions; the original
 * dead letter stays open and is the one to replay).
 * @param medplum - A client allowed to search MessageHeader.
 * @param options - Limit.
 * @returns The dead letters.
 */
export async function listDeadLetters(medplum: MedplumClient, options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
  return (await listDeadLetterEntries(medplum, options)).map(deadLetterOf);
}

/**
 * The ledger entries behind {@link listDeadLetters}, whole (for a replay).
 * @param medplum - A client allowed to search MessageHeader.
 * @param options - Limit.
 * @returns The open dead letters' entries, oldest first.
 */
export async function listDeadLetterEntries(medplum: MedplumClient, options: ListDeadLettersOptions = {}): Promise<WithId<MessageHeader>[]> {
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  if (limit <= 0) {
    return [];
  }
  const result = new Map<string, WithId<MessageHeader>>();
  const query = { _tag: `${MESSAGE_OUTCOME_SYSTEM}|dead-letter` };
  await readEntries(medplum, query, (entry) => {
    if (outcomeOf(entry) === 'dead-letter' && !isReplay(entry) && !result.has(entry.id)) {
      result.set(entry.id, entry);
    }
    return result.size < limit;
  }, options.pageSize);
  return [...result.values()];
}

/**
 * @param sender - A ledger sender (`MessageHeader.source.endpoint`).
 * @returns The short form for display, `<facility>/<application>`.
 */
export function senderLabel(sender: string): string {
  const prefix = `${HUB_SID}/hl7/`;
  return sender.startsWith(prefix) ? sender.slice(prefix.length) : sender;
}

/**
 * @param entry - A ledger entry.
 * @returns True when a replay wrote it.
 */
export function isReplay(entry: MessageHeader): boolean {
  return Boolean(entry.meta?.tag?.some((t) => t.system === MESSAGE_REPLAY_TAG.system && t.code === MESSAGE_REPLAY_TAG.code));
}

/**
 * @param entry - A ledger entry.
 * @returns True when it records a message that repeated an already committed one.
 */
export function isDuplicate(entry: MessageHeader): boolean {
  return Boolean(entry.extension?.some((e) => e.url === LedgerExtension.duplicateOf));
}

/**
 * @param entry - A ledger entry.
 * @returns MSH-10 as recorded in the message key tag (`<MSH-3>^<MSH-4>^<MSH-10>`).
 */
export function controlIdOf(entry: MessageHeader): string {
  const key = entry.meta?.tag?.find((t) => t.system === MESSAGE_KEY_SYSTEM)?.code ?? '';
  return key.split('^').slice(2).join('^');
}

function deadLetterOf(entry: WithId<MessageHeader>): DeadLetter {
  return {
    id: entry.id,
    received: entry.meta?.lastUpdated ?? '',
    sender: senderOf(entry),
    type: entry.eventCoding?.display ?? entry.eventCoding?.code ?? '',
    controlId: controlIdOf(entry),
    error: entry.extension?.find((e) => e.url === LedgerExtension.error)?.valueString ?? '',
  };
}

function senderOf(entry: MessageHeader): string {
  return entry.source?.endpoint ?? '(unknown sender)';
}

function emptyCounts(): LedgerCounts {
  return { received: 0, committed: 0, rejected: 0, deadLettered: 0, resolved: 0, duplicates: 0, replays: 0 };
}

function count(counts: LedgerCounts, entry: MessageHeader): void {
  if (isReplay(entry)) {
    counts.replays++;
    return;
  }
  counts.received++;
  switch (outcomeOf(entry)) {
    case 'committed':
      counts.committed++;
      if (isDuplicate(entry)) {
        counts.duplicates++;
      }
      break;
    case 'rejected':
      counts.rejected++;
      break;
    case 'dead-letter':
      counts.deadLettered++;
      break;
    case 'resolved':
      counts.resolved++;
      break;
    default:
      // Not one of the four outcomes: received but unaccounted for, so the invariant fails.
      break;
  }
}

/** Entries whose current version is not their first: a dead letter marked resolved (or hand edits). */
/**
 * When a ledger entry's message was received (epoch ms): the entry's creation time. Only entries
 * marked `resolved` later were updated; their first version's time is read from their history,
 * for the others `meta.lastUpdated` is the creation time.
 * @param medplum - A client allowed to read MessageHeader history.
 * @param entry - A ledger entry.
 * @returns Reception time.
 */
export async function ledgerReceivedAt(medplum: MedplumClient, entry: WithId<MessageHeader>): Promise<number> {
  const lastUpdated = Date.parse(entry.meta?.lastUpdated ?? '');
  return outcomeOf(entry) === 'resolved' ? ((await createdTime(medplum, 'MessageHeader', entry.id)) ?? lastUpdated) : lastUpdated;
}

/** Reads every entry matching `query`, each id once (an entry updated while paging may reappear: the last read wins). */
async function readAllEntries(medplum: MedplumClient, query: Record<string, string>, pageSize?: number): Promise<WithId<MessageHeader>[]> {
  const byId = new Map<string, WithId<MessageHeader>>();
  await readEntries(
    medplum,
    query,
    (entry) => {
      byId.set(entry.id, entry);
      return true;
    },
    pageSize
  );
  return [...byId.values()];
}

/**
 * Pages through MessageHeaders matching `query`, oldest first, following the server's `next`
 * links (offsets on the local runtime, cursors on a stock server).
 * @param visit - Called per entry; returning false stops reading.
 */
async function readEntries(
  medplum: MedplumClient,
  query: Record<string, string>,
  visit: (entry: WithId<MessageHeader>) => boolean,
  pageSize = PAGE_SIZE
): Promise<void> {
  const params = new URLSearchParams({ ...query, _sort: '_lastUpdated', _count: String(pageSize) });
  let url: string | undefined = medplum.fhirUrl('MessageHeader').toString() + '?' + params.toString();
  const seen = new Set<string>();
  while (url) {
    if (seen.has(url)) {
      throw new Error(`Ledger paging loops at ${url}`);
    }
    seen.add(url);
    const bundle: Bundle<WithId<MessageHeader>> = await medplum.get(url);
    for (const e of bundle.entry ?? []) {
      if (e.resource?.resourceType === 'MessageHeader' && !visit(e.resource)) {
        return;
      }
    }
    url = bundle.entry?.length ? bundle.link?.find((l) => l.relation === 'next')?.url : undefined;
  }
}

/**
 * @param since - A date or date-time as typed by an operator.
 * @returns The instant, ISO 8601 UTC.
 */
function normalizeSince(since: string): string {
  const time = Date.parse(since);
  if (Number.isNaN(time)) {
    throw new Error(`'${since}' is not an ISO 8601 date or date-time`);
  }
  return new Date(time).toISOString();
}
