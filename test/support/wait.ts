/**
 * Polls until `check` returns a value other than undefined, or fails after `timeoutMs`.
 * Every wait in the tests is bounded; the message says what was awaited.
 * @param what - Description for the failure message.
 * @param check - Returns the awaited value, or undefined to keep waiting.
 * @param timeoutMs - Upper bound.
 * @param intervalMs - Poll interval.
 * @returns The value.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  intervalMs = 50
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * @param ms - Milliseconds.
 * @returns A promise resolved after them.
 */
export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls a condition every 10 ms until it holds or `timeoutMs` passes, for tests that assert on
 * the outcome themselves (`waitFor` fails with a message instead).
 * @param condition - The condition.
 * @param timeoutMs - Upper bound (default 3 s).
 * @returns Whether it held in time.
 */
export async function waitUntil(condition: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      return false;
    }
    await sleep(10);
  }
  return true;
}
