import type { ContactPoint } from '@medplum/fhirtypes';
import type { FieldRep } from '../../hl7/fields.ts';

/** HL7 table 0201 telecommunication use codes → FHIR use. */
const USE: Record<string, ContactPoint['use']> = {
  PRN: 'home',
  ORN: 'home',
  WPN: 'work',
  VHN: 'home',
  ASN: 'temp',
  EMR: 'temp',
  NET: undefined,
  BPN: 'work',
  PRS: 'mobile',
};

/** HL7 table 0202 telecommunication equipment types → FHIR system. */
const SYSTEM: Record<string, ContactPoint['system']> = {
  PH: 'phone',
  CP: 'phone',
  FX: 'fax',
  MD: 'other',
  BP: 'pager',
  'X.400': 'email',
  INTERNET: 'email',
  SAT: 'phone',
  TDD: 'other',
  TTY: 'other',
};

/**
 * XTN → ContactPoint (IG datatype map): XTN.2 use (table 0201), XTN.3 equipment (table 0202) →
 * system (`CP` → mobile use), XTN.4 email, XTN.5-XTN.8 country/area/local number/extension, and
 * the deprecated XTN.1 free text when nothing structured is present.
 * @param xtn - One repetition of an XTN field.
 * @returns The contact point, or undefined when empty.
 */
export function xtnToContactPoint(xtn: FieldRep): ContactPoint | undefined {
  if (xtn.isNull) {
    return undefined;
  }
  const equipment = xtn.get(3).toUpperCase();
  const email = xtn.get(4).trim();
  let value: string;
  if (email || equipment === 'INTERNET' || equipment === 'X.400') {
    value = email || xtn.get(1).trim();
  } else {
    const structured = [xtn.get(5) ? '+' + xtn.get(5).trim() : '', xtn.get(6).trim(), xtn.get(7).trim()].filter(Boolean).join(' ');
    const extension = xtn.get(8).trim();
    value = structured ? structured + (extension ? ' x' + extension : '') : xtn.get(1).trim();
  }
  if (!value) {
    return undefined;
  }
  const contact: ContactPoint = { system: SYSTEM[equipment] ?? (email ? 'email' : 'phone'), value };
  const use = equipment === 'CP' ? 'mobile' : USE[xtn.get(2).toUpperCase()];
  if (use) {
    contact.use = use;
  }
  return contact;
}
