/**
 * The consolidated-bundle generator: sizes, determinism, the Patient, the reference graph, the
 * type mix, FHIR validity (with its two deliberate exceptions) and what variant 2 changes.
 */
import { validateResource } from '@medplum/core';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadFhirDefinitions } from '../../src/fhir/definitions.ts';
import type { GeneratedType } from './metriport-bundles.ts';
import {
  BUNDLE_SIZES,
  DATA_SOURCE_EXTENSION_URL,
  DOC_ID_EXTENSION_URL,
  forEachReference,
  generateConsolidatedBundle,
  SAMPLE_PATIENT,
  TYPE_SHARE_PERCENT,
} from './metriport-bundles.ts';

const patient = SAMPLE_PATIENT;

const typical = generateConsolidatedBundle({ patient, resources: BUNDLE_SIZES.typical, seed: 42 });
const typical2 = generateConsolidatedBundle({ patient, resources: BUNDLE_SIZES.typical, seed: 42, variant: 2 });

function resources(bundle: Bundle): Resource[] {
  return (bundle.entry ?? []).map((e) => e.resource as Resource);
}

function keyOf(r: Resource): string {
  return `${r.resourceType}/${r.id}`;
}

/** @returns References (`Type/id`) that name no resource of the bundle; `#id` ones checked against `contained`. */
function unresolved(bundle: Bundle): string[] {
  const present = new Set(resources(bundle).map(keyOf));
  const missing: string[] = [];
  for (const resource of resources(bundle)) {
    const contained = new Set((resource as { contained?: Resource[] }).contained?.map((c) => `#${c.id}`));
    forEachReference(resource, (ref) => {
      const reference = ref.reference as string;
      if (reference.startsWith('#') ? !contained.has(reference) : !present.has(reference)) {
        missing.push(reference);
      }
    });
  }
  return missing;
}

describe('generateConsolidatedBundle', () => {
  beforeAll(() => loadFhirDefinitions());

  test('sizes are within 1 % of the request, in the searchset container', () => {
    for (const size of [BUNDLE_SIZES.small, BUNDLE_SIZES.typical, 500, 3000]) {
      const bundle = generateConsolidatedBundle({ patient, resources: size, seed: 3 });
      expect(bundle.resourceType).toBe('Bundle');
      expect(bundle.type).toBe('searchset');
      expect(bundle.total).toBe(bundle.entry?.length);
      expect(Math.abs((bundle.entry?.length ?? 0) - size)).toBeLessThanOrEqual(size * 0.01);
    }
  });

  test('the large tier is generated quickly', () => {
    const started = performance.now();
    const bundle = generateConsolidatedBundle({ patient, resources: BUNDLE_SIZES.large, seed: 9 });
    expect(performance.now() - started).toBeLessThan(3000);
    expect(Math.abs((bundle.entry?.length ?? 0) - BUNDLE_SIZES.large)).toBeLessThanOrEqual(500);
  });

  test('the same seed gives the same bundle, another seed another one', () => {
    const again = generateConsolidatedBundle({ patient, resources: BUNDLE_SIZES.typical, seed: 42 });
    expect(JSON.stringify(again)).toBe(JSON.stringify(typical));
    const other = generateConsolidatedBundle({ patient, resources: BUNDLE_SIZES.typical, seed: 43 });
    expect(other.entry?.[1].resource?.id).not.toBe(typical.entry?.[1].resource?.id);
  });

  test('exactly one Patient, rebuilt from the demographics', () => {
    const patients = resources(typical).filter((r) => r.resourceType === 'Patient');
    expect(patients).toHaveLength(1);
    expect(patients[0]).toMatchObject({
      id: patient.id,
      name: [{ family: 'Doe', given: ['Jane'] }],
      gender: 'female',
      birthDate: '1980-05-17',
      address: [{ line: ['1 Main St'], city: 'Chicago', state: 'IL', postalCode: '60601', country: 'USA' }],
      telecom: [
        { system: 'phone', value: '3125550100' },
        { system: 'email', value: 'jane@example.com' },
      ],
    });
  });

  test('fullUrls: urn:uuid for UUIDs of either case, urn:id otherwise; a few of each odd kind', () => {
    const entries = typical.entry ?? [];
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
    let upper = 0;
    let nonUuid = 0;
    for (const entry of entries) {
      const id = entry.resource?.id as string;
      if (uuid.test(id)) {
        expect(entry.fullUrl).toBe(`urn:uuid:${id}`);
        upper += id !== id.toLowerCase() ? 1 : 0;
      } else {
        expect(entry.fullUrl).toBe(`urn:id:${id}`);
        nonUuid++;
      }
    }
    expect(upper / entries.length).toBeGreaterThan(0.005);
    expect(upper / entries.length).toBeLessThan(0.02);
    expect(nonUuid / entries.length).toBeGreaterThan(0.005);
    expect(nonUuid / entries.length).toBeLessThan(0.02);
  });

  test('every reference resolves in the bundle except the three deliberate dangling ones', () => {
    const missing = unresolved(typical);
    expect(missing).toHaveLength(3);
    expect(missing.filter((r) => r.startsWith('Practitioner/'))).toHaveLength(2);
    expect(missing.filter((r) => r.startsWith('Organization/'))).toHaveLength(1);
    for (const r of resources(typical)) {
      forEachReference(r, (ref) => expect(ref.reference).toMatch(/^([A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}|#[A-Za-z0-9\-.]+)$/));
    }
  });

  test('the reference graph looks like a converted record', () => {
    const all = resources(typical);
    const byKey = new Map(all.map((r) => [keyOf(r), r]));
    const refs = (type: string, pick: (r: never) => unknown): string[] =>
      all
        .filter((r) => r.resourceType === type)
        .flatMap((r) => {
          const found: string[] = [];
          forEachReference(pick(r as never), (ref) => found.push(ref.reference as string));
          return found;
        });
    const patientRef = `Patient/${patient.id}`;
    expect(refs('Condition', (r: { subject: unknown }) => r.subject).every((x) => x === patientRef)).toBe(true);
    expect(refs('Observation', (r: { encounter: unknown }) => r.encounter).every((x) => x.startsWith('Encounter/'))).toBe(true);
    expect(refs('DiagnosticReport', (r: { result: unknown }) => r.result).every((x) => byKey.get(x)?.resourceType === 'Observation')).toBe(true);
    expect(refs('Encounter', (r: { serviceProvider: unknown }) => r.serviceProvider).every((x) => x.startsWith('Organization/'))).toBe(true);
    expect(refs('Encounter', (r: { location: unknown }) => r.location).every((x) => x.startsWith('Location/'))).toBe(true);
    expect(refs('MedicationRequest', (r: { medicationReference: unknown }) => r.medicationReference).every((x) => x.startsWith('Medication/'))).toBe(true);
    expect(refs('Coverage', (r: { payor: unknown }) => r.payor).every((x) => x.startsWith('Organization/'))).toBe(true);
    expect(refs('Provenance', (r: { agent: unknown }) => r.agent).every((x) => x.startsWith('Organization/'))).toBe(true);
    expect(refs('Composition', (r: { section: unknown }) => r.section).length).toBeGreaterThan(0);

    // An Encounter's diagnosis and that Condition's encounter point at each other.
    const cycles = all.filter((r) => {
      if (r.resourceType !== 'Encounter' || !r.diagnosis) {
        return false;
      }
      const condition = byKey.get(r.diagnosis[0].condition.reference as string);
      return condition?.resourceType === 'Condition' && condition.encounter?.reference === keyOf(r);
    });
    expect(cycles.length).toBeGreaterThan(10);
  });

  test('the type mix follows Metriport converter counts', () => {
    const counts = new Map<string, number>();
    for (const r of resources(typical)) {
      counts.set(r.resourceType, (counts.get(r.resourceType) ?? 0) + 1);
    }
    const total = typical.entry?.length ?? 0;
    for (const [type, share] of Object.entries(TYPE_SHARE_PERCENT) as [GeneratedType, number][]) {
      const actual = ((counts.get(type) ?? 0) / total) * 100;
      expect(Math.abs(actual - share), `${type}: ${actual.toFixed(2)} % vs ${share} %`).toBeLessThanOrEqual(Math.max(0.05, share * 0.1));
      expect(counts.get(type), type).toBeGreaterThan(0);
    }
  });

  test('Metriport provenance hints: meta.source always, doc-id on most, data-source on some', () => {
    const others = resources(typical).filter((r) => r.resourceType !== 'Patient');
    expect(others.every((r) => typeof r.meta?.source === 'string')).toBe(true);
    const withExtension = (url: string): number =>
      others.filter((r) => (r as { extension?: { url: string }[] }).extension?.some((e) => e.url === url)).length / others.length;
    expect(withExtension(DOC_ID_EXTENSION_URL)).toBeGreaterThan(0.9);
    expect(withExtension(DATA_SOURCE_EXTENSION_URL)).toBeGreaterThan(0.1);
    expect(withExtension(DATA_SOURCE_EXTENSION_URL)).toBeLessThan(0.3);
  });

  test('edge cases are present', () => {
    const all = resources(typical);
    const practitionerIds = new Set(all.filter((r) => r.resourceType === 'Practitioner').map((r) => r.id));
    expect(all.some((r) => r.resourceType === 'Organization' && practitionerIds.has(r.id))).toBe(true);

    const docs = all.filter((r) => r.resourceType === 'DocumentReference');
    expect(docs.some((d) => /^\d{4}-\d{2}-\d{2}$/.test(d.date ?? ''))).toBe(true);
    expect(docs.some((d) => d.content[0].attachment.data && d.content[0].attachment.contentType === 'text/plain')).toBe(true);
    expect(docs.some((d) => d.content[0].attachment.url?.startsWith('https://'))).toBe(true);
    expect(docs.some((d) => d.author?.[0].reference === '#author-org' && d.contained?.[0].resourceType === 'Organization')).toBe(true);
    expect(docs.every((d) => d.docStatus !== 'preliminary')).toBe(true);

    const observations = all.filter((r) => r.resourceType === 'Observation');
    expect(observations.filter((o) => o.issued && !o.issued.includes('T'))).toHaveLength(1);

    const compositions = all.filter((r) => r.resourceType === 'Composition');
    expect(compositions.every((c) => c.identifier && !Array.isArray(c.identifier))).toBe(true);
    const provenances = all.filter((r) => r.resourceType === 'Provenance');
    expect(provenances.length).toBeGreaterThan(0);
    expect(provenances.every((p) => !('identifier' in p))).toBe(true);
  });

  test('every resource is valid FHIR R4, except the two bare dates in instant elements', () => {
    for (const bundle of [typical, typical2]) {
      const failures: string[] = [];
      for (const resource of resources(bundle)) {
        try {
          validateResource(resource);
        } catch (err) {
          const issues = (err as { outcome?: { issue?: { expression?: string[] }[] } }).outcome?.issue ?? [];
          failures.push(`${resource.resourceType}: ${issues.map((i) => i.expression?.join()).join('; ') || (err as Error).message}`);
        }
      }
      expect(failures.sort()).toEqual(['DocumentReference: DocumentReference.date', 'Observation: Observation.issued']);
    }
  });

  test('variant 2: a later query of the same record', () => {
    const before = new Map(resources(typical).map((r) => [keyOf(r), r]));
    const after = new Map(resources(typical2).map((r) => [keyOf(r), r]));
    const total = before.size;
    const gone = [...before.keys()].filter((k) => !after.has(k));
    const added = [...after.keys()].filter((k) => !before.has(k));
    const changed = [...after.keys()].filter((k) => before.has(k) && JSON.stringify(before.get(k)) !== JSON.stringify(after.get(k)));

    expect(gone.length / total).toBeGreaterThan(0.015);
    expect(gone.length / total).toBeLessThan(0.03);
    expect(added.length / total).toBeGreaterThan(0.01);
    expect(added.length / total).toBeLessThan(0.03);
    // About 5 % changed values or statuses, plus the resources whose references moved to a merged id.
    expect(changed.length / total).toBeGreaterThan(0.04);
    expect(changed.length / total).toBeLessThan(0.08);
    expect(Math.abs(after.size - total)).toBeLessThanOrEqual(total * 0.01);

    // Merged: ids that other resources referenced are gone, and their references moved to a survivor.
    const referencedBefore = new Set<string>();
    for (const r of before.values()) {
      forEachReference(r, (ref) => referencedBefore.add(ref.reference as string));
    }
    const merged = gone.filter((k) => referencedBefore.has(k));
    expect(merged.length).toBeGreaterThanOrEqual(2);
    expect(unresolved(typical2).filter((r) => merged.includes(r))).toEqual([]);
    expect(unresolved(typical2)).toHaveLength(3);

    const again = generateConsolidatedBundle({ patient, resources: BUNDLE_SIZES.typical, seed: 42, variant: 2 });
    expect(JSON.stringify(again)).toBe(JSON.stringify(typical2));
  });
});
