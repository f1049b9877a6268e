import type { Hl7Segment } from '@medplum/core';
import type { Immunization, ImmunizationEducation, Observation, Patient } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../../hl7/ack.ts';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { parseNm } from '../datatypes/quantity.ts';
import { quantityUnits } from '../datatypes/units.ts';
import { conceptToken, identifierToken, syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';
import { noteText, repText } from './note-text.ts';

/** Vaccine funding program eligibility category (CDC IIS guide). */
const ELIGIBILITY = '64994-7';
/** Vaccine funding source. */
const FUNDING_SOURCE = '30963-3';
/** VIS document type (GS1 barcode), VIS publication date, VIS presentation date. */
const VIS_DOCUMENT = '69764-9';
const VIS_PUBLISHED = '29768-9';
const VIS_PRESENTED = '29769-7';
/** Reaction to the immunization. */
const REACTION = '31044-1';

/** HL7 table 0085 observation result status → Observation.status. */
const RESULT_STATUS: Record<string, Observation['status']> = {
  F: 'final',
  C: 'corrected',
  P: 'preliminary',
  R: 'registered',
  I: 'registered',
  S: 'preliminary',
  X: 'cancelled',
  W: 'entered-in-error',
  D: 'entered-in-error',
  U: 'final',
};

/** An OBX of an order group with the NTEs that follow it. */
export interface ImmunizationObservationSegments {
  readonly obx: Hl7Segment;
  readonly ntes: readonly Hl7Segment[];
  /** 1-based occurrence of the OBX in the message (error locations and plan keys). */
  readonly sequence: number;
}

/**
 * The OBX segments of a VXU order group (CDC IIS guide). Those with a home in Immunization set it:
 * 64994-7 → programEligibility, 30963-3 → fundingSource, and a VIS group (same OBX-4 sub-id with
 * 69764-9 document type, 29768-9 publication and 29769-7 presentation dates) → education. Every
 * other OBX becomes an Observation `partOf` the Immunization (OBX-3 code, OBX-5 value by OBX-2,
 * OBX-11 status, OBX-14 effective, NTE → note), keyed by the immunization's identifier, OBX-3 and
 * OBX-4; a 31044-1 reaction is also listed in Immunization.reaction.
 * @param observations - The group's OBX segments.
 * @param immunization - The Immunization plan (its resource is completed in place).
 * @param patientKey - Plan key of the Patient.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far; Observations are added.
 */
export function applyImmunizationObservations(
  observations: readonly ImmunizationObservationSegments[],
  immunization: ResourcePlan<Immunization>,
  patientKey: string,
  ctx: MappingContext,
  plans: ResourcePlan[]
): void {
  const resource = immunization.resource;
  const visGroups = new Set(observations.filter((o) => loincCode(o.obx) === VIS_DOCUMENT).map((o) => val(o.obx, 4).trim()));
  const education = new Map<string, ImmunizationEducation>();
  const seen = new Map<string, number>();
  for (const { obx, ntes, sequence } of observations) {
    const code = loincCode(obx);
    const subId = val(obx, 4).trim();
    const location: ErrorLocation = { segment: 'OBX', sequence, field: 5 };
    if (code === ELIGIBILITY || code === FUNDING_SOURCE) {
      const valueRep = rep(obx, 5);
      const concept = valueRep ? cweToCodeableConcept(valueRep, ctx, code === ELIGIBILITY ? 'HL70064' : undefined) : undefined;
      if (concept && code === ELIGIBILITY) {
        resource.programEligibility = [...(resource.programEligibility ?? []), concept];
      } else if (concept) {
        resource.fundingSource = concept;
      }
      continue;
    }
    if ((code === VIS_DOCUMENT || code === VIS_PUBLISHED || code === VIS_PRESENTED) && visGroups.has(subId)) {
      const entry = education.get(subId) ?? {};
      if (code === VIS_DOCUMENT) {
        const document = rep(obx, 5)?.get(1).trim();
        if (document) {
          entry.documentType = document;
        }
      } else {
        const date = ctx.dateTime(val(obx, 5), location);
        if (date) {
          entry[code === VIS_PUBLISHED ? 'publicationDate' : 'presentationDate'] = date;
        }
      }
      education.set(subId, entry);
      continue;
    }
    const observation = mapObservation(obx, ntes, ctx, location);
    if (!observation) {
      continue;
    }
    const immunizationToken = identifierToken(immunization.identifiers[0]);
    const codeToken = conceptToken(observation.code);
    const token = [immunizationToken, codeToken, subId].join('#');
    const occurrence = (seen.get(token) ?? 0) + 1;
    seen.set(token, occurrence);
    // Repeated OBX-3/OBX-4 pairs are told apart by their order, the only distinction the message gives.
    const identifier = syntheticIdentifier('immunization-observation', ctx, [
      immunizationToken,
      codeToken,
      subId,
      ...(occurrence > 1 ? [String(occurrence)] : []),
    ]);
    const key = `Observation/${sequence}`;
    observation.identifier = [identifier];
    observation.subject = localRef<Patient>(patientKey);
    observation.partOf = [localRef<Immunization>(immunization.key)];
    plans.push({ key, resource: observation, identifiers: [identifier], merge: 'overlay' });
    if (code === REACTION) {
      resource.reaction = [
        ...(resource.reaction ?? []),
        { detail: localRef<Observation>(key), ...(observation.effectiveDateTime ? { date: observation.effectiveDateTime } : {}) },
      ];
    }
  }
  const entries = [...education.values()].filter((e) => e.documentType);
  if (entries.length) {
    resource.education = entries;
  }
}

function mapObservation(obx: Hl7Segment, ntes: readonly Hl7Segment[], ctx: MappingContext, location: ErrorLocation): Observation | undefined {
  const codeRep = rep(obx, 3);
  const code = codeRep ? cweToCodeableConcept(codeRep, ctx) : undefined;
  if (!code) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'OBX-3 (observation identifier) is missing; OBX ignored',
      location: { ...location, field: 3 },
    });
    return undefined;
  }
  const status = RESULT_STATUS[val(obx, 11).trim().toUpperCase()] ?? 'final';
  const observation: Observation = { resourceType: 'Observation', status, code, ...obxValue(obx, ctx, location) };
  const effective = ctx.dateTime(val(obx, 14), { ...location, field: 14 });
  if (effective) {
    observation.effectiveDateTime = effective;
  }
  const note = noteText(ntes);
  if (note) {
    observation.note = [{ text: note }];
  }
  return observation;
}

/**
 * OBX-5 by OBX-2 (IG OBX map, the types immunization messages use): CE/CWE/CNE → CodeableConcept,
 * NM → Quantity with OBX-6 units, ST/TX/FT → string, DT/TS/DTM → dateTime. Other types, and
 * values that cannot be read, are dropped with a warning.
 * @param obx - The OBX segment.
 * @param ctx - The mapping context.
 * @param location - Where OBX-5 is.
 * @returns The value[x] element, or nothing.
 */
export function obxValue(
  obx: Hl7Segment,
  ctx: MappingContext,
  location: ErrorLocation
): Pick<Observation, 'valueCodeableConcept' | 'valueQuantity' | 'valueString' | 'valueDateTime'> {
  const type = val(obx, 2).trim().toUpperCase();
  const first = rep(obx, 5);
  if (!first || first.isNull) {
    return {};
  }
  switch (type) {
    case 'CE':
    case 'CWE':
    case 'CNE': {
      const concept = cweToCodeableConcept(first, ctx);
      return concept ? { valueCodeableConcept: concept } : {};
    }
    case 'NM': {
      const value = parseNm(first.get(1));
      if (value === undefined) {
        ctx.warn({ code: Hl7ErrorCode.DataType, text: 'OBX-5 is not a number (OBX-2 NM); value dropped', location });
        return {};
      }
      return { valueQuantity: { value, ...quantityUnits(rep(obx, 6), ctx) } };
    }
    case 'ST':
    case 'TX':
    case 'FT': {
      const text = reps(obx, 5)
        .map((r) => repText(r, obx.context))
        .join('\n');
      return text ? { valueString: text } : {};
    }
    case 'DT':
    case 'TS':
    case 'DTM': {
      const date = ctx.dateTime(first.get(1), location);
      return date ? { valueDateTime: date } : {};
    }
    default:
      ctx.warn({ code: Hl7ErrorCode.DataType, text: `OBX-2 value type '${type}' is not supported here; value dropped`, location });
      return {};
  }
}

/** OBX-3.1 when OBX-3 is a LOINC code (coding system LN), else ''. */
function loincCode(obx: Hl7Segment): string {
  const code = rep(obx, 3);
  const system = code?.get(3).trim().toUpperCase();
  return code && (system === 'LN' || system === 'LNC') ? code.get(1).trim() : '';
}
