import type { BotEvent, MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString, satisfiedAccessPolicy } from '@medplum/core';
import type { AccessPolicy, AccessPolicyResource, Endpoint, Resource } from '@medplum/fhirtypes';
import { retryTransient } from '../fhir/failures.ts';
import { headerValue } from '../net/headers.ts';
import type { QueueReport as DeliveryReport } from './queue.ts';
import { deliverPending, enqueueDelivery } from './delivery.ts';
import type { Partner } from './partner.ts';
import { PARTNER_WEBHOOK_CONNECTION, PartnerExtension, readPartner } from './partner.ts';

/** What routing one change did. */
export type RouteResult = { routed: false; reason: string } | { routed: true; partner: string; delivery: string; problems: string[] };

/**
 * Routes a change to its partner: the Subscription that fired (header `X-Medplum-Subscription`)
 * names the partner Endpoint; the change is queued as a delivery when the partner's AccessPolicy
 * lets it read the resource (its scope), without what the policy hides. The `partner-delivery`
 * bot sends it. A partner whose Endpoint is `off` receives nothing; one whose signing secret is
 * missing still gets its events queued, to be sent once the secret is set. The stock subscription
 * worker does not retry a bot that fails, so server failures and throttling are retried here.
 * @param medplum - The client (the routing bot's identity).
 * @param event - The subscription event: the resource, the rest-hook headers, the bot secrets.
 * @param sleep - Waits between attempts; tests replace it.
 * @returns What was done.
 */
export async function routeChange(
  medplum: MedplumClient,
  event: BotEvent<Resource | { deletedResource?: Resource }>,
  sleep?: (ms: number) => Promise<unknown>
): Promise<RouteResult> {
  return retryTransient(() => routeOnce(medplum, event), 4, sleep);
}

async function routeOnce(medplum: MedplumClient, event: BotEvent<Resource | { deletedResource?: Resource }>): Promise<RouteResult> {
  const subscriptionId = headerValue(event.headers, 'x-medplum-subscription');
  const interaction = (headerValue(event.headers, 'x-medplum-interaction') ?? 'update') as 'create' | 'update' | 'delete';
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
  if (endpoint.status === 'off') {
    return { routed: false, reason: `Endpoint/${endpoint.id} is off: not sent` };
  }
  const { partner, problems } = readPartner(endpoint, event.secrets);
  if (!partner) {
    return { routed: false, reason: problems.join('; ') };
  }
  const scope = await scopeFor(medplum, partner, resource);
  if (!scope) {
    return { routed: false, reason: `${resource.resourceType}/${resource.id} is outside ${partner.endpoint}'s AccessPolicy: not sent` };
  }
  const delivery = await enqueueDelivery(medplum, partner, {
    subscription: `Subscription/${subscription.id}`,
    // What the partner's policy hides (its hiddenFields) is not sent.
    resource: withoutHiddenFields(resource, scope.hiddenFields ?? []),
    interaction,
  });
  return { routed: true, partner: partner.endpoint, delivery: `Task/${delivery.id}`, problems };
}

/**
 * The delivery pass (cron): sends every active partner's pending deliveries that are due.
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
    const { partner, problems } = readPartner(endpoint, secrets);
    if (!partner || partner.secrets.length === 0) {
      reports[`Endpoint/${endpoint.id}`] = { error: problems.join('; ') };
      continue;
    }
    try {
      reports[partner.endpoint] = await deliverPending(medplum, partner);
    } catch (err) {
      reports[partner.endpoint] = { error: normalizeErrorString(err) };
    }
  }
  return reports;
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

