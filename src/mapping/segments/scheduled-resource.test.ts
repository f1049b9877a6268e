import type { Hl7Segment } from '@medplum/core';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { mapGeneralResource } from './aig.ts';
import { mapLocationResource } from './ail.ts';
import { mapPersonnelResource } from './aip.ts';
import { mapService } from './ais.ts';
import { participantStatus } from './scheduled-resource.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const BASE = '2024-03-25T10:00:00-05:00';
const PERIOD = { start: BASE, end: '2024-03-25T10:30:00-05:00' };

function read(line: string): { segment: Hl7Segment; ctx: MappingContext; plans: ResourcePlan[] } {
  const message = readHl7Message(`MSH|^~\\&|CADENCE|NORTHSIDE|HUB|HUB|20240318090512||SIU^S12|1|P|2.5.1\r${line}`);
  return { segment: message.segments[1], ctx: new MappingContext(readMessageHeader(message), config), plans: [] };
}

describe('AIS', () => {
  test('service → serviceType, its times, and its filler status; never a participant', () => {
    const { segment, ctx } = read('AIS|1|A|99213^Office visit^C4|20240325100000-0500|||30|MIN||Booked');
    expect(mapService(segment, undefined, ctx, 1)).toEqual({
      timing: PERIOD,
      serviceType: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '99213', display: 'Office visit' }], text: 'Office visit' },
      fillerStatus: 'Booked',
    });
  });
});

describe('AIG', () => {
  test('a general resource is a display-only actor with its type and status', () => {
    const { segment, ctx } = read('AIG|1|A|INT-ES^Spanish interpreter^L|INTERP^Interpreter^L||||20240325100000-0500|||30|MIN||Pending');
    const resource = mapGeneralResource(segment, BASE, ctx, 1);
    expect(resource.participant).toMatchObject({ actor: { display: 'Spanish interpreter' }, type: [{ text: 'Interpreter' }], period: PERIOD });
    expect(resource.participantStatus).toBe('tentative');
  });

  test('nothing to name: times only', () => {
    const { segment, ctx } = read('AIG|1|A||||||20240325100000-0500|||30');
    expect(mapGeneralResource(segment, BASE, ctx, 1)).toEqual({ timing: PERIOD });
  });
});

describe('AIL', () => {
  test('the location is planned once and is the actor', () => {
    const { segment, ctx, plans } = read('AIL|1|A|PEDS^EXAM3^^NSH|CLINIC^Clinic^HL70305||20240325100000-0500|||30|MIN||Booked');
    const resource = mapLocationResource(segment, BASE, ctx, plans, 1);
    expect(plans.map((p) => p.key)).toEqual(['Location/https://fhir.integration-hub.dev/sid/hl7-location/NSH^NSH^PEDS^^^EXAM3^']);
    expect(resource.participant).toEqual({ actor: { reference: `local:${plans[0].key}`, display: 'PEDS EXAM3' }, period: PERIOD });
    expect(resource.participantStatus).toBe('accepted');
  });

  test('"" removes the location: no participant', () => {
    const { segment, ctx, plans } = read('AIL|1|U|""|||20240325100000-0500|||30');
    expect(mapLocationResource(segment, BASE, ctx, plans, 1)).toEqual({ timing: PERIOD });
    expect(plans).toEqual([]);
  });
});

describe('AIP', () => {
  test('a provider with an id is a Practitioner; the resource type defaults to table 0182', () => {
    const { segment, ctx, plans } = read('AIP|1|A|1457382910^Hoang^Linh^^^^MD^^NPI|D^Doctor||20240325100000-0500|||30|MIN||Booked');
    const resource = mapPersonnelResource(segment, BASE, ctx, plans, 1);
    expect(plans.map((p) => p.key)).toEqual(['Practitioner/http://hl7.org/fhir/sid/us-npi^1457382910']);
    expect(resource.participant).toMatchObject({
      type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0182', code: 'D' }] }],
      actor: { reference: `local:${plans[0].key}`, display: 'Linh Hoang MD' },
      period: PERIOD,
    });
  });

  test('a provider named without an id is a display only; no times, no period', () => {
    const { segment, ctx, plans } = read('AIP|1|A|^Amato^Paula^^^DR');
    expect(mapPersonnelResource(segment, undefined, ctx, plans, 1)).toEqual({ timing: {}, participant: { actor: { display: 'DR Paula Amato' } } });
    expect(plans).toEqual([]);
  });
});

describe('participantStatus', () => {
  test('HL7 table 0278 → participation status', () => {
    expect(['Booked', 'started', 'Pending', 'Waitlist', 'Cancelled', 'Noshow', 'Blocked', ''].map(participantStatus)).toEqual([
      'accepted',
      'accepted',
      'tentative',
      'tentative',
      'declined',
      'declined',
      undefined,
      undefined,
    ]);
  });
});
