/**
 * Partner webhooks end to end: a partner Subscription fires the `partner-webhook` bot, which
 * checks the partner's AccessPolicy, records a durable delivery and sends it signed (Standard
 * Webhooks and Medplum's X-Signature) to a real HTTP receiver. The receiver is down, then up:
 * the `partner-delivery` cron pass delivers every event once, in order per resource, with the
 * same webhook-id as the failed attempts. Past the retry window a delivery is dead-lettered, and
 * a replay delivers it.
 */
import type { MedplumClient, WithId } from '@medplum/core';
import type { Endpoint, Observation, Task } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runPartnersCommand } from '../../src/commands/partners.ts';
import { generateWebhookSecret, verifyStandardWebhook } from '../../src/outbound/standard-webhooks.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import { waitFor } from '../support/wait.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';
import { createTestPartner, notificationFocus, partnerDeliveries, runPartnerDeliveryPass, setProjectSecret } from '../support/partners.ts';

const LAB = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] };
const VITALS = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] };

let target: E2eTarget;
let client: MedplumClient;
let skip: string | undefined;

const setSecret = (name: string, value: string): Promise<void> => setProjectSecret(client, name, value);

/** A partner as ops would configure it: laboratory results without notes, retried with no delay. */
async function createPartner(name: string, url: string, secretName: string, windowHours: number): Promise<WithId<Endpoint>> {
  const scope = [{ resourceType: 'Observation' as const, criteria: 'Observation?category=laboratory', readonly: true, hiddenFields: ['note'] }];
  return (await createTestPartner(client, { name, url, secretName, windowHours, scope, criteria: 'Observation' })).endpoint;
}

const deliveries = (endpoint: Endpoint): Promise<WithId<Task>[]> => partnerDeliveries(client, endpoint);
const deliveryPass = (): Promise<void> => runPartnerDeliveryPass(client);
const focusOf = (body: Buffer): string => notificationFocus(body);

beforeAll(async () => {
  target = await startE2eTarget();
  if (target.kind === 'stock') {
    skip = 'stock target: the test receiver listens on 127.0.0.1 only; run against the local runtime';
    return;
  }
  client = target.client;
}, 60_000);

afterAll(async () => {
  await target?.stop();
});

describe('partner webhooks', () => {
  test('a partner down, then up: every event once, in order per resource, signed, within its scope', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const secret = generateWebhookSecret();
    await setSecret('PARTNER_E2E_SECRET', secret);
    const receiver = new WebhookReceiver(secret);
    const url = await receiver.start();
    try {
      receiver.status = 503;
      const partner = await createPartner('E2E partner', url, 'PARTNER_E2E_SECRET', 72);
      const a = await client.createResource<Observation>({ resourceType: 'Observation', status: 'final', category: [LAB], code: { text: 'Potassium' }, valueQuantity: { value: 4.1 }, note: [{ text: 'internal note' }] });
      const a2 = await client.updateResource<Observation>({ ...a, valueQuantity: { value: 4.4 } });
      const b = await client.createResource<Observation>({ resourceType: 'Observation', status: 'final', category: [LAB], code: { text: 'Sodium' }, valueQuantity: { value: 140 } });
      await client.createResource<Observation>({ resourceType: 'Observation', status: 'final', category: [VITALS], code: { text: 'Pulse' }, valueQuantity: { value: 70 } });
      await waitFor('three deliveries queued', async () => ((await deliveries(partner)).length === 3 ? true : undefined), 20_000);
      // While the partner is down: A's first version and B are tried and wait for a retry; A's
      // second version is not tried at all (it may not overtake the first).
      await deliveryPass();
      const pending = await deliveries(partner);
      expect(pending.filter((t) => t.businessStatus?.coding?.[0]?.code === 'retrying')).toHaveLength(2);
      const untried = pending.find((t) => !t.businessStatus);
      expect(untried?.focus?.reference).toBe(`Observation/${a.id}/_history/${a2.meta?.versionId}`);
      const failedIds = new Set(receiver.received.map((r) => r.headers['webhook-id']));
      expect(failedIds.size).toBe(2);

      receiver.status = 200;
      const downAttempts = receiver.received.length;
      await deliveryPass();
      const delivered = receiver.received.slice(downAttempts);
      expect(delivered.map((r) => focusOf(r.rawBody))).toEqual([
        `Observation/${a.id}/_history/${a.meta?.versionId}`,
        `Observation/${a.id}/_history/${a2.meta?.versionId}`,
        `Observation/${b.id}/_history/${b.meta?.versionId}`,
      ]);
      for (const request of delivered) {
        expect(request.signatureValid).toBe(true);
        expect(verifyStandardWebhook({ headers: request.headers as Record<string, string>, body: request.rawBody.toString('utf8'), secret })).toEqual({ ok: true });
        // A retry is the same message: the same webhook-id (partners deduplicate on it).
        expect(failedIds.has(request.headers['webhook-id']) || request.headers['webhook-id'] === untried?.id).toBe(true);
        expect(request.rawBody.toString('utf8')).not.toContain('internal note');
      }
      expect((await deliveries(partner)).map((t) => t.status)).toEqual(['completed', 'completed', 'completed']);

      // Nothing is sent twice.
      await deliveryPass();
      expect(receiver.received.length).toBe(downAttempts + 3);
    } finally {
      await receiver.stop();
    }
  });

  test('past the retry window a delivery is dead-lettered; a replay delivers it', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const secret = generateWebhookSecret();
    await setSecret('PARTNER_E2E_SHORT_SECRET', secret);
    const receiver = new WebhookReceiver(secret);
    const url = await receiver.start();
    try {
      receiver.status = 500;
      const partner = await createPartner('E2E short window', url, 'PARTNER_E2E_SHORT_SECRET', 0);
      await client.createResource<Observation>({ resourceType: 'Observation', status: 'final', category: [LAB], code: { text: 'Chloride' } });
      const [task] = await waitFor('the delivery dead-lettered', async () => {
        await deliveryPass();
        const tasks = await deliveries(partner);
        return tasks.some((t) => t.status === 'failed') ? tasks : undefined;
      }, 20_000);
      expect(task.businessStatus?.coding?.[0]?.code).toBe('dead-letter');
      // Dead-lettered after a failed attempt, never before one.
      expect(task.businessStatus?.text).toMatch(/\(1 attempt\(s\), last: HTTP 500\)/);
      const lines: string[] = [];
      const io = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
      const hub = { client, baseUrl: target.baseUrl, projectId: (client.getProject() as { id: string }).id };
      expect(await runPartnersCommand(hub, ['deliveries', '--dead-letter'], io)).toBe(0);
      expect(lines.some((l) => l.startsWith(`Task/${task.id} `) && l.includes('dead-letter'))).toBe(true);
      receiver.status = 200;
      const before = receiver.received.length;
      expect(await runPartnersCommand(hub, ['replay', task.id, '--window-hours', '1'], io)).toBe(0);
      await deliveryPass();
      expect(receiver.received.length).toBe(before + 1);
      expect((await client.readResource('Task', task.id)).status).toBe('completed');
    } finally {
      await receiver.stop();
    }
  });
});
