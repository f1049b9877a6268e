import { getStatus } from '@medplum/core';
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
