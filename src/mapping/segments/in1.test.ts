import type { Hl7Segment } from '@medplum/core';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { mapCoverage } from './in1.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const PATIENT = { key: 'Patient', identifier: { system: 'https://northside.example.org/fhir/sid/mrn', value: '100234' }, token: 'https://northside.example.org/fhir/sid/mrn^100234' };
const PAYER_SYSTEM = 'https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/ADTSYS/id';

/** IN1 with the given fields set (1-based positions), so tests do not count pipes. */
function in1(fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return ['IN1', ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}

function coverage(segment: string, plans: ResourcePlan[] = []): { plan: ReturnType<typeof mapCoverage>; ctx: MappingContext; plans: ResourcePlan[] } {
  const message = readHl7Message(`MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261105141000||ADT^A01|1|P|2.5.1\r${segment}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  return { plan: mapCoverage(message.segments[1] as Hl7Segment, ctx, PATIENT, 1, plans), ctx, plans };
}

describe('mapCoverage', () => {
  test('patient + company id + policy number key; payor Organization; plan and group classes; period; order', () => {
    const { plan, plans } = coverage(
      in1({ 1: '1', 2: 'BCPPO^Blue Choice PPO', 3: 'BCBSIL01', 4: 'Blue Cross', 8: 'GRP7', 9: 'Acme', 12: '20260101', 13: '20261231', 15: 'PPO', 17: 'SEL', 22: '1', 36: 'XYZ88' })
    );
    expect(plan?.identifiers).toEqual([{ system: 'https://fhir.integration-hub.dev/sid/coverage', value: `${PATIENT.token}^${PAYER_SYSTEM}^BCBSIL01^XYZ88` }]);
    expect(plans.map((p) => p.resource)).toEqual([{ resourceType: 'Organization', identifier: [{ system: PAYER_SYSTEM, value: 'BCBSIL01' }], name: 'Blue Cross' }]);
    expect(plan?.resource).toMatchObject({
      status: 'active',
      beneficiary: { reference: 'local:Patient' },
      payor: [{ reference: `local:Organization/${PAYER_SYSTEM}^BCBSIL01`, display: 'Blue Cross' }],
      subscriber: { reference: 'local:Patient' },
      relationship: {
        coding: [
          { system: 'http://terminology.hl7.org/CodeSystem/subscriber-relationship', code: 'self' },
          { system: 'http://terminology.hl7.org/CodeSystem/v2-0063', code: 'SEL' },
        ],
      },
      subscriberId: 'XYZ88',
      period: { start: '2026-01-01', end: '2026-12-31' },
      class: [
        { type: { coding: [{ code: 'plan' }] }, value: 'BCPPO', name: 'Blue Choice PPO' },
        { type: { coding: [{ code: 'group' }] }, value: 'GRP7', name: 'Acme' },
      ],
      order: 1,
    });
  });

  test('family members under one policy number have a Coverage each', () => {
    const segment = in1({ 1: '1', 3: 'AETNA', 16: 'KOWALSKI^PIOTR', 17: 'CHD', 36: 'W22' });
    const message = readHl7Message(`MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261105141000||ADT^A01|1|P|2.5.1\r${segment}`);
    const ctx = new MappingContext(readMessageHeader(message), config);
    const sibling = { key: 'Patient', identifier: { ...PATIENT.identifier, value: '100235' }, token: 'https://northside.example.org/fhir/sid/mrn^100235' };
    const first = mapCoverage(message.segments[1] as Hl7Segment, ctx, PATIENT, 1, []);
    const second = mapCoverage(message.segments[1] as Hl7Segment, ctx, sibling, 1, []);
    expect(first?.identifiers[0].value).not.toBe(second?.identifiers[0].value);
    expect([first?.resource.subscriberId, second?.resource.subscriberId]).toEqual(['W22', 'W22']);
  });

  test('without a policy number: keyed by patient + company + plan', () => {
    const { plan } = coverage(in1({ 1: '1', 2: 'ILMCD', 3: 'ILHFS', 4: 'Illinois HFS' }));
    expect(plan?.identifiers[0]).toEqual({
      system: 'https://fhir.integration-hub.dev/sid/coverage-plan',
      value: `https://northside.example.org/fhir/sid/mrn^100234^${PAYER_SYSTEM}^ILHFS^ILMCD`,
    });
  });

  test('a subscriber other than the patient is the RelatedPerson an NK1 with the same relationship and name would be', () => {
    const { plan, plans } = coverage(in1({ 1: '1', 3: 'AETNA', 4: 'Aetna', 16: 'KOWALSKI^PIOTR', 17: 'SPO^Spouse^HL70063', 18: '19660923', 36: 'W22', 43: 'M' }));
    const identity = { key: 'RelatedPerson/SPO/KOWALSKI^PIOTR' };
    expect(plan?.resource.subscriber).toEqual({ reference: `local:${identity.key}` });
    const person = plans.find((p) => p.key === identity.key);
    expect(person?.merge).toBe('fill');
    expect(person?.resource).toMatchObject({ resourceType: 'RelatedPerson', gender: 'male', birthDate: '1966-09-23', patient: { reference: 'local:Patient' } });
    expect(plan?.resource.relationship?.coding?.[0]).toEqual({ system: 'http://terminology.hl7.org/CodeSystem/subscriber-relationship', code: 'spouse' });
  });

  test('an NK1 already planned for the subscriber is reused, not replaced', () => {
    const existing: ResourcePlan = { key: 'RelatedPerson/SPO/KOWALSKI^PIOTR', resource: { resourceType: 'RelatedPerson', patient: { reference: 'local:Patient' } }, identifiers: [], merge: 'overlay' };
    const { plans } = coverage(in1({ 1: '1', 3: 'AETNA', 16: 'KOWALSKI^PIOTR', 17: 'SPO', 36: 'W22' }), [existing]);
    expect(plans.filter((p) => p.resource.resourceType === 'RelatedPerson')).toEqual([existing]);
  });

  test('X12 relationship codes: 18 self, 19 child, 01 spouse', () => {
    const self = coverage(in1({ 1: '1', 3: 'ILHFS', 17: '18', 36: '77' })).plan;
    expect(self?.resource.subscriber).toEqual({ reference: 'local:Patient' });
    const child = coverage(in1({ 1: '1', 3: 'ILHFS', 16: 'DOE^JANE', 17: '19', 36: '78' })).plan;
    expect(child?.resource.relationship?.coding?.[0].code).toBe('child');
  });

  test('no company id, name or plan: dropped with a warning; a name alone is a display-only payor', () => {
    const none = coverage(in1({ 1: '1', 36: 'XYZ' }));
    expect(none.plan).toBeUndefined();
    expect(none.ctx.warnings[0]).toMatchObject({ code: '101', location: { segment: 'IN1', sequence: 1, field: 3 } });
    const nameOnly = coverage(in1({ 1: '1', 2: 'PLAN1', 4: 'Small Mutual' }));
    expect(nameOnly.plan?.resource.payor).toEqual([{ display: 'Small Mutual' }]);
    expect(nameOnly.plans).toEqual([]);
  });
});
