import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { OrderGroup } from '../groups.ts';
import { readOrderGroups } from '../groups.ts';
import type { ResourcePlan } from '../plan.ts';
import { MappingError } from '../plan.ts';
import { mapServiceRequest, orderNumbers, orderStatus } from './orc.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function seg(name: string, fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return [name, ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}

function order(...segments: string[]): { order: OrderGroup; ctx: MappingContext } {
  const message = readHl7Message(['MSH|^~\\&|NSEHR|NORTHSIDE|LABSYS|ACMELAB|20261114||ORM^O01|1|P|2.5.1', 'PID|1||1^^^NSH^MR', ...segments].join('\r'));
  return { order: readOrderGroups(message).patients[0].orders[0], ctx: new MappingContext(readMessageHeader(message), config) };
}

describe('orderNumbers', () => {
  test("OBR's numbers win; ORC's are used when OBR's are empty", () => {
    const { order: o, ctx } = order('ORC|RE|ORC-P^NSHORD|ORC-F^ACME', 'OBR|1||OBR-F^ACME|X');
    expect(orderNumbers(o.orc, o.obr, ctx)).toEqual({
      placer: { system: 'https://northside.example.org/fhir/sid/placer-order', value: 'ORC-P', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC' }] } },
      filler: { system: 'https://acmelab.example.com/fhir/sid/filler-order', value: 'OBR-F', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'FILL' }] } },
    });
  });

  test('a number without an assigning authority is scoped to the sender', () => {
    const { order: o, ctx } = order('OBR|1|12345||X');
    expect(orderNumbers(o.orc, o.obr, ctx).placer?.system).toBe('https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/NSEHR/PLAC');
  });

  test('no number at all (or only "") is a data error at OBR-3', () => {
    const { order: o, ctx } = order('ORC|NW|""', 'OBR|1|||X');
    expect(() => orderNumbers(o.orc, o.obr, ctx)).toThrow(MappingError);
    try {
      orderNumbers(o.orc, o.obr, ctx);
    } catch (err) {
      expect((err as MappingError).issue).toMatchObject({ code: '101', location: { segment: 'OBR', sequence: 1, field: 3 } });
    }
  });
});

describe('orderStatus', () => {
  test.each([
    ['NW', '', 'active'],
    ['CA', '', 'revoked'],
    ['OC', 'CA', 'revoked'],
    ['DC', '', 'revoked'],
    ['HD', '', 'on-hold'],
    ['XO', '', 'active'],
    ['XO', 'HD', 'on-hold'],
    ['SC', 'CM', 'completed'],
    ['SC', 'IP', 'active'],
    ['SC', 'ER', 'entered-in-error'],
    ['SC', '', undefined],
    ['RE', 'CM', 'completed'],
  ])('ORC-1 %s, ORC-5 %s → %s', (control, status, expected) => {
    const { order: o } = order(`ORC|${control}|P1^NSHORD|||${status}`);
    expect(orderStatus(o.orc)).toBe(expected);
  });
});

describe('mapServiceRequest', () => {
  test('an order message: overlay, placer first, requisition, timing, requester, reasons, notes', () => {
    const { order: o, ctx } = order(
      seg('ORC', { 1: 'NW', 2: 'P1^NSHORD', 4: 'G1^NSHORD', 9: '20261114163000', 12: '1234567890^Lindqvist^Maren^^^^^^NPI' }),
      seg('TQ1', { 1: '1', 7: '20261115070000', 9: 'S' }),
      seg('OBR', { 1: '1', 2: 'P1^NSHORD', 4: '4548-4^HbA1c^LN', 31: 'R73.09^Abnormal glucose^I10' }),
      'NTE|1|P|Fasting',
      'DG1|1||E11.9^Type 2 diabetes^I10'
    );
    const plans: ResourcePlan[] = [];
    const numbers = orderNumbers(o.orc, o.obr, ctx);
    const plan = mapServiceRequest(o, numbers, 'order', { patientKey: 'Patient', encounterKey: 'Encounter', specimenKeys: ['Specimen/S'] }, ctx, plans);
    expect(plan).toMatchObject({ key: 'ServiceRequest/https://northside.example.org/fhir/sid/placer-order^P1', merge: 'overlay' });
    expect(plan.defaultsOnly).toBeUndefined();
    expect(plan.resource).toMatchObject({
      status: 'active',
      intent: 'order',
      requisition: { value: 'G1', type: { coding: [{ code: 'PGN' }] } },
      code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
      priority: 'stat',
      occurrenceDateTime: '2026-11-15T07:00:00-06:00',
      authoredOn: '2026-11-14T16:30:00-06:00',
      requester: { reference: 'local:Practitioner/http://hl7.org/fhir/sid/us-npi^1234567890' },
      note: [{ text: 'Fasting' }],
      encounter: { reference: 'local:Encounter' },
      specimen: [{ reference: 'local:Specimen/S' }],
    });
    expect(plan.resource.reasonCode?.map((r) => r.coding?.[0].code)).toEqual(['R73.09', 'E11.9']);
    expect(plans.map((p) => p.key)).toEqual(['Practitioner/http://hl7.org/fhir/sid/us-npi^1234567890']);
  });

  test('a cancel (ORC alone): revoked; authoredOn only a default; "" requester cleared', () => {
    const { order: o, ctx } = order(seg('ORC', { 1: 'CA', 2: 'P1^NSHORD', 9: '20261114180000', 12: '""' }));
    const plan = mapServiceRequest(o, orderNumbers(o.orc, o.obr, ctx), 'order', { patientKey: 'Patient' }, ctx, []);
    expect(plan.resource.status).toBe('revoked');
    expect(plan.resource.code).toBeUndefined();
    expect(plan.defaultsOnly).toEqual(['authoredOn']);
    expect(plan.clear).toEqual(['requester']);
  });

  test('a status change without ORC-5 states no status', () => {
    const { order: o, ctx } = order(seg('ORC', { 1: 'SC', 2: 'P1^NSHORD' }));
    expect(mapServiceRequest(o, orderNumbers(o.orc, o.obr, ctx), 'order', { patientKey: 'Patient' }, ctx, []).defaultsOnly).toEqual(['status']);
  });

  test('an order seen first in a result: fill, keyed by the filler number, no notes', () => {
    const { order: o, ctx } = order('ORC|RE|P1^NSHORD|F1^ACME', 'OBR|1|P1^NSHORD|F1^ACME|K^Potassium^99ACM', 'NTE|1|L|lab comment');
    const plan = mapServiceRequest(o, orderNumbers(o.orc, o.obr, ctx), 'result', { patientKey: 'Patient', defaultStatus: 'completed' }, ctx, []);
    expect(plan).toMatchObject({ key: 'ServiceRequest/https://acmelab.example.com/fhir/sid/filler-order^F1', merge: 'fill' });
    expect(plan.identifiers.map((i) => i.value)).toEqual(['P1', 'F1']);
    expect(plan.resource.status).toBe('completed');
    expect(plan.resource.note).toBeUndefined();
  });
});
