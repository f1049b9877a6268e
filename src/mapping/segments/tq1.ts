import type { ServiceRequest } from '@medplum/fhirtypes';
import { rep, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import type { SegmentRef } from '../groups.ts';
import { at } from '../groups.ts';

/** HL7 table 0485 (TQ1-9) / TQ.6 priority → FHIR request-priority. */
const PRIORITY: Record<string, ServiceRequest['priority']> = {
  S: 'stat',
  A: 'asap',
  R: 'routine',
  T: 'urgent',
};

/** When and how urgently an order is to be done. */
export interface OrderTiming {
  readonly priority?: ServiceRequest['priority'];
  readonly occurrenceDateTime?: string;
  readonly occurrencePeriod?: { start?: string; end?: string };
}

/**
 * TQ1 → ServiceRequest priority and occurrence (IG TQ1[ServiceRequest] map): TQ1-9 priority
 * (S stat, A asap, R routine, T timing critical → urgent), TQ1-7 start and TQ1-8 end date/time
 * (start alone → occurrenceDateTime, with an end → occurrencePeriod). Older messages carry the
 * same in the TQ datatype of OBR-27 or ORC-7 (TQ.4 start, TQ.5 end, TQ.6 priority), used when
 * there is no TQ1; OBR-5 (priority, withdrawn) and OBR-6 (requested date/time) are the last
 * fallbacks.
 * @param tq1 - The order's TQ1 segments (the first is used).
 * @param obr - The OBR, if any.
 * @param orc - The ORC, if any.
 * @param ctx - The mapping context.
 * @returns The timing (any subset).
 */
export function orderTiming(tq1: readonly SegmentRef[], obr: SegmentRef | undefined, orc: SegmentRef | undefined, ctx: MappingContext): OrderTiming {
  let priorityCode = '';
  let start = '';
  let end = '';
  let where: { ref: SegmentRef; startField: number; endField: number } | undefined;
  const first = tq1[0];
  if (first) {
    priorityCode = val(first.segment, 9);
    start = val(first.segment, 7);
    end = val(first.segment, 8);
    where = { ref: first, startField: 7, endField: 8 };
  } else {
    for (const [ref, field] of [
      [obr, 27],
      [orc, 7],
    ] as const) {
      const tq = ref ? rep(ref.segment, field) : undefined;
      if (ref && tq && !tq.isEmpty()) {
        priorityCode = tq.get(6);
        // TQ.4/TQ.5 are TS: the DTM is their first subcomponent.
        start = tq.sub(4, 1);
        end = tq.sub(5, 1);
        where = { ref, startField: field, endField: field };
        break;
      }
    }
  }
  if (!priorityCode && obr) {
    priorityCode = val(obr.segment, 5);
  }
  if (!start && obr && val(obr.segment, 6)) {
    start = val(obr.segment, 6);
    where = { ref: obr, startField: 6, endField: 6 };
  }
  const timing: { -readonly [K in keyof OrderTiming]: OrderTiming[K] } = {};
  const priority = PRIORITY[priorityCode.trim().toUpperCase()];
  if (priority) {
    timing.priority = priority;
  }
  const startTime = start && where ? ctx.dateTime(start, at(where.ref, where.startField)) : undefined;
  const endTime = end && where ? ctx.dateTime(end, at(where.ref, where.endField)) : undefined;
  if (endTime) {
    timing.occurrencePeriod = { ...(startTime ? { start: startTime } : {}), end: endTime };
  } else if (startTime) {
    timing.occurrenceDateTime = startTime;
  }
  return timing;
}
