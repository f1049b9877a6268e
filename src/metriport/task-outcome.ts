import type { MedplumClient, WithId } from '@medplum/core';
import type { Task } from '@medplum/fhirtypes';
import { HUB_URI } from '../constants.ts';

/** Code system of the outcome of a Metriport webhook Task (`Task.businessStatus`). */
export const TASK_OUTCOME_SYSTEM = `${HUB_URI}/CodeSystem/metriport-task-outcome`;

/** Outcomes of a Metriport webhook Task. */
export const TaskOutcome = {
  /** The bundle was merged into the record. */
  merged: 'merged',
  /** Merged, but some resources were refused or invalid (listed in Task.output). */
  partiallyMerged: 'partially-merged',
  /** Metriport found no data for the patient. */
  noData: 'no-data',
  /** Metriport reported the query failed. */
  metriportFailed: 'metriport-failed',
  /** Parked (`on-hold`) while another message for the same patient is merged. */
  waiting: 'waiting',
  /** The download URL had expired; a new query was started. */
  urlExpired: 'url-expired',
  /** No Medplum Patient carries the Metriport patient id or the externalId. */
  patientNotFound: 'patient-not-found',
  /** The same query's data was already merged from another message. */
  duplicate: 'duplicate',
  /** A message type the hub does not process. */
  notHandled: 'not-handled',
  /** The body could not be read. */
  unreadable: 'unreadable',
  /** Processing failed (download, parse or write); the Task can be re-driven. */
  error: 'error',
} as const;
export type TaskOutcomeCode = (typeof TaskOutcome)[keyof typeof TaskOutcome];

/**
 * @param code - The outcome.
 * @param text - What happened, for people (no PHI).
 * @returns `businessStatus` for a Task.
 */
export function taskOutcome(code: TaskOutcomeCode, text: string): Pick<Task, 'businessStatus'> {
  return { businessStatus: { coding: [{ system: TASK_OUTCOME_SYSTEM, code }], text } };
}

/**
 * Sets a recorded webhook message back to `requested`, without its outcome and outputs, so that
 * the processing subscription runs it again (`hub metriport redrive`, the status page's Replay).
 * @param medplum - The client.
 * @param task - The webhook Task as read.
 * @returns The updated Task.
 */
export function redriveWebhookTask(medplum: MedplumClient, task: WithId<Task>): Promise<WithId<Task>> {
  return medplum.updateResource<Task>({ ...task, status: 'requested', businessStatus: undefined, output: undefined });
}
