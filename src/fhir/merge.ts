import { deepClone } from '@medplum/core';
import type { Attachment, EncounterLocation, Extension, Identifier, PatientLink, Reference, Resource } from '@medplum/fhirtypes';
import { PROVISIONAL_EXTENSION, SOURCE_TIME_EXTENSION } from '../constants.ts';
import type { MergeStrategy, ResourcePlan } from '../mapping/plan.ts';
import { mergeIdentifiers } from './identifiers.ts';

/** Elements the server owns and a merge never touches. */
const MANAGED = new Set(['resourceType', 'id', 'meta']);

/**
 * Element merges that are neither "replace" nor "keep": histories and lists where the message
 * adds to what is stored instead of replacing it.
 */
type ElementMerge = (existing: unknown, incoming: unknown, eventTime: string | undefined) => unknown;

const ELEMENT_MERGES: Record<string, ElementMerge> = {
  'Encounter.location': (existing, incoming, eventTime) =>
    mergeLocationHistory(existing as EncounterLocation[] | undefined, incoming as EncounterLocation[], eventTime),
  'Patient.link': (existing, incoming) => unionBy(existing as PatientLink[] | undefined, incoming as PatientLink[], (l) => `${l.type}|${l.other.reference}`),
  'DiagnosticReport.presentedForm': (existing, incoming) =>
    unionBy(existing as Attachment[] | undefined, incoming as Attachment[], (a) => a.hash ?? a.url ?? a.title ?? ''),
  'Encounter.diagnosis': (existing, incoming) =>
    unionBy(existing as { condition: Reference }[] | undefined, incoming as { condition: Reference }[], (d) => d.condition.reference ?? ''),
  // One tube can serve several orders, and one order several tubes: a message about one of them
  // must not drop the others.
  'Specimen.request': (existing, incoming) => unionBy(existing as Reference[] | undefined, incoming as Reference[], referenceKey),
  'ServiceRequest.specimen': (existing, incoming) => unionBy(existing as Reference[] | undefined, incoming as Reference[], referenceKey),
};

/** FHIR type names that end a choice element (`deceased[x]` → `deceasedBoolean`, `deceasedDateTime`). */
const CHOICE_TYPES = [
  'Boolean', 'Integer', 'Decimal', 'String', 'Date', 'DateTime', 'Time', 'Instant', 'Uri', 'Url', 'Canonical', 'Code',
  'Quantity', 'CodeableConcept', 'Coding', 'Period', 'Range', 'Ratio', 'SampledData', 'Attachment', 'Reference', 'Age',
  'Duration', 'Timing', 'Identifier', 'Annotation', 'Money', 'Base64Binary', 'PositiveInt', 'UnsignedInt', 'Id', 'Oid', 'Uuid',
];
const CHOICE_SUFFIX = new RegExp(`^([a-z][A-Za-z]*?)(${CHOICE_TYPES.join('|')})$`);

/**
 * Combines a stored resource with a planned one (pure). Identifiers are always merged (another
 * feed's identifiers are never dropped); under `overlay` the message's elements replace the
 * stored ones, under `fill` only missing elements are added, under `keep` nothing else changes.
 * A message older than the one that last wrote the resource (by the `source-event-time`
 * extension) is merged as `fill`, so out-of-order messages converge on the newest state.
 * @param existing - The stored resource.
 * @param plan - The planned resource (references already resolved).
 * @param eventTime - The message's event time (FHIR instant), if known.
 * @returns The merged resource (id and meta of the stored one).
 */
export function mergeResource<T extends Resource>(existing: T, plan: ResourcePlan<T>, eventTime?: string): T {
  const incoming = plan.resource as unknown as Record<string, unknown>;
  const stored = existing as unknown as Record<string, unknown>;
  const storedTime = sourceTimeOf(existing);
  let strategy: MergeStrategy = plan.merge;
  if (strategy === 'overlay' && storedTime && eventTime && Date.parse(eventTime) < Date.parse(storedTime)) {
    strategy = 'fill';
  }
  const provisional = new Set(provisionalElements(existing));
  const result: Record<string, unknown> = { ...stored };
  if (strategy !== 'keep') {
    for (const [key, value] of Object.entries(incoming)) {
      if (MANAGED.has(key) || key === 'identifier' || key === 'extension' || value === undefined) {
        continue;
      }
      const special = ELEMENT_MERGES[`${existing.resourceType}.${key}`];
      const authoritative = plan.merge === 'overlay' && !plan.defaultsOnly?.includes(key);
      const sibling = choiceSibling(stored, key);
      if (special) {
        // History-like elements are unions, the same whatever order the messages arrive in; a
        // feed that is not authoritative for the resource only supplies them when none are stored.
        result[key] = plan.merge === 'overlay' || stored[key] === undefined ? special(stored[key], value, eventTime) : stored[key];
      } else if (authoritative && (strategy === 'overlay' || provisional.has(key) || (sibling && provisional.has(sibling)))) {
        // A choice element replaces whichever type was stored (deceasedBoolean vs deceasedDateTime).
        if (sibling) {
          delete result[sibling];
          provisional.delete(sibling);
        }
        result[key] = isPeriodElement(key) ? { ...(stored[key] as object | undefined), ...(value as object) } : value;
        provisional.delete(key);
      } else if (stored[key] === undefined && !sibling) {
        result[key] = value;
        if (!authoritative) {
          provisional.add(key);
        }
      }
    }
    if (strategy === 'overlay') {
      for (const path of plan.clear ?? []) {
        deletePath(result, path);
      }
    }
    const extension = mergeExtensions(stored.extension as Extension[] | undefined, incoming.extension as Extension[] | undefined, strategy);
    if (extension) {
      result.extension = extension;
    }
  }
  const identifier = mergeIdentifiers(stored.identifier as Identifier[] | undefined, incoming.identifier as Identifier[] | undefined);
  if (identifier.length) {
    result.identifier = identifier;
  }
  return withProvisional(withSourceTime(result as unknown as T, latest(storedTime, eventTime)), [...provisional]);
}

/**
 * The elements of a stored resource that came from a message that was not authoritative for
 * them: a default for a required element (a status an event did not imply), or everything a
 * `fill` plan created (an order first seen in its results, demographics from a lab feed). The
 * first authoritative value replaces them even when its message is older, so the record
 * converges on what the authoritative feed said whatever order the messages arrive in.
 * @param resource - A stored resource.
 * @returns Element names.
 */
export function provisionalElements(resource: Resource): string[] {
  const value = (resource as { extension?: Extension[] }).extension?.find((e) => e.url === PROVISIONAL_EXTENSION)?.valueString;
  return value ? value.split(',').filter(Boolean) : [];
}

function withProvisional<T extends Resource>(resource: T, elements: string[]): T {
  const others = ((resource as { extension?: Extension[] }).extension ?? []).filter((e) => e.url !== PROVISIONAL_EXTENSION);
  const present = elements.filter((e) => (resource as unknown as Record<string, unknown>)[e] !== undefined).sort();
  const extension = present.length ? [...others, { url: PROVISIONAL_EXTENSION, valueString: present.join(',') }] : others;
  const copy = { ...resource } as T & { extension?: Extension[] };
  if (extension.length) {
    copy.extension = extension;
  } else {
    delete copy.extension;
  }
  return copy;
}

/**
 * Prepares a planned resource for creation: its content, stamped with the event time.
 * @param plan - The planned resource (references already resolved).
 * @param eventTime - The message's event time.
 * @returns The resource to create.
 */
export function newResource<T extends Resource>(plan: ResourcePlan<T>, eventTime?: string): T {
  const resource = withSourceTime(deepClone(plan.resource), eventTime);
  if (!isDomainResource(resource)) {
    return resource;
  }
  const provisional =
    plan.merge === 'overlay'
      ? (plan.defaultsOnly ?? [])
      : Object.keys(plan.resource).filter((k) => !MANAGED.has(k) && k !== 'identifier' && k !== 'extension');
  return withProvisional(resource, provisional);
}

/**
 * @param resource - A resource.
 * @returns The `source-event-time` it carries, if any.
 */
export function sourceTimeOf(resource: Resource): string | undefined {
  return (resource as { extension?: Extension[] }).extension?.find((e) => e.url === SOURCE_TIME_EXTENSION)?.valueInstant;
}

function withSourceTime<T extends Resource>(resource: T, time: string | undefined): T {
  if (!time || !isDomainResource(resource)) {
    return resource;
  }
  const others = ((resource as { extension?: Extension[] }).extension ?? []).filter((e) => e.url !== SOURCE_TIME_EXTENSION);
  return { ...resource, extension: [...others, { url: SOURCE_TIME_EXTENSION, valueInstant: time }] };
}

function isDomainResource(resource: Resource): boolean {
  return resource.resourceType !== 'Binary' && resource.resourceType !== 'Bundle' && resource.resourceType !== 'Parameters';
}

function mergeExtensions(stored: Extension[] | undefined, incoming: Extension[] | undefined, strategy: MergeStrategy): Extension[] | undefined {
  const result = [...(stored ?? [])];
  for (const ext of incoming ?? []) {
    if (ext.url === SOURCE_TIME_EXTENSION) {
      continue;
    }
    const at = result.findIndex((e) => e.url === ext.url);
    if (at < 0) {
      result.push(ext);
    } else if (strategy === 'overlay') {
      result[at] = ext;
    }
  }
  return result.length ? result : undefined;
}

/**
 * Keeps an Encounter's location history, independent of the order messages arrive in: all stays
 * are collected (a stay is a location and its start), ordered by start, adjacent stays at the same
 * location are joined (an update re-stating the current bed is not a transfer), and every stay
 * but the last is completed when the next one starts. Stays that are only planned are kept aside.
 */
function mergeLocationHistory(
  existing: EncounterLocation[] | undefined,
  incoming: EncounterLocation[],
  eventTime: string | undefined
): EncounterLocation[] {
  const all = [...(existing ?? []), ...incoming].map((l) => ({ ...l, period: l.period ? { ...l.period } : undefined }));
  const planned = all.filter((l) => l.status !== 'active' && l.status !== 'completed');
  const started = all.filter((l) => (l.status === 'active' || l.status === 'completed') && (l.period?.start || !l.period?.end));
  // An entry with only an end (a transfer's "left this bed at") closes the stay it belongs to.
  for (const closing of all.filter((l) => !started.includes(l) && !planned.includes(l))) {
    const end = closing.period?.end as string;
    const stay = started
      .filter((l) => l.location.reference === closing.location.reference && (!l.period?.start || Date.parse(l.period.start) <= Date.parse(end)))
      .sort((a, b) => timeOf(b, eventTime).localeCompare(timeOf(a, eventTime)))[0];
    if (stay) {
      stay.status = 'completed';
      stay.period = { ...stay.period, end: latest(stay.period?.end, end) };
    } else {
      started.push(closing);
    }
  }
  const stays = started.sort((a, b) => timeOf(a, eventTime).localeCompare(timeOf(b, eventTime)));
  const timeline: EncounterLocation[] = [];
  for (const stay of stays) {
    const previous = timeline[timeline.length - 1];
    if (previous && previous.location.reference === stay.location.reference) {
      const start = earliest(previous.period?.start, stay.period?.start);
      const end = latest(previous.period?.end, stay.period?.end);
      previous.status = STATUS_RANK[stay.status ?? 'active'] >= STATUS_RANK[previous.status ?? 'active'] ? stay.status : previous.status;
      previous.period = start || end ? { ...(start ? { start } : {}), ...(end ? { end } : {}) } : undefined;
      previous.location = stay.location.display ? stay.location : previous.location;
    } else {
      timeline.push(stay);
    }
  }
  for (let i = 0; i < timeline.length - 1; i++) {
    const stay = timeline[i];
    const nextStart = timeline[i + 1].period?.start;
    if (stay.status === 'active') {
      stay.status = 'completed';
    }
    if (nextStart && !stay.period?.end) {
      stay.period = { ...stay.period, end: nextStart };
    }
  }
  const current = new Set(timeline.map((l) => l.location.reference));
  const stillPlanned = planned.filter((l, i) => !current.has(l.location.reference) && planned.findIndex((p) => p.location.reference === l.location.reference) === i);
  return [...timeline, ...stillPlanned].map((l) => (l.period ? l : omitPeriod(l)));
}

function timeOf(stay: EncounterLocation, eventTime: string | undefined): string {
  const time = stay.period?.start ?? stay.period?.end ?? eventTime ?? '';
  // Compare instants, not strings with different offsets.
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? time : new Date(ms).toISOString();
}

/** Location statuses by how far along they are: a later message cannot make a stay "planned" again. */
const STATUS_RANK: Record<string, number> = { planned: 0, reserved: 1, active: 2, completed: 3 };

function omitPeriod(entry: EncounterLocation): EncounterLocation {
  const { period: _period, ...rest } = entry;
  return rest;
}

function earliest(a: string | undefined, b: string | undefined): string | undefined {
  if (!a) {
    return b;
  }
  if (!b) {
    return a;
  }
  return Date.parse(a) <= Date.parse(b) ? a : b;
}

function referenceKey(ref: Reference): string {
  return ref.reference ?? ref.identifier?.value ?? ref.display ?? '';
}

/** A Period is merged per bound: a discharge that only sends the end keeps the stored start. */
function isPeriodElement(key: string): boolean {
  return key === 'period' || key.endsWith('Period');
}

/**
 * @param stored - The stored resource.
 * @param key - An element the message sets.
 * @returns The stored element of the same choice with another type, if any.
 */
function choiceSibling(stored: Record<string, unknown>, key: string): string | undefined {
  const match = CHOICE_SUFFIX.exec(key);
  if (!match) {
    return undefined;
  }
  return Object.keys(stored).find((k) => k !== key && CHOICE_SUFFIX.exec(k)?.[1] === match[1]);
}

function unionBy<T>(existing: T[] | undefined, incoming: T[], key: (item: T) => string): T[] {
  const result = [...(existing ?? [])];
  for (const item of incoming) {
    const at = result.findIndex((e) => key(e) === key(item));
    if (at < 0) {
      result.push(item);
    } else {
      result[at] = item;
    }
  }
  return result;
}

function deletePath(target: Record<string, unknown>, path: string): void {
  const parts = path.split('.');
  let parent: Record<string, unknown> | undefined;
  let node: Record<string, unknown> | undefined = target;
  for (let i = 0; i < parts.length - 1 && node; i++) {
    const next: unknown = node[parts[i]];
    parent = node;
    // Copied on the way down: the stored resource's nested objects are not changed in place.
    node = next && typeof next === 'object' ? (node[parts[i]] = { ...(next as Record<string, unknown>) }) : undefined;
  }
  if (node) {
    delete node[parts[parts.length - 1]];
    // An element left empty by the delete is removed too (FHIR forbids empty objects).
    if (parent && Object.keys(node).length === 0) {
      delete parent[parts[parts.length - 2]];
    }
  }
}

function latest(a: string | undefined, b: string | undefined): string | undefined {
  if (!a) {
    return b;
  }
  if (!b) {
    return a;
  }
  return Date.parse(a) >= Date.parse(b) ? a : b;
}
