import type { Hl7Segment } from '@medplum/core';
import type {
  CodeableConcept,
  Encounter,
  Identifier,
  Immunization,
  ImmunizationPerformer,
  Organization,
  Patient,
  Reference,
} from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { isNullField, rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { eiToIdentifier } from '../datatypes/identifier.ts';
import { parseNm } from '../datatypes/quantity.ts';
import { quantityUnits } from '../datatypes/units.ts';
import { conceptToken, identifierToken, syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef, MappingError } from '../plan.ts';
import type { ImmunizationObservationSegments } from './immunization-obx.ts';
import { locationRef, organizationRef, practitionerRef } from './practitioner.ts';
import { mapRouteAndSite } from './rxr.ts';

const MVX = 'http://hl7.org/fhir/sid/mvx';
const PERFORMER_FUNCTION = 'http://terminology.hl7.org/CodeSystem/v2-0443';
const IMMUNIZATION_ORIGIN = 'http://terminology.hl7.org/CodeSystem/immunization-origin';

/** CDC table NIP001 (immunization information source) → FHIR immunization-origin, where one exists. */
const REPORT_ORIGIN: Record<string, string> = { '02': 'provider', '03': 'record', '04': 'recall', '07': 'school' };

/** One ORDER group of a VXU: `[ORC] [TQ1] RXA [RXR] [OBX [NTE]...]`. */
export interface ImmunizationOrderGroup {
  readonly orc?: Hl7Segment;
  /** 1-based occurrence of the ORC in the message, when there is one. */
  readonly orcSequence?: number;
  readonly rxa: Hl7Segment;
  readonly rxr?: Hl7Segment;
  readonly observations: readonly ImmunizationObservationSegments[];
  /** 1-based occurrence of the RXA in the message (error locations and plan keys). */
  readonly sequence: number;
}

/** What {@link mapImmunization} needs besides the group. */
export interface ImmunizationRefs {
  readonly patientKey: string;
  /** The Patient's first identifier, for a synthetic immunization key. */
  readonly patientIdentifier: Identifier;
  readonly encounterKey?: string;
}

/**
 * RXA (+ ORC, RXR) → Immunization (IG RXA[Immunization] and ORC[Immunization] maps, CDC IIS
 * v2.5.1 conventions). Identity: ORC-3 filler and ORC-2 placer order numbers when sent (the CDC
 * placeholder `9999` is not an id); otherwise a synthetic key from the patient, RXA-3 and the
 * RXA-5 vaccine code, which a later update or delete of the same dose repeats.
 * RXA-3 → occurrenceDateTime (required), RXA-5 → vaccineCode (CVX, NDC; required), RXA-6/RXA-7 →
 * doseQuantity (999 = unknown, omitted), RXA-9 (NIP001) → primarySource/reportOrigin, RXA-10 →
 * performer AP, ORC-12 → performer OP, RXA-15 → lotNumber, RXA-16 → expirationDate, RXA-17 (MVX)
 * → manufacturer, RXA-18 → statusReason, RXA-19 → reasonCode, RXA-20/RXA-21 → status and
 * isSubpotent, RXA-22 → recorded, RXA-27 (or RXA-11) → location, RXR → route and site.
 * @param group - The order group.
 * @param refs - Keys of the Patient and Encounter plans.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (Practitioners, Locations and the manufacturer are added).
 * @returns The Immunization plan (merge `overlay`: the IIS message is authoritative for the dose).
 */
export function mapImmunization(
  group: ImmunizationOrderGroup,
  refs: ImmunizationRefs,
  ctx: MappingContext,
  plans: ResourcePlan[]
): ResourcePlan<Immunization> {
  const { rxa, orc, sequence } = group;
  const at = (field: number): { segment: string; sequence: number; field: number } => ({ segment: 'RXA', sequence, field });
  const vaccineRep = rep(rxa, 5);
  const vaccineCode = vaccineRep ? cweToCodeableConcept(vaccineRep, ctx) : undefined;
  if (!vaccineCode) {
    throw new MappingError({ code: Hl7ErrorCode.RequiredFieldMissing, text: 'RXA-5 (administered code) is missing', location: at(5) });
  }
  const occurrence = ctx.requiredDateTime(val(rxa, 3), at(3), 'RXA-3 (date/time start of administration)');

  const identifiers = orderIdentifiers(orc, group.orcSequence, ctx);
  const matchIdentifiers = identifiers.length
    ? identifiers
    : [syntheticIdentifier('immunization', ctx, [identifierToken(refs.patientIdentifier), occurrence, conceptToken(vaccineCode)])];

  const immunization: Immunization = {
    resourceType: 'Immunization',
    identifier: matchIdentifiers,
    status: 'completed',
    vaccineCode,
    patient: localRef<Patient>(refs.patientKey),
    occurrenceDateTime: occurrence,
  };
  if (refs.encounterKey) {
    immunization.encounter = localRef<Encounter>(refs.encounterKey);
  }
  applyStatus(rxa, immunization, ctx, sequence);
  applySource(rxa, immunization, ctx);

  const recorded = ctx.dateTime(val(rxa, 22), at(22));
  if (recorded) {
    immunization.recorded = recorded;
  }
  const amount = val(rxa, 6).trim();
  const dose = parseNm(amount);
  if (dose !== undefined && dose !== 999) {
    immunization.doseQuantity = { value: dose, ...quantityUnits(rep(rxa, 7), ctx) };
  } else if (amount && dose === undefined) {
    ctx.warn({ code: Hl7ErrorCode.DataType, text: 'RXA-6 (administered amount) is not a number; dose quantity dropped', location: at(6) });
  }

  const performers: ImmunizationPerformer[] = [];
  for (const xcn of reps(rxa, 10)) {
    const actor = practitionerRef(xcn, ctx, at(10), plans);
    if (actor) {
      performers.push({ function: performerFunction('AP', 'Administering Provider'), actor });
    }
  }
  for (const xcn of reps(orc, 12)) {
    const actor = practitionerRef(xcn, ctx, { segment: 'ORC', sequence: group.orcSequence, field: 12 }, plans);
    if (actor) {
      performers.push({ function: performerFunction('OP', 'Ordering Provider'), actor });
    }
  }
  if (performers.length) {
    immunization.performer = performers;
  }

  const lot = val(rxa, 15).trim();
  if (lot) {
    immunization.lotNumber = lot;
  }
  const expiration = ctx.date(val(rxa, 16), at(16));
  if (expiration) {
    immunization.expirationDate = expiration;
  }
  const manufacturer = manufacturerRef(rxa, ctx, plans);
  if (manufacturer) {
    immunization.manufacturer = manufacturer;
  }
  const reasons = reps(rxa, 19)
    .map((r) => cweToCodeableConcept(r, ctx))
    .filter((c): c is CodeableConcept => c !== undefined);
  if (reasons.length) {
    immunization.reasonCode = reasons;
  }
  const location = locationRef(rep(rxa, 27), ctx, plans) ?? locationRef(rep(rxa, 11), ctx, plans);
  if (location) {
    immunization.location = location;
  }
  Object.assign(immunization, mapRouteAndSite(group.rxr, ctx));

  const clear = [
    ...(isNullField(rxa, 15) ? ['lotNumber'] : []),
    ...(isNullField(rxa, 16) ? ['expirationDate'] : []),
    ...(isNullField(rxa, 17) ? ['manufacturer'] : []),
  ];
  return {
    key: `Immunization/${sequence}`,
    resource: immunization,
    identifiers: matchIdentifiers,
    merge: 'overlay',
    ...(clear.length ? { clear } : {}),
  };
}

/** ORC-3 (filler) then ORC-2 (placer); `9999` is the CDC guide's "no id" placeholder. */
function orderIdentifiers(orc: Hl7Segment | undefined, sequence: number | undefined, ctx: MappingContext): Identifier[] {
  const result: Identifier[] = [];
  for (const [field, type] of [
    [3, 'FILL'],
    [2, 'PLAC'],
  ] as const) {
    const ei = rep(orc, field);
    if (!ei || ei.get(1).trim() === '9999') {
      continue;
    }
    const identifier = eiToIdentifier(ei, ctx, type, { segment: 'ORC', sequence, field });
    if (identifier) {
      result.push(identifier);
    }
  }
  return result;
}

/**
 * RXA-21 action code D → entered-in-error; otherwise RXA-20 completion status (IG
 * CompletionStatus map): CP → completed, PA → completed + isSubpotent, RE/NA → not-done with
 * RXA-18 as statusReason; not valued → completed.
 */
function applyStatus(rxa: Hl7Segment, immunization: Immunization, ctx: MappingContext, sequence: number): void {
  const completion = val(rxa, 20).trim().toUpperCase();
  if (val(rxa, 21).trim().toUpperCase() === 'D') {
    immunization.status = 'entered-in-error';
  } else if (completion === 'RE' || completion === 'NA') {
    immunization.status = 'not-done';
    const reasonRep = rep(rxa, 18);
    const reason = reasonRep ? cweToCodeableConcept(reasonRep, ctx, 'NIP002') : undefined;
    if (reason) {
      immunization.statusReason = reason;
    }
  } else if (completion === 'PA') {
    immunization.isSubpotent = true;
  } else if (completion && completion !== 'CP') {
    ctx.warn({
      code: Hl7ErrorCode.DataType,
      text: `RXA-20 (completion status) '${completion}' is not in HL7 table 0322; recorded as completed`,
      location: { segment: 'RXA', sequence, field: 20 },
    });
  }
}

/**
 * RXA-9 with CDC table NIP001 codes: 00 (new record) → primarySource true; 01-08 (historical) →
 * primarySource false and reportOrigin. Other RXA-9 values are v2 administration notes → note.
 */
function applySource(rxa: Hl7Segment, immunization: Immunization, ctx: MappingContext): void {
  const notes: string[] = [];
  for (const note of reps(rxa, 9)) {
    const code = note.get(1).trim();
    const system = note.get(3).trim().toUpperCase();
    if (/^0\d$/.test(code) && (system === 'NIP001' || system === '') && immunization.primarySource === undefined) {
      immunization.primarySource = code === '00';
      if (code !== '00') {
        const origin = cweToCodeableConcept(note, ctx, 'NIP001') ?? {};
        const standard = REPORT_ORIGIN[code];
        immunization.reportOrigin = standard
          ? { ...origin, coding: [...(origin.coding ?? []), { system: IMMUNIZATION_ORIGIN, code: standard }] }
          : origin;
      }
    } else {
      const text = note.get(9).trim() || note.get(2).trim() || code;
      if (text) {
        notes.push(text);
      }
    }
  }
  if (notes.length) {
    immunization.note = notes.map((text) => ({ text }));
  }
}

/**
 * RXA-17 manufacturer: an MVX code is a global identifier, so the manufacturer becomes a
 * reference-data Organization (merge `keep`) keyed by it; a local code is only a display.
 */
function manufacturerRef(rxa: Hl7Segment, ctx: MappingContext, plans: ResourcePlan[]): Reference<Organization> | undefined {
  const mvx = rep(rxa, 17);
  if (!mvx || mvx.isNull) {
    return undefined;
  }
  const concept = cweToCodeableConcept(mvx, ctx);
  const coding = concept?.coding?.find((c) => c.system === MVX);
  const identifier: Identifier | undefined = coding?.code ? { system: MVX, value: coding.code } : undefined;
  return organizationRef(identifier, { name: mvx.get(2).trim() || concept?.text }, plans, 'keep');
}

function performerFunction(code: string, display: string): CodeableConcept {
  return { coding: [{ system: PERFORMER_FUNCTION, code, display }] };
}
