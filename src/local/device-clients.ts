import { ContentType, Hl7Message, normalizeErrorString } from '@medplum/core';
import type { Hl7ErrorEvent } from '@medplum/hl7';
import { Hl7Client } from '@medplum/hl7';
import type { AgentReply } from './agent-messages.ts';

/**
 * How long a connection stays open after it was opened or last answered, without the Agent's
 * `keepAlive` setting: the stock agent's `CLIENT_RELEASE_COUNTDOWN_MS`.
 */
export const DEVICE_IDLE_TIMEOUT_MS = 10_000;

/** The stock `Hl7Client`'s default connect timeout, which the stock agent keeps. */
export const DEVICE_CONNECT_TIMEOUT_MS = 30_000;

/** Upper bound for closing one connection; stopping must never hang on a stuck device. */
const CLOSE_TIMEOUT_MS = 1000;

/** Options of {@link DeviceClients}. */
export interface DeviceClientsOptions {
  readonly log?: (message: string) => void;
  /** Time after last use before a connection without keepAlive is closed; default {@link DEVICE_IDLE_TIMEOUT_MS}. */
  readonly idleTimeoutMs?: number;
  /** Default {@link DEVICE_CONNECT_TIMEOUT_MS}. */
  readonly connectTimeoutMs?: number;
}

/** One pooled MLLP connection to a device, as one agent uses it. */
interface PooledClient {
  readonly key: string;
  readonly client: Hl7Client;
  idleTimer?: NodeJS.Timeout;
}

/**
 * The agent's outbound MLLP side of `Agent/$push` (the stock agent's `pushMessage` and its
 * `Hl7ClientPool`): one connection per agent and device address, opened on first use, reused by
 * later pushes (replies are matched to requests by MSH-10 = MSA-2), closed after a socket error or
 * a failed send, and on {@link close}. Without the Agent's `keepAlive` it is also closed
 * {@link DEVICE_IDLE_TIMEOUT_MS} after it was opened or last answered, even with a push still
 * waiting (which then fails with "Message was still pending when connection closed"), as the stock
 * pool's idle sweep does; the stock sweep runs on the 10 s heartbeat, so there it happens 10 to
 * 20 s after last use. The stock pool may open up to `maxClientsPerRemote` (default 5) parallel
 * connections without keepAlive; this one always multiplexes over one.
 */
export class DeviceClients {
  private readonly options: DeviceClientsOptions;
  private readonly clients = new Map<string, PooledClient>();
  private closed = false;

  constructor(options: DeviceClientsOptions = {}) {
    this.options = options;
  }

  /**
   * Sends one push to a device and waits for its application-level ACK, as the stock agent does:
   * a Device URL that does not parse, a body that is not HL7, or a message header without MSH-10
   * is only logged and dropped (no answer: the server's caller waits out its timeout); an AA, AE
   * or AR comes back as is (a commit ACK `CA` is skipped); a connection or send failure is a 400
   * with the error text, without retry. There is no timeout here: the server bounds the wait.
   * @param owner - The Agent id: each agent has its own connections.
   * @param remote - The Device's `url`, `mllp://host:port[?encoding=…]`.
   * @param body - The HL7 message (ER7).
   * @param keepAlive - The Agent's `keepAlive` setting: TCP keepalive, and no idle close.
   * @returns The reply, or undefined when the push was dropped.
   */
  async push(owner: string, remote: string, body: string, keepAlive: boolean): Promise<AgentReply | undefined> {
    let address: URL;
    let message: Hl7Message;
    try {
      address = new URL(remote);
      message = Hl7Message.parse(body);
    } catch (err) {
      // The stock agent throws here inside its WebSocket handler, which only logs.
      this.log(`[push] ${remote}: ${normalizeErrorString(err)}; message dropped without an answer`);
      return undefined;
    }
    // A header too short to have MSH-10 is dropped; an empty MSH-10 fails in sendAndWait below (400).
    if (!message.getSegment('MSH')?.getField(10)) {
      this.log(`[push] ${remote}: MSH.10 is missing but required; message dropped without an answer`);
      return undefined;
    }
    if (this.closed) {
      return textReply(400, 'Cannot get new client, pool is closed');
    }

    const pooled = this.acquire(owner, remote, address, keepAlive);
    try {
      const ack = await pooled.client.sendAndWait(message);
      return { statusCode: 200, contentType: ContentType.HL7_V2, body: ack.toString() };
    } catch (err) {
      this.log(`[push] ${remote}: HL7 error: ${normalizeErrorString(err)}`);
      void this.discard(pooled);
      return textReply(400, normalizeErrorString(err));
    } finally {
      this.release(pooled, keepAlive);
    }
  }

  /**
   * Closes one agent's connections (its `keepAlive` setting changed, as the stock agent resets its
   * pools then).
   * @param owner - The Agent id.
   */
  async closeOwner(owner: string): Promise<void> {
    const prefix = owner + '\n';
    await Promise.all([...this.clients.values()].filter((p) => p.key.startsWith(prefix)).map((p) => this.discard(p)));
  }

  /** Closes every connection; later pushes get the stock closed-pool error. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.clients.values()].map((pooled) => this.discard(pooled)));
  }

  /** @returns How many device connections are pooled (open or opening). */
  size(): number {
    return this.clients.size;
  }

  private log(message: string): void {
    this.options.log?.(message);
  }

  private acquire(owner: string, remote: string, address: URL, keepAlive: boolean): PooledClient {
    const key = `${owner}\n${remote}`;
    let pooled = this.clients.get(key);
    if (!pooled) {
      const client = new Hl7Client({
        host: address.hostname,
        port: Number.parseInt(address.port, 10),
        encoding: address.searchParams.get('encoding') ?? undefined,
        keepAlive,
        connectTimeout: this.options.connectTimeoutMs ?? DEVICE_CONNECT_TIMEOUT_MS,
      });
      const created: PooledClient = { key, client };
      // As the stock pool: a connection that errors (socket error, or an ACK for an unknown
      // control id) is closed and forgotten; one the device closed is forgotten.
      client.addEventListener('error', (event: Hl7ErrorEvent) => {
        this.log(`[push] ${remote}: connection error: ${normalizeErrorString(event.error)}; closing it`);
        void this.discard(created);
      });
      client.addEventListener('close', () => this.forget(created));
      this.clients.set(key, created);
      this.touch(created, keepAlive);
      pooled = created;
    }
    // Reusing a connection does not count as use: the stock pool stamps it on creation and release.
    return pooled;
  }

  private release(pooled: PooledClient, keepAlive: boolean): void {
    if (this.clients.get(pooled.key) === pooled) {
      this.touch(pooled, keepAlive);
    }
  }

  /** Restarts the idle countdown of a connection without keepAlive. */
  private touch(pooled: PooledClient, keepAlive: boolean): void {
    clearTimeout(pooled.idleTimer);
    pooled.idleTimer = undefined;
    if (keepAlive) {
      return;
    }
    pooled.idleTimer = setTimeout(() => void this.discard(pooled), this.options.idleTimeoutMs ?? DEVICE_IDLE_TIMEOUT_MS);
    // An idle connection must not keep the process alive.
    pooled.idleTimer.unref();
  }

  private forget(pooled: PooledClient): void {
    clearTimeout(pooled.idleTimer);
    pooled.idleTimer = undefined;
    if (this.clients.get(pooled.key) === pooled) {
      this.clients.delete(pooled.key);
    }
  }

  private async discard(pooled: PooledClient): Promise<void> {
    this.forget(pooled);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      pooled.client.close().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
  }
}

function textReply(statusCode: number, body: string): AgentReply {
  return { statusCode, contentType: ContentType.TEXT, body };
}
