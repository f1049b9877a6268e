import type { CodeableConcept, Coding, ObservationReferenceRange, Quantity } from '@medplum/fhirtypes';
import type { FieldRep } from '../../hl7/fields.ts';

const V3_INTERPRETATION = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const V2_0078 = 'http://terminology.hl7.org/CodeSystem/v2-0078';

/**
 * HL7 table 0078 abnormal flags with a v3 ObservationInterpretation equivalent (IG
 * InterpretationCodes map: same code, v3 system).
 */
const INTERPRETATIONS: Record<string, string> = {
  '<': 'Off scale low',
  '>': 'Off scale high',
  A: 'Abnormal',
  AA: 'Critical abnormal',
  B: 'Better',
  CAR: 'Carrier',
  D: 'Significant change down',
  DET: 'Detected',
  E: 'Equivocal',
  EX: 'outside threshold',
  EXP: 'Expected',
  H: 'High',
  HH: 'Critical high',
  HU: 'Significantly high',
  I: 'Intermediate',
  IE: 'Insufficient evidence',
  IND: 'Indeterminate',
  L: 'Low',
  LL: 'Critical low',
  LU: 'Significantly low',
  MS: 'moderately susceptible',
  N: 'Normal',
  NCL: 'No CLSI defined breakpoint',
  ND: 'Not detected',
  NEG: 'Negative',
  NR: 'Non-reactive',
  NS: 'Non-susceptible',
  POS: 'Positive',
  R: 'Resistant',
  RR: 'Reactive',
  S: 'Susceptible',
  SDD: 'Susceptible-dose dependent',
  'SYN-R': 'Synergy - resistant',
  'SYN-S': 'Synergy - susceptible',
  U: 'Significant change up',
  UNE: 'Unexpected',
  VS: 'very susceptible',
  W: 'Worse',
  WR: 'Weakly reactive',
};

/**
 * OBX-8 abnormal flags → Observation.interpretation (IG InterpretationCodes map): each flag with
 * a v3 ObservationInterpretation equivalent becomes that coding; a flag without one (AC, HM, QCF,
 * TOX, local flags) keeps the v2-0078 system so it is not lost.
 * @param flags - The OBX-8 repetitions.
 * @returns One concept per flag.
 */
export function interpretations(flags: readonly FieldRep[]): CodeableConcept[] {
  const result: CodeableConcept[] = [];
  for (const flag of flags) {
    const code = flag.get(1).trim();
    if (!code || flag.isNull) {
      continue;
    }
    const display = INTERPRETATIONS[code] ?? INTERPRETATIONS[code.toUpperCase()];
    const coding: Coding = display
      ? { system: V3_INTERPRETATION, code: INTERPRETATIONS[code] ? code : code.toUpperCase(), display }
      : { system: V2_0078, code };
    const text = flag.get(2).trim();
    result.push({ coding: [coding], ...(text ? { text } : {}) });
  }
  return result;
}

const NUMBER = '([+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+))';
const BETWEEN = new RegExp(`^${NUMBER}\\s*(?:-|–|to)\\s*${NUMBER}$`, 'i');
const BELOW = new RegExp(`^(?:<|<=|≤)\\s*${NUMBER}$`);
const ABOVE = new RegExp(`^(?:>|>=|≥)\\s*${NUMBER}$`);

/**
 * OBX-7 reference range → Observation.referenceRange (IG: OBX-7 → referenceRange.text). The text
 * is always kept; a numeric range is also read into low/high with the result's units:
 * `3.5-5.0` (low and high), `<10` / `<=10` (high), `>60` / `>=60` (low).
 * @param range - OBX-7 (the first repetition; components rejoined).
 * @param unit - The result's units (OBX-6).
 * @returns The reference range, or undefined when empty.
 */
export function referenceRange(range: FieldRep | undefined, unit: Pick<Quantity, 'unit' | 'system' | 'code'>): ObservationReferenceRange | undefined {
  if (!range || range.isNull) {
    return undefined;
  }
  const text = range.components
    .map((c) => c.join('&'))
    .join('^')
    .replace(/\^+$/, '')
    .trim();
  if (!text) {
    return undefined;
  }
  const quantity = (n: string): Quantity => ({ value: Number(n), ...unit });
  const between = BETWEEN.exec(text);
  if (between) {
    return { low: quantity(between[1]), high: quantity(between[2]), text };
  }
  const below = BELOW.exec(text);
  if (below) {
    return { high: quantity(below[1]), text };
  }
  const above = ABOVE.exec(text);
  if (above) {
    return { low: quantity(above[1]), text };
  }
  return { text };
}
