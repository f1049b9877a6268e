import type { AllergyIntolerance, AllergyIntoleranceReaction, CodeableConcept, Identifier } from '@medplum/fhirtypes';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { conceptToken, syntheticIdentifier } from '../keys.ts';
import type { PatientLink } from './pid.ts';

/**
 * What AL1 (ADT) and IAM (A60) share: the allergen type and severity vocabularies of the IG's
 * concept maps, and the allergy's identity (patient + allergen), so an allergy sent in an A01's
 * AL1 and updated by an A60's IAM is one AllergyIntolerance.
 */

type Category = NonNullable<AllergyIntolerance['category']>[number];

/** HL7 table 0127 allergen type → category (IG AllergenType[AllergyIntoleranceCategory]). */
const CATEGORY: Record<string, Category> = {
  DA: 'medication',
  FA: 'food',
  EA: 'environment',
  AA: 'biologic',
  PA: 'environment',
  LA: 'environment',
};

/** HL7 table 0127 codes that are allergies (IG AllergyType); MC (contraindication) is not. */
const ALLERGY_TYPES = new Set(['DA', 'FA', 'MA', 'EA', 'AA', 'PA', 'LA']);

/** HL7 table 0128 severity → criticality (IG AllergySeverity[criticality]); MO and U have none. */
const CRITICALITY: Record<string, AllergyIntolerance['criticality']> = { SV: 'high', MI: 'low' };

/** HL7 table 0128 severity → reaction severity (IG AllergySeverity[reaction.severity]). */
const REACTION_SEVERITY: Record<string, AllergyIntoleranceReaction['severity']> = { SV: 'severe', MO: 'moderate', MI: 'mild' };

/** Codes of http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical. */
export function clinicalStatus(code: 'active' | 'inactive' | 'resolved'): CodeableConcept {
  return { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code }] };
}

/** Codes of http://terminology.hl7.org/CodeSystem/allergyintolerance-verification. */
export function verificationStatus(code: 'unconfirmed' | 'confirmed' | 'refuted' | 'entered-in-error'): CodeableConcept {
  return { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification', code }] };
}

/**
 * Allergen type (AL1-2, IAM-2; table 0127) → AllergyIntolerance category and type.
 * @param cwe - The allergen type repetition.
 * @returns The elements to set (none for an unknown or empty code).
 */
export function allergenType(cwe: FieldRep | undefined): Pick<AllergyIntolerance, 'category' | 'type'> {
  const code = cwe?.get(1).trim().toUpperCase() ?? '';
  const category = CATEGORY[code];
  return { ...(category ? { category: [category] } : {}), ...(ALLERGY_TYPES.has(code) ? { type: 'allergy' as const } : {}) };
}

/**
 * Severity (AL1-4, IAM-4; table 0128) and reactions (AL1-5, IAM-5) → criticality and reaction.
 * The IG maps severity to criticality where it is the overall risk (SV high, MI low) and to
 * reaction.severity where it describes a reaction; both are kept when a reaction is sent, since
 * a moderate severity has no criticality.
 * @param severity - The severity repetition.
 * @param manifestations - The reactions, already as concepts.
 * @returns The elements to set.
 */
export function severityAndReaction(
  severity: FieldRep | undefined,
  manifestations: CodeableConcept[]
): Pick<AllergyIntolerance, 'criticality' | 'reaction'> {
  const code = severity?.get(1).trim().toUpperCase() ?? '';
  const criticality = CRITICALITY[code];
  const reactionSeverity = REACTION_SEVERITY[code];
  return {
    ...(criticality ? { criticality } : {}),
    ...(manifestations.length ? { reaction: [{ manifestation: manifestations, ...(reactionSeverity ? { severity: reactionSeverity } : {}) }] } : {}),
  };
}

/**
 * @param cwe - The allergen (AL1-3, IAM-3).
 * @param ctx - The mapping context.
 * @returns The allergen concept and the token that keys it (first coding `system^code`, else the
 * lower-cased text), or undefined when the allergen is empty.
 */
export function allergen(cwe: FieldRep | undefined, ctx: MappingContext): { concept: CodeableConcept; token: string } | undefined {
  const concept = cwe ? cweToCodeableConcept(cwe, ctx) : undefined;
  const token = conceptToken(concept, 'prefixed');
  return concept && token ? { concept, token } : undefined;
}

/**
 * @param ctx - The mapping context.
 * @param patient - The patient.
 * @param allergenToken - From {@link allergen}.
 * @returns The plan key and the synthetic identifier `[patient, allergen]`.
 */
export function allergyIdentity(ctx: MappingContext, patient: PatientLink, allergenToken: string): { key: string; identifier: Identifier } {
  return {
    key: `AllergyIntolerance/${allergenToken}`,
    identifier: syntheticIdentifier('allergy', ctx, [patient.token, allergenToken]),
  };
}

/**
 * Reactions (AL1-5 ST, IAM-5 CWE; both repeat) → manifestations: a plain text becomes
 * `{ text }` (it is not a code), a coded value goes through the CWE map.
 * @param reactions - The repetitions.
 * @param ctx - The mapping context.
 * @returns The manifestations, empty ones dropped.
 */
export function manifestations(reactions: FieldRep[], ctx: MappingContext): CodeableConcept[] {
  return reactions
    .map((r) => {
      const coded = r.components.length > 1 && r.components.slice(1).some((c) => c.some((s) => s.trim() !== ''));
      if (coded) {
        return cweToCodeableConcept(r, ctx);
      }
      const text = r.isNull ? '' : r.get(1).trim();
      return text ? { text } : undefined;
    })
    .filter((c) => c !== undefined);
}
