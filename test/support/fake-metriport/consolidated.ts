import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { createHash } from 'node:crypto';
import { BUNDLE_SIZES, forEachReference, generateConsolidatedBundle } from '../metriport-bundles.ts';
import type { FakeConsolidatedQuery, FakePatient } from './types.ts';

/** Types Metriport adds back to a filtered bundle when a kept resource references them ("hydration"). */
const HYDRATED_TYPES: ReadonlySet<string> = new Set(['Location', 'Organization', 'Practitioner', 'Medication', 'Device', 'Substance', 'PractitionerRole']);

/** @returns The searchset Metriport sends, as is, when a patient has no data. */
export function emptySearchset(): Bundle {
  return { resourceType: 'Bundle', type: 'searchset', total: 0, entry: [] };
}

/**
 * The fake's default consolidated data: a small generated record for the patient (seeded by its
 * id, so the same patient gets the same record), narrowed to the requested types with the
 * support resources they reference.
 * @param patient - The patient.
 * @param query - The query.
 * @returns The bundle.
 */
export function defaultConsolidatedBundle(patient: FakePatient, query: FakeConsolidatedQuery): Bundle {
  const bundle = generateConsolidatedBundle({
    patient,
    resources: BUNDLE_SIZES.small,
    seed: createHash('sha256').update(patient.id).digest().readUInt32BE(0),
  });
  return query.resources.length ? narrowToTypes(bundle, query.resources) : bundle;
}

/**
 * Keeps the Patient, the requested types, and the support resources those reference.
 * @param bundle - The full bundle.
 * @param types - Requested resource types.
 * @returns The filtered bundle.
 */
export function narrowToTypes(bundle: Bundle, types: readonly string[]): Bundle {
  const wanted = new Set([...types, 'Patient']);
  const entries = bundle.entry ?? [];
  const byRef = new Map<string, BundleEntry>();
  for (const entry of entries) {
    const r = entry.resource as Resource;
    byRef.set(`${r.resourceType}/${r.id}`, entry);
  }
  const kept = new Set<BundleEntry>(entries.filter((e) => wanted.has(e.resource?.resourceType as string)));
  for (const entry of [...kept]) {
    forEachReference(entry.resource, (ref) => {
      const target = byRef.get(ref.reference as string);
      if (target && HYDRATED_TYPES.has(target.resource?.resourceType as string)) {
        kept.add(target);
      }
    });
  }
  const entry = entries.filter((e) => kept.has(e));
  return { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
}

/**
 * The bundle inside the webhook: one DocumentReference (no id, no status, entry without fullUrl)
 * whose attachments point at the uploaded files (MP `buildDocRefBundleWithAttachments`).
 * @param patientId - The Metriport patient id.
 * @param attachments - `{contentType, url}` per file, JSON first then its gzip copy.
 * @returns The searchset.
 */
export function documentReferenceBundle(patientId: string, attachments: readonly { contentType: string; url: string }[]): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: 1,
    entry: [
      {
        resource: {
          resourceType: 'DocumentReference',
          subject: { reference: `Patient/${patientId}` },
          content: attachments.map((a) => ({ attachment: { contentType: a.contentType, url: a.url } })),
        } as Resource,
      },
    ],
  };
}

/**
 * @param query - The query.
 * @returns `filters` of the webhook: stringified, empty strings when unset, types joined with ", ".
 */
export function webhookFilters(query: FakeConsolidatedQuery): Record<string, string> {
  return { resources: query.resources.join(', '), dateFrom: query.dateFrom ?? '', dateTo: query.dateTo ?? '', conversionType: query.conversionType };
}
