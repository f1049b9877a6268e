import type { MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Identifier, Patient } from '@medplum/fhirtypes';
import { isVersionConflict } from '../fhir/writer.ts';
import { METRIPORT_PATIENT_SYSTEM } from './constants.ts';

/**
 * @param patient - A Medplum Patient.
 * @returns The Metriport patient id it is linked to, if any.
 */
export function metriportIdOf(patient: Patient): string | undefined {
  return patient.identifier?.find((i) => i.system === METRIPORT_PATIENT_SYSTEM && i.value)?.value;
}

/**
 * Stores the Metriport patient id on a Medplum Patient with a JSON Patch that appends to
 * `identifier` (never replacing it, so identifiers from other feeds stay), guarded by a `test`
 * of the version read: a concurrent edit makes the patch fail, and it is re-read and retried.
 * @param medplum - The client.
 * @param patient - The Patient as read.
 * @param metriportId - The Metriport patient id.
 * @returns The Patient after the link (unchanged when it was already linked to that id).
 * @throws Error when the Patient is linked to another Metriport patient.
 */
export async function linkMetriportId(medplum: MedplumClient, patient: WithId<Patient>, metriportId: string): Promise<WithId<Patient>> {
  let current = patient;
  for (let attempt = 1; ; attempt++) {
    const linked = metriportIdOf(current);
    if (linked === metriportId) {
      return current;
    }
    if (linked) {
      throw new Error(`Patient/${current.id} is already linked to another Metriport patient`);
    }
    const identifier: Identifier = { system: METRIPORT_PATIENT_SYSTEM, value: metriportId };
    const add = current.identifier
      ? { op: 'add' as const, path: '/identifier/-', value: identifier }
      : { op: 'add' as const, path: '/identifier', value: [identifier] };
    try {
      return await medplum.patchResource('Patient', current.id, [{ op: 'test', path: '/meta/versionId', value: current.meta?.versionId }, add]);
    } catch (err) {
      // A failed `test` is answered 400 by the server; a version conflict 409/412.
      if (attempt >= 3 || !(isVersionConflict(err) || /Test failed/.test(normalizeErrorString(err)))) {
        throw err;
      }
      current = await medplum.readResource('Patient', current.id);
    }
  }
}
