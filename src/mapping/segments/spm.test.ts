import type { Specimen } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { SpecimenGroup } from '../groups.ts';
import { readOrderGroups } from '../groups.ts';
import type { ResourcePlan } from '../plan.ts';
import { mapSpecimen } from './spm.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function seg(name: string, fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return [name, ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}

function specimens(...segments: string[]): { groups: SpecimenGroup[]; ctx: MappingContext } {
  const message = readHl7Message(['MSH|^~\\&|LABSYS|ACMELAB|HUB|NS|20261115||ORU^R01|1|P|2.5.1', 'PID|1||1^^^NSH^MR', 'OBR|1||F1^ACME|X', ...segments].join('\r'));
  return { groups: readOrderGroups(message).patients[0].orders[0].specimens, ctx: new MappingContext(readMessageHeader(message), config) };
}

const REFS = { patientKey: 'Patient', serviceRequestKey: 'ServiceRequest/1', orderToken: 'ORDER' };

describe('mapSpecimen', () => {
  test('SPM → Specimen: ids, type, collection, received, condition, container, notes', () => {
    const { groups, ctx } = specimens(
      seg('SPM', {
        1: '1',
        2: 'NS-1&NSHORD^S-1&ACME',
        4: 'SER^Serum^HL70487',
        7: 'VENIP^Venipuncture^HL70488',
        8: 'LACF^Antecubital fossa, left^HL70163',
        12: '5^mL',
        14: 'Drawn after dialysis',
        17: '20261115071500',
        18: '20261115081203',
        20: 'Y',
        24: 'HEM^Hemolyzed^HL70493',
        27: 'SST^Serum separator tube^L',
      }),
      'NTE|1||Label checked'
    );
    const plans: ResourcePlan[] = [];
    const key = mapSpecimen(groups[0], REFS, ctx, plans);
    expect(key).toEqual({ key: 'Specimen/https://acmelab.example.com/fhir/sid/filler-order^S-1', token: 'https://acmelab.example.com/fhir/sid/filler-order^S-1' });
    const plan = plans[0] as ResourcePlan<Specimen>;
    expect(plan.identifiers.map((i) => i.value)).toEqual(['S-1', 'NS-1']);
    expect(plan.merge).toBe('overlay');
    expect(plan.resource).toMatchObject({
      identifier: [{ value: 'NS-1', type: { coding: [{ code: 'PLAC' }] } }, { value: 'S-1', type: { coding: [{ code: 'FILL' }] } }],
      status: 'available',
      type: { coding: [{ code: 'SER' }] },
      subject: { reference: 'local:Patient' },
      receivedTime: '2026-11-15T08:12:03-05:00',
      request: [{ reference: 'local:ServiceRequest/1' }],
      collection: {
        collectedDateTime: '2026-11-15T07:15:00-05:00',
        quantity: { value: 5, unit: 'mL', system: 'http://unitsofmeasure.org', code: 'mL' },
        method: { coding: [{ code: 'VENIP' }] },
        bodySite: { coding: [{ code: 'LACF' }] },
      },
      condition: [{ coding: [{ code: 'HEM' }] }],
      container: [{ type: { text: 'Serum separator tube' } }],
      note: [{ text: 'Drawn after dialysis' }, { text: 'Label checked' }],
    });
  });

  test('a collection range → collectedPeriod', () => {
    const { groups, ctx } = specimens(seg('SPM', { 1: '1', 2: '^S-2&ACME', 4: 'UR', 17: '20261114070000^20261115070000' }));
    const plans: ResourcePlan[] = [];
    mapSpecimen(groups[0], REFS, ctx, plans);
    expect((plans[0].resource as Specimen).collection).toEqual({
      collectedPeriod: { start: '2026-11-14T07:00:00-05:00', end: '2026-11-15T07:00:00-05:00' },
    });
  });

  test('without any id: keyed by order, type and collection time (stable across re-sends)', () => {
    const { groups, ctx } = specimens(seg('SPM', { 1: '1', 4: 'BLD^Whole blood^HL70487', 17: '20261115071500' }));
    const plans: ResourcePlan[] = [];
    mapSpecimen(groups[0], REFS, ctx, plans);
    expect(plans[0].identifiers).toEqual([
      {
        system: 'https://fhir.integration-hub.dev/sid/specimen',
        value: 'ORDER^http://terminology.hl7.org/CodeSystem/v2-0487^BLD^2026-11-15T07:15:00-05:00',
      },
    ]);
    expect((plans[0].resource as Specimen).identifier).toEqual(plans[0].identifiers);
  });

  test('the same specimen for a second order is one Specimen requested by both', () => {
    const { groups, ctx } = specimens(seg('SPM', { 1: '1', 2: '^S-3&ACME', 4: 'SER' }));
    const plans: ResourcePlan[] = [];
    const first = mapSpecimen(groups[0], REFS, ctx, plans);
    const second = mapSpecimen(groups[0], { ...REFS, serviceRequestKey: 'ServiceRequest/2' }, ctx, plans);
    expect(second).toEqual(first);
    expect(plans).toHaveLength(1);
    expect((plans[0].resource as Specimen).request?.map((r) => r.reference)).toEqual(['local:ServiceRequest/1', 'local:ServiceRequest/2']);
  });
});
