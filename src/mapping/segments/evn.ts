import type { Hl7Message } from '@medplum/core';
import { val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';

/** When an ADT event was recorded and when it happened, as FHIR dateTimes. */
export interface EventTimes {
  /** EVN-2 (recorded date/time), else MSH-7: the event time that orders messages. */
  readonly recorded: string;
  /**
   * EVN-6 (event occurred), else {@link recorded}: when the admission, transfer or discharge
   * actually took place, used for location history and period ends.
   */
  readonly occurred: string;
}

/**
 * EVN → event times (IG EVN[Provenance]: EVN-2 → recorded, EVN-6 → occurredDateTime). EVN is
 * optional before v2.3 and some senders leave it out; MSH-7 (required) stands in for EVN-2. An
 * unreadable EVN-2 or EVN-6 is dropped with a warning and the next source is used.
 * @param message - The message.
 * @param ctx - The mapping context.
 * @returns The recorded and occurred times.
 */
export function eventTimes(message: Hl7Message, ctx: MappingContext): EventTimes {
  const evn = message.getSegment('EVN');
  const recorded =
    ctx.dateTime(val(evn, 2), { segment: 'EVN', field: 2 }) ??
    ctx.requiredDateTime(ctx.header.dateTime, { segment: 'MSH', field: 7 }, 'MSH-7 (date/time of message)');
  const occurred = ctx.dateTime(val(evn, 6), { segment: 'EVN', field: 6 }) ?? recorded;
  return { recorded, occurred };
}
