import type { MedplumClient, WithId } from '@medplum/core';
import { deepEquals, normalizeErrorString, stringify } from '@medplum/core';
import type { Attachment, Bundle, BundleEntry, Identifier, Resource } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { randomUUID } from 'node:crypto';
// Imported explicitly: the stock bot sandbox has no global setTimeout.
import { setTimeout as sleep } from 'node:timers/promises';
import type { MessagePlan, ResourcePlan } from '../mapping/plan.ts';
import { LOCAL_REFERENCE_PREFIX } from '../mapping/plan.ts';
import { mergeResource, newResource } from './merge.ts';

/** The stock server refuses transactions with more update entries (fhir-router `maxUpdates`). */
export const MAX_UPDATES_PER_TRANSACTION = 50;
/**
 * Version conflicts (another message wrote the same resource first) and the short window of a
 * create race retry the whole message, with a growing pause (about 3 s in all).
 */
export const DEFAULT_COMMIT_ATTEMPTS = 8;

/** Options of {@link commitPlan}. */
export interface CommitOptions {
  /** The message's event time (instant): stamped on every resource, orders out-of-order messages. */
  readonly eventTime?: string;
  /**
   * Builds the ledger entry committed in the same transaction, given each planned key's
   * reference (`Type/id` or the new resource's `urn:uuid`).
   */
  readonly ledger?: (references: Readonly<Record<string, string>>) => Resource;
  readonly maxAttempts?: number;
}

/** What a commit did. */
export interface CommitResult {
  /** Each plan key's stored resource, `Type/id`. */
  readonly references: Readonly<Record<string, string>>;
  readonly created: string[];
  readonly updated: string[];
  readonly unchanged: string[];
  /** The ledger entry written with the data, `MessageHeader/id`. */
  readonly ledger?: string;
  readonly attempts: number;
}

/**
 * A planned resource's identifiers match several stored resources (two patients with the
 * identifiers the message combines): a data problem for a person to resolve, answered AE.
 */
export class IdentityConflictError extends Error {
  readonly key: string;
  constructor(key: string, message: string) {
    super(message);
    this.key = key;
  }
}

/** The transaction failed for a reason other than a version conflict. */
export class CommitError extends Error {}

/**
 * Writes a message's plan the hub's way, "resolve, then commit": every planned resource is looked
 * up by its business identifiers in one batch of searches, merged with what is stored, and all
 * creates and `If-Match` updates, plus the ledger entry, go to the server in one transaction
 * (no conditional entries, so the stock limit of 8 entries for conditional transactions does
 * not apply; more than 50 updates are split into consecutive transactions, the ledger last).
 * Updates that would change nothing are left out. A version conflict retries everything.
 * @param medplum - The client (in a bot: the bot's or the agent's identity).
 * @param plan - The mapped message.
 * @param options - Event time, ledger entry, attempts.
 * @returns What was created, updated and left unchanged.
 */
export async function commitPlan(medplum: MedplumClient, plan: MessagePlan, options: CommitOptions = {}): Promise<CommitResult> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_COMMIT_ATTEMPTS;
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await commitOnce(medplum, plan, options);
      if (attempt < maxAttempts + 2 && (await yieldLostCreates(medplum, plan, result))) {
        continue;
      }
      return { ...result, attempts: attempt };
    } catch (err) {
      // An identity conflict can be the short window of a create race another message is about
      // to clean up (see yieldLostCreates): look again before giving up.
      if (attempt < maxAttempts && (isVersionConflict(err) || err instanceof IdentityConflictError)) {
        // A growing, jittered pause lets the other writer finish instead of colliding again.
        await sleep(Math.min(25 * 2 ** attempt, 500) + Math.floor(Math.random() * 50));
        continue;
      }
      throw err;
    }
  }
}

/**
 * Resolving before committing leaves one race open: two messages about the same new patient (or
 * visit, or order), processed at the same time, both find nothing and both create it. After each
 * commit that created something, the created resources are looked up again by their identifiers.
 * Where another message created the same one first, this message deletes everything it created,
 * with its ledger entry, and commits again: it then finds the survivors and merges into them, and
 * its new resources reference the survivors. (Deleting all its creates, not only the duplicates,
 * keeps references consistent; a transaction's resources share its commit time, so the earlier
 * message wins every key.)
 * @returns True when this message lost a race and must be committed again.
 */
async function yieldLostCreates(medplum: MedplumClient, plan: MessagePlan, result: Omit<CommitResult, 'attempts'>): Promise<boolean> {
  if (result.created.length === 0) {
    return false;
  }
  const created = plan.resources.filter((p) => result.created.includes(p.key));
  const found = await searchByIdentifiers(medplum, created);
  let lost = false;
  for (const [i, p] of created.entries()) {
    const others = found[i].filter((r) => `${r.resourceType}/${r.id}` !== result.references[p.key] && !isReplaced(r));
    if (others.length === 0) {
      continue;
    }
    // lastUpdated moves with every update; which copy was created first is in the history.
    const ours = await createdAt(medplum, result.references[p.key]);
    for (const other of others) {
      const theirs = await createdAt(medplum, `${other.resourceType}/${other.id}`);
      // Yield to a copy created before ours, or at the same moment (one of two tied commits may
      // have checked before the other existed, so the one checking now yields).
      if (theirs <= ours) {
        lost = true;
      }
    }
  }
  if (!lost) {
    return false;
  }
  const toDelete = [...created.map((p) => result.references[p.key]), ...(result.ledger ? [result.ledger] : [])];
  await medplum.executeBatch({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: toDelete.map((url) => ({ request: { method: 'DELETE', url } })),
  });
  return true;
}

/**
 * @param reference - `Type/id`.
 * @returns When the resource's first version was written (epoch ms; Infinity when unknown).
 */
async function createdAt(medplum: MedplumClient, reference: string): Promise<number> {
  const [resourceType, id] = reference.split('/');
  const history = await medplum.readHistory(resourceType as Resource['resourceType'], id, { count: 1000 });
  const oldest = history.entry?.[history.entry.length - 1];
  const time = Date.parse(oldest?.resource?.meta?.lastUpdated ?? oldest?.response?.lastModified ?? '');
  return Number.isNaN(time) ? Number.POSITIVE_INFINITY : time;
}

async function searchByIdentifiers(medplum: MedplumClient, plans: readonly ResourcePlan[]): Promise<WithId<Resource>[][]> {
  const response = await medplum.executeBatch({
    resourceType: 'Bundle',
    type: 'batch',
    entry: plans.map((p) => ({
      request: { method: 'GET', url: `${p.resource.resourceType}?identifier=${encodeURIComponent(tokens(p.identifiers))}&_count=20` },
    })),
  });
  return plans.map((plan, i) => {
    const entry = response.entry?.[i];
    const status = entry?.response?.status ?? '';
    if (!status.startsWith('2')) {
      throw new CommitError(`Search for ${plan.key} failed (${status}): ${normalizeErrorString(entry?.response?.outcome)}`);
    }
    return ((entry?.resource as Bundle | undefined)?.entry ?? [])
      .map((e) => e.resource as WithId<Resource>)
      .filter((r) => r?.resourceType === plan.resource.resourceType);
  });
}

interface Resolved {
  readonly plan: ResourcePlan;
  readonly existing?: WithId<Resource>;
  /** `Type/id` of the stored resource, or `urn:uuid:` of the one to create. */
  readonly reference: string;
}

async function commitOnce(medplum: MedplumClient, plan: MessagePlan, options: CommitOptions): Promise<Omit<CommitResult, 'attempts'>> {
  const resolved = await resolve(medplum, plan.resources);
  const references: Record<string, string> = Object.fromEntries(resolved.map((r) => [r.plan.key, r.reference]));

  const creates: BundleEntry[] = [];
  const updates: BundleEntry[] = [];
  const created: string[] = [];
  const updated: string[] = [];
  const unchanged: string[] = [];
  for (const item of resolved) {
    const withRefs = { ...item.plan, resource: replaceLocalReferences(item.plan.resource, references, item.plan.key) };
    await storeUploads(medplum, withRefs, item.existing);
    if (!item.existing) {
      creates.push({
        fullUrl: item.reference,
        resource: newResource(withRefs, options.eventTime),
        request: { method: 'POST', url: withRefs.resource.resourceType },
      });
      created.push(item.plan.key);
      continue;
    }
    const merged = mergeResource(item.existing, withRefs, options.eventTime);
    if (sameContent(merged, item.existing)) {
      unchanged.push(item.plan.key);
      continue;
    }
    updates.push({
      fullUrl: item.reference,
      resource: merged,
      request: { method: 'PUT', url: item.reference, ifMatch: `W/"${item.existing.meta?.versionId}"` },
    });
    updated.push(item.plan.key);
  }

  const ledger = options.ledger?.(references);
  const ledgerEntry: BundleEntry | undefined = ledger
    ? { fullUrl: 'urn:uuid:' + randomUUID(), resource: ledger, request: { method: 'POST', url: ledger.resourceType } }
    : undefined;

  // Consecutive transactions when the stock update limit would be exceeded: creates go first,
  // the ledger last, so a ledger entry only ever says "committed" when everything is written.
  const chunks: BundleEntry[][] = [];
  for (let i = 0; i < Math.max(1, updates.length); i += MAX_UPDATES_PER_TRANSACTION) {
    chunks.push(updates.slice(i, i + MAX_UPDATES_PER_TRANSACTION));
  }
  chunks[0] = [...creates, ...chunks[0]];
  if (ledgerEntry) {
    chunks[chunks.length - 1].push(ledgerEntry);
  }

  const assigned: Record<string, string> = {};
  for (const chunk of chunks) {
    if (chunk.length === 0) {
      continue;
    }
    const entries = chunk.map((e) => rewriteAssigned(e, assigned));
    const response = await medplum.executeBatch({ resourceType: 'Bundle', type: 'transaction', entry: entries });
    checkTransactionResponse(response, entries);
    entries.forEach((entry, i) => {
      const location = response.entry?.[i]?.response?.location ?? response.entry?.[i]?.resource;
      const ref = typeof location === 'string' ? location.split('/_history/')[0] : location ? `${location.resourceType}/${location.id}` : undefined;
      if (entry.fullUrl && ref) {
        assigned[entry.fullUrl] = ref;
      }
    });
  }
  const finalRefs = Object.fromEntries(Object.entries(references).map(([key, ref]) => [key, assigned[ref] ?? ref]));
  return { references: finalRefs, created, updated, unchanged, ledger: ledgerEntry?.fullUrl ? assigned[ledgerEntry.fullUrl] : undefined };
}

/**
 * Looks every planned resource up by its identifiers in one batch of searches. When several
 * stored resources match, inactive ones that point to their replacement (merged patients) are
 * set aside; if that leaves more than one, the identity is ambiguous.
 */
async function resolve(medplum: MedplumClient, plans: readonly ResourcePlan[]): Promise<Resolved[]> {
  if (plans.length === 0) {
    return [];
  }
  const found = await searchByIdentifiers(medplum, plans);
  return plans.map((plan, i) => {
    let candidates = found[i];
    if (candidates.length > 1) {
      candidates = candidates.filter((r) => !isReplaced(r));
    }
    if (candidates.length > 1) {
      throw new IdentityConflictError(
        plan.key,
        `${plan.resource.resourceType} identifiers of ${plan.key} match ${candidates.length} stored resources`
      );
    }
    const existing = candidates[0];
    return { plan, existing, reference: existing ? `${existing.resourceType}/${existing.id}` : 'urn:uuid:' + randomUUID() };
  });
}

function isReplaced(resource: Resource): boolean {
  const r = resource as { active?: boolean; link?: { type?: string }[] };
  return r.active === false && Boolean(r.link?.some((l) => l.type === 'replaced-by'));
}

/**
 * @param identifiers - Identifiers.
 * @returns The `identifier` search value matching any of them (`,`-separated, escaped).
 */
export function tokens(identifiers: readonly Identifier[]): string {
  const escape = (s: string): string => s.replaceAll('\\', '\\\\').replaceAll(',', '\\,');
  return identifiers.map((i) => `${escape(i.system ?? '')}|${escape(i.value ?? '')}`).join(',');
}

function replaceLocalReferences<T>(value: T, references: Record<string, string>, owner: string): T {
  if (Array.isArray(value)) {
    return value.map((v) => replaceLocalReferences(v, references, owner)) as T;
  }
  if (value && typeof value === 'object') {
    const result: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string' && v.startsWith(LOCAL_REFERENCE_PREFIX)) {
        const key = v.slice(LOCAL_REFERENCE_PREFIX.length);
        const target = references[key];
        if (!target) {
          throw new CommitError(`${owner} references ${key}, which the message does not plan`);
        }
        result[k] = target;
      } else {
        result[k] = replaceLocalReferences(v, references, owner);
      }
    }
    return result as T;
  }
  return value;
}

/**
 * Moves attachment content to Binary resources: content already stored on the resource (same
 * hash) is reused, so re-sent messages upload nothing.
 */
async function storeUploads(medplum: MedplumClient, plan: ResourcePlan, existing: Resource | undefined): Promise<void> {
  for (const upload of plan.uploads ?? []) {
    const attachment = getPath(plan.resource, upload.path) as Attachment | undefined;
    if (!attachment) {
      throw new CommitError(`${plan.key}: no attachment at ${upload.path}`);
    }
    const stored = findAttachmentByHash(existing, upload.hash);
    delete attachment.data;
    if (stored?.url) {
      attachment.url = stored.url;
      continue;
    }
    const binary = await medplum.createBinary({ data: Buffer.from(upload.data, 'base64'), filename: attachment.title, contentType: upload.contentType });
    attachment.url = `Binary/${binary.id}`;
  }
}

function findAttachmentByHash(resource: Resource | undefined, hash: string): Attachment | undefined {
  let found: Attachment | undefined;
  const visit = (value: unknown): void => {
    if (found || !value || typeof value !== 'object') {
      return;
    }
    if (Array.isArray(value)) {
      value.forEach(visit);
      return;
    }
    const record = value as Record<string, unknown>;
    if (record.hash === hash && typeof record.url === 'string') {
      found = record as Attachment;
      return;
    }
    Object.values(record).forEach(visit);
  };
  visit(resource);
  return found;
}

function getPath(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], value);
}

function rewriteAssigned(entry: BundleEntry, assigned: Record<string, string>): BundleEntry {
  if (Object.keys(assigned).length === 0) {
    return entry;
  }
  let text = JSON.stringify(entry);
  for (const [urn, ref] of Object.entries(assigned)) {
    text = text.replaceAll(`"${urn}"`, `"${ref}"`);
  }
  return JSON.parse(text) as BundleEntry;
}

function checkTransactionResponse(response: Bundle, entries: BundleEntry[]): void {
  const failures = (response.entry ?? [])
    .map((e, i) => ({ status: e.response?.status ?? '', outcome: e.response?.outcome, entry: entries[i] }))
    .filter((e) => !e.status.startsWith('2'));
  if (failures.length) {
    // Only a server without the transaction-bundles feature answers a failed transaction entry by
    // entry: the rest may have been written. The message goes to the dead-letter; its replay is
    // idempotent and completes it.
    const first = failures[0];
    throw new CommitError(
      `${failures.length} of ${entries.length} entries failed (first: ${first.entry?.request?.method} ${first.entry?.request?.url} ${first.status} ${normalizeErrorString(first.outcome)})`
    );
  }
}

function sameContent(a: Resource, b: Resource): boolean {
  const strip = (r: Resource): Record<string, unknown> => {
    const { meta: _meta, ...rest } = JSON.parse(stringify(r)) as Record<string, unknown>;
    return rest;
  };
  return deepEquals(strip(a), strip(b));
}

/**
 * @param err - An error from a transaction.
 * @returns True for a version conflict (412 If-Match) or a serialization conflict (409):
 * another writer got there first; the message is resolved and committed again.
 */
export function isVersionConflict(err: unknown): boolean {
  const outcome = (err as { outcome?: { id?: string; issue?: { code?: string }[] } } | undefined)?.outcome;
  return outcome?.id === 'precondition-failed' || outcome?.issue?.some((i) => i.code === 'conflict' || i.code === 'lock-error') === true;
}
