import { Buffer } from 'node:buffer';
import { timingSafeEqual } from 'node:crypto';
import { hmacSha256Hex } from '../net/hmac.ts';

/**
 * Computes Metriport's webhook signature: lowercase hex HMAC-SHA256 of the body, keyed with the
 * account's webhook key (no timestamp, no prefix; facts §2.1).
 * @param webhookKey - The webhook key.
 * @param body - The exact body.
 * @returns The hex signature.
 */
export function signWebhookBody(webhookKey: string, body: string): string {
  return hmacSha256Hex(webhookKey, body);
}

/**
 * Checks `x-metriport-signature` in constant time. Metriport signs `JSON.stringify(payload)` and
 * sends exactly that string; the Medplum server hands bots the parsed body only, so the caller
 * passes `JSON.stringify(event.input)`, which reproduces those bytes (a JSON text produced by
 * `JSON.stringify` re-serializes to itself after `JSON.parse`).
 * @param webhookKey - The webhook key.
 * @param body - The body as sent.
 * @param signature - The header value.
 * @returns True when the signature matches.
 */
export function verifyWebhookSignature(webhookKey: string, body: string, signature: string | undefined): boolean {
  if (!signature || !/^[0-9a-fA-F]{64}$/.test(signature)) {
    return false;
  }
  const expected = Buffer.from(signWebhookBody(webhookKey, body), 'hex');
  const given = Buffer.from(signature, 'hex');
  return expected.length === given.length && timingSafeEqual(expected, given);
}
