import type { Hl7Segment } from '@medplum/core';
import type { Encounter, Identifier, Patient, Procedure, ProcedurePerformer } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { fhirDateTimeToEpoch } from '../../hl7/datetime.ts';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept, describedConcept } from '../datatypes/coding.ts';
import { eiToIdentifier } from '../datatypes/identifier.ts';
import { parseNm } from '../datatypes/quantity.ts';
import { conceptToken, identifierToken, syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';
import type { EncounterLink } from './dg1.ts';
import type { PatientLink } from './pid.ts';
import { locationRef, practitionerRef } from './practitioner.ts';

/** PR1 practitioner fields and the performer function the IG assigns (SNOMED CT). */
const PERFORMERS: [number, string | undefined, string | undefined][] = [
  [8, '88189002', 'Anesthesiologist'],
  [11, '304292004', 'Surgeon'],
  [12, undefined, undefined],
];

/**
 * PR1 → Procedure (IG PR1[Procedure]): PR1-3 → code (system from CNE.3, else the deprecated
 * PR1-2 coding method), PR1-4 → code.text, PR1-5 → performedDateTime, or performedPeriod with
 * PR1-7 minutes added when PR1-5 has a time, PR1-6 → category (table 0230), PR1-8 anesthesiologist
 * / PR1-11 surgeon / PR1-12 practitioner → performer, PR1-15 → reasonCode, PR1-19 → identifier,
 * PR1-23 → location. The IG leaves the status to the message context: a procedure dated after
 * the event (a pre-admit's planned surgery) is `preparation`, one dated at or before it
 * `completed`, one without a readable date `unknown`, and PR1-20 action code `D` gives
 * `entered-in-error`. Keyed by PR1-19 when sent, else patient + encounter + code + PR1-5.
 * @param pr1 - The PR1 segment.
 * @param ctx - The mapping context.
 * @param patient - The patient.
 * @param encounter - The visit, if the message has one.
 * @param sequence - Which PR1 of the message (1-based), for warnings.
 * @param plans - Plans collected so far (Practitioners and Locations are added).
 * @param eventTime - When the event happened (EVN), to tell done from planned procedures.
 * @returns The plan, or undefined (with a warning) when the procedure has no code or text.
 */
export function mapProcedure(
  pr1: Hl7Segment,
  ctx: MappingContext,
  patient: PatientLink,
  encounter: EncounterLink | undefined,
  sequence: number,
  plans: ResourcePlan[],
  eventTime?: string
): ResourcePlan<Procedure> | undefined {
  // PR1-3 with PR1-2 as the default coding system, PR1-4 as the text when CNE.9 has none.
  const code = describedConcept(rep(pr1, 3), val(pr1, 2), val(pr1, 4), ctx);
  if (!code) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'PR1-3 (procedure code) and PR1-4 (description) are empty; the procedure is not recorded',
      location: { segment: 'PR1', sequence, field: 3 },
    });
    return undefined;
  }
  const performed = ctx.dateTime(val(pr1, 5), { segment: 'PR1', sequence, field: 5 });
  const codeToken = conceptToken(code, 'prefixed');
  const sourceIdRep = rep(pr1, 19);
  const sourceId = sourceIdRep ? eiToIdentifier(sourceIdRep, ctx, '', { segment: 'PR1', sequence, field: 19 }) : undefined;
  const identifier: Identifier =
    sourceId ?? syntheticIdentifier('procedure', ctx, [patient.token, encounter?.token ?? '', codeToken, performed ?? '']);
  const key = sourceId ? `Procedure/${identifierToken(sourceId)}` : `Procedure/${codeToken}^${performed ?? ''}`;

  const procedure: Procedure = {
    resourceType: 'Procedure',
    identifier: [identifier],
    status: procedureStatus(val(pr1, 20), performed, eventTime),
    code,
    subject: localRef<Patient>(patient.key),
    ...(encounter ? { encounter: localRef<Encounter>(encounter.key) } : {}),
  };
  const category = rep(pr1, 6);
  const categoryConcept = category ? cweToCodeableConcept(category, ctx, 'HL70230') : undefined;
  if (categoryConcept) {
    procedure.category = categoryConcept;
  }
  if (performed) {
    const minutes = parseNm(val(pr1, 7));
    const end = minutes !== undefined && performed.includes('T') ? addMinutes(performed, minutes) : undefined;
    if (end) {
      procedure.performedPeriod = { start: performed, end };
    } else {
      procedure.performedDateTime = performed;
    }
  }
  const performers = mapPerformers(pr1, ctx, sequence, plans);
  if (performers.length) {
    procedure.performer = performers;
  }
  const reason = rep(pr1, 15);
  const reasonConcept = reason ? cweToCodeableConcept(reason, ctx) : undefined;
  if (reasonConcept) {
    procedure.reasonCode = [reasonConcept];
  }
  const location = locationRef(rep(pr1, 23), ctx, plans);
  if (location) {
    procedure.location = location;
  }
  return { key, resource: procedure, identifiers: [identifier], merge: 'overlay' };
}

function procedureStatus(action: string, performed: string | undefined, eventTime: string | undefined): Procedure['status'] {
  if (action.trim().toUpperCase() === 'D') {
    return 'entered-in-error';
  }
  const when = fhirDateTimeToEpoch(performed);
  if (when === undefined) {
    return 'unknown';
  }
  const now = fhirDateTimeToEpoch(eventTime);
  return now !== undefined && when > now ? 'preparation' : 'completed';
}

function mapPerformers(pr1: Hl7Segment, ctx: MappingContext, sequence: number, plans: ResourcePlan[]): ProcedurePerformer[] {
  const performers: ProcedurePerformer[] = [];
  for (const [field, code, display] of PERFORMERS) {
    for (const xcn of reps(pr1, field)) {
      const actor = practitionerRef(xcn, ctx, { segment: 'PR1', sequence, field }, plans);
      if (actor) {
        performers.push({ ...(code ? { function: { coding: [{ system: 'http://snomed.info/sct', code, display }] } } : {}), actor });
      }
    }
  }
  return performers;
}

/**
 * Adds minutes to a FHIR dateTime with a time and an offset, keeping the offset (date arithmetic
 * on the value itself, not a clock).
 * @param dateTime - e.g. `2026-11-04T08:30:00-06:00`.
 * @param minutes - Minutes to add (PR1-7).
 * @returns The later dateTime in the same offset, or undefined when the value has no offset.
 */
export function addMinutes(dateTime: string, minutes: number): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(dateTime);
  if (!match || !Number.isFinite(minutes) || minutes < 0) {
    return undefined;
  }
  const [, year, month, day, hour, minute, second, fraction, offset] = match;
  const wall = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second)) + Math.round(minutes * 60_000);
  const t = new Date(wall);
  const pad = (n: number): string => n.toString().padStart(2, '0');
  return (
    `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}` +
    `T${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}${fraction ?? ''}${offset}`
  );
}
