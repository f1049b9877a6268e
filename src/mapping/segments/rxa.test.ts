import type { Hl7Segment } from '@medplum/core';
import type { Immunization } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { MappingError } from '../plan.ts';
import { mapImmunization } from './rxa.ts';
import { mapRouteAndSite } from './rxr.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const PATIENT = { system: 'https://northside.example.org/fhir/sid/mrn', value: '889034' };
const CVX = 'http://hl7.org/fhir/sid/cvx';

/** Maps the first ORC/RXA/RXR of a VXU body sent by STATEIIS (America/Denver). */
function immunization(body: string): { plan: ResourcePlan<Immunization>; plans: ResourcePlan[]; ctx: MappingContext } {
  const message = readHl7Message(`MSH|^~\\&|IIS|STATEIIS|HUB|HUB|20240312101530||VXU^V04^VXU_V04|1|P|2.5.1\r${body.trim().split('\n').join('\r')}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  const plans: ResourcePlan[] = [];
  const rxa = message.getSegment('RXA') as Hl7Segment;
  const plan = mapImmunization(
    { orc: message.getSegment('ORC'), rxa, rxr: message.getSegment('RXR'), observations: [], sequence: 1 },
    { patientKey: 'Patient', patientIdentifier: PATIENT },
    ctx,
    plans
  );
  return { plan, plans, ctx };
}

const ADMINISTERED = `
ORC|RE|PL-1^NSHORD|IZ-4471^NSHORD|||||||||1457382910^Hoang^Linh^^^^MD^^NPI
RXA|0|1|20240311093000|20240311093000|20^DTaP^CVX|0.5|mL^milliliters^UCUM||00^New immunization record^NIP001|7821^Okafor^Chidi^^^^^^NPI|||||U4419AA|20250930|SKB^GlaxoSmithKline^MVX|||CP|A|20240311094500
RXR|C28161^Intramuscular^NCIT|LA^Left Arm^HL70163`;

describe('mapImmunization', () => {
  test('an administered dose: order numbers, vaccine, dose, performers, lot, manufacturer, route and site', () => {
    const { plan, plans } = immunization(ADMINISTERED);
    expect(plan.identifiers.map((i) => [i.value, i.type?.coding?.[0].code])).toEqual([
      ['IZ-4471', 'FILL'],
      ['PL-1', 'PLAC'],
    ]);
    expect(plan.merge).toBe('overlay');
    expect(plan.resource).toMatchObject({
      status: 'completed',
      vaccineCode: { coding: [{ system: CVX, code: '20' }] },
      patient: { reference: 'local:Patient' },
      occurrenceDateTime: '2024-03-11T09:30:00-06:00',
      recorded: '2024-03-11T09:45:00-06:00',
      primarySource: true,
      doseQuantity: { value: 0.5, code: 'mL', system: 'http://unitsofmeasure.org' },
      lotNumber: 'U4419AA',
      expirationDate: '2025-09-30',
      manufacturer: { reference: 'local:Organization/http://hl7.org/fhir/sid/mvx^SKB', display: 'GlaxoSmithKline' },
      site: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0163', code: 'LA' }] },
    });
    expect(plan.resource.performer?.map((p) => [p.function?.coding?.[0].code, p.actor.display])).toEqual([
      ['AP', 'Chidi Okafor'],
      ['OP', 'Linh Hoang MD'],
    ]);
    const manufacturer = plans.find((p) => p.key.startsWith('Organization/'));
    expect(manufacturer).toMatchObject({ merge: 'keep', identifiers: [{ system: 'http://hl7.org/fhir/sid/mvx', value: 'SKB' }] });
    expect(plans.filter((p) => p.key.startsWith('Practitioner/'))).toHaveLength(2);
  });

  test('a refusal with the CDC placeholder order number gets a stable synthetic key', () => {
    const body = `ORC|RE||9999^STATEIIS
RXA|0|1|20240311|20240311|88^Influenza^CVX|999||||||||||||00^Parental decision^NIP002||RE|A`;
    const first = immunization(body).plan;
    const again = immunization(body).plan;
    expect(first.identifiers).toEqual(again.identifiers);
    expect(first.identifiers[0].value).toBe(`${PATIENT.system}^${PATIENT.value}^2024-03-11^${CVX}^88`);
    expect(first.resource.status).toBe('not-done');
    expect(first.resource.statusReason?.coding?.[0]).toMatchObject({ code: '00', display: 'Parental decision' });
    expect(first.resource.doseQuantity).toBeUndefined();
  });

  test('RXA-21 D is entered-in-error under the original identifiers; PA is a subpotent dose', () => {
    const deleted = immunization(ADMINISTERED.replace('|CP|A|', '|CP|D|')).plan;
    expect(deleted.resource.status).toBe('entered-in-error');
    expect(deleted.identifiers).toEqual(immunization(ADMINISTERED).plan.identifiers);
    const partial = immunization(ADMINISTERED.replace('|CP|A|', '|PA|A|')).plan;
    expect(partial.resource).toMatchObject({ status: 'completed', isSubpotent: true });
  });

  test('an unknown completion status is recorded as completed, with a warning', () => {
    const { plan, ctx } = immunization(ADMINISTERED.replace('|CP|A|', '|ZZ|A|'));
    expect(plan.resource.status).toBe('completed');
    expect(ctx.warnings.map((w) => w.location)).toContainEqual({ segment: 'RXA', sequence: 1, field: 20 });
  });

  test('historical doses: primarySource false and the report origin (immunization-origin when it maps)', () => {
    const historical = immunization(ADMINISTERED.replace('00^New immunization record', '02^Historical - other provider')).plan;
    expect(historical.resource.primarySource).toBe(false);
    expect(historical.resource.reportOrigin?.coding?.map((c) => c.code)).toEqual(['02', 'provider']);
    const unspecified = immunization(ADMINISTERED.replace('00^New immunization record', '01^Historical - unspecified')).plan;
    expect(unspecified.resource.reportOrigin?.coding?.map((c) => c.code)).toEqual(['01']);
  });

  test('RXA-9 administration notes that are not NIP001 codes become notes', () => {
    const { plan } = immunization(ADMINISTERED.replace('00^New immunization record^NIP001', '^^^^^^^^Given in clinic hallway'));
    expect(plan.resource.note).toEqual([{ text: 'Given in clinic hallway' }]);
    expect(plan.resource.primarySource).toBeUndefined();
  });

  test('a local manufacturer code is a display only; "" lot and expiry are cleared', () => {
    const body = ADMINISTERED.replace('SKB^GlaxoSmithKline^MVX', 'GSK1^GSK local^L').replace('U4419AA|20250930', '""|""');
    const { plan, plans } = immunization(body);
    expect(plan.resource.manufacturer).toEqual({ display: 'GSK local' });
    expect(plans.some((p) => p.key.startsWith('Organization/'))).toBe(false);
    expect(plan.clear).toEqual(['lotNumber', 'expirationDate']);
  });

  test('an amount that is not a number is dropped with a warning', () => {
    const { plan, ctx } = immunization(ADMINISTERED.replace('|0.5|mL', '|half|mL'));
    expect(plan.resource.doseQuantity).toBeUndefined();
    expect(ctx.warnings[0]).toMatchObject({ severity: 'warning', location: { segment: 'RXA', field: 6 } });
  });

  test('RXA-3 and RXA-5 are required', () => {
    expect(() => immunization(ADMINISTERED.replace('|20^DTaP^CVX|', '||'))).toThrow(MappingError);
    expect(() => immunization(ADMINISTERED.replace('|20240311093000|20240311093000|', '|||'))).toThrow('RXA-3');
  });
});

describe('mapRouteAndSite', () => {
  test('route and site default to HL7 tables 0162 and 0163', () => {
    const message = readHl7Message('MSH|^~\\&|A|B|C|D|20240101||VXU^V04|1|P|2.4\rRXR|IM^Intramuscular|RD^Right deltoid');
    const ctx = new MappingContext(readMessageHeader(message), config);
    expect(mapRouteAndSite(message.getSegment('RXR'), ctx)).toEqual({
      route: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0162', code: 'IM', display: 'Intramuscular' }], text: 'Intramuscular' },
      site: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0163', code: 'RD', display: 'Right deltoid' }], text: 'Right deltoid' },
    });
    expect(mapRouteAndSite(undefined, ctx)).toEqual({});
  });
});
