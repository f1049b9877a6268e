import type { AddressInfo, Server, Socket } from 'node:net';
import { createServer } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { encodeCommand, parseReply, readQueueDepth, RespError } from './status-redis.ts';

/**
 * A fake Redis speaking RESP on loopback: answers AUTH, SELECT, LLEN and ZCARD from a table of
 * key sizes, in chunks of a few bytes (replies are split across TCP reads in real life too).
 */
function fakeRedis(sizes: Record<string, number>, password?: string): Promise<{ server: Server; port: number; commands: string[][] }> {
  const commands: string[][] = [];
  const server = createServer((socket: Socket) => {
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      let parsed = parseReply(buffer);
      while (parsed) {
        const command = parsed.value as string[];
        buffer = buffer.subarray(parsed.next);
        commands.push(command);
        let reply: string;
        if (command[0] === 'AUTH') {
          reply = command[command.length - 1] === password ? '+OK\r\n' : '-WRONGPASS invalid username-password pair\r\n';
        } else if (command[0] === 'SELECT') {
          reply = '+OK\r\n';
        } else {
          reply = `:${sizes[command[1]] ?? 0}\r\n`;
        }
        for (let i = 0; i < reply.length; i += 3) {
          socket.write(reply.slice(i, i + 3));
        }
        parsed = parseReply(buffer);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, commands })));
}

describe('RESP', () => {
  test('commands are arrays of bulk strings; replies of every type parse, partial ones wait for more bytes', () => {
    expect(encodeCommand(['LLEN', 'bull:Q:wait']).toString()).toBe('*2\r\n$4\r\nLLEN\r\n$11\r\nbull:Q:wait\r\n');
    const reply = Buffer.from('*4\r\n:12\r\n+OK\r\n$3\r\nabc\r\n$-1\r\n-ERR x\r\n');
    const first = parseReply(reply);
    expect(first?.value).toEqual([12, 'OK', 'abc', null]);
    const error = parseReply(reply, first?.next);
    expect(error?.value).toBeInstanceOf(RespError);
    expect(parseReply(Buffer.from('$5\r\nab'))).toBeUndefined();
    expect(parseReply(Buffer.from('*2\r\n:1\r\n'))).toBeUndefined();
  });
});

describe('queue depth', () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  test('reads the BullMQ keys of the subscription and cron queues, after AUTH and SELECT', async () => {
    const fake = await fakeRedis(
      {
        'bull:SubscriptionQueue:wait': 4,
        'bull:SubscriptionQueue:paused': 1,
        'bull:SubscriptionQueue:prioritized': 2,
        'bull:SubscriptionQueue:delayed': 9,
        'bull:SubscriptionQueue:active': 3,
        'bull:SubscriptionQueue:failed': 5,
        'bull:CronQueue:delayed': 10,
      },
      's3cret'
    );
    server = fake.server;
    const depth = await readQueueDepth(`redis://:s3cret@127.0.0.1:${fake.port}/2`);
    expect(depth).toEqual({
      reachable: true,
      queues: [
        { name: 'SubscriptionQueue', waiting: 7, delayed: 9, active: 3, failed: 5 },
        { name: 'CronQueue', waiting: 0, delayed: 10, active: 0, failed: 0 },
      ],
    });
    expect(fake.commands.slice(0, 2)).toEqual([
      ['AUTH', 's3cret'],
      ['SELECT', '2'],
    ]);
  });

  test('a wrong password or no server: not reachable, with why, never the password', async () => {
    const fake = await fakeRedis({}, 'right');
    server = fake.server;
    const wrong = await readQueueDepth(`redis://:wrong-pw@127.0.0.1:${fake.port}`);
    expect(wrong).toMatchObject({ reachable: false, reason: expect.stringContaining('WRONGPASS') });
    server.close();
    const down = await readQueueDepth(`redis://:wrong-pw@127.0.0.1:${fake.port}`, 1000);
    expect(down.reachable).toBe(false);
    expect(JSON.stringify(down)).not.toContain('wrong-pw');
  });
});
