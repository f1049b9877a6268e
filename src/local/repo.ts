import type { SearchRequest, SortRule, WithId } from '@medplum/core';
import {
  allOk,
  badRequest,
  deepClone,
  deepEquals,
  evalFhirPath,
  forbidden,
  formatSearchQuery,
  getStatus,
  globalSchema,
  gone,
  matchesSearchRequest,
  Operator,
  splitSearchOnComma,
  normalizeOperationOutcome,
  notFound,
  OperationOutcomeError,
  preconditionFailed,
  stringify,
  validateResource,
  validateResourceType,
} from '@medplum/core';
import type { CreateResourceOptions, ReadHistoryOptions, RepositoryMode, UpdateResourceOptions } from '@medplum/fhir-router';
import { FhirRepository } from '@medplum/fhir-router';
import type { AccessPolicyInteraction } from '@medplum/core';
import type { AccessPolicy, Bundle, BundleEntry, Meta, OperationOutcome, Reference, Resource } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import type { Operation } from 'rfc6902';
import { applyPatch } from 'rfc6902';
import { canPerformInteraction, isResourceWriteable, removeHiddenFields, restoreReadonlyFields, searchFilter, supportsInteraction } from './access.ts';
import { unsignAttachmentUrls } from './attachments.ts';
import { compartmentsOf } from './compartments.ts';
import type { ResourceStore, StoredVersion } from './store.ts';

/** Default and maximum page sizes of the stock server's search (`@medplum/core` search constants). */
export const DEFAULT_SEARCH_COUNT = 20;
export const MAX_SEARCH_COUNT = 1000;

/** Who is writing, as recorded in `meta.author`, and in which project. */
export interface RepositoryContext {
  /** The caller's profile: ClientApplication, Bot, Practitioner... or `system` for the runtime itself. */
  readonly author: Reference;
  /** The project every resource written through this repository belongs to. */
  readonly projectId: string;
  /** Base URL used for `fullUrl` and paging links, e.g. `http://127.0.0.1:8103/fhir/R4/`. */
  readonly fhirBaseUrl: string;
  /**
   * A super admin (a member of a project with `superAdmin: true`) sees every project, may choose
   * ids and may place resources in another project through `meta.project`, as on the stock server.
   */
  readonly superAdmin?: boolean;
  /**
   * The caller's effective AccessPolicy (src/local/access.ts), enforced as the stock repository
   * does: 403 for a type the policy never allows for the interaction, 404 for a resource it may
   * not read, 403 for a write whose current or resulting version it may not write; search
   * results filtered by the criteria; hidden fields removed. Absent for the runtime itself and
   * super admins, who are not restricted.
   */
  readonly accessPolicy?: AccessPolicy;
}

/**
 * A FHIR repository over the in-memory {@link ResourceStore}, bound to one caller.
 *
 * It behaves like the stock server's repository where a client can tell the difference:
 * server-assigned ids and `meta` (versionId, lastUpdated, author, project), validation with
 * `@medplum/core` (invalid resources are refused with an OperationOutcome), no new version for a
 * no-op update, `If-Match` preconditions, deletes that leave a `410 Gone` tombstone, search paging
 * with the stock default page size, and atomic transactions.
 */
export class HubRepository extends FhirRepository<undefined> {
  private readonly store: ResourceStore;
  private readonly context: RepositoryContext;

  constructor(store: ResourceStore, context: RepositoryContext) {
    super();
    this.store = store;
    this.context = context;
  }

  setMode(_mode: RepositoryMode): void {
    // One in-memory store: there is no reader/writer split.
  }

  generateId(): string {
    return randomUUID();
  }

  async createResource<T extends Resource>(resource: T, options?: CreateResourceOptions): Promise<WithId<T>> {
    this.checkInteraction('create', resource.resourceType);
    const id = options?.assignedId && resource.id ? resource.id : this.generateId();
    const input = this.withoutReadonlyFields(cleaned({ ...resource, id } as WithId<T>), undefined);
    const created = this.prepareVersion(input, undefined);
    this.checkWriteable(undefined, created);
    return this.store.transaction(async () => {
      this.store.append(
        { resource: created, deleted: false },
        { interaction: 'create', resource: created }
      );
      return this.visible(deepClone(created));
    });
  }

  async updateResource<T extends Resource>(resource: T, options?: UpdateResourceOptions): Promise<WithId<T>> {
    if (!resource.id) {
      throw new OperationOutcomeError(badRequest('Missing id'));
    }
    this.checkInteraction('update', resource.resourceType);
    const id = resource.id;
    return this.store.transaction(async () => {
      const found = this.store.latest(resource.resourceType, id);
      const existing = found && this.canSee(found.resource) ? found : undefined;
      if (found && !existing) {
        throw new OperationOutcomeError(notFound);
      }
      if (existing && !existing.deleted) {
        // The stock "check before the update": the current version must be readable (else 404)
        // and writable (else 403) by the caller.
        this.checkCanRead(existing.resource);
        this.checkCan('update', existing.resource);
      }
      if (!existing && !this.canSetId()) {
        // The stock server lets only super admins create a resource with an id of their choosing
        // (`canSetId`); everyone else gets 404 for an update of an id that never existed. A deleted
        // resource may be restored by anyone.
        throw new OperationOutcomeError(notFound);
      }
      const previous = existing && !existing.deleted ? (existing.resource as WithId<T>) : undefined;
      // If-Match is checked against the current version only; a deleted resource has none.
      if (options?.ifMatch && previous && previous.meta?.versionId !== options.ifMatch) {
        throw new OperationOutcomeError(preconditionFailed);
      }
      const incoming = this.withoutReadonlyFields(cleaned(resource as WithId<T>), previous);
      if (previous && isNotModified(previous, incoming)) {
        return this.visible(deepClone(previous));
      }
      const updated = this.prepareVersion(incoming, previous);
      this.checkWriteable(previous, updated);
      this.store.append(
        { resource: updated, deleted: false },
        { interaction: previous ? 'update' : 'create', resource: updated, previous }
      );
      return this.visible(deepClone(updated));
    });
  }

  async patchResource<T extends Resource>(
    resourceType: T['resourceType'],
    id: string,
    patch: Operation[]
  ): Promise<WithId<T>> {
    return this.store.transaction(async () => {
      const resource = await this.readResource<T>(resourceType, id);
      let errors: (Error | null)[];
      try {
        errors = applyPatch(resource, patch).filter(Boolean);
      } catch (err) {
        throw new OperationOutcomeError(normalizeOperationOutcome(err));
      }
      if (errors.length > 0) {
        throw new OperationOutcomeError(badRequest(errors.map((e) => (e as Error).message).join('\n')));
      }
      if (resource.resourceType !== resourceType || resource.id !== id) {
        throw new OperationOutcomeError(badRequest('Patch cannot change the resource type or id'));
      }
      return this.updateResource<T>(resource);
    });
  }

  async deleteResource(resourceType: string, id: string): Promise<void> {
    this.checkInteraction('read', resourceType);
    await this.store.transaction(async () => {
      const existing = this.store.latest(resourceType, id);
      if (!existing || !this.canSee(existing.resource)) {
        throw new OperationOutcomeError(notFound);
      }
      if (existing.deleted) {
        return;
      }
      this.checkCanRead(existing.resource);
      this.checkCan('delete', existing.resource);
      // Like the stock server, a delete is a version of its own (new versionId, no content); the
      // change still carries the last live version, which is what subscriptions deliver.
      const tombstone = {
        ...existing.resource,
        meta: { ...existing.resource.meta, versionId: this.generateId() },
      };
      this.store.append(
        { resource: tombstone, deleted: true },
        { interaction: 'delete', resource: existing.resource, previous: existing.resource }
      );
    });
  }

  async readResource<T extends Resource>(resourceType: string, id: string): Promise<WithId<T>> {
    this.checkInteraction('read', resourceType);
    const latest = this.store.latest(resourceType, id);
    if (!latest || !this.canSee(latest.resource)) {
      throw new OperationOutcomeError(notFound);
    }
    if (latest.deleted) {
      throw new OperationOutcomeError(gone);
    }
    this.checkCanRead(latest.resource);
    return this.visible(deepClone(latest.resource) as WithId<T>);
  }

  async readReference<T extends Resource>(reference: Reference<T>): Promise<WithId<T>> {
    const parts = reference.reference?.split('/');
    if (parts?.length !== 2 || !parts[0] || !parts[1]) {
      throw new OperationOutcomeError(badRequest('Invalid reference'));
    }
    return this.readResource<T>(parts[0], parts[1]);
  }

  async readReferences<T extends Resource>(references: readonly Reference<T>[]): Promise<(T | Error)[]> {
    return Promise.all(
      references.map((ref) => this.readReference(ref).catch((err: unknown) => normalizeError(err)))
    );
  }

  async readHistory<T extends Resource>(
    resourceType: string,
    id: string,
    options?: ReadHistoryOptions
  ): Promise<Bundle<WithId<T>>> {
    this.checkInteraction('history', resourceType);
    const versions = this.store.history(resourceType, id);
    if (versions.length === 0 || !this.canSee(versions[0].resource)) {
      throw new OperationOutcomeError(notFound);
    }
    this.checkCurrentVersion('history', versions);
    const newestFirst = [...versions].reverse();
    const offset = options?.offset ?? 0;
    const limit = options?.limit ?? 100;
    const entry = newestFirst.slice(offset, offset + limit).map((v) => this.historyEntry(v));
    return { resourceType: 'Bundle', type: 'history', entry } as Bundle<WithId<T>>;
  }

  async readVersion<T extends Resource>(resourceType: string, id: string, vid: string): Promise<WithId<T>> {
    this.checkInteraction('vread', resourceType);
    const versions = this.store.history(resourceType, id);
    if (versions.length === 0 || !this.canSee(versions[0].resource)) {
      throw new OperationOutcomeError(notFound);
    }
    this.checkCurrentVersion('vread', versions);
    const version = versions.find((v) => !v.deleted && v.resource.meta?.versionId === vid);
    if (!version) {
      throw new OperationOutcomeError(notFound);
    }
    return this.visible(deepClone(version.resource) as WithId<T>);
  }

  async search<T extends Resource>(searchRequest: SearchRequest<T>): Promise<Bundle<WithId<T>>> {
    const types = (searchRequest.types?.length ? searchRequest.types : [searchRequest.resourceType]) as string[];
    let matches: WithId<T>[] = [];
    for (const resourceType of types) {
      this.checkInteraction('search', resourceType);
    }
    for (const resourceType of types) {
      const typed = { ...searchRequest, resourceType } as SearchRequest<T>;
      const policy = this.context.accessPolicy;
      const allowed = policy ? searchFilter(policy, resourceType) : undefined;
      for (const [id, request] of this.candidates(resourceType, typed)) {
        const latest = this.store.latest(resourceType, id);
        if (
          latest &&
          !latest.deleted &&
          this.canSee(latest.resource) &&
          (!allowed || allowed(latest.resource)) &&
          matchesSearchRequest(latest.resource, request)
        ) {
          matches.push(latest.resource as WithId<T>);
        }
      }
    }
    matches = sortResources(matches, searchRequest.sortRules);

    const offset = searchRequest.offset ?? 0;
    const count = Math.min(searchRequest.count ?? DEFAULT_SEARCH_COUNT, MAX_SEARCH_COUNT);
    const page = matches.slice(offset, offset + count);
    const bundle: Bundle<WithId<T>> = {
      resourceType: 'Bundle',
      type: 'searchset',
      // `_count=0` (and `_summary=count`) returns no `entry` at all on the stock server.
      entry:
        count > 0
          ? page.map((resource) => ({
              fullUrl: this.context.fhirBaseUrl + resource.resourceType + '/' + resource.id,
              search: { mode: 'match' },
              resource: this.visible(deepClone(resource)),
            }))
          : undefined,
      link: this.searchLinks({ ...searchRequest, offset, count }, page.length, matches.length),
    };
    if (searchRequest.total === 'accurate' || searchRequest.total === 'estimate') {
      bundle.total = matches.length;
    }
    return bundle;
  }

  async searchByReference<T extends Resource>(
    searchRequest: SearchRequest<T>,
    referenceField: string,
    references: string[]
  ): Promise<Record<string, WithId<T>[]>> {
    const results: Record<string, WithId<T>[]> = {};
    for (const reference of references) {
      const bundle = await this.search({
        ...searchRequest,
        filters: [...(searchRequest.filters ?? []), { code: referenceField, operator: 'eq' as never, value: reference }],
      });
      results[reference] = (bundle.entry ?? []).map((e) => e.resource as WithId<T>);
    }
    return results;
  }

  withTransaction<TResult>(callback: (client: undefined) => Promise<TResult>): Promise<TResult> {
    return this.store.transaction(() => callback(undefined));
  }

  /**
   * Builds the stored form of a new version: validated, with server-managed `meta` fields set.
   * @param resource - The resource as sent by the client, with its id, {@link cleaned} (a copy).
   * @param previous - The current version when this is an update.
   * @returns The version to store.
   */
  private prepareVersion<T extends Resource>(resource: WithId<T>, previous: WithId<T> | undefined): WithId<T> {
    validateResourceType(resource.resourceType);
    const result = resource;
    unsignAttachmentUrls(result, this.context.fhirBaseUrl.replace(/fhir\/R4\/$/, ''));
    const meta: Meta = { ...result.meta };
    meta.versionId = randomUUID();
    // lastUpdated is stamped by the store, in write order.
    meta.author = this.context.author;
    meta.project = this.projectFor(result, previous);
    meta.compartment = compartmentsOf({ ...result, meta } as Resource);
    result.meta = meta;
    validateResource(result);
    return result;
  }

  /**
   * A history entry in the stock server's shape (`Repository.readHistory`): every version is a
   * `GET Type/id/_history/vid` with status 200 and the resource, or 410 and a `deleted` outcome
   * without a resource for a delete.
   */
  private historyEntry(version: StoredVersion): BundleEntry {
    const { resourceType, id } = version.resource;
    const outcome: OperationOutcome = version.deleted
      ? {
          resourceType: 'OperationOutcome',
          id: 'gone',
          issue: [{ severity: 'error', code: 'deleted', details: { text: 'Deleted on ' + version.resource.meta?.lastUpdated } }],
        }
      : allOk;
    return {
      fullUrl: this.context.fhirBaseUrl + resourceType + '/' + id,
      request: { method: 'GET', url: `${resourceType}/${id}/_history/${version.resource.meta?.versionId}` },
      response: { status: String(getStatus(outcome)), outcome },
      resource: version.deleted ? undefined : this.visible(deepClone(version.resource)),
    };
  }

  /**
   * Paging links as the stock server builds them with offsets (`getSearchLinks`): always `self`;
   * when the page is non-empty also `first`, `next` when more matches follow, and `previous`
   * after the first page. URLs use `@medplum/core`'s `formatSearchQuery`, as the server does.
   */
  private searchLinks(
    searchRequest: SearchRequest & { offset: number; count: number },
    pageLength: number,
    total: number
  ): Bundle['link'] {
    const { offset, count } = searchRequest;
    const url = (request: SearchRequest): string =>
      this.context.fhirBaseUrl + searchRequest.resourceType + formatSearchQuery(request);
    const links = [{ relation: 'self', url: url(searchRequest) }];
    if (count > 0 && pageLength > 0) {
      links.push({ relation: 'first', url: url({ ...searchRequest, offset: 0 }) });
      if (offset + count < total) {
        links.push({ relation: 'next', url: url({ ...searchRequest, offset: offset + count }) });
      }
      if (offset > 0) {
        links.push({ relation: 'previous', url: url({ ...searchRequest, offset: Math.max(0, offset - count) }) });
      }
    }
    return links;
  }

  /**
   * Ids worth checking for a search, each with the request to check it against: the token index
   * answers `identifier=system|value[,...]` and `_tag=system|code[,...]` filters; anything else
   * scans the type. An id the index found for such a filter matches it exactly (same system and
   * value), which the matcher would accept too, so the filter is left out of that id's check:
   * evaluating the shared `identifier` SearchParameter, a union over every resource type, costs
   * far more than the lookup, and an import checks tens of thousands of candidates.
   */
  private *candidates<T extends Resource>(resourceType: string, searchRequest: SearchRequest<T>): Generator<[string, SearchRequest<T>]> {
    const filters = searchRequest.filters ?? [];
    for (const [index, filter] of filters.entries()) {
      if ((filter.code !== 'identifier' && filter.code !== '_tag') || filter.operator !== Operator.EQUALS) {
        continue;
      }
      const tokens = splitSearchOnComma(filter.value).map((t) => {
        const bar = t.indexOf('|');
        return bar > 0 && bar < t.length - 1 ? [t.slice(0, bar), t.slice(bar + 1)] : undefined;
      });
      if (!tokens.every((t) => t !== undefined)) {
        continue;
      }
      const ids = new Set<string>();
      for (const [system, value] of tokens as [string, string][]) {
        for (const id of this.store.idsWithToken(resourceType, filter.code, system, value)) {
          ids.add(id);
        }
      }
      const rest: SearchRequest<T> = { ...searchRequest, filters: filters.filter((_f, j) => j !== index) };
      for (const id of ids) {
        yield [id, rest];
      }
      return;
    }
    for (const id of this.store.ids(resourceType)) {
      yield [id, searchRequest];
    }
  }

  /** 403 when the caller's policy allows the interaction on no resource of the type. */
  private checkInteraction(interaction: AccessPolicyInteraction, resourceType: string): void {
    const policy = this.context.accessPolicy;
    if (policy && !supportsInteraction(policy, interaction, resourceType)) {
      throw new OperationOutcomeError(forbidden);
    }
  }

  /** 404 for a resource the caller may not read: to it, the resource does not exist. */
  private checkCanRead(resource: Resource): void {
    const policy = this.context.accessPolicy;
    if (policy && !canPerformInteraction(policy, 'read', resource)) {
      throw new OperationOutcomeError(notFound);
    }
  }

  /** 403 when no entry of the caller's policy allows the interaction on this resource. */
  private checkCan(interaction: AccessPolicyInteraction, resource: Resource): void {
    const policy = this.context.accessPolicy;
    if (policy && !canPerformInteraction(policy, interaction, resource)) {
      throw new OperationOutcomeError(forbidden);
    }
  }

  /**
   * History and vread are checked against the current version, as on the stock server: a caller
   * that may not read it gets 404, one that may read but not use the interaction 403. A deleted
   * resource is checked against its last content (its tombstone keeps it), so deleting a resource
   * never opens its history.
   */
  private checkCurrentVersion(interaction: AccessPolicyInteraction, versions: readonly StoredVersion[]): void {
    const current = versions[versions.length - 1];
    this.checkCanRead(current.resource);
    this.checkCan(interaction, current.resource);
  }

  /** The stock "check after the write": the result and the write constraints. */
  private checkWriteable(previous: Resource | undefined, result: Resource): void {
    const policy = this.context.accessPolicy;
    if (policy && !isResourceWriteable(policy, previous, result, previous ? 'update' : 'create')) {
      throw new OperationOutcomeError(forbidden);
    }
  }

  private withoutReadonlyFields<T extends Resource>(input: T, previous: T | undefined): T {
    const policy = this.context.accessPolicy;
    return policy ? restoreReadonlyFields(policy, input, previous) : input;
  }

  /** A resource as the caller may see it: without its hidden fields. */
  private visible<T extends Resource>(resource: T): T {
    const policy = this.context.accessPolicy;
    return policy ? removeHiddenFields(policy, resource) : resource;
  }

  private isSystem(): boolean {
    return this.context.author.reference === 'system';
  }

  /** The runtime itself and super admins see all projects; everyone else only their own. */
  private seesAllProjects(): boolean {
    return this.isSystem() || Boolean(this.context.superAdmin);
  }

  private canSee(resource: Resource): boolean {
    return this.seesAllProjects() || resource.meta?.project === this.context.projectId;
  }

  /** The stock server lets only super admins (and itself) choose a new resource's id. */
  private canSetId(): boolean {
    return this.seesAllProjects();
  }

  /**
   * The project a version belongs to: a Project belongs to itself; an existing resource stays in
   * its project; the runtime and super admins may name another project in `meta.project`;
   * everything else goes to the caller's project.
   */
  private projectFor(resource: WithId<Resource>, previous: Resource | undefined): string {
    if (resource.resourceType === 'Project') {
      return resource.id;
    }
    if (previous?.meta?.project) {
      return previous.meta.project;
    }
    if (this.seesAllProjects() && resource.meta?.project) {
      return resource.meta.project;
    }
    return this.context.projectId;
  }
}

/**
 * The stock server treats an update whose content equals the current version, ignoring the
 * server-managed meta fields, as a no-op: no new version, no subscription notification.
 * @param current - The current version.
 * @param incoming - The resource sent by the client, {@link cleaned}.
 * @returns True when the update would change nothing.
 */
function isNotModified(current: Resource, incoming: Resource): boolean {
  return deepEquals(withoutManagedMeta(current), withoutManagedMeta(incoming));
}

/**
 * @param resource - A resource as a client sent it.
 * @returns A copy cleaned like the stock server's `stringify` (empty values dropped), the form
 * that is compared and stored.
 */
function cleaned<T extends Resource>(resource: T): T {
  return JSON.parse(stringify(resource)) as T;
}

function withoutManagedMeta(resource: Resource): Resource {
  const { meta, ...rest } = resource;
  if (!meta) {
    return rest as Resource;
  }
  const { versionId: _v, lastUpdated: _l, author: _a, project: _p, compartment: _c, ...otherMeta } = meta;
  return Object.keys(otherMeta).length ? ({ ...rest, meta: otherMeta } as Resource) : (rest as Resource);
}

function sortResources<T extends Resource>(resources: T[], sortRules: SortRule[] | undefined): T[] {
  if (!sortRules?.length) {
    return resources;
  }
  const keyed = resources.map((resource) => ({
    resource,
    keys: sortRules.map((rule) => sortKey(resource, rule.code)),
  }));
  keyed.sort((a, b) => {
    for (let i = 0; i < sortRules.length; i++) {
      const cmp = a.keys[i].localeCompare(b.keys[i]);
      if (cmp !== 0) {
        return sortRules[i].descending ? -cmp : cmp;
      }
    }
    return 0;
  });
  return keyed.map((k) => k.resource);
}

function sortKey(resource: Resource, code: string): string {
  if (code === '_lastUpdated') {
    return resource.meta?.lastUpdated ?? '';
  }
  if (code === '_id') {
    return resource.id ?? '';
  }
  const expression = globalSchema.types[resource.resourceType]?.searchParams?.[code]?.expression;
  if (!expression) {
    return '';
  }
  return JSON.stringify(evalFhirPath(expression, resource));
}

function normalizeError(err: unknown): Error {
  return err instanceof Error ? err : new OperationOutcomeError(normalizeOperationOutcome(err));
}
