// The FHIR payload of a partner webhook when the partner asked for a notification Bundle rather
// than the bare resource: an R4 topic-based subscription notification as defined by the
// Subscriptions R5 Backport IG (http://hl7.org/fhir/uv/subscriptions-backport/), profiles
// BackportSubscriptionNotificationR4 and BackportSubscriptionStatusR4
// (https://github.com/HL7/fhir-subscription-backport-ig/blob/master/input/fsh/BackportNotificationR4.fsh).
//
// Pure apart from the default status id (a random UUID when the caller gives none).

import type { Bundle, BundleEntry, Parameters, ParametersParameter, Reference, Resource, Subscription } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';

/** Profile of the notification Bundle (`Bundle.meta.profile` in the IG's R4 examples). */
export const BACKPORT_NOTIFICATION_PROFILE =
  'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4';

/** Profile of the SubscriptionStatus `Parameters`, the Bundle's first entry. */
export const BACKPORT_STATUS_PROFILE =
  'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4';

/** The change being notified. */
export type NotificationInteraction = 'create' | 'update' | 'delete';

/** Input of {@link buildNotificationBundle}. */
export interface NotificationInput {
  /** The Subscription that produced the event: a Reference or a reference string (`Subscription/<id>`). */
  readonly subscription: Reference<Subscription> | string;
  /** Canonical URL of the SubscriptionTopic; the IG says it SHOULD be present for full-resource payloads. */
  readonly topic?: string;
  /** Sequential number of this event for this subscription (1 for the first event). */
  readonly eventNumber: number;
  /** When the event occurred on the server (FHIR instant); also used as `Bundle.timestamp`. */
  readonly timestamp: string;
  /** The resource version that changed (for a delete: the last version, which names the focus). */
  readonly resource: Resource;
  /** What happened to it. */
  readonly interaction: NotificationInteraction;
  /** Events generated since the subscription started, this one included. Defaults to `eventNumber`. */
  readonly eventsSinceStart?: number;
  /**
   * FHIR base URL of the hub (e.g. `https://hub.example.org/fhir/R4`). When given, `fullUrl` and
   * the focus reference are absolute, as in the IG's examples and as R4 describes `fullUrl`;
   * without it both are relative (`Patient/123`).
   */
  readonly baseUrl?: string;
  /** Id of the status `Parameters` (a UUID, also its `urn:uuid:` fullUrl). Random when omitted. */
  readonly statusId?: string;
}

/** HTTP method and response status the history entry records for each interaction. */
const ENTRY_BY_INTERACTION: Record<NotificationInteraction, { method: 'POST' | 'PUT' | 'DELETE'; status: string }> = {
  // The IG's full-resource example records a create as `POST <Type>` answered `201`.
  create: { method: 'POST', status: '201' },
  update: { method: 'PUT', status: '200' },
  // A delete carries no resource, so the matching HTTP answer is 204 No Content.
  delete: { method: 'DELETE', status: '204' },
};

/** FHIR R4 `instant`: seconds and a zone are required. */
const INSTANT =
  /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/;

/** FHIR `id` (also the shape of a `versionId`). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A relative `Subscription/<id>` reference, or an absolute one ending in it. */
const SUBSCRIPTION_REFERENCE = /^(?:https?:\/\/[^\s]+\/)?Subscription\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * Builds an R4 backport `event-notification` Bundle (type `history`) for one event: first the
 * SubscriptionStatus `Parameters` (subscription, topic, status `active`, type, events since start,
 * and one `notification-event` whose focus is the versioned reference `Type/id/_history/vid`),
 * then the resource's history entry (`POST`/`PUT` with the resource, or `DELETE` without it).
 * @param input - The event.
 * @returns The notification Bundle.
 * @throws Error when the input cannot make a valid notification (resource without id or
 * versionId, non-positive event number, timestamp not a FHIR instant, bad subscription reference).
 */
export function buildNotificationBundle(input: NotificationInput): Bundle {
  const { resource, interaction, eventNumber } = input;
  const subscription = subscriptionReference(input.subscription);
  const { id, versionId } = resourceVersion(resource);
  if (!Number.isSafeInteger(eventNumber) || eventNumber < 1) {
    throw new Error('eventNumber must be a positive integer');
  }
  const eventsSinceStart = input.eventsSinceStart ?? eventNumber;
  if (!Number.isSafeInteger(eventsSinceStart) || eventsSinceStart < eventNumber) {
    throw new Error('eventsSinceStart must be an integer no smaller than eventNumber');
  }
  if (!INSTANT.test(input.timestamp)) {
    throw new Error('timestamp must be a FHIR instant (e.g. 2024-01-01T10:00:00Z)');
  }
  if (input.topic !== undefined && input.topic.trim() === '') {
    throw new Error('topic must be a non-empty canonical URL when given');
  }
  if (!Object.hasOwn(ENTRY_BY_INTERACTION, interaction)) {
    throw new Error(`Unknown interaction: ${String(interaction)}`);
  }
  const statusId = input.statusId ?? randomUUID();
  if (!UUID.test(statusId)) {
    throw new Error('statusId must be a lowercase UUID');
  }
  const base = input.baseUrl === undefined ? '' : normalizeBase(input.baseUrl);
  const resourcePath = `${resource.resourceType}/${id}`;

  const parameter: ParametersParameter[] = [{ name: 'subscription', valueReference: { reference: subscription } }];
  if (input.topic !== undefined) {
    parameter.push({ name: 'topic', valueCanonical: input.topic });
  }
  parameter.push(
    { name: 'status', valueCode: 'active' },
    { name: 'type', valueCode: 'event-notification' },
    // The IG types these counters as string because they are int64 in R5.
    { name: 'events-since-subscription-start', valueString: String(eventsSinceStart) },
    {
      name: 'notification-event',
      part: [
        { name: 'event-number', valueString: String(eventNumber) },
        { name: 'timestamp', valueInstant: input.timestamp },
        // Versioned, so the partner can tell which version this event was about even after
        // later changes (and can vread it, including the last version of a deleted resource).
        { name: 'focus', valueReference: { reference: `${base}${resourcePath}/_history/${versionId}` } },
      ],
    }
  );
  const status: Parameters = {
    resourceType: 'Parameters',
    id: statusId,
    meta: { profile: [BACKPORT_STATUS_PROFILE] },
    parameter,
  };

  const { method, status: httpStatus } = ENTRY_BY_INTERACTION[interaction];
  const entry: BundleEntry = {
    fullUrl: `${base}${resourcePath}`,
    ...(interaction === 'delete' ? {} : { resource }),
    request: { method, url: method === 'POST' ? resource.resourceType : resourcePath },
    response: {
      status: httpStatus,
      etag: `W/"${versionId}"`,
      ...(resource.meta?.lastUpdated ? { lastModified: resource.meta.lastUpdated } : {}),
    },
  };

  return {
    resourceType: 'Bundle',
    meta: { profile: [BACKPORT_NOTIFICATION_PROFILE] },
    type: 'history',
    timestamp: input.timestamp,
    entry: [
      {
        fullUrl: `urn:uuid:${statusId}`,
        resource: status,
        // A history Bundle needs request and response on every entry (bdl-3, bdl-4); the IG fills
        // the status entry in as a call to the Subscription's $status operation.
        request: { method: 'GET', url: `${subscription}/$status` },
        response: { status: '200' },
      },
      entry,
    ],
  };
}

function subscriptionReference(subscription: Reference<Subscription> | string): string {
  const reference = typeof subscription === 'string' ? subscription : subscription.reference;
  if (!reference || !SUBSCRIPTION_REFERENCE.test(reference)) {
    throw new Error('subscription must reference a Subscription (e.g. "Subscription/<id>")');
  }
  return reference;
}

function resourceVersion(resource: Resource): { id: string; versionId: string } {
  const id = resource.id;
  const versionId = resource.meta?.versionId;
  if (!id || !FHIR_ID.test(id)) {
    throw new Error(`${resource.resourceType} needs an id to be notified`);
  }
  if (!versionId || !FHIR_ID.test(versionId)) {
    throw new Error(`${resource.resourceType}/${id} needs meta.versionId to be notified`);
  }
  return { id, versionId };
}

/** `https://hub/fhir/R4` or `https://hub/fhir/R4/` → `https://hub/fhir/R4/`. */
function normalizeBase(baseUrl: string): string {
  // A pattern rather than `new URL`: the URL global is not guaranteed in a bot sandbox.
  if (!/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(baseUrl)) {
    throw new Error('baseUrl must be an absolute http(s) URL without query or fragment');
  }
  return baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
}
