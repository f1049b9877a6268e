import { describe, expect, test } from 'vitest';
import { FieldRep } from '../../hl7/fields.ts';
import { interpretations, referenceRange } from './obx-interpretation.ts';

const rep = (...parts: string[]): FieldRep => new FieldRep(parts.map((p) => [p]));
const mg = { unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' };

describe('interpretations', () => {
  test('table 0078 flags become v3 ObservationInterpretation codes', () => {
    expect(interpretations([rep('HH'), rep('h'), rep('POS', 'Positive')])).toEqual([
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'HH', display: 'Critical high' }] },
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'H', display: 'High' }] },
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'POS', display: 'Positive' }], text: 'Positive' },
    ]);
  });

  test('flags without a v3 equivalent keep the v2-0078 system; empty and "" flags are skipped', () => {
    expect(interpretations([rep('TOX'), rep(''), new FieldRep([], true)])).toEqual([
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0078', code: 'TOX' }] },
    ]);
  });
});

describe('referenceRange', () => {
  test('low-high', () => {
    expect(referenceRange(rep('70 - 99'), mg)).toEqual({ low: { value: 70, ...mg }, high: { value: 99, ...mg }, text: '70 - 99' });
    expect(referenceRange(rep('-2.0-2.0'), {})).toEqual({ low: { value: -2 }, high: { value: 2 }, text: '-2.0-2.0' });
  });

  test('upper and lower limits', () => {
    expect(referenceRange(rep('<200'), mg)).toEqual({ high: { value: 200, ...mg }, text: '<200' });
    expect(referenceRange(rep('>= 40'), mg)).toEqual({ low: { value: 40, ...mg }, text: '>= 40' });
  });

  test('anything else is kept as text', () => {
    expect(referenceRange(rep('Negative'), mg)).toEqual({ text: 'Negative' });
    expect(referenceRange(rep('<1:40'), {})).toEqual({ text: '<1:40' });
  });

  test('a range with an unescaped component separator keeps its text', () => {
    expect(referenceRange(new FieldRep([['3.5'], ['5.0 (adult)']]), {})).toEqual({ text: '3.5^5.0 (adult)' });
  });

  test('empty and "" ranges', () => {
    expect(referenceRange(undefined, mg)).toBeUndefined();
    expect(referenceRange(new FieldRep([], true), mg)).toBeUndefined();
  });
});
