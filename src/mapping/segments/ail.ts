import type { Hl7Segment } from '@medplum/core';
import { rep, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { resourceTiming } from './ai-timing.ts';
import { locationRef } from './practitioner.ts';
import type { ScheduledResource } from './scheduled-resource.ts';
import { participantStatus } from './scheduled-resource.ts';

/**
 * AIL (appointment information: location) → an Appointment participant (IG AIL[Appointment]
 * map): AIL-3 (PL) → actor, a Location planned like PV1-3's; AIL-6 start (or offset AIL-7/AIL-8)
 * and AIL-9/AIL-10 duration → period; AIL-12 filler status → participant status. AIL-4 location
 * type describes the place, not its role, so it is not a participant type.
 * @param ail - The AIL segment.
 * @param base - The appointment's start, for offsets.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (the Location is added).
 * @param sequence - The segment's occurrence in the message.
 * @returns What the location contributes (no participant when AIL-3 is empty).
 */
export function mapLocationResource(
  ail: Hl7Segment,
  base: string | undefined,
  ctx: MappingContext,
  plans: ResourcePlan[],
  sequence: number
): ScheduledResource {
  const timing = resourceTiming(ail, { start: 6, offset: 7, offsetUnits: 8, duration: 9, durationUnits: 10 }, base, ctx, sequence);
  const actor = locationRef(rep(ail, 3), ctx, plans);
  const status = participantStatus(val(ail, 12));
  if (!actor) {
    return { timing };
  }
  return {
    timing,
    participant: { actor, ...(timing.start ? { period: timing } : {}) },
    ...(status ? { participantStatus: status } : {}),
  };
}
