import { describe, expect, test } from 'vitest';
import type { ChannelStatus, HubStatus } from '../ops/status-model.ts';
import { bucketItems, countItems, statusWindow, totalOf } from '../ops/status-model.ts';
import { formatAge, formatStatus, parseStatusArgs, sparkline } from './status.ts';

const NOW = Date.parse('2025-03-10T12:30:00Z');

function sampleStatus(): HubStatus {
  const window = statusWindow(NOW, 3600, 4);
  const hl7: ChannelStatus = {
    kind: 'hl7',
    key: 'hl7:https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/ADTSYS',
    name: 'NORTHSIDE/ADTSYS',
    counts: countItems(
      [
        { channel: 'x', received: NOW, changed: NOW, state: 'committed' },
        { channel: 'x', received: NOW, changed: NOW, state: 'dead-letter', error: "PID-7 (102): '…'" },
      ],
      0
    ),
    oldestPendingAgeSeconds: null,
    lastError: { time: '2025-03-10T12:29:00.000Z', text: "PID-7 (102): '…'" },
    buckets: bucketItems([{ channel: 'x', received: NOW, changed: NOW, state: 'dead-letter' }], window),
  };
  const partner: ChannelStatus = {
    kind: 'partner',
    key: 'partner:Endpoint/p1',
    name: 'Acme Analytics (partner webhook) — a very long free-text name that goes on and on',
    counts: countItems([{ channel: 'p', received: NOW, changed: NOW, state: 'retrying' }], 0),
    oldestPendingAgeSeconds: 7300,
    lastError: null,
    buckets: bucketItems([], window),
  };
  return {
    generatedAt: new Date(NOW).toISOString(),
    since: new Date(window.start).toISOString(),
    window: { start: new Date(window.start).toISOString(), end: new Date(window.start + 4 * 3600_000).toISOString(), bucketSeconds: 3600 },
    channels: [hl7, partner],
    total: totalOf([hl7, partner], window),
    invariantHolds: true,
    deadLetters: [{ kind: 'hl7-message', id: 'mh-1', channel: hl7.key, time: '2025-03-10T12:29:00.000Z', error: "PID-7 (102): '…'", detail: 'ADT^A01 CTRL1', replayable: true }],
    deadLettersTruncated: false,
    unavailable: [{ source: 'partner deliveries (Task)', reason: 'Forbidden' }],
    queueDepth: { reachable: false, reason: 'connect ECONNREFUSED 127.0.0.1:6379' },
  };
}

describe('hub status arguments', () => {
  test('options and their values', () => {
    expect(parseStatusArgs([])).toEqual({ serve: false, json: false, since: undefined, bucketSeconds: undefined, buckets: undefined });
    expect(parseStatusArgs(['--json', '--since', '2025-03-01', '--bucket-minutes=15', '--buckets', '96'])).toEqual({
      serve: false,
      json: true,
      since: '2025-03-01',
      bucketSeconds: 900,
      buckets: 96,
    });
    expect(parseStatusArgs(['--serve'])).toEqual({ serve: true, port: 8104 });
    expect(parseStatusArgs(['--serve', '--port', '0'])).toEqual({ serve: true, port: 0 });
  });

  test('mistakes are named', () => {
    expect(parseStatusArgs(['--since', 'last week'])).toMatch(/--since must be an ISO 8601/);
    expect(parseStatusArgs(['--since'])).toBe('--since needs a value');
    expect(parseStatusArgs(['--verbose'])).toBe('Unknown option for status: --verbose');
    expect(parseStatusArgs(['extra'])).toBe('Unexpected argument: extra');
    expect(parseStatusArgs(['--serve', '--json'])).toMatch(/does not apply to --serve/);
    expect(parseStatusArgs(['--port', '80'])).toMatch(/--serve only/);
    expect(parseStatusArgs(['--buckets', '0'])).toMatch(/--buckets must be/);
  });
});

describe('hub status output', () => {
  test('a table per channel and the total, the sum, the chart, errors, dead letters, what is missing, queue depth', () => {
    const lines = formatStatus(sampleStatus());
    expect(lines[0]).toMatch(/^channel\s+received\s+committed\s+rejected\s+dead-letter\s+resolved\s+delivered\s+retrying\s+pending\s+oldest pending$/);
    expect(lines[1]).toMatch(/^hl7 NORTHSIDE\/ADTSYS\s+2\s+1\s+0\s+1\s+0\s+0\s+0\s+0\s+-$/);
    // Long names are cut so the table stays readable.
    expect(lines[2]).toMatch(/^partner Acme Analytics .{10,}…\s+1\s+0\s+0\s+0\s+0\s+0\s+1\s+0\s+2 h$/);
    expect(lines[3]).toMatch(/^total\s+3\s+1\s+0\s+1\s+0\s+0\s+1\s+0\s+2 h$/);
    expect(lines[4]).toBe(
      'received = committed + rejected + dead-letter + resolved + delivered + retrying + pending: 3 = 1 + 0 + 1 + 0 + 0 + 1 + 0 (holds for every channel)'
    );
    const text = lines.join('\n');
    expect(text).toContain('  received ···█  (max 1)');
    expect(text).toContain("hl7 NORTHSIDE/ADTSYS  2025-03-10T12:29:00.000Z  PID-7 (102): '…'");
    expect(text).toContain("2025-03-10T12:29:00.000Z  hl7-message  hl7 NORTHSIDE/ADTSYS  MessageHeader/mh-1  ADT^A01 CTRL1  PID-7 (102): '…'");
    expect(text).toContain('Not readable with this client: partner deliveries (Task): Forbidden');
    expect(text).toContain('Queue depth: not reachable (connect ECONNREFUSED 127.0.0.1:6379)');
  });

  test('ages and sparklines', () => {
    expect([formatAge(null), formatAge(59), formatAge(600), formatAge(7300), formatAge(300_000)]).toEqual(['-', '59 s', '10 min', '2 h', '3 d']);
    const buckets = [0, 1, 4, 8].map((n, i) => ({ start: String(i), throughput: n, errors: 0 }));
    expect(sparkline(buckets, 'throughput')).toBe('·▁▄█');
    expect(sparkline(buckets, 'errors')).toBe('····');
  });
});
