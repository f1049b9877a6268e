import { describe, expect, test } from 'vitest';
import { FieldRep } from '../../hl7/fields.ts';
import { MappingContext } from '../context.ts';
import { quantityUnits, UCUM, ucumCode } from './units.ts';

const ctx = new MappingContext({
  sendingApplication: 'LABSYS',
  sendingFacility: 'ACMELAB',
  receivingApplication: '',
  receivingFacility: '',
  dateTime: '',
  messageCode: 'ORU',
  triggerEvent: 'R01',
  messageStructure: '',
  controlId: '1',
  processingId: 'P',
  version: '2.5.1',
  characterSet: '',
});
const cwe = (...parts: string[]): FieldRep => new FieldRep(parts.map((p) => [p]));

describe('ucumCode', () => {
  test.each(['mg/dL', 'mmol/L', '10*3/uL', '/min', 'mm[Hg]', '%', 'Cel', 'kg/m2', 'mL/min/{1.73_m2}', 'fL', 'U/L', '[IU]/L', 'g/(24.h)', '{CFU}/mL', '/[HPF]', 'ms', '1'])(
    '%s is UCUM',
    (unit) => expect(ucumCode(unit)).toBe(unit)
  );

  test.each([
    ['bpm', '/min'],
    ['mmHg', 'mm[Hg]'],
    ['mEq/L', 'meq/L'],
    ['K/uL', '10*3/uL'],
    ['mIU/L', 'm[IU]/L'],
    ['degC', 'Cel'],
  ])('the common spelling %s means UCUM %s', (unit, code) => expect(ucumCode(unit)).toBe(code));

  test.each(['cells/uL', 'MG/dl', 'ratio', 'mg//dL', 'g/(24.h', 'mL/', 'hours', ''])('%s is not UCUM', (unit) => expect(ucumCode(unit)).toBeUndefined());
  test.each([
    ['ML', 'mL'],
    ['MG/DL', 'mg/dL'],
    ['MMOL/L', 'mmol/L'],
  ])('the upper-case spelling %s of older lab systems means %s', (unit, code) => expect(ucumCode(unit)).toBe(code));
});

describe('quantityUnits', () => {
  test('UCUM named by the sender, with its display', () => {
    expect(quantityUnits(cwe('mm[Hg]', 'mmHg', 'UCUM'), ctx)).toEqual({ unit: 'mmHg', system: UCUM, code: 'mm[Hg]' });
  });

  test('UCUM named in the alternate triplet', () => {
    expect(quantityUnits(cwe('MGDL', 'mg/dL', 'L', 'mg/dL', 'milligram per deciliter', 'UCUM'), ctx)).toEqual({ unit: 'mg/dL', system: UCUM, code: 'mg/dL' });
  });

  test('a unit without a system that is UCUM (or a known spelling of it)', () => {
    expect(quantityUnits(cwe('bpm'), ctx)).toEqual({ unit: 'bpm', system: UCUM, code: '/min' });
  });

  test('a unit in a named local system keeps that system', () => {
    expect(quantityUnits(cwe('CNT', 'count', '99ACM'), ctx)).toEqual({
      unit: 'count',
      system: 'https://fhir.integration-hub.dev/sid/local/ACMELAB/LABSYS/99ACM',
      code: 'CNT',
    });
  });

  test('an unknown unit without a system is text only', () => {
    expect(quantityUnits(cwe('cells/uL'), ctx)).toEqual({ unit: 'cells/uL' });
  });

  test('empty and "" units', () => {
    expect(quantityUnits(undefined, ctx)).toEqual({});
    expect(quantityUnits(new FieldRep([], true), ctx)).toEqual({});
  });
});
