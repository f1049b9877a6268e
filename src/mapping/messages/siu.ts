import type { Hl7Message } from '@medplum/core';
import type { Appointment, AppointmentParticipant, CodeableConcept, Encounter, Patient } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { fhirDateTimeToEpoch } from '../../hl7/datetime.ts';
import { val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import type { MessagePlan, ResourcePlan } from '../plan.ts';
import { asFill, localRef, MappingError } from '../plan.ts';
import { mapGeneralResource } from '../segments/aig.ts';
import type { Timing } from '../segments/ai-timing.ts';
import { addMinutes } from '../segments/ai-timing.ts';
import { mapLocationResource } from '../segments/ail.ts';
import { mapPersonnelResource } from '../segments/aip.ts';
import { mapService } from '../segments/ais.ts';
import { noteText } from '../segments/note-text.ts';
import { mapPatient } from '../segments/pid.ts';
import { mapEncounter } from '../segments/pv1.ts';
import type { ScheduleInfo } from '../segments/sch.ts';
import { appointmentStatus, mapSchedule } from '../segments/sch.ts';
import type { ScheduledResource } from '../segments/scheduled-resource.ts';
import type { MessageMapper, MessageMappers } from './types.ts';

/** Statuses FHIR allows without a start and end (invariant app-3). */
const UNTIMED: Appointment['status'][] = ['proposed', 'cancelled', 'waitlist'];

/**
 * SIU (IG SIU_S12 map, shared by S13-S15): SCH (+ TQ1, NTE) and the resource segments AIS, AIG,
 * AIL, AIP → one Appointment keyed by SCH-2 (else SCH-1); PID → Patient (a required participant);
 * PV1 → a planned Encounter linked to the appointment when it identifies a visit (Patient and
 * Encounter merged as `fill`: ADT is the authority for them).
 * Status: S15 → cancelled (with SCH-6 as cancelationReason); otherwise SCH-25 filler status (else
 * the first AIS-10), else booked for S12/S13 and, for S14, booked only as the default of a new
 * appointment. Times: the earliest start and latest end of the resource segments, else TQ1/SCH-11,
 * with SCH-9 filling a missing end. FHIR lets an appointment lack times only when proposed,
 * cancelled or waitlisted (app-3), so an untimed booking is recorded as `proposed`, with a warning.
 * @param event - The trigger event.
 * @returns The message map.
 */
function siuMapper(event: 'S12' | 'S13' | 'S14' | 'S15'): MessageMapper {
  return (message: Hl7Message, ctx: MappingContext): MessagePlan => {
    const sch = message.getSegment('SCH');
    if (!sch) {
      throw new MappingError({ code: Hl7ErrorCode.SegmentSequence, text: 'SCH segment missing', location: { segment: 'SCH' } });
    }
    const schedule = mapSchedule(sch, message.getSegment('TQ1'), ctx);
    // Demographics are ADT's to assert: this feed only fills in what the record lacks.
    const patient: ResourcePlan<Patient> = asFill(mapPatient(message.getSegment('PID'), ctx));
    const plans: ResourcePlan[] = [patient];
    const encounter = mapEncounter(message.getSegment('PV1'), message.getSegment('PV2'), patient.key, patient.identifiers[0], ctx, plans, {
      locations: 'planned',
    });

    const resources = scheduledResources(message, event, schedule.timing.start, ctx, plans);
    const timing = appointmentTiming(resources, schedule);
    const { status, statusIsDefault } = eventStatus(event, schedule, resources, ctx);
    const appointment: Appointment = {
      resourceType: 'Appointment',
      identifier: schedule.identifiers,
      status,
      ...schedule.elements,
      participant: [],
    };
    if (timing.start && timing.end) {
      appointment.start = timing.start;
      appointment.end = timing.end;
    } else if (!UNTIMED.includes(status)) {
      if (!statusIsDefault) {
        ctx.warn({
          code: Hl7ErrorCode.RequiredFieldMissing,
          text: `No appointment start and end (AIS/AIG/AIL/AIP, TQ1 or SCH-11); recorded as proposed instead of ${status}`,
          location: { segment: 'SCH', field: 11 },
        });
      }
      appointment.status = 'proposed';
    }
    if (timing.start && !timing.end) {
      appointment.requestedPeriod = [{ start: timing.start }];
    }
    if (appointment.status === 'cancelled' && schedule.eventReason) {
      appointment.cancelationReason = schedule.eventReason;
    }
    const serviceTypes = resources.map((r) => r.serviceType).filter((c): c is CodeableConcept => c !== undefined);
    if (serviceTypes.length) {
      appointment.serviceType = serviceTypes;
    }
    // Until the appointment is booked, its participants have yet to answer.
    const awaiting = ['proposed', 'pending', 'waitlist'].includes(appointment.status);
    const defaultStatus: AppointmentParticipant['status'] = awaiting ? 'needs-action' : 'accepted';
    appointment.participant = [
      { actor: localRef<Patient>(patient.key), status: defaultStatus },
      ...resources.flatMap((r) => (r.participant ? [{ ...r.participant, status: r.participantStatus ?? defaultStatus }] : [])),
    ];
    const comment = noteText(message.getAllSegments('NTE'));
    if (comment) {
      appointment.comment = comment;
    }

    if (encounter) {
      const visit = encounter.resource as Encounter;
      // A visit known only from scheduling is planned (the default for a new Encounter).
      if (visit.status === 'unknown') {
        visit.status = 'planned';
      }
      visit.appointment = [localRef<Appointment>('Appointment')];
      // Scheduling is not authoritative for the visit (ADT is): it only fills what is missing.
      plans.push({ ...encounter, merge: 'fill' });
    }
    const defaultsOnly = [
      ...(statusIsDefault ? ['status'] : []),
      // Without resource segments only the patient is known: the stored participants are kept.
      ...(resources.some((r) => r.participant) ? [] : ['participant']),
    ];
    plans.push({
      key: 'Appointment',
      resource: appointment,
      identifiers: schedule.matchIdentifiers,
      merge: 'overlay',
      ...(schedule.clear.length ? { clear: schedule.clear } : {}),
      ...(defaultsOnly.length ? { defaultsOnly } : {}),
    });
    return { resources: plans, warnings: ctx.warnings };
  };
}

/**
 * The resource segments in message order (RGS groups are not needed to read them). A resource the
 * sender removes from the appointment (segment action code D) is no longer part of it, except in
 * a cancellation (S15), which describes the appointment as it was.
 */
function scheduledResources(
  message: Hl7Message,
  event: string,
  base: string | undefined,
  ctx: MappingContext,
  plans: ResourcePlan[]
): ScheduledResource[] {
  const counts = new Map<string, number>();
  const result: ScheduledResource[] = [];
  for (const segment of message.segments) {
    const sequence = (counts.get(segment.name) ?? 0) + 1;
    counts.set(segment.name, sequence);
    if (event !== 'S15' && /^AI[SGLP]$/.test(segment.name) && val(segment, 2).trim().toUpperCase() === 'D') {
      continue;
    }
    if (segment.name === 'AIS') {
      result.push(mapService(segment, base, ctx, sequence));
    } else if (segment.name === 'AIG') {
      result.push(mapGeneralResource(segment, base, ctx, sequence));
    } else if (segment.name === 'AIL') {
      result.push(mapLocationResource(segment, base, ctx, plans, sequence));
    } else if (segment.name === 'AIP') {
      result.push(mapPersonnelResource(segment, base, ctx, plans, sequence));
    }
  }
  return result;
}

/** Earliest resource start and latest resource end; else TQ1/SCH-11; a missing end from SCH-9. */
function appointmentTiming(resources: readonly ScheduledResource[], schedule: ScheduleInfo): Timing {
  const starts = resources.map((r) => r.timing.start).filter((s): s is string => s !== undefined);
  const ends = resources.map((r) => r.timing.end).filter((s): s is string => s !== undefined);
  const byTime = (a: string, b: string): number => (fhirDateTimeToEpoch(a) ?? 0) - (fhirDateTimeToEpoch(b) ?? 0);
  const start = starts.sort(byTime)[0] ?? schedule.timing.start;
  let end = ends.sort(byTime).at(-1) ?? schedule.timing.end;
  if (start && end && byTime(end, start) < 0) {
    end = undefined;
  }
  if (start && !end && schedule.elements.minutesDuration) {
    end = addMinutes(start, schedule.elements.minutesDuration);
  }
  return { ...(start ? { start } : {}), ...(end ? { end } : {}) };
}

function eventStatus(
  event: string,
  schedule: ScheduleInfo,
  resources: readonly ScheduledResource[],
  ctx: MappingContext
): { status: Appointment['status']; statusIsDefault: boolean } {
  if (event === 'S15') {
    return { status: 'cancelled', statusIsDefault: false };
  }
  const serviceStatus = resources.find((r) => r.fillerStatus)?.fillerStatus;
  const status = appointmentStatus(schedule.fillerStatus) ?? appointmentStatus(serviceStatus);
  if (status) {
    return { status, statusIsDefault: false };
  }
  if (schedule.fillerStatus) {
    ctx.warn({
      code: Hl7ErrorCode.DataType,
      text: `SCH-25 (filler status) '${schedule.fillerStatus}' has no FHIR appointment status; the event's status is used`,
      location: { segment: 'SCH', field: 25 },
    });
  }
  // S12 books and S13 reschedules a booked appointment; S14 only modifies it.
  return { status: 'booked', statusIsDefault: event === 'S14' };
}

/** Message maps of the scheduling family. */
export const siuMappers: MessageMappers = {
  /** Notification of new appointment booking. */
  'SIU^S12': siuMapper('S12'),
  /** Notification of appointment rescheduling. */
  'SIU^S13': siuMapper('S13'),
  /** Notification of appointment modification. */
  'SIU^S14': siuMapper('S14'),
  /** Notification of appointment cancellation. */
  'SIU^S15': siuMapper('S15'),
};
