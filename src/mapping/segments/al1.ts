import type { Hl7Segment } from '@medplum/core';
import type { AllergyIntolerance, Patient } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';
import { allergen, allergenType, allergyIdentity, clinicalStatus, manifestations, severityAndReaction } from './allergy.ts';
import type { PatientLink } from './pid.ts';

/**
 * AL1 → AllergyIntolerance (IG AL1[AllergyIntolerance]): clinicalStatus `active` (the IG's
 * assignment; AL1 lists current allergies), AL1-2 → category and type (table 0127), AL1-3 →
 * code, AL1-4 → criticality and reaction.severity (table 0128), AL1-5 → reaction.manifestation,
 * AL1-6 → onsetDateTime. verificationStatus is not set: the IG maps none from AL1. Keyed by
 * patient + allergen (see {@link allergyIdentity}), never by the set id.
 * @param al1 - The AL1 segment.
 * @param ctx - The mapping context.
 * @param patient - The patient.
 * @param sequence - Which AL1 of the message (1-based), for warnings.
 * @returns The plan, or undefined (with a warning) when AL1-3 names no allergen.
 */
export function mapAllergy(al1: Hl7Segment, ctx: MappingContext, patient: PatientLink, sequence: number): ResourcePlan<AllergyIntolerance> | undefined {
  const agent = allergen(rep(al1, 3), ctx);
  if (!agent) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'AL1-3 (allergen) is empty; the allergy is not recorded',
      location: { segment: 'AL1', sequence, field: 3 },
    });
    return undefined;
  }
  const identity = allergyIdentity(ctx, patient, agent.token);
  const allergy: AllergyIntolerance = {
    resourceType: 'AllergyIntolerance',
    identifier: [identity.identifier],
    clinicalStatus: clinicalStatus('active'),
    ...allergenType(rep(al1, 2)),
    code: agent.concept,
    patient: localRef<Patient>(patient.key),
    ...severityAndReaction(rep(al1, 4), manifestations(reps(al1, 5), ctx)),
  };
  const onset = ctx.date(val(al1, 6), { segment: 'AL1', sequence, field: 6 });
  if (onset) {
    allergy.onsetDateTime = onset;
  }
  return { key: identity.key, resource: allergy, identifiers: [identity.identifier], merge: 'overlay' };
}
