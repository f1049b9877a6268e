/**
 * HL7 v2 date/time values (DT, TM, DTM/TS) to FHIR, keeping the precision and the time zone the
 * sender wrote. FHIR R4 requires a UTC offset once a time is present; when the value has none,
 * the sender's configured IANA time zone supplies it (daylight saving included).
 */

/** A converted value, or why it could not be converted (reported as a data error; never quotes the value, which may be PHI). */
export type DateTimeResult = { readonly value: string } | { readonly error: string };

const DTM = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,9}))?([+-]\d{2}(?:\d{2})?)?$/;

/**
 * Converts a DTM (or TS component 1) to a FHIR `dateTime`, or to a FHIR `date` when it has no
 * time: `2024` → `2024`, `202401` → `2024-01`, `20240102` → `2024-01-02`,
 * `202401021230-0500` → `2024-01-02T12:30:00-05:00`. Hours without minutes get `:00`.
 * @param dtm - The HL7 value.
 * @param timeZone - IANA zone for values without an offset (e.g. `America/Chicago`).
 * @returns The FHIR value or an error.
 */
export function dtmToFhirDateTime(dtm: string, timeZone: string | undefined): DateTimeResult {
  const match = DTM.exec(dtm.trim());
  if (!match) {
    return { error: 'not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])' };
  }
  const [, year, month, day, hour, minute, second, fraction, offset] = match;
  if ((month && !validRange(month, 1, 12)) || (day && !validDay(year, month, day))) {
    return { error: 'not a valid date' };
  }
  if (!hour) {
    return { value: [year, month, day].filter(Boolean).join('-') };
  }
  if (!day) {
    return { error: 'a time without a day' };
  }
  if (!validRange(hour, 0, 23) || (minute && !validRange(minute, 0, 59)) || (second && !validRange(second, 0, 60))) {
    return { error: 'not a valid time' };
  }
  const time = `${hour}:${minute ?? '00'}:${second ?? '00'}${fraction ? '.' + fraction : ''}`;
  const date = `${year}-${month}-${day}`;
  if (offset) {
    const formatted = formatOffset(offset);
    if (!formatted) {
      return { error: 'an invalid UTC offset' };
    }
    return { value: `${date}T${time}${formatted}` };
  }
  if (!timeZone) {
    return { error: 'a time without a UTC offset, and no time zone is configured for the sender' };
  }
  const zoneOffset = offsetInZone(timeZone, Number(year), Number(month), Number(day), Number(hour), Number(minute ?? 0), Number(second ?? 0));
  if (zoneOffset === undefined) {
    return { error: `unknown time zone '${timeZone}'` };
  }
  return { value: `${date}T${time}${zoneOffset}` };
}

/**
 * Converts a DTM to a FHIR `instant` (seconds and an offset are mandatory): missing minutes or
 * seconds are zero; a date without time is refused.
 * @param dtm - The HL7 value.
 * @param timeZone - IANA zone for values without an offset.
 * @returns The FHIR value or an error.
 */
export function dtmToFhirInstant(dtm: string, timeZone: string | undefined): DateTimeResult {
  const result = dtmToFhirDateTime(dtm, timeZone);
  if ('value' in result && !result.value.includes('T')) {
    return { error: 'no time, and an instant needs one' };
  }
  return result;
}

/**
 * Converts a DT (or the date part of a DTM) to a FHIR `date`, keeping the precision.
 * @param dt - The HL7 value.
 * @returns The FHIR value or an error.
 */
export function dtToFhirDate(dt: string): DateTimeResult {
  const datePart = dt.trim().slice(0, 8);
  const result = dtmToFhirDateTime(datePart, undefined);
  return result;
}

/**
 * Converts a TM (`HH[MM[SS[.S]]][+/-ZZZZ]`) to a FHIR `time` (`hh:mm:ss`); FHIR times carry no
 * zone, so an offset is dropped.
 * @param tm - The HL7 value.
 * @returns The FHIR value or an error.
 */
export function tmToFhirTime(tm: string): DateTimeResult {
  const match = /^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,9}))?(?:[+-]\d{4})?$/.exec(tm.trim());
  if (!match || !validRange(match[1], 0, 23) || (match[2] && !validRange(match[2], 0, 59)) || (match[3] && !validRange(match[3], 0, 60))) {
    return { error: 'not an HL7 time (HH[MM[SS[.S]]])' };
  }
  return { value: `${match[1]}:${match[2] ?? '00'}:${match[3] ?? '00'}${match[4] ? '.' + match[4] : ''}` };
}

/**
 * The UTC offset (`+hh:mm`) of a wall-clock time in an IANA time zone, using the runtime's ICU
 * data. Ambiguous times (the repeated hour when clocks go back) resolve to the first occurrence.
 * @returns The offset, or undefined for an unknown zone.
 */
function offsetInZone(timeZone: string, year: number, month: number, day: number, hour: number, minute: number, second: number): string | undefined {
  let formatter: Intl.DateTimeFormat;
  try {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' });
  } catch (_err) {
    return undefined;
  }
  const wallAsUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  // Two passes converge on the offset in force at that wall-clock time, also across DST changes.
  let offsetMinutes = zoneOffsetMinutes(formatter, wallAsUtc);
  offsetMinutes = zoneOffsetMinutes(formatter, wallAsUtc - offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function zoneOffsetMinutes(formatter: Intl.DateTimeFormat, epochMs: number): number {
  const name = formatter.formatToParts(new Date(epochMs)).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const match = /GMT([+-])(\d{2}):?(\d{2})?/.exec(name);
  if (!match) {
    return 0;
  }
  const minutes = Number(match[2]) * 60 + Number(match[3] ?? 0);
  return match[1] === '-' ? -minutes : minutes;
}

function formatOffset(offset: string): string | undefined {
  const hours = Number(offset.slice(1, 3));
  const minutes = offset.length > 3 ? Number(offset.slice(3, 5)) : 0;
  if (hours > 14 || minutes > 59) {
    return undefined;
  }
  return `${offset[0]}${pad(hours)}:${pad(minutes)}`;
}

function validRange(text: string, min: number, max: number): boolean {
  const n = Number(text);
  return n >= min && n <= max;
}

function validDay(year: string, month: string | undefined, day: string): boolean {
  const m = Number(month ?? 1);
  const daysInMonth = new Date(Date.UTC(Number(year), m, 0)).getUTCDate();
  return validRange(day, 1, daysInMonth);
}

function pad(n: number): string {
  return n.toString().padStart(2, '0');
}

/**
 * Converts a FHIR `dateTime` or `instant` to UTC epoch milliseconds, for ordering messages.
 * @param value - A FHIR date or dateTime.
 * @returns Milliseconds, or undefined when unparseable.
 */
export function fhirDateTimeToEpoch(value: string | undefined): number | undefined {
  if (!value) {
    return undefined;
  }
  const ms = Date.parse(value.length === 4 ? value + '-01-01' : value.length === 7 ? value + '-01' : value);
  return Number.isNaN(ms) ? undefined : ms;
}
