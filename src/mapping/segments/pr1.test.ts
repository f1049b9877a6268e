import type { Hl7Segment } from '@medplum/core';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { addMinutes, mapProcedure } from './pr1.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const PATIENT = { key: 'Patient', identifier: { system: 'https://northside.example.org/fhir/sid/mrn', value: '100234' }, token: 'https://northside.example.org/fhir/sid/mrn^100234' };
const VISIT = { key: 'Encounter', token: 'https://northside.example.org/fhir/sid/visit^V1' };
const EVENT = '2026-11-08T11:30:00-06:00';

function procedure(pr1: string): { plan: ReturnType<typeof mapProcedure>; ctx: MappingContext; plans: ResourcePlan[] } {
  const message = readHl7Message(`MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261108113200||ADT^A03|1|P|2.5.1\r${pr1}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  const plans: ResourcePlan[] = [];
  return { plan: mapProcedure(message.segments[1] as Hl7Segment, ctx, PATIENT, VISIT, 1, plans, EVENT), ctx, plans };
}

describe('mapProcedure', () => {
  test('PR1-5 + PR1-7 minutes make the performed period; surgeon and anesthesiologist functions', () => {
    const { plan } = procedure('PR1|1|C4|92928^Stent placement||20261105153000|P|95|1598877001^Lind^Erik^^^^^^NPI|||1467503321^Patel^Vikram^^^^^^NPI');
    expect(plan?.resource).toMatchObject({
      status: 'completed',
      code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '92928' }] },
      category: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0230', code: 'P' }] },
      performedPeriod: { start: '2026-11-05T15:30:00-06:00', end: '2026-11-05T17:05:00-06:00' },
      encounter: { reference: 'local:Encounter' },
    });
    expect(plan?.resource.performer?.map((p) => p.function?.coding?.[0].code)).toEqual(['88189002', '304292004']);
  });

  test('without minutes (or a time) PR1-5 is performedDateTime', () => {
    expect(procedure('PR1|1||27447^TKA^C4||20261105').plan?.resource.performedDateTime).toBe('2026-11-05');
    expect(procedure('PR1|1||27447^TKA^C4||20261105|||30').plan?.resource.performedDateTime).toBe('2026-11-05');
  });

  test('status: after the event preparation, D entered-in-error, no date unknown', () => {
    expect(procedure('PR1|1||27447^TKA^C4||20261109080000').plan?.resource.status).toBe('preparation');
    expect(procedure('PR1|1||27447^TKA^C4||20261105080000|||||||||||||||D').plan?.resource.status).toBe('entered-in-error');
    expect(procedure('PR1|1||27447^TKA^C4||').plan?.resource.status).toBe('unknown');
  });

  test('keyed by PR1-19 when sent, else by patient + encounter + code + time', () => {
    const sent = procedure('PR1|1||44970^Appendectomy^C4||20261112113000||||||||||||||PRX-441^^2.16.840.1.113883.3.7777.6^ISO').plan;
    expect(sent?.identifiers).toEqual([{ system: 'urn:oid:2.16.840.1.113883.3.7777.6', value: 'PRX-441' }]);
    const synthetic = procedure('PR1|1||44970^Appendectomy^C4||20261112113000').plan;
    expect(synthetic?.identifiers[0].value).toBe(
      'https://northside.example.org/fhir/sid/mrn^100234^https://northside.example.org/fhir/sid/visit^V1^http://www.ama-assn.org/go/cpt^44970^2026-11-12T11:30:00-06:00'
    );
  });

  test('no code and no description: dropped with a warning', () => {
    const { plan, ctx } = procedure('PR1|1||||20261105');
    expect(plan).toBeUndefined();
    expect(ctx.warnings[0]).toMatchObject({ location: { segment: 'PR1', sequence: 1, field: 3 } });
  });
});

describe('addMinutes', () => {
  test('keeps the offset and carries over days', () => {
    expect(addMinutes('2026-12-31T23:30:00-06:00', 45)).toBe('2027-01-01T00:15:00-06:00');
    expect(addMinutes('2026-11-05T15:30:00.250Z', 1.5)).toBe('2026-11-05T15:31:30.250Z');
    expect(addMinutes('2026-11-05', 10)).toBeUndefined();
    expect(addMinutes('2026-11-05T15:30:00-06:00', -5)).toBeUndefined();
  });
});
