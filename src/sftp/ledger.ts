import type { MedplumClient, WithId } from '@medplum/core';
import type { Task, TaskOutput } from '@medplum/fhirtypes';
import { createHash } from 'node:crypto';
import { HUB_SID, HUB_URI } from '../constants.ts';
import { isVersionConflict } from '../fhir/writer.ts';

/** Task code of a file taken from a partner SFTP folder. */
export const SFTP_FILE_TASK_CODE = { system: `${HUB_URI}/CodeSystem/hub-task`, code: 'sftp-file' } as const;
/**
 * Task identifier: a SHA-256 of source, file name and content hash, so the same file twice is one
 * Task. Hashed because file names may hold characters that separate search values (`,`, `\\`, `|`).
 */
export const SFTP_FILE_KEY_SYSTEM = `${HUB_SID}/sftp-file`;

/** What makes a file the same file. */
export interface FileKey {
  readonly source: string;
  readonly name: string;
  /** Hex SHA-256 of the content. */
  readonly sha256: string;
}

/**
 * @param key - The file.
 * @returns The value of its ledger identifier.
 */
export function fileKeyValue(key: FileKey): string {
  return createHash('sha256').update(`${key.source}\n${key.name}\n${key.sha256}`).digest('hex');
}
/** Code system of a file Task's outcome (`Task.businessStatus`). */
export const FILE_OUTCOME_SYSTEM = `${HUB_URI}/CodeSystem/sftp-file-outcome`;

/** Outcomes of a file. */
export const FileOutcome = {
  /** Every message or row was committed (HL7 messages that failed are dead-lettered each). */
  processed: 'processed',
  /** Some rows or messages failed: the file went to the error folder with a reason file. */
  partlyProcessed: 'partly-processed',
  /** Nothing could be read (an incomplete batch, no header row...): error folder. */
  rejected: 'rejected',
  /** The same name and content were processed before: archived without processing again. */
  duplicate: 'duplicate',
  /** Processing stopped on an error; the next poll takes the file again. */
  error: 'error',
} as const;
export type FileOutcomeCode = (typeof FileOutcome)[keyof typeof FileOutcome];

/** A run left a file Task `in-progress` longer than this: it died, and the file is taken again. */
export const FILE_CLAIM_STALE_MS = 15 * 60_000;

/**
 * Claims a file for processing: a conditional create of its Task keyed by source, name and
 * content hash, which the server runs serializably, so two polls never process one file. A Task
 * that already exists means the file was seen: `completed` → a duplicate; `in-progress` → another
 * run has it (unless that run died long ago); `failed` → taken again (processing is idempotent).
 * @param medplum - The client.
 * @param key - Source, file name and content hash.
 * @param draft - The Task to create (status in-progress).
 * @returns The claimed Task, or the existing one with why it is not claimed.
 */
export async function claimFile(
  medplum: MedplumClient,
  key: FileKey,
  draft: Task
): Promise<{ claimed: WithId<Task> } | { duplicateOf: WithId<Task> } | { alreadyFailed: WithId<Task> } | { busy: WithId<Task> }> {
  const value = fileKeyValue(key);
  const task = await medplum.createResourceIfNoneExist<Task>(
    { ...draft, status: 'in-progress', identifier: [{ system: SFTP_FILE_KEY_SYSTEM, value }] },
    `identifier=${encodeURIComponent(`${SFTP_FILE_KEY_SYSTEM}|${value}`)}`
  );
  if (task.authoredOn === draft.authoredOn && task.status === 'in-progress') {
    return { claimed: task };
  }
  if (task.status === 'completed') {
    return { duplicateOf: task };
  }
  // Processed before, with rows or a structure refused: the outcome stands (processing again
  // gives the same answer); the file only has to reach the error folder.
  const outcome = task.businessStatus?.coding?.find((c) => c.system === FILE_OUTCOME_SYSTEM)?.code;
  if (task.status === 'failed' && (outcome === FileOutcome.rejected || outcome === FileOutcome.partlyProcessed)) {
    return { alreadyFailed: task };
  }
  const changed = Date.parse(task.lastModified ?? task.meta?.lastUpdated ?? '');
  if (task.status === 'in-progress' && Date.now() - changed < FILE_CLAIM_STALE_MS) {
    return { busy: task };
  }
  try {
    const claimed = await medplum.updateResource<Task>(
      { ...task, status: 'in-progress', businessStatus: undefined, output: undefined, lastModified: new Date().toISOString() },
      { headers: { 'If-Match': `W/"${task.meta?.versionId}"` } }
    );
    return { claimed };
  } catch (err) {
    // Another run updated it first; anything else is a real failure.
    if (isVersionConflict(err)) {
      return { busy: task };
    }
    throw err;
  }
}

/**
 * Records a file's outcome on its Task.
 * @param medplum - The client.
 * @param task - The claimed Task, as this run last wrote it (only the run that claimed it writes it).
 * @param outcome - The outcome.
 * @param text - What happened (no PHI: counts, line numbers, folder names).
 * @param output - Counts and details.
 * @returns The updated Task.
 */
export async function finishFile(medplum: MedplumClient, task: WithId<Task>, outcome: FileOutcomeCode, text: string, output: TaskOutput[]): Promise<WithId<Task>> {
  // Only a file fully processed (or a duplicate of one) is `completed`: the same file sent again
  // after a failure is processed again.
  const status: Task['status'] = outcome === FileOutcome.processed || outcome === FileOutcome.duplicate ? 'completed' : 'failed';
  return medplum.updateResource<Task>({
    ...task,
    status,
    businessStatus: { coding: [{ system: FILE_OUTCOME_SYSTEM, code: outcome }], text },
    output,
    lastModified: new Date().toISOString(),
  });
}
