import type { WithId } from '@medplum/core';
import type { Identifier, Resource } from '@medplum/fhirtypes';
import { AsyncLocalStorage } from 'node:async_hooks';

/** The kind of write that produced a resource version, as the stock server names it for subscriptions. */
export type ChangeInteraction = 'create' | 'update' | 'delete';

/** One committed write: what the subscription engine and other observers see after a commit. */
export interface ResourceChange {
  readonly interaction: ChangeInteraction;
  /** The version written; for a delete, the last version before the delete. */
  readonly resource: WithId<Resource>;
  /** The version before this write, when there was one. */
  readonly previous?: WithId<Resource>;
}

/**
 * One stored version of a resource. A delete is recorded as a version with `deleted` set. Its
 * time is `resource.meta.lastUpdated`, stamped by {@link ResourceStore.append}.
 */
export interface StoredVersion {
  readonly resource: WithId<Resource>;
  readonly deleted: boolean;
}

type ChangeListener = (changes: readonly ResourceChange[]) => void;

interface OpenTransaction {
  readonly pending: Map<string, StoredVersion[]>;
  readonly changes: ResourceChange[];
}

/**
 * The in-memory FHIR store behind the local runtime.
 *
 * Every write runs inside {@link ResourceStore.transaction}: writes are serialized by one writer
 * lock, buffered in the transaction's overlay (visible only inside that transaction), and become
 * visible to everyone at once on commit, or vanish on error. Readers outside a transaction only
 * see committed data. This gives the atomic, isolated `transaction` Bundles and serializable
 * conditional writes that bots observe on the stock server (Postgres), without a database.
 */
export class ResourceStore {
  private readonly versions = new Map<string, StoredVersion[]>();
  private readonly idsByType = new Map<string, Set<string>>();
  /**
   * `type` → `identifier|system|value` or `_tag|system|code` (lower case) → ids. Additive: it
   * lists every id that ever carried the token, so it is a superset and searches still check the
   * current version; it turns identifier and tag lookups from scans into map hits.
   */
  private readonly tokenIndex = new Map<string, Map<string, Set<string>>>();
  private readonly listeners: ChangeListener[] = [];
  private readonly context = new AsyncLocalStorage<OpenTransaction>();
  private lock: Promise<void> = Promise.resolve();
  /** Epoch ms of the last version written. */
  private lastWrite = 0;

  /**
   * Registers a listener called synchronously after each commit with the changes it made.
   * @param listener - Receives the committed changes, in write order.
   */
  onCommit(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /**
   * Runs `fn` as one atomic transaction. Nested calls join the enclosing transaction.
   * @param fn - The work to run; its writes commit together when it resolves.
   * @returns The value `fn` resolved to.
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.context.getStore()) {
      return fn();
    }
    const release = await this.acquire();
    const txn: OpenTransaction = { pending: new Map(), changes: [] };
    let result: T;
    try {
      result = await this.context.run(txn, fn);
      this.commit(txn);
    } finally {
      release();
    }
    for (const listener of this.listeners) {
      listener(txn.changes);
    }
    return result;
  }

  /** @returns True when the caller runs inside an open transaction. */
  inTransaction(): boolean {
    return this.context.getStore() !== undefined;
  }

  /**
   * Appends a version inside the current transaction and stamps its `meta.lastUpdated` (on the
   * caller's new resource object, which the change announces too).
   * @param version - The version to append.
   * @param change - The change to announce when the transaction commits.
   */
  append(version: StoredVersion, change: ResourceChange): void {
    const txn = this.context.getStore();
    if (!txn) {
      throw new Error('ResourceStore.append called outside a transaction');
    }
    const key = keyOf(version.resource.resourceType, version.resource.id);
    let list = txn.pending.get(key);
    if (!list) {
      list = [];
      txn.pending.set(key, list);
    }
    // Stamped here, under the writer lock, and strictly increasing: the order of lastUpdated is
    // the order of the writes (writers that race on a create decide who was first by it).
    const lastUpdated = new Date((this.lastWrite = Math.max(Date.now(), this.lastWrite + 1))).toISOString();
    version.resource.meta = { ...version.resource.meta, lastUpdated };
    list.push(version);
    txn.changes.push(change);
  }

  /**
   * @param resourceType - The resource type.
   * @param id - The resource id.
   * @returns All versions, oldest first, as seen by the caller (its own uncommitted writes included).
   */
  history(resourceType: string, id: string): StoredVersion[] {
    const key = keyOf(resourceType, id);
    const committed = this.versions.get(key) ?? [];
    const pending = this.context.getStore()?.pending.get(key);
    return pending ? [...committed, ...pending] : committed;
  }

  /**
   * @param resourceType - The resource type.
   * @param id - The resource id.
   * @returns The newest version as seen by the caller, or undefined if the id was never written.
   */
  latest(resourceType: string, id: string): StoredVersion | undefined {
    const key = keyOf(resourceType, id);
    const pending = this.context.getStore()?.pending.get(key);
    if (pending?.length) {
      return pending[pending.length - 1];
    }
    const committed = this.versions.get(key);
    return committed?.[committed.length - 1];
  }

  /**
   * @param resourceType - The resource type.
   * @returns Every id ever written for the type, as seen by the caller.
   */
  ids(resourceType: string): string[] {
    const result = new Set(this.idsByType.get(resourceType));
    const txn = this.context.getStore();
    if (txn) {
      for (const list of txn.pending.values()) {
        const resource = list[0].resource;
        if (resource.resourceType === resourceType) {
          result.add(resource.id);
        }
      }
    }
    return [...result];
  }

  /**
   * Ids that may carry a token, as seen by the caller (a superset: check the current version).
   * @param resourceType - The resource type.
   * @param param - `identifier` or `_tag`.
   * @param system - The token's system.
   * @param value - The token's value (or tag code).
   * @returns Candidate ids.
   */
  idsWithToken(resourceType: string, param: 'identifier' | '_tag', system: string, value: string): string[] {
    const result = new Set(this.tokenIndex.get(resourceType)?.get(tokenKey(param, system, value)));
    const txn = this.context.getStore();
    if (txn) {
      for (const list of txn.pending.values()) {
        const resource = list[list.length - 1].resource;
        if (resource.resourceType === resourceType) {
          result.add(resource.id);
        }
      }
    }
    return [...result];
  }

  /** @returns The resource types that have at least one stored id. */
  resourceTypes(): string[] {
    return [...this.idsByType.keys()];
  }

  private commit(txn: OpenTransaction): void {
    for (const [key, list] of txn.pending) {
      let committed = this.versions.get(key);
      if (!committed) {
        committed = [];
        this.versions.set(key, committed);
        const { resourceType, id } = list[0].resource;
        let ids = this.idsByType.get(resourceType);
        if (!ids) {
          ids = new Set();
          this.idsByType.set(resourceType, ids);
        }
        ids.add(id);
      }
      committed.push(...list);
      for (const version of list) {
        this.indexTokens(version.resource);
      }
    }
  }

  private indexTokens(resource: WithId<Resource>): void {
    let index = this.tokenIndex.get(resource.resourceType);
    if (!index) {
      index = new Map();
      this.tokenIndex.set(resource.resourceType, index);
    }
    const add = (key: string): void => {
      let ids = index.get(key);
      if (!ids) {
        ids = new Set();
        index.set(key, ids);
      }
      ids.add(resource.id);
    };
    // `identifier` is an array on most types and a single Identifier on a few (Composition, Bundle).
    const identifiers = (resource as { identifier?: Identifier | Identifier[] }).identifier;
    for (const identifier of Array.isArray(identifiers) ? identifiers : identifiers ? [identifiers] : []) {
      if (identifier.system && identifier.value) {
        add(tokenKey('identifier', identifier.system, identifier.value));
      }
    }
    for (const tag of resource.meta?.tag ?? []) {
      if (tag.system && tag.code) {
        add(tokenKey('_tag', tag.system, tag.code));
      }
    }
  }

  private async acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => {
      release = resolve;
    });
    const previous = this.lock;
    this.lock = previous.then(() => next);
    await previous;
    return release;
  }
}

function tokenKey(param: string, system: string, value: string): string {
  return `${param}|${system}|${value}`.toLowerCase();
}

function keyOf(resourceType: string, id: string): string {
  return resourceType + '/' + id;
}
