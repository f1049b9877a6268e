import { MedplumClient } from '@medplum/core';
import type { AccessPolicy, AuditEvent, Bot, ClientApplication, Extension, Patient, ProjectMembership, Subscription } from '@medplum/fhirtypes';
import { createHmac, randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalRuntime } from './runtime.ts';
import { SubscriptionExtension } from './subscriptions.ts';

/** Backoff scale: the stock 1 s, 2 s, 4 s, 8 s retry gaps become 50, 100, 200, 400 ms. */
const SCALE = 0.05;

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly raw: string;
  readonly at: number;
}

let runtime: LocalRuntime;
let medplum: MedplumClient;
let receiver: Server;
let receiverUrl: string;
const received: Received[] = [];
const logs: string[] = [];
/** Status by path; unknown paths answer 200. A hook may run before the answer is sent. */
const statusByPath = new Map<string, number>();
const hooks = new Map<string, (r: Received) => Promise<void>>();

beforeAll(async () => {
  runtime = await new LocalRuntime({ port: 0, subscriptionBackoffScale: SCALE, log: (line) => logs.push(line) }).start();
  medplum = new MedplumClient({ baseUrl: runtime.baseUrl, cacheTime: 0 });
  await medplum.startClientLogin(runtime.adminCredentials.clientId, runtime.adminCredentials.clientSecret);
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry = { path: req.url ?? '', headers: req.headers, raw: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      received.push(entry);
      const hook = hooks.get(entry.path) ?? (async () => undefined);
      hook(entry)
        .catch(() => undefined)
        .finally(() => res.writeHead(statusByPath.get(entry.path) ?? 200).end());
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await runtime?.stop();
  receiver?.closeAllConnections();
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
});

/** Waits for all deliveries and retries, bounded. */
async function settle(timeoutMs = 8000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    runtime.subscriptions.idle(),
    new Promise((_r, reject) => {
      timer = setTimeout(() => reject(new Error('subscriptions did not settle in ' + timeoutMs + ' ms')), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A unique family name, used both in the criteria and the Patient, so tests never see each other's deliveries. */
function tag(): string {
  return 'sub' + randomUUID().replaceAll('-', '').slice(0, 12);
}

async function subscribe(
  family: string,
  endpoint: string,
  extension: Extension[] = [],
  header?: string[]
): Promise<Subscription> {
  return medplum.createResource<Subscription>({
    resourceType: 'Subscription',
    status: 'active',
    reason: 'unit test',
    criteria: 'Patient?name=' + family,
    channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json', header },
    extension,
  });
}

function at(path: string): Received[] {
  return received.filter((r) => r.path === path);
}

async function auditEventsFor(subscription: Subscription): Promise<AuditEvent[]> {
  const events = await medplum.searchResources('AuditEvent', { entity: 'Subscription/' + subscription.id, _count: '100' });
  return [...events].sort((a, b) => (a.recorded ?? '').localeCompare(b.recorded ?? ''));
}

describe('rest-hook delivery', () => {
  test('headers, signature over the raw body, custom channel.header', async () => {
    const family = tag();
    const path = '/' + family;
    const secret = 'top-secret-' + family;
    const sub = await subscribe(family, receiverUrl + path, [{ url: SubscriptionExtension.secret, valueString: secret }], [
      'Authorization: Bearer partner-token',
    ]);
    const patient = await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }] });
    await settle();

    const [hit, ...rest] = at(path);
    expect(rest).toHaveLength(0);
    expect(hit.headers['x-medplum-subscription']).toBe(sub.id);
    expect(hit.headers['x-medplum-interaction']).toBe('create');
    expect(hit.headers['content-type']).toBe('application/fhir+json');
    expect(hit.headers['authorization']).toBe('Bearer partner-token');
    expect(hit.headers['x-medplum-deleted-resource']).toBeUndefined();
    expect(hit.headers['x-signature']).toBe(createHmac('sha256', secret).update(hit.raw).digest('hex'));
    const body = JSON.parse(hit.raw) as Patient;
    expect(body.id).toBe(patient.id);
    expect(body.meta?.versionId).toBe(patient.meta?.versionId);

    const [audit] = await auditEventsFor(sub);
    expect(audit.type.code).toBe('transmit');
    expect(audit.outcome).toBe('0');
    expect(audit.outcomeDesc).toBe('Attempt 0 received status 200');
    expect(audit.source.observer?.reference).toBe('Subscription/' + sub.id);
  });

  test('the interaction extension filters: create only means no delivery on update', async () => {
    const family = tag();
    const path = '/' + family;
    await subscribe(family, receiverUrl + path, [{ url: SubscriptionExtension.interaction, valueCode: 'create' }]);
    const patient = await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }] });
    await medplum.updateResource<Patient>({ ...patient, gender: 'female' });
    await medplum.deleteResource('Patient', patient.id as string);
    await settle();
    expect(at(path).map((r) => r.headers['x-medplum-interaction'])).toEqual(['create']);
  });

  test('FHIRPath criteria see %previous and %current', async () => {
    const family = tag();
    const path = '/' + family;
    await subscribe(family, receiverUrl + path, [
      {
        url: SubscriptionExtension.fhirPathCriteria,
        valueString: '%previous.active = false and %current.active = true',
      },
    ]);
    const patient = await medplum.createResource<Patient>({ resourceType: 'Patient', active: false, name: [{ family }] });
    const activated = await medplum.updateResource<Patient>({ ...patient, active: true });
    await medplum.updateResource<Patient>({ ...activated, gender: 'male' });
    await settle();
    const hits = at(path);
    expect(hits).toHaveLength(1);
    expect(hits[0].headers['x-medplum-interaction']).toBe('update');
    expect((JSON.parse(hits[0].raw) as Patient).meta?.versionId).toBe(activated.meta?.versionId);
  });

  test('a delete without the interaction extension is delivered with body {}', async () => {
    const family = tag();
    const path = '/' + family;
    const secret = 's-' + family;
    await subscribe(family, receiverUrl + path, [{ url: SubscriptionExtension.secret, valueString: secret }]);
    const patient = await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }] });
    await medplum.deleteResource('Patient', patient.id as string);
    await settle();
    const hits = at(path);
    expect(hits.map((h) => h.headers['x-medplum-interaction'])).toEqual(['create', 'delete']);
    expect(hits[1].raw).toBe('{}');
    expect(hits[1].headers['x-medplum-deleted-resource']).toBe('Patient/' + patient.id);
    expect(hits[1].headers['x-signature']).toBe(createHmac('sha256', secret).update('{}').digest('hex'));
  });
});

describe('rest-hook retries', () => {
  test('a 500 gets 1 + 4 attempts with growing gaps and one AuditEvent per attempt', async () => {
    const family = tag();
    const path = '/' + family;
    statusByPath.set(path, 500);
    const sub = await subscribe(family, receiverUrl + path);
    await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }] });
    await settle();

    const hits = at(path);
    expect(hits).toHaveLength(5);
    const gaps = hits.slice(1).map((h, i) => h.at - hits[i].at);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(1000 * SCALE * 2 ** i * 0.9));
    expect(gaps[3]).toBeGreaterThan(gaps[0] * 2);

    const audits = await auditEventsFor(sub);
    expect(audits.map((a) => a.outcomeDesc)).toEqual([0, 1, 2, 3, 4].map((k) => `Attempt ${k} received status 500`));
    expect(audits.every((a) => a.outcome === '4' && a.type.code === 'transmit')).toBe(true);
  });

  test('subscription-max-attempts N gives 1 + N attempts', async () => {
    const family = tag();
    const path = '/' + family;
    statusByPath.set(path, 500);
    await subscribe(family, receiverUrl + path, [{ url: SubscriptionExtension.maxAttempts, valueInteger: 2 }]);
    await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }] });
    await settle();
    expect(at(path)).toHaveLength(3);
  });

  test('subscription-success-codes "200-399,404" treats 404 as delivered', async () => {
    const family = tag();
    const path = '/' + family;
    statusByPath.set(path, 404);
    const sub = await subscribe(family, receiverUrl + path, [
      { url: SubscriptionExtension.successCodes, valueString: '200-399,404' },
    ]);
    await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }] });
    await settle();
    expect(at(path)).toHaveLength(1);
    const audits = await auditEventsFor(sub);
    expect(audits.map((a) => [a.outcome, a.outcomeDesc])).toEqual([['0', 'Attempt 0 received status 404']]);
  });

  test('a retry of a superseded version is dropped', async () => {
    const family = tag();
    const path = '/' + family;
    statusByPath.set(path, 500);
    await subscribe(family, receiverUrl + path, [{ url: SubscriptionExtension.maxAttempts, valueInteger: 1 }]);
    const patient = await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }] });
    let updatedVersion: string | undefined;
    // While the first attempt for v1 is in flight, write v2: by the time v1's retry runs it is stale.
    hooks.set(path, async (r) => {
      if (!updatedVersion && r.headers['x-medplum-interaction'] === 'create') {
        updatedVersion = 'pending';
        updatedVersion = (await medplum.updateResource<Patient>({ ...patient, gender: 'female' })).meta?.versionId;
      }
    });
    await settle();
    const versions = at(path).map((h) => (JSON.parse(h.raw) as Patient).meta?.versionId);
    expect(versions.filter((v) => v === patient.meta?.versionId)).toHaveLength(1);
    expect(versions.filter((v) => v === updatedVersion)).toHaveLength(2);
  });
});

describe('rest-hook to a Bot', () => {
  test('runs the bot with the rest-hook headers and writes an execute AuditEvent', async () => {
    const family = tag();
    const secret = 'bot-secret-' + family;
    const projectId = medplum.getProject()?.id as string;
    const bot = (await medplum.post(`admin/projects/${projectId}/bot`, { name: 'sub-bot-' + family })) as Bot;
    await medplum.post(medplum.fhirUrl('Bot', bot.id as string, '$deploy'), {
      code: `exports.handler = async (medplum, event) => {
        console.log(JSON.stringify({ headers: event.headers, id: event.input.id, contentType: event.contentType }));
        return 'ignored';
      };`,
      filename: 'sub-bot.js',
    });
    const sub = await subscribe(family, 'Bot/' + bot.id, [{ url: SubscriptionExtension.secret, valueString: secret }]);
    const patient = await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }] });
    await settle();

    const audits = await medplum.searchResources('AuditEvent', { entity: 'Subscription/' + sub.id, _count: '10' });
    expect(audits).toHaveLength(1);
    const audit = audits[0];
    expect(audit.type.code).toBe('execute');
    expect(audit.outcome).toBe('0');
    expect(audit.source.observer?.reference).toBe('Bot/' + bot.id);
    const logged = JSON.parse(audit.outcomeDesc as string) as {
      headers: Record<string, string>;
      id: string;
      contentType: string;
    };
    expect(logged.id).toBe(patient.id);
    expect(logged.contentType).toBe('application/fhir+json');
    expect(logged.headers['X-Medplum-Subscription']).toBe(sub.id);
    expect(logged.headers['X-Medplum-Interaction']).toBe('create');
    expect(logged.headers['Content-Type']).toBe('application/fhir+json');
    expect(logged.headers['X-Signature']).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('access of the Subscription author', () => {
  test('a resource outside the author’s policy is delivered with a warning, as the stock rest-hook worker does', async () => {
    const family = tag();
    const policy = await medplum.createResource<AccessPolicy>({
      resourceType: 'AccessPolicy',
      resource: [
        { resourceType: 'Subscription' },
        { resourceType: 'Patient', criteria: 'Patient?gender=male', readonly: true },
      ],
    });
    const projectId = runtime.hubProjectId;
    const app = (await medplum.post(`admin/projects/${projectId}/client`, { name: 'subscription author' })) as ClientApplication;
    const membership = (await medplum.searchOne('ProjectMembership', { profile: 'ClientApplication/' + app.id })) as ProjectMembership;
    await medplum.post(`admin/projects/${projectId}/members/${membership.id}`, { ...membership, accessPolicy: { reference: 'AccessPolicy/' + policy.id } });
    const author = new MedplumClient({ baseUrl: runtime.baseUrl, cacheTime: 0 });
    await author.startClientLogin(app.id as string, app.secret as string);
    const subscription = await author.createResource<Subscription>({
      resourceType: 'Subscription',
      status: 'active',
      reason: 'unit test',
      criteria: 'Patient?name=' + family,
      channel: { type: 'rest-hook', endpoint: `${receiverUrl}/${family}` },
    });

    const inScope = await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }], gender: 'male' });
    const outOfScope = await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family }], gender: 'female' });
    await settle();
    expect(at('/' + family)).toHaveLength(2);
    const warnings = logs.filter((l) => l.startsWith(`Subscription/${subscription.id}:`));
    expect(warnings).toEqual([
      `Subscription/${subscription.id}: Patient/${outOfScope.id} is outside its author's AccessPolicy (delivered, as on the stock server for rest-hook)`,
    ]);
    expect(warnings.join('')).not.toContain(inScope.id);
  });
});
