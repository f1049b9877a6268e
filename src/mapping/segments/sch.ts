import type { Hl7Segment } from '@medplum/core';
import type { Appointment, CodeableConcept, Identifier, Reference, ServiceRequest } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { isNullField, rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { eiToIdentifier } from '../datatypes/identifier.ts';
import { MappingError } from '../plan.ts';
import type { Timing } from './ai-timing.ts';
import { addMinutes, durationMinutes } from './ai-timing.ts';
import { scopedEiIdentifier } from './entity-id.ts';

/** HL7 table 0278 filler status → Appointment.status (IG FillerStatusCodes[Appointment] map). */
const FILLER_STATUS: Record<string, Appointment['status']> = {
  pending: 'pending',
  waitlist: 'waitlist',
  booked: 'booked',
  overbook: 'booked',
  started: 'checked-in',
  complete: 'fulfilled',
  cancelled: 'cancelled',
  deleted: 'entered-in-error',
  noshow: 'noshow',
};

/** TQ-3 duration codes (`M30`, `H1`...) in minutes. */
const TQ_DURATION: Record<string, number> = { S: 1 / 60, M: 1, H: 60, D: 1440, W: 10080 };

/** What SCH (with TQ1) says about the appointment. */
export interface ScheduleInfo {
  /** SCH-2 filler and SCH-1 placer appointment ids (filler first). */
  readonly identifiers: Identifier[];
  /** The match key: the filler id when sent, else the placer id. */
  readonly matchIdentifiers: Identifier[];
  /** appointmentType, reasonCode, minutesDuration, basedOn. */
  readonly elements: Pick<Appointment, 'appointmentType' | 'reasonCode' | 'minutesDuration' | 'basedOn'>;
  /** SCH-6 event reason, the cancelation reason of a cancelled appointment. */
  readonly eventReason?: CodeableConcept;
  /** SCH-25 filler status as sent. */
  readonly fillerStatus?: string;
  /** The appointment's times from TQ1 (v2.5+) or SCH-11 (older versions). */
  readonly timing: Timing;
  /** Elements the sender deleted with `""`. */
  readonly clear: string[];
}

/**
 * SCH (+ TQ1) → Appointment elements (IG SCH[Appointment] map): SCH-1/SCH-2 → identifier (the
 * filler id is the match key; neither present is a data error), SCH-6 → eventReason (for
 * cancelationReason), SCH-7 appointment reason → reasonCode (table 0276 by default), SCH-8 →
 * appointmentType (table 0277 by default), SCH-9/SCH-10 → minutesDuration, SCH-25 → filler
 * status, SCH-26/SCH-27 order numbers → basedOn (ServiceRequest by identifier); times from TQ1-7/
 * TQ1-8 (TQ1-13 duration) or SCH-11.4/SCH-11.5 (SCH-11.3 duration).
 * @param sch - The SCH segment.
 * @param tq1 - The first TQ1 segment, if any.
 * @param ctx - The mapping context.
 * @returns The schedule's contribution.
 */
export function mapSchedule(sch: Hl7Segment, tq1: Hl7Segment | undefined, ctx: MappingContext): ScheduleInfo {
  const filler = scopedEiIdentifier(rep(sch, 2), ctx, 'appointment-filler', { segment: 'SCH', field: 2 }, 'FILL');
  const placer = scopedEiIdentifier(rep(sch, 1), ctx, 'appointment-placer', { segment: 'SCH', field: 1 }, 'PLAC');
  const identifiers = [filler, placer].filter((i): i is Identifier => i !== undefined);
  if (identifiers.length === 0) {
    throw new MappingError({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'SCH-1 (placer appointment id) and SCH-2 (filler appointment id) are both missing',
      location: { segment: 'SCH', field: 2 },
    });
  }
  const elements: ScheduleInfo['elements'] = {};
  const reasonRep = rep(sch, 7);
  const reason = reasonRep ? cweToCodeableConcept(reasonRep, ctx, 'HL70276') : undefined;
  if (reason) {
    elements.reasonCode = [reason];
  }
  const typeRep = rep(sch, 8);
  const appointmentType = typeRep ? cweToCodeableConcept(typeRep, ctx, 'HL70277') : undefined;
  if (appointmentType) {
    elements.appointmentType = appointmentType;
  }
  const minutes = durationMinutes(val(sch, 9), rep(sch, 10), ctx, { segment: 'SCH', field: 9 });
  if (minutes !== undefined && Math.round(minutes) >= 1) {
    elements.minutesDuration = Math.round(minutes);
  }
  const basedOn = [...orderRefs(sch, 26, 'PLAC', ctx), ...orderRefs(sch, 27, 'FILL', ctx)];
  if (basedOn.length) {
    elements.basedOn = basedOn;
  }
  const eventReasonRep = rep(sch, 6);
  const eventReason = eventReasonRep ? cweToCodeableConcept(eventReasonRep, ctx) : undefined;
  const fillerStatus = rep(sch, 25)?.get(1).trim();
  const clear = [
    ...(isNullField(sch, 7) ? ['reasonCode'] : []),
    ...(isNullField(sch, 8) ? ['appointmentType'] : []),
    ...(isNullField(sch, 9) ? ['minutesDuration'] : []),
  ];
  return {
    identifiers,
    matchIdentifiers: [identifiers[0]],
    elements,
    ...(eventReason ? { eventReason } : {}),
    ...(fillerStatus ? { fillerStatus } : {}),
    timing: tq1 ? tq1Timing(tq1, ctx) : schTiming(sch, ctx),
    clear,
  };
}

/**
 * @param code - A filler status code (HL7 table 0278) as sent.
 * @returns The Appointment status, or undefined for empty and unmapped codes (Blocked, Discontinued).
 */
export function appointmentStatus(code: string | undefined): Appointment['status'] | undefined {
  return code ? FILLER_STATUS[code.trim().toLowerCase()] : undefined;
}

function orderRefs(sch: Hl7Segment, field: number, type: 'PLAC' | 'FILL', ctx: MappingContext): Reference<ServiceRequest>[] {
  return reps(sch, field)
    .map((ei) => eiToIdentifier(ei, ctx, type, { segment: 'SCH', field }))
    .filter((i): i is Identifier => i !== undefined)
    .map((identifier) => ({ type: 'ServiceRequest', identifier }));
}

/** TQ1-7 start, TQ1-8 end, or start + TQ1-13 service duration (CQ). */
function tq1Timing(tq1: Hl7Segment, ctx: MappingContext): Timing {
  const start = ctx.instant(val(tq1, 7), { segment: 'TQ1', field: 7 });
  let end = ctx.instant(val(tq1, 8), { segment: 'TQ1', field: 8 });
  const duration = rep(tq1, 13);
  if (start && !end && duration) {
    const minutes = durationMinutes(duration.get(1), duration.nested(2), ctx, { segment: 'TQ1', field: 13 });
    end = minutes === undefined ? undefined : addMinutes(start, minutes);
  }
  return { ...(start ? { start } : {}), ...(end ? { end } : {}) };
}

/** SCH-11 (TQ, before v2.5): .4 start, .5 end, or start + .3 duration (`M30`, `H1`). */
function schTiming(sch: Hl7Segment, ctx: MappingContext): Timing {
  const tq = rep(sch, 11);
  if (!tq || tq.isNull) {
    return {};
  }
  const start = ctx.instant(tq.sub(4, 1), { segment: 'SCH', field: 11 });
  let end = ctx.instant(tq.sub(5, 1), { segment: 'SCH', field: 11 });
  const duration = /^([SMHDW])(\d+)$/.exec(tq.get(3).trim().toUpperCase());
  if (start && !end && duration) {
    end = addMinutes(start, Number(duration[2]) * TQ_DURATION[duration[1]]);
  }
  return { ...(start ? { start } : {}), ...(end ? { end } : {}) };
}
