import type { Bundle, Coding, Identifier, Reference, Resource, ResourceType } from '@medplum/fhirtypes';
import { mapObjects } from '../fhir/walk.ts';
import { withoutLargeInlineData } from './attachments.ts';
import { METRIPORT_RESOURCE_TAG_SYSTEM, METRIPORT_SOURCE_TAG, metriportResourceSystem } from './constants.ts';

/**
 * Resource types the hub imports from a consolidated bundle: Metriport's converter output
 * (facts §6.3) plus the support types they reference. Anything else (Binary, Bundle, Patient
 * other than the record's own) is counted as skipped, never written.
 */
export const IMPORTED_TYPES: ReadonlySet<string> = new Set([
  'AllergyIntolerance',
  'CarePlan',
  'CareTeam',
  'Communication',
  'Composition',
  'Condition',
  'Consent',
  'Coverage',
  'Device',
  'DiagnosticReport',
  'DocumentReference',
  'Encounter',
  'FamilyMemberHistory',
  'Goal',
  'Immunization',
  'Location',
  'Medication',
  'MedicationAdministration',
  'MedicationDispense',
  'MedicationRequest',
  'MedicationStatement',
  'Observation',
  'Organization',
  'Practitioner',
  'PractitionerRole',
  'Procedure',
  'Provenance',
  'RelatedPerson',
  'ServiceRequest',
  'Specimen',
  'Substance',
]);

/**
 * Imported types without a repeating `identifier` (Composition has at most one, Provenance none):
 * they are keyed by a tag instead, and whatever identifier the source gave is left alone.
 */
const TAG_KEYED_TYPES: ReadonlySet<string> = new Set(['Composition', 'Provenance']);

/** FHIR `instant` elements of imported types: Metriport sometimes sends a date or a dateTime there. */
const INSTANT_ELEMENTS: Readonly<Record<string, readonly string[]>> = {
  Observation: ['issued'],
  DiagnosticReport: ['issued'],
  DocumentReference: ['date'],
  Provenance: ['recorded'],
};

/** How an imported resource is found again on the next import. */
export type ImportKey =
  | { readonly kind: 'identifier'; readonly system: string; readonly value: string }
  | { readonly kind: 'tag'; readonly system: string; readonly code: string };

/** Placeholder, in a prepared resource, of a reference to another bundle entry or to the patient. */
const REF_TOKEN = 'metriport-entry:';
/** The token standing for the record's Patient. */
export const PATIENT_TOKEN = `${REF_TOKEN}patient`;

/** One bundle resource ready to merge. */
export interface ImportItem {
  /** Position among the prepared items. */
  readonly index: number;
  readonly resourceType: string;
  /** Its id in the bundle (the Metriport id). */
  readonly sourceId: string;
  readonly key: ImportKey;
  /**
   * The resource without id and server meta, keyed, tagged, with every reference to another
   * imported entry replaced by {@link entryToken} (see {@link resolveTokens}).
   */
  readonly resource: Resource;
  /** Items this one references. */
  readonly references: readonly number[];
}

/** An entry that is not imported, and why. */
export interface SkippedEntry {
  readonly reference: string;
  readonly reason: string;
}

/** A consolidated bundle turned into import items. */
export interface PreparedImport {
  readonly items: ImportItem[];
  readonly skipped: SkippedEntry[];
  /** References to resources absent from the bundle, kept as logical (identifier) references. */
  readonly danglingReferences: number;
}

/** Checks a resource before import; returns problems (empty when valid). */
export type ResourceCheck = (resource: Resource) => string[];

/**
 * Prepares a Metriport consolidated bundle for merging, without I/O:
 * - every imported resource gets its key: an identifier `metriport.com/fhir/identifiers/<type>-id`
 *   holding its Metriport id (per type: ids repeat across types), or a tag for types without a
 *   repeating identifier;
 * - references to other entries, in any of Metriport's forms (`Type/id`, `urn:uuid:` in either
 *   case, `urn:id:`), become tokens that the writer resolves to stored ids; references to the
 *   record's Patient become {@link PATIENT_TOKEN}; references to resources that are not in the
 *   bundle become logical references (an identifier with the Metriport key) instead of
 *   dangling ones; contained (`#id`) and absolute references are left alone;
 * - `instant` elements sent as dates are completed to an instant;
 * - resources that fail `check`, of types the hub does not import, or repeated, are skipped with
 *   the reason.
 * @param bundle - The downloaded searchset.
 * @param metriportPatientId - The Metriport patient id of the record.
 * @param check - Validation of each resource (e.g. `@medplum/core`'s `validateResource`).
 * @returns The items and what was skipped.
 */
export function prepareConsolidatedImport(bundle: Bundle, metriportPatientId: string, check?: ResourceCheck): PreparedImport {
  const skipped: SkippedEntry[] = [];
  // References to the record's Patient, in any form, point at the Medplum Patient. Other
  // Patients (none expected) are not this record: references to them stay logical.
  const patientKeys = new Set<string>(indexKeys({ resourceType: 'Patient', id: metriportPatientId }, undefined));
  const candidates: { resource: Resource; sourceId: string; fullUrl?: string }[] = [];
  const seen = new Set<string>();

  for (const [position, entry] of (bundle.entry ?? []).entries()) {
    const resource = entry.resource;
    const label = resource ? `${resource.resourceType}/${resource.id ?? `entry[${position}]`}` : `entry[${position}]`;
    if (!resource?.resourceType) {
      skipped.push({ reference: label, reason: 'entry without a resource' });
      continue;
    }
    if (resource.resourceType === 'Patient') {
      if (resource.id?.toLowerCase() === metriportPatientId.toLowerCase()) {
        indexKeys(resource, entry.fullUrl).forEach((key) => patientKeys.add(key));
      } else {
        skipped.push({ reference: label, reason: 'a Patient other than the record of this query' });
      }
      continue;
    }
    if (!resource.id) {
      skipped.push({ reference: label, reason: 'resource without an id (it cannot be keyed)' });
      continue;
    }
    if (!IMPORTED_TYPES.has(resource.resourceType)) {
      skipped.push({ reference: label, reason: `${resource.resourceType} is not imported` });
      continue;
    }
    const identity = `${resource.resourceType}/${resource.id}`;
    if (seen.has(identity)) {
      skipped.push({ reference: label, reason: 'repeated in the bundle (the first one is imported)' });
      continue;
    }
    seen.add(identity);
    candidates.push({ resource, sourceId: resource.id, fullUrl: entry.fullUrl });
  }

  // Validate first, so that a reference to a resource that will not be written is treated as
  // a reference to a resource that is not there.
  const accepted: typeof candidates = [];
  for (const candidate of candidates) {
    const normalized = normalizeInstants(withoutServerFields(candidate.resource));
    const problems = check ? check(withoutLargeInlineData(normalized)) : [];
    if (problems.length) {
      skipped.push({ reference: `${candidate.resource.resourceType}/${candidate.sourceId}`, reason: `invalid: ${problems.join('; ')}` });
    } else {
      accepted.push({ ...candidate, resource: normalized });
    }
  }

  const index = new Map<string, number>();
  accepted.forEach((candidate, i) => {
    for (const key of indexKeys(candidate.resource, candidate.fullUrl, candidate.sourceId)) {
      if (!index.has(key)) {
        index.set(key, i);
      }
    }
  });

  let danglingReferences = 0;
  const items = accepted.map((candidate, i): ImportItem => {
    const references = new Set<number>();
    const resource = rewriteReferences(candidate.resource, (reference) => {
      const key = normalizeReferenceKey(reference.reference as string);
      if (!key) {
        return reference;
      }
      if (patientKeys.has(key)) {
        return { ...reference, reference: PATIENT_TOKEN };
      }
      const target = index.get(key);
      if (target !== undefined) {
        references.add(target);
        return { ...reference, reference: entryToken(target) };
      }
      danglingReferences++;
      return logicalReference(reference, key);
    });
    const key = importKey(candidate.resource.resourceType, candidate.sourceId);
    return { index: i, resourceType: candidate.resource.resourceType, sourceId: candidate.sourceId, key, resource: keyed(resource, key), references: [...references] };
  });
  return { items, skipped, danglingReferences };
}

/**
 * @param index - An item index.
 * @returns The token standing for that item in prepared resources.
 */
export function entryToken(index: number): string {
  return `${REF_TOKEN}${index}`;
}

/**
 * Replaces the tokens of a prepared resource with real references.
 * @param resource - A prepared resource (not modified).
 * @param resolve - The reference for an item index, or for the patient (`'patient'`): a
 * reference string, or a logical reference when the target was not written.
 * @returns A copy with references resolved.
 */
export function resolveTokens<T extends Resource>(resource: T, resolve: (target: number | 'patient') => string | Reference): T {
  return rewriteReferences(resource, (reference) => {
    const value = reference.reference as string;
    if (!value.startsWith(REF_TOKEN)) {
      return reference;
    }
    const target = resolve(value === PATIENT_TOKEN ? 'patient' : Number(value.slice(REF_TOKEN.length)));
    if (typeof target === 'string') {
      return { ...reference, reference: target };
    }
    const { reference: _token, ...rest } = reference;
    return { ...rest, ...target, identifier: rest.identifier ?? target.identifier, type: rest.type ?? target.type };
  });
}

/**
 * A logical reference to an imported item that could not be written: its type and Metriport key.
 * @param item - The item.
 * @returns The reference.
 */
export function logicalItemReference(item: ImportItem): Reference {
  return item.key.kind === 'identifier'
    ? { type: item.resourceType as ResourceType, identifier: { system: item.key.system, value: item.key.value } }
    : { type: item.resourceType as ResourceType, identifier: { system: metriportResourceSystem(item.resourceType), value: item.sourceId } };
}

/**
 * @param resourceType - The resource type.
 * @param sourceId - The Metriport id.
 * @returns How the resource is keyed.
 */
export function importKey(resourceType: string, sourceId: string): ImportKey {
  return TAG_KEYED_TYPES.has(resourceType)
    ? { kind: 'tag', system: METRIPORT_RESOURCE_TAG_SYSTEM, code: `${resourceType}/${sourceId}` }
    : { kind: 'identifier', system: metriportResourceSystem(resourceType), value: sourceId };
}

/**
 * @param resource - A resource.
 * @param key - Its import key.
 * @returns True when the stored resource carries the key.
 */
export function hasImportKey(resource: Resource, key: ImportKey): boolean {
  if (key.kind === 'tag') {
    return Boolean(resource.meta?.tag?.some((t) => t.system === key.system && t.code === key.code));
  }
  const identifiers = (resource as { identifier?: Identifier[] }).identifier;
  return Boolean(identifiers?.some((i) => i.system === key.system && i.value === key.value));
}

function keyed(resource: Resource, key: ImportKey): Resource {
  const tags: Coding[] = [{ ...METRIPORT_SOURCE_TAG }];
  if (key.kind === 'tag') {
    tags.push({ system: key.system, code: key.code });
  }
  const result = { ...resource, meta: { ...resource.meta, tag: [...(resource.meta?.tag ?? []), ...tags] } } as Resource & {
    identifier?: Identifier[];
  };
  if (key.kind === 'identifier') {
    const identifiers = (result.identifier ?? []).filter((i) => !(i.system === key.system && i.value === key.value));
    result.identifier = [...identifiers, { system: key.system, value: key.value }];
  }
  return result;
}

/**
 * Keys under which a bundle entry can be referenced: `type/id`, its fullUrl and the URN forms of
 * its id, all lowercased (Metriport mixes upper- and lowercase UUIDs between ids and references).
 */
function indexKeys(resource: Resource, fullUrl: string | undefined, id = resource.id): string[] {
  const keys: string[] = [];
  if (id) {
    const lower = id.toLowerCase();
    keys.push(`${resource.resourceType.toLowerCase()}/${lower}`, `urn:uuid:${lower}`, `urn:id:${lower}`);
  }
  if (fullUrl) {
    keys.push(fullUrl.toLowerCase());
  }
  return keys;
}

/**
 * @param reference - A `Reference.reference` value.
 * @returns Its lookup key, or undefined for references left as they are (contained, absolute
 * URLs, conditional or versioned forms the bundle does not use).
 */
function normalizeReferenceKey(reference: string): string | undefined {
  if (/^urn:(uuid|id):./i.test(reference)) {
    return reference.toLowerCase();
  }
  const relative = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(reference);
  return relative ? `${relative[1].toLowerCase()}/${relative[2].toLowerCase()}` : undefined;
}

/**
 * A reference to a resource the bundle does not hold: the literal reference would point nowhere
 * on this server, so it becomes a logical reference carrying the Metriport key (or the URN).
 */
function logicalReference(reference: Reference, key: string): Reference {
  const { reference: original, ...rest } = reference;
  const relative = /^([A-Z][A-Za-z]+)\/(.+)$/.exec(original as string);
  if (relative) {
    return { ...rest, type: rest.type ?? (relative[1] as ResourceType), identifier: rest.identifier ?? { system: metriportResourceSystem(relative[1]), value: relative[2] } };
  }
  return { ...rest, identifier: rest.identifier ?? { system: 'urn:ietf:rfc:3986', value: key } };
}

function withoutServerFields(resource: Resource): Resource {
  const { id: _id, meta, ...rest } = resource;
  return (meta?.source || meta?.profile ? { ...rest, meta: { source: meta.source, profile: meta.profile } } : rest) as Resource;
}

/**
 * Completes `instant` elements sent with less precision: a date becomes midnight UTC, a
 * dateTime without seconds or zone is read as UTC. Unreadable values are left for validation.
 */
function normalizeInstants(resource: Resource): Resource {
  const elements = INSTANT_ELEMENTS[resource.resourceType];
  if (!elements) {
    return resource;
  }
  const result = { ...resource } as Record<string, unknown>;
  for (const element of elements) {
    const value = result[element];
    if (typeof value !== 'string' || /T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
      continue;
    }
    if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
      result[element] = `${value}T00:00:00.000Z`;
    } else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value)) {
      result[element] = new Date(`${value}Z`).toISOString();
    }
  }
  return result as unknown as Resource;
}

/**
 * Copies a resource, passing every Reference (an object with a string `reference`) through `map`,
 * including those inside contained resources (they point at bundle entries like any other);
 * `#id` references to contained resources are left as they are.
 */
function rewriteReferences<T extends Resource>(resource: T, map: (reference: Reference) => Reference): T {
  return mapObjects(resource, (object) =>
    typeof object.reference === 'string' && !object.reference.startsWith('#') ? (map(object as Reference) as Record<string, unknown>) : object
  );
}
