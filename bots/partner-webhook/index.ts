import type { BotEvent, MedplumClient } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import type { RouteResult } from '../../src/outbound/route.ts';
import { loadFhirDefinitions } from '../../src/fhir/definitions.ts';
import { routeChange } from '../../src/outbound/route.ts';

/**
 * Partner webhooks: fired by each partner's Subscriptions (their endpoint is this bot; the
 * extension `partner-endpoint` names the partner). Checks the change is within the partner's
 * AccessPolicy and queues it as a durable delivery; the `partner-delivery` bot sends the queue,
 * in order, signed (Standard Webhooks and Medplum's X-Signature), and retries what fails.
 * @param medplum - Client with the bot's identity.
 * @param event - The changed resource, the rest-hook headers and the bot secrets.
 * @returns What was done.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Resource>): Promise<RouteResult> {
  // The partner's AccessPolicy criteria are matched with @medplum/core's search matcher, which
  // needs the SearchParameter definitions.
  loadFhirDefinitions();
  const result = await routeChange(medplum, event);
  // One line per run, ids only: with the bot's `on-output` audit trigger, every routing then
  // leaves an AuditEvent (entities: the resource and the Subscription; the trace id) naming the
  // delivery it queued, which `hub trace` follows.
  console.log(result.routed ? `partner-webhook: queued ${result.delivery} for ${result.partner}` : `partner-webhook: ${result.reason}`);
  return result;
}
