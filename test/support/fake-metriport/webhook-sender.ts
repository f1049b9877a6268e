import { createHmac, randomBytes } from 'node:crypto';
import type { ClientRequest } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** `meta` of a webhook message, in the key order Metriport writes it. */
export interface WebhookMeta {
  readonly messageId: string;
  readonly requestId?: string;
  readonly when: string;
  readonly type: string;
  readonly data?: Readonly<Record<string, string>>;
}

/** How a delivery went. */
export interface DeliveryResult {
  /** A 2xx answer arrived in time. */
  readonly ok: boolean;
  readonly httpStatus?: number;
  /** On failure, the error as Metriport records it (`String(axiosError)`). */
  readonly detail?: string;
  /** Answer body (first 64 KiB). */
  readonly responseBody?: string;
  readonly durationMs: number;
}

/** Answers kept per delivery. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * The body Metriport sends: `JSON.stringify({meta, ...payload})`, so `meta` comes first with
 * `messageId, requestId, when, type, data`; undefined keys vanish.
 * @param meta - The message metadata.
 * @param payload - The message keys besides `meta`.
 * @returns The exact body.
 */
export function webhookBody(meta: WebhookMeta, payload: Readonly<Record<string, unknown>>): string {
  return JSON.stringify({
    meta: { messageId: meta.messageId, requestId: meta.requestId, when: meta.when, type: meta.type, data: meta.data },
    ...payload,
  });
}

/**
 * The ping test body: `{ping, meta:{messageId, when, type:"ping"}}`, `ping` first.
 * @param ping - The value to echo as `pong`.
 * @param messageId - A fresh UUID.
 * @param when - ISO-8601 time.
 * @returns The exact body.
 */
export function pingBody(ping: string, messageId: string, when: string): string {
  return JSON.stringify({ ping, meta: { messageId, when, type: 'ping' } });
}

/** @returns A nanoid-like value (21 URL-safe characters), as Metriport's ping. */
export function newPing(): string {
  return randomBytes(16).toString('base64url').slice(0, 21);
}

/**
 * @param webhookKey - The account's webhook key.
 * @param body - The exact body.
 * @returns `x-metriport-signature`: lowercase hex HMAC-SHA256 of the body.
 */
export function signWebhook(webhookKey: string, body: string): string {
  return createHmac('sha256', webhookKey).update(body, 'utf8').digest('hex');
}

/**
 * POSTs a message as Metriport's axios call does: `content-type: application/json`,
 * `user-agent: Metriport API`, the signature header when given; credentials in the URL go out as
 * `Authorization: Basic` and leave the URL; redirects are not followed (a 3xx fails like any
 * non-2xx); the timeout covers the whole exchange. A fresh connection per delivery, so nothing
 * lingers after the fake stops.
 * @param url - The webhook URL.
 * @param body - The exact body.
 * @param signature - `x-metriport-signature`, or undefined to leave it out.
 * @param timeoutMs - Timeout.
 * @param inFlight - Requests in progress, for the owner to abort on stop.
 * @returns The outcome (never throws).
 */
export async function postWebhook(url: string, body: string, signature: string | undefined, timeoutMs: number, inFlight: Set<ClientRequest>): Promise<DeliveryResult> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  let target: URL;
  try {
    target = new URL(url);
  } catch (err) {
    return { ok: false, detail: `AxiosError: ${(err as Error).message}`, durationMs: elapsed() };
  }
  const headers: Record<string, string | number> = {
    accept: 'application/json, text/plain, */*',
    'content-type': 'application/json',
    'user-agent': 'Metriport API',
    'content-length': Buffer.byteLength(body),
  };
  if (signature !== undefined) {
    headers['x-metriport-signature'] = signature;
  }
  if (target.username || target.password) {
    const credentials = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    headers.authorization = `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;

  return new Promise<DeliveryResult>((resolve) => {
    let settled = false;
    const finish = (result: Omit<DeliveryResult, 'durationMs'>): void => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        inFlight.delete(req);
        resolve({ ...result, durationMs: elapsed() });
      }
    };
    const req = send(target, { method: 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size < MAX_RESPONSE_BYTES) {
          chunks.push(chunk);
        }
        size += chunk.length;
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const responseBody = Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES).toString('utf8');
        const ok = status >= 200 && status < 300;
        finish({ ok, httpStatus: status, responseBody, ...(ok ? {} : { detail: `AxiosError: Request failed with status code ${status}` }) });
      });
      res.on('error', (err) => finish({ ok: false, httpStatus: res.statusCode, detail: `AxiosError: ${err.message}` }));
    });
    inFlight.add(req);
    const timer = setTimeout(() => {
      finish({ ok: false, detail: `AxiosError: timeout of ${timeoutMs}ms exceeded` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err) => finish({ ok: false, detail: `AxiosError: ${err.message}` }));
    req.end(body);
  });
}

/**
 * Whether a ping answer passes Metriport's check: a JSON object whose `pong` equals the ping.
 * @param result - The delivery.
 * @param ping - The ping sent.
 * @returns True when it passes.
 */
export function isPong(result: DeliveryResult, ping: string): boolean {
  if (!result.ok || !result.responseBody) {
    return false;
  }
  try {
    const answer = JSON.parse(result.responseBody) as unknown;
    return typeof answer === 'object' && answer !== null && (answer as { pong?: unknown }).pong === ping;
  } catch {
    return false;
  }
}
