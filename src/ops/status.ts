import type { MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Bundle, Coding, Device, Endpoint, ExtractResource, MessageHeader, ResourceType, Task } from '@medplum/fhirtypes';
import type { DeadLetter } from '../inbound/stats.ts';
import { countLedger, ledgerReceivedAt, listDeadLetters, readLedgerEntries, senderLabel } from '../inbound/stats.ts';
import { METRIPORT_WEBHOOK_TASK_CODE } from '../metriport/constants.ts';
import { DELIVERY_TASK_CODE } from '../outbound/delivery.ts';
import { LAB_ORDER_TASK_CODE, LabExtension } from '../outbound/lab-orders.ts';
import { PARTNER_WEBHOOK_CONNECTION } from '../outbound/partner.ts';
import { inputOf } from '../outbound/queue.ts';
import { SFTP_FILE_TASK_CODE } from '../sftp/ledger.ts';
import { SFTP_INBOUND_CONNECTION, SFTP_SOURCE_SYSTEM } from '../sftp/source.ts';
import type {
  ChannelKind,
  ChannelStatus,
  DeadLetterItem,
  DeadLetterKind,
  HubStatus,
  LedgerItem,
  QueueDepthStatus,
  StatusWindow,
  TaskState,
  UnavailableSource,
} from './status-model.ts';
import {
  bucketItems,
  countItems,
  countsAddUp,
  countsFromLedger,
  emptyCounts,
  hl7ChannelKey,
  hl7Item,
  lastErrorOf,
  metriportTaskState,
  oldestAgeSeconds,
  queueTaskState,
  sanitizeError,
  sftpTaskState,
  statusWindow,
  taskItem,
  taskReceived,
  totalOf,
} from './status-model.ts';

/**
 * `collectStatus`: the hub's operational status, read through the FHIR API as the given client
 * (so the caller's AccessPolicy decides what is counted: a ledger it may not read is reported as
 * unavailable, not as zero). It reuses the ledgers' own readers where they exist (the HL7
 * ledger's `readLedgerEntries`, `countLedger` and `listDeadLetters`) and otherwise pages through ledger Tasks with
 * plain token searches and the server's `next` links, as src/inbound/stats.ts does, so it works
 * the same on the local runtime and on a stock server.
 */

/** Options of {@link collectStatus}. */
export interface CollectStatusOptions {
  /** Count items received at or after this time (ISO 8601); default: the start of the chart window. */
  readonly since?: string;
  /** Chart bucket size in seconds (default 3600). */
  readonly bucketSeconds?: number;
  /** Number of chart buckets (default 24: the last day by the hour). */
  readonly buckets?: number;
  /** At most this many open dead letters are listed (default 100). */
  readonly deadLetterLimit?: number;
  /** Entries per page (default 500; a stock server allows at most 1000). */
  readonly pageSize?: number;
  /** The current time, epoch ms (tests). */
  readonly now?: number;
  /** Reads the stock server's job queue depths (see status-redis.ts); not read when absent. */
  readonly queueDepth?: () => Promise<QueueDepthStatus>;
}

const DEFAULT_BUCKET_SECONDS = 3600;
const DEFAULT_BUCKETS = 24;
const DEFAULT_DEAD_LETTER_LIMIT = 100;
const DEFAULT_PAGE_SIZE = 500;
/** The stock server's largest `_count`. */
const MAX_COUNT = 1000;
const KIND_ORDER: readonly ChannelKind[] = ['hl7', 'metriport', 'sftp', 'partner', 'lab'];

/** What every collector needs. */
interface Context {
  readonly medplum: MedplumClient;
  readonly now: number;
  readonly since: number;
  readonly window: StatusWindow;
  readonly deadLetterLimit: number;
  readonly pageSize: number;
}

/** What a collector gives. */
interface Collected {
  readonly channels: ChannelStatus[];
  readonly deadLetters: DeadLetterItem[];
  readonly truncated: boolean;
}

/**
 * Collects the status of every channel: HL7 senders, Metriport, SFTP sources, partners and lab
 * interfaces, with counts of the items received since `since`, throughput and errors per bucket
 * over the chart window, the oldest pending item, the last error, and the open dead letters.
 * @param medplum - A logged-in client; everything is read as that caller.
 * @param options - Window, buckets, limits.
 * @returns The status (JSON-serialisable, no patient data).
 */
export async function collectStatus(medplum: MedplumClient, options: CollectStatusOptions = {}): Promise<HubStatus> {
  const now = options.now ?? Date.now();
  const bucketSeconds = positive(options.bucketSeconds, DEFAULT_BUCKET_SECONDS, 'bucketSeconds');
  const window = statusWindow(now, bucketSeconds, positive(options.buckets, DEFAULT_BUCKETS, 'buckets'));
  const since = options.since === undefined ? window.start : parseTime(options.since);
  const context: Context = {
    medplum,
    now,
    since,
    window,
    deadLetterLimit: options.deadLetterLimit ?? DEFAULT_DEAD_LETTER_LIMIT,
    pageSize: Math.min(options.pageSize ?? DEFAULT_PAGE_SIZE, MAX_COUNT),
  };
  const unavailable: UnavailableSource[] = [];
  const guarded = async (source: string, collect: () => Promise<Collected>): Promise<Collected> => {
    try {
      return await collect();
    } catch (err) {
      unavailable.push({ source, reason: sanitizeError(normalizeErrorString(err)) });
      return { channels: [], deadLetters: [], truncated: false };
    }
  };
  const [collected, queueDepth] = await Promise.all([
    Promise.all([
      guarded('HL7 message ledger (MessageHeader)', () => collectHl7(context)),
      ...TASK_LEDGERS.map((ledger) => guarded(`${ledger.title} (Task)`, () => collectTaskLedger(context, ledger, unavailable))),
    ]),
    options.queueDepth?.().catch((err: unknown): QueueDepthStatus => ({ reachable: false, reason: sanitizeError(normalizeErrorString(err)) })),
  ]);
  const channels = collected
    .flatMap((c) => c.channels)
    .sort((a, b) => KIND_ORDER.indexOf(a.kind as ChannelKind) - KIND_ORDER.indexOf(b.kind as ChannelKind) || a.name.localeCompare(b.name));
  const deadLetters = collected.flatMap((c) => c.deadLetters).sort((a, b) => a.time.localeCompare(b.time));
  return {
    generatedAt: new Date(now).toISOString(),
    since: new Date(since).toISOString(),
    window: { start: new Date(window.start).toISOString(), end: new Date(window.start + window.buckets * window.bucketMs).toISOString(), bucketSeconds },
    channels,
    total: totalOf(channels, window),
    invariantHolds: channels.every((c) => countsAddUp(c.counts)),
    deadLetters: deadLetters.slice(0, context.deadLetterLimit),
    deadLettersTruncated: collected.some((c) => c.truncated) || deadLetters.length > context.deadLetterLimit,
    unavailable,
    ...(queueDepth ? { queueDepth } : {}),
  };
}

/**
 * HL7 senders: counts from the ledger statistics, the chart from the ledger entries written in
 * the window (a dead letter resolved later counts at its reception, read from its history), the
 * open dead letters from the ledger's dead-letter listing.
 */
async function collectHl7(context: Context): Promise<Collected> {
  const { medplum, window } = context;
  // One read of the ledger serves the counts (since `since`) and the chart (since the window's
  // start); a resolved entry's history is read once for both.
  const readFrom = new Date(Math.min(context.since, window.start)).toISOString();
  const [entries, letters] = await Promise.all([
    readLedgerEntries(medplum, { since: readFrom, pageSize: context.pageSize }),
    listDeadLetters(medplum, { limit: context.deadLetterLimit + 1, pageSize: context.pageSize }),
  ]);
  const received = new Map<string, Promise<number>>();
  const receivedAt = (entry: WithId<MessageHeader>): Promise<number> => {
    let time = received.get(entry.id);
    if (!time) {
      time = ledgerReceivedAt(medplum, entry);
      received.set(entry.id, time);
    }
    return time;
  };
  const stats = await countLedger(entries, { since: new Date(context.since).toISOString(), receivedAt });
  const items: LedgerItem[] = [];
  for (const entry of entries) {
    const item = hl7Item(entry, await receivedAt(entry));
    if (item && item.received >= window.start) {
      items.push(item);
    }
  }
  const letterItems = letters.map(deadLetterItem);
  const keys = new Set([...stats.senders.map((s) => hl7ChannelKey(s.sender)), ...items.map((i) => i.channel), ...letterItems.map((l) => l.channel)]);
  const channels = [...keys].map((key): ChannelStatus => {
    const sender = key.slice('hl7:'.length);
    const counts = stats.senders.find((s) => s.sender === sender);
    const own = items.filter((i) => i.channel === key);
    const openErrors = letterItems.filter((l) => l.channel === key).map((l): LedgerItem => ({ channel: key, received: Date.parse(l.time), changed: Date.parse(l.time), state: 'dead-letter', error: l.error }));
    return {
      kind: 'hl7',
      key,
      name: senderLabel(sender),
      counts: counts ? countsFromLedger(counts) : emptyCounts(),
      // Inbound HL7 queues nothing: every message is answered when it arrives.
      oldestPendingAgeSeconds: null,
      lastError: lastErrorOf([...own, ...openErrors]),
      buckets: bucketItems(own, window),
    };
  });
  return { channels, deadLetters: letterItems.slice(0, context.deadLetterLimit), truncated: letters.length > context.deadLetterLimit };
}

function deadLetterItem(letter: DeadLetter): DeadLetterItem {
  return {
    kind: 'hl7-message',
    id: letter.id,
    channel: hl7ChannelKey(letter.sender),
    time: letter.received,
    error: sanitizeError(letter.error),
    detail: [letter.type, letter.controlId].filter(Boolean).join(' '),
    replayable: true,
  };
}

/** A ledger kept as Tasks of one code. */
interface TaskLedger {
  readonly kind: ChannelKind;
  readonly title: string;
  readonly code: Coding;
  readonly deadLetterKind: DeadLetterKind;
  /** Whether the status page replays its dead letters. */
  readonly replayable: boolean;
  /** Task statuses of items still to be processed. */
  readonly pendingStatuses: readonly Task['status'][];
  /** Whether Tasks name their channel in `owner` (one oldest-pending search per channel). */
  readonly byOwner: boolean;
  state(task: Task): TaskState;
  channelOf(task: Task): string;
  /** Ids only. */
  detail(task: Task): string;
  /** The configured channels, shown even without traffic. */
  catalog(medplum: MedplumClient): Promise<{ key: string; name: string }[]>;
}

const TASK_LEDGERS: readonly TaskLedger[] = [
  {
    kind: 'metriport',
    title: 'Metriport webhook messages',
    code: METRIPORT_WEBHOOK_TASK_CODE,
    deadLetterKind: 'metriport-webhook',
    replayable: true,
    pendingStatuses: ['requested', 'in-progress', 'on-hold'],
    byOwner: false,
    state: metriportTaskState,
    channelOf: () => 'metriport',
    detail: (task) => inputOf(task, 'message type') ?? '',
    catalog: async () => [{ key: 'metriport', name: 'Metriport webhook' }],
  },
  {
    kind: 'sftp',
    title: 'SFTP file ledger',
    code: SFTP_FILE_TASK_CODE,
    deadLetterKind: 'sftp-file',
    // A file is fixed by the partner and put back in the folder; nothing here can send it again.
    replayable: false,
    pendingStatuses: ['in-progress'],
    byOwner: false,
    state: sftpTaskState,
    channelOf: (task) => `sftp:${inputOf(task, 'source') ?? '(unknown source)'}`,
    // File names can carry patient names or MRNs: none is shown.
    detail: () => '',
    catalog: async (medplum) =>
      (await medplum.searchResources('Endpoint', { 'connection-type': token(SFTP_INBOUND_CONNECTION), _count: '1000' })).map((endpoint) => {
        const name = endpoint.identifier?.find((i) => i.system === SFTP_SOURCE_SYSTEM)?.value ?? endpoint.id;
        return { key: `sftp:${name}`, name };
      }),
  },
  {
    kind: 'partner',
    title: 'partner deliveries',
    code: DELIVERY_TASK_CODE,
    deadLetterKind: 'partner-delivery',
    replayable: true,
    pendingStatuses: ['requested', 'in-progress'],
    byOwner: true,
    state: queueTaskState,
    channelOf: (task) => `partner:${task.owner?.reference ?? '(no partner)'}`,
    detail: (task) => task.focus?.reference ?? '',
    catalog: async (medplum) =>
      (await medplum.searchResources('Endpoint', { 'connection-type': token(PARTNER_WEBHOOK_CONNECTION), _count: '1000' })).map((endpoint: WithId<Endpoint>) => ({
        key: `partner:Endpoint/${endpoint.id}`,
        name: endpoint.name ?? `Endpoint/${endpoint.id}`,
      })),
  },
  {
    kind: 'lab',
    title: 'lab orders',
    code: LAB_ORDER_TASK_CODE,
    deadLetterKind: 'lab-order',
    replayable: true,
    pendingStatuses: ['requested', 'in-progress'],
    byOwner: true,
    state: queueTaskState,
    channelOf: (task) => `lab:${task.owner?.reference ?? '(no lab)'}`,
    detail: (task) => task.focus?.reference ?? '',
    catalog: async (medplum) =>
      (await medplum.searchResources('Device', { _count: '1000' }))
        .filter((device: WithId<Device>) => device.extension?.some((e) => e.url === LabExtension.lab))
        .map((device) => ({ key: `lab:Device/${device.id}`, name: device.deviceName?.[0]?.name ?? `Device/${device.id}` })),
  },
];

/**
 * A Task ledger: the Tasks of the window (read by `_lastUpdated`, a superset of those received
 * in it, with cursor paging on a stock server), the oldest pending item per channel (all time),
 * and the open dead letters (all time, oldest first).
 */
async function collectTaskLedger(context: Context, ledger: TaskLedger, unavailable: UnavailableSource[]): Promise<Collected> {
  const { medplum, window } = context;
  const readFrom = Math.min(context.since, window.start);
  const code = token(ledger.code);
  const [recent, failed, catalog] = await Promise.all([
    readAll(medplum, 'Task', { code, _lastUpdated: `ge${new Date(readFrom).toISOString()}`, _sort: '_lastUpdated', _count: String(context.pageSize) }),
    medplum.search('Task', { code, status: 'failed', _sort: 'authored-on', _count: String(Math.min(context.deadLetterLimit + 1, MAX_COUNT)) }),
    ledger.catalog(medplum).catch((err: unknown) => {
      unavailable.push({ source: `${ledger.title}: configured channels`, reason: sanitizeError(normalizeErrorString(err)) });
      return [];
    }),
  ]);
  const items = recent.filter((task) => taskReceived(task) >= readFrom).map((task) => taskItem(task, ledger.channelOf(task), ledger.state(task)));
  const failedTasks = (failed.entry ?? []).map((e) => e.resource).filter((t): t is WithId<Task> => Boolean(t));
  const letters = failedTasks
    .filter((task) => ledger.state(task).state === 'dead-letter')
    .slice(0, context.deadLetterLimit)
    .map((task): DeadLetterItem => ({
      kind: ledger.deadLetterKind,
      id: task.id,
      channel: ledger.channelOf(task),
      time: new Date(taskReceived(task)).toISOString(),
      error: ledger.state(task).error ?? '',
      detail: ledger.detail(task),
      replayable: ledger.replayable,
    }));
  const failedItems = failedTasks.map((task) => taskItem(task, ledger.channelOf(task), ledger.state(task)));
  const names = new Map(catalog.map((c) => [c.key, c.name]));
  for (const item of [...items, ...failedItems]) {
    if (!names.has(item.channel)) {
      names.set(item.channel, item.channel.slice(item.channel.indexOf(':') + 1));
    }
  }
  const pending = await oldestPending(context, ledger, [...names.keys()]);
  const channels = [...names].map(([key, name]): ChannelStatus => {
    const own = items.filter((i) => i.channel === key);
    return {
      kind: ledger.kind,
      key,
      name,
      counts: countItems(own, context.since),
      oldestPendingAgeSeconds: oldestAgeSeconds(pending.get(key) ?? [], context.now),
      lastError: lastErrorOf([...own, ...failedItems.filter((i) => i.channel === key)]),
      buckets: bucketItems(own, window),
    };
  });
  const truncated = failedTasks.length > context.deadLetterLimit || Boolean(failed.link?.some((l) => l.relation === 'next'));
  return { channels, deadLetters: letters, truncated };
}

/**
 * @returns Reception times of the oldest pending Task per channel: one search per channel when the
 * channel is the Task's owner, else the oldest page of the ledger's pending Tasks.
 */
async function oldestPending(context: Context, ledger: TaskLedger, keys: string[]): Promise<Map<string, number[]>> {
  const { medplum } = context;
  const base = { code: token(ledger.code), status: ledger.pendingStatuses.join(','), _sort: 'authored-on' };
  const result = new Map<string, number[]>();
  const add = (task: Task): void => {
    const key = ledger.channelOf(task);
    result.set(key, [...(result.get(key) ?? []), taskReceived(task)]);
  };
  if (ledger.byOwner) {
    await Promise.all(
      keys.map(async (key) => {
        const owner = key.slice(key.indexOf(':') + 1);
        const [task] = await medplum.searchResources('Task', { ...base, owner, _count: '1' });
        if (task) {
          add(task);
        }
      })
    );
  } else {
    (await medplum.searchResources('Task', { ...base, _count: String(MAX_COUNT) })).forEach(add);
  }
  return result;
}

/**
 * Reads every resource matching `query`, following the server's `next` links (offsets on the
 * local runtime, cursors on a stock server); a resource updated while paging may come twice: the
 * last read wins.
 */
async function readAll<K extends ResourceType>(
  medplum: MedplumClient,
  resourceType: K,
  query: Record<string, string>
): Promise<WithId<ExtractResource<K>>[]> {
  let url: string | undefined = medplum.fhirUrl(resourceType).toString() + '?' + new URLSearchParams(query).toString();
  const byId = new Map<string, WithId<ExtractResource<K>>>();
  const seen = new Set<string>();
  while (url) {
    if (seen.has(url)) {
      throw new Error(`${resourceType} paging loops at ${url}`);
    }
    seen.add(url);
    const bundle: Bundle<WithId<ExtractResource<K>>> = await medplum.get(url);
    for (const entry of bundle.entry ?? []) {
      if (entry.resource?.resourceType === resourceType) {
        byId.set(entry.resource.id, entry.resource);
      }
    }
    url = bundle.entry?.length ? bundle.link?.find((l) => l.relation === 'next')?.url : undefined;
  }
  return [...byId.values()];
}

function token(coding: Coding): string {
  return `${coding.system}|${coding.code}`;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) {
    return fallback;
  }
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer`);
  }
  return value;
}

/**
 * @param value - A date or date-time as typed by an operator.
 * @returns Epoch ms.
 */
export function parseTime(value: string): number {
  const time = Date.parse(value);
  if (Number.isNaN(time)) {
    throw new Error(`'${value}' is not an ISO 8601 date or date-time`);
  }
  return time;
}
