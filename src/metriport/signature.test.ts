import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { signWebhookBody, verifyWebhookSignature } from './signature.ts';

describe('webhook signature', () => {
  const key = 'whk_test';
  const body = JSON.stringify({ meta: { messageId: 'm1', when: '2025-01-01T00:00:00.000Z', type: 'medical.consolidated-data' }, patients: [] });

  test('is the hex HMAC-SHA256 of the exact body', () => {
    expect(signWebhookBody(key, body)).toBe(createHmac('sha256', key).update(body).digest('hex'));
  });

  test('accepts the right signature in either case, and nothing else', () => {
    const signature = signWebhookBody(key, body);
    expect(verifyWebhookSignature(key, body, signature)).toBe(true);
    expect(verifyWebhookSignature(key, body, signature.toUpperCase())).toBe(true);
    expect(verifyWebhookSignature(key, body + ' ', signature)).toBe(false);
    expect(verifyWebhookSignature('other', body, signature)).toBe(false);
    expect(verifyWebhookSignature(key, body, undefined)).toBe(false);
    expect(verifyWebhookSignature(key, body, '')).toBe(false);
    expect(verifyWebhookSignature(key, body, signature.slice(2))).toBe(false);
    expect(verifyWebhookSignature(key, body, 'zz' + signature.slice(2))).toBe(false);
  });

  test('a parsed and re-serialized body verifies as sent (the bot sees the parsed body)', () => {
    const sent = JSON.stringify({ meta: { messageId: 'm', when: 'w', type: 't' }, text: 'é ü \u2028 "quoted" </script>', n: 1.5e21 });
    expect(verifyWebhookSignature(key, JSON.stringify(JSON.parse(sent)), signWebhookBody(key, sent))).toBe(true);
  });
});
