import type { Hl7Segment } from '@medplum/core';
import type { CodeableConcept, Coding, Encounter, EncounterLocation, EncounterParticipant, Identifier, Patient } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../../hl7/ack.ts';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { cxToIdentifier } from '../datatypes/identifier.ts';
import { identifierToken, syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';
import { locationRef, practitionerRef } from './practitioner.ts';

const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';

/** HL7 table 0004 patient class → FHIR Encounter.class (v3 ActCode), per the IG. */
const PATIENT_CLASS: Record<string, Coding> = {
  E: { system: ACT_CODE, code: 'EMER', display: 'emergency' },
  I: { system: ACT_CODE, code: 'IMP', display: 'inpatient encounter' },
  O: { system: ACT_CODE, code: 'AMB', display: 'ambulatory' },
  P: { system: ACT_CODE, code: 'PRENC', display: 'pre-admission' },
  R: { system: ACT_CODE, code: 'AMB', display: 'ambulatory' },
  B: { system: ACT_CODE, code: 'IMP', display: 'inpatient encounter' },
  C: { system: ACT_CODE, code: 'AMB', display: 'ambulatory' },
};

/** PV1 participant fields and their v3 ParticipationType codes. */
const PARTICIPANTS: [number, string, string][] = [
  [7, 'ATND', 'attender'],
  [8, 'REF', 'referrer'],
  [9, 'CON', 'consultant'],
  [17, 'ADM', 'admitter'],
];

/**
 * How PV1-3 (assigned location) and PV1-6 (prior location) enter the Encounter's location
 * history. The writer keeps the history: it completes a stored `active` entry when another
 * location becomes active, and keeps entries the message does not mention.
 * - `current`: PV1-3 is where the patient is now (`active`, since the event time).
 * - `moved`: as `current`, and PV1-6 is where the patient came from (`completed`, until the event time).
 * - `planned`: PV1-3 is where the patient is expected (`planned`, no period).
 * - `left`: the patient has left PV1-3 (`completed`, until the discharge or event time).
 * - `none`: locations are not recorded.
 */
export type LocationHistory = 'current' | 'moved' | 'planned' | 'left' | 'none';

/** Options of {@link mapEncounter}. */
export interface EncounterOptions {
  /** Status implied by the trigger event (A01 in-progress, A03 finished...). */
  readonly status?: Encounter['status'];
  /** When the event happened (EVN-6, else EVN-2 or MSH-7): location changes and period ends. */
  readonly eventTime?: string;
  /** Plan key of the Encounter (default `Encounter`). */
  readonly key?: string;
  /** How locations are recorded (default `current`, or `left` once the visit is finished). */
  readonly locations?: LocationHistory;
  /** The event starts the visit (A01, A04): without PV1-44 the event time is the start. */
  readonly startsVisit?: boolean;
  /** The event reopens a finished visit (A13): the discharge is cleared, PV1-45 ignored. */
  readonly reopen?: boolean;
  /** Only a visit number identifies a visit (A28/A31 person events): no synthetic visit key. */
  readonly requireVisitNumber?: boolean;
  /** A former visit number (A06/A07 MRG-5) that also finds the Encounter; kept with `use: old`. */
  readonly priorVisit?: Identifier;
}

/**
 * PV1 (+ PV2) → Encounter (IG segment map): PV1-19 visit number → identifier (the match key;
 * without one the visit is keyed by patient, class and admit time), PV1-2 → class, PV1-3/PV1-6 →
 * location history (see {@link LocationHistory}), PV1-4 → type, PV1-5 → preAdmissionIdentifier,
 * PV1-7/8/9/17 → participants (attending, referring, consulting, admitting), PV1-10 →
 * serviceType, PV1-14 → admitSource, PV1-36 → dischargeDisposition, PV1-44/45 → period, PV2-3 →
 * reasonCode. The status comes from the trigger event; a discharge time implies `finished`
 * unless the event cancels the visit or reopens it. When neither the event nor PV1-2 say it,
 * status and class are only defaults for a new Encounter (`defaultsOnly`).
 * @param pv1 - The PV1 segment (absent: no Encounter).
 * @param pv2 - The PV2 segment, if any.
 * @param patientKey - Plan key of the Patient.
 * @param patientIdentifier - The Patient's preferred identifier, for a synthetic visit key.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (Locations and Practitioners are added).
 * @param options - Event semantics, see {@link EncounterOptions}.
 * @returns The Encounter plan, or undefined when there is no PV1 or it identifies no visit.
 */
export function mapEncounter(
  pv1: Hl7Segment | undefined,
  pv2: Hl7Segment | undefined,
  patientKey: string,
  patientIdentifier: Identifier,
  ctx: MappingContext,
  plans: ResourcePlan[],
  options: EncounterOptions = {}
): ResourcePlan<Encounter> | undefined {
  if (!pv1) {
    return undefined;
  }
  const patientClass = val(pv1, 2).trim().toUpperCase();
  const admit = ctx.dateTime(val(pv1, 44), { segment: 'PV1', field: 44 });
  const discharge = options.reopen ? undefined : ctx.dateTime(val(pv1, 45), { segment: 'PV1', field: 45 });
  const identifier = visitIdentifier(pv1, patientClass, admit, patientIdentifier, ctx, options);
  if (!identifier) {
    return undefined;
  }

  const status = encounterStatus(options, discharge);
  const knownClass = PATIENT_CLASS[patientClass];
  const encounter: Encounter = {
    resourceType: 'Encounter',
    identifier: [identifier, ...(options.priorVisit ? [{ ...options.priorVisit, use: 'old' as const }] : [])],
    status,
    class: knownClass ?? { system: ACT_CODE, code: 'AMB', display: 'ambulatory' },
    subject: localRef<Patient>(patientKey),
  };
  const start = admit ?? (options.startsVisit ? options.eventTime : undefined);
  const end = discharge ?? (options.status === 'finished' ? options.eventTime : undefined);
  if (start || end) {
    encounter.period = { ...(start ? { start } : {}), ...(end ? { end } : {}) };
  }
  const history = locationHistory(pv1, ctx, plans, options.locations ?? (status === 'finished' ? 'left' : 'current'), {
    since: options.eventTime ?? admit,
    until: end ?? options.eventTime,
  });
  if (history.length) {
    encounter.location = history;
  }
  const participants = mapParticipants(pv1, ctx, plans);
  if (participants.length) {
    encounter.participant = participants;
  }
  addCodedDetails(encounter, pv1, pv2, ctx);

  const defaultsOnly = [...(options.status || discharge ? [] : ['status']), ...(knownClass ? [] : ['class'])];
  return {
    key: options.key ?? 'Encounter',
    resource: encounter,
    identifiers: [identifier, ...(options.priorVisit ? [options.priorVisit] : [])],
    merge: 'overlay',
    ...(options.reopen ? { clear: ['period.end'] } : {}),
    ...(defaultsOnly.length ? { defaultsOnly } : {}),
  };
}

/**
 * A visit number (PV1-19, MRG-5; CX) → Identifier. Without CX.5 the type is `VN`, which also
 * scopes the system of a number sent without an assigning authority (so visit numbers and
 * patient ids of such a sender never share a system).
 * @param cx - The CX repetition.
 * @param ctx - The mapping context.
 * @param location - Where it was read.
 * @returns The identifier, or undefined when CX.1 is empty.
 */
export function visitNumber(cx: FieldRep, ctx: MappingContext, location: ErrorLocation): Identifier | undefined {
  return cxToIdentifier(cx, ctx, location, 'VN');
}

function encounterStatus(options: EncounterOptions, discharge: string | undefined): Encounter['status'] {
  if (options.reopen || options.status === 'cancelled') {
    return options.status ?? 'in-progress';
  }
  if (discharge) {
    return 'finished';
  }
  return options.status ?? 'unknown';
}

/** PV1-19 visit number, else (unless the event requires one) patient + class + admit time. */
function visitIdentifier(
  pv1: Hl7Segment,
  patientClass: string,
  admit: string | undefined,
  patientIdentifier: Identifier,
  ctx: MappingContext,
  options: EncounterOptions
): Identifier | undefined {
  const visit = rep(pv1, 19);
  const identifier = visit ? visitNumber(visit, ctx, { segment: 'PV1', field: 19 }) : undefined;
  if (identifier) {
    return identifier;
  }
  if (options.requireVisitNumber) {
    return undefined;
  }
  if (!admit) {
    if (patientClass && patientClass !== 'N') {
      ctx.warn({
        code: Hl7ErrorCode.RequiredFieldMissing,
        text: 'PV1 has neither a visit number (PV1-19) nor an admit time (PV1-44); no Encounter recorded',
        location: { segment: 'PV1', field: 19 },
      });
    }
    return undefined;
  }
  return syntheticIdentifier('encounter', ctx, [identifierToken(patientIdentifier), patientClass, admit]);
}

function locationHistory(
  pv1: Hl7Segment,
  ctx: MappingContext,
  plans: ResourcePlan[],
  mode: LocationHistory,
  times: { since?: string; until?: string }
): EncounterLocation[] {
  if (mode === 'none') {
    return [];
  }
  const entries: EncounterLocation[] = [];
  const current = locationRef(rep(pv1, 3), ctx, plans);
  if (current) {
    if (mode === 'planned') {
      entries.push({ location: current, status: 'planned' });
    } else if (mode === 'left') {
      entries.push({ location: current, status: 'completed', ...(times.until ? { period: { end: times.until } } : {}) });
    } else {
      entries.push({ location: current, status: 'active', ...(times.since ? { period: { start: times.since } } : {}) });
    }
  }
  if (mode === 'moved') {
    const prior = locationRef(rep(pv1, 6), ctx, plans);
    if (prior && prior.reference !== current?.reference) {
      entries.push({ location: prior, status: 'completed', ...(times.since ? { period: { end: times.since } } : {}) });
    }
  }
  return entries;
}

function mapParticipants(pv1: Hl7Segment, ctx: MappingContext, plans: ResourcePlan[]): EncounterParticipant[] {
  const participants: EncounterParticipant[] = [];
  for (const [field, code, display] of PARTICIPANTS) {
    for (const xcn of reps(pv1, field)) {
      const individual = practitionerRef(xcn, ctx, { segment: 'PV1', field }, plans);
      if (individual) {
        participants.push({
          type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code, display }] }],
          individual,
        });
      }
    }
  }
  return participants;
}

/** PV1-4 type, PV1-5 pre-admit number, PV1-10 service, PV1-14 admit source, PV1-36 disposition, PV2-3 reason. */
function addCodedDetails(encounter: Encounter, pv1: Hl7Segment, pv2: Hl7Segment | undefined, ctx: MappingContext): void {
  const concept = (segment: Hl7Segment | undefined, field: number, table?: string): CodeableConcept | undefined => {
    const value = rep(segment, field);
    return value ? cweToCodeableConcept(value, ctx, table) : undefined;
  };
  const admissionType = concept(pv1, 4, 'HL70007');
  if (admissionType) {
    encounter.type = [admissionType];
  }
  const serviceType = concept(pv1, 10, 'HL70069');
  if (serviceType) {
    encounter.serviceType = serviceType;
  }
  const hospitalization: NonNullable<Encounter['hospitalization']> = {};
  const preAdmit = rep(pv1, 5);
  const preAdmissionIdentifier = preAdmit ? cxToIdentifier(preAdmit, ctx, { segment: 'PV1', field: 5 }) : undefined;
  if (preAdmissionIdentifier) {
    hospitalization.preAdmissionIdentifier = preAdmissionIdentifier;
  }
  const admitSource = concept(pv1, 14, 'HL70023');
  if (admitSource) {
    hospitalization.admitSource = admitSource;
  }
  const disposition = concept(pv1, 36, 'HL70112');
  if (disposition) {
    hospitalization.dischargeDisposition = disposition;
  }
  if (Object.keys(hospitalization).length) {
    encounter.hospitalization = hospitalization;
  }
  const reasonCode = concept(pv2, 3);
  if (reasonCode) {
    encounter.reasonCode = [reasonCode];
  }
}
