import type { MedplumClient, WithId } from '@medplum/core';
import type { Basic } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { HUB_SID, HUB_URI } from '../constants.ts';
import { isVersionConflict } from './writer.ts';

/** Code system of lock Basics; the code is the kind of lock (policies scope bots to their kinds). */
export const LOCK_CODE_SYSTEM = `${HUB_URI}/CodeSystem/hub-lock`;
/** The kinds of lock the hub takes. */
export const LockKind = {
  /** One Metriport merge per patient at a time; the key is the Patient id. */
  metriportMerge: 'metriport-merge',
  /** One poll per SFTP source at a time; the key is the source name. */
  sftpSource: 'sftp-source',
  /** One delivery pass per partner at a time (in order); the key is the partner Endpoint. */
  partnerDelivery: 'partner-delivery',
  /** One sending pass per lab interface at a time (in order); the key is the Device. */
  labOrders: 'lab-orders',
} as const;
export type LockKindCode = (typeof LockKind)[keyof typeof LockKind];
/** Identifier system of a lock: `<kind>/<key>` (one lock per kind and key). */
const LOCK_SYSTEM = `${HUB_SID}/lock`;
/** Identifier system of a lock's holder: the run that took it (a label and a random run id). */
const HOLDER_SYSTEM = `${HUB_SID}/lock-holder`;
/** A lock older than any run (the longest bot timeout is 900 s) was left by a run that died. */
export const LOCK_STALE_MS = 20 * 60_000;

/**
 * Takes a lock, so that only one run at a time works on something (a patient's record, an SFTP
 * folder). The lock is a Basic resource created with a conditional create on its identifier,
 * which the server runs serializably, so exactly one run creates it. A lock older than
 * {@link LOCK_STALE_MS} was left by a run that died and is taken over (with `If-Match`).
 * @param medplum - The client.
 * @param kind - The kind of lock.
 * @param key - What is locked (ids or names, no PHI).
 * @param holder - Who takes it (e.g. `Task/<id>`), for people reading the lock.
 * @returns The lock, or undefined when another run holds it.
 */
export async function acquireLock(medplum: MedplumClient, kind: LockKindCode, key: string, holder: string): Promise<WithId<Basic> | undefined> {
  const run = `${holder}/${randomUUID()}`;
  const now = new Date().toISOString();
  const id = `${kind}/${key}`;
  const draft: Basic = {
    resourceType: 'Basic',
    code: { coding: [{ system: LOCK_CODE_SYSTEM, code: kind }], text: `lock ${id}` },
    created: now.slice(0, 10),
    identifier: [
      { system: LOCK_SYSTEM, value: id },
      { system: HOLDER_SYSTEM, value: run },
    ],
    extension: [{ url: `${HUB_URI}/StructureDefinition/lock-taken`, valueInstant: now }],
  };
  const lock = await medplum.createResourceIfNoneExist(draft, `identifier=${encodeURIComponent(`${LOCK_SYSTEM}|${id}`)}`);
  if (holderOf(lock) === run) {
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
    if (isVersionConflict(err)) {
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
export async function releaseLock(medplum: MedplumClient, lock: WithId<Basic>): Promise<void> {
  const current = await medplum.readResource('Basic', lock.id).catch(() => undefined);
  if (current && holderOf(current) === holderOf(lock)) {
    await medplum.deleteResource('Basic', lock.id);
  }
}

/**
 * @param medplum - The client.
 * @param kind - The kind of lock.
 * @param key - What is locked.
 * @returns True when some run holds the lock.
 */
export async function isLocked(medplum: MedplumClient, kind: LockKindCode, key: string): Promise<boolean> {
  return Boolean(await medplum.searchOne('Basic', { identifier: `${LOCK_SYSTEM}|${kind}/${key}` }));
}

function holderOf(lock: Basic): string | undefined {
  return lock.identifier?.find((i) => i.system === HOLDER_SYSTEM)?.value;
}

function takenAt(lock: Basic): number {
  const taken = Date.parse(lock.extension?.find((e) => e.url === `${HUB_URI}/StructureDefinition/lock-taken`)?.valueInstant ?? '');
  return Number.isFinite(taken) ? taken : 0;
}
