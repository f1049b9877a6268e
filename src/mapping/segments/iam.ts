import type { Hl7Segment } from '@medplum/core';
import type { AllergyIntolerance, Identifier, Patient } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { eiToIdentifier } from '../datatypes/identifier.ts';
import type { MergeStrategy, ResourcePlan } from '../plan.ts';
import { localRef, MappingError } from '../plan.ts';
import { allergen, allergenType, allergyIdentity, clinicalStatus, manifestations, severityAndReaction, verificationStatus } from './allergy.ts';
import type { PatientLink } from './pid.ts';

/**
 * HL7 table 0438 allergy clinical status (IAM-17), which mixes verification and clinical state,
 * split into the two FHIR elements.
 */
const CLINICAL_STATUS_0438: Record<string, Pick<AllergyIntolerance, 'clinicalStatus' | 'verificationStatus'>> = {
  U: { verificationStatus: verificationStatus('unconfirmed') },
  P: { verificationStatus: verificationStatus('unconfirmed') },
  S: { verificationStatus: verificationStatus('unconfirmed') },
  C: { verificationStatus: verificationStatus('confirmed') },
  I: { clinicalStatus: clinicalStatus('inactive') },
  E: { verificationStatus: verificationStatus('entered-in-error') },
};

/** HL7 table 0323 action codes (IAM-6). */
const ACTIONS = new Set(['A', 'D', 'U', 'X']);

/**
 * IAM → AllergyIntolerance (IG IAM[AllergyIntolerance], A60): IAM-2 → category/type, IAM-3 →
 * code, IAM-4 → criticality and reaction.severity, IAM-5 → reaction.manifestation, IAM-7 →
 * identifier, IAM-11 (else IAM-12 text) → onset, IAM-13 → recordedDate, IAM-17 (table 0438) →
 * clinical and verification status. Keyed like AL1 (patient + allergen), so an A60 updates the
 * allergy an A01 listed; IAM-7 is matched on too.
 *
 * IAM-6 action code (the IG leaves it unmapped): `A`/`U` assert the allergy (clinicalStatus
 * `active` unless IAM-17 says inactive); `X` (no change) only fills a missing record; `D` removes
 * the record at the source, which FHIR expresses as verificationStatus `entered-in-error` with
 * clinicalStatus cleared (constraint ait-2). This follows the IG's own reading of the parallel
 * segment action code DG1-21 `D` (→ Condition entered-in-error); an allergy that merely stopped
 * being relevant is sent as an update with IAM-17 `I` and becomes `inactive`.
 * @param iam - The IAM segment.
 * @param ctx - The mapping context.
 * @param patient - The patient.
 * @param sequence - Which IAM of the message (1-based), for errors and warnings.
 * @returns The plan, or undefined (with a warning) when IAM-3 names no allergen.
 */
export function mapAdverseReaction(iam: Hl7Segment, ctx: MappingContext, patient: PatientLink, sequence: number): ResourcePlan<AllergyIntolerance> | undefined {
  const agent = allergen(rep(iam, 3), ctx);
  if (!agent) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'IAM-3 (allergen) is empty; the adverse reaction is not recorded',
      location: { segment: 'IAM', sequence, field: 3 },
    });
    return undefined;
  }
  const action = actionCode(iam, ctx, sequence);
  const identity = allergyIdentity(ctx, patient, agent.token);
  const uniqueId = rep(iam, 7);
  const sourceId = uniqueId ? eiToIdentifier(uniqueId, ctx, '', { segment: 'IAM', sequence, field: 7 }) : undefined;
  const identifiers: Identifier[] = [identity.identifier, ...(sourceId ? [sourceId] : [])];

  const status = CLINICAL_STATUS_0438[val(iam, 17).trim().toUpperCase()] ?? {};
  const erroneous = action === 'D' || status.verificationStatus?.coding?.[0]?.code === 'entered-in-error';
  const allergy: AllergyIntolerance = {
    resourceType: 'AllergyIntolerance',
    identifier: identifiers,
    ...(erroneous
      ? { verificationStatus: verificationStatus('entered-in-error') }
      : { clinicalStatus: status.clinicalStatus ?? clinicalStatus('active'), ...(status.verificationStatus ? { verificationStatus: status.verificationStatus } : {}) }),
    ...allergenType(rep(iam, 2)),
    code: agent.concept,
    patient: localRef<Patient>(patient.key),
    ...severityAndReaction(rep(iam, 4), manifestations(reps(iam, 5), ctx)),
  };
  const onset = ctx.date(val(iam, 11), { segment: 'IAM', sequence, field: 11 });
  const onsetText = val(iam, 12).trim();
  if (onset) {
    allergy.onsetDateTime = onset;
  } else if (onsetText) {
    allergy.onsetString = onsetText;
  }
  const recorded = ctx.dateTime(val(iam, 13), { segment: 'IAM', sequence, field: 13 });
  if (recorded) {
    allergy.recordedDate = recorded;
  }
  const merge: MergeStrategy = action === 'X' ? 'fill' : 'overlay';
  return { key: identity.key, resource: allergy, identifiers, merge, ...(erroneous && merge === 'overlay' ? { clear: ['clinicalStatus'] } : {}) };
}

/** IAM-6 (required): an empty code is read as an update, an unknown one is refused. */
function actionCode(iam: Hl7Segment, ctx: MappingContext, sequence: number): string {
  const code = val(iam, 6).trim().toUpperCase();
  if (!code) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'IAM-6 (allergy action code) is empty; read as U (update)',
      location: { segment: 'IAM', sequence, field: 6 },
    });
    return 'U';
  }
  if (!ACTIONS.has(code)) {
    throw new MappingError({
      code: Hl7ErrorCode.DataType,
      text: 'IAM-6 (allergy action code) is not one of A, D, U, X (HL7 table 0323)',
      location: { segment: 'IAM', sequence, field: 6 },
    });
  }
  return code;
}
