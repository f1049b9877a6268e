import type { MessageHeader, Reference, Task } from '@medplum/fhirtypes';
import { HUB_URI } from '../constants.ts';

/** The Task code that asks the hl7-replay bot to replay a ledger entry. */
export const REPLAY_TASK_CODE = { system: `${HUB_URI}/CodeSystem/hub-task`, code: 'replay-hl7' } as const;

/**
 * The FHIR-level replay trigger: a Task the hl7-replay bot's Subscription picks up.
 * @param entry - The ledger entry to replay.
 * @param reason - Why (shown in the Task).
 * @returns The Task to create.
 */
export function buildReplayTask(entry: Reference<MessageHeader>, reason?: string): Task {
  return {
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    code: { coding: [{ ...REPLAY_TASK_CODE, display: 'Replay an HL7 v2 message' }] },
    focus: entry,
    ...(reason ? { description: reason } : {}),
  };
}
