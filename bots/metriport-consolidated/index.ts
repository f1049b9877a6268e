import type { BotEvent, MedplumClient, WithId } from '@medplum/core';
import { validateResource } from '@medplum/core';
import type { Task } from '@medplum/fhirtypes';
import { loadFhirDefinitions } from '../../src/fhir/definitions.ts';
import type { ProcessResult } from '../../src/metriport/process-task.ts';
import { processWebhookTask, resourceValidator } from '../../src/metriport/process-task.ts';

/**
 * Metriport processing: fired by the `metriport-webhook-task` subscription when the receiver
 * records a message (and by `metriport-webhook-redrive` when someone sets a Task back to
 * `requested`). Downloads a consolidated record from its presigned URL and merges it into the
 * Patient's record; the outcome is written on the Task. See `processWebhookTask`.
 * @param medplum - Client with the bot's identity.
 * @param event - The Task, and the bot secrets (for a new query when a URL has expired).
 * @returns The Task's final status.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Task>): Promise<ProcessResult> {
  loadFhirDefinitions();
  return processWebhookTask(medplum, event.input as WithId<Task>, { secrets: event.secrets, check: resourceValidator(validateResource) });
}
