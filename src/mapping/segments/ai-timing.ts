import type { Hl7Segment } from '@medplum/core';
import type { ErrorLocation } from '../../hl7/ack.ts';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import { rep, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { parseNm } from '../datatypes/quantity.ts';

/** A start and end as FHIR instants; either may be missing. */
export interface Timing {
  readonly start?: string;
  readonly end?: string;
}

/** Positions of the timing fields in an AIS/AIG/AIL/AIP segment. */
export interface TimingFields {
  readonly start: number;
  readonly offset: number;
  readonly offsetUnits: number;
  readonly duration: number;
  readonly durationUnits: number;
}

/** Time units (ANSI/HL7 short codes and UCUM) in minutes. */
const MINUTES: Record<string, number> = {
  s: 1 / 60,
  sec: 1 / 60,
  second: 1 / 60,
  seconds: 1 / 60,
  m: 1,
  min: 1,
  mins: 1,
  minute: 1,
  minutes: 1,
  h: 60,
  hr: 60,
  hrs: 60,
  hour: 60,
  hours: 60,
  d: 1440,
  day: 1440,
  days: 1440,
  w: 10080,
  wk: 10080,
  week: 10080,
  weeks: 10080,
};

/**
 * @param units - A CNE/CE units field (e.g. `MIN^minutes^ANS+`, `min^^UCUM`), if any.
 * @returns Minutes per unit: minutes when not valued (the HL7 default for appointment
 * durations), undefined for units that are not time units.
 */
export function minutesPerUnit(units: FieldRep | undefined): number | undefined {
  const code = units?.isNull ? '' : (units?.get(1).trim() ?? '');
  if (!code) {
    return 1;
  }
  return MINUTES[code.toLowerCase()] ?? MINUTES[(units?.get(2).trim() ?? '').toLowerCase()];
}

/**
 * @param amount - An NM amount as sent.
 * @param units - Its units field.
 * @param ctx - The mapping context (for warnings).
 * @param location - Where the amount was read.
 * @returns The amount in minutes, or undefined (with a warning when it could not be read).
 */
export function durationMinutes(amount: string, units: FieldRep | undefined, ctx: MappingContext, location: ErrorLocation): number | undefined {
  if (!amount.trim()) {
    return undefined;
  }
  const value = parseNm(amount);
  const factor = minutesPerUnit(units);
  if (value === undefined || factor === undefined) {
    ctx.warn({ code: Hl7ErrorCode.DataType, text: 'duration or its units are not readable; ignored', location });
    return undefined;
  }
  return value * factor;
}

/**
 * Adds minutes to a FHIR dateTime/instant with a time, keeping its UTC offset (pure arithmetic,
 * so the same input always gives the same output).
 * @param instant - e.g. `2024-03-12T09:30:00-05:00`.
 * @param minutes - Minutes to add (may be fractional or negative).
 * @returns The later instant, or undefined when `instant` has no time.
 */
export function addMinutes(instant: string, minutes: number): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(instant);
  if (!match) {
    return undefined;
  }
  const [, y, mo, d, h, mi, s, zone] = match;
  // Wall-clock arithmetic in the value's own fixed offset is the same instant arithmetic.
  const wall = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) + Math.round(minutes * 60_000);
  const shifted = new Date(wall);
  const pad = (n: number): string => n.toString().padStart(2, '0');
  const date = `${shifted.getUTCFullYear()}-${pad(shifted.getUTCMonth() + 1)}-${pad(shifted.getUTCDate())}`;
  const time = `${pad(shifted.getUTCHours())}:${pad(shifted.getUTCMinutes())}:${pad(shifted.getUTCSeconds())}`;
  return `${date}T${time}${zone}`;
}

/**
 * The timing of a scheduled resource (AIS, AIG, AIL, AIP; IG maps: start date/time →
 * participant.period.start, else appointment start + start offset; end = start + duration).
 * @param segment - The segment.
 * @param fields - Where its timing fields are.
 * @param base - The appointment's start, for offsets.
 * @param ctx - The mapping context.
 * @param sequence - The segment's occurrence, for locations.
 * @returns Start and end as instants (a date without a time cannot be an instant: warned, dropped).
 */
export function resourceTiming(segment: Hl7Segment, fields: TimingFields, base: string | undefined, ctx: MappingContext, sequence: number): Timing {
  const at = (field: number): ErrorLocation => ({ segment: segment.name, sequence, field });
  let start = ctx.instant(val(segment, fields.start), at(fields.start));
  if (!start && base && val(segment, fields.offset).trim()) {
    const offset = durationMinutes(val(segment, fields.offset), rep(segment, fields.offsetUnits), ctx, at(fields.offset));
    start = offset === undefined ? undefined : addMinutes(base, offset);
  }
  const duration = durationMinutes(val(segment, fields.duration), rep(segment, fields.durationUnits), ctx, at(fields.duration));
  const end = start && duration !== undefined ? addMinutes(start, duration) : undefined;
  return { ...(start ? { start } : {}), ...(end ? { end } : {}) };
}
