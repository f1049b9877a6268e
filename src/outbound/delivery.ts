import type { MedplumClient, WithId } from '@medplum/core';
import type { Resource, Task } from '@medplum/fhirtypes';
import { createHash } from 'node:crypto';
import { HUB_SID, HUB_URI } from '../constants.ts';
import { LockKind } from '../fhir/lock.ts';
import { timeoutOption } from '../net/fetch.ts';
import { buildNotificationBundle } from './notification.ts';
import type { Partner } from './partner.ts';
import type { AttemptResult, QueueReport } from './queue.ts';
import { inputOf, processQueue, queuedTaskFields } from './queue.ts';
import { medplumSignature, signStandardWebhook } from './standard-webhooks.ts';

/** Task code of one event to deliver to a partner. */
export const DELIVERY_TASK_CODE = { system: `${HUB_URI}/CodeSystem/hub-task`, code: 'partner-delivery' } as const;
/** Task identifier: the event (subscription, resource version, interaction), so a subscription retry enqueues nothing new. */
const EVENT_SYSTEM = `${HUB_SID}/partner-event`;
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
  const payload =
    partner.payload === 'resource'
      ? resource
      : buildNotificationBundle({ subscription: event.subscription, eventNumber: (await countDeliveries(medplum, partner)) + 1, timestamp: eventTime, resource, interaction: event.interaction });
  const draft: Task = {
    resourceType: 'Task',
    intent: 'order',
    code: { coding: [{ ...DELIVERY_TASK_CODE }], text: 'Event to deliver to a partner' },
    identifier: [{ system: EVENT_SYSTEM, value: key }],
    focus: { reference: focus },
    owner: { reference: partner.endpoint },
    ...queuedTaskFields(eventTime, partner.retryWindowMs),
    input: [
      { type: { text: 'resource' }, valueString: `${resource.resourceType}/${resource.id}` },
      { type: { text: 'interaction' }, valueString: event.interaction },
      { type: { text: 'payload' }, valueString: JSON.stringify(payload) },
    ],
  };
  return medplum.createResourceIfNoneExist(draft, `identifier=${encodeURIComponent(`${EVENT_SYSTEM}|${key}`)}`);
}

/** The partner's deliveries so far (the notification's event number): a count, asked only for notification payloads. */
async function countDeliveries(medplum: MedplumClient, partner: Partner): Promise<number> {
  return (await medplum.search('Task', { code: `${DELIVERY_TASK_CODE.system}|${DELIVERY_TASK_CODE.code}`, owner: partner.endpoint, _summary: 'count' })).total ?? 0;
}

/**
 * Delivers a partner's queue ({@link processQueue}: in event order and in order per resource,
 * after the partner's settle time, backoff with jitter, dead-letter after the window). Each
 * attempt is a POST of the stored payload with the Standard Webhooks headers (`webhook-id` = the
 * delivery, the same on every attempt; `webhook-timestamp`; `webhook-signature` with every active
 * secret), Medplum's `X-Signature` and `X-Medplum-Interaction`; any 2xx answer completes it.
 * @param medplum - The client.
 * @param partner - The partner.
 * @param now - The current time, ms.
 * @returns Counts.
 */
export async function deliverPending(medplum: MedplumClient, partner: Partner, now = Date.now()): Promise<QueueReport> {
  if (partner.secrets.length === 0) {
    return { delivered: 0, failed: 0, deadLettered: 0, waiting: 0, skipped: 'no valid signing secret: deliveries wait' };
  }
  return processQueue(
    medplum,
    {
      code: DELIVERY_TASK_CODE,
      owner: partner.endpoint,
      lockKind: LockKind.partnerDelivery,
      settleMs: partner.settleMs,
      retryBaseMs: partner.retryBaseMs,
      attempt: (task) => post(partner, task),
    },
    now
  );
}

async function post(partner: Partner, task: WithId<Task>): Promise<AttemptResult> {
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
    return response.status >= 200 && response.status < 300 ? { ok: true, text: `delivered (HTTP ${response.status})` } : { ok: false, reason: `HTTP ${response.status}` };
  } catch (err) {
    // Only the kind of failure is kept: fetch error texts carry the URL, which may hold a token.
    const { name, type, code } = err as { name?: string; type?: string; code?: string };
    const timedOut = type === 'request-timeout' || name === 'TimeoutError' || name === 'AbortError';
    return { ok: false, reason: timedOut ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : `connection failed (${code ?? type ?? name ?? 'error'})`, unreachable: true };
  }
}
