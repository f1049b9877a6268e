import type { Hl7Segment } from '@medplum/core';
import type { CodeableConcept, Coding, ContactPoint, HumanName, Identifier, Patient, RelatedPerson } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import { isNullField, rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { xadToAddress } from '../datatypes/address.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { cxToIdentifier, identifierType } from '../datatypes/identifier.ts';
import { xpnToHumanName } from '../datatypes/name.ts';
import { xtnToContactPoint } from '../datatypes/telecom.ts';
import { syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';
import type { PatientLink } from './pid.ts';
import { administrativeGender, US_SSN } from './pid.ts';

const ROLE_CODE = 'http://terminology.hl7.org/CodeSystem/v3-RoleCode';
const CONTACT_ROLE = 'http://terminology.hl7.org/CodeSystem/v2-0131';

/**
 * HL7 table 0063 relationship → the FHIR relationship coding the IG's Relationship concept map
 * gives (v3 RoleCode, or table 0131 contact roles), added beside the sender's own coding.
 */
const RELATIONSHIP: Record<string, Coding> = {
  SEL: { system: ROLE_CODE, code: 'ONESELF', display: 'self' },
  SPO: { system: ROLE_CODE, code: 'SPS', display: 'spouse' },
  DOM: { system: ROLE_CODE, code: 'SIGOTHR', display: 'significant other' },
  CHD: { system: ROLE_CODE, code: 'CHILD', display: 'child' },
  GCH: { system: ROLE_CODE, code: 'GRNDCHILD', display: 'grandchild' },
  NCH: { system: ROLE_CODE, code: 'NCHILD', display: 'natural child' },
  SCH: { system: ROLE_CODE, code: 'STPCHLD', display: 'step child' },
  FCH: { system: ROLE_CODE, code: 'CHLDFOST', display: 'foster child' },
  PAR: { system: ROLE_CODE, code: 'PRN', display: 'parent' },
  MTH: { system: ROLE_CODE, code: 'MTH', display: 'mother' },
  FTH: { system: ROLE_CODE, code: 'FTH', display: 'father' },
  GRP: { system: ROLE_CODE, code: 'GRPRN', display: 'grandparent' },
  EXF: { system: ROLE_CODE, code: 'EXT', display: 'extended family member' },
  SIB: { system: ROLE_CODE, code: 'SIB', display: 'sibling' },
  BRO: { system: ROLE_CODE, code: 'BRO', display: 'brother' },
  SIS: { system: ROLE_CODE, code: 'SIS', display: 'sister' },
  FND: { system: ROLE_CODE, code: 'FRND', display: 'unrelated friend' },
  EMR: { system: CONTACT_ROLE, code: 'E', display: 'Employer' },
  EMC: { system: CONTACT_ROLE, code: 'C', display: 'Emergency Contact' },
  UNK: { system: CONTACT_ROLE, code: 'U', display: 'Unknown' },
  OTH: { system: CONTACT_ROLE, code: 'O', display: 'Other' },
};

/** The codes of HL7 table 0063 (relationship), v2.5.1. */
const TABLE_0063 = new Set([
  ...Object.keys(RELATIONSHIP),
  'DEP', 'WRD', 'CGV', 'GRD', 'OAD', 'EME', 'ASC', 'OWN', 'TRA', 'MGR', 'NON',
]);

/**
 * A relationship to the patient (CWE from HL7 table 0063: NK1-3, IN1-17, GT1-11) as a
 * CodeableConcept: the sender's coding (table 0063 when CWE.3 is empty), plus the v3 RoleCode
 * (or table 0131) coding of the IG's Relationship concept map.
 * @param cwe - The relationship repetition.
 * @param ctx - The mapping context.
 * @param withRoleCode - Add the concept map's coding (RelatedPerson); false for Coverage, whose
 * relationship has its own code system.
 * @returns The concept, or undefined when empty.
 */
export function relationshipConcept(cwe: FieldRep | undefined, ctx: MappingContext, withRoleCode = true): CodeableConcept | undefined {
  const code = cwe?.get(1).trim().toUpperCase() ?? '';
  // Without CWE.3 only a code of table 0063 is labelled as one; others (e.g. WIFE) are the sender's.
  const concept = cwe ? cweToCodeableConcept(cwe, ctx, TABLE_0063.has(code) ? 'HL70063' : undefined) : undefined;
  const systemName = cwe?.get(3).trim().toUpperCase() ?? '';
  const standard = (systemName === '' && TABLE_0063.has(code)) || systemName === 'HL70063' ? RELATIONSHIP[code] : undefined;
  if (!concept || !standard || !withRoleCode) {
    return concept;
  }
  return { ...concept, coding: [...(concept.coding ?? []), standard] };
}

/**
 * The synthetic business identifier of a related person: the patient, the relationship code as
 * sent (table 0063) and the name (family and first given, case-insensitive). It does not use the
 * NK1 set id, which only numbers segments within a message, and IN1 subscribers with the same
 * relationship and name find the same RelatedPerson.
 * @param ctx - The mapping context.
 * @param patient - The patient.
 * @param relationshipCode - The relationship code as sent (NK1-3.1, IN1-17.1).
 * @param name - The person's name.
 * @returns The plan key and the identifier.
 */
export function relatedPersonIdentity(
  ctx: MappingContext,
  patient: PatientLink,
  relationshipCode: string,
  name: HumanName | undefined
): { key: string; identifier: Identifier } {
  const nameToken = [name?.family ?? '', name?.given?.[0] ?? ''].join('^').toUpperCase();
  const relationship = relationshipCode.trim().toUpperCase();
  return {
    key: `RelatedPerson/${relationship}/${nameToken}`,
    identifier: syntheticIdentifier('related-person', ctx, [patient.token, relationship, nameToken]),
  };
}

/**
 * NK1 → RelatedPerson (IG NK1[RelatedPerson]): NK1-2 (else NK1-30) → name, NK1-3 and NK1-7 →
 * relationship, NK1-4/NK1-32 → address, NK1-5 (home), NK1-6 (work), NK1-31/NK1-40 → telecom,
 * NK1-8/9 → period, NK1-12/NK1-33 and NK1-37 (SSN) → identifier, NK1-15 → gender, NK1-16 →
 * birthDate, NK1-20 → communication. Keyed by {@link relatedPersonIdentity}; the other
 * identifiers are recorded but never matched on. `""` in NK1-4 or NK1-5 clears address/telecom.
 * @param nk1 - The NK1 segment.
 * @param ctx - The mapping context.
 * @param patient - The patient it relates to.
 * @param sequence - Which NK1 of the message (1-based), for warnings.
 * @returns The plan, or undefined (with a warning) when the segment names nobody.
 */
export function mapRelatedPerson(nk1: Hl7Segment, ctx: MappingContext, patient: PatientLink, sequence: number): ResourcePlan<RelatedPerson> | undefined {
  const names = [...reps(nk1, 2), ...reps(nk1, 30)].map(xpnToHumanName).filter((n): n is HumanName => n !== undefined);
  if (names.length === 0) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'NK1-2 (name) is empty; the next of kin is not recorded',
      location: { segment: 'NK1', sequence, field: 2 },
    });
    return undefined;
  }
  const identity = relatedPersonIdentity(ctx, patient, val(nk1, 3), names[0]);
  const person: RelatedPerson = {
    resourceType: 'RelatedPerson',
    identifier: [identity.identifier, ...otherIdentifiers(nk1, ctx, sequence)],
    patient: localRef<Patient>(patient.key),
    name: names,
  };
  const relationship = [relationshipConcept(rep(nk1, 3), ctx), contactRole(rep(nk1, 7), ctx)].filter((c) => c !== undefined);
  if (relationship.length) {
    person.relationship = relationship;
  }
  const clear: string[] = [];
  const telecom = mapTelecom(nk1);
  if (telecom.length) {
    person.telecom = telecom;
  } else if (isNullField(nk1, 5)) {
    clear.push('telecom');
  }
  const address = [...reps(nk1, 4), ...reps(nk1, 32)].map(xadToAddress).filter((a) => a !== undefined);
  if (address.length) {
    person.address = address;
  } else if (isNullField(nk1, 4)) {
    clear.push('address');
  }
  const gender = administrativeGender(val(nk1, 15));
  if (gender) {
    person.gender = gender;
  }
  const birthDate = ctx.date(val(nk1, 16), { segment: 'NK1', sequence, field: 16 });
  if (birthDate) {
    person.birthDate = birthDate;
  }
  const start = ctx.date(val(nk1, 8), { segment: 'NK1', sequence, field: 8 });
  const end = ctx.date(val(nk1, 9), { segment: 'NK1', sequence, field: 9 });
  if (start || end) {
    person.period = { ...(start ? { start } : {}), ...(end ? { end } : {}) };
  }
  const language = rep(nk1, 20);
  const languageConcept = language ? cweToCodeableConcept(language, ctx, 'ISO639') : undefined;
  if (languageConcept) {
    person.communication = [{ language: languageConcept }];
  }
  return {
    key: identity.key,
    resource: person,
    identifiers: [identity.identifier],
    merge: 'overlay',
    ...(clear.length ? { clear } : {}),
  };
}

/** NK1-7 contact role (table 0131, e.g. C emergency contact, N next of kin). */
function contactRole(cwe: FieldRep | undefined, ctx: MappingContext): CodeableConcept | undefined {
  return cwe ? cweToCodeableConcept(cwe, ctx, 'HL70131') : undefined;
}

/** NK1-5 (home unless XTN.2 says otherwise), NK1-6 (work), NK1-31 and NK1-40/41. */
function mapTelecom(nk1: Hl7Segment): ContactPoint[] {
  const withUse = (field: number, use: ContactPoint['use']): ContactPoint[] =>
    reps(nk1, field)
      .map(xtnToContactPoint)
      .filter((c) => c !== undefined)
      .map((c) => (c.use || c.system !== 'phone' ? c : { ...c, use }));
  return [...withUse(5, 'home'), ...withUse(6, 'work'), ...withUse(31, undefined), ...withUse(40, undefined), ...withUse(41, undefined)];
}

/** NK1-12 employee number, NK1-33 identifiers, NK1-37 SSN: recorded, never matched on. */
function otherIdentifiers(nk1: Hl7Segment, ctx: MappingContext, sequence: number): Identifier[] {
  const identifiers = [...reps(nk1, 12).map((cx) => ({ cx, field: 12 })), ...reps(nk1, 33).map((cx) => ({ cx, field: 33 }))]
    .map(({ cx, field }) => cxToIdentifier(cx, ctx, { segment: 'NK1', sequence, field }))
    .filter((i) => i !== undefined);
  const ssn = val(nk1, 37).trim();
  if (ssn) {
    identifiers.push({ type: identifierType('SS'), system: US_SSN, value: ssn });
  }
  return identifiers;
}
