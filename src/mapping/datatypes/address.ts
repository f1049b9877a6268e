import type { Address } from '@medplum/fhirtypes';
import type { FieldRep } from '../../hl7/fields.ts';

/** HL7 table 0190 address types → FHIR use and type. */
const ADDRESS_TYPE: Record<string, Pick<Address, 'use' | 'type'>> = {
  H: { use: 'home' },
  B: { use: 'work' },
  O: { use: 'work' },
  C: { use: 'temp' },
  BA: { use: 'billing' },
  M: { type: 'postal' },
  SH: { type: 'postal' },
  P: { type: 'physical' },
  BDL: { type: 'physical' },
  BR: { use: 'home' },
  L: { use: 'home' },
  BI: { use: 'billing' },
  BAD: { use: 'old' },
  F: { use: 'home' },
  N: { use: 'home' },
  V: { use: 'temp' },
};

/**
 * XAD → Address (IG datatype map): XAD.1 (street, SAD.1) and XAD.2 → line, XAD.3 city, XAD.4
 * state, XAD.5 postalCode, XAD.6 country, XAD.7 use/type (table 0190), XAD.9 district.
 * @param xad - One repetition of an XAD field.
 * @returns The address, or undefined when empty.
 */
export function xadToAddress(xad: FieldRep): Address | undefined {
  if (xad.isNull) {
    return undefined;
  }
  const line = [xad.sub(1, 1), xad.get(2)].map((l) => l.trim()).filter(Boolean);
  const address: Address = {};
  if (line.length) {
    address.line = line;
  }
  const parts: [keyof Address, string][] = [
    ['city', xad.get(3)],
    ['state', xad.get(4)],
    ['postalCode', xad.get(5)],
    ['country', xad.get(6)],
    ['district', xad.get(9)],
  ];
  for (const [key, value] of parts) {
    if (value.trim()) {
      (address as Record<string, string>)[key] = value.trim();
    }
  }
  if (Object.keys(address).length === 0) {
    return undefined;
  }
  Object.assign(address, ADDRESS_TYPE[xad.get(7).toUpperCase()] ?? {});
  return address;
}
