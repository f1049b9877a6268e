import { createHmac } from 'node:crypto';

/**
 * The signature Medplum's `X-Signature` and Metriport's `x-metriport-signature` both use:
 * lowercase hex HMAC-SHA256 of the exact body, keyed with the secret's text.
 * @param key - The secret.
 * @param body - The exact body.
 * @returns The hex digest.
 */
export function hmacSha256Hex(key: string, body: string | Uint8Array): string {
  return createHmac('sha256', key).update(body).digest('hex');
}
