import type { Hl7Segment } from '@medplum/core';
import { rep, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { resourceTiming } from './ai-timing.ts';
import type { ScheduledResource } from './scheduled-resource.ts';

/**
 * AIS (appointment information: service) → Appointment (IG AIS[Appointment] map): AIS-3 universal
 * service id → serviceType, AIS-4 start (or appointment start + AIS-5/AIS-6 offset) and AIS-7/AIS-8
 * duration → the appointment's times, AIS-10 filler status → a fallback for the appointment status.
 * A service is not a participant.
 * @param ais - The AIS segment.
 * @param base - The appointment's start from SCH/TQ1, for offsets.
 * @param ctx - The mapping context.
 * @param sequence - The segment's occurrence in the message.
 * @returns What the service contributes.
 */
export function mapService(ais: Hl7Segment, base: string | undefined, ctx: MappingContext, sequence: number): ScheduledResource {
  const serviceRep = rep(ais, 3);
  const serviceType = serviceRep ? cweToCodeableConcept(serviceRep, ctx) : undefined;
  const fillerStatus = val(ais, 10).trim();
  return {
    timing: resourceTiming(ais, { start: 4, offset: 5, offsetUnits: 6, duration: 7, durationUnits: 8 }, base, ctx, sequence),
    ...(serviceType ? { serviceType } : {}),
    ...(fillerStatus ? { fillerStatus } : {}),
  };
}
