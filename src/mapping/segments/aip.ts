import type { Hl7Segment } from '@medplum/core';
import { rep, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import type { ResourcePlan } from '../plan.ts';
import { resourceTiming } from './ai-timing.ts';
import { practitionerRef } from './practitioner.ts';
import type { ScheduledResource } from './scheduled-resource.ts';
import { participantStatus } from './scheduled-resource.ts';

/**
 * AIP (appointment information: personnel) → an Appointment participant (IG AIP[Appointment]
 * map): AIP-3 (XCN) → actor, a Practitioner when it has an id (else a display); AIP-4 resource
 * type → participant.type (table 0182 when no system is named); AIP-6 start (or offset
 * AIP-7/AIP-8) and AIP-9/AIP-10 duration → period; AIP-12 filler status → participant status.
 * @param aip - The AIP segment.
 * @param base - The appointment's start, for offsets.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (the Practitioner is added).
 * @param sequence - The segment's occurrence in the message.
 * @returns What the person contributes (no participant when AIP-3 and AIP-4 are both empty).
 */
export function mapPersonnelResource(
  aip: Hl7Segment,
  base: string | undefined,
  ctx: MappingContext,
  plans: ResourcePlan[],
  sequence: number
): ScheduledResource {
  const timing = resourceTiming(aip, { start: 6, offset: 7, offsetUnits: 8, duration: 9, durationUnits: 10 }, base, ctx, sequence);
  const actor = practitionerRef(rep(aip, 3), ctx, { segment: 'AIP', sequence, field: 3 }, plans);
  const typeRep = rep(aip, 4);
  const type = typeRep ? cweToCodeableConcept(typeRep, ctx, 'HL70182') : undefined;
  const status = participantStatus(val(aip, 12));
  if (!actor && !type) {
    return { timing };
  }
  return {
    timing,
    participant: {
      ...(type ? { type: [type] } : {}),
      ...(actor ? { actor } : {}),
      ...(timing.start ? { period: timing } : {}),
    },
    ...(status ? { participantStatus: status } : {}),
  };
}
