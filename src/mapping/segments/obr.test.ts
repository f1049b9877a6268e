import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { SegmentRef } from '../groups.ts';
import { readOrderGroups } from '../groups.ts';
import type { ResourcePlan } from '../plan.ts';
import { MappingError } from '../plan.ts';
import type { ReportParts } from './obr.ts';
import { mapDiagnosticReport, observationCategory, orderStatusFromReport, reportEffective, specimenSourceDisplay } from './obr.ts';
import { orderNumbers } from './orc.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function seg(name: string, fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return [name, ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}

function obr(fields: Record<number, string>): { obr: SegmentRef; ctx: MappingContext } {
  const message = readHl7Message(['MSH|^~\\&|LABSYS|ACMELAB|HUB|NS|20261115||ORU^R01|1|P|2.5.1', 'PID|1||1^^^NSH^MR', seg('OBR', fields)].join('\r'));
  const ref = readOrderGroups(message).patients[0].orders[0].obr;
  if (!ref) {
    throw new Error('no OBR');
  }
  return { obr: ref, ctx: new MappingContext(readMessageHeader(message), config) };
}

const PARTS: ReportParts = { patientKey: 'Patient', specimenKeys: [], resultKeys: [], resultStatuses: [], documents: [], effective: {} };

function report(fields: Record<number, string>, parts: Partial<ReportParts> = {}): ResourcePlan {
  const { obr: ref, ctx } = obr({ 1: '1', 2: 'P1^NSHORD', 3: 'F1^ACME', 4: 'BMP^Basic metabolic panel^99ACM', ...fields });
  return mapDiagnosticReport(ref, orderNumbers(undefined, ref, ctx), { ...PARTS, ...parts }, 'DiagnosticReport/x', ctx, []);
}

describe('mapDiagnosticReport', () => {
  test.each([
    ['F', 'final'],
    ['P', 'preliminary'],
    ['C', 'corrected'],
    ['X', 'cancelled'],
    ['I', 'registered'],
    ['R', 'partial'],
    ['A', 'partial'],
  ])('OBR-25 %s → %s', (code, status) => {
    expect(report({ 25: code }).resource).toMatchObject({ status });
  });

  test('without OBR-25 the status follows the results', () => {
    expect(report({}, { resultStatuses: ['final', 'corrected'] }).resource).toMatchObject({ status: 'corrected' });
    expect(report({}, { resultStatuses: ['final', 'preliminary'] }).resource).toMatchObject({ status: 'preliminary' });
    expect(report({}).resource).toMatchObject({ status: 'unknown' });
  });

  test('identifiers: placer and filler on the resource, filler first to match; code with the ConceptMap LOINC', () => {
    const plan = report({ 25: 'F' });
    expect(plan.identifiers.map((i) => i.value)).toEqual(['F1', 'P1']);
    expect(plan.resource).toMatchObject({
      identifier: [{ value: 'P1', type: { coding: [{ code: 'PLAC' }] } }, { value: 'F1', type: { coding: [{ code: 'FILL' }] } }],
      code: { coding: [{ code: 'BMP' }, { system: 'http://loinc.org', code: '51990-0' }] },
    });
  });

  test('category: OBR-24 with LAB for laboratory sections; LAB when empty; vital-signs for monitors', () => {
    const v2 = 'http://terminology.hl7.org/CodeSystem/v2-0074';
    expect(report({ 24: 'HM' }).resource).toMatchObject({ category: [{ coding: [{ system: v2, code: 'LAB' }] }, { coding: [{ system: v2, code: 'HM' }] }] });
    expect(report({ 24: 'RAD' }).resource).toMatchObject({ category: [{ coding: [{ system: v2, code: 'RAD' }] }] });
    expect(report({}).resource).toMatchObject({ category: [{ coding: [{ code: 'LAB' }] }] });
    expect(report({}, { vitalSignsOnly: true }).resource).toMatchObject({ category: [{ coding: [{ code: 'vital-signs' }] }] });
  });

  test('references, results, conclusion, interpreter (NDL) and documents with their uploads', () => {
    const plan = report(
      { 25: 'F', 32: '7731&Brandt&Elias', 34: '""' },
      {
        serviceRequestKey: 'ServiceRequest/s',
        encounterKey: 'Encounter',
        specimenKeys: ['Specimen/1'],
        resultKeys: ['Observation/1'],
        conclusion: 'Lipemic.',
        issued: '2026-11-15T09:29:55-05:00',
        documents: [{ attachment: { contentType: 'application/pdf', hash: 'h' }, upload: { contentType: 'application/pdf', data: 'JVBE', hash: 'h' }, title: 'Report' }],
      }
    );
    expect(plan.resource).toMatchObject({
      basedOn: [{ reference: 'local:ServiceRequest/s' }],
      encounter: { reference: 'local:Encounter' },
      specimen: [{ reference: 'local:Specimen/1' }],
      result: [{ reference: 'local:Observation/1' }],
      conclusion: 'Lipemic.',
      issued: '2026-11-15T09:29:55-05:00',
      resultsInterpreter: [{ reference: 'local:Practitioner/https://fhir.integration-hub.dev/sid/hl7/ACMELAB/LABSYS/PRN^7731', display: 'Elias Brandt' }],
      presentedForm: [{ contentType: 'application/pdf', hash: 'h', title: 'Report' }],
    });
    expect(plan.uploads).toEqual([{ path: 'presentedForm.0', contentType: 'application/pdf', data: 'JVBE', hash: 'h' }]);
    expect(plan.clear).toEqual(['performer']);
  });

  test('a specimen without an identifier is named by display only', () => {
    expect(report({ 15: 'SER&Serum' }, { specimenDisplay: 'Serum' }).resource).toMatchObject({ specimen: [{ display: 'Serum' }] });
    expect(specimenSourceDisplay(obr({ 1: '1', 15: 'SER&Serum' }).obr)).toBe('Serum');
  });

  test('OBR-4 missing is a data error', () => {
    expect(() => report({ 4: '' })).toThrow(MappingError);
  });
});

describe('OBR helpers', () => {
  test('effective: OBR-7 alone, or a period with OBR-8', () => {
    const single = obr({ 1: '1', 7: '20261115071500' });
    expect(reportEffective(single.obr, single.ctx)).toEqual({ effectiveDateTime: '2026-11-15T07:15:00-05:00' });
    const period = obr({ 1: '1', 7: '20261114070000', 8: '20261115070000' });
    expect(reportEffective(period.obr, period.ctx)).toEqual({ effectivePeriod: { start: '2026-11-14T07:00:00-05:00', end: '2026-11-15T07:00:00-05:00' } });
  });

  test('the status of an order first seen in a result', () => {
    expect(['F', 'C', 'X', 'P', ''].map((s) => orderStatusFromReport(obr({ 1: '1', 25: s }).obr))).toEqual(['completed', 'completed', 'revoked', 'active', 'active']);
  });

  test('observation category: section, vital-sign LOINC codes, else laboratory', () => {
    const code = (c: string) => ({ coding: [{ system: 'http://loinc.org', code: c }] });
    expect(observationCategory(obr({ 1: '1', 24: 'RAD' }).obr, code('1-1'))[0].coding?.[0].code).toBe('imaging');
    expect(observationCategory(obr({ 1: '1' }).obr, code('8867-4'))[0].coding?.[0].code).toBe('vital-signs');
    expect(observationCategory(obr({ 1: '1', 24: 'CH' }).obr, code('2345-7'))[0].coding?.[0].code).toBe('laboratory');
  });
});
