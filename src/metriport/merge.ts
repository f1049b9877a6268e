import type { MedplumClient, WithId } from '@medplum/core';
import { deepEquals, normalizeErrorString } from '@medplum/core';
import type { Bundle, BundleEntry, Coding, Identifier, Meta, Reference, Resource } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { randomUUID } from 'node:crypto';
// Imported explicitly: the stock bot sandbox has no global setTimeout.
import { setTimeout as sleepMs } from 'node:timers/promises';
import { mergeIdentifiers } from '../fhir/identifiers.ts';
import { externalizeLargeAttachments, INLINE_DATA_LIMIT } from './attachments.ts';
import { classifyFailure } from '../fhir/failures.ts';
import { MAX_UPDATES_PER_TRANSACTION } from '../fhir/writer.ts';
import type { ImportItem, ImportKey, PreparedImport, SkippedEntry } from './consolidated.ts';
import { hasImportKey, logicalItemReference, resolveTokens } from './consolidated.ts';
import { withOwnerTags } from '../fhir/owner.ts';

/** Options of {@link mergePreparedImport}. */
export interface MergeOptions {
  /** The record's Patient on this server, `Patient/<id>`. */
  readonly patient: string;
  /**
   * The organizations the Patient belongs to (src/fhir/owner.ts): every resource the merge
   * creates or changes is tagged as theirs, so their clinicians see the patient's Metriport data.
   */
  readonly owners?: readonly string[];
  /** Entries per transaction (default 500). */
  readonly maxEntries?: number;
  /** Bytes per transaction body, below the server's JSON limit (default 900 000; stock limit 1 MB). */
  readonly maxBytes?: number;
  /** Identifier values per search when looking up stored resources (default 100). */
  readonly valuesPerSearch?: number;
  /** Attempts of a transaction that meets a version conflict or a transient failure (default 5); 429s wait instead. */
  readonly retryAttempts?: number;
  /** Waits before retrying after a 429; tests replace it. */
  readonly sleep?: (ms: number) => Promise<unknown>;
}

/** What a merge did. */
export interface MergeResult {
  readonly created: number;
  readonly updated: number;
  readonly unchanged: number;
  /** Items the server refused (or that matched several stored resources), with the reason. */
  readonly failed: SkippedEntry[];
  readonly transactions: number;
}

/** Search entries per batch request when looking up stored resources. */
const SEARCHES_PER_BATCH = 40;
/**
 * Waits for the FHIR quota before giving up on a request: 2, 4, 8, 16, then 30 s each, about
 * 2.5 minutes in all, enough for the quota's one-minute window to pass twice.
 */
const MAX_THROTTLED_WAITS = 8;

function throttleDelay(waitsSoFar: number): number {
  return Math.min(2000 * 2 ** waitsSoFar, 30_000);
}

/**
 * Merges a prepared consolidated import into the record, "resolve, then commit" in chunks:
 * 1. every item is looked up by its Metriport key, a few hundred per batch of searches;
 * 2. items are ordered so that a resource is written with or after everything new it references
 *    (reference cycles, such as Encounter ⇄ Condition, go into the same transaction);
 * 3. chunks that fit the server's limits (entries, body size, 50 updates) are sent as
 *    transactions of plain creates (`urn:uuid` placeholders) and `If-Match` updates;
 *    a stored resource is updated only when the merge changes it, keeping identifiers and
 *    elements other feeds wrote; large inline attachments are stored as Binaries first;
 * 4. a chunk the server refuses (4xx) is split until the refused items are isolated and
 *    recorded; a version conflict, a 5xx or a lost connection re-reads the chunk's items and
 *    retries; a 429 (the FHIR quota) waits and sends it again.
 * Running it again with the same bundle writes nothing.
 * @param medplum - The client (the bot's identity).
 * @param prepared - The prepared import.
 * @param options - The patient and limits.
 * @returns Counts, and the items that failed with the reason.
 */
export async function mergePreparedImport(medplum: MedplumClient, prepared: PreparedImport, options: MergeOptions): Promise<MergeResult> {
  const merger = new Merger(medplum, prepared.items, options);
  return merger.run();
}

class Merger {
  private readonly medplum: MedplumClient;
  private readonly items: readonly ImportItem[];
  private readonly options: MergeOptions;
  /** Stored resource of each item, once known. */
  private readonly stored = new Map<number, WithId<Resource>>();
  private readonly failed = new Map<number, string>();
  /** JSON size of each item's prepared resource. */
  private readonly bytes = new Map<number, number>();
  private created = 0;
  private updated = 0;
  private unchanged = 0;
  private transactions = 0;
  private readonly sleep: (ms: number) => Promise<unknown>;

  constructor(medplum: MedplumClient, items: readonly ImportItem[], options: MergeOptions) {
    this.medplum = medplum;
    this.items = items;
    this.options = options;
    this.sleep = options.sleep ?? sleepMs;
  }

  async run(): Promise<MergeResult> {
    await this.resolve(this.items);
    for (const chunk of this.chunks(orderedGroups(this.items, (i) => this.stored.has(i)))) {
      await this.commit(chunk, this.options.retryAttempts ?? 5);
    }
    const failed = [...this.failed].map(([index, reason]) => ({ reference: label(this.items[index]), reason }));
    return { created: this.created, updated: this.updated, unchanged: this.unchanged, failed, transactions: this.transactions };
  }

  /** Looks items up by their keys, many values per search and many searches per batch request. */
  private async resolve(items: readonly ImportItem[]): Promise<void> {
    const perSearch = this.options.valuesPerSearch ?? 100;
    const searches: { url: string; items: ImportItem[] }[] = [];
    const groups = new Map<string, ImportItem[]>();
    for (const item of items) {
      const group = `${item.resourceType} ${item.key.kind} ${item.key.system}`;
      const members = groups.get(group);
      if (members) {
        members.push(item);
      } else {
        groups.set(group, [item]);
      }
    }
    for (const group of groups.values()) {
      for (let i = 0; i < group.length; i += perSearch) {
        const slice = group.slice(i, i + perSearch);
        const { key, resourceType } = slice[0];
        const parameter = key.kind === 'identifier' ? 'identifier' : '_tag';
        const tokens = slice.map((item) => `${escapeToken(item.key.system)}|${escapeToken(keyValue(item.key))}`).join(',');
        // Twice the values: a key found on two stored resources shows up as such.
        searches.push({ url: `${resourceType}?${parameter}=${encodeURIComponent(tokens)}&_count=${slice.length * 2}`, items: slice });
      }
    }
    for (let i = 0; i < searches.length; i += SEARCHES_PER_BATCH) {
      const batch = searches.slice(i, i + SEARCHES_PER_BATCH);
      const request: Bundle = { resourceType: 'Bundle', type: 'batch', entry: batch.map((s) => ({ request: { method: 'GET', url: s.url } })) };
      let response = await this.medplum.executeBatch(request);
      // Over the FHIR quota, a batch answers 429 for the entry that hit it and every one after.
      for (let wait = 0; wait < MAX_THROTTLED_WAITS && response.entry?.some((e) => e.response?.status?.startsWith('429')); wait++) {
        await this.sleep(throttleDelay(wait));
        response = await this.medplum.executeBatch(request);
      }
      batch.forEach((search, j) => this.recordMatches(search.items, response.entry?.[j]));
    }
  }

  private recordMatches(items: readonly ImportItem[], entry: BundleEntry | undefined): void {
    if (!entry?.response?.status?.startsWith('2')) {
      const reason = `lookup failed: ${entry?.response?.outcome ? normalizeErrorString(entry.response.outcome) : (entry?.response?.status ?? 'no response')}`;
      items.forEach((item) => this.failed.set(item.index, reason));
      return;
    }
    const found = ((entry.resource as Bundle | undefined)?.entry ?? []).map((e) => e.resource as WithId<Resource>);
    for (const item of items) {
      const matches = found.filter((r) => hasImportKey(r, item.key));
      if (matches.length > 1) {
        this.failed.set(item.index, `its Metriport key matches ${matches.length} stored resources (${matches.map((m) => `${m.resourceType}/${m.id}`).join(', ')})`);
      } else if (matches.length === 1) {
        this.stored.set(item.index, matches[0]);
      } else {
        this.stored.delete(item.index);
      }
    }
  }

  /** Packs ordered groups into chunks within the entry, byte and update limits. */
  private *chunks(groups: readonly number[][]): Generator<number[][]> {
    const maxEntries = this.options.maxEntries ?? 500;
    const maxBytes = this.options.maxBytes ?? 900_000;
    let chunk: number[][] = [];
    let entries = 0;
    let bytes = 0;
    let updates = 0;
    for (const group of groups) {
      const live = group.filter((i) => !this.failed.has(i));
      if (live.length === 0) {
        continue;
      }
      const groupBytes = live.reduce((sum, i) => sum + Math.min(this.sizeOf(i), INLINE_DATA_LIMIT) + 200, 0);
      const groupUpdates = live.filter((i) => this.stored.has(i)).length;
      if (chunk.length && (entries + live.length > maxEntries || bytes + groupBytes > maxBytes || updates + groupUpdates > MAX_UPDATES_PER_TRANSACTION)) {
        yield chunk;
        chunk = [];
        entries = bytes = updates = 0;
      }
      chunk.push(live);
      entries += live.length;
      bytes += groupBytes;
      updates += groupUpdates;
    }
    if (chunk.length) {
      yield chunk;
    }
  }

  /**
   * Commits one chunk. A refused chunk of several groups is split in two halves, in order (the
   * second half may reference what the first creates); a refused single group fails its items.
   */
  private async commit(chunk: number[][], attempts: number, throttled = 0): Promise<void> {
    const members = chunk.flat().filter((i) => !this.failed.has(i));
    const placeholders = new Map<number, string>();
    for (const index of members) {
      if (!this.stored.has(index)) {
        placeholders.set(index, `urn:uuid:${randomUUID()}`);
      }
    }
    const entries: { index: number; entry: BundleEntry }[] = [];
    const unchanged: number[] = [];
    for (const index of members) {
      const item = this.items[index];
      const stored = this.stored.get(index);
      const resolved = resolveTokens(item.resource, (target) => this.referenceTo(target, placeholders));
      const resource = (this.bytes.get(index) ?? 0) > INLINE_DATA_LIMIT ? await externalizeLargeAttachments(this.medplum, resolved, stored) : resolved;
      if (!stored) {
        entries.push({
          index,
          entry: { fullUrl: placeholders.get(index), request: { method: 'POST', url: item.resourceType }, resource: withOwnerTags(resource, this.options.owners ?? []) },
        });
        continue;
      }
      const merged = mergeImported(stored, resource);
      if (sameContent(stored, merged)) {
        unchanged.push(index);
        continue;
      }
      entries.push({
        index,
        entry: {
          request: { method: 'PUT', url: `${stored.resourceType}/${stored.id}`, ifMatch: `W/"${stored.meta?.versionId}"` },
          resource: withOwnerTags(merged, this.options.owners ?? []),
        },
      });
    }
    this.unchanged += unchanged.length;
    if (entries.length === 0) {
      return;
    }

    let response: Bundle;
    try {
      this.transactions++;
      response = await this.medplum.executeBatch({ resourceType: 'Bundle', type: 'transaction', entry: entries.map((e) => e.entry) });
    } catch (err) {
      this.unchanged -= unchanged.length;
      const failure = classifyFailure(err);
      if (failure === 'throttled' && throttled < MAX_THROTTLED_WAITS) {
        // The caller's FHIR quota is spent for this minute (medplum-facts 12); nothing was
        // written: wait, then send the same chunk again.
        await this.sleep(throttleDelay(throttled));
        await this.commit(chunk, attempts, throttled + 1);
      } else if ((failure === 'conflict' || failure === 'transient') && attempts > 1) {
        // After a conflict, or a failure that may have happened after the commit (a lost
        // answer), what is stored decides what is still to write: look the chunk up again.
        await this.resolve(members.map((i) => this.items[i]));
        await this.commit(chunk, attempts - 1, throttled);
      } else if (failure === 'refused' && chunk.length > 1) {
        const half = Math.ceil(chunk.length / 2);
        await this.commit(chunk.slice(0, half), attempts, throttled);
        await this.commit(chunk.slice(half), attempts, throttled);
      } else {
        const reason = `${failure === 'refused' ? 'refused by the server' : 'not written after retries'}: ${normalizeErrorString(err)}`;
        members.forEach((i) => this.failed.set(i, reason));
      }
      return;
    }
    // Without the `transaction-bundles` feature the server runs the bundle as a batch: entries
    // succeed or fail one by one, so each response is read.
    entries.forEach(({ index, entry }, j) => {
      const result = response.entry?.[j];
      if (!result?.response?.status?.startsWith('2')) {
        const outcome = result?.response?.outcome;
        this.failed.set(index, `refused by the server: ${outcome ? normalizeErrorString(outcome) : (result?.response?.status ?? 'no response')}`);
        return;
      }
      const written = result.resource as WithId<Resource> | undefined;
      const id = written?.id ?? idFromLocation(result.response.location);
      if (!id) {
        this.failed.set(index, 'the server answered without the written resource id');
        return;
      }
      this.stored.set(index, written ?? ({ ...entry.resource, id } as WithId<Resource>));
      if (entry.request?.method === 'POST') {
        this.created++;
      } else {
        this.updated++;
      }
    });
  }

  /** @returns The JSON size of an item's prepared resource (large attachments are moved out before writing). */
  private sizeOf(index: number): number {
    let size = this.bytes.get(index);
    if (size === undefined) {
      size = Buffer.byteLength(JSON.stringify(this.items[index].resource));
      this.bytes.set(index, size);
    }
    return size;
  }

  private referenceTo(target: number | 'patient', placeholders: ReadonlyMap<number, string>): string | Reference {
    if (target === 'patient') {
      return this.options.patient;
    }
    const stored = this.stored.get(target);
    if (stored && !this.failed.has(target)) {
      return `${stored.resourceType}/${stored.id}`;
    }
    return placeholders.get(target) ?? logicalItemReference(this.items[target]);
  }
}

/**
 * Merges an imported resource into its stored version: Metriport's elements replace the stored
 * ones it sends, elements it does not send (written by other feeds or people) stay, identifiers
 * and tags are the union of both.
 * @param stored - The stored resource.
 * @param incoming - The prepared resource, references resolved.
 * @returns The resource to write.
 */
export function mergeImported<T extends Resource>(stored: WithId<T>, incoming: T): WithId<T> {
  const meta: Meta = { ...stored.meta, tag: mergeCodings(stored.meta?.tag, incoming.meta?.tag) };
  if (incoming.meta?.source) {
    meta.source = incoming.meta.source;
  }
  const merged = { ...stored, ...incoming, id: stored.id, meta } as WithId<T> & { identifier?: Identifier[] };
  const storedIdentifiers = (stored as { identifier?: unknown }).identifier;
  if (Array.isArray(storedIdentifiers)) {
    merged.identifier = mergeIdentifiers(storedIdentifiers as Identifier[], (incoming as { identifier?: Identifier[] }).identifier);
  }
  return merged;
}

function mergeCodings(stored: Coding[] | undefined, incoming: Coding[] | undefined): Coding[] | undefined {
  const result = [...(stored ?? [])];
  for (const coding of incoming ?? []) {
    if (!result.some((c) => c.system === coding.system && c.code === coding.code)) {
      result.push(coding);
    }
  }
  return result.length ? result : undefined;
}

/** True when two versions hold the same content; server-managed meta fields are ignored. */
function sameContent(a: Resource, b: Resource): boolean {
  const content = (r: Resource): Resource => ({ ...r, meta: { source: r.meta?.source, profile: r.meta?.profile, tag: r.meta?.tag, security: r.meta?.security } });
  return deepEquals(content(a), content(b));
}

/**
 * Orders items for writing: groups are the strongly connected components of "references a
 * resource that does not exist yet", emitted dependencies first (Tarjan's algorithm emits a
 * component after every component it reaches). Iterative, so 50k-item bundles do not overflow
 * the stack.
 * @param items - The items.
 * @param exists - Whether an item is already stored (references to it create no dependency).
 * @returns Groups of item indexes, in write order.
 */
export function orderedGroups(items: readonly ImportItem[], exists: (index: number) => boolean): number[][] {
  const count = items.length;
  const order = new Int32Array(count).fill(-1);
  const low = new Int32Array(count);
  const onStack = new Uint8Array(count);
  const stack: number[] = [];
  const groups: number[][] = [];
  let next = 0;
  const edges = (i: number): number[] => items[i].references.filter((j) => j !== i && !exists(j));
  for (let root = 0; root < count; root++) {
    if (order[root] !== -1) {
      continue;
    }
    const frames: { node: number; targets: number[]; position: number }[] = [{ node: root, targets: edges(root), position: 0 }];
    order[root] = low[root] = next++;
    stack.push(root);
    onStack[root] = 1;
    while (frames.length) {
      const frame = frames[frames.length - 1];
      if (frame.position < frame.targets.length) {
        const target = frame.targets[frame.position++];
        if (order[target] === -1) {
          order[target] = low[target] = next++;
          stack.push(target);
          onStack[target] = 1;
          frames.push({ node: target, targets: edges(target), position: 0 });
        } else if (onStack[target]) {
          low[frame.node] = Math.min(low[frame.node], order[target]);
        }
        continue;
      }
      frames.pop();
      if (frames.length) {
        const parent = frames[frames.length - 1].node;
        low[parent] = Math.min(low[parent], low[frame.node]);
      }
      if (low[frame.node] === order[frame.node]) {
        const group: number[] = [];
        let member: number;
        do {
          member = stack.pop() as number;
          onStack[member] = 0;
          group.push(member);
        } while (member !== frame.node);
        groups.push(group);
      }
    }
  }
  return groups;
}

function keyValue(key: ImportKey): string {
  return key.kind === 'identifier' ? key.value : key.code;
}

/** Escapes the characters that separate search values (FHIR search escaping). */
function escapeToken(value: string): string {
  return value.replace(/[\\,|$]/g, (c) => `\\${c}`);
}

function idFromLocation(location: string | undefined): string | undefined {
  return location?.split('/')[1];
}

function label(item: ImportItem): string {
  return `${item.resourceType}/${item.sourceId}`;
}
