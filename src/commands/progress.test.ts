import { describe, expect, test } from 'vitest';
import type { ProgressStream } from './progress.ts';
import { createProgress, describeCount, formatDuration, logAbove, PLAIN_INTERVAL_MS, TTY_INTERVAL_MS } from './progress.ts';

/** A stream that records every write, with a settable clock beside it. */
function fakeOutput(isTTY: boolean, columns?: number): { stream: ProgressStream; writes: string[]; clock: { t: number }; now: () => number } {
  const writes: string[] = [];
  const clock = { t: 1_000_000 };
  return { stream: { write: (text: string) => writes.push(text), isTTY, columns }, writes, clock, now: () => clock.t };
}

describe('createProgress on a terminal', () => {
  test('draws at the first tick, then at most every 100 ms, rewriting one line', () => {
    const out = fakeOutput(true);
    const progress = createProgress({ label: 'import', total: 10, stream: out.stream, now: out.now });
    expect(out.writes).toEqual([]);
    out.clock.t += 500;
    progress.tick();
    expect(out.writes).toEqual(['\rimport: 1/10 (10%)  2.0/s  ETA 5s\u001b[K']);
    out.clock.t += TTY_INTERVAL_MS - 1;
    progress.tick();
    progress.tick();
    expect(out.writes).toHaveLength(1);
    out.clock.t += 1;
    progress.tick(1, 'MessageHeader/abc');
    expect(out.writes).toHaveLength(2);
    expect(out.writes[1]).toBe('\rimport: 4/10 (40%)  6.7/s  ETA 900ms  MessageHeader/abc\u001b[K');
    // No line ends: the same line is rewritten.
    expect(out.writes.join('')).not.toContain('\n');
  });

  test('clear erases the live line and the next tick draws it again at once', () => {
    const out = fakeOutput(true);
    const progress = createProgress({ label: 'deploy', total: 3, stream: out.stream, now: out.now });
    progress.tick();
    progress.clear();
    expect(out.writes.at(-1)).toBe('\r\u001b[K');
    progress.clear();
    expect(out.writes).toHaveLength(2);
    progress.tick();
    expect(out.writes).toHaveLength(3);
    expect(out.writes.at(-1)).toContain('deploy: 2/3');
  });

  test('logAbove erases the live line before each line of the command', () => {
    const out = fakeOutput(true);
    const progress = createProgress({ label: 'replay', total: 2, stream: out.stream, now: out.now });
    // The command's lines go to another stream; here they are recorded in order with the writes.
    const log = logAbove(progress, (line) => out.writes.push(`stdout:${line}`));
    progress.tick();
    log('Task/t1: completed');
    expect(out.writes.slice(-2)).toEqual(['\r\u001b[K', 'stdout:Task/t1: completed']);
    progress.tick();
    expect(out.writes.at(-1)).toContain('replay: 2/2');
  });

  test('done replaces the live line with the final one and ends it', () => {
    const out = fakeOutput(true);
    const progress = createProgress({ label: 'replay', total: 2, stream: out.stream, now: out.now });
    progress.tick();
    out.clock.t += 2500;
    progress.tick();
    progress.done('2 completed');
    expect(out.writes.at(-1)).toBe('\rreplay: 2/2 in 3s: 2 completed\u001b[K\n');
    progress.done('again');
    progress.tick();
    expect(out.writes.at(-1)).toBe('\rreplay: 2/2 in 3s: 2 completed\u001b[K\n');
  });

  test('the live line is cut to the terminal width', () => {
    const out = fakeOutput(true, 30);
    const progress = createProgress({ label: 'a long label for the terminal', total: 1000, stream: out.stream, now: out.now });
    progress.tick();
    const drawn = out.writes[0].replace('\r', '').replace('\u001b[K', '');
    expect(drawn.length).toBe(29);
    expect(drawn.endsWith('…')).toBe(true);
  });
});

describe('createProgress in logs and pipes', () => {
  test('prints a plain line at most every interval, and the final line', () => {
    const out = fakeOutput(false);
    const progress = createProgress({ label: 'hl7 import', total: 100, stream: out.stream, now: out.now });
    for (let i = 0; i < 40; i++) {
      out.clock.t += 100;
      progress.tick();
    }
    // 4 s: nothing yet.
    expect(out.writes).toEqual([]);
    for (let i = 0; i < 10; i++) {
      out.clock.t += 100;
      progress.tick();
    }
    expect(out.writes).toEqual(['hl7 import: 50/100 (50%)  10/s  ETA 5s\n']);
    for (let i = 0; i < 50; i++) {
      out.clock.t += 100;
      progress.tick();
    }
    // 5 s later exactly: the second line.
    expect(out.writes).toHaveLength(2);
    expect(out.writes[1]).toBe('hl7 import: 100/100 (100%)  10/s\n');
    progress.done('AA 100');
    expect(out.writes).toEqual([...out.writes.slice(0, 2), 'hl7 import: 100/100 in 10s: AA 100\n']);
    expect(out.writes.join('')).not.toMatch(/[\r\u001b]/);
  });

  test('a quick command prints only its final line', () => {
    const out = fakeOutput(false);
    const progress = createProgress({ label: 'partners replay', total: 3, stream: out.stream, now: out.now });
    progress.tick(1, 'Task/1');
    progress.tick(1, 'Task/2');
    progress.tick(1, 'Task/3');
    out.clock.t += 40;
    progress.done();
    expect(out.writes).toEqual(['partners replay: 3/3 in 40ms\n']);
  });

  test('honours a custom interval; clear does nothing off a terminal', () => {
    const out = fakeOutput(false);
    const progress = createProgress({ label: 'x', stream: out.stream, now: out.now, intervalMs: 1000 });
    out.clock.t += 999;
    progress.tick();
    progress.clear();
    expect(out.writes).toEqual([]);
    out.clock.t += 1;
    progress.tick();
    expect(out.writes).toEqual(['x: 2  2.0/s\n']);
    expect(PLAIN_INTERVAL_MS).toBe(5000);
  });

  test('isTTY overrides the stream', () => {
    const out = fakeOutput(true);
    const progress = createProgress({ label: 'x', total: 1, stream: out.stream, now: out.now, isTTY: false });
    progress.tick();
    expect(out.writes).toEqual([]);
    progress.done();
    expect(out.writes).toEqual(['x: 1/1 in 0ms\n']);
  });

  test('without a total: count and rate, no percent or ETA', () => {
    const out = fakeOutput(false);
    const progress = createProgress({ label: 'redrive', stream: out.stream, now: out.now });
    out.clock.t += 6000;
    progress.tick(3);
    expect(out.writes).toEqual(['redrive: 3  0.5/s\n']);
    progress.done('3 requested');
    expect(out.writes[1]).toBe('redrive: 3 in 6s: 3 requested\n');
  });

  test('notes lose control characters and are cut when long', () => {
    const out = fakeOutput(false);
    const progress = createProgress({ label: 'x', stream: out.stream, now: out.now, intervalMs: 0 });
    progress.tick(1, 'Task/1\r\u001b[2Jevil');
    expect(out.writes[0]).toBe('x: 1  Task/1[2Jevil\n');
    progress.note('y'.repeat(200));
    expect(out.writes[1].trimEnd().split('  ').at(-1)).toHaveLength(80);
    progress.note(undefined);
    expect(out.writes[2]).toBe('x: 1\n');
  });
});

describe('formatting', () => {
  test('describeCount', () => {
    expect(describeCount(0, 10, 0)).toBe('0/10 (0%)');
    expect(describeCount(5, 10, 1000)).toBe('5/10 (50%)  5.0/s  ETA 1s');
    expect(describeCount(10, 10, 1000)).toBe('10/10 (100%)  10/s');
    expect(describeCount(0, 0, 10)).toBe('0/0 (100%)');
    expect(describeCount(7, undefined, 2000)).toBe('7  3.5/s');
  });

  test('formatDuration', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(12_400)).toBe('12s');
    expect(formatDuration(185_000)).toBe('3m05s');
    expect(formatDuration(3_720_000)).toBe('1h02m');
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe('?');
  });
});
