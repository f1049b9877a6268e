import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CHART_COLORS, renderStatusPage } from './status-html.ts';
import { basicCredentials, createStatusPageHandler, isStatusPath, statusQuery } from './status-page.ts';
import { readReplayRequest } from './status-replay.ts';

describe('status page: pure parts', () => {
  test('paths the handler answers', () => {
    expect(['/hub/status', '/hub/status/', '/hub/status.json', '/hub/status/replay'].every(isStatusPath)).toBe(true);
    expect(['/hub', '/hub/statuses', '/fhir/R4/Task', '/hub/status.js'].some(isStatusPath)).toBe(false);
  });

  test('HTTP Basic credentials: id and secret (a secret may hold colons)', () => {
    const header = (text: string): string => `Basic ${Buffer.from(text).toString('base64')}`;
    expect(basicCredentials(header('abc:s:e:c'))).toEqual({ clientId: 'abc', clientSecret: 's:e:c' });
    expect(basicCredentials(header(':secret'))).toBeUndefined();
    expect(basicCredentials(header('no-separator'))).toBeUndefined();
    expect(basicCredentials('Bearer xyz')).toBeUndefined();
    expect(basicCredentials(undefined)).toBeUndefined();
  });

  test('query: since, bucket size and count are checked', () => {
    expect(statusQuery(new URL('http://x/hub/status.json?since=2025-01-01&bucketMinutes=15&buckets=96'))).toEqual({ since: '2025-01-01', bucketSeconds: 900, buckets: 96 });
    expect(statusQuery(new URL('http://x/hub/status.json'))).toEqual({ since: undefined });
    expect(statusQuery(new URL('http://x/hub/status.json?since=yesterday'))).toMatch(/not an ISO 8601/);
    expect(statusQuery(new URL('http://x/hub/status.json?buckets=0'))).toMatch(/buckets must be/);
  });

  test('replay requests name a replayable kind and a FHIR id', () => {
    expect(readReplayRequest({ kind: 'hl7-message', id: 'abc-1' })).toEqual({ kind: 'hl7-message', id: 'abc-1' });
    expect(readReplayRequest({ kind: 'sftp-file', id: 'abc' })).toMatch(/kind must be/);
    expect(readReplayRequest({ kind: 'lab-order', id: '../x' })).toMatch(/id must be/);
    expect(readReplayRequest(null)).toMatch(/kind must be/);
  });

  test('the page is self-contained: no external script, style, image or font; data goes in as text only', () => {
    const html = renderStatusPage({ refreshSeconds: 7 });
    expect(html).not.toMatch(/<script[^>]+src=|<link\b|<img\b|@import|url\(/i);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    expect(html).toContain('"refreshSeconds":7');
    expect(html).toContain(CHART_COLORS.throughput);
  });
});

describe('status page handler without a FHIR server', () => {
  let base = '';
  const server = createServer((req, res) => {
    // Nothing listens at the FHIR base URL: a login attempt cannot reach a server.
    void createStatusPageHandler({ baseUrl: 'http://127.0.0.1:9/' })(req, res);
  });

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('401 with a Basic challenge without credentials, on every route', async () => {
    for (const [method, path] of [
      ['GET', '/hub/status'],
      ['GET', '/hub/status.json'],
      ['POST', '/hub/status/replay'],
    ]) {
      const response = await fetch(base + path, { method });
      expect(response.status, path).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm="hub status"/);
      expect(response.headers.get('cache-control')).toBe('no-store');
    }
  });

  test('unknown paths and methods are refused before any login', async () => {
    expect((await fetch(`${base}/hub/status/other`)).status).toBe(404);
    expect((await fetch(`${base}/hub/status.json`, { method: 'DELETE' })).status).toBe(405);
  });

  test('a FHIR server that cannot be reached is a 502, not a credentials problem', async () => {
    const response = await fetch(`${base}/hub/status.json`, { headers: { authorization: `Basic ${Buffer.from('id:secret').toString('base64')}` } });
    expect(response.status).toBe(502);
    expect(await response.text()).not.toContain('secret');
  }, 30_000);
});
