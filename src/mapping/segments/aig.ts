import type { Hl7Segment } from '@medplum/core';
import { rep, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { resourceTiming } from './ai-timing.ts';
import type { ScheduledResource } from './scheduled-resource.ts';
import { participantStatus } from './scheduled-resource.ts';

/**
 * AIG (appointment information: general resource, e.g. a room's ultrasound machine or an
 * interpreter) → an Appointment participant (IG AIG[Appointment] map). AIG-3 resource id is a
 * code, not a resource the hub can identify, so the actor is a display only (its CWE.2 text, else
 * the code); AIG-4 resource type → participant.type; AIG-8 start (or offset AIG-9/AIG-10) and
 * AIG-11/AIG-12 duration → period; AIG-14 filler status → participant status.
 * @param aig - The AIG segment.
 * @param base - The appointment's start, for offsets.
 * @param ctx - The mapping context.
 * @param sequence - The segment's occurrence in the message.
 * @returns What the resource contributes (no participant when AIG-3 and AIG-4 are both empty).
 */
export function mapGeneralResource(aig: Hl7Segment, base: string | undefined, ctx: MappingContext, sequence: number): ScheduledResource {
  const timing = resourceTiming(aig, { start: 8, offset: 9, offsetUnits: 10, duration: 11, durationUnits: 12 }, base, ctx, sequence);
  const resource = rep(aig, 3);
  const display = resource && !resource.isNull ? resource.get(2).trim() || resource.get(1).trim() : '';
  const typeRep = rep(aig, 4);
  const type = typeRep ? cweToCodeableConcept(typeRep, ctx) : undefined;
  const status = participantStatus(val(aig, 14));
  if (!display && !type) {
    return { timing };
  }
  return {
    timing,
    participant: {
      ...(type ? { type: [type] } : {}),
      ...(display ? { actor: { display } } : {}),
      ...(timing.start ? { period: timing } : {}),
    },
    ...(status ? { participantStatus: status } : {}),
  };
}
