import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Target, TargetOptions } from '../deploy/target.ts';
import { connectTarget } from '../deploy/target.ts';
import { clip } from '../fhir/strings.ts';
import type { ChannelCounts, ChannelStatus, HubStatus, QueueDepthStatus, TimeBucket } from '../ops/status-model.ts';
import { collectStatus } from '../ops/status.ts';
import { createStatusPageHandler, STATUS_PATH } from '../ops/status-page.ts';
import { readQueueDepth } from '../ops/status-redis.ts';

export const STATUS_USAGE = `Usage: hub status [--json] [--since <ISO date>] [--bucket-minutes N] [--buckets N]
       hub status --serve [--port N]

  Per channel (HL7 sender, Metriport, SFTP source, partner, lab interface): items received since
  --since (default: the chart window, the last 24 buckets of 60 minutes), by state, the age of the
  oldest pending item, the last error, throughput and errors per bucket, and the open dead letters.
  --json prints the whole status as JSON. With HUB_REDIS_URL set, the stock server's job queue
  depths are read from Redis too.

  --serve starts the status page on 127.0.0.1 (default port 8104) against MEDPLUM_BASE_URL: open
  the printed URL and log in with a ClientApplication's id and secret; the page shows what that
  client may read.

Output carries no patient data: ids, senders, counts and error texts with quoted values hidden.
`;

/** Options of {@link runStatusCommand}. */
export interface StatusCommandOptions {
  readonly log: (line: string) => void;
  readonly error: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Resolves when `--serve` should stop (default: SIGINT or SIGTERM). */
  readonly until?: Promise<void>;
}

type Parsed =
  | { readonly serve: false; readonly json: boolean; readonly since?: string; readonly bucketSeconds?: number; readonly buckets?: number }
  | { readonly serve: true; readonly port: number };

/**
 * `hub status ...`: the hub's operational status on the target, or (`--serve`) the status page.
 * @param target - A connected target, the options to connect with, or why the environment names
 * none (`--serve` needs only `MEDPLUM_BASE_URL`).
 * @param args - Arguments after `status`.
 * @param options - Output and environment.
 * @returns The exit code: 0, or 2 for a usage error.
 */
export async function runStatusCommand(target: Target | TargetOptions | string, args: readonly string[], options: StatusCommandOptions): Promise<number> {
  const parsed = parseStatusArgs(args);
  if (typeof parsed === 'string') {
    options.error(parsed);
    options.error(STATUS_USAGE);
    return 2;
  }
  const redisUrl = options.env.HUB_REDIS_URL;
  const queueDepth = redisUrl ? (): Promise<QueueDepthStatus> => readQueueDepth(redisUrl) : undefined;
  if (parsed.serve) {
    const baseUrl = typeof target === 'string' ? options.env.MEDPLUM_BASE_URL : target.baseUrl;
    if (!baseUrl) {
      options.error('Set MEDPLUM_BASE_URL to the FHIR server the status page reads from');
      return 2;
    }
    return serve(baseUrl, parsed.port, queueDepth, options);
  }
  if (typeof target === 'string') {
    options.error(target);
    return 2;
  }
  const connected = 'client' in target ? target : await connectTarget(target);
  const status = await collectStatus(connected.client, { since: parsed.since, bucketSeconds: parsed.bucketSeconds, buckets: parsed.buckets, queueDepth });
  if (parsed.json) {
    options.log(JSON.stringify(status, null, 2));
  } else {
    options.log(`Hub status on ${connected.baseUrl} (project ${connected.projectId}) at ${status.generatedAt}; items received since ${status.since}`);
    formatStatus(status).forEach((line) => options.log(line));
  }
  return 0;
}

/**
 * @param args - Arguments after `status`.
 * @returns What they ask for, or why they are wrong.
 */
export function parseStatusArgs(args: readonly string[]): Parsed | string {
  const flags = new Map<string, string | true>();
  const valued = new Set(['--since', '--bucket-minutes', '--buckets', '--port']);
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].split(/=(.*)/s, 2);
    if (!name.startsWith('--')) {
      return `Unexpected argument: ${args[i]}`;
    }
    if (!valued.has(name)) {
      if (!['--json', '--serve'].includes(name)) {
        return `Unknown option for status: ${name}`;
      }
      flags.set(name, true);
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined || value.startsWith('--')) {
      return `${name} needs a value`;
    }
    flags.set(name, value);
  }
  const integer = (name: string, min: number, max: number): number | undefined | string => {
    const value = flags.get(name);
    if (value === undefined) {
      return undefined;
    }
    const n = Number(value);
    return Number.isInteger(n) && n >= min && n <= max ? n : `${name} must be an integer from ${min} to ${max}`;
  };
  if (flags.has('--serve')) {
    const extra = [...flags.keys()].find((f) => f !== '--serve' && f !== '--port');
    if (extra) {
      return `${extra} does not apply to --serve (the page has its own settings)`;
    }
    const port = integer('--port', 0, 65535);
    return typeof port === 'string' ? port : { serve: true, port: port ?? 8104 };
  }
  if (flags.has('--port')) {
    return '--port applies to --serve only';
  }
  const since = flags.get('--since') as string | undefined;
  if (since !== undefined && Number.isNaN(Date.parse(since))) {
    return `--since must be an ISO 8601 date or date-time, got ${since}`;
  }
  const minutes = integer('--bucket-minutes', 1, 7 * 24 * 60);
  const buckets = integer('--buckets', 1, 500);
  if (typeof minutes === 'string' || typeof buckets === 'string') {
    return typeof minutes === 'string' ? minutes : (buckets as string);
  }
  return { serve: false, json: flags.has('--json'), since, bucketSeconds: minutes === undefined ? undefined : minutes * 60, buckets };
}

const COLUMNS: [string, keyof ChannelCounts][] = [
  ['received', 'received'],
  ['committed', 'committed'],
  ['rejected', 'rejected'],
  ['dead-letter', 'deadLettered'],
  ['resolved', 'resolved'],
  ['delivered', 'delivered'],
  ['retrying', 'retrying'],
  ['pending', 'pending'],
];

/**
 * @param status - A collected status.
 * @returns The lines `hub status` prints: the table, the chart of the total, last errors, open
 * dead letters, what could not be read, queue depths.
 */
export function formatStatus(status: HubStatus): string[] {
  const rows: [string, ChannelStatus][] = [...status.channels.map((c): [string, ChannelStatus] => [shorten(`${c.kind} ${c.name}`), c]), ['total', status.total]];
  const width = Math.max('channel'.length, ...rows.map(([name]) => name.length));
  const line = (name: string, cells: string[]): string =>
    [name.padEnd(width), ...cells.map((c, i) => c.padStart(i < COLUMNS.length ? COLUMNS[i][0].length : 'oldest pending'.length))].join('  ').trimEnd();
  const lines = [
    line('channel', [...COLUMNS.map(([title]) => title), 'oldest pending']),
    ...rows.map(([name, channel]) => line(name, [...COLUMNS.map(([, key]) => String(channel.counts[key])), formatAge(channel.oldestPendingAgeSeconds)])),
  ];
  const t = status.total.counts;
  lines.push(
    `received = committed + rejected + dead-letter + resolved + delivered + retrying + pending: ${t.received} = ${t.committed} + ${t.rejected} + ${t.deadLettered} + ${t.resolved} + ${t.delivered} + ${t.retrying} + ${t.pending} ` +
      (status.invariantHolds ? '(holds for every channel)' : '(DOES NOT HOLD for every channel)')
  );
  const minutes = status.window.bucketSeconds / 60;
  lines.push(`per ${minutes % 60 === 0 ? `${minutes / 60} h` : `${minutes} min`} from ${status.window.start}:`);
  lines.push(`  received ${sparkline(status.total.buckets, 'throughput')}  (max ${Math.max(0, ...status.total.buckets.map((b) => b.throughput))})`);
  lines.push(`  errors   ${sparkline(status.total.buckets, 'errors')}  (max ${Math.max(0, ...status.total.buckets.map((b) => b.errors))})`);
  const errors = status.channels.filter((c) => c.lastError);
  if (errors.length) {
    lines.push('Last errors:');
    errors.forEach((c) => lines.push(`  ${shorten(`${c.kind} ${c.name}`)}  ${c.lastError?.time}  ${c.lastError?.text}`));
  }
  const names = new Map(status.channels.map((c) => [c.key, shorten(`${c.kind} ${c.name}`)]));
  if (status.deadLetters.length) {
    lines.push(`Open dead letters${status.deadLettersTruncated ? ' (more than listed)' : ''}, oldest first:`);
    for (const d of status.deadLetters) {
      const entry = d.kind === 'hl7-message' ? `MessageHeader/${d.id}` : `Task/${d.id}`;
      lines.push(`  ${d.time}  ${d.kind}  ${names.get(d.channel) ?? d.channel}  ${entry}  ${d.detail}  ${d.error}`.replace(/\s+$/, ''));
    }
  } else {
    lines.push('No open dead letters.');
  }
  for (const u of status.unavailable) {
    lines.push(`Not readable with this client: ${u.source}: ${u.reason}`);
  }
  if (status.queueDepth) {
    lines.push(
      status.queueDepth.reachable
        ? `Queue depth: ${status.queueDepth.queues.map((q) => `${q.name} ${q.waiting} waiting, ${q.delayed} delayed, ${q.active} active, ${q.failed} failed`).join('; ')}`
        : `Queue depth: not reachable (${status.queueDepth.reason})`
    );
  }
  return lines;
}

/** Longest channel name in the table (partner and lab names are free text). */
const MAX_NAME = 48;

function shorten(name: string): string {
  return clip(name, MAX_NAME);
}

/**
 * @param seconds - An age.
 * @returns It for people (`45 s`, `12 min`, `3 h`, `2 d`), `-` for none.
 */
export function formatAge(seconds: number | null): string {
  if (seconds === null) {
    return '-';
  }
  if (seconds < 120) {
    return `${seconds} s`;
  }
  if (seconds < 7200) {
    return `${Math.round(seconds / 60)} min`;
  }
  return seconds < 172_800 ? `${Math.round(seconds / 3600)} h` : `${Math.round(seconds / 86_400)} d`;
}

const BLOCKS = ' ▁▂▃▄▅▆▇█';

/**
 * @param buckets - Chart buckets.
 * @param key - Which value.
 * @returns One block character per bucket, scaled to the largest (a space for zero).
 */
export function sparkline(buckets: readonly TimeBucket[], key: 'throughput' | 'errors'): string {
  const max = Math.max(0, ...buckets.map((b) => b[key]));
  return buckets.map((b) => (b[key] === 0 || max === 0 ? '·' : BLOCKS[Math.max(1, Math.round((b[key] / max) * (BLOCKS.length - 1)))])).join('');
}

async function serve(baseUrl: string, port: number, queueDepth: (() => Promise<QueueDepthStatus>) | undefined, options: StatusCommandOptions): Promise<number> {
  const handler = createStatusPageHandler({ baseUrl, queueDepth });
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/' || path === '') {
      res.writeHead(302, { Location: STATUS_PATH }).end();
      return;
    }
    handler(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  options.log(`Hub status page for ${baseUrl}: http://127.0.0.1:${address.port}${STATUS_PATH}  (log in with a ClientApplication id and secret; Ctrl-C stops)`);
  await (options.until ?? waitForSignal());
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    // A browser keeps its connection open; closing it lets the process end.
    server.closeAllConnections();
  });
  return 0;
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}
