import type { Observation } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { readOrderGroups } from '../groups.ts';
import type { ResourcePlan } from '../plan.ts';
import { MappingError } from '../plan.ts';
import type { MappedObservation, ObservationContext } from './obx.ts';
import { groupObservations, mapObservation } from './obx.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const LAB = [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }];

/** Maps every OBX result of the message's first order group. */
function map(segments: string[], octx: Partial<ObservationContext> = {}): { results: MappedObservation[]; plans: ResourcePlan[]; ctx: MappingContext } {
  const message = readHl7Message(['MSH|^~\\&|LABSYS|ACMELAB|HUB|NS|20261115||ORU^R01|1|P|2.5.1', 'PID|1||1^^^NSH^MR', 'OBR|1||F1^ACME|X', ...segments].join('\r'));
  const ctx = new MappingContext(readMessageHeader(message), config);
  const order = readOrderGroups(message).patients[0].orders[0];
  const plans: ResourcePlan[] = [];
  const seen = new Map<string, number>();
  const base: ObservationContext = { orderToken: 'ORDER', patientKey: 'Patient', category: () => LAB, effective: { effectiveDateTime: '2026-11-15' }, ...octx };
  const results = groupObservations(order.observations)
    .map((parts) => mapObservation(parts, base, ctx, plans, seen))
    .filter((r): r is MappedObservation => r !== undefined);
  return { results, plans, ctx };
}

/** An OBX segment from its fields by number. */
function obx(fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return ['OBX', ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}

function observation(result: MappedObservation | undefined): ResourcePlan<Observation> {
  if (result?.kind !== 'observation') {
    throw new Error('not an observation');
  }
  return result.plan;
}

describe('mapObservation', () => {
  test('identity is order + OBX-3 + OBX-4: preliminary and corrected results get the same identifier', () => {
    const p = observation(map(['OBX|1|NM|HGB^Hemoglobin^99ACM|1|13.1|g/dL||N|||P']).results[0]);
    const c = observation(map(['OBX|7|NM|HGB^Hemoglobin^99ACM|1|11.4|g/dL||L|||C']).results[0]);
    expect(p.identifiers).toEqual(c.identifiers);
    expect(p.identifiers[0]).toEqual({
      system: 'https://fhir.integration-hub.dev/sid/observation',
      value: 'ORDER^https://fhir.integration-hub.dev/sid/local/ACMELAB/LABSYS/99ACM^HGB^1',
    });
    expect([p.resource.status, c.resource.status]).toEqual(['preliminary', 'corrected']);
    expect(c.resource.code.coding?.[1]).toMatchObject({ system: 'http://loinc.org', code: '718-7' });
  });

  test('a value clears the other value[x] choices and a data-absent reason a cancelled result left', () => {
    const plan = observation(map([obx({ 1: '1', 2: 'ST', 3: 'X^Note^L', 5: 'pending', 11: 'F' })]).results[0]);
    expect(plan.resource.valueString).toBe('pending');
    expect(plan.clear).toContain('valueQuantity');
    expect(plan.clear).toContain('dataAbsentReason');
    expect(plan.clear).not.toContain('valueString');
  });

  test('X (cannot be obtained) → cancelled with a data-absent reason and no value', () => {
    const plan = observation(map([obx({ 1: '1', 2: 'NM', 3: 'K^Potassium^99ACM', 5: '4.1', 6: 'mmol/L', 11: 'X' })]).results[0]);
    expect(plan.resource.status).toBe('cancelled');
    expect(plan.resource.valueQuantity).toBeUndefined();
    expect(plan.resource.dataAbsentReason?.coding?.[0].code).toBe('not-performed');
    expect(plan.clear).toContain('valueQuantity');
  });

  test.each([
    ['D', 'entered-in-error'],
    ['W', 'entered-in-error'],
    ['I', 'registered'],
    ['R', 'preliminary'],
    ['F', 'final'],
  ])('OBX-11 %s → %s', (code, status) => {
    expect(observation(map([obx({ 1: '1', 2: 'NM', 3: 'K^K^L', 5: '4', 11: code })]).results[0]).resource.status).toBe(status);
  });

  test('an empty OBX-11 takes the status OBR-25 implies', () => {
    expect(observation(map(['OBX|1|NM|K^K^L||4'], { defaultStatus: 'preliminary' }).results[0]).resource.status).toBe('preliminary');
  });

  test('consecutive text OBX with the same code and sub-id are one result, blank lines kept', () => {
    const { results } = map([
      obx({ 1: '1', 2: 'TX', 3: 'GROSS^Gross^L', 5: 'First line.', 11: 'F' }),
      obx({ 1: '2', 2: 'TX', 3: 'GROSS^Gross^L', 11: 'F' }),
      obx({ 1: '3', 2: 'TX', 3: 'GROSS^Gross^L', 5: 'Third line.', 11: 'F' }),
      'NTE|1||n',
    ]);
    expect(results).toHaveLength(1);
    expect(observation(results[0]).resource.valueString).toBe('First line.\n\nThird line.');
    expect(observation(results[0]).resource.note).toEqual([{ text: 'n' }]);
  });

  test('the same code and sub-id repeated (not text) → distinct identities by occurrence', () => {
    const { results } = map([obx({ 1: '1', 2: 'NM', 3: 'K^K^L', 5: '4' }), obx({ 1: '2', 2: 'NM', 3: 'K^K^L', 5: '5' })]);
    const values = results.map((r) => observation(r).identifiers[0].value);
    expect(values[1]).toBe(`${values[0]}^#2`);
  });

  test('OBX-14, else the OBR effective time; notes; method; device display; OBX-7/OBX-8 nulls clear', () => {
    const plan = observation(
      map([
        obx({ 1: '1', 2: 'NM', 3: 'K^K^L', 5: '4', 6: 'mmol/L', 7: '""', 8: '""', 11: 'F', 14: '202611150730', 17: 'AUTO^Automated^L', 18: 'MX-1^ROCHE' }),
        'NTE|1|L|Checked \\T\\ confirmed',
      ]).results[0]
    );
    expect(plan.resource.effectiveDateTime).toBe('2026-11-15T07:30:00-05:00');
    expect(plan.resource.note).toEqual([{ text: 'Checked & confirmed' }]);
    expect(plan.resource.method?.text).toBe('Automated');
    expect(plan.resource.device).toEqual({ display: 'MX-1 (ROCHE)' });
    expect(plan.clear).toEqual(expect.arrayContaining(['referenceRange', 'interpretation']));
    expect(observation(map(['OBX|1|NM|K^K^L||4']).results[0]).resource.effectiveDateTime).toBe('2026-11-15');
  });

  test('performers: OBX-16/25 practitioners, OBX-23 organization with an identifier, else OBX-15 name', () => {
    const { results, plans } = map([
      obx({ 1: '1', 2: 'NM', 3: 'K^K^L', 5: '4', 16: '1629071234^Moreau^Celine^^^^^^NPI', 23: 'Acme Lab^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^34D0655059' }),
      obx({ 1: '2', 2: 'NM', 3: 'NA^Na^L', 5: '140', 15: 'LAB1^Acme Reference Lab^CLIA' }),
    ]);
    expect(observation(results[0]).resource.performer).toEqual([
      { reference: 'local:Practitioner/http://hl7.org/fhir/sid/us-npi^1629071234', display: 'Celine Moreau' },
      { reference: 'local:Organization/urn:oid:2.16.840.1.113883.4.7^34D0655059', display: 'Acme Lab' },
    ]);
    expect(observation(results[1]).resource.performer).toEqual([{ display: 'Acme Reference Lab' }]);
    expect(plans.map((p) => p.resource.resourceType).sort()).toEqual(['Organization', 'Practitioner']);
  });

  test('specimen observations have the Specimen as focus and specimen; a shared one as specimen', () => {
    const spm = observation(map(['OBX|1|NM|VOL^Volume^L||5'], { specimen: { key: 'Specimen/S', token: 'S' } }).results[0]);
    expect(spm.resource.focus).toEqual([{ reference: 'local:Specimen/S' }]);
    expect(spm.identifiers[0].value).toMatch(/\^S$/);
    const shared = observation(map(['OBX|1|NM|K^K^L||4'], { specimenKey: 'Specimen/S' }).results[0]);
    expect([shared.resource.focus, shared.resource.specimen]).toEqual([undefined, { reference: 'local:Specimen/S' }]);
  });

  test('ED → a document for the report, titled by OBX-3', () => {
    const [result] = map([obx({ 1: '1', 2: 'ED', 3: 'PDF^Lab report^L', 5: '^AP^PDF^Base64^JVBERi0=', 11: 'F', 14: '202611151400' })]).results;
    expect(result).toMatchObject({ kind: 'documents', title: 'Lab report', creation: '2026-11-15T14:00:00-05:00' });
  });

  test('OBX-3 missing is a data error', () => {
    expect(() => map(['OBX|1|NM|||4'])).toThrow(MappingError);
  });
});
