import type { Hl7Message, Hl7Segment } from '@medplum/core';
import type { Encounter, EncounterDiagnosis, Identifier, Patient } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { rep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { identifierToken } from '../keys.ts';
import type { MergeStrategy, ResourcePlan } from '../plan.ts';
import { asFill, MappingError } from '../plan.ts';
import { mapAllergy } from '../segments/al1.ts';
import { encounterLink, mapDiagnosis } from '../segments/dg1.ts';
import { eventTimes } from '../segments/evn.ts';
import { mapAdverseReaction } from '../segments/iam.ts';
import { mapCoverage } from '../segments/in1.ts';
import { mapMerge } from '../segments/mrg.ts';
import { mapRelatedPerson } from '../segments/nk1.ts';
import { mapPrimaryCare } from '../segments/pd1.ts';
import { mapPatient, patientLink } from '../segments/pid.ts';
import { mapProcedure } from '../segments/pr1.ts';
import type { LocationHistory } from '../segments/pv1.ts';
import { mapEncounter, visitNumber } from '../segments/pv1.ts';
import type { MessageMapper, MessageMappers } from './types.ts';

/** What an ADT trigger event says about the visit (HL7 table 0003 → Encounter, IG Event[EncounterStatus]). */
interface VisitEvent {
  /** Status the event implies; none for updates (A08, A28, A31). */
  readonly status?: Encounter['status'];
  readonly locations?: LocationHistory;
  readonly startsVisit?: boolean;
  readonly reopen?: boolean;
  /** The message structure requires PV1: a message without one is refused. */
  readonly requiresVisit?: boolean;
  /** Person-level events (A28, A31): an Encounter only when PV1-19 names a visit. */
  readonly personOnly?: boolean;
  /** Change of class (A06, A07): MRG-5 is the visit's former number. */
  readonly priorVisit?: boolean;
}

/**
 * The visit events. Statuses follow the IG's Event[EncounterStatus] map except A04, which the IG
 * maps to `planned` but which the standard defines as "the patient has arrived or checked in":
 * `arrived`. A02/A06/A07 move the patient (PV1-6 → completed), A03 and A11 end the stay at PV1-3,
 * A05/A14 plan it, A12 makes PV1-3 (the location before the cancelled transfer) current again,
 * and A13 reopens the visit and clears its end.
 */
const VISIT_EVENTS: Record<string, VisitEvent> = {
  A01: { status: 'in-progress', startsVisit: true, requiresVisit: true },
  A02: { status: 'in-progress', locations: 'moved', requiresVisit: true },
  A03: { status: 'finished', locations: 'left', requiresVisit: true },
  A04: { status: 'arrived', startsVisit: true, requiresVisit: true },
  A05: { status: 'planned', locations: 'planned', requiresVisit: true },
  A06: { status: 'in-progress', locations: 'moved', priorVisit: true, requiresVisit: true },
  A07: { status: 'in-progress', locations: 'moved', priorVisit: true, requiresVisit: true },
  A08: {},
  A11: { status: 'cancelled', locations: 'left', requiresVisit: true },
  A12: { status: 'in-progress', requiresVisit: true },
  A13: { status: 'in-progress', reopen: true, requiresVisit: true },
  A14: { status: 'planned', locations: 'planned', requiresVisit: true },
  A28: { personOnly: true },
  A31: { personOnly: true },
};

/**
 * A visit or person event (ADT_A01, A02, A03, A05, A06, A09, A11 structures) → Patient (PID,
 * PD1), Encounter (PV1, PV2; status and location history from the event), RelatedPerson (NK1),
 * AllergyIntolerance (AL1), Condition + Encounter.diagnosis (DG1), Procedure (PR1), Coverage
 * (IN1), and the Practitioners, Locations and Organizations they reference. Every segment the
 * message carries is mapped, whatever the event's structure lists; Z-segments are ignored.
 * @param event - What the trigger event implies.
 * @returns The message map.
 */
function visitMapper(event: VisitEvent): MessageMapper {
  return (message, ctx) => {
    const times = eventTimes(message, ctx);
    const plans: ResourcePlan[] = [];
    const patientPlan = planPatient(mapPatient(message.getSegment('PID'), ctx), message.getSegment('PD1'), ctx, plans, 'overlay');
    const patient = patientLink(patientPlan);
    const pv1 = message.getSegment('PV1');
    if (!pv1 && event.requiresVisit) {
      throw new MappingError({ code: Hl7ErrorCode.SegmentSequence, text: 'PV1 segment missing', location: { segment: 'PV1' } });
    }
    const encounterIndex = plans.length;
    const encounter = mapEncounter(pv1, message.getSegment('PV2'), patient.key, patient.identifier, ctx, plans, {
      status: event.status,
      eventTime: times.occurred,
      locations: event.locations,
      startsVisit: event.startsVisit,
      reopen: event.reopen,
      requireVisitNumber: event.personOnly,
      priorVisit: event.priorVisit ? priorVisitNumber(message, ctx, pv1) : undefined,
    });
    if (encounter) {
      plans.splice(encounterIndex, 0, encounter);
    }
    for (const [i, nk1] of message.getAllSegments('NK1').entries()) {
      addUnique(plans, mapRelatedPerson(nk1, ctx, patient, i + 1), ctx, 'NK1', i + 1);
    }
    for (const [i, al1] of message.getAllSegments('AL1').entries()) {
      addUnique(plans, mapAllergy(al1, ctx, patient, i + 1), ctx, 'AL1', i + 1);
    }
    const diagnoses: EncounterDiagnosis[] = [];
    for (const [i, dg1] of message.getAllSegments('DG1').entries()) {
      const mapped = mapDiagnosis(dg1, ctx, patient, encounterLink(encounter), i + 1, plans);
      if (mapped && !plans.some((p) => p.key === mapped.plan.key)) {
        plans.push(mapped.plan);
      }
      if (mapped?.diagnosis) {
        // The same code sent twice (e.g. admitting and final) is one Condition with two uses.
        diagnoses.push(mapped.diagnosis);
      }
    }
    if (encounter && diagnoses.length) {
      encounter.resource.diagnosis = diagnoses;
    }
    for (const [i, pr1] of message.getAllSegments('PR1').entries()) {
      addUnique(plans, mapProcedure(pr1, ctx, patient, encounterLink(encounter), i + 1, plans, times.recorded), ctx, 'PR1', i + 1);
    }
    for (const [i, in1] of message.getAllSegments('IN1').entries()) {
      addUnique(plans, mapCoverage(in1, ctx, patient, i + 1, plans), ctx, 'IN1', i + 1);
    }
    return { resources: plans, warnings: ctx.warnings };
  };
}

/**
 * ADT^A40 (merge patient, ADT_A39 structure: {PID [PD1] MRG [PV1]}) → for each PID/MRG pair the
 * surviving Patient and the merged one (see `mapMerge`). Several pairs are handled: the first
 * survivor is `Patient` and its old Patient `Patient/merged`, pair n uses `Patient/<n>` and
 * `Patient/<n>/merged`; pairs that name the same survivor share its plan. Pairs whose patients
 * overlap otherwise (a chain A → B → C in one message) are refused. PV1 is not mapped: a merge
 * moves no visit.
 */
const mapA40: MessageMapper = (message, ctx) => {
  const plans: ResourcePlan[] = [];
  const groups = pidGroups(message);
  if (groups.length === 0) {
    mapPatient(undefined, ctx); // throws: PID segment missing
  }
  for (const [i, group] of groups.entries()) {
    const sequence = i + 1;
    const candidate = mapPatient(group.pid, ctx, sequence === 1 ? 'Patient' : `Patient/${sequence}`);
    const tokens = new Set(candidate.identifiers.map(identifierToken));
    const existing = plans.findIndex((p) => p.resource.resourceType === 'Patient' && p.identifiers.some((id) => tokens.has(identifierToken(id))));
    let survivor: ResourcePlan<Patient>;
    let index: number;
    if (existing >= 0 && !plans[existing].key.endsWith('/merged')) {
      survivor = plans[existing] as ResourcePlan<Patient>;
      index = existing;
    } else {
      index = plans.length;
      survivor = planPatient(candidate, group.pd1, ctx, plans, 'overlay');
    }
    const oldKey = sequence === 1 ? 'Patient/merged' : `Patient/${sequence}/merged`;
    const [merged, old] = mapMerge(survivor, group.mrg, ctx, sequence, oldKey);
    plans[index] = merged;
    plans.push(old);
  }
  refuseOverlappingPatients(plans);
  return { resources: plans, warnings: ctx.warnings };
};

/**
 * ADT^A60 (update adverse reaction information: PID [PV1 [PV2]] [{IAM}]) → AllergyIntolerance
 * per IAM (see `mapAdverseReaction`). The Patient is planned with merge `fill`: the PID of an
 * allergy update identifies the patient but the message does not assert demographics (and often
 * comes from a pharmacy or allergy application with a minimal PID).
 */
const mapA60: MessageMapper = (message, ctx) => {
  const plans: ResourcePlan[] = [];
  const patient = patientLink(planPatient(mapPatient(message.getSegment('PID'), ctx), message.getSegment('PD1'), ctx, plans, 'fill'));
  for (const [i, iam] of message.getAllSegments('IAM').entries()) {
    addUnique(plans, mapAdverseReaction(iam, ctx, patient, i + 1), ctx, 'IAM', i + 1);
  }
  return { resources: plans, warnings: ctx.warnings };
};

/** The Patient plan (from `mapPatient`) with PD1's primary care, added to `plans` before the Practitioners PD1 references. */
function planPatient(
  base: ResourcePlan<Patient>,
  pd1: Hl7Segment | undefined,
  ctx: MappingContext,
  plans: ResourcePlan[],
  merge: MergeStrategy
): ResourcePlan<Patient> {
  const index = plans.length;
  plans.push(base);
  const care = mapPrimaryCare(pd1, ctx, plans);
  let plan: ResourcePlan<Patient> = merge === 'fill' ? asFill(base) : { ...base, merge };
  if (care.generalPractitioner.length) {
    plan = { ...plan, resource: { ...plan.resource, generalPractitioner: care.generalPractitioner } };
  } else if (care.cleared && merge === 'overlay') {
    plan = { ...plan, clear: [...(plan.clear ?? []), 'generalPractitioner'] };
  }
  plans[index] = plan;
  return plan;
}

/** MRG-5 (prior visit number) of an A06/A07, unless it is PV1-19 itself. */
function priorVisitNumber(message: Hl7Message, ctx: MappingContext, pv1: Hl7Segment | undefined): Identifier | undefined {
  const prior = rep(message.getSegment('MRG'), 5);
  const current = rep(pv1, 19);
  if (!prior || (current && prior.get(1).trim() === current.get(1).trim() && prior.get(4) === current.get(4))) {
    return undefined;
  }
  return visitNumber(prior, ctx, { segment: 'MRG', field: 5 });
}

/** Adds a plan unless the message already listed the same resource (warned: the repetition is ignored). */
function addUnique(plans: ResourcePlan[], plan: ResourcePlan | undefined, ctx: MappingContext, segment: string, sequence: number): void {
  if (!plan) {
    return;
  }
  const existing = plans.find((p) => p.key === plan.key);
  if (!existing) {
    plans.push(plan);
  } else if (existing.merge !== 'fill' || plan.merge === 'fill') {
    ctx.warn({ code: Hl7ErrorCode.DataType, text: `${segment} repeats an item an earlier ${segment} already listed; the repetition is ignored`, location: { segment, sequence } });
  } else {
    // An IN1 subscriber planned earlier (fill) is replaced by a later, authoritative segment.
    plans[plans.indexOf(existing)] = plan;
  }
}

/** The ADT_A39 groups: each PID with the PD1 and MRG that follow it. */
function pidGroups(message: Hl7Message): { pid: Hl7Segment; pd1?: Hl7Segment; mrg?: Hl7Segment }[] {
  const groups: { pid: Hl7Segment; pd1?: Hl7Segment; mrg?: Hl7Segment }[] = [];
  for (const segment of message.segments) {
    const current = groups.at(-1);
    if (segment.name === 'PID') {
      groups.push({ pid: segment });
    } else if (segment.name === 'PD1' && current && !current.pd1) {
      current.pd1 = segment;
    } else if (segment.name === 'MRG' && current && !current.mrg) {
      current.mrg = segment;
    }
  }
  return groups;
}

/** Two Patient plans that could resolve to the same stored Patient would make the merge ambiguous. */
function refuseOverlappingPatients(plans: ResourcePlan[]): void {
  const seen = new Map<string, string>();
  for (const plan of plans.filter((p) => p.resource.resourceType === 'Patient')) {
    for (const token of plan.identifiers.map(identifierToken)) {
      const other = seen.get(token);
      if (other && other !== plan.key) {
        throw new MappingError({
          code: Hl7ErrorCode.DataType,
          text: 'A40 merges overlap (a patient is both merged and surviving); send each merge as its own message',
          location: { segment: 'MRG', field: 1 },
        });
      }
      seen.set(token, plan.key);
    }
  }
}

/** Message maps of the ADT family, by `ADT^<event>`. */
export const adtMappers: MessageMappers = {
  ...Object.fromEntries(Object.entries(VISIT_EVENTS).map(([event, semantics]) => [`ADT^${event}`, visitMapper(semantics)])),
  'ADT^A40': mapA40,
  'ADT^A60': mapA60,
};

