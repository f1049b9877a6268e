import type { HumanName } from '@medplum/fhirtypes';
import type { FieldRep } from '../../hl7/fields.ts';

/** HL7 table 0200 name types → FHIR name-use. */
const NAME_USE: Record<string, HumanName['use']> = {
  L: 'official',
  D: 'usual',
  N: 'nickname',
  A: 'anonymous',
  M: 'maiden',
  B: 'official',
  C: 'old',
  S: 'anonymous',
  T: 'temp',
  U: 'usual',
  P: 'usual',
  R: 'official',
};

/**
 * XPN → HumanName (IG datatype map): XPN.1 family (FN.1 surname), XPN.2/XPN.3 given, XPN.4 and
 * XPN.6 suffix (generation, degree), XPN.5 prefix, XPN.7 use (table 0200).
 * @param xpn - One repetition of an XPN field.
 * @returns The name, or undefined when it has no part.
 */
export function xpnToHumanName(xpn: FieldRep): HumanName | undefined {
  if (xpn.isNull) {
    return undefined;
  }
  const family = xpn.sub(1, 1).trim();
  const given = [xpn.get(2), xpn.get(3)].map((g) => g.trim()).filter(Boolean);
  const prefix = [xpn.get(5)].map((p) => p.trim()).filter(Boolean);
  const suffix = [xpn.get(4), xpn.get(6)].map((s) => s.trim()).filter(Boolean);
  if (!family && given.length === 0) {
    return undefined;
  }
  const name: HumanName = {};
  const use = NAME_USE[xpn.get(7).toUpperCase()];
  if (use) {
    name.use = use;
  }
  if (family) {
    name.family = family;
  }
  if (given.length) {
    name.given = given;
  }
  if (prefix.length) {
    name.prefix = prefix;
  }
  if (suffix.length) {
    name.suffix = suffix;
  }
  return name;
}
