import { ContentType, isValidHostname, normalizeErrorString } from '@medplum/core';
import { execFile } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';
import { platform } from 'node:os';
import type { AgentReply } from './agent-messages.ts';

/** The stock agent's `DEFAULT_PING_TIMEOUT` (ms) for the ping command. */
export const PING_TIMEOUT_MS = 3_600;

/** What a ping command printed. */
export interface PingOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a ping of `host`, `count` times (once when undefined); rejects when the command fails.
 * The runtime uses {@link systemPing}; tests pass their own.
 */
export type PingCommand = (host: string, count: number | undefined) => Promise<PingOutput>;

/**
 * The stock agent's ping: the operating system's `ping` (`-c N`, or `/n N` on Windows), bounded by
 * {@link PING_TIMEOUT_MS}. Run without a shell: the host is validated first, but nothing here
 * needs one. On a machine without `ping` this fails, as the stock agent would there.
 * @param host - An IPv4 address or host name.
 * @param count - How many echo requests; 1 when undefined.
 * @returns The command's output.
 */
export const systemPing: PingCommand = (host, count = 1) =>
  new Promise((resolve, reject) => {
    const args = platform() === 'win32' ? ['/n', String(count), host] : ['-c', String(count), host];
    execFile('ping', args, { timeout: PING_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        reject(err);
      } else {
        resolve({ stdout, stderr });
      }
    });
  });

/**
 * The stock agent's `tryPingHost`: a push with content type `x-application/ping` pings `remote`
 * (an IPv4 address or host name, never IPv6) `N` times for a body `PING N`, once otherwise, and
 * answers the command's output as `x-application/ping`; any failure (invalid host or count, the
 * command failing or writing to stderr) is a 400 with the error text.
 * @param remote - The host to ping (the push's destination).
 * @param body - The push body, `PING` or `PING N`.
 * @param run - The ping command.
 * @returns The agent's reply.
 */
export async function pingHost(remote: string, body: string, run: PingCommand = systemPing): Promise<AgentReply> {
  try {
    if (isIPv6(remote)) {
      throw new Error(`Attempted to ping an IPv6 address: ${remote}\n\nIPv6 is currently unsupported.`);
    }
    if (!(isIPv4(remote) || isValidHostname(remote))) {
      throw new Error(`Attempted to ping an invalid host.\n\n"${remote}" is not a valid IPv4 address or a resolvable hostname.`);
    }
    const countText = body.startsWith('PING') ? (body.split(' ')[1] ?? '') : '';
    let count: number | undefined;
    if (countText !== '') {
      count = Number.parseInt(countText, 10);
      if (Number.isNaN(count)) {
        throw new Error(`Unable to ping ${remote} "${countText}" times. "${countText}" is not a number.`);
      }
    }
    const { stdout, stderr } = await run(remote, count);
    if (stderr) {
      throw new Error(`Received on stderr:\n\n${stderr.trim()}`);
    }
    return { statusCode: 200, contentType: ContentType.PING, body: stdout.trim() };
  } catch (err) {
    return { statusCode: 400, contentType: ContentType.TEXT, body: normalizeErrorString(err) };
  }
}
