import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { eventTimes } from './evn.ts';
import { mapPrimaryCare } from './pd1.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function read(...segments: string[]): { message: ReturnType<typeof readHl7Message>; ctx: MappingContext } {
  const message = readHl7Message(['MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261104082600||ADT^A01|1|P|2.5.1', ...segments].join('\r'));
  return { message, ctx: new MappingContext(readMessageHeader(message), config) };
}

describe('mapPrimaryCare (PD1)', () => {
  test('PD1-3 practice and PD1-4 provider become generalPractitioner; both are planned once', () => {
    const { message, ctx } = read('PD1|||Northside Primary Care^^NSPC01|1234567893^Okafor^Chidi^^^Dr^^^NPI');
    const plans: ResourcePlan[] = [];
    const care = mapPrimaryCare(message.getSegment('PD1'), ctx, plans);
    expect(care.cleared).toBe(false);
    expect(care.generalPractitioner.map((r) => r.reference)).toEqual([
      'local:Organization/https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/ADTSYS/XX^NSPC01',
      'local:Practitioner/http://hl7.org/fhir/sid/us-npi^1234567893',
    ]);
    expect(plans.map((p) => p.merge)).toEqual(['fill', 'fill']);
  });

  test('a provider without an id is a display; "" clears; no PD1 is nothing', () => {
    const named = read('PD1||||^Okafor^Chidi');
    expect(mapPrimaryCare(named.message.getSegment('PD1'), named.ctx, []).generalPractitioner).toEqual([{ display: 'Chidi Okafor' }]);
    const cleared = read('PD1||||""');
    expect(mapPrimaryCare(cleared.message.getSegment('PD1'), cleared.ctx, [])).toEqual({ generalPractitioner: [], cleared: true });
    const none = read();
    expect(mapPrimaryCare(none.message.getSegment('PD1'), none.ctx, [])).toEqual({ generalPractitioner: [], cleared: false });
  });
});

describe('eventTimes (EVN)', () => {
  test('EVN-2 is recorded, EVN-6 occurred', () => {
    const { message, ctx } = read('EVN|A02|20261105141000-0600||||20261105140500-0600');
    expect(eventTimes(message, ctx)).toEqual({ recorded: '2026-11-05T14:10:00-06:00', occurred: '2026-11-05T14:05:00-06:00' });
  });

  test('without EVN (or with an unreadable EVN-2) MSH-7 stands in, in the sender zone', () => {
    const { message, ctx } = read('PID|1');
    expect(eventTimes(message, ctx)).toEqual({ recorded: '2026-11-04T08:26:00-06:00', occurred: '2026-11-04T08:26:00-06:00' });
    const bad = read('EVN|A01|2026-11-04');
    expect(eventTimes(bad.message, bad.ctx).recorded).toBe('2026-11-04T08:26:00-06:00');
    expect(bad.ctx.warnings[0]).toMatchObject({ code: '102', location: { segment: 'EVN', field: 2 } });
  });
});
