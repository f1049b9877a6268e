import type { Hl7Segment } from '@medplum/core';
import type { CodeableConcept, Coding, Condition, Encounter, EncounterDiagnosis, Identifier, Patient } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { rep, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { describedConcept, hl7TableCoding } from '../datatypes/coding.ts';
import { eiToIdentifier } from '../datatypes/identifier.ts';
import { conceptToken, identifierToken, syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';
import type { PatientLink } from './pid.ts';
import { practitionerRef } from './practitioner.ts';

/** The Encounter that a segment's resources belong to. */
export interface EncounterLink {
  /** Plan key of the Encounter. */
  readonly key: string;
  /** `system^value` of its visit identifier, for synthetic keys. */
  readonly token: string;
}

/**
 * @param plan - The Encounter plan, if the message has a visit.
 * @returns Its link, or undefined.
 */
export function encounterLink(plan: ResourcePlan<Encounter> | undefined): EncounterLink | undefined {
  return plan ? { key: plan.key, token: identifierToken(plan.identifiers[0]) } : undefined;
}

/** A diagnosis: the Condition and the Encounter.diagnosis entry that points at it. */
export interface MappedDiagnosis {
  readonly plan: ResourcePlan<Condition>;
  /** Undefined when there is no Encounter or the diagnosis was deleted (DG1-21 `D`). */
  readonly diagnosis?: EncounterDiagnosis;
}

/** HL7 table 0052 diagnosis type → diagnosis-role (IG DiagnosisType: only A has a target). */
const DIAGNOSIS_ROLE: Record<string, Coding> = {
  A: { system: 'http://terminology.hl7.org/CodeSystem/diagnosis-role', code: 'AD', display: 'Admission diagnosis' },
};

const ENCOUNTER_DIAGNOSIS: CodeableConcept = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'encounter-diagnosis', display: 'Encounter Diagnosis' }],
};

/**
 * DG1 → Condition + Encounter.diagnosis (IG DG1[Condition], DG1[Encounter]): category
 * `encounter-diagnosis`; DG1-3 → code (coding system from CWE.3, else the deprecated DG1-2
 * coding method; I10 → ICD-10-CM), DG1-4 → code.text, DG1-5 → onsetDateTime, DG1-16 →
 * asserter, DG1-19 → recordedDate, DG1-20 → identifier, DG1-21 `D` → verificationStatus
 * `entered-in-error`; DG1-6 (table 0052) → diagnosis.use, DG1-15 → diagnosis.rank. Keyed by
 * DG1-20 when sent, else by patient + encounter + diagnosis code (never the set id).
 * @param dg1 - The DG1 segment.
 * @param ctx - The mapping context.
 * @param patient - The patient.
 * @param encounter - The visit, if the message has one.
 * @param sequence - Which DG1 of the message (1-based), for warnings.
 * @param plans - Plans collected so far (the diagnosing Practitioner is added).
 * @returns The diagnosis, or undefined (with a warning) when DG1-3 and DG1-4 are both empty.
 */
export function mapDiagnosis(
  dg1: Hl7Segment,
  ctx: MappingContext,
  patient: PatientLink,
  encounter: EncounterLink | undefined,
  sequence: number,
  plans: ResourcePlan[]
): MappedDiagnosis | undefined {
  // DG1-3 with DG1-2 as the default coding system, DG1-4 as the text when CWE.9 has none.
  const code = describedConcept(rep(dg1, 3), val(dg1, 2), val(dg1, 4), ctx);
  if (!code) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'DG1-3 (diagnosis code) and DG1-4 (description) are empty; the diagnosis is not recorded',
      location: { segment: 'DG1', sequence, field: 3 },
    });
    return undefined;
  }
  const codeToken = conceptToken(code, 'prefixed');
  const sourceIdRep = rep(dg1, 20);
  const sourceId = sourceIdRep ? eiToIdentifier(sourceIdRep, ctx, '', { segment: 'DG1', sequence, field: 20 }) : undefined;
  const identifier: Identifier = sourceId ?? syntheticIdentifier('condition', ctx, [patient.token, encounter?.token ?? '', codeToken]);
  const key = sourceId ? `Condition/${identifierToken(sourceId)}` : `Condition/${codeToken}`;

  const deleted = val(dg1, 21).trim().toUpperCase() === 'D';
  const condition: Condition = {
    resourceType: 'Condition',
    identifier: [identifier],
    ...(deleted
      ? { verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'entered-in-error' }] } }
      : {}),
    category: [ENCOUNTER_DIAGNOSIS],
    code,
    subject: localRef<Patient>(patient.key),
    ...(encounter ? { encounter: localRef<Encounter>(encounter.key) } : {}),
  };
  const onset = ctx.dateTime(val(dg1, 5), { segment: 'DG1', sequence, field: 5 });
  if (onset) {
    condition.onsetDateTime = onset;
  }
  const recorded = ctx.dateTime(val(dg1, 19), { segment: 'DG1', sequence, field: 19 });
  if (recorded) {
    condition.recordedDate = recorded;
  }
  const asserter = practitionerRef(rep(dg1, 16), ctx, { segment: 'DG1', sequence, field: 16 }, plans);
  if (asserter) {
    condition.asserter = asserter;
  }
  const plan: ResourcePlan<Condition> = { key, resource: condition, identifiers: [identifier], merge: 'overlay' };
  return { plan, ...(encounter && !deleted ? { diagnosis: encounterDiagnosis(dg1, key) } : {}) };
}

function encounterDiagnosis(dg1: Hl7Segment, conditionKey: string): EncounterDiagnosis {
  const diagnosis: EncounterDiagnosis = { condition: localRef<Condition>(conditionKey) };
  const type = val(dg1, 6).trim().toUpperCase();
  const typeCoding = hl7TableCoding(type, '0052');
  if (typeCoding) {
    diagnosis.use = { coding: [typeCoding, ...(DIAGNOSIS_ROLE[type] ? [DIAGNOSIS_ROLE[type]] : [])] };
  }
  const rank = Number(val(dg1, 15).trim());
  if (Number.isInteger(rank) && rank >= 1) {
    diagnosis.rank = rank;
  }
  return diagnosis;
}
