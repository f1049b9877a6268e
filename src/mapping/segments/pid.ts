import type { Extension, HumanName, Identifier, Patient } from '@medplum/fhirtypes';
import type { Hl7Segment } from '@medplum/core';
import { mergeIdentifiers } from '../../fhir/identifiers.ts';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { isNullField, rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { xadToAddress } from '../datatypes/address.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { cxToIdentifier, identifierType } from '../datatypes/identifier.ts';
import { xpnToHumanName } from '../datatypes/name.ts';
import { xtnToContactPoint } from '../datatypes/telecom.ts';
import { identifierToken } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { MappingError } from '../plan.ts';

/**
 * The Patient that a segment's resources belong to: its plan key (for references) and a stable
 * token of one of its identifiers (for synthetic keys of allergies, diagnoses, next of kin...).
 */
export interface PatientLink {
  /** Plan key of the Patient, e.g. `Patient`. */
  readonly key: string;
  /** The identifier the synthetic keys are built on. */
  readonly identifier: Identifier;
  /** `system^value` of {@link identifier} (see `identifierToken`). */
  readonly token: string;
}

/**
 * Picks the identifier that keys derived resources: the first medical record number (CX.5 `MR`),
 * else the first identifier. Preferring the MRN keeps derived keys stable when a sender reorders
 * PID-3 or adds an enterprise id to some messages only.
 * @param identifiers - The Patient's matching identifiers (PID-3), in message order.
 * @returns The preferred identifier.
 */
export function preferredIdentifier(identifiers: readonly Identifier[]): Identifier {
  return identifiers.find((i) => i.type?.coding?.some((c) => c.code === 'MR')) ?? identifiers[0];
}

/**
 * @param plan - A Patient plan from {@link mapPatient} (its first identifier is the preferred one).
 * @returns The link other segment maps use to reference and key against that Patient.
 */
export function patientLink(plan: ResourcePlan<Patient>): PatientLink {
  const identifier = plan.identifiers[0];
  return { key: plan.key, identifier, token: identifierToken(identifier) };
}

/** HL7 table 0001 administrative sex → FHIR gender. */
const GENDER: Record<string, Patient['gender']> = {
  M: 'male',
  F: 'female',
  O: 'other',
  A: 'other',
  U: 'unknown',
  N: 'unknown',
};

/** Identifier system of US social security numbers (PID-19, NK1-37). */
export const US_SSN = 'http://hl7.org/fhir/sid/us-ssn';

/**
 * @param code - An HL7 table 0001 administrative sex code (PID-8, NK1-15, IN1-43).
 * @returns The FHIR administrative gender, or undefined for an empty or unknown code.
 */
export function administrativeGender(code: string): Patient['gender'] | undefined {
  return GENDER[code.trim().toUpperCase()];
}

/**
 * PID → Patient (IG segment map). Identity comes from PID-3 only: every repetition with a value
 * becomes an identifier with a system (never a bare value), and those identifiers find the stored
 * Patient. PID-2 and PID-4 (older external/alternate ids), PID-19 (SSN) and PID-20 (driver's
 * licence) are recorded but never used to match. Names (PID-5, PID-9 alias), birth date and time
 * (PID-7), sex (PID-8), addresses (PID-11), phones (PID-13 home, PID-14 work), language (PID-15),
 * marital status (PID-16), mother's maiden name (PID-6), multiple birth (PID-24/25) and death
 * (PID-29/30) follow the IG; `""` in PID-5, PID-11, PID-13/14 or PID-29/30 clears the element.
 * The plan's `identifiers` are PID-3's with the preferred one ({@link preferredIdentifier}) first.
 * @param pid - The PID segment.
 * @param ctx - The mapping context.
 * @param key - The plan key (default `Patient`).
 * @returns The Patient plan.
 */
export function mapPatient(pid: Hl7Segment | undefined, ctx: MappingContext, key = 'Patient'): ResourcePlan<Patient> {
  if (!pid) {
    throw new MappingError({ code: Hl7ErrorCode.SegmentSequence, text: 'PID segment missing', location: { segment: 'PID' } });
  }
  const matchIdentifiers = reps(pid, 3)
    .map((cx) => cxToIdentifier(cx, ctx, { segment: 'PID', field: 3 }))
    .filter((i): i is Identifier => Boolean(i));
  if (matchIdentifiers.length === 0) {
    throw new MappingError({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'PID-3 (patient identifier list) has no identifier',
      location: { segment: 'PID', field: 3 },
    });
  }
  const olderIdentifiers = [2, 4]
    .flatMap((field) => reps(pid, field).map((cx) => cxToIdentifier(cx, ctx, { segment: 'PID', field })))
    .filter((i): i is Identifier => Boolean(i));
  const identifiers = mergeIdentifiers(matchIdentifiers, olderIdentifiers);
  const ssn = val(pid, 19).trim();
  if (ssn) {
    identifiers.push({ type: identifierType('SS'), system: US_SSN, value: ssn });
  }
  const license = rep(pid, 20);
  if (license?.get(1).trim()) {
    identifiers.push({
      type: identifierType('DL'),
      system: ctx.identifierSystem({ namespace: license.get(2), universalId: '', universalIdType: '' }, 'DL', {
        segment: 'PID',
        field: 20,
      }),
      value: license.get(1).trim(),
    });
  }

  const patient: Patient = { resourceType: 'Patient', identifier: identifiers, active: true };
  const clear: string[] = [];

  // PID-9 (alias) repetitions come after PID-5's; without a type code they are nicknames.
  const aliases = reps(pid, 9)
    .map(xpnToHumanName)
    .map((name) => (name && !name.use ? ({ ...name, use: 'nickname' } as HumanName) : name));
  const names = [...reps(pid, 5).map(xpnToHumanName), ...aliases].filter((n): n is HumanName => Boolean(n));
  if (names.length) {
    patient.name = names;
  } else if (isNullField(pid, 5)) {
    clear.push('name');
  }

  const birth = val(pid, 7);
  if (birth) {
    const birthDate = ctx.date(birth, { segment: 'PID', field: 7 });
    if (birthDate) {
      patient.birthDate = birthDate;
      if (birth.trim().length > 8) {
        const birthTime = ctx.dateTime(birth, { segment: 'PID', field: 7 });
        if (birthTime?.includes('T')) {
          // The birth time rides on the primitive (`_birthDate`), which @medplum/fhirtypes does not type.
          (patient as Patient & { _birthDate?: { extension: Extension[] } })._birthDate = {
            extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: birthTime }],
          };
        }
      }
    }
  } else if (isNullField(pid, 7)) {
    clear.push('birthDate');
  }

  const gender = administrativeGender(val(pid, 8));
  if (gender) {
    patient.gender = gender;
  }

  const addresses = reps(pid, 11).map(xadToAddress).filter((a) => a !== undefined);
  if (addresses.length) {
    patient.address = addresses;
  } else if (isNullField(pid, 11)) {
    clear.push('address');
  }

  const telecom = [
    ...reps(pid, 13).map((x) => xtnToContactPoint(x)).map((c) => (c && !c.use && c.system === 'phone' ? { ...c, use: 'home' as const } : c)),
    ...reps(pid, 14).map((x) => xtnToContactPoint(x)).map((c) => (c && !c.use ? { ...c, use: 'work' as const } : c)),
  ].filter((c) => c !== undefined);
  if (telecom.length) {
    patient.telecom = telecom;
  } else if (isNullField(pid, 13) && (isNullField(pid, 14) || !val(pid, 14))) {
    clear.push('telecom');
  }

  const language = rep(pid, 15);
  const languageConcept = language ? cweToCodeableConcept(language, ctx, 'ISO639') : undefined;
  if (languageConcept) {
    patient.communication = [{ language: languageConcept }];
  }

  const marital = rep(pid, 16);
  const maritalConcept = marital ? cweToCodeableConcept(marital, ctx, 'HL70002') : undefined;
  if (maritalConcept) {
    patient.maritalStatus = maritalConcept;
  }

  const extensions: Extension[] = [];
  const maiden = rep(pid, 6)?.sub(1, 1).trim();
  if (maiden) {
    extensions.push({ url: 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName', valueString: maiden });
  }
  if (extensions.length) {
    patient.extension = extensions;
  }

  const multiple = val(pid, 24).trim().toUpperCase();
  const order = Number.parseInt(val(pid, 25), 10);
  if (multiple === 'Y' && Number.isInteger(order)) {
    patient.multipleBirthInteger = order;
  } else if (multiple === 'Y' || multiple === 'N') {
    patient.multipleBirthBoolean = multiple === 'Y';
  }

  const deathTime = val(pid, 29);
  const deathIndicator = val(pid, 30).trim().toUpperCase();
  if (deathTime) {
    const deceased = ctx.dateTime(deathTime, { segment: 'PID', field: 29 });
    if (deceased) {
      patient.deceasedDateTime = deceased;
    }
  } else if (deathIndicator === 'Y' || deathIndicator === 'N') {
    patient.deceasedBoolean = deathIndicator === 'Y';
  } else if (isNullField(pid, 29) || isNullField(pid, 30)) {
    clear.push('deceasedDateTime', 'deceasedBoolean');
  }

  // The preferred identifier goes first: callers key derived resources (e.g. a visit without a
  // number) on `identifiers[0]`, which must not depend on the order of PID-3's repetitions.
  const preferred = preferredIdentifier(matchIdentifiers);
  const lookup = [preferred, ...matchIdentifiers.filter((i) => i !== preferred)];
  return { key, resource: patient, identifiers: lookup, merge: 'overlay', ...(clear.length ? { clear } : {}) };
}
