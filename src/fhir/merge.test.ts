import type { Encounter, Patient } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { SOURCE_TIME_EXTENSION } from '../constants.ts';
import type { ResourcePlan } from '../mapping/plan.ts';
import { mergeResource, newResource, sourceTimeOf } from './merge.ts';

const MRN = { system: 'https://northside.example.org/fhir/sid/mrn', value: '1' };
const stored: Patient = {
  resourceType: 'Patient',
  id: 'p1',
  meta: { versionId: 'v1' },
  identifier: [MRN, { system: 'https://other-feed.example/id', value: 'X9' }],
  name: [{ family: 'Old' }],
  gender: 'female',
  generalPractitioner: [{ reference: 'Practitioner/gp' }],
  extension: [{ url: SOURCE_TIME_EXTENSION, valueInstant: '2024-01-01T10:00:00Z' }],
};
const plan = (resource: Partial<Patient>, extra: Partial<ResourcePlan<Patient>> = {}): ResourcePlan<Patient> => ({
  key: 'Patient',
  resource: { resourceType: 'Patient', identifier: [MRN], ...resource },
  identifiers: [MRN],
  merge: 'overlay',
  ...extra,
});

describe('mergeResource', () => {
  test('overlay replaces what the message carries, keeps the rest and every identifier', () => {
    const merged = mergeResource(stored, plan({ name: [{ family: 'New' }] }), '2024-02-01T00:00:00Z');
    expect(merged.name).toEqual([{ family: 'New' }]);
    expect(merged.gender).toBe('female');
    expect(merged.generalPractitioner).toEqual(stored.generalPractitioner);
    expect(merged.identifier).toEqual(stored.identifier);
    expect(merged.id).toBe('p1');
    expect(sourceTimeOf(merged)).toBe('2024-02-01T00:00:00Z');
  });

  test('a message older than the stored state only fills gaps', () => {
    const merged = mergeResource(stored, plan({ name: [{ family: 'Older' }], birthDate: '1980-01-01' }), '2023-12-31T00:00:00Z');
    expect(merged.name).toEqual([{ family: 'Old' }]);
    expect(merged.birthDate).toBe('1980-01-01');
    expect(sourceTimeOf(merged)).toBe('2024-01-01T10:00:00Z');
  });

  test('fill and keep never overwrite; keep adds identifiers only', () => {
    expect(mergeResource(stored, plan({ gender: 'male' }, { merge: 'fill' })).gender).toBe('female');
    const kept = mergeResource(stored, plan({ gender: 'male', identifier: [{ system: 'urn:x', value: '2' }] }, { merge: 'keep' }));
    expect(kept.gender).toBe('female');
    expect(kept.identifier).toContainEqual({ system: 'urn:x', value: '2' });
  });

  test('explicit nulls clear elements, dotted paths too; defaults never overwrite', () => {
    expect(mergeResource(stored, plan({}, { clear: ['gender'] })).gender).toBeUndefined();
    const encounter: Encounter = {
      resourceType: 'Encounter',
      id: 'e1',
      status: 'finished',
      class: { code: 'IMP' },
      period: { start: '2024-01-01', end: '2024-01-05' },
    };
    const reopened = mergeResource(encounter, {
      key: 'Encounter',
      resource: { resourceType: 'Encounter', status: 'in-progress', class: { code: 'IMP' } },
      identifiers: [MRN],
      merge: 'overlay',
      clear: ['period.end'],
    });
    expect(reopened.period).toEqual({ start: '2024-01-01' });
    const unknown = mergeResource(encounter, {
      key: 'Encounter',
      resource: { resourceType: 'Encounter', status: 'unknown', class: { code: 'IMP' } },
      identifiers: [MRN],
      merge: 'overlay',
      defaultsOnly: ['status'],
    });
    expect(unknown.status).toBe('finished');
  });

  test('an Encounter keeps its location history across transfers', () => {
    const admitted: Encounter = {
      resourceType: 'Encounter',
      id: 'e1',
      status: 'in-progress',
      class: { code: 'IMP' },
      location: [{ location: { reference: 'Location/ward-a' }, status: 'active', period: { start: '2024-01-01T08:00:00Z' } }],
    };
    const transfer: ResourcePlan<Encounter> = {
      key: 'Encounter',
      resource: {
        resourceType: 'Encounter',
        status: 'in-progress',
        class: { code: 'IMP' },
        location: [{ location: { reference: 'Location/icu-3' }, status: 'active', period: { start: '2024-01-02T09:00:00Z' } }],
      },
      identifiers: [MRN],
      merge: 'overlay',
    };
    const transferred = mergeResource(admitted, transfer);
    expect(transferred.location).toEqual([
      { location: { reference: 'Location/ward-a' }, status: 'completed', period: { start: '2024-01-01T08:00:00Z', end: '2024-01-02T09:00:00Z' } },
      { location: { reference: 'Location/icu-3' }, status: 'active', period: { start: '2024-01-02T09:00:00Z' } },
    ]);
    // The same transfer again changes nothing.
    expect(mergeResource(transferred, transfer).location).toEqual(transferred.location);
  });

  test('merged patients accumulate links; new resources get the event time', () => {
    const linked = mergeResource(
      { ...stored, link: [{ type: 'replaces', other: { reference: 'Patient/a' } }] },
      plan({ link: [{ type: 'replaces', other: { reference: 'Patient/b' } }] })
    );
    expect(linked.link?.map((l) => l.other.reference)).toEqual(['Patient/a', 'Patient/b']);
    const created = newResource(plan({ name: [{ family: 'New' }] }), '2024-03-01T00:00:00Z');
    expect(sourceTimeOf(created)).toBe('2024-03-01T00:00:00Z');
  });
});

describe('element rules', () => {
  const encounter: Encounter = {
    resourceType: 'Encounter',
    id: 'e1',
    status: 'in-progress',
    class: { code: 'IMP' },
    period: { start: '2024-01-01T08:00:00Z' },
  };
  const plan = (resource: Partial<Encounter>): ResourcePlan<Encounter> => ({
    key: 'Encounter',
    resource: { resourceType: 'Encounter', status: 'finished', class: { code: 'IMP' }, ...resource },
    identifiers: [MRN],
    merge: 'overlay',
  });

  test('a period is merged per bound', () => {
    expect(mergeResource(encounter, plan({ period: { end: '2024-01-03T10:00:00Z' } })).period).toEqual({
      start: '2024-01-01T08:00:00Z',
      end: '2024-01-03T10:00:00Z',
    });
  });

  test('a choice element replaces the stored one of another type', () => {
    const dead: Patient = mergeResource<Patient>({ ...stored, deceasedBoolean: true }, { key: 'Patient', resource: { resourceType: 'Patient', deceasedDateTime: '2024-05-01' }, identifiers: [MRN], merge: 'overlay' });
    expect(dead.deceasedDateTime).toBe('2024-05-01');
    expect(dead.deceasedBoolean).toBeUndefined();
    const filled: Patient = mergeResource<Patient>({ ...stored, deceasedBoolean: true }, { key: 'Patient', resource: { resourceType: 'Patient', deceasedDateTime: '2024-05-01' }, identifiers: [MRN], merge: 'fill' });
    expect(filled.deceasedDateTime).toBeUndefined();
  });
});
