import { describe, expect, test } from 'vitest';
import { retryDelay } from './queue.ts';

describe('retryDelay', () => {
  test('doubles per attempt from the base, within ±20 %, never over an hour', () => {
    expect(retryDelay(30_000, 1, 0.5)).toBe(30_000);
    expect(retryDelay(30_000, 2, 0.5)).toBe(60_000);
    expect(retryDelay(30_000, 1, 0)).toBe(24_000);
    expect(retryDelay(30_000, 1, 0.999999)).toBeCloseTo(36_000, -1);
    expect(retryDelay(30_000, 12, 0.999999)).toBe(3600_000);
  });

  test('a partner down for an hour is retried through it and long after: the default window holds about 75 attempts', () => {
    let elapsed = 0;
    let attempts = 0;
    while (elapsed < 72 * 3600_000) {
      attempts++;
      elapsed += retryDelay(30_000, attempts, 0.5);
    }
    expect(attempts).toBeGreaterThan(70);
    // Within the first hour of an outage it tries again at least 7 times.
    let firstHour = 0;
    for (let n = 1, t = 0; t < 3600_000; n++) {
      t += retryDelay(30_000, n, 0.5);
      firstHour++;
    }
    expect(firstHour).toBeGreaterThanOrEqual(7);
  });
});
