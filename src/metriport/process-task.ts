import type { MedplumClient, WithId } from '@medplum/core';
import { isNotFound, normalizeErrorString, normalizeOperationOutcome } from '@medplum/core';
import type { Bundle, Patient, ProjectSetting, Resource, Task, TaskOutput } from '@medplum/fhirtypes';
import { MetriportClient, metriportSettings } from './api.ts';
import { prepareConsolidatedImport } from './consolidated.ts';
import type { ResourceCheck } from './consolidated.ts';
import { METRIPORT_PATIENT_SYSTEM, METRIPORT_REQUEST_ID_SYSTEM, METRIPORT_WEBHOOK_TASK_CODE, MetriportSecret } from './constants.ts';
import { bundleLocation, downloadBundle, withoutQueryStrings } from './download.ts';
import { acquireLock, isLocked, LockKind, releaseLock } from '../fhir/lock.ts';
import { ownerOrganizations } from '../fhir/owner.ts';
import { isVersionConflict } from '../fhir/writer.ts';
import { mergePreparedImport } from './merge.ts';
import type { MergeResult } from './merge.ts';
import { linkMetriportId, metriportIdOf } from './patient-link.ts';
import { TASK_OUTCOME_SYSTEM, TaskOutcome, taskOutcome } from './task-outcome.ts';
import type { TaskOutcomeCode } from './task-outcome.ts';
import type { WebhookMessage } from './webhook.ts';
import { readMeta, WEBHOOK_BODY_INPUT } from './webhook.ts';

/** One patient of a `medical.consolidated-data` payload. */
interface ConsolidatedPatient {
  patientId: string;
  externalId?: string;
  status: 'completed' | 'failed';
  bundle?: Bundle;
}

/** Options of {@link processWebhookTask}. */
export interface ProcessOptions {
  /** Bot secrets (for a new query when the download URL has expired). */
  readonly secrets?: Record<string, ProjectSetting>;
  /** Validation of each imported resource. */
  readonly check?: ResourceCheck;
  /** New queries per patient per hour after expired downloads, before giving up (default 3). */
  readonly maxRequeriesPerHour?: number;
  readonly log?: (line: string) => void;
}

/** The final state of a processed Task. */
export interface ProcessResult {
  readonly status: Task['status'];
  readonly outcome?: TaskOutcomeCode;
  readonly merge?: MergeResult;
}

/** Items listed one by one in Task.output; the rest are counted. */
const MAX_LISTED_FAILURES = 100;

/**
 * Processes a recorded Metriport webhook message (a `requested` Task): claims it, then for a
 * `medical.consolidated-data` message finds the Medplum Patient (by the Metriport patient id,
 * else the externalId the hub created it with, else `meta.data.medplumPatientId`, which replays
 * lack), downloads the bundle while its URL is valid, merges it into the record and records the
 * outcome on the Task: `merged`, `partially-merged` (refused items listed), `no-data`,
 * `metriport-failed`, `duplicate` (the same query was merged from another message),
 * `patient-not-found`, `url-expired` (a new query was started), or `error`. A failed Task can be
 * re-driven by setting it back to `requested`; merging is idempotent.
 * @param medplum - The client (the processing bot's identity).
 * @param task - The Task as delivered.
 * @param options - Secrets, validation, logging.
 * @returns The final status.
 */
export async function processWebhookTask(medplum: MedplumClient, task: WithId<Task>, options: ProcessOptions = {}): Promise<ProcessResult> {
  const log = options.log ?? ((line: string): void => console.log(line));
  if (task.status !== 'requested' || !task.code?.coding?.some((c) => c.system === METRIPORT_WEBHOOK_TASK_CODE.system && c.code === METRIPORT_WEBHOOK_TASK_CODE.code)) {
    return { status: task.status };
  }
  const claimed = await claim(medplum, task);
  if (!claimed) {
    log(`Task/${task.id}: already taken by another run`);
    return { status: 'in-progress' };
  }
  const finish = async (status: Task['status'], outcome: TaskOutcomeCode, text: string, extra: Partial<Task> = {}): Promise<ProcessResult> => {
    const current = await medplum.readResource('Task', task.id);
    await medplum.updateResource<Task>({ ...current, ...extra, status, ...taskOutcome(outcome, text), lastModified: new Date().toISOString() });
    log(`Task/${task.id}: ${status} (${outcome}): ${text}`);
    return { status, outcome };
  };

  try {
    const body = task.input?.find((i) => i.type?.text === WEBHOOK_BODY_INPUT.text)?.valueString;
    const message = body ? (JSON.parse(body) as WebhookMessage) : undefined;
    const meta = readMeta(message);
    if (!message || !meta) {
      return await finish('failed', TaskOutcome.unreadable, 'the recorded body is not a Metriport webhook message');
    }
    const payload = (message.patients as ConsolidatedPatient[] | undefined)?.[0];
    if (!payload?.patientId) {
      return await finish('failed', TaskOutcome.unreadable, 'the message names no patient');
    }
    const patient = await findRecordPatient(medplum, payload, meta.data?.medplumPatientId);
    const subject = patient ? { for: { reference: `Patient/${patient.id}` } } : {};
    if (payload.status === 'failed') {
      return await finish('failed', TaskOutcome.metriportFailed, `Metriport reported that query ${meta.requestId ?? '(no requestId)'} failed`, subject);
    }
    if (!patient) {
      return await finish('failed', TaskOutcome.patientNotFound, `no Medplum Patient has the Metriport patient id ${payload.patientId} or the externalId ${payload.externalId ?? '(none)'}`);
    }
    const location = bundleLocation(payload.bundle);
    if (!location) {
      return await finish('completed', TaskOutcome.noData, 'Metriport found no data for the patient', subject);
    }
    const lock = await acquireLock(medplum, LockKind.metriportMerge, patient.id, `Task/${task.id}`);
    if (!lock) {
      const parked = await finish('on-hold', TaskOutcome.waiting, 'another message for this patient is being merged; this one runs when it is done', subject);
      // The holder may have released the lock between our attempt and our parking, and then
      // found nothing to resume: if the lock is gone, resume ourselves.
      if (!(await isLocked(medplum, LockKind.metriportMerge, patient.id))) {
        await resumeParked(medplum, patient.id);
      }
      return parked;
    }
    try {
      if (await mergedBefore(medplum, task, meta.requestId)) {
        return await finish('completed', TaskOutcome.duplicate, `query ${meta.requestId} was already merged from another message`, subject);
      }
      const download = await downloadBundle(location);
      if (!download.ok) {
        if (!download.expired) {
          return await finish('failed', TaskOutcome.error, download.reason, subject);
        }
        const requery = await requeryAfterExpiry(medplum, patient, payload.patientId, options);
        return await finish('failed', TaskOutcome.urlExpired, `${download.reason}; ${requery}`, subject);
      }
      await linkMetriportId(medplum, patient, payload.patientId);
      const prepared = prepareConsolidatedImport(download.bundle, payload.patientId, options.check);
      const merge = await mergePreparedImport(medplum, prepared, { patient: `Patient/${patient.id}`, owners: ownerOrganizations(patient) });
      const failures = [...prepared.skipped, ...merge.failed];
      const output = mergeOutput(merge, prepared.skipped.length, prepared.danglingReferences, failures);
      const summary = `${merge.created} created, ${merge.updated} updated, ${merge.unchanged} unchanged, ${prepared.skipped.length} skipped, ${merge.failed.length} refused (${download.bytes} bytes downloaded, ${merge.transactions} transactions)`;
      const result = merge.failed.length
        ? await finish('failed', TaskOutcome.partiallyMerged, summary, { ...subject, output })
        : await finish('completed', TaskOutcome.merged, summary, { ...subject, output });
      return { ...result, merge };
    } finally {
      await releaseLock(medplum, lock);
      await resumeParked(medplum, patient.id);
    }
  } catch (err) {
    const reason = withoutQueryStrings(normalizeErrorString(err));
    try {
      return await finish('failed', TaskOutcome.error, reason);
    } catch (finishErr) {
      // The Task stays in-progress: `hub metriport tasks` shows it as stale, and a re-drive runs it again.
      log(`Task/${task.id}: failed (${reason}), and recording that failed too: ${normalizeErrorString(finishErr)}`);
      return { status: 'in-progress', outcome: TaskOutcome.error };
    }
  }
}

/**
 * Moves the Task to `in-progress` with `If-Match`, so that two runs for the same Task (a
 * re-drive racing a retry) do not both process it.
 * @returns True when this run claimed it.
 */
async function claim(medplum: MedplumClient, task: WithId<Task>): Promise<boolean> {
  const current = await medplum.readResource('Task', task.id);
  if (current.status !== 'requested') {
    return false;
  }
  try {
    await medplum.updateResource<Task>(
      { ...current, status: 'in-progress', lastModified: new Date().toISOString() },
      { headers: { 'If-Match': `W/"${current.meta?.versionId}"` } }
    );
    return true;
  } catch (err) {
    if (isVersionConflict(err)) {
      return false;
    }
    throw err;
  }
}

/**
 * Finds the Medplum Patient of a consolidated record: the Patient carrying the Metriport patient
 * id, else the one whose id is the externalId (the hub creates Metriport patients with the
 * Medplum id), else the one named in `meta.data` (absent on Metriport's replays). A Patient
 * linked to a different Metriport patient is never chosen.
 */
async function findRecordPatient(medplum: MedplumClient, payload: ConsolidatedPatient, fromMetadata: string | undefined): Promise<WithId<Patient> | undefined> {
  const linked = await medplum.searchResources('Patient', { identifier: `${METRIPORT_PATIENT_SYSTEM}|${payload.patientId}`, _count: '2' });
  if (linked.length > 1) {
    throw new Error(`${linked.length} Patients carry the Metriport patient id ${payload.patientId}`);
  }
  if (linked.length === 1) {
    return linked[0];
  }
  for (const id of [payload.externalId, fromMetadata]) {
    if (!id || !/^[A-Za-z0-9\-.]{1,64}$/.test(id)) {
      continue;
    }
    try {
      const patient = await medplum.readResource('Patient', id);
      const other = metriportIdOf(patient);
      if (!other || other === payload.patientId) {
        return patient;
      }
    } catch (err) {
      if (!isNotFound(normalizeOperationOutcome(err))) {
        throw err;
      }
    }
  }
  return undefined;
}

/**
 * Sets the oldest parked (`on-hold`) Task of a patient back to `requested`: the re-drive
 * subscription runs it. A conflict means another run resumed it first.
 * @param medplum - The client.
 * @param patientId - The Medplum Patient id.
 */
async function resumeParked(medplum: MedplumClient, patientId: string): Promise<void> {
  const [parked] = await medplum.searchResources('Task', {
    code: `${METRIPORT_WEBHOOK_TASK_CODE.system}|${METRIPORT_WEBHOOK_TASK_CODE.code}`,
    subject: `Patient/${patientId}`,
    status: 'on-hold',
    _sort: 'authored-on',
    _count: '1',
  });
  if (!parked) {
    return;
  }
  try {
    await medplum.updateResource<Task>({ ...parked, status: 'requested' }, { headers: { 'If-Match': `W/"${parked.meta?.versionId}"` } });
  } catch (err) {
    if (!isVersionConflict(err)) {
      throw err;
    }
  }
}

/** True when another Task of the same query already merged it (Metriport may send a message twice). */
async function mergedBefore(medplum: MedplumClient, task: WithId<Task>, requestId: string | undefined): Promise<boolean> {
  if (!requestId) {
    return false;
  }
  const others = await medplum.searchResources('Task', { identifier: `${METRIPORT_REQUEST_ID_SYSTEM}|${requestId}`, status: 'completed', _count: '20' });
  return others.some((t) => t.id !== task.id && t.businessStatus?.coding?.some((c) => c.system === TASK_OUTCOME_SYSTEM && c.code === TaskOutcome.merged));
}

/**
 * After an expired download: starts a new consolidated query (its webhook brings fresh URLs),
 * unless this patient already had `maxRequeriesPerHour` expired downloads in the last hour, which
 * means the hub is too slow to download in time and a person must look.
 * @returns What was done, for the Task.
 */
async function requeryAfterExpiry(medplum: MedplumClient, patient: WithId<Patient>, metriportId: string, options: ProcessOptions): Promise<string> {
  const since = new Date(Date.now() - 3600_000).toISOString();
  const recent = await medplum.searchResources('Task', {
    code: `${METRIPORT_WEBHOOK_TASK_CODE.system}|${METRIPORT_WEBHOOK_TASK_CODE.code}`,
    subject: `Patient/${patient.id}`,
    _lastUpdated: `gt${since}`,
    _count: '100',
  });
  const expired = recent.filter((t) => t.businessStatus?.coding?.some((c) => c.code === TaskOutcome.urlExpired)).length;
  const limit = options.maxRequeriesPerHour ?? 3;
  if (expired >= limit) {
    return `not queried again: ${expired} downloads expired for this patient in the last hour`;
  }
  const settings = metriportSettings(options.secrets, [MetriportSecret.apiKey]);
  if (!settings.ok) {
    return `not queried again: missing bot secrets ${settings.missing.join(', ')}`;
  }
  const client = new MetriportClient({ apiKey: settings.values[MetriportSecret.apiKey], baseUrl: settings.baseUrl });
  const query = await client.startConsolidatedQuery(metriportId, { medplumPatientId: patient.id });
  return `started consolidated query ${query.requestId} to fetch the data again`;
}

function mergeOutput(merge: MergeResult, skipped: number, dangling: number, failures: readonly { reference: string; reason: string }[]): TaskOutput[] {
  const count = (text: string, value: number): TaskOutput => ({ type: { text }, valueInteger: value });
  const output = [
    count('created', merge.created),
    count('updated', merge.updated),
    count('unchanged', merge.unchanged),
    count('skipped', skipped),
    count('refused', merge.failed.length),
    count('references to resources not in the bundle', dangling),
  ];
  for (const failure of failures.slice(0, MAX_LISTED_FAILURES)) {
    output.push({ type: { text: 'not imported' }, valueString: `${failure.reference}: ${failure.reason}` });
  }
  if (failures.length > MAX_LISTED_FAILURES) {
    output.push({ type: { text: 'not imported' }, valueString: `… and ${failures.length - MAX_LISTED_FAILURES} more` });
  }
  return output;
}

/** @returns A check that validates with `@medplum/core` (definitions must be loaded). */
export function resourceValidator(validate: (resource: Resource) => unknown): ResourceCheck {
  return (resource) => {
    try {
      validate(resource);
      return [];
    } catch (err) {
      return [normalizeErrorString(err)];
    }
  };
}
