import type { MedplumClient, WithId } from '@medplum/core';
import { deepEquals, normalizeErrorString, stringify } from '@medplum/core';
import type { Attachment, Bundle, BundleEntry, Identifier, Resource } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { randomUUID } from 'node:crypto';
// Imported explicitly: the stock bot sandbox has no global setTimeout.
import { setTimeout as sleep } from 'node:timers/promises';
import type { MessagePlan, ResourcePlan } from '../mapping/plan.ts';
import { LOCAL_REFERENCE_PREFIX } from '../mapping/plan.ts';
import { createdTime } from './history.ts';
import { identifierKey } from './identifiers.ts';
import { hasOwnerTag, ownerOrganizations, withOwnerTags } from './owner.ts';
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
  /**
   * The Organization (id) whose feed this is: every resource written is tagged as its data
   * (src/fhir/owner.ts), so that its clinicians' AccessPolicy selects it.
   */
  readonly ownerOrganization?: string;
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
  const memory: AttemptMemory = { withdrawn: new Map(), uploaded: new Map() };
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await commitOnce(medplum, plan, options, memory);
      if (attempt < maxAttempts + 2 && (await yieldLostCreates(medplum, plan, result, memory.withdrawn))) {
        // Two messages that tied both yield: a pause breaks the symmetry.
        await sleep(Math.floor(Math.random() * 50));
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

/** What earlier attempts at committing a message did, for the next one. */
interface AttemptMemory {
  /** Copies this message created and deleted after losing a create race, `Type/id` → plan key. */
  readonly withdrawn: Map<string, string>;
  /** Binaries already stored for this message's attachments, by content hash: a retry reuses them. */
  readonly uploaded: Map<string, string>;
}

/**
 * Resolving before committing leaves one race open: two messages about the same new patient (or
 * visit, or order), processed at the same time, both find nothing and both create it. After each
 * commit that created something, the created resources are looked up again by their identifiers.
 * Where another copy was created before ours (see {@link createdBefore}), this message deletes
 * its copy, and its ledger entry, and commits again: it then finds the surviving copy and merges
 * into it. Only the losing copies are deleted. Everything else it wrote stays, because other
 * messages may already have merged into it or referenced it. The references to the deleted copies
 * are remembered in `withdrawn`, and the next commit repoints them (see {@link commitOnce}).
 * @returns True when this message lost a race and must be committed again.
 */
async function yieldLostCreates(
  medplum: MedplumClient,
  plan: MessagePlan,
  result: Omit<CommitResult, 'attempts'>,
  withdrawn: Map<string, string>
): Promise<boolean> {
  if (result.created.length === 0) {
    return false;
  }
  const created = plan.resources.filter((p) => result.created.includes(p.key));
  const found = await searchByIdentifiers(medplum, created);
  // The message's own resources may share identifiers (a merge survivor keeps the old numbers).
  const own = new Set(Object.values(result.references));
  const lost: string[] = [];
  for (const [i, p] of created.entries()) {
    const ours = result.references[p.key];
    const others = found[i].filter((r) => !own.has(`${r.resourceType}/${r.id}`) && !isReplaced(r));
    if (others.length === 0) {
      continue;
    }
    if (await createdBefore(medplum, ours, others)) {
      lost.push(ours);
      withdrawn.set(ours, p.key);
    }
  }
  if (lost.length === 0) {
    return false;
  }
  await medplum.executeBatch({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [...lost, ...(result.ledger ? [result.ledger] : [])].map((url) => ({ request: { method: 'DELETE', url } })),
  });
  return true;
}

/**
 * Decides a create race: exactly one copy must survive, and the others must yield to it without
 * ever yielding to a copy that itself yields. The first created wins. Copies created in the same
 * millisecond (possible on the stock server) go to the smaller id; but the other writer may have
 * checked before ours existed and kept its copy, so the winner of a tie looks again after a pause
 * and yields if the other copy is still there.
 * @returns True when one of `others` wins over `ours`.
 */
async function createdBefore(medplum: MedplumClient, ours: string, others: readonly WithId<Resource>[]): Promise<boolean> {
  // lastUpdated moves with every update; which copy was created first is in the history.
  const oursAt = await createdAt(medplum, ours);
  const tiedLosers: WithId<Resource>[] = [];
  for (const other of others) {
    const theirs = await createdAt(medplum, `${other.resourceType}/${other.id}`);
    if (theirs < oursAt || (theirs === oursAt && `${other.resourceType}/${other.id}` < ours)) {
      return true;
    }
    if (theirs === oursAt) {
      tiedLosers.push(other);
    }
  }
  if (tiedLosers.length === 0) {
    return false;
  }
  await sleep(TIE_RECHECK_MS);
  for (const other of tiedLosers) {
    const stillThere = await medplum.readResource(other.resourceType, other.id).then(
      () => true,
      () => false
    );
    if (stillThere) {
      return true;
    }
  }
  return false;
}

/** How long the winner of a same-millisecond create race gives the other writer to yield. */
const TIE_RECHECK_MS = 250;

/**
 * @param reference - `Type/id`.
 * @returns When the resource's first version was written (epoch ms; Infinity when unknown).
 */
async function createdAt(medplum: MedplumClient, reference: string): Promise<number> {
  const [resourceType, id] = reference.split('/');
  return (await createdTime(medplum, resourceType as Resource['resourceType'], id)) ?? Number.POSITIVE_INFINITY;
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

/**
 * The organizations a message's resources belong to: the sending feed's (when it is a known
 * sender Organization), and those its patient (the stored Patients the message resolves to)
 * already belongs to.
 * @param resolved - The message's resolved resources.
 * @param sender - The sending feed's Organization id, if known.
 * @returns Organization ids, each once.
 */
function messageOwners(resolved: readonly Resolved[], sender: string | undefined): string[] {
  const owners = new Set<string>(sender ? [sender] : []);
  for (const item of resolved) {
    if (item.existing?.resourceType === 'Patient') {
      ownerOrganizations(item.existing).forEach((id) => owners.add(id));
    }
  }
  return [...owners];
}

/**
 * Owner tags alone change only a Patient, and only to add the sending feed: other resources take
 * their owners when they are created or their content changes. A re-sent message therefore
 * changes nothing, whatever other feeds wrote in between (the principle that re-sending is a
 * no-op outweighs re-tagging old data when a patient gains an organization).
 */
function needsSenderTag(existing: Resource, sender: string | undefined): boolean {
  return existing.resourceType === 'Patient' && sender !== undefined && !hasOwnerTag(existing, sender);
}

interface Resolved {
  readonly plan: ResourcePlan;
  readonly existing?: WithId<Resource>;
  /** `Type/id` of the stored resource, or `urn:uuid:` of the one to create. */
  readonly reference: string;
}

/**
 * One resolve-merge-commit pass. `withdrawn` lists copies an earlier pass created and deleted
 * (see {@link yieldLostCreates}): stored resources still referencing one, even in elements the
 * merge keeps (a `fill` merge, a union), are repointed at what the key resolves to now.
 */
async function commitOnce(
  medplum: MedplumClient,
  plan: MessagePlan,
  options: CommitOptions,
  memory: AttemptMemory
): Promise<Omit<CommitResult, 'attempts'>> {
  const { withdrawn } = memory;
  const resolved = await resolve(medplum, plan.resources);
  const references: Record<string, string> = Object.fromEntries(resolved.map((r) => [r.plan.key, r.reference]));
  const repoint = (ref: string): string | undefined => {
    const key = withdrawn.get(ref);
    return key ? references[key] : undefined;
  };

  const owners = messageOwners(resolved, options.ownerOrganization);
  const creates: BundleEntry[] = [];
  const updates: BundleEntry[] = [];
  const created: string[] = [];
  const updated: string[] = [];
  const unchanged: string[] = [];
  for (const item of resolved) {
    const withRefs = { ...item.plan, resource: replaceLocalReferences(item.plan.resource, references, item.plan.key) };
    await storeUploads(medplum, withRefs, item.existing, memory.uploaded);
    if (!item.existing) {
      creates.push({
        fullUrl: item.reference,
        resource: withOwnerTags(newResource(withRefs, options.eventTime), owners),
        request: { method: 'POST', url: withRefs.resource.resourceType },
      });
      created.push(item.plan.key);
      continue;
    }
    const current = withdrawn.size ? mapReferences(item.existing, repoint) : item.existing;
    const merged = withOwnerTags(mergeResource(current, withRefs, options.eventTime), owners);
    if (sameContent(merged, item.existing) && !needsSenderTag(item.existing, options.ownerOrganization)) {
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
    // References to resources an earlier chunk created point at their ids now.
    const entries = Object.keys(assigned).length ? chunk.map((e) => mapReferences(e, (reference) => assigned[reference])) : chunk;
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
 * set aside, unless the plan is for such a record itself; if that leaves more than one, the
 * identity is ambiguous.
 */
async function resolve(medplum: MedplumClient, plans: readonly ResourcePlan[]): Promise<Resolved[]> {
  if (plans.length === 0) {
    return [];
  }
  const found = await searchByIdentifiers(medplum, plans);
  return plans.map((plan, i) => {
    let candidates = found[i];
    if (candidates.length > 1) {
      // Looking for a merged-away record (a merge re-sent or replayed): the survivor that took
      // over its numbers (as `use: old`) is not it. Otherwise the survivor is what is wanted.
      candidates = isReplaced(plan.resource)
        ? candidates.filter((r) => !matchesOnlyRetired(r, plan.identifiers))
        : candidates.filter((r) => !isReplaced(r));
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

/**
 * @param resource - A stored resource found by `identifiers`.
 * @param identifiers - The identifiers searched for.
 * @returns True when it holds them only as retired numbers (`use: old`): a merge survivor, not
 * the merged-away record they belonged to.
 */
export function matchesOnlyRetired(resource: Resource, identifiers: readonly Identifier[]): boolean {
  const wanted = new Set(identifiers.map(identifierKey));
  const matching = ((resource as { identifier?: Identifier[] }).identifier ?? []).filter((i) => wanted.has(identifierKey(i)));
  return matching.length > 0 && matching.every((i) => i.use === 'old');
}

/**
 * @param resource - A resource.
 * @returns True for an inactive record that points to its replacement (a merged-away Patient).
 */
export function isReplaced(resource: Resource): boolean {
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
  return mapReferences(value, (reference) => {
    if (!reference.startsWith(LOCAL_REFERENCE_PREFIX)) {
      return undefined;
    }
    const key = reference.slice(LOCAL_REFERENCE_PREFIX.length);
    const target = references[key];
    if (!target) {
      throw new CommitError(`${owner} references ${key}, which the message does not plan`);
    }
    return target;
  });
}

/**
 * @param value - A resource or part of one.
 * @param replace - Gives the new value of a `reference`, or undefined to keep it.
 * @returns A copy with every `reference` string passed through `replace`.
 */
function mapReferences<T>(value: T, replace: (reference: string) => string | undefined): T {
  if (Array.isArray(value)) {
    return value.map((v) => mapReferences(v, replace)) as T;
  }
  if (value && typeof value === 'object') {
    const result: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      result[k] = k === 'reference' && typeof v === 'string' ? (replace(v) ?? v) : mapReferences(v, replace);
    }
    return result as T;
  }
  return value;
}

/**
 * Moves attachment content to Binary resources: content already stored on the resource (same
 * hash), or uploaded by an earlier attempt at this message, is reused, so re-sent messages and
 * retries upload nothing.
 */
async function storeUploads(
  medplum: MedplumClient,
  plan: ResourcePlan,
  existing: Resource | undefined,
  uploaded: Map<string, string>
): Promise<void> {
  for (const upload of plan.uploads ?? []) {
    const attachment = getPath(plan.resource, upload.path) as Attachment | undefined;
    if (!attachment) {
      throw new CommitError(`${plan.key}: no attachment at ${upload.path}`);
    }
    delete attachment.data;
    const url = findAttachmentByHash(existing, upload.hash)?.url ?? uploaded.get(upload.hash);
    if (url) {
      attachment.url = url;
      continue;
    }
    const binary = await medplum.createBinary({ data: Buffer.from(upload.data, 'base64'), filename: attachment.title, contentType: upload.contentType });
    attachment.url = `Binary/${binary.id}`;
    uploaded.set(upload.hash, attachment.url);
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
