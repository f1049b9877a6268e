import type { WithId } from '@medplum/core';
import {
  ContentType,
  createReference,
  getExtension,
  getExtensionValue,
  isGone,
  isNotFound,
  normalizeErrorString,
  normalizeOperationOutcome,
  Operator,
  resourceMatchesSubscriptionCriteria,
  stringify,
} from '@medplum/core';
import type { AuditEvent, Bot, ProjectMembership, Reference, Resource, Subscription } from '@medplum/fhirtypes';
import { hmacSha256Hex } from '../net/hmac.ts';
import { canPerformInteraction } from './access.ts';
import { entityRole, recordAuditEvent } from './audit.ts';
import { rewriteAttachmentUrls } from './attachments.ts';
import type { AuthService } from './auth.ts';
import type { BinaryStorage } from './binary-storage.ts';
import type { BotExecutor } from './bots/executor.ts';
import { currentRequestContext, isTraceparent } from './context.ts';
import type { HubRepository } from './repo.ts';
import type { ResourceChange } from './store.ts';

/** Extension URLs the stock subscription worker reads (medplum-facts 3). */
export const SubscriptionExtension = {
  interaction: 'https://medplum.com/fhir/StructureDefinition/subscription-supported-interaction',
  fhirPathCriteria: 'https://medplum.com/fhir/StructureDefinition/fhir-path-criteria-expression',
  secret: 'https://www.medplum.com/fhir/StructureDefinition/subscription-secret',
  legacySecret: 'https://www.medplum.com/fhir/StructureDefinition-subscriptionSecret',
  maxAttempts: 'https://medplum.com/fhir/StructureDefinition/subscription-max-attempts',
  successCodes: 'https://medplum.com/fhir/StructureDefinition/subscription-success-codes',
  preCommit: 'https://medplum.com/fhir/StructureDefinition/pre-commit-bot',
} as const;

/** Retries after the first attempt when `subscription-max-attempts` is absent (DEFAULT_ATTEMPTS). */
export const DEFAULT_MAX_ATTEMPTS = 4;
/** Exponential backoff base: retry n waits base * 2^(n-1) ms (BullMQ `exponential`, 1000 ms). */
export const BACKOFF_BASE_MS = 1000;
/** Rest-hook HTTP timeout (REQUEST_TIMEOUT). */
export const REST_HOOK_TIMEOUT_MS = 120_000;
/** Parallel deliveries (the worker's default concurrency). */
export const DELIVERY_CONCURRENCY = 20;
/** Only the first 1000 active subscriptions of a project are evaluated. */
const MAX_SUBSCRIPTIONS = 1000;

/** One queued delivery, as the stock `SubscriptionJobData`. */
export interface SubscriptionJob {
  readonly subscriptionId: string;
  readonly resourceType: string;
  readonly id: string;
  readonly versionId: string;
  readonly interaction: ResourceChange['interaction'];
  readonly requestTime: string;
  readonly traceId?: string;
  /** Attempts already made; the first attempt runs with 0. */
  attemptsMade: number;
}

/** Dependencies provided by the runtime. */
export interface SubscriptionEngineOptions {
  readonly systemRepo: HubRepository;
  readonly executor: BotExecutor;
  readonly auth: AuthService;
  readonly binaries: BinaryStorage;
  readonly baseUrl: string;
  /** Scales the backoff delays; 1 reproduces the stock schedule. Tests may shorten it. */
  readonly backoffScale?: number;
  readonly log?: (message: string) => void;
}

/**
 * Rest-hook subscriptions, delivered the way the stock server's subscription worker does: matched
 * with `@medplum/core`'s own `resourceMatchesSubscriptionCriteria` after each commit, delivered to
 * `Bot/<id>` (the bot runs with the rest-hook headers) or POSTed to a URL with the same headers
 * and `X-Signature` HMAC over the exact body, retried with the stock count and exponential backoff,
 * and audited with one AuditEvent per URL delivery attempt (bots write their own execute events).
 *
 * Jobs live in memory: a restart drops pending retries (the stock server keeps them in Redis).
 */
export class SubscriptionEngine {
  private readonly options: SubscriptionEngineOptions;
  private readonly queue: SubscriptionJob[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly idleWaiters: (() => void)[] = [];
  private active = 0;
  private matching = 0;
  private stopped = false;

  constructor(options: SubscriptionEngineOptions) {
    this.options = options;
  }

  /**
   * Evaluates committed changes against the active subscriptions and queues deliveries.
   * Called by the store after each commit.
   * @param changes - The committed changes.
   */
  onCommit(changes: readonly ResourceChange[]): void {
    const traceId = currentRequestContext()?.traceId;
    const requestTime = new Date().toISOString();
    const relevant = changes.filter((c) => isSubscribable(c.resource));
    if (relevant.length === 0 || this.stopped) {
      return;
    }
    this.matching++;
    this.enqueueMatches(relevant, requestTime, traceId)
      .catch((err: unknown) => this.log('Subscription matching failed: ' + normalizeErrorString(err)))
      .finally(() => {
        this.matching--;
        this.checkIdle();
      });
  }

  /** @returns A promise that resolves once no delivery is queued, waiting for a retry, or running. */
  idle(): Promise<void> {
    if (this.isIdle()) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops accepting work and cancels pending retries. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) {
      clearTimeout(timer);
    }
    this.timers.clear();
    this.queue.length = 0;
    this.checkIdle();
  }

  private async enqueueMatches(changes: readonly ResourceChange[], requestTime: string, traceId?: string): Promise<void> {
    const subscriptions = (
      await this.options.systemRepo.searchResources<Subscription>({
        resourceType: 'Subscription',
        count: MAX_SUBSCRIPTIONS,
        filters: [{ code: 'status', operator: Operator.EQUALS, value: 'active' }],
      })
    ).filter((s) => s.channel.type === 'rest-hook' && getExtensionValue(s, SubscriptionExtension.preCommit) !== true);
    for (const change of changes) {
      for (const subscription of subscriptions) {
        // Only subscriptions of the resource's own project see it.
        if (subscription.meta?.project !== change.resource.meta?.project) {
          continue;
        }
        let matches = false;
        try {
          matches = await resourceMatchesSubscriptionCriteria({
            resource: change.resource,
            subscription,
            context: { interaction: change.interaction },
            getPreviousResource: async () => change.previous,
          });
        } catch (err) {
          this.log(`Subscription/${subscription.id} criteria failed: ${normalizeErrorString(err)}`);
        }
        if (matches) {
          this.queue.push({
            subscriptionId: subscription.id,
            resourceType: change.resource.resourceType,
            id: change.resource.id,
            versionId: change.resource.meta?.versionId as string,
            interaction: change.interaction,
            requestTime,
            traceId,
            attemptsMade: 0,
          });
        }
      }
    }
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.active < DELIVERY_CONCURRENCY && this.queue.length > 0) {
      const job = this.queue.shift() as SubscriptionJob;
      this.active++;
      this.runJob(job)
        .catch((err: unknown) => this.log('Subscription job failed: ' + normalizeErrorString(err)))
        .finally(() => {
          this.active--;
          this.pump();
          this.checkIdle();
        });
    }
  }

  private async runJob(job: SubscriptionJob): Promise<void> {
    const repo = this.options.systemRepo;
    const subscription = await readOrUndefined<Subscription>(repo, 'Subscription', job.subscriptionId);
    if (!subscription || subscription.status !== 'active' || subscription.channel.type !== 'rest-hook') {
      return;
    }
    let current: WithId<Resource> | undefined;
    if (job.interaction !== 'delete') {
      current = await readOrUndefined<Resource>(repo, job.resourceType, job.id);
      if (!current) {
        return;
      }
      if (job.attemptsMade > 0 && current.meta?.versionId !== job.versionId) {
        // A retry of a superseded version is dropped: the newer version has its own delivery.
        return;
      }
    }
    const version =
      current?.meta?.versionId === job.versionId ? current : await repo.readVersion<Resource>(job.resourceType, job.id, job.versionId);
    const resource = await rewriteAttachmentUrls(version, repo, this.options.binaries, this.options.baseUrl);
    await this.checkAuthorAccess(subscription, version);
    try {
      const endpoint = subscription.channel.endpoint ?? '';
      if (endpoint.startsWith('Bot/')) {
        await this.deliverToBot(job, subscription, resource);
      } else if (endpoint) {
        await this.deliverToUrl(job, subscription, resource);
      }
    } catch (err) {
      this.scheduleRetry(job, subscription, err);
    }
  }

  /**
   * The stock worker's `satisfiesAccessPolicy`: the resource is checked against the policy of the
   * Subscription author's membership. The stock server enforces it only for WebSocket
   * subscriptions; rest-hook and bot deliveries go ahead with a warning, and so they do here. The
   * hub does not rely on it: a partner's scope is applied by the partner-webhook router, and
   * partners may not create Subscriptions.
   */
  private async checkAuthorAccess(subscription: WithId<Subscription>, resource: Resource): Promise<void> {
    const author = subscription.meta?.author;
    if (!author?.reference || author.reference === 'system') {
      return;
    }
    const membership = await this.options.auth.findMembership(author);
    const policy = membership ? (await this.options.auth.stateFor(membership, 'client')).accessPolicy : undefined;
    if (!membership || (policy && !canPerformInteraction(policy, 'read', resource))) {
      this.log(
        `Subscription/${subscription.id}: ${resource.resourceType}/${resource.id} is outside its author's AccessPolicy (delivered, as on the stock server for rest-hook)`
      );
    }
  }

  private async deliverToBot(job: SubscriptionJob, subscription: WithId<Subscription>, resource: WithId<Resource>): Promise<void> {
    const repo = this.options.systemRepo;
    const bot = await repo.readReference<Bot>({ reference: subscription.channel.endpoint as string });
    const requester = resource.meta?.author as Reference | undefined;
    let runAs: WithId<ProjectMembership> | undefined;
    if (bot.runAsUser) {
      runAs = requester ? await this.options.auth.findMembership(requester) : undefined;
    } else {
      runAs = await this.options.auth.findMembership(createReference(bot));
    }
    if (!runAs) {
      throw new Error('Could not find project membership for bot');
    }
    const input = job.interaction === 'delete' ? { deletedResource: resource } : resource;
    const headers = buildRestHookHeaders(job, subscription, resource, JSON.stringify(input));
    // The stock worker ignores the bot's result: a failing bot is audited but not retried.
    await this.options.executor.execute({
      bot,
      runAs,
      requester,
      input,
      contentType: ContentType.FHIR_JSON,
      subscription,
      requestTime: job.requestTime,
      traceId: job.traceId,
      headers,
    });
  }

  private async deliverToUrl(job: SubscriptionJob, subscription: WithId<Subscription>, resource: WithId<Resource>): Promise<void> {
    const body = job.interaction === 'delete' ? '{}' : stringify(resource);
    const headers = buildRestHookHeaders(job, subscription, resource, body);
    let error: Error | undefined;
    try {
      const response = await fetch(subscription.channel.endpoint as string, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(REST_HOOK_TIMEOUT_MS),
      });
      await response.arrayBuffer().catch(() => undefined);
      const success = isSuccessStatus(subscription, response.status);
      await this.audit(job, subscription, resource, success, `Attempt ${job.attemptsMade} received status ${response.status}`);
      if (!success) {
        error = new Error('Received status ' + response.status);
      }
    } catch (err) {
      await this.audit(job, subscription, resource, false, `Attempt ${job.attemptsMade} received error ${String(err)}`);
      error = err as Error;
    }
    if (error) {
      throw error;
    }
  }

  private scheduleRetry(job: SubscriptionJob, subscription: Subscription, err: unknown): void {
    const maxAttempts =
      getExtension(subscription, SubscriptionExtension.maxAttempts)?.valueInteger ?? DEFAULT_MAX_ATTEMPTS;
    job.attemptsMade++;
    if (job.attemptsMade > maxAttempts || this.stopped) {
      this.log(`Subscription/${job.subscriptionId} gave up on ${job.resourceType}/${job.id} after ${job.attemptsMade} attempts: ${normalizeErrorString(err)}`);
      return;
    }
    const delay = BACKOFF_BASE_MS * 2 ** (job.attemptsMade - 1) * (this.options.backoffScale ?? 1);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.queue.push(job);
      this.pump();
    }, delay);
    this.timers.add(timer);
  }

  private async audit(
    job: SubscriptionJob,
    subscription: WithId<Subscription>,
    resource: WithId<Resource>,
    success: boolean,
    outcomeDesc: string
  ): Promise<void> {
    const auditEvent: AuditEvent = {
      resourceType: 'AuditEvent',
      meta: { project: subscription.meta?.project },
      period: { start: job.requestTime, end: new Date().toISOString() },
      recorded: new Date().toISOString(),
      type: { code: 'transmit' },
      agent: [{ type: { text: 'Subscription' }, requestor: false }],
      source: { observer: createReference(subscription) as AuditEvent['source']['observer'] },
      entity: [
        { what: createReference(resource), role: entityRole(resource) },
        { what: createReference(subscription), role: entityRole(subscription) },
      ],
      outcome: success ? '0' : '4',
      outcomeDesc,
    };
    await recordAuditEvent(this.options.systemRepo, auditEvent, job.traceId);
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.active === 0 && this.timers.size === 0 && this.matching === 0;
  }

  private checkIdle(): void {
    if (this.isIdle()) {
      for (const resolve of this.idleWaiters.splice(0)) {
        resolve();
      }
    }
  }

  private log(message: string): void {
    this.options.log?.(message);
  }
}

/**
 * Builds the rest-hook headers exactly as the stock worker does, including its quirk of splitting
 * each `channel.header` entry on every `:` (a value containing `:` is truncated).
 * @param job - The delivery.
 * @param subscription - The subscription.
 * @param resource - The resource delivered.
 * @param body - The exact body string the signature covers.
 * @returns The headers.
 */
export function buildRestHookHeaders(
  job: Pick<SubscriptionJob, 'interaction' | 'traceId'>,
  subscription: WithId<Subscription>,
  resource: Resource,
  body: string
): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': ContentType.FHIR_JSON,
    'X-Medplum-Subscription': subscription.id,
    'X-Medplum-Interaction': job.interaction,
  };
  if (job.interaction === 'delete') {
    headers['X-Medplum-Deleted-Resource'] = `${resource.resourceType}/${resource.id}`;
  }
  for (const header of subscription.channel.header ?? []) {
    const [key, value] = header.split(/:/);
    if (key && value !== undefined) {
      headers[key.trim()] = value.trim();
    }
  }
  const secret =
    getExtensionValue(subscription, SubscriptionExtension.secret) ||
    getExtensionValue(subscription, SubscriptionExtension.legacySecret);
  if (secret && typeof secret === 'string') {
    headers['X-Signature'] = hmacSha256Hex(secret, body);
  }
  if (job.traceId) {
    headers['x-trace-id'] = job.traceId;
    if (isTraceparent(job.traceId)) {
      headers['traceparent'] = job.traceId;
    }
  }
  return headers;
}

/**
 * @param subscription - The subscription, possibly with a `subscription-success-codes` extension
 * such as `"200-399,404"`.
 * @param status - The HTTP status received.
 * @returns True when the status counts as delivered (200-399 by default).
 */
export function isSuccessStatus(subscription: Subscription, status: number): boolean {
  const codes = getExtensionValue(subscription, SubscriptionExtension.successCodes);
  if (typeof codes !== 'string' || !codes.trim()) {
    return status >= 200 && status < 400;
  }
  return codes.split(',').some((part) => {
    const [low, high] = part.trim().split('-').map((n) => Number.parseInt(n, 10));
    return high === undefined ? status === low : status >= low && status <= high;
  });
}

function isSubscribable(resource: Resource): boolean {
  if (resource.resourceType === 'AuditEvent') {
    return false;
  }
  return !(resource.resourceType === 'Subscription' && resource.channel?.type === 'websocket');
}

async function readOrUndefined<T extends Resource>(
  repo: HubRepository,
  resourceType: string,
  id: string
): Promise<WithId<T> | undefined> {
  try {
    return await repo.readResource<T>(resourceType, id);
  } catch (err) {
    const outcome = normalizeOperationOutcome(err);
    if (isGone(outcome) || isNotFound(outcome)) {
      return undefined;
    }
    throw err;
  }
}
