/**
 * A timeout that works in both fetch implementations a bot can meet: node-fetch v2 in the stock
 * vmcontext sandbox reads `timeout`; Node's fetch reads `signal` (AbortSignal is absent in the sandbox).
 * @param ms - Milliseconds.
 * @returns Extra fetch options.
 */
export function timeoutOption(ms: number): { timeout: number; signal?: AbortSignal } {
  const signal = typeof AbortSignal !== 'undefined' && typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(ms) : undefined;
  return signal ? { timeout: ms, signal } : { timeout: ms };
}
