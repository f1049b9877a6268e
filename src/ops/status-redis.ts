import { connect } from 'node:net';
import type { QueueDepthStatus } from './status-model.ts';

/**
 * Depths of the stock Medplum server's BullMQ queues, read from its Redis with a minimal RESP
 * client over node:net (no Redis dependency for a handful of read-only commands). The server
 * creates its queues without a key prefix option, so BullMQ's default `bull` applies:
 * `bull:<queue>:wait` and `:paused` (lists), `:prioritized` (sorted set) hold waiting jobs,
 * `:delayed` (sorted set) jobs waiting for a retry back-off or a schedule, `:active` (list) the
 * running ones and `:failed` (sorted set) those out of attempts.
 * Queue names are those of packages/server/src/workers/subscription.ts (`SubscriptionQueue`:
 * rest-hook and bot subscription deliveries) and cron.ts (`CronQueue`: cron bots).
 */

/** The stock server's queues the hub relies on. */
export const MEDPLUM_QUEUES = ['SubscriptionQueue', 'CronQueue'] as const;

/** BullMQ's default key prefix. */
const BULL_PREFIX = 'bull';

/** A RESP reply. */
export type RespValue = string | number | null | RespValue[] | RespError;

/** An error reply (`-ERR ...`). */
export class RespError extends Error {}

/**
 * @param args - A command and its arguments.
 * @returns The command as a RESP array of bulk strings.
 */
export function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) {
    parts.push(`$${Buffer.byteLength(arg, 'utf8')}\r\n${arg}\r\n`);
  }
  return Buffer.from(parts.join(''), 'utf8');
}

/**
 * Parses one reply from the start of `buffer`.
 * @param buffer - Bytes received.
 * @param offset - Where the reply starts.
 * @returns The reply and where the next one starts, or undefined when more bytes are needed.
 */
export function parseReply(buffer: Buffer, offset = 0): { value: RespValue; next: number } | undefined {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd < 0) {
    return undefined;
  }
  const type = String.fromCharCode(buffer[offset]);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const after = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new RespError(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const length = Number(line);
      if (length < 0) {
        return { value: null, next: after };
      }
      if (buffer.length < after + length + 2) {
        return undefined;
      }
      return { value: buffer.toString('utf8', after, after + length), next: after + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) {
        return { value: null, next: after };
      }
      const items: RespValue[] = [];
      let next = after;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, next);
        if (!item) {
          return undefined;
        }
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

/**
 * Sends commands in one pipeline and reads one reply per command.
 * @param url - `redis://[user:password@]host[:port][/db]`.
 * @param commands - The commands.
 * @param timeoutMs - Upper bound for connecting and answering.
 * @returns The replies, in order (error replies as {@link RespError}).
 */
export async function redisPipeline(url: string, commands: readonly string[][], timeoutMs = 2000): Promise<RespValue[]> {
  const target = new URL(url);
  if (target.protocol !== 'redis:') {
    throw new Error('only redis:// URLs are supported (no TLS)');
  }
  const setup: string[][] = [];
  if (target.password) {
    setup.push(target.username ? ['AUTH', decodeURIComponent(target.username), decodeURIComponent(target.password)] : ['AUTH', decodeURIComponent(target.password)]);
  }
  const db = target.pathname.replace(/^\//, '');
  if (db) {
    setup.push(['SELECT', db]);
  }
  const all = [...setup, ...commands];
  const replies = await new Promise<RespValue[]>((resolve, reject) => {
    const socket = connect({ host: target.hostname || '127.0.0.1', port: Number(target.port || 6379) });
    let received = Buffer.alloc(0);
    const values: RespValue[] = [];
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no answer within ${timeoutMs} ms`)));
    socket.once('error', fail);
    socket.once('connect', () => socket.write(Buffer.concat(all.map(encodeCommand))));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      try {
        let parsed = parseReply(received);
        while (parsed) {
          values.push(parsed.value);
          received = received.subarray(parsed.next);
          parsed = values.length < all.length ? parseReply(received) : undefined;
        }
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (values.length >= all.length) {
        socket.end();
        resolve(values);
      }
    });
    socket.once('close', () => reject(new Error('the connection closed before every answer arrived')));
  });
  const setupError = replies.slice(0, setup.length).find((r) => r instanceof RespError);
  if (setupError) {
    throw setupError as RespError;
  }
  return replies.slice(setup.length);
}

/**
 * Reads the depths of the stock server's queues ({@link MEDPLUM_QUEUES}).
 * @param url - `HUB_REDIS_URL`.
 * @param timeoutMs - Upper bound.
 * @returns The depths, or `reachable: false` with why (the password is never in the reason).
 */
export async function readQueueDepth(url: string, timeoutMs = 2000): Promise<QueueDepthStatus> {
  const commands = MEDPLUM_QUEUES.flatMap((queue) => {
    const key = (suffix: string): string => `${BULL_PREFIX}:${queue}:${suffix}`;
    return [
      ['LLEN', key('wait')],
      ['LLEN', key('paused')],
      ['ZCARD', key('prioritized')],
      ['ZCARD', key('delayed')],
      ['LLEN', key('active')],
      ['ZCARD', key('failed')],
    ];
  });
  try {
    const replies = await redisPipeline(url, commands, timeoutMs);
    const error = replies.find((r) => r instanceof RespError);
    if (error) {
      return { reachable: false, reason: `Redis answered: ${(error as RespError).message}` };
    }
    const n = (i: number): number => (typeof replies[i] === 'number' ? (replies[i] as number) : 0);
    return {
      reachable: true,
      queues: MEDPLUM_QUEUES.map((name, q) => {
        const at = q * 6;
        return { name, waiting: n(at) + n(at + 1) + n(at + 2), delayed: n(at + 3), active: n(at + 4), failed: n(at + 5) };
      }),
    };
  } catch (err) {
    return { reachable: false, reason: (err as Error).message.replaceAll(url, 'HUB_REDIS_URL') };
  }
}
