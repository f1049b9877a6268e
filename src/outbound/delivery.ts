import type { MedplumClient, WithId } from '@medplum/core';
import type { Resource, Task } from '@medplum/fhirtypes';
import { createHash } from 'node:crypto';
import { HUB_SID, HUB_URI } from '../constants.ts';
import { acquireLock, LockKind, releaseLock } from '../fhir/lock.ts';
import { timeoutOption } from '../net/fetch.ts';
import { buildNotificationBundle } from './notification.ts';
import type { Partner } from './partner.ts';
import { medplumSignature, signStandardWebhook } from './standard-webhooks.ts';

/** Task code of one event to deliver to a partner. */
export const DELIVERY_TASK_CODE = { system: `${HUB_URI}/CodeSystem/hub-task`, code: 'partner-delivery' } as const;
/** Task identifier: the event (subscription, resource version, interaction), so a subscription retry enqueues nothing new. */
const EVENT_SYSTEM = `${HUB_SID}/partner-event`;
/** Extensions on a delivery Task. */
const DeliveryExtension = {
  nextAttempt: `${HUB_URI}/StructureDefinition/delivery-next-attempt`,
  attempts: `${HUB_URI}/StructureDefinition/delivery-attempts`,
} as const;
/** Code system of a delivery's state (`Task.businessStatus`). */
export const DELIVERY_STATE_SYSTEM = `${HUB_URI}/CodeSystem/partner-delivery-state`;
/** Longest wait between two attempts. */
const MAX_BACKOFF_MS = 3600_000;
/** A partner that takes longer than this to answer has not answered. */
const DELIVERY_TIMEOUT_MS = 10_000;

/** One change to deliver. */
export interface DeliveryEvent {
  readonly subscription: string;
  readonly resource: WithId<Resource>;
  readonly interaction: 'create' | 'update' | 'delete';
}

/**
 * Records an event to deliver: a Task owned by the partner Endpoint, holding the exact payload
 * (the notification Bundle or the resource version), keyed by the event so a subscription that
 * fires twice for the same version enqueues one delivery.
 * @param medplum - The client.
 * @param partner - The partner.
 * @param event - The change.
 * @returns The delivery Task.
 */
export async function enqueueDelivery(medplum: MedplumClient, partner: Partner, event: DeliveryEvent): Promise<WithId<Task>> {
  // What a partner receives carries the version's id and time, not the server's bookkeeping
  // (project, author, compartments).
  const resource = { ...event.resource, meta: { versionId: event.resource.meta?.versionId, lastUpdated: event.resource.meta?.lastUpdated } } as WithId<Resource>;
  const focus = `${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  const key = createHash('sha256').update(`${partner.endpoint}\n${event.subscription}\n${focus}\n${event.interaction}`).digest('hex');
  const now = new Date().toISOString();
  // The event's time orders the queue: subscription runs can record two versions out of order.
  const eventTime = resource.meta?.lastUpdated ?? now;
  const eventNumber = (await medplum.search('Task', { code: `${DELIVERY_TASK_CODE.system}|${DELIVERY_TASK_CODE.code}`, owner: partner.endpoint, _summary: 'count' })).total ?? 0;
  const payload =
    partner.payload === 'resource'
      ? resource
      : buildNotificationBundle({ subscription: event.subscription, eventNumber: eventNumber + 1, timestamp: eventTime, resource, interaction: event.interaction });
  const draft: Task = {
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    code: { coding: [{ ...DELIVERY_TASK_CODE }], text: 'Event to deliver to a partner' },
    identifier: [{ system: EVENT_SYSTEM, value: key }],
    focus: { reference: focus },
    owner: { reference: partner.endpoint },
    authoredOn: eventTime,
    restriction: { period: { end: new Date(Date.parse(eventTime) + partner.retryWindowMs).toISOString() } },
    input: [
      { type: { text: 'resource' }, valueString: `${resource.resourceType}/${resource.id}` },
      { type: { text: 'interaction' }, valueString: event.interaction },
      { type: { text: 'payload' }, valueString: JSON.stringify(payload) },
    ],
    extension: [
      { url: DeliveryExtension.nextAttempt, valueInstant: now },
      { url: DeliveryExtension.attempts, valueInteger: 0 },
    ],
  };
  return medplum.createResourceIfNoneExist(draft, `identifier=${encodeURIComponent(`${EVENT_SYSTEM}|${key}`)}`);
}

/** What one delivery pass did. */
export interface DeliveryReport {
  readonly delivered: number;
  readonly failed: number;
  readonly deadLettered: number;
  readonly waiting: number;
  readonly skipped?: string;
}

/** A pass stops starting deliveries after this long, well before a lock counts as stale. */
const PASS_BUDGET_MS = 50_000;

/**
 * Delivers a partner's pending events, in event order and in order per resource: a resource's
 * later event waits until its earlier one is delivered (or dead-lettered), so the partner never
 * sees version 3 before version 2, and an event younger than the partner's settle time waits
 * too (an earlier version may still be on its way into the queue). Each attempt is a POST of the
 * stored payload with the Standard Webhooks headers (`webhook-id` = the delivery, the same on
 * every attempt; `webhook-timestamp`; `webhook-signature` with every active secret), Medplum's
 * `X-Signature` and `X-Medplum-Interaction`. A 2xx answer completes the delivery; anything else
 * schedules the next attempt with exponential backoff and jitter; a failed delivery whose next
 * attempt would fall after the retry window goes to the dead-letter (`failed`). A partner that
 * cannot be reached ends the pass. One pass per partner at a time (a lock).
 * @param medplum - The client.
 * @param partner - The partner.
 * @param now - The current time, ms.
 * @returns Counts.
 */
export async function deliverPending(medplum: MedplumClient, partner: Partner, now = Date.now()): Promise<DeliveryReport> {
  if (partner.secrets.length === 0) {
    return { delivered: 0, failed: 0, deadLettered: 0, waiting: 0, skipped: 'no valid signing secret: deliveries wait' };
  }
  const lease = await acquireLock(medplum, LockKind.partnerDelivery, partner.endpoint.replace('/', '-'), 'Bot/partner-delivery');
  if (!lease) {
    return { delivered: 0, failed: 0, deadLettered: 0, waiting: 0, skipped: 'another pass is delivering to this partner' };
  }
  const started = Date.now();
  try {
    const pending = await medplum.searchResources('Task', {
      code: `${DELIVERY_TASK_CODE.system}|${DELIVERY_TASK_CODE.code}`,
      owner: partner.endpoint,
      status: 'requested',
      _sort: 'authored-on',
      _count: '200',
    });
    const blocked = new Set<string>();
    const report = { delivered: 0, failed: 0, deadLettered: 0, waiting: 0 };
    for (const task of pending) {
      const resource = inputOf(task, 'resource') ?? '';
      const settled = Date.parse(task.authoredOn ?? '') <= now - partner.settleMs;
      if (blocked.has(resource) || !settled || Date.parse(nextAttemptOf(task) ?? '') > now || Date.now() - started > PASS_BUDGET_MS) {
        blocked.add(resource);
        report.waiting++;
        continue;
      }
      const answer = await post(partner, task);
      const attempts = attemptsOf(task) + 1;
      if (answer.ok) {
        await settle(medplum, task, 'completed', 'delivered', `delivered on attempt ${attempts} (HTTP ${answer.status})`, attempts);
        report.delivered++;
        continue;
      }
      const delay = retryDelay(partner.retryBaseMs, attempts, Math.random());
      if (now + delay > Date.parse(task.restriction?.period?.end ?? '')) {
        await settle(medplum, task, 'failed', 'dead-letter', `not delivered within the retry window (${attempts} attempt(s), last: ${answer.reason})`, attempts);
        report.deadLettered++;
      } else {
        await reschedule(medplum, task, attempts, new Date(now + delay).toISOString(), `attempt ${attempts} failed: ${answer.reason}`);
        report.failed++;
      }
      blocked.add(resource);
      if (answer.unreachable) {
        // The partner is down: the other events would fail the same way.
        break;
      }
    }
    return report;
  } finally {
    await releaseLock(medplum, lease);
  }
}

/**
 * @param baseMs - The partner's first retry delay.
 * @param attempts - Attempts made so far (1 after the first failure).
 * @param random - A number in [0, 1): the jitter (±20 %), so partners coming back up are not hit
 * by every queued delivery at the same instant.
 * @returns The wait before the next attempt: the base doubled per attempt, jittered, at most an hour.
 */
export function retryDelay(baseMs: number, attempts: number, random: number): number {
  return Math.min(baseMs * 2 ** (attempts - 1) * (0.8 + random * 0.4), MAX_BACKOFF_MS);
}

async function post(partner: Partner, task: WithId<Task>): Promise<{ ok: true; status: number } | { ok: false; reason: string; unreachable: boolean }> {
  const body = inputOf(task, 'payload') ?? '';
  const headers = {
    'content-type': 'application/fhir+json',
    ...signStandardWebhook({ id: task.id, timestamp: new Date(), body, secrets: partner.secrets }),
    'x-signature': medplumSignature(partner.secrets[0], body),
    'x-medplum-interaction': inputOf(task, 'interaction') ?? 'update',
  };
  try {
    const response = await fetch(partner.url, { method: 'POST', headers, body, redirect: 'manual', ...timeoutOption(DELIVERY_TIMEOUT_MS) });
    await response.text().catch(() => undefined);
    return response.status >= 200 && response.status < 300 ? { ok: true, status: response.status } : { ok: false, reason: `HTTP ${response.status}`, unreachable: false };
  } catch (err) {
    // Only the kind of failure is kept: fetch error texts carry the URL, which may hold a token.
    const { name, type, code } = err as { name?: string; type?: string; code?: string };
    const timedOut = type === 'request-timeout' || name === 'TimeoutError' || name === 'AbortError';
    return { ok: false, reason: timedOut ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : `connection failed (${code ?? type ?? name ?? 'error'})`, unreachable: true };
  }
}

async function settle(medplum: MedplumClient, task: WithId<Task>, status: 'completed' | 'failed', state: string, text: string, attempts = attemptsOf(task)): Promise<void> {
  await medplum.updateResource<Task>({
    ...task,
    status,
    businessStatus: { coding: [{ system: DELIVERY_STATE_SYSTEM, code: state }], text },
    lastModified: new Date().toISOString(),
    extension: withExtensions(task, { attempts }),
  });
}

async function reschedule(medplum: MedplumClient, task: WithId<Task>, attempts: number, next: string, text: string): Promise<void> {
  await medplum.updateResource<Task>({
    ...task,
    businessStatus: { coding: [{ system: DELIVERY_STATE_SYSTEM, code: 'retrying' }], text },
    lastModified: new Date().toISOString(),
    extension: withExtensions(task, { attempts, next }),
  });
}

function withExtensions(task: Task, values: { attempts: number; next?: string }): Task['extension'] {
  const others = (task.extension ?? []).filter((e) => e.url !== DeliveryExtension.attempts && e.url !== DeliveryExtension.nextAttempt);
  return [
    ...others,
    { url: DeliveryExtension.attempts, valueInteger: values.attempts },
    { url: DeliveryExtension.nextAttempt, valueInstant: values.next ?? nextAttemptOf(task) ?? new Date().toISOString() },
  ];
}

function inputOf(task: Task, name: string): string | undefined {
  return task.input?.find((i) => i.type?.text === name)?.valueString;
}

function attemptsOf(task: Task): number {
  return task.extension?.find((e) => e.url === DeliveryExtension.attempts)?.valueInteger ?? 0;
}

function nextAttemptOf(task: Task): string | undefined {
  return task.extension?.find((e) => e.url === DeliveryExtension.nextAttempt)?.valueInstant;
}

/**
 * Puts a dead-lettered delivery back in the queue with a fresh retry window.
 * @param medplum - The client.
 * @param taskId - The delivery Task (it must be a dead-lettered partner delivery).
 * @param windowMs - The new retry window.
 * @returns The Task.
 */
export async function replayDelivery(medplum: MedplumClient, taskId: string, windowMs: number): Promise<WithId<Task>> {
  const task = await medplum.readResource('Task', taskId);
  if (!task.code?.coding?.some((c) => c.system === DELIVERY_TASK_CODE.system && c.code === DELIVERY_TASK_CODE.code) || task.status !== 'failed') {
    throw new Error(`Task/${taskId} is not a dead-lettered partner delivery`);
  }
  const now = new Date();
  return medplum.updateResource<Task>({
    ...task,
    status: 'requested',
    businessStatus: { coding: [{ system: DELIVERY_STATE_SYSTEM, code: 'replayed' }], text: `replayed ${now.toISOString()}` },
    restriction: { period: { end: new Date(now.getTime() + windowMs).toISOString() } },
    extension: withExtensions(task, { attempts: 0, next: now.toISOString() }),
  });
}
