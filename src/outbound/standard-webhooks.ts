// Signing and verification of partner webhooks per the Standard Webhooks specification
// (https://www.standardwebhooks.com/, spec text:
// https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
// plus Medplum's own `X-Signature` header
// (https://www.medplum.com/docs/subscriptions/subscription-extensions).
//
// Pure functions, no I/O. Buffer and crypto are imported (not taken from globals) so the module
// also runs inside Medplum bots, whose vmcontext sandbox has neither global.

import { Buffer } from 'node:buffer';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { hmacSha256Hex } from '../net/hmac.ts';

/** Prefix of a serialized symmetric signing secret ("secret serialization" in the spec). */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

/** Default replay window: the reference libraries refuse timestamps more than 5 minutes off. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

/** The spec asks for symmetric secrets of at least 24 random bytes (192 bits). */
const MIN_SECRET_BYTES = 24;

/** Signature identifier of HMAC-SHA256 signatures (`v1a` is the asymmetric ed25519 scheme). */
const SYMMETRIC_VERSION = 'v1';

/**
 * Largest accepted Unix timestamp in seconds (year 2286). Anything larger is almost certainly
 * milliseconds passed by mistake, which would otherwise sign a timestamp every receiver refuses.
 */
const MAX_UNIX_SECONDS = 9_999_999_999;

/** Canonical, padded standard base64 (no URL-safe alphabet, no whitespace). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A message id: printable ASCII without spaces and without `.`. The spec requires ids not to
 * contain `.`, which delimits the signed content `{id}.{timestamp}.{body}`: an id with a dot
 * could make one signed string read as a different (id, timestamp, body) triple.
 */
const MESSAGE_ID = /^[!-\-/-~]+$/; // 0x21-0x7E except 0x2E ('.')

/** The raw request body, exactly as sent: the signature covers these bytes. */
export type WebhookBody = string | Uint8Array;

/** The three Standard Webhooks headers, lowercase as the spec names them. */
export type StandardWebhookHeaders = {
  readonly 'webhook-id': string;
  readonly 'webhook-timestamp': string;
  readonly 'webhook-signature': string;
};

/** Input of {@link signStandardWebhook}. */
export interface SignStandardWebhookInput {
  /** Unique message id, stable across retries (receivers use it as an idempotency key). */
  readonly id: string;
  /** Time of this delivery attempt: a Date, or integer Unix seconds. */
  readonly timestamp: Date | number;
  /** The exact body that will be sent. */
  readonly body: WebhookBody;
  /**
   * Active `whsec_` secrets; the message is signed once with each. During a rotation both the
   * old and the new secret are listed, so the receiver accepts whichever one it holds.
   */
  readonly secrets: readonly string[];
}

/** Something with a case-insensitive `get`, such as the Fetch API `Headers`. */
export interface HeaderLookup {
  get(name: string): string | null;
}

/** Incoming headers: a Fetch `Headers`-like object, or a plain record such as Node's `IncomingHttpHeaders`. */
export type IncomingWebhookHeaders = HeaderLookup | Readonly<Record<string, string | readonly string[] | undefined>>;

/** Input of {@link verifyStandardWebhook}. */
export interface VerifyStandardWebhookInput {
  /** The request headers (names are matched case-insensitively). */
  readonly headers: IncomingWebhookHeaders;
  /** The raw body as received, before any JSON parsing (re-serializing changes the bytes). */
  readonly body: WebhookBody;
  /** The receiver's `whsec_` secret. */
  readonly secret: string;
  /** Largest accepted distance, in seconds, between `webhook-timestamp` and now. Default 300. */
  readonly toleranceSeconds?: number;
  /** The current time (Date or integer Unix seconds); defaults to the clock. */
  readonly now?: Date | number;
}

/** Outcome of {@link verifyStandardWebhook}; `reason` never contains secret material. */
export type WebhookVerification = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Signs a webhook per Standard Webhooks: HMAC-SHA256 keyed with each secret over
 * `{id}.{timestamp}.{body}`, sent as space-separated `v1,<base64>` entries.
 * @param input - Message id, attempt time, exact body and the active secrets.
 * @returns The `webhook-id`, `webhook-timestamp` (integer seconds) and `webhook-signature` headers.
 * @throws Error when the id, timestamp or a secret is malformed (the message never includes the secret).
 */
export function signStandardWebhook(input: SignStandardWebhookInput): StandardWebhookHeaders {
  assertMessageId(input.id);
  const timestamp = toUnixSeconds(input.timestamp, 'timestamp');
  if (input.secrets.length === 0) {
    throw new Error('At least one webhook secret is required');
  }
  const signatures: string[] = [];
  input.secrets.forEach((secret, index) => {
    const key = decodeWebhookSecret(secret, `secrets[${index}]`);
    const signature = `${SYMMETRIC_VERSION},${hmacBase64(key, input.id, timestamp, input.body)}`;
    // The same secret listed twice would only repeat a signature.
    if (!signatures.includes(signature)) {
      signatures.push(signature);
    }
  });
  return {
    'webhook-id': input.id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signatures.join(' '),
  };
}

/**
 * Verifies a Standard Webhooks delivery, as a partner's receiver does: all three headers must be
 * present, the timestamp within the tolerance of now (replay protection), and at least one of the
 * space-separated `v1,` signatures must equal the HMAC of `{id}.{timestamp}.{body}` (compared in
 * constant time). Entries of other schemes (`v1a`, future versions) are ignored, as the spec allows.
 * @param input - Headers, raw body, the receiver's secret, and optionally tolerance and now.
 * @returns `{ ok: true }`, or `{ ok: false, reason }` for a delivery to refuse (answer 401).
 * @throws Error when the receiver's own configuration is wrong (malformed secret, bad tolerance or
 * now): a deployment fault, not a bad request.
 */
export function verifyStandardWebhook(input: VerifyStandardWebhookInput): WebhookVerification {
  const key = decodeWebhookSecret(input.secret, 'secret');
  const tolerance = input.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new Error('toleranceSeconds must be a non-negative number');
  }
  const now = toUnixSeconds(input.now ?? new Date(), 'now');

  const id = readHeader(input.headers, 'webhook-id');
  if (!id.ok) {
    return id;
  }
  const timestampHeader = readHeader(input.headers, 'webhook-timestamp');
  if (!timestampHeader.ok) {
    return timestampHeader;
  }
  const signatureHeader = readHeader(input.headers, 'webhook-signature');
  if (!signatureHeader.ok) {
    return signatureHeader;
  }

  if (!MESSAGE_ID.test(id.value)) {
    return fail('malformed webhook-id header');
  }
  // Integer seconds only: parseInt would accept "12abc" or "1e3" and sign something else.
  if (!/^\d{1,10}$/.test(timestampHeader.value)) {
    return fail('malformed webhook-timestamp header');
  }
  const timestamp = Number(timestampHeader.value);
  if (now - timestamp > tolerance) {
    return fail('webhook-timestamp is too old');
  }
  if (timestamp - now > tolerance) {
    return fail('webhook-timestamp is too far in the future');
  }

  const candidates = parseSignatures(signatureHeader.value);
  if (candidates.length === 0) {
    return fail('no v1 signature in webhook-signature header');
  }
  // Compare the base64 text, not decoded bytes: Buffer's base64 decoder is lenient, so decoding
  // would accept altered encodings of the same bytes.
  const expected = Buffer.from(hmacBase64(key, id.value, timestamp, input.body), 'utf8');
  for (const candidate of candidates) {
    const actual = Buffer.from(candidate, 'utf8');
    if (actual.length === expected.length && timingSafeEqual(actual, expected)) {
      return { ok: true };
    }
  }
  return fail('no matching signature');
}

/**
 * Generates a new signing secret: `whsec_` followed by the base64 of 24 random bytes, the
 * minimum the spec asks for.
 * @returns The serialized secret.
 */
export function generateWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + randomBytes(MIN_SECRET_BYTES).toString('base64');
}

/**
 * Medplum's `X-Signature` header value: lowercase hex HMAC-SHA256 of the exact body, keyed with
 * the secret string itself (UTF-8, not base64-decoded). Sent alongside the Standard Webhooks
 * headers so receivers written for Medplum subscriptions keep working.
 * @param secret - The shared secret, used as is.
 * @param body - The exact body that will be sent.
 * @returns The hex signature.
 * @throws Error when the secret is empty.
 */
export function medplumSignature(secret: string, body: WebhookBody): string {
  if (secret.length === 0) {
    throw new Error('Medplum signature secret must not be empty');
  }
  return hmacSha256Hex(secret, body);
}

/**
 * Decodes a `whsec_<base64>` secret to its HMAC key.
 * @param secret - The serialized secret.
 * @param label - How to name the secret in an error (never its value).
 * @returns The key bytes.
 */
function decodeWebhookSecret(secret: string, label: string): Buffer {
  if (typeof secret !== 'string' || !secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    throw new Error(`Webhook ${label} must start with "${WEBHOOK_SECRET_PREFIX}"`);
  }
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  if (encoded.length === 0 || !BASE64.test(encoded)) {
    throw new Error(`Webhook ${label} is not valid base64 after "${WEBHOOK_SECRET_PREFIX}"`);
  }
  const key = Buffer.from(encoded, 'base64');
  if (key.length < MIN_SECRET_BYTES) {
    throw new Error(`Webhook ${label} is too short: the key must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  return key;
}

/** HMAC-SHA256 over `{id}.{timestamp}.{body}`, base64. The body is fed as bytes, unchanged. */
function hmacBase64(key: Buffer, id: string, timestamp: number, body: WebhookBody): string {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`, 'utf8').update(body).digest('base64');
}

function assertMessageId(id: string): void {
  if (typeof id !== 'string' || !MESSAGE_ID.test(id)) {
    throw new Error('Webhook id must be non-empty printable ASCII without spaces or "."');
  }
}

/**
 * Converts a Date or integer Unix seconds to Unix seconds.
 * @param value - The time.
 * @param label - The argument's name, for errors.
 * @returns Whole seconds since the epoch.
 */
function toUnixSeconds(value: Date | number, label: string): number {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) {
      throw new Error(`${label} is an invalid Date`);
    }
    return Math.floor(ms / 1000);
  }
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${label} must be a Date or non-negative integer Unix seconds`);
  }
  if (value > MAX_UNIX_SECONDS) {
    throw new Error(`${label} looks like milliseconds; pass Unix seconds or a Date`);
  }
  return value;
}

type HeaderRead = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly reason: string };

/**
 * Reads one header case-insensitively; a missing, empty or repeated header is refused, since a
 * repeated one leaves it ambiguous which value was signed.
 */
function readHeader(headers: IncomingWebhookHeaders, name: string): HeaderRead {
  let values: string[];
  if (isHeaderLookup(headers)) {
    const value = headers.get(name);
    values = value === null ? [] : [value];
  } else {
    values = [];
    for (const [key, value] of Object.entries(headers)) {
      if (key.toLowerCase() !== name || value === undefined) {
        continue;
      }
      values.push(...(typeof value === 'string' ? [value] : value));
    }
  }
  if (values.length > 1) {
    return fail(`repeated ${name} header`);
  }
  const value = values[0]?.trim();
  if (!value) {
    return fail(`missing ${name} header`);
  }
  return { ok: true, value };
}

function isHeaderLookup(headers: IncomingWebhookHeaders): headers is HeaderLookup {
  // Duck-typed rather than `instanceof Headers`: the global may be absent in a bot sandbox.
  return typeof (headers as Partial<HeaderLookup>).get === 'function';
}

/** The base64 parts of the `v1,` entries of a `webhook-signature` header. */
function parseSignatures(header: string): string[] {
  const result: string[] = [];
  for (const entry of header.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma > 0 && entry.slice(0, comma) === SYMMETRIC_VERSION && comma < entry.length - 1) {
      result.push(entry.slice(comma + 1));
    }
  }
  return result;
}

function fail(reason: string): { readonly ok: false; readonly reason: string } {
  return { ok: false, reason };
}
