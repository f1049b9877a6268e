import { getStatus } from '@medplum/core';
// Imported explicitly: the stock bot sandbox has no global setTimeout.
import { setTimeout as sleepMs } from 'node:timers/promises';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { isVersionConflict } from './writer.ts';

/** How to handle a failed request. */
export type FailureKind = 'refused' | 'conflict' | 'throttled' | 'transient';

/**
 * Sorts what a FHIR request threw into what to do about it.
 * @param err - The error.
 * @returns How to handle it: `refused` (4xx: the content, split to isolate it), `conflict`
 * (another writer), `throttled` (429), `transient` (5xx, or no answer at all).
 */
export function classifyFailure(err: unknown): FailureKind {
  if (isVersionConflict(err)) {
    return 'conflict';
  }
  // Duck-typed: in a bot, the client's errors come from the server's own `@medplum/core`, not the
  // copy the bundle requires, so `instanceof OperationOutcomeError` would be false.
  const outcome = (err as { outcome?: OperationOutcome } | undefined)?.outcome;
  if (outcome?.resourceType !== 'OperationOutcome') {
    return 'transient';
  }
  const status = getStatus(outcome);
  if (status === 429) {
    return 'throttled';
  }
  return status >= 500 ? 'transient' : 'refused';
}

/**
 * Runs a step again when the server fails, conflicts or throttles (not when it refuses the
 * content): bots fired by subscriptions get no retry from the stock worker, so a step that must
 * not be lost retries itself, 0.5, 1 and 2 s apart.
 * @param step - The step.
 * @param attempts - Attempts in all (default 4).
 * @param sleep - Waits between attempts; tests replace it.
 * @returns The step's result.
 */
export async function retryTransient<T>(step: () => Promise<T>, attempts = 4, sleep: (ms: number) => Promise<unknown> = sleepMs): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (attempt >= attempts || classifyFailure(err) === 'refused') {
        throw err;
      }
      await sleep(500 * 2 ** (attempt - 1));
    }
  }
}
