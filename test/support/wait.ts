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
