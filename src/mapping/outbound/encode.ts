import { Hl7Context, Hl7Field, Hl7Segment } from '@medplum/core';
import { stripControlCharacters } from '../../fhir/strings.ts';
import { encodeEscapes } from '../../hl7/fields.ts';

/**
 * Writing HL7 v2 (ER7) from plain values. Every leaf value (a subcomponent) is plain text and is
 * escaped when the field is written, so no caller ever concatenates delimiters into a value: a
 * `|`, `^`, `~`, `\` or `&` in a name or comment becomes `\F\`, `\S\`, `\R\`, `\E\` or `\T\`.
 */

/** One component: plain text, or its subcomponents (e.g. an HD inside CX.4). */
export type Component = string | readonly string[];

/** One repetition of a field: its components, in order (CX.1, CX.2, ...). */
export type Repetition = readonly Component[];

/** A field: its repetitions; none (or only empty ones) leaves the field empty. */
export type Field = readonly Repetition[];

/** The fields of a segment by HL7 field number (1-based, MSH numbering includes MSH-1). */
export type SegmentFields = Readonly<Record<number, Field | undefined>>;

/** The delimiters the hub writes with (the standard ones, `|^~\&`). */
export const OUTBOUND_CONTEXT = new Hl7Context();

/**
 * @param value - Plain text, possibly undefined.
 * @returns A field with one repetition of one component ('' and undefined give an empty field).
 */
export function text(value: string | undefined): Field {
  return value ? [[value]] : [];
}

/**
 * @param components - The components of one repetition.
 * @returns A field with that single repetition.
 */
export function one(components: Repetition | undefined): Field {
  return components ? [components] : [];
}

/**
 * Escapes and joins one repetition, dropping trailing empty components and subcomponents (the
 * standard's "no trailing delimiters" rule, which strict parsers enforce).
 * @param repetition - The repetition's plain components.
 * @param context - The delimiters.
 * @returns The components as ER7 text, for `Hl7Field` (one string per component).
 */
function encodeRepetition(repetition: Repetition, context: Hl7Context): string[] {
  const components = repetition.map((component) => {
    const subs = (typeof component === 'string' ? [component] : component).map((s) => encodeEscapes(stripControlCharacters(s), context));
    return trimTrailing(subs).join(context.subcomponentSeparator);
  });
  return trimTrailing(components);
}

function trimTrailing(values: string[]): string[] {
  let end = values.length;
  while (end > 0 && values[end - 1] === '') {
    end--;
  }
  return values.slice(0, end);
}

/**
 * @param field - A field's plain repetitions.
 * @param context - The delimiters.
 * @returns The `Hl7Field` (escaped), or undefined when the field is empty.
 */
export function encodeField(field: Field | undefined, context: Hl7Context = OUTBOUND_CONTEXT): Hl7Field | undefined {
  const repetitions = (field ?? []).map((r) => encodeRepetition(r, context)).filter((r) => r.length > 0);
  return repetitions.length ? new Hl7Field(repetitions, context) : undefined;
}

/**
 * Builds a segment from numbered fields; fields after the last one with a value are not written.
 * @param name - The segment name, e.g. `PID`.
 * @param fields - Plain field values by field number.
 * @param context - The delimiters.
 * @returns The segment.
 */
export function buildSegment(name: string, fields: SegmentFields, context: Hl7Context = OUTBOUND_CONTEXT): Hl7Segment {
  // MSH-1 is the field separator itself and MSH-2 the encoding characters: MSH-n sits at index n-1.
  const isHeader = name === 'MSH';
  const encoded: Hl7Field[] = [new Hl7Field([[name]], context)];
  if (isHeader) {
    encoded.push(new Hl7Field([[context.getMsh2()]], context));
  }
  const numbers = Object.keys(fields)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n >= (isHeader ? 3 : 1));
  const byNumber = new Map(numbers.map((n) => [n, encodeField(fields[n], context)] as const));
  const last = Math.max(0, ...numbers.filter((n) => byNumber.get(n)));
  for (let n = isHeader ? 3 : 1; n <= last; n++) {
    encoded.push(byNumber.get(n) ?? new Hl7Field([['']], context));
  }
  return new Hl7Segment(encoded, context);
}

const FHIR_DATE_TIME = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * FHIR `date`, `dateTime` or `instant` → HL7 DTM, keeping the precision and the offset written
 * (`Z` becomes `+0000`): `2024-03-15T08:45:00-05:00` → `20240315084500-0500`. Fractions of a
 * second are cut to the four digits DTM allows. The inverse of `dtmToFhirDateTime` for values
 * with an offset, so a time sent out reads back as the same instant.
 * @param value - The FHIR value.
 * @returns The DTM, or undefined when the value is not a FHIR date/time.
 */
export function fhirToDtm(value: string | undefined): string | undefined {
  const match = value ? FHIR_DATE_TIME.exec(value.trim()) : null;
  if (!match) {
    return undefined;
  }
  const [, year, month, day, hour, minute, second, fraction, offset] = match;
  const fractionPart = fraction ? '.' + fraction.slice(0, 4) : '';
  const offsetPart = offset === 'Z' ? '+0000' : offset ? offset.replace(':', '') : '';
  return [year, month, day, hour, minute, second].filter(Boolean).join('') + (second ? fractionPart : '') + (hour ? offsetPart : '');
}

/**
 * @param value - A FHIR instant.
 * @returns True when it has a time to the second and an offset, as FHIR requires of an instant.
 */
export function isFhirInstant(value: string): boolean {
  const match = FHIR_DATE_TIME.exec(value.trim());
  return Boolean(match?.[6] && match[8]);
}
