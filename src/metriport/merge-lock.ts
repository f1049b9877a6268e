import type { MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Basic } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { HUB_SID, HUB_URI } from '../constants.ts';

/** Code of the Basic resource that is a patient's merge lock. */
export const MERGE_LOCK_CODE = { system: `${HUB_URI}/CodeSystem/hub-lock`, code: 'metriport-merge' } as const;
/** Identifier system of a lock: the Medplum Patient id (one lock per patient). */
const LOCK_SYSTEM = `${HUB_SID}/metriport-merge-lock`;
/** Identifier system of a lock's holder: the run that took it (`Task/<id>` and a random run id). */
const HOLDER_SYSTEM = `${HUB_SID}/metriport-merge-lock-holder`;
/** A lock older than the processing bot's longest run (900 s) was left by a run that died. */
export const LOCK_STALE_MS = 20 * 60_000;

/**
 * Takes the merge lock of a patient. Two merges into the same record at once would both find a
 * resource missing and both create it; the lock is a Basic resource created with a conditional
 * create on the patient's lock identifier, which the server runs serializably, so exactly one run
 * creates it. A lock older than {@link LOCK_STALE_MS} is taken over (with `If-Match`).
 * @param medplum - The client.
 * @param patientId - The Medplum Patient id.
 * @param taskId - The Task being processed.
 * @returns The lock, or undefined when another run holds it.
 */
export async function acquireMergeLock(medplum: MedplumClient, patientId: string, taskId: string): Promise<WithId<Basic> | undefined> {
  const holder = `Task/${taskId}/${randomUUID()}`;
  const now = new Date().toISOString();
  const draft: Basic = {
    resourceType: 'Basic',
    code: { coding: [{ ...MERGE_LOCK_CODE }], text: 'Metriport merge in progress' },
    subject: { reference: `Patient/${patientId}` },
    created: now.slice(0, 10),
    identifier: [
      { system: LOCK_SYSTEM, value: patientId },
      { system: HOLDER_SYSTEM, value: holder },
    ],
    extension: [{ url: `${HUB_URI}/StructureDefinition/lock-taken`, valueInstant: now }],
  };
  const lock = await medplum.createResourceIfNoneExist(draft, `identifier=${encodeURIComponent(`${LOCK_SYSTEM}|${patientId}`)}`);
  if (holderOf(lock) === holder) {
    return lock;
  }
  if (Date.now() - takenAt(lock) < LOCK_STALE_MS) {
    return undefined;
  }
  try {
    return await medplum.updateResource<Basic>(
      { ...draft, id: lock.id },
      { headers: { 'If-Match': `W/"${lock.meta?.versionId}"` } }
    );
  } catch (err) {
    // Another run took it over first.
    if (/precondition|conflict/i.test(normalizeErrorString(err))) {
      return undefined;
    }
    throw err;
  }
}

/**
 * Releases a lock this run holds (deletes it). A lock taken over meanwhile is left alone.
 * @param medplum - The client.
 * @param lock - The lock as acquired.
 */
export async function releaseMergeLock(medplum: MedplumClient, lock: WithId<Basic>): Promise<void> {
  const current = await medplum.readResource('Basic', lock.id).catch(() => undefined);
  if (current && holderOf(current) === holderOf(lock)) {
    await medplum.deleteResource('Basic', lock.id);
  }
}

/**
 * @param medplum - The client.
 * @param patientId - The Medplum Patient id.
 * @returns True when some run holds the patient's merge lock.
 */
export async function isMergeLocked(medplum: MedplumClient, patientId: string): Promise<boolean> {
  return Boolean(await medplum.searchOne('Basic', { identifier: `${LOCK_SYSTEM}|${patientId}` }));
}

function holderOf(lock: Basic): string | undefined {
  return lock.identifier?.find((i) => i.system === HOLDER_SYSTEM)?.value;
}

function takenAt(lock: Basic): number {
  const taken = Date.parse(lock.extension?.find((e) => e.url === `${HUB_URI}/StructureDefinition/lock-taken`)?.valueInstant ?? '');
  return Number.isFinite(taken) ? taken : 0;
}
