import type { Condition, DocumentReference, Encounter, Observation, PractitionerRole, Provenance } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { entryToken, PATIENT_TOKEN, prepareConsolidatedImport, resolveTokens } from './consolidated.ts';
import { COND, ENC, MP, quirkyBundle } from '../../test/support/metriport-quirky-bundle.ts';
import { METRIPORT_RESOURCE_TAG_SYSTEM, METRIPORT_SOURCE_TAG, metriportResourceSystem } from './constants.ts';

describe('prepareConsolidatedImport', () => {
  const prepared = prepareConsolidatedImport(quirkyBundle(), MP);
  const byType = (type: string) => prepared.items.find((i) => i.resourceType === type);

  test('keys each resource by a per-type Metriport identifier, or a tag for types without repeating identifiers', () => {
    const encounter = byType('Encounter');
    expect(encounter?.key).toEqual({ kind: 'identifier', system: metriportResourceSystem('Encounter'), value: ENC });
    expect((encounter?.resource as Encounter).identifier).toContainEqual({ system: 'https://metriport.com/fhir/identifiers/encounter-id', value: ENC });
    expect(byType('Provenance')?.key).toEqual({ kind: 'tag', system: METRIPORT_RESOURCE_TAG_SYSTEM, code: `Provenance/aa8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a` });
    expect(byType('Provenance')?.resource.meta?.tag).toContainEqual({ system: METRIPORT_RESOURCE_TAG_SYSTEM, code: 'Provenance/aa8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a' });
    for (const item of prepared.items) {
      expect(item.resource.meta?.tag).toContainEqual(METRIPORT_SOURCE_TAG);
      expect(item.resource.id).toBeUndefined();
      expect(item.resource.meta?.versionId).toBeUndefined();
    }
    expect(byType('Observation')?.resource.meta?.source).toBe('doc/123.xml');
  });

  test('rewrites references in every Metriport form, whatever the case, and the patient to a token', () => {
    const encounter = byType('Encounter') as (typeof prepared.items)[number];
    const condition = byType('Condition') as (typeof prepared.items)[number];
    const practitioner = byType('Practitioner') as (typeof prepared.items)[number];
    const e = encounter.resource as Encounter;
    expect(e.subject?.reference).toBe(PATIENT_TOKEN);
    expect(e.diagnosis?.[0].condition.reference).toBe(entryToken(condition.index));
    expect(e.participant?.[0].individual?.reference).toBe(entryToken(practitioner.index));
    expect((condition.resource as Condition).encounter?.reference).toBe(entryToken(encounter.index));
    expect([...encounter.references].sort()).toEqual([condition.index, practitioner.index].sort());
  });

  test('references to resources absent from the bundle become logical references; contained ones stay', () => {
    const observation = byType('Observation')?.resource as Observation;
    expect(observation.performer?.[0]).toEqual({
      display: 'Dr Absent',
      type: 'Practitioner',
      identifier: { system: metriportResourceSystem('Practitioner'), value: 'not-in-bundle' },
    });
    expect(prepared.danglingReferences).toBe(1);
    expect((byType('DocumentReference')?.resource as DocumentReference).author?.[0].reference).toBe('#org');
    expect((byType('Provenance')?.resource as Provenance).agent[0].who.reference).toBe('#org');
  });

  test('completes instants sent as dates or without a zone', () => {
    expect((byType('Observation')?.resource as Observation).issued).toBe('2024-03-05T00:00:00.000Z');
    expect((byType('DocumentReference')?.resource as DocumentReference).date).toBe('2024-03-05T00:00:00.000Z');
    expect((byType('Provenance')?.resource as Provenance).recorded).toBe('2024-03-05T10:00:00.000Z');
  });

  test('skips types it does not import, other patients, repeats and invalid resources, with the reason', () => {
    const bundle = quirkyBundle();
    bundle.entry?.push(
      { resource: { resourceType: 'Patient', id: 'someone-else' } },
      { resource: bundle.entry[1].resource },
      { resource: { resourceType: 'Condition', id: 'no-subject' } as Condition }
    );
    const result = prepareConsolidatedImport(bundle, MP, (r) => (r.resourceType === 'Condition' && !(r as Condition).subject ? ['Condition.subject is required'] : []));
    expect(result.skipped).toEqual([
      { reference: 'Binary/bin-1', reason: 'Binary is not imported' },
      { reference: 'Patient/someone-else', reason: 'a Patient other than the record of this query' },
      { reference: `Encounter/${ENC}`, reason: 'repeated in the bundle (the first one is imported)' },
      { reference: 'Condition/no-subject', reason: 'invalid: Condition.subject is required' },
    ]);
  });

  test('a reference to an invalid resource becomes a logical reference', () => {
    const result = prepareConsolidatedImport(quirkyBundle(), MP, (r) => (r.resourceType === 'Condition' ? ['bad'] : []));
    const encounter = result.items.find((i) => i.resourceType === 'Encounter')?.resource as Encounter;
    expect(encounter.diagnosis?.[0].condition).toEqual({ type: 'Condition', identifier: { system: metriportResourceSystem('Condition'), value: COND.toLowerCase() } });
  });

  test('resolveTokens puts real references or logical ones in place of tokens', () => {
    const encounter = byType('Encounter') as (typeof prepared.items)[number];
    const resolved = resolveTokens(encounter.resource as Encounter, (target) =>
      target === 'patient' ? 'Patient/p1' : target === byType('Condition')?.index ? 'Condition/c1' : { type: 'Practitioner', identifier: { system: 's', value: 'v' } }
    );
    expect(resolved.subject?.reference).toBe('Patient/p1');
    expect(resolved.diagnosis?.[0].condition.reference).toBe('Condition/c1');
    expect(resolved.participant?.[0].individual).toEqual({ type: 'Practitioner', identifier: { system: 's', value: 'v' } });
  });

  test('references inside contained resources are resolved; references to another Patient stay logical', () => {
    const bundle = quirkyBundle();
    const document = bundle.entry?.find((e) => e.resource?.resourceType === 'DocumentReference')?.resource as DocumentReference;
    document.contained = [
      ...(document.contained ?? []),
      { resourceType: 'PractitionerRole', id: 'role', practitioner: { reference: 'Practitioner/prac-1' } },
    ];
    document.context = { related: [{ reference: 'Patient/someone-else' }] };
    bundle.entry?.push({ fullUrl: 'urn:id:someone-else', resource: { resourceType: 'Patient', id: 'someone-else' } });
    const result = prepareConsolidatedImport(bundle, MP);
    const practitioner = result.items.find((i) => i.resourceType === 'Practitioner') as (typeof result.items)[number];
    const prepared = result.items.find((i) => i.resourceType === 'DocumentReference')?.resource as DocumentReference;
    const role = prepared.contained?.find((c) => c.resourceType === 'PractitionerRole') as PractitionerRole;
    expect(role.practitioner?.reference).toBe(entryToken(practitioner.index));
    expect(prepared.author?.[0].reference).toBe('#org');
    expect(prepared.context?.related?.[0]).toEqual({
      type: 'Patient',
      identifier: { system: 'https://metriport.com/fhir/identifiers/patient-id', value: 'someone-else' },
    });
    expect(prepared.subject?.reference).toBe(PATIENT_TOKEN);
  });
});
