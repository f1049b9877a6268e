import type { Quantity } from '@medplum/fhirtypes';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';

/** The UCUM code system. */
export const UCUM = 'http://unitsofmeasure.org';

/**
 * Unit spellings lab and monitor feeds use that are not UCUM codes, with the UCUM code they
 * mean. The sender's spelling stays the Quantity's `unit`.
 */
const UCUM_ALIASES: Record<string, string> = {
  bpm: '/min',
  'beats/min': '/min',
  'br/min': '/min',
  'breaths/min': '/min',
  'rpm': '/min',
  mmHg: 'mm[Hg]',
  cmH2O: 'cm[H2O]',
  'mEq/L': 'meq/L',
  'mEq/l': 'meq/L',
  'K/uL': '10*3/uL',
  'K/mcL': '10*3/uL',
  'x10E3/uL': '10*3/uL',
  'x10^3/uL': '10*3/uL',
  'M/uL': '10*6/uL',
  'x10E6/uL': '10*6/uL',
  'x10^6/uL': '10*6/uL',
  'IU/L': '[IU]/L',
  'IU/mL': '[IU]/mL',
  'mIU/L': 'm[IU]/L',
  'mIU/mL': 'm[IU]/mL',
  'uIU/mL': 'u[IU]/mL',
  degC: 'Cel',
  '°C': 'Cel',
  degF: '[degF]',
  '°F': '[degF]',
  'mcg/dL': 'ug/dL',
  'mcg/L': 'ug/L',
  'mcg/mL': 'ug/mL',
  // Upper-case spellings from older lab systems (`ML` would otherwise read as UCUM megalitre).
  ML: 'mL',
  MG: 'mg',
  'MG/DL': 'mg/dL',
  'MMOL/L': 'mmol/L',
  MCG: 'ug',
  UG: 'ug',
  KG: 'kg',
  G: 'g',
  sec: 's',
  secs: 's',
  hr: 'h',
  hrs: 'h',
};

/** UCUM metric prefixes. */
const PREFIX = '(?:da|[YZEPTGMkhdcmunpfazy])?';
/** UCUM atoms common in laboratory and vital-sign results (case-sensitive, as UCUM is). */
const ATOM =
  "(?:g|m|L|l|s|min|h|d|wk|mo|a|mol|eq|osm|kat|U|Cel|K|Pa|bar|Hz|J|W|V|A|Ohm|cal|t|bit|By|m\\[Hg\\]|m\\[H2O\\]|" +
  "\\[IU\\]|\\[iU\\]|\\[degF\\]|\\[pH\\]|\\[ppm\\]|\\[ppb\\]|\\[ppth\\]|\\[drp\\]|\\[in_i\\]|\\[lb_av\\]|\\[oz_av\\]|" +
  "\\[HPF\\]|\\[LPF\\]|\\[CFU\\]|\\[arb'U\\]|\\[APL'U\\]|\\[GPL'U\\]|\\[MPL'U\\])";
const TERM = `(?:10[*^][+-]?\\d+|\\d+|%|${PREFIX}${ATOM}[+-]?\\d*)?(?:\\{[^{}]*\\})?`;
const UCUM_EXPRESSION = new RegExp(`^/?${TERM}(?:[./]${TERM})*$`);

/**
 * @param unit - A unit as sent (OBX-6.1).
 * @returns The UCUM code it is (itself, or the UCUM code of a known non-UCUM spelling such as
 * `bpm` or `mmHg`), or undefined when it does not look like UCUM.
 */
export function ucumCode(unit: string): string | undefined {
  const trimmed = unit.trim();
  if (!trimmed) {
    return undefined;
  }
  const alias = UCUM_ALIASES[trimmed];
  if (alias) {
    return alias;
  }
  // Parentheses only group terms (`g/(24.h)`): check they balance, then validate without them.
  let depth = 0;
  for (const ch of trimmed) {
    depth += ch === '(' ? 1 : ch === ')' ? -1 : 0;
    if (depth < 0) {
      return undefined;
    }
  }
  const flat = trimmed.replace(/[()]/g, '');
  // Each term must say something: reject empty terms such as `//` or a lone `.`.
  if (depth !== 0 || /(^|[./])($|[./])/.test(flat.replace(/^\//, 'x/'))) {
    return undefined;
  }
  return UCUM_EXPRESSION.test(flat) ? trimmed : undefined;
}

/**
 * Units (a CWE/CE, e.g. OBX-6) → the unit parts of a Quantity: `unit` is the sender's text
 * (CWE.2, else CWE.1); `system`/`code` are UCUM when the sender names UCUM (CWE.3 or CWE.6) or
 * the code is (or is a known spelling of) a UCUM code; a unit in another named coding system
 * keeps that system; an unknown unit without a system is kept as text only, never given a system
 * it may not belong to.
 * @param units - The units repetition, if any.
 * @param ctx - The mapping context.
 * @returns `unit`, `system`, `code` (any subset).
 */
export function quantityUnits(units: FieldRep | undefined, ctx: MappingContext): Pick<Quantity, 'unit' | 'system' | 'code'> {
  if (!units || units.isNull) {
    return {};
  }
  const code = units.get(1).trim();
  const alternate = units.get(4).trim();
  const text = units.get(2).trim() || code || units.get(5).trim() || alternate;
  if (!text) {
    return {};
  }
  for (const [c, systemName] of [
    [code, units.get(3)],
    [alternate, units.get(6)],
  ]) {
    if (c && systemName.trim() && ctx.codeSystem(systemName) === UCUM) {
      return { unit: text, system: UCUM, code: c };
    }
  }
  const systemName = units.get(3).trim();
  if (code && systemName) {
    return { unit: text, system: ctx.codeSystem(systemName), code };
  }
  const ucum = ucumCode(code);
  return ucum ? { unit: text, system: UCUM, code: ucum } : { unit: text };
}
