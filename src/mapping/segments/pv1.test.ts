import type { Encounter } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import type { EncounterOptions } from './pv1.ts';
import { mapEncounter } from './pv1.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const PATIENT = { system: 'https://northside.example.org/fhir/sid/mrn', value: '100234' };
const NOW = '2026-11-05T14:05:00-06:00';

function encounter(pv1: string, options: EncounterOptions = {}, facility = 'NORTHSIDE'): { plan?: ResourcePlan<Encounter>; plans: ResourcePlan[]; ctx: MappingContext } {
  const message = readHl7Message(`MSH|^~\\&|ADTSYS|${facility}|HUB|HUB|20261105141000||ADT^A01|1|P|2.5.1\r${pv1}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  const plans: ResourcePlan[] = [];
  const plan = mapEncounter(message.getSegment('PV1'), message.getSegment('PV2'), 'Patient', PATIENT, ctx, plans, { eventTime: NOW, ...options });
  return { plan, plans, ctx };
}

const TRANSFER = 'PV1|1|I|ICU^02^1||||||||||||||||V100^^^NSHV^VN|||||||||||||||||||||||||20261104081500|';

describe('mapEncounter', () => {
  test('the visit number is the key; the current location is active since the event', () => {
    const { plan } = encounter(TRANSFER, { status: 'in-progress' });
    expect(plan?.identifiers).toEqual([
      { system: 'https://northside.example.org/fhir/sid/visit', value: 'V100', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'VN' }] } },
    ]);
    expect(plan?.resource).toMatchObject({ status: 'in-progress', period: { start: '2026-11-04T08:15:00-06:00' } });
    expect(plan?.resource).toMatchObject({ location: [{ status: 'active', period: { start: NOW } }] });
    expect(plan?.defaultsOnly).toBeUndefined();
  });

  test('moved: PV1-6 is completed at the event time', () => {
    const pv1 = TRANSFER.replace('ICU^02^1||||', 'ICU^02^1|||4W^412^A|');
    const { plan } = encounter(pv1, { status: 'in-progress', locations: 'moved' });
    const locations = (plan?.resource as { location: unknown[] }).location;
    expect(locations).toHaveLength(2);
    expect(locations[1]).toMatchObject({ status: 'completed', period: { end: NOW }, location: { display: '4W 412-A' } });
  });

  test('left: a discharge ends the period and the location at PV1-45, else at the event', () => {
    const discharged = encounter(TRANSFER + '20261108110000', { status: 'finished', locations: 'left' }).plan;
    expect(discharged?.resource).toMatchObject({
      status: 'finished',
      period: { end: '2026-11-08T11:00:00-06:00' },
      location: [{ status: 'completed', period: { end: '2026-11-08T11:00:00-06:00' } }],
    });
    const noTime = encounter(TRANSFER, { status: 'finished', locations: 'left' }).plan;
    expect(noTime?.resource).toMatchObject({ period: { end: NOW }, location: [{ status: 'completed', period: { end: NOW } }] });
  });

  test('planned: the location is planned, without a period', () => {
    const { plan } = encounter(TRANSFER, { status: 'planned', locations: 'planned' });
    expect((plan?.resource as { location: unknown[] }).location).toEqual([expect.objectContaining({ status: 'planned' })]);
    expect((plan?.resource as { location: { period?: unknown }[] }).location[0].period).toBeUndefined();
  });

  test('reopen (A13) ignores PV1-45 and clears period.end', () => {
    const { plan } = encounter(TRANSFER + '20261108110000', { status: 'in-progress', reopen: true });
    expect(plan?.resource).toMatchObject({ status: 'in-progress', period: { start: '2026-11-04T08:15:00-06:00' } });
    expect((plan?.resource as { period: { end?: string } }).period.end).toBeUndefined();
    expect(plan?.clear).toEqual(['period.end']);
  });

  test('a cancellation wins over a discharge time; an update only defaults the status', () => {
    expect(encounter(TRANSFER + '20261108110000', { status: 'cancelled', locations: 'left' }).plan?.resource.status).toBe('cancelled');
    const update = encounter(TRANSFER).plan;
    expect(update?.resource.status).toBe('unknown');
    expect(update?.defaultsOnly).toEqual(['status']);
    expect(encounter(TRANSFER + '20261108110000').plan?.resource.status).toBe('finished');
  });

  test('an empty or unknown PV1-2 only defaults the class', () => {
    const { plan } = encounter(TRANSFER.replace('PV1|1|I|', 'PV1|1||'), { status: 'in-progress' });
    expect(plan?.resource).toMatchObject({ class: { code: 'AMB' } });
    expect(plan?.defaultsOnly).toEqual(['class']);
  });

  test('a visit number without authority or type is typed VN and scoped to the sender', () => {
    const { plan } = encounter('PV1|1|O|EXAM3||||||||||||||||48213-1104', { status: 'arrived' }, 'MAPLECLINIC');
    expect(plan?.identifiers[0]).toMatchObject({ system: 'https://fhir.integration-hub.dev/sid/hl7/MAPLECLINIC/ADTSYS/VN', value: '48213-1104' });
  });

  test('without a visit number: synthetic key from the admit time, or nothing (A28/A31, or no admit time)', () => {
    const pv1 = 'PV1|1|O|EXAM3|||||||||||||||||||||||||||||||||||||||||20261104131500';
    const { plan } = encounter(pv1, { status: 'arrived' });
    expect(plan?.identifiers[0].system).toBe('https://fhir.integration-hub.dev/sid/encounter');
    expect(plan?.identifiers[0].value).toBe('https://northside.example.org/fhir/sid/mrn^100234^O^2026-11-04T13:15:00-06:00');
    expect(encounter(pv1, { requireVisitNumber: true }).plan).toBeUndefined();
    const none = encounter('PV1|1|O|EXAM3');
    expect(none.plan).toBeUndefined();
    expect(none.ctx.warnings.map((w) => w.location)).toEqual([{ segment: 'PV1', field: 19 }]);
    expect(encounter('PV1|1|N').ctx.warnings).toEqual([]);
  });

  test('a prior visit number also finds the Encounter and is kept as old', () => {
    const prior = { system: 'https://northside.example.org/fhir/sid/visit', value: 'V099' };
    const { plan } = encounter(TRANSFER, { status: 'in-progress', priorVisit: prior });
    expect(plan?.identifiers.map((i) => i.value)).toEqual(['V100', 'V099']);
    expect(plan?.resource.identifier?.[1]).toEqual({ ...prior, use: 'old' });
  });

  test('participants, locations and practitioners are planned once', () => {
    const pv1 = 'PV1|1|I|4W^412^A||||1790812345^Reyes^Maria^^^Dr^^^NPI||||||||||1790812345^Reyes^Maria^^^Dr^^^NPI||V100^^^NSHV^VN';
    const { plan, plans } = encounter(pv1, { status: 'in-progress' });
    expect((plan?.resource as { participant: unknown[] }).participant).toHaveLength(2);
    expect(plans.map((p) => p.key)).toEqual([
      'Location/https://fhir.integration-hub.dev/sid/hl7-location/NORTHSIDE^NORTHSIDE^4W^^^412^A',
      'Practitioner/http://hl7.org/fhir/sid/us-npi^1790812345',
    ]);
  });
});
