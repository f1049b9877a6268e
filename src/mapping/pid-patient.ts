import type { Hl7Field, Hl7Segment } from '@medplum/core';
import type { HumanName, Identifier, Patient } from '@medplum/fhirtypes';
import { HUB_URI } from '../constants.ts';

/**
 * Maps a CX assigning authority (CX-4, an HD) to an identifier system: an ISO universal id becomes
 * `urn:oid:`, a URI stays as is, a bare namespace id becomes a hub-scoped URI. (The HL7 issue
 * replaces this with NamingSystem lookups.)
 * @param namespace - HD-1.
 * @param universalId - HD-2.
 * @param universalIdType - HD-3.
 * @returns The system, or undefined when the authority is empty.
 */
export function systemForAssigningAuthority(namespace: string, universalId: string, universalIdType: string): string | undefined {
  if (universalId && universalIdType.toUpperCase() === 'ISO') {
    return 'urn:oid:' + universalId;
  }
  if (universalId && (universalIdType.toUpperCase() === 'URI' || universalIdType.toUpperCase() === 'URL')) {
    return universalId;
  }
  if (namespace) {
    return `${HUB_URI}/sid/assigning-authority/${encodeURIComponent(namespace)}`;
  }
  return undefined;
}

/**
 * Reads the identifiers of PID-3 (every repetition). Repetitions without a value or an assigning
 * authority are skipped: a bare value cannot identify a patient safely.
 * @param pid - The PID segment.
 * @returns Identifiers with systems.
 */
export function patientIdentifiers(pid: Hl7Segment): Identifier[] {
  const field = pid.getField(3) as Hl7Field | undefined;
  const identifiers: Identifier[] = [];
  for (let rep = 0; rep < (field?.components.length ?? 0); rep++) {
    const value = field?.getComponent(1, undefined, rep) ?? '';
    const namespace = field?.getComponent(4, 0, rep) ?? '';
    const universalId = field?.getComponent(4, 1, rep) ?? '';
    const universalIdType = field?.getComponent(4, 2, rep) ?? '';
    const system = systemForAssigningAuthority(namespace, universalId, universalIdType);
    const typeCode = field?.getComponent(5, undefined, rep) ?? '';
    if (value && system) {
      identifiers.push({
        ...(typeCode ? { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: typeCode }] } } : {}),
        system,
        value,
      });
    }
  }
  return identifiers;
}

/**
 * Maps a PID segment to the demographic part of a Patient: identifiers, first name, birth date,
 * administrative gender. Pure; the HL7 issue extends it to the full IG segment map.
 * @param pid - The PID segment.
 * @returns The Patient.
 */
export function patientFromPid(pid: Hl7Segment): Patient {
  const patient: Patient = { resourceType: 'Patient', identifier: patientIdentifiers(pid) };
  const family = pid.getComponent(5, 1);
  const given = [pid.getComponent(5, 2), pid.getComponent(5, 3)].filter(Boolean);
  if (family || given.length) {
    const name: HumanName = {};
    if (family) {
      name.family = family;
    }
    if (given.length) {
      name.given = given;
    }
    patient.name = [name];
  }
  const dob = pid.getComponent(7, 1);
  if (/^\d{8}/.test(dob)) {
    patient.birthDate = `${dob.slice(0, 4)}-${dob.slice(4, 6)}-${dob.slice(6, 8)}`;
  }
  const gender = { M: 'male', F: 'female', O: 'other', U: 'unknown' }[pid.getComponent(8, 1).toUpperCase()] as
    | Patient['gender']
    | undefined;
  if (gender) {
    patient.gender = gender;
  }
  return patient;
}
