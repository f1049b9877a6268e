import { validateResource } from '@medplum/core';
import type { Bundle, Parameters, ParametersParameter, Patient } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { BACKPORT_NOTIFICATION_PROFILE, BACKPORT_STATUS_PROFILE, buildNotificationBundle } from './notification.ts';
import type { NotificationInput } from './notification.ts';

const STATUS_ID = '2d5afc69-6ef2-420f-a8d1-8500c99eb96c';
const TOPIC = 'https://hub.example.org/fhir/SubscriptionTopic/patient-changes';

const patient: Patient = {
  resourceType: 'Patient',
  id: 'p1',
  meta: { versionId: '3', lastUpdated: '2024-05-01T10:00:00.000Z' },
  name: [{ family: 'Rivera', given: ['Ana'] }],
};

function build(overrides: Partial<NotificationInput> = {}): Bundle {
  return buildNotificationBundle({
    subscription: 'Subscription/sub-1',
    topic: TOPIC,
    eventNumber: 7,
    timestamp: '2024-05-01T10:00:01.250Z',
    resource: patient,
    interaction: 'update',
    statusId: STATUS_ID,
    ...overrides,
  });
}

function statusOf(bundle: Bundle): Parameters {
  return bundle.entry?.[0]?.resource as Parameters;
}

function param(bundle: Bundle, name: string): ParametersParameter | undefined {
  return statusOf(bundle).parameter?.find((p) => p.name === name);
}

function part(bundle: Bundle, name: string): ParametersParameter | undefined {
  return param(bundle, 'notification-event')?.part?.find((p) => p.name === name);
}

beforeAll(() => {
  loadFhirDefinitions();
});

describe('buildNotificationBundle', () => {
  test('update: the IG shape, status Parameters first, then the PUT history entry', () => {
    expect(build()).toEqual({
      resourceType: 'Bundle',
      meta: { profile: [BACKPORT_NOTIFICATION_PROFILE] },
      type: 'history',
      timestamp: '2024-05-01T10:00:01.250Z',
      entry: [
        {
          fullUrl: `urn:uuid:${STATUS_ID}`,
          resource: {
            resourceType: 'Parameters',
            id: STATUS_ID,
            meta: { profile: [BACKPORT_STATUS_PROFILE] },
            parameter: [
              { name: 'subscription', valueReference: { reference: 'Subscription/sub-1' } },
              { name: 'topic', valueCanonical: TOPIC },
              { name: 'status', valueCode: 'active' },
              { name: 'type', valueCode: 'event-notification' },
              { name: 'events-since-subscription-start', valueString: '7' },
              {
                name: 'notification-event',
                part: [
                  { name: 'event-number', valueString: '7' },
                  { name: 'timestamp', valueInstant: '2024-05-01T10:00:01.250Z' },
                  { name: 'focus', valueReference: { reference: 'Patient/p1/_history/3' } },
                ],
              },
            ],
          },
          request: { method: 'GET', url: 'Subscription/sub-1/$status' },
          response: { status: '200' },
        },
        {
          fullUrl: 'Patient/p1',
          resource: patient,
          request: { method: 'PUT', url: 'Patient/p1' },
          response: { status: '200', etag: 'W/"3"', lastModified: '2024-05-01T10:00:00.000Z' },
        },
      ],
    });
  });

  test('create: POST to the type, answered 201, as in the IG full-resource example', () => {
    const bundle = build({ interaction: 'create', resource: { ...patient, meta: { versionId: '1' } }, eventNumber: 1 });
    expect(bundle.entry?.[1]).toEqual({
      fullUrl: 'Patient/p1',
      resource: { ...patient, meta: { versionId: '1' } },
      request: { method: 'POST', url: 'Patient' },
      response: { status: '201', etag: 'W/"1"' },
    });
    expect(part(bundle, 'focus')?.valueReference?.reference).toBe('Patient/p1/_history/1');
  });

  test('delete: no resource, DELETE request, focus names the deleted version', () => {
    const bundle = build({ interaction: 'delete', resource: { ...patient, meta: { versionId: '4' } } });
    const entry = bundle.entry?.[1];
    expect(entry).toEqual({
      fullUrl: 'Patient/p1',
      request: { method: 'DELETE', url: 'Patient/p1' },
      response: { status: '204', etag: 'W/"4"' },
    });
    expect(entry && 'resource' in entry).toBe(false);
    expect(part(bundle, 'focus')?.valueReference?.reference).toBe('Patient/p1/_history/4');
  });

  test('event numbers and events since start are strings (int64 in R5)', () => {
    const bundle = build({ eventNumber: 42, eventsSinceStart: 45 });
    expect(part(bundle, 'event-number')).toEqual({ name: 'event-number', valueString: '42' });
    expect(param(bundle, 'events-since-subscription-start')).toEqual({ name: 'events-since-subscription-start', valueString: '45' });
    // Defaults to the event number when the caller does not count separately.
    expect(param(build({ eventNumber: 9 }), 'events-since-subscription-start')?.valueString).toBe('9');
    expect(() => build({ eventNumber: 0 })).toThrow(/eventNumber/);
    expect(() => build({ eventNumber: 1.5 })).toThrow(/eventNumber/);
    expect(() => build({ eventNumber: 5, eventsSinceStart: 4 })).toThrow(/eventsSinceStart/);
  });

  test('the focus reference is always versioned', () => {
    for (const interaction of ['create', 'update', 'delete'] as const) {
      const reference = part(build({ interaction }), 'focus')?.valueReference?.reference;
      expect(reference).toMatch(/^Patient\/p1\/_history\/3$/);
    }
  });

  test('with a base URL, fullUrl and focus are absolute, as in the IG examples', () => {
    for (const baseUrl of ['https://hub.example.org/fhir/R4', 'https://hub.example.org/fhir/R4/']) {
      const bundle = build({ baseUrl, subscription: { reference: 'https://hub.example.org/fhir/R4/Subscription/sub-1' } });
      expect(bundle.entry?.[1]?.fullUrl).toBe('https://hub.example.org/fhir/R4/Patient/p1');
      expect(part(bundle, 'focus')?.valueReference?.reference).toBe('https://hub.example.org/fhir/R4/Patient/p1/_history/3');
      // The request stays relative to the server base, as in the IG's `POST Encounter`.
      expect(bundle.entry?.[1]?.request?.url).toBe('Patient/p1');
      expect(bundle.entry?.[0]?.request?.url).toBe('https://hub.example.org/fhir/R4/Subscription/sub-1/$status');
    }
    expect(() => build({ baseUrl: 'hub.example.org/fhir' })).toThrow(/baseUrl/);
    expect(() => build({ baseUrl: 'https://hub.example.org/fhir?x=1' })).toThrow(/baseUrl/);
  });

  test('topic is omitted when not given; a random status id is a UUID', () => {
    const bundle = buildNotificationBundle({
      subscription: { reference: 'Subscription/sub-1' },
      eventNumber: 1,
      timestamp: '2024-05-01T10:00:01Z',
      resource: patient,
      interaction: 'update',
    });
    expect(param(bundle, 'topic')).toBeUndefined();
    expect(statusOf(bundle).id).toMatch(/^[0-9a-f-]{36}$/);
    expect(bundle.entry?.[0]?.fullUrl).toBe(`urn:uuid:${statusOf(bundle).id}`);
  });

  test('refuses input that cannot make a valid notification', () => {
    expect(() => build({ resource: { ...patient, id: undefined } })).toThrow(/needs an id/);
    expect(() => build({ resource: { ...patient, meta: {} } })).toThrow(/needs meta.versionId/);
    expect(() => build({ timestamp: '2024-05-01' })).toThrow(/FHIR instant/);
    expect(() => build({ timestamp: '2024-05-01T10:00:00' })).toThrow(/FHIR instant/);
    expect(() => build({ subscription: 'Patient/p1' })).toThrow(/Subscription/);
    expect(() => build({ subscription: {} })).toThrow(/Subscription/);
    expect(() => build({ topic: ' ' })).toThrow(/topic/);
    expect(() => build({ statusId: 'not-a-uuid' })).toThrow(/statusId/);
    expect(() => build({ interaction: 'patch' as never })).toThrow(/Unknown interaction/);
    expect(() => build({ interaction: 'constructor' as never })).toThrow(/Unknown interaction/);
  });

  test('every variant is valid FHIR R4 per validateResource', () => {
    const variants: Bundle[] = [
      build(),
      build({ interaction: 'create' }),
      build({ interaction: 'delete' }),
      build({ topic: undefined, baseUrl: 'https://hub.example.org/fhir/R4' }),
      build({ timestamp: '2024-05-01T05:00:01-05:00', eventNumber: 123456789012, eventsSinceStart: 123456789013 }),
    ];
    for (const bundle of variants) {
      expect(() => validateResource(bundle)).not.toThrow();
    }
  });

  test('validateResource would catch a broken notification (the check is not vacuous)', () => {
    // Medplum's validator checks structure, primitive formats and FHIRPath invariants, though not
    // code bindings nor the IG profile: the IG's slices are checked in the next test.
    const breakages: ((bundle: Bundle) => void)[] = [
      (b) => delete b.entry?.[1]?.request, // bdl-3: history entries need a request
      (b) => delete b.entry?.[1]?.response, // bdl-4: ... and a response
      (b) => {
        const entry = b.entry?.[1];
        if (entry) {
          entry.fullUrl = 'Patient/p1/_history/3'; // bdl-8: fullUrl is version-independent
        }
      },
      (b) => {
        const timestamp = part(b, 'timestamp');
        if (timestamp) {
          timestamp.valueInstant = '2024-05-01'; // an instant needs a time and a zone
        }
      },
    ];
    for (const breakage of breakages) {
      const bundle = build();
      breakage(bundle);
      expect(() => validateResource(bundle)).toThrow();
    }
  });

  test('follows the IG slices of BackportSubscriptionStatusR4', () => {
    const count = (params: ParametersParameter[] | undefined, name: string): number => params?.filter((p) => p.name === name).length ?? 0;
    for (const bundle of [build(), build({ interaction: 'create' }), build({ interaction: 'delete', topic: undefined })]) {
      // backport-notification-bundle-r4-1: the first entry is the Parameters.
      expect(bundle.entry?.[0]?.resource?.resourceType).toBe('Parameters');
      const params = statusOf(bundle).parameter;
      expect(count(params, 'subscription')).toBe(1);
      expect(count(params, 'topic')).toBeLessThanOrEqual(1);
      expect(count(params, 'status')).toBe(1);
      expect(count(params, 'type')).toBe(1);
      expect(count(params, 'events-since-subscription-start')).toBe(1);
      expect(count(params, 'notification-event')).toBe(1);
      const parts = param(bundle, 'notification-event')?.part;
      expect(count(parts, 'event-number')).toBe(1);
      expect(count(parts, 'timestamp')).toBe(1);
      expect(count(parts, 'focus')).toBe(1);
      // Parameters inv-1: each parameter has exactly one of value[x], resource, part.
      for (const p of [...(params ?? []), ...(parts ?? [])]) {
        const kinds = Object.keys(p).filter((k) => k.startsWith('value') || k === 'resource' || k === 'part');
        expect(kinds, p.name).toHaveLength(1);
      }
    }
  });
});
