import type { AccessPolicy, Endpoint } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { LOCK_CODE_SYSTEM, LockKind } from '../fhir/lock.ts';
import { DELIVERY_TASK_CODE } from './delivery.ts';
import { PARTNER_WEBHOOK_CONNECTION, PartnerExtension, readPartner } from './partner.ts';
import { withoutHiddenFields } from './route.ts';
import { generateWebhookSecret } from './standard-webhooks.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const json = <T>(path: string): T => JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as T;
const example = json<Endpoint>('seed/partner-acme-analytics.json');

describe('readPartner', () => {
  const current = generateWebhookSecret();
  const previous = generateWebhookSecret();

  test('reads the repository example, with the current and the previous secret', () => {
    const result = readPartner({ ...example, id: 'p1' }, {
      PARTNER_ACME_ANALYTICS_SECRET: { name: 'PARTNER_ACME_ANALYTICS_SECRET', valueString: current },
      PARTNER_ACME_ANALYTICS_SECRET_PREVIOUS: { name: 'PARTNER_ACME_ANALYTICS_SECRET_PREVIOUS', valueString: previous },
    });
    expect(result).toEqual({
      problems: [],
      partner: expect.objectContaining({
        endpoint: 'Endpoint/p1',
        url: 'https://hooks.acme-analytics.example/medplum',
        secrets: [current, previous],
        payload: 'notification-bundle',
        retryWindowMs: 72 * 3600_000,
        retryBaseMs: 30_000,
        settleMs: 15_000,
        accessPolicy: '{{AccessPolicy/partner-acme-analytics}}',
      }),
    });
  });

  test('a missing or malformed secret is a problem, but the partner is still read (its events wait); values never appear', () => {
    const onlyCurrent = readPartner({ ...example, id: 'p1' }, { PARTNER_ACME_ANALYTICS_SECRET: { name: 'PARTNER_ACME_ANALYTICS_SECRET', valueString: current } });
    expect(onlyCurrent.partner?.secrets).toEqual([current]);
    expect(onlyCurrent.problems).toEqual([]);
    const malformed = readPartner({ ...example, id: 'p1' }, { PARTNER_ACME_ANALYTICS_SECRET: { name: 'PARTNER_ACME_ANALYTICS_SECRET', valueString: 'not-a-secret' } });
    expect(malformed.partner?.secrets).toEqual([]);
    expect(malformed.problems).toEqual(['Endpoint/p1: the bot secret PARTNER_ACME_ANALYTICS_SECRET is not a Standard Webhooks secret (whsec_ and base64 of at least 24 bytes)']);
    expect(readPartner({ ...example, id: 'p1', address: 'ftp://x' }, {})).toEqual({
      problems: ["Endpoint/p1: address must be the partner's http(s) URL", 'Endpoint/p1: the bot secret PARTNER_ACME_ANALYTICS_SECRET is not set'],
    });
  });
});

describe('withoutHiddenFields', () => {
  test('removes top-level and nested elements, through lists, without touching the input', () => {
    const observation = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, note: [{ text: 'n' }], performer: [{ reference: 'Practitioner/1', display: 'Dr X' }] } as const;
    const copy = withoutHiddenFields(observation as never, ['note', 'performer.display']);
    expect(copy).toEqual({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, performer: [{ reference: 'Practitioner/1' }] });
    expect(observation.note).toHaveLength(1);
  });
});

describe('partner resources', () => {
  test('the delivery bots may read partner configuration and write only deliveries and their locks', () => {
    const policy = json<AccessPolicy>('access-policies/bot-partner-delivery.json');
    const rules = Object.fromEntries((policy.resource ?? []).map((r) => [r.resourceType, r]));
    expect(Object.keys(rules).sort()).toEqual(['AccessPolicy', 'Basic', 'Endpoint', 'Subscription', 'Task']);
    expect(rules.Endpoint.criteria).toBe(`Endpoint?connection-type=${PARTNER_WEBHOOK_CONNECTION.system}|${PARTNER_WEBHOOK_CONNECTION.code}`);
    expect(rules.Task.criteria).toBe(`Task?code=${DELIVERY_TASK_CODE.system}|${DELIVERY_TASK_CODE.code}`);
    expect(rules.Basic.criteria).toBe(`Basic?code=${LOCK_CODE_SYSTEM}|${LockKind.partnerDelivery}`);
    for (const type of ['AccessPolicy', 'Endpoint', 'Subscription']) {
      expect(rules[type].readonly).toBe(true);
    }
  });

  test('the example partner: its Subscription names its Endpoint, its Endpoint its scope', () => {
    const subscription = json<{ extension: { url: string; valueReference: { reference: string } }[] }>('subscriptions/partner-acme-analytics-lab-results.json');
    expect(subscription.extension.find((e) => e.url === PartnerExtension.endpoint)?.valueReference.reference).toBe('{{Endpoint/partner-acme-analytics}}');
    const scope = json<AccessPolicy>('access-policies/partner-acme-analytics.json');
    expect(scope.resource?.every((r) => r.readonly === true)).toBe(true);
  });
});
