import type { Hl7Segment } from '@medplum/core';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { mapDiagnosis } from './dg1.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const PATIENT = { key: 'Patient', identifier: { system: 'https://northside.example.org/fhir/sid/mrn', value: '100234' }, token: 'https://northside.example.org/fhir/sid/mrn^100234' };
const VISIT = { key: 'Encounter', token: 'https://northside.example.org/fhir/sid/visit^V1' };

function diagnose(dg1: string, withEncounter = true): { result: ReturnType<typeof mapDiagnosis>; ctx: MappingContext; plans: ResourcePlan[] } {
  const message = readHl7Message(`MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261105141000||ADT^A03|1|P|2.5.1\r${dg1}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  const plans: ResourcePlan[] = [];
  return { result: mapDiagnosis(message.segments[1] as Hl7Segment, ctx, PATIENT, withEncounter ? VISIT : undefined, 1, plans), ctx, plans };
}

describe('mapDiagnosis', () => {
  test('I10 is ICD-10-CM; category encounter-diagnosis; keyed by patient + encounter + code', () => {
    const { result, plans } = diagnose('DG1|1||I21.4^NSTEMI^I10||20261104|A|||||||||1|1790812345^Reyes^Maria^^^^^^NPI||||');
    expect(result?.plan.resource).toMatchObject({
      code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'I21.4' }] },
      category: [{ coding: [{ code: 'encounter-diagnosis' }] }],
      subject: { reference: 'local:Patient' },
      encounter: { reference: 'local:Encounter' },
      onsetDateTime: '2026-11-04',
      asserter: { reference: 'local:Practitioner/http://hl7.org/fhir/sid/us-npi^1790812345' },
    });
    expect(result?.plan.identifiers[0].value).toBe(
      'https://northside.example.org/fhir/sid/mrn^100234^https://northside.example.org/fhir/sid/visit^V1^http://hl7.org/fhir/sid/icd-10-cm^I21.4'
    );
    expect(result?.diagnosis).toEqual({
      condition: { reference: 'local:Condition/http://hl7.org/fhir/sid/icd-10-cm^I21.4' },
      use: {
        coding: [
          { system: 'http://terminology.hl7.org/CodeSystem/v2-0052', code: 'A' },
          { system: 'http://terminology.hl7.org/CodeSystem/diagnosis-role', code: 'AD', display: 'Admission diagnosis' },
        ],
      },
      rank: 1,
    });
    expect(plans.map((p) => p.key)).toEqual(['Practitioner/http://hl7.org/fhir/sid/us-npi^1790812345']);
  });

  test('DG1-20 is the key when sent', () => {
    const { result } = diagnose('DG1|1||I10^Hypertension^I10|||F||||||||||||||DX-1^^2.16.840.1.113883.3.7777.5^ISO');
    expect(result?.plan.identifiers).toEqual([{ system: 'urn:oid:2.16.840.1.113883.3.7777.5', value: 'DX-1' }]);
    expect(result?.diagnosis?.use?.coding).toEqual([{ system: 'http://terminology.hl7.org/CodeSystem/v2-0052', code: 'F' }]);
  });

  test('DG1-2 names the coding system when DG1-3 does not; DG1-4 is the text', () => {
    const { result } = diagnose('DG1|1|I9|786.50|CHEST PAIN||W');
    expect(result?.plan.resource.code).toEqual({ coding: [{ system: 'http://hl7.org/fhir/sid/icd-9-cm', code: '786.50' }], text: 'CHEST PAIN' });
    const textOnly = diagnose('DG1|1|||ATYPICAL CHEST PAIN||W').result;
    expect(textOnly?.plan.resource.code).toEqual({ text: 'ATYPICAL CHEST PAIN' });
    expect(textOnly?.plan.key).toBe('Condition/text^atypical chest pain');
  });

  test('DG1-21 D: entered-in-error and not an encounter diagnosis', () => {
    const { result } = diagnose('DG1|1||O99.214^Obesity^I10|||F|||||||||||||||D');
    expect(result?.plan.resource.verificationStatus?.coding?.[0].code).toBe('entered-in-error');
    expect(result?.diagnosis).toBeUndefined();
  });

  test('without an encounter: no encounter part in the key, no diagnosis entry', () => {
    const { result } = diagnose('DG1|1||I10^Hypertension^I10|||A', false);
    expect(result?.plan.resource.encounter).toBeUndefined();
    expect(result?.diagnosis).toBeUndefined();
    expect(result?.plan.identifiers[0].value).toBe('https://northside.example.org/fhir/sid/mrn^100234^^http://hl7.org/fhir/sid/icd-10-cm^I10');
  });

  test('no code and no description: dropped with a warning', () => {
    const { result, ctx } = diagnose('DG1|1||||20261104|A');
    expect(result).toBeUndefined();
    expect(ctx.warnings[0]).toMatchObject({ code: '101', location: { segment: 'DG1', sequence: 1, field: 3 } });
  });
});
