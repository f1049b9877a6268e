import type { Quantity, Range, Ratio } from '@medplum/fhirtypes';
import type { FieldRep } from '../../hl7/fields.ts';

/** A decimal as HL7 NM allows it (leading +/-, leading zeros, optional fraction). */
const NM = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

/**
 * @param text - An NM value.
 * @returns The number, with leading zeros and a trailing dot dropped, or undefined when not numeric.
 */
export function parseNm(text: string): number | undefined {
  const trimmed = text.trim();
  if (!NM.test(trimmed)) {
    return undefined;
  }
  const n = Number(trimmed);
  return Number.isFinite(n) ? n : undefined;
}

/** The result of reading an SN (structured numeric). */
export type StructuredNumeric =
  | { readonly kind: 'quantity'; readonly value: Quantity }
  | { readonly kind: 'range'; readonly value: Range }
  | { readonly kind: 'ratio'; readonly value: Ratio }
  | { readonly kind: 'string'; readonly value: string };

/**
 * SN → Quantity, Range, Ratio or string (IG OBX-5 map): `<^10` (comparator), `^10^-^20` (range),
 * `^1^:^128` (ratio, also `/`), `^5^+` (categorical "5+", kept as text). The quantities carry no
 * units: the caller adds OBX-6's.
 * @param sn - The SN repetition.
 * @returns The value, or undefined when empty.
 */
export function snToValue(sn: FieldRep): StructuredNumeric | undefined {
  const comparator = sn.get(1).trim();
  const num1 = parseNm(sn.get(2));
  const separator = sn.get(3).trim();
  const num2 = parseNm(sn.get(4));
  if (num1 === undefined && num2 === undefined) {
    const text = [comparator, sn.get(2), separator, sn.get(4)].join('').trim();
    return text ? { kind: 'string', value: text } : undefined;
  }
  if (separator === '-' && num1 !== undefined && num2 !== undefined) {
    return { kind: 'range', value: { low: { value: num1 }, high: { value: num2 } } };
  }
  if ((separator === ':' || separator === '/') && num1 !== undefined && num2 !== undefined) {
    return { kind: 'ratio', value: { numerator: { value: num1 }, denominator: { value: num2 } } };
  }
  if (!separator && num1 !== undefined) {
    const fhirComparator = comparator === '<' || comparator === '<=' || comparator === '>=' || comparator === '>' ? comparator : undefined;
    if (comparator && !fhirComparator && comparator !== '=') {
      return { kind: 'string', value: `${comparator}${sn.get(2).trim()}` };
    }
    return { kind: 'quantity', value: { value: num1, ...(fhirComparator ? { comparator: fhirComparator } : {}) } };
  }
  return { kind: 'string', value: [comparator, sn.get(2), separator, sn.get(4)].join('').trim() };
}
