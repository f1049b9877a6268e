import type { Hl7Segment } from '@medplum/core';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FieldRep } from '../../hl7/fields.ts';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { mapRelatedPerson, relatedPersonIdentity, relationshipConcept } from './nk1.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const PATIENT = { key: 'Patient', identifier: { system: 'https://northside.example.org/fhir/sid/mrn', value: '100234' }, token: 'https://northside.example.org/fhir/sid/mrn^100234' };

function setup(nk1: string): { ctx: MappingContext; nk1: Hl7Segment } {
  const message = readHl7Message(`MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261105141000||ADT^A01|1|P|2.5.1\r${nk1}`);
  return { ctx: new MappingContext(readMessageHeader(message), config), nk1: message.getSegment('NK1') as Hl7Segment };
}

describe('mapRelatedPerson', () => {
  test('keyed by patient, relationship and name; not by the set id', () => {
    const first = setup('NK1|1|KOWALSKI^PIOTR|SPO^Spouse^HL70063');
    const again = setup('NK1|3|Kowalski^Piotr^J|SPO');
    const a = mapRelatedPerson(first.nk1, first.ctx, PATIENT, 1);
    const b = mapRelatedPerson(again.nk1, again.ctx, PATIENT, 3);
    expect(a?.identifiers).toEqual(b?.identifiers);
    expect(a?.identifiers[0]).toEqual({
      system: 'https://fhir.integration-hub.dev/sid/related-person',
      value: 'https://northside.example.org/fhir/sid/mrn^100234^SPO^KOWALSKI^PIOTR',
    });
    expect(a?.key).toBe('RelatedPerson/SPO/KOWALSKI^PIOTR');
    expect(a?.resource.patient).toEqual({ reference: 'local:Patient' });
  });

  test('NK1-3 and NK1-7 become relationships; phones get home/work uses; NK1-15/16 gender and birth date', () => {
    const { nk1, ctx } = setup('NK1|1|NOWAK^EWA|SIS^Sister^HL70063||^^PH^^1^312^5550101|^^PH^^1^312^5550102|C^Emergency Contact^HL70131||||||||F|19700101');
    const plan = mapRelatedPerson(nk1, ctx, PATIENT, 1);
    expect(plan?.resource.relationship?.map((r) => r.coding?.map((c) => c.code))).toEqual([['SIS', 'SIS'], ['C']]);
    expect(plan?.resource.telecom).toEqual([
      { system: 'phone', value: '+1 312 5550101', use: 'home' },
      { system: 'phone', value: '+1 312 5550102', use: 'work' },
    ]);
    expect(plan?.resource).toMatchObject({ gender: 'female', birthDate: '1970-01-01' });
  });

  test('"" clears telecom and address', () => {
    const { nk1, ctx } = setup('NK1|1|NOWAK^EWA|SIS|""|""');
    expect(mapRelatedPerson(nk1, ctx, PATIENT, 1)?.clear).toEqual(['telecom', 'address']);
  });

  test('an NK1 without a name is not recorded (warning)', () => {
    const { nk1, ctx } = setup('NK1|2||EMR^Employer^HL70063||||||||||Rush Medical Center');
    expect(mapRelatedPerson(nk1, ctx, PATIENT, 2)).toBeUndefined();
    expect(ctx.warnings).toEqual([
      expect.objectContaining({ code: '101', location: { segment: 'NK1', sequence: 2, field: 2 } }),
    ]);
  });
});

describe('relationshipConcept and relatedPersonIdentity', () => {
  const { ctx } = setup('NK1|1');
  test('table 0063 codes get v2-0063 and the IG concept map coding; local codes stay local', () => {
    expect(relationshipConcept(new FieldRep([['MTH']]), ctx)?.coding).toEqual([
      { system: 'http://terminology.hl7.org/CodeSystem/v2-0063', code: 'MTH' },
      { system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'MTH', display: 'mother' },
    ]);
    expect(relationshipConcept(new FieldRep([['EMC']]), ctx)?.coding?.[1]).toMatchObject({ code: 'C' });
    expect(relationshipConcept(new FieldRep([['WIFE']]), ctx)?.coding).toEqual([
      { system: 'https://fhir.integration-hub.dev/sid/local/NORTHSIDE/ADTSYS/L', code: 'WIFE' },
    ]);
  });

  test('the name part ignores case and middle names', () => {
    const a = relatedPersonIdentity(ctx, PATIENT, 'spo', { family: 'Kowalski', given: ['Piotr', 'Jan'] });
    const b = relatedPersonIdentity(ctx, PATIENT, 'SPO', { family: 'KOWALSKI', given: ['PIOTR'] });
    expect(a).toEqual(b);
  });
});
