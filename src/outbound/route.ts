import type { BotEvent, MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString, satisfiedAccessPolicy } from '@medplum/core';
import type { AccessPolicy, AccessPolicyResource, Endpoint, Resource } from '@medplum/fhirtypes';
import type { DeliveryReport } from './delivery.ts';
import { deliverPending, enqueueDelivery } from './delivery.ts';
import type { Partner } from './partner.ts';
import { PARTNER_WEBHOOK_CONNECTION, PartnerExtension, readPartner } from './partner.ts';

/** What routing one change did. */
export type RouteResult =
  | { routed: false; reason: string }
  | { routed: true; partner: string; delivery: string; report: DeliveryReport };

/**
 * Routes a change to its partner: the Subscription that fired (header `X-Medplum-Subscription`)
 * names the partner Endpoint; the change is delivered only when the partner's AccessPolicy lets
 * it read the resource (its scope); it is recorded as a delivery and the partner's pending
 * deliveries are attempted at once (the cron pass retries what fails).
 * @param medplum - The client (the routing bot's identity).
 * @param event - The subscription event: the resource, the rest-hook headers, the bot secrets.
 * @returns What was done.
 */
export async function routeChange(medplum: MedplumClient, event: BotEvent<Resource | { deletedResource?: Resource }>): Promise<RouteResult> {
  const subscriptionId = header(event, 'x-medplum-subscription');
  const interaction = (header(event, 'x-medplum-interaction') ?? 'update') as 'create' | 'update' | 'delete';
  const resource = ('deletedResource' in event.input ? event.input.deletedResource : event.input) as WithId<Resource> | undefined;
  if (!subscriptionId || !resource?.id) {
    return { routed: false, reason: 'not a subscription event (no X-Medplum-Subscription header or no resource)' };
  }
  const subscription = await medplum.readResource('Subscription', subscriptionId);
  const endpointRef = subscription.extension?.find((e) => e.url === PartnerExtension.endpoint)?.valueReference?.reference;
  if (!endpointRef?.startsWith('Endpoint/')) {
    return { routed: false, reason: `Subscription/${subscriptionId} names no partner Endpoint (${PartnerExtension.endpoint})` };
  }
  const endpoint = await medplum.readReference<Endpoint>({ reference: endpointRef });
  const partner = activePartner(endpoint, event.secrets);
  if ('reason' in partner) {
    return { routed: false, reason: partner.reason };
  }
  const scope = await scopeFor(medplum, partner.partner, resource);
  if (!scope) {
    return { routed: false, reason: `${resource.resourceType}/${resource.id} is outside ${partner.partner.endpoint}'s AccessPolicy: not sent` };
  }
  const delivery = await enqueueDelivery(medplum, partner.partner, {
    subscription: `Subscription/${subscription.id}`,
    // What the partner's policy hides (its hiddenFields) is not sent.
    resource: withoutHiddenFields(resource, scope.hiddenFields ?? []),
    interaction,
    baseUrl: medplum.fhirUrl().toString().replace(/\/$/, ''),
  });
  const report = await deliverPending(medplum, partner.partner);
  return { routed: true, partner: partner.partner.endpoint, delivery: `Task/${delivery.id}`, report };
}

/**
 * The cron pass: retries every active partner's pending deliveries that are due.
 * @param medplum - The client.
 * @param secrets - The bot secrets.
 * @returns One report per partner.
 */
export async function deliverAllPartners(medplum: MedplumClient, secrets: BotEvent['secrets']): Promise<Record<string, DeliveryReport | { error: string }>> {
  const endpoints = await medplum.searchResources('Endpoint', {
    'connection-type': `${PARTNER_WEBHOOK_CONNECTION.system}|${PARTNER_WEBHOOK_CONNECTION.code}`,
    status: 'active',
    _count: '100',
  });
  const reports: Record<string, DeliveryReport | { error: string }> = {};
  for (const endpoint of endpoints) {
    const read = readPartner(endpoint, secrets);
    if ('problems' in read) {
      reports[`Endpoint/${endpoint.id}`] = { error: read.problems.join('; ') };
      continue;
    }
    try {
      reports[read.partner.endpoint] = await deliverPending(medplum, read.partner);
    } catch (err) {
      reports[read.partner.endpoint] = { error: normalizeErrorString(err) };
    }
  }
  return reports;
}

function activePartner(endpoint: WithId<Endpoint>, secrets: BotEvent['secrets']): { partner: Partner } | { reason: string } {
  if (endpoint.status !== 'active') {
    return { reason: `Endpoint/${endpoint.id} is ${endpoint.status}: not sent` };
  }
  const read = readPartner(endpoint, secrets);
  return 'problems' in read ? { reason: read.problems.join('; ') } : read;
}

/**
 * @returns The rule of the partner's AccessPolicy that lets it read the resource, or undefined.
 * A partner without an AccessPolicy receives nothing: its scope must be written down.
 */
async function scopeFor(medplum: MedplumClient, partner: Partner, resource: Resource): Promise<AccessPolicyResource | undefined> {
  if (!partner.accessPolicy) {
    return undefined;
  }
  const policy = await medplum.readReference<AccessPolicy>({ reference: partner.accessPolicy });
  return satisfiedAccessPolicy(resource, 'read', policy);
}

/**
 * @param resource - A resource.
 * @param paths - Element paths to remove (`note`, `meta.author`, `name.given`), as AccessPolicy
 * `hiddenFields` names them; a path through a list applies to every item.
 * @returns A copy without them.
 */
export function withoutHiddenFields<T extends Resource>(resource: T, paths: readonly string[]): T {
  const copy = JSON.parse(JSON.stringify(resource)) as T;
  const remove = (value: unknown, parts: string[]): void => {
    if (Array.isArray(value)) {
      value.forEach((item) => remove(item, parts));
      return;
    }
    if (!value || typeof value !== 'object') {
      return;
    }
    const [first, ...rest] = parts;
    if (rest.length === 0) {
      delete (value as Record<string, unknown>)[first];
    } else {
      remove((value as Record<string, unknown>)[first], rest);
    }
  };
  for (const path of paths) {
    remove(copy, path.split('.'));
  }
  return copy;
}

function header(event: BotEvent, name: string): string | undefined {
  const entry = Object.entries(event.headers ?? {}).find(([key]) => key.toLowerCase() === name);
  const value = entry?.[1];
  return Array.isArray(value) ? value[0] : value;
}

