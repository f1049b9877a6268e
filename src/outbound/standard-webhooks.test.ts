import { Buffer } from 'node:buffer';
import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import {
  generateWebhookSecret,
  medplumSignature,
  signStandardWebhook,
  verifyStandardWebhook,
  WEBHOOK_SECRET_PREFIX,
} from './standard-webhooks.ts';

// Known vector from the Standard Webhooks reference JavaScript library, test "sign function works":
// https://github.com/standard-webhooks/standard-webhooks/blob/main/libraries/javascript/src/webhook.test.ts
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

const NOW = 1_700_000_000;
const SECRET_A = generateWebhookSecret();
const SECRET_B = generateWebhookSecret();
const BODY = '{"resourceType":"Patient","id":"p1","meta":{"versionId":"2"}}';

function signed(secrets: string[] = [SECRET_A], timestamp = NOW, id = 'msg_1', body = BODY): Record<string, string> {
  return signStandardWebhook({ id, timestamp, body, secrets });
}

describe('signStandardWebhook', () => {
  test('matches the reference library vector', () => {
    const headers = signStandardWebhook({
      id: VECTOR.id,
      timestamp: new Date(VECTOR.timestamp * 1000),
      body: VECTOR.body,
      secrets: [VECTOR.secret],
    });
    expect(headers).toEqual({
      'webhook-id': VECTOR.id,
      'webhook-timestamp': '1614265330',
      'webhook-signature': VECTOR.signature,
    });
    // Seconds and a Date sign the same; sub-second parts of a Date are dropped.
    expect(signStandardWebhook({ ...VECTOR, secrets: [VECTOR.secret] })['webhook-signature']).toBe(VECTOR.signature);
    expect(
      signStandardWebhook({ ...VECTOR, timestamp: new Date(VECTOR.timestamp * 1000 + 999), secrets: [VECTOR.secret] })['webhook-signature']
    ).toBe(VECTOR.signature);
  });

  test('agrees with an independent node:crypto computation', () => {
    const key = Buffer.from(SECRET_A.slice('whsec_'.length), 'base64');
    const expected = createHmac('sha256', key).update(`msg_1.${NOW}.${BODY}`).digest('base64');
    expect(signed()['webhook-signature']).toBe(`v1,${expected}`);
  });

  test('signs bytes and the equal string identically', () => {
    const asBytes = signStandardWebhook({ id: 'msg_1', timestamp: NOW, body: Buffer.from(BODY), secrets: [SECRET_A] });
    expect(asBytes).toEqual(signed());
  });

  test('one v1 signature per secret, space separated, duplicates collapsed', () => {
    const both = signed([SECRET_A, SECRET_B])['webhook-signature'].split(' ');
    expect(both).toHaveLength(2);
    expect(both[0]).toBe(signed([SECRET_A])['webhook-signature']);
    expect(both[1]).toBe(signed([SECRET_B])['webhook-signature']);
    expect(signed([SECRET_A, SECRET_A])['webhook-signature'].split(' ')).toHaveLength(1);
  });

  test('refuses malformed secrets without echoing them', () => {
    const secretish = 'not-a-whsec-secret-value-123';
    const cases: [string, RegExp][] = [
      [secretish, /must start with "whsec_"/],
      ['whsec_', /not valid base64/],
      ['whsec_%%%%invalid%%%%', /not valid base64/],
      ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS', /not valid base64/], // bad length
      ['whsec_MfKQ9r8G KYqrTwjUPD8ILPZIo2LaLaSw', /not valid base64/], // whitespace
      ['whsec_MfKQ9r8GKYqrTwjU', /too short/], // 15 bytes
    ];
    for (const [secret, message] of cases) {
      let error: unknown;
      try {
        signStandardWebhook({ id: 'msg_1', timestamp: NOW, body: BODY, secrets: [SECRET_A, secret] });
      } catch (e) {
        error = e;
      }
      expect(error, secret).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain('secrets[1]');
      if (secret.length > 'whsec_'.length) {
        expect((error as Error).message).not.toContain(secret.slice('whsec_'.length));
      }
    }
    expect(() => signStandardWebhook({ id: 'msg_1', timestamp: NOW, body: BODY, secrets: [] })).toThrow(/At least one/);
  });

  test('refuses ids with "." or spaces, and timestamps that are not whole seconds', () => {
    expect(() => signed([SECRET_A], NOW, 'msg.1')).toThrow(/Webhook id/);
    expect(() => signed([SECRET_A], NOW, 'msg 1')).toThrow(/Webhook id/);
    expect(() => signed([SECRET_A], NOW, '')).toThrow(/Webhook id/);
    expect(() => signed([SECRET_A], 1.5)).toThrow(/integer Unix seconds/);
    expect(() => signed([SECRET_A], -1)).toThrow(/integer Unix seconds/);
    expect(() => signed([SECRET_A], Date.now())).toThrow(/milliseconds/);
    expect(() => signStandardWebhook({ id: 'm', timestamp: new Date('nope'), body: '', secrets: [SECRET_A] })).toThrow(/invalid Date/);
  });
});

describe('verifyStandardWebhook', () => {
  const verify = (headers: Record<string, string | string[] | undefined>, secret = SECRET_A, body: string = BODY, toleranceSeconds?: number) =>
    verifyStandardWebhook({ headers, body, secret, now: NOW, toleranceSeconds });

  test('accepts the reference vector', () => {
    const headers = { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': VECTOR.signature };
    expect(verifyStandardWebhook({ headers, body: VECTOR.body, secret: VECTOR.secret, now: new Date(VECTOR.timestamp * 1000) })).toEqual({
      ok: true,
    });
  });

  test('round-trips, with header names in any case, a Headers object, or a Buffer body', () => {
    const headers = signed();
    expect(verify(headers)).toEqual({ ok: true });
    const shouting = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verify(shouting)).toEqual({ ok: true });
    expect(verifyStandardWebhook({ headers: new Headers(headers), body: BODY, secret: SECRET_A, now: NOW })).toEqual({ ok: true });
    expect(verifyStandardWebhook({ headers, body: Buffer.from(BODY), secret: SECRET_A, now: NOW })).toEqual({ ok: true });
  });

  test('rotation: a message signed with old and new secrets verifies with either', () => {
    const headers = signed([SECRET_A, SECRET_B]);
    expect(verify(headers, SECRET_A)).toEqual({ ok: true });
    expect(verify(headers, SECRET_B)).toEqual({ ok: true });
    expect(verify(headers, generateWebhookSecret())).toEqual({ ok: false, reason: 'no matching signature' });
  });

  test('ignores other schemes and picks the matching v1 entry among several', () => {
    const good = signed()['webhook-signature'];
    const noise = 'v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==';
    const wrong = 'v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=';
    expect(verify({ ...signed(), 'webhook-signature': `${noise} ${wrong} v2,${good.slice(3)} ${good}` })).toEqual({ ok: true });
    // The same bytes under another version tag are not a v1 signature.
    expect(verify({ ...signed(), 'webhook-signature': `v2,${good.slice(3)}` })).toEqual({
      ok: false,
      reason: 'no v1 signature in webhook-signature header',
    });
  });

  test('refuses a tampered body, id or timestamp', () => {
    const headers = signed();
    expect(verify(headers, SECRET_A, BODY.replace('p1', 'p2'))).toEqual({ ok: false, reason: 'no matching signature' });
    expect(verify(headers, SECRET_A, `${BODY} `)).toEqual({ ok: false, reason: 'no matching signature' });
    expect(verify({ ...headers, 'webhook-id': 'msg_2' })).toEqual({ ok: false, reason: 'no matching signature' });
    expect(verify({ ...headers, 'webhook-timestamp': String(NOW + 1) })).toEqual({ ok: false, reason: 'no matching signature' });
  });

  test('refuses signatures that differ only in encoding or length', () => {
    const signature = signed()['webhook-signature'];
    expect(verify({ ...signed(), 'webhook-signature': signature.slice(0, -1) })).toMatchObject({ ok: false });
    expect(verify({ ...signed(), 'webhook-signature': signature.replace(/=$/, '') })).toMatchObject({ ok: false });
    expect(verify({ ...signed(), 'webhook-signature': `${signature}AA` })).toMatchObject({ ok: false });
    expect(verify({ ...signed(), 'webhook-signature': 'v1,' })).toMatchObject({ ok: false });
  });

  test('tolerance: inside the window accepted, outside refused both ways (replay protection)', () => {
    expect(verify(signed([SECRET_A], NOW - 300))).toEqual({ ok: true });
    expect(verify(signed([SECRET_A], NOW + 300))).toEqual({ ok: true });
    expect(verify(signed([SECRET_A], NOW - 301))).toEqual({ ok: false, reason: 'webhook-timestamp is too old' });
    expect(verify(signed([SECRET_A], NOW + 301))).toEqual({ ok: false, reason: 'webhook-timestamp is too far in the future' });
    expect(verify(signed([SECRET_A], NOW - 30))).toEqual({ ok: true });
    expect(verify(signed([SECRET_A], NOW - 30), SECRET_A, BODY, 10)).toEqual({ ok: false, reason: 'webhook-timestamp is too old' });
    // Default `now` is the clock: a message signed just now verifies without it.
    const fresh = signStandardWebhook({ id: 'msg_1', timestamp: new Date(), body: BODY, secrets: [SECRET_A] });
    expect(verifyStandardWebhook({ headers: fresh, body: BODY, secret: SECRET_A })).toEqual({ ok: true });
  });

  test('refuses missing, empty, repeated and malformed headers', () => {
    const headers = signed();
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
      const { [name]: _removed, ...rest } = headers;
      expect(verify(rest)).toEqual({ ok: false, reason: `missing ${name} header` });
      expect(verify({ ...headers, [name]: '' })).toEqual({ ok: false, reason: `missing ${name} header` });
      expect(verify({ ...headers, [name]: [headers[name], headers[name]] })).toEqual({ ok: false, reason: `repeated ${name} header` });
    }
    expect(verify({ ...headers, 'webhook-timestamp': 'hello' })).toEqual({ ok: false, reason: 'malformed webhook-timestamp header' });
    expect(verify({ ...headers, 'webhook-timestamp': `${NOW}abc` })).toEqual({ ok: false, reason: 'malformed webhook-timestamp header' });
    expect(verify({ ...headers, 'webhook-timestamp': '1.7e9' })).toEqual({ ok: false, reason: 'malformed webhook-timestamp header' });
    expect(verify({ ...headers, 'webhook-timestamp': '-1' })).toEqual({ ok: false, reason: 'malformed webhook-timestamp header' });
    expect(verify({ ...headers, 'webhook-id': 'msg.1' })).toEqual({ ok: false, reason: 'malformed webhook-id header' });
    expect(verify({ ...headers, 'webhook-signature': 'garbage' })).toEqual({ ok: false, reason: 'no v1 signature in webhook-signature header' });
  });

  test('a malformed receiver secret is a configuration error, not a refusal', () => {
    expect(() => verify(signed(), 'plain-secret')).toThrow(/must start with "whsec_"/);
    expect(() => verify(signed(), 'whsec_@@@@')).toThrow(/not valid base64/);
    expect(() => verify(signed(), SECRET_A, BODY, -1)).toThrow(/toleranceSeconds/);
  });
});

describe('generateWebhookSecret', () => {
  test('whsec_ + base64 of 24 random bytes, usable for signing', () => {
    const secret = generateWebhookSecret();
    expect(secret.startsWith(WEBHOOK_SECRET_PREFIX)).toBe(true);
    expect(Buffer.from(secret.slice(WEBHOOK_SECRET_PREFIX.length), 'base64')).toHaveLength(24);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(generateWebhookSecret()).not.toBe(secret);
    expect(verify(secret)).toEqual({ ok: true });

    function verify(s: string) {
      return verifyStandardWebhook({ headers: signed([s]), body: BODY, secret: s, now: NOW });
    }
  });
});

describe('medplumSignature', () => {
  test('lowercase hex HMAC-SHA256 of the body keyed with the secret string', () => {
    // Independent computation, as Medplum's docs show receivers doing it:
    // crypto.createHmac('sha256', secret).update(body).digest('hex')
    const expected = createHmac('sha256', 'abc').update(BODY).digest('hex');
    expect(medplumSignature('abc', BODY)).toBe(expected);
    expect(medplumSignature('abc', Buffer.from(BODY))).toBe(expected);
    expect(expected).toMatch(/^[0-9a-f]{64}$/);
    // The secret string is the key as is: a whsec_ secret is not base64-decoded here.
    expect(medplumSignature(SECRET_A, BODY)).toBe(createHmac('sha256', Buffer.from(SECRET_A, 'utf8')).update(BODY).digest('hex'));
    // RFC 4231 test case 2 (key "Jefe"), a published HMAC-SHA256 vector.
    expect(medplumSignature('Jefe', 'what do ya want for nothing?')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'
    );
    expect(() => medplumSignature('', BODY)).toThrow(/must not be empty/);
  });
});
