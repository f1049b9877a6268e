import { randomUUID } from 'node:crypto';
import type { ClientRequest } from 'node:http';
import type { FakeMetriportFaults, FakeWebhookSettings, PingOutcome, WebhookRequestRow } from './types.ts';
import type { DeliveryResult } from './webhook-sender.ts';
import { isPong, newPing, pingBody, postWebhook, signWebhook, webhookBody } from './webhook-sender.ts';

/** A row as the outbox updates it. */
export type MutableRow = { -readonly [K in keyof WebhookRequestRow]: WebhookRequestRow[K] };

/** What the outbox needs from the fake. */
export interface OutboxConfig {
  readonly webhookKey: string;
  readonly timeoutMs: number;
  readonly pingTimeoutMs: number;
  /** The fake's switches, read at each send. */
  readonly faults: Readonly<FakeMetriportFaults>;
}

/**
 * Metriport's webhook side for one account (MP `webhook.ts`, `retry-failed.ts`,
 * `updateSettings.ts`): the webhook_request rows, deliveries with their bookkeeping (a failure
 * marks the row and disables the account's webhook status, the next success enables it again,
 * and later messages are sent either way), the ping test, and manual replays without `meta.data`.
 */
export class WebhookOutbox {
  private readonly config: OutboxConfig;
  private readonly rows: MutableRow[] = [];
  private readonly inFlight = new Set<ClientRequest>();
  private url?: string;
  private enabled = false;
  private statusDetail?: string;
  private stopped = false;

  constructor(config: OutboxConfig) {
    this.config = config;
  }

  /** @returns The URL, or undefined when none is set. */
  get webhookUrl(): string | undefined {
    return this.url;
  }

  /** @returns The rows, in creation order (snapshots). */
  snapshot(): WebhookRequestRow[] {
    return this.rows.map((r) => ({ ...r }));
  }

  /** @returns URL and status. */
  settings(): FakeWebhookSettings {
    return { webhookUrl: this.url, webhookEnabled: this.enabled, webhookStatusDetail: this.statusDetail };
  }

  /** @returns `GET /settings/webhook`. */
  statusDto(): Record<string, unknown> {
    return {
      webhookEnabled: this.enabled,
      webhookStatusDetail: this.statusDetail ?? null,
      webhookRequestsProcessing: this.rows.filter((r) => r.status === 'processing').length,
      webhookRequestsFailed: this.rows.filter((r) => r.status === 'failure').length,
    };
  }

  /**
   * Sets the URL and runs the ping test; an empty URL clears it.
   * @param url - The webhook URL.
   * @returns The ping outcome.
   */
  async setUrl(url: string): Promise<PingOutcome> {
    if (!url) {
      this.url = undefined;
      this.enabled = false;
      this.statusDetail = undefined;
      return { pingOk: false, detail: 'No webhook URL' };
    }
    this.url = url;
    return this.ping(url);
  }

  /**
   * Records a new message.
   * @param type - `meta.type`.
   * @param payload - The keys besides `meta`.
   * @param requestId - `meta.requestId`.
   * @param data - `meta.data` (the customer's metadata).
   * @returns The row, status processing.
   */
  createRow(type: string, payload: Record<string, unknown>, requestId: string | undefined, data: Readonly<Record<string, string>> | undefined): MutableRow {
    const row: MutableRow = {
      messageId: randomUUID(),
      ...(requestId ? { requestId } : {}),
      type,
      status: 'processing',
      createdAt: new Date().toISOString(),
      payload,
      ...(data ? { data } : {}),
      deliveries: 0,
    };
    this.rows.push(row);
    return row;
  }

  /**
   * Sends a row (twice under `duplicateDelivery`, same bytes). Without a URL the row just fails,
   * as Metriport's `missingWHSettings`, so a later replay picks it up.
   * @param row - The row.
   * @param withData - False for replays, which leave `meta.data` out.
   */
  async deliver(row: MutableRow, withData: boolean): Promise<void> {
    const url = this.url;
    if (!url) {
      row.status = 'failure';
      row.statusDetail = 'Missing webhook config';
      return;
    }
    const faults = this.config.faults;
    const data = withData && !faults.dropMetaData ? row.data : undefined;
    const body = webhookBody({ messageId: row.messageId, requestId: row.requestId, when: row.createdAt, type: row.type, data }, row.payload);
    const signature = this.signatureFor(body);
    for (let i = 0; i < (faults.duplicateDelivery ? 2 : 1); i++) {
      row.status = 'processing';
      const result = await postWebhook(url, body, signature, this.config.timeoutMs, this.inFlight);
      if (this.stopped) {
        return;
      }
      this.record(row, result);
    }
  }

  /** @returns The failure rows, oldest first, now marked processing (before the route answers). */
  takeFailures(): MutableRow[] {
    const failures = this.rows.filter((r) => r.status === 'failure').sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    for (const row of failures) {
      row.status = 'processing';
    }
    return failures;
  }

  /**
   * Replays rows one after the other, without `meta.data`.
   * @param rows - From {@link takeFailures}.
   */
  async replay(rows: readonly MutableRow[]): Promise<void> {
    for (const row of rows) {
      if (this.stopped) {
        return;
      }
      await this.deliver(row, false);
    }
  }

  /** Aborts deliveries in flight; nothing is recorded afterwards. */
  stop(): void {
    this.stopped = true;
    for (const req of this.inFlight) {
      req.destroy();
    }
  }

  /** Row and account status after a delivery (MP `processRequest`). */
  private record(row: MutableRow, result: DeliveryResult): void {
    row.deliveries++;
    row.durationMs = result.durationMs;
    row.httpStatus = result.httpStatus;
    row.responseBody = result.responseBody;
    if (result.ok) {
      row.status = 'success';
      row.statusDetail = undefined;
      if (!this.enabled) {
        this.enabled = true;
        this.statusDetail = 'OK';
      }
    } else {
      row.status = 'failure';
      row.statusDetail = result.detail;
      this.enabled = false;
      this.statusDetail = result.detail;
    }
  }

  /** The ping test (MP `sendTestPayload`): passes on a 2xx JSON answer whose `pong` equals the ping. */
  private async ping(url: string): Promise<PingOutcome> {
    const ping = newPing();
    const body = pingBody(ping, randomUUID(), new Date().toISOString());
    const result = await postWebhook(url, body, this.signatureFor(body), this.config.pingTimeoutMs, this.inFlight);
    if (!result.ok) {
      this.enabled = false;
      this.statusDetail = result.detail;
      return { pingOk: false, detail: result.detail };
    }
    const pingOk = isPong(result, ping);
    this.enabled = pingOk;
    this.statusDetail = pingOk ? 'OK' : 'Bad response from webhook call';
    return pingOk ? { pingOk } : { pingOk, detail: this.statusDetail };
  }

  private signatureFor(body: string): string | undefined {
    switch (this.config.faults.signature) {
      case 'missing':
        return undefined;
      case 'wrong':
        return signWebhook(`${this.config.webhookKey}-rotated`, body);
      default:
        return signWebhook(this.config.webhookKey, body);
    }
  }
}
