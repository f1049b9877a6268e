import type { Hl7Context, Hl7Segment } from '@medplum/core';
import { stripControlCharacters } from '../fhir/strings.ts';

/**
 * One repetition of a field, split into components and subcomponents with escape sequences
 * decoded. Positions are 1-based, as in the HL7 standard (`PID-3.4.2` is `rep.sub(4, 2)`).
 */
export class FieldRep {
  /** `[component][subcomponent]`, decoded. */
  readonly components: readonly (readonly string[])[];
  /** True when the sender wrote `""`: the value is explicitly deleted. */
  readonly isNull: boolean;

  constructor(components: readonly (readonly string[])[], isNull = false) {
    this.components = components;
    this.isNull = isNull;
  }

  /**
   * @param component - 1-based component.
   * @returns The component's value, subcomponents joined with `&`; '' when absent.
   */
  get(component = 1): string {
    const parts = this.components[component - 1];
    return parts ? parts.join('&') : '';
  }

  /**
   * @param component - 1-based component.
   * @param subcomponent - 1-based subcomponent.
   * @returns The subcomponent's value; '' when absent.
   */
  sub(component: number, subcomponent: number): string {
    return this.components[component - 1]?.[subcomponent - 1] ?? '';
  }

  /** @returns True when no component has a value (and it is not an explicit null). */
  isEmpty(): boolean {
    return !this.isNull && this.components.every((c) => c.every((s) => s === ''));
  }

  /**
   * A view of this repetition's component as a repetition of its own, for composite datatypes
   * nested in a component (e.g. the HD in CX.4, whose parts are subcomponents).
   * @param component - 1-based component.
   * @returns The component as a FieldRep whose components are its subcomponents.
   */
  nested(component: number): FieldRep {
    return new FieldRep((this.components[component - 1] ?? []).map((s) => [s]));
  }
}

/**
 * Splits a raw field value into repetitions, components and subcomponents and decodes escapes.
 * @param raw - The field as written in the message.
 * @param context - The message's delimiters.
 * @returns The repetitions; empty when the field is empty.
 */
export function parseField(raw: string, context: Hl7Context): FieldRep[] {
  if (raw === '') {
    return [];
  }
  if (raw === '""') {
    return [new FieldRep([], true)];
  }
  return raw.split(context.repetitionSeparator).map((rep) => {
    if (rep === '""') {
      return new FieldRep([], true);
    }
    return new FieldRep(
      rep.split(context.componentSeparator).map((comp) =>
        comp.split(context.subcomponentSeparator).map((sub) => stripControlCharacters(decodeEscapes(sub, context)))
      )
    );
  });
}

/**
 * Reads a field of a segment.
 * @param segment - The segment.
 * @param field - 1-based field number (MSH numbering includes MSH-1).
 * @returns Its repetitions (empty when the field is absent or empty).
 */
export function reps(segment: Hl7Segment | undefined, field: number): FieldRep[] {
  const value = segment?.getField(field);
  if (!segment || value === undefined) {
    return [];
  }
  return parseField(value.toString(), value.context);
}

/**
 * @param segment - The segment.
 * @param field - 1-based field number.
 * @returns The first repetition, or undefined when the field is empty.
 */
export function rep(segment: Hl7Segment | undefined, field: number): FieldRep | undefined {
  return reps(segment, field)[0];
}

/**
 * @param segment - The segment.
 * @param field - 1-based field number.
 * @param component - 1-based component.
 * @returns The decoded value of the first repetition's component; '' when absent or null.
 */
export function val(segment: Hl7Segment | undefined, field: number, component = 1): string {
  return rep(segment, field)?.get(component) ?? '';
}

/**
 * @param segment - The segment.
 * @param field - 1-based field number.
 * @returns True when the sender wrote `""` for the whole field (an explicit delete).
 */
export function isNullField(segment: Hl7Segment | undefined, field: number): boolean {
  const all = reps(segment, field);
  return all.length === 1 && all[0].isNull;
}

/**
 * Decodes the HL7 escape sequences of one leaf value: `\F\ \S\ \T\ \R\ \E\` (the delimiters),
 * `\.br\` and `\X0D\`-style hex (line breaks and other bytes), `\Xhh..\` (UTF-8 bytes in hex), and
 * drops formatting (`\H\ \N\` highlighting, `\.sp\`, `\.in\`, `\.ti\`, `\.ce\`) while keeping a
 * line break for `\.sp\`. Unknown or unterminated sequences are kept as written.
 * @param value - The raw leaf value.
 * @param context - The message's delimiters.
 * @returns The decoded text.
 */
export function decodeEscapes(value: string, context: Hl7Context): string {
  const esc = context.escapeCharacter;
  if (!esc || !value.includes(esc)) {
    return value;
  }
  let out = '';
  let i = 0;
  while (i < value.length) {
    const ch = value[i];
    if (ch !== esc) {
      out += ch;
      i++;
      continue;
    }
    const end = value.indexOf(esc, i + 1);
    if (end < 0) {
      out += value.slice(i);
      break;
    }
    const code = value.slice(i + 1, end);
    const decoded = decodeSequence(code, context);
    out += decoded ?? value.slice(i, end + 1);
    i = end + 1;
  }
  return out;
}

function decodeSequence(code: string, context: Hl7Context): string | undefined {
  switch (code) {
    case 'F':
      return context.fieldSeparator;
    case 'S':
      return context.componentSeparator;
    case 'T':
      return context.subcomponentSeparator;
    case 'R':
      return context.repetitionSeparator;
    case 'E':
      return context.escapeCharacter;
    case 'H':
    case 'N':
      return '';
    case '.br':
      return '\n';
  }
  if (code.startsWith('.sp')) {
    const count = Number.parseInt(code.slice(3) || '1', 10);
    return '\n'.repeat(Number.isInteger(count) && count > 0 && count < 100 ? count : 1);
  }
  if (/^\.(in|ti)[+-]?\d*$/.test(code) || code === '.ce' || code === '.fi' || code === '.nf' || code === '.sk') {
    return '';
  }
  if (/^X([0-9A-Fa-f]{2})+$/.test(code)) {
    const bytes = new Uint8Array((code.length - 1) / 2);
    for (let b = 0; b < bytes.length; b++) {
      bytes[b] = Number.parseInt(code.slice(1 + b * 2, 3 + b * 2), 16);
    }
    return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  }
  return undefined;
}

/**
 * Escapes text for use inside an HL7 field (the inverse of {@link decodeEscapes} for the
 * delimiters and line breaks), for outbound messages and ACK texts.
 * @param text - Plain text.
 * @param context - The message's delimiters.
 * @returns The escaped text.
 */
export function encodeEscapes(text: string, context: Hl7Context): string {
  const esc = context.escapeCharacter;
  let out = '';
  for (const ch of text) {
    if (ch === esc) {
      out += `${esc}E${esc}`;
    } else if (ch === context.fieldSeparator) {
      out += `${esc}F${esc}`;
    } else if (ch === context.componentSeparator) {
      out += `${esc}S${esc}`;
    } else if (ch === context.subcomponentSeparator) {
      out += `${esc}T${esc}`;
    } else if (ch === context.repetitionSeparator) {
      out += `${esc}R${esc}`;
    } else if (ch === '\n') {
      out += `${esc}.br${esc}`;
    } else if (ch === '\r') {
      // A bare CR would end the segment.
    } else {
      out += ch;
    }
  }
  return out;
}
