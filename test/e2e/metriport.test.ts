/**
 * Metriport exchange end to end, through the local runtime (or skipped on a stock target, which
 * cannot reach a fake bound to 127.0.0.1): a Patient created in Medplum → the metriport-patient bot
 * finds or creates it in the fake Metriport and starts a consolidated query → the fake sends the
 * signed webhook to the metriport-webhook bot's `$execute` with the webhook client's credentials →
 * the metriport-consolidated bot downloads the bundle from the fake S3 and merges it → the record
 * holds the data. Fault switches cover duplicate delivery, replays without `meta.data`, expired
 * URLs, a slow download, failed and empty results, unknown message types, bad signatures and 429s.
 */
import type { MedplumClient, WithId } from '@medplum/core';
import type { AuditEvent, Bot, Encounter, Observation, Organization, Patient, Task } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { metriportWebhookUrl } from '../../src/commands/metriport.ts';
import { BOT_NAME_SYSTEM } from '../../src/constants.ts';
import { isLocked, LockKind } from '../../src/fhir/lock.ts';
import {
  METRIPORT_FACILITY_SYSTEM,
  METRIPORT_MESSAGE_ID_SYSTEM,
  METRIPORT_PATIENT_SYSTEM,
  METRIPORT_REQUEST_ID_SYSTEM,
  METRIPORT_SOURCE_TAG,
  METRIPORT_WEBHOOK_TASK_CODE,
  metriportResourceSystem,
} from '../../src/metriport/constants.ts';
import { emptySearchset, FakeMetriport } from '../support/fake-metriport/index.ts';
import type { FakePatient } from '../support/fake-metriport/index.ts';
import { BUNDLE_SIZES, generateConsolidatedBundle } from '../support/metriport-bundles.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import { waitFor } from '../support/wait.ts';

const API_KEY = 'e2e-metriport-api-key';
const WEBHOOK_KEY = 'e2e-metriport-webhook-key';
const FACILITY = 'e2e-facility-1';
const TASK_CODE = `${METRIPORT_WEBHOOK_TASK_CODE.system}|${METRIPORT_WEBHOOK_TASK_CODE.code}`;

/** Patients whose first name says which bundle the fake returns. */
const EMPTY_RECORD = 'Nodata';
const SIZED: Readonly<Record<string, number>> = { Small: BUNDLE_SIZES.small, Typical: BUNDLE_SIZES.typical, Large: BUNDLE_SIZES.large };

let fake: FakeMetriport;
let target: E2eTarget;
let client: MedplumClient;
let organization: WithId<Organization>;
let skip: string | undefined;

beforeAll(async () => {
  fake = await new FakeMetriport({
    apiKey: API_KEY,
    webhookKey: WEBHOOK_KEY,
    facilityIds: [FACILITY],
    // Patients are identified by first name: a record of about 300 resources keeps each case fast;
    // the three realistic sizes are merged in the "bundle sizes" case and the benchmark.
    bundleFor: (patient: FakePatient) =>
      patient.firstName === EMPTY_RECORD
        ? emptySearchset()
        : generateConsolidatedBundle({ patient, resources: SIZED[patient.firstName] ?? 300, seed: seedOf(patient.id) }),
    rateWindowMs: 1000,
  }).start();
  target = await startE2eTarget({
    env: { METRIPORT_API_KEY: API_KEY, METRIPORT_WEBHOOK_KEY: WEBHOOK_KEY, METRIPORT_API_URL: fake.baseUrl, METRIPORT_ENV: '' },
  });
  if (target.kind === 'stock') {
    skip = 'stock target: the fake Metriport listens on 127.0.0.1 only; run against the local runtime';
    return;
  }
  client = target.client;
  const ping = await fake.setWebhookUrl(await metriportWebhookUrl(client, target.baseUrl));
  expect(ping).toEqual({ pingOk: true });
  organization = await client.createResource<Organization>({
    resourceType: 'Organization',
    name: 'Northside Clinic',
    identifier: [{ system: METRIPORT_FACILITY_SYSTEM, value: FACILITY }],
  });
}, 60_000);

afterAll(async () => {
  await target?.stop();
  await fake?.stop();
});

function seedOf(id: string): number {
  return [...id].reduce((sum, c) => (sum * 31 + c.charCodeAt(0)) % 1_000_003, 7);
}

let counter = 0;
/** Creates a Patient with unique, valid demographics under the facility's Organization. */
async function createPatient(overrides: Partial<Patient> = {}, firstName = 'Ana'): Promise<WithId<Patient>> {
  counter++;
  return client.createResource<Patient>({
    resourceType: 'Patient',
    identifier: [{ system: 'urn:e2e:mrn', value: `MRN-${counter}-${Date.now()}` }],
    name: [{ family: `Rivera${String.fromCharCode(65 + (counter % 26))}${counter}`, given: [firstName] }],
    birthDate: '1984-02-29',
    gender: 'female',
    address: [{ line: ['12 Elm St'], city: 'Springfield', state: 'IL', postalCode: '62704-1234' }],
    telecom: [{ system: 'phone', value: '217-555-0142' }],
    managingOrganization: { reference: `Organization/${organization.id}` },
    ...overrides,
  });
}

async function tasksFor(patientId: string): Promise<WithId<Task>[]> {
  return client.searchResources('Task', { code: TASK_CODE, subject: `Patient/${patientId}`, _count: '100' });
}

/** Waits until the Patient's Tasks satisfy `done`, and returns them. */
async function waitForTasks(patientId: string, what: string, done: (tasks: WithId<Task>[]) => boolean, timeoutMs = 30_000): Promise<WithId<Task>[]> {
  return waitFor(what, async () => {
    const tasks = await tasksFor(patientId);
    return done(tasks) ? tasks : undefined;
  }, timeoutMs, 100);
}

const outcomeOf = (task: Task): string | undefined => task.businessStatus?.coding?.[0]?.code;
const isFinal = (task: Task): boolean => task.status === 'completed' || task.status === 'failed';
/** A count the processing bot wrote in Task.output (`created`, `updated`, `unchanged`, `skipped`…). */
const outputCount = (task: Task, text: string): number | undefined => task.output?.find((o) => o.type?.text === text)?.valueInteger;

async function linkedId(patientId: string): Promise<string> {
  return waitFor('the Metriport id on the Patient', async () => {
    const patient = await client.readResource('Patient', patientId);
    return patient.identifier?.find((i) => i.system === METRIPORT_PATIENT_SYSTEM)?.value;
  });
}

async function importedCount(patientId: string): Promise<number> {
  const bundle = await client.search('Observation', { subject: `Patient/${patientId}`, _tag: `${METRIPORT_SOURCE_TAG.system}|${METRIPORT_SOURCE_TAG.code}`, _total: 'accurate', _count: '0' });
  return bundle.total ?? 0;
}

/** The metriport-patient bot's runs since `since`, with their logs. */
async function patientBotRuns(since: string): Promise<AuditEvent[]> {
  const bot = (await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|metriport-patient` })) as WithId<Bot>;
  const events = await client.searchResources('AuditEvent', { entity: `Bot/${bot.id}`, _sort: '-_lastUpdated', _count: '50' });
  return events.filter((e) => (e.period?.start ?? '') >= since.slice(0, 19));
}

describe('Metriport exchange', () => {
  test('create a patient → found or created in Metriport, linked, queried → webhook → the record holds the merged data', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const patient = await createPatient();
    const metriportId = await linkedId(patient.id);
    const [done] = await waitForTasks(patient.id, 'the consolidated record merged', (t) => t.some(isFinal));
    expect(outcomeOf(done), done.businessStatus?.text).toBe('merged');

    // What the fake received: a create under the facility with externalId = the Medplum id, then one query.
    const create = fake.requests.find((r) => r.method === 'POST' && r.path === '/medical/v1/patient' && (r.body as { externalId?: string }).externalId === patient.id);
    expect(create?.query.facilityId).toBe(FACILITY);
    expect(create?.headers['x-api-key']).toBe(API_KEY);
    expect((create?.body as { address: { zip: string }[] }).address[0].zip).toBe('62704');
    const queries = fake.queries().filter((q) => q.patientId === metriportId);
    expect(queries).toHaveLength(1);
    // The webhook was answered in time (the fake marks slow answers failed) with the receiver's answer.
    const row = fake.webhooks().find((w) => w.requestId === queries[0].requestId);
    expect(row?.status).toBe('success');

    // The record: the Medplum Patient kept its identifiers and gained the Metriport id; the data
    // points at it; intra-bundle references point at stored resources.
    const stored = await client.readResource('Patient', patient.id);
    expect(stored.identifier?.map((i) => i.system)).toEqual(['urn:e2e:mrn', METRIPORT_PATIENT_SYSTEM]);
    expect(stored.name).toEqual(patient.name);
    expect(await importedCount(patient.id)).toBeGreaterThan(50);
    const encounters = await client.searchResources('Encounter', { subject: `Patient/${patient.id}`, _count: '200' });
    const withDiagnosis = encounters.find((e) => e.diagnosis?.length) as Encounter;
    const condition = await client.readReference(withDiagnosis.diagnosis?.[0].condition as never);
    expect(condition.resourceType).toBe('Condition');
    expect(outputCount(done, 'created')).toBeGreaterThan(250);

    // The bot's own link did not fire it again: still one query a moment later.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(fake.queries().filter((q) => q.patientId === metriportId)).toHaveLength(1);
  });

  test('a demographic change updates Metriport and queries again; the same data merges as unchanged', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const patient = await createPatient();
    await waitForTasks(patient.id, 'the first merge', (t) => t.some(isFinal));
    const before = await importedCount(patient.id);
    const current = await client.readResource('Patient', patient.id);
    await client.updateResource<Patient>({ ...current, telecom: [{ system: 'phone', value: '217-555-0199' }] });
    const tasks = await waitForTasks(patient.id, 'the second merge', (t) => t.filter(isFinal).length === 2);
    const latest = [...tasks].sort((a, b) => (a.authoredOn ?? '').localeCompare(b.authoredOn ?? '')).at(-1) as Task;
    expect(outcomeOf(latest)).toBe('merged');
    expect(outputCount(latest, 'created')).toBe(0);
    expect(outputCount(latest, 'updated')).toBe(0);
    expect(outputCount(latest, 'unchanged')).toBeGreaterThan(250);
    expect(await importedCount(patient.id)).toBe(before);
    const update = fake.requests.find((r) => r.method === 'PUT' && (r.body as { externalId?: string })?.externalId === patient.id);
    expect((update?.body as { contact: { phone: string }[] }).contact[0].phone).toBe('2175550199');
  });

  test('the same message delivered twice is recorded once and merged once', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    fake.faults.duplicateDelivery = true;
    try {
      const patient = await createPatient();
      const metriportId = await linkedId(patient.id);
      await waitForTasks(patient.id, 'the merge', (t) => t.some(isFinal));
      await fake.idle();
      const [query] = fake.queries().filter((q) => q.patientId === metriportId);
      const row = fake.webhooks().find((w) => w.requestId === query.requestId);
      expect(row?.deliveries).toBe(2);
      expect(row?.status).toBe('success');
      expect(JSON.parse(row?.responseBody ?? '{}')).toMatchObject({ duplicate: true });
      const tasks = await client.searchResources('Task', { identifier: `${METRIPORT_REQUEST_ID_SYSTEM}|${query.requestId}` });
      expect(tasks).toHaveLength(1);
      expect(outcomeOf(tasks[0])).toBe('merged');
    } finally {
      fake.faults.duplicateDelivery = false;
    }
  });

  test('two messages for the same patient at once are merged one after the other: nothing is created twice', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    // The hub's own delivery fails (bad signature), so the record is still empty; then Metriport
    // sends the same data in two messages (different messageIds, no requestId) at once.
    fake.faults.signature = 'wrong';
    let patient: WithId<Patient>;
    let payload: Record<string, unknown>;
    try {
      patient = await createPatient();
      const metriportId = await linkedId(patient.id);
      const refused = await waitFor('the refused delivery', () => {
        const query = fake.queries().find((q) => q.patientId === metriportId);
        return fake.webhooks().find((w) => w.requestId === query?.requestId && w.status === 'failure');
      });
      payload = { ...refused.payload };
    } finally {
      fake.faults.signature = 'valid';
    }
    const rows = await Promise.all([fake.sendWebhook('medical.consolidated-data', payload), fake.sendWebhook('medical.consolidated-data', payload)]);
    expect(rows.map((r) => r.status)).toEqual(['success', 'success']);
    const tasks = await waitForTasks(patient.id, 'both messages processed', (t) => t.length === 2 && t.every(isFinal), 30_000);
    expect(tasks.map(outcomeOf).sort()).toEqual(['merged', 'merged']);
    const created = tasks.map((t) => outputCount(t, 'created')).sort((a, b) => (a ?? 0) - (b ?? 0));
    expect(created[0]).toBe(0);
    expect(created[1]).toBeGreaterThan(250);
    // Every Metriport key once: no Observation key on two resources.
    const observations = await client.searchResources('Observation', { subject: `Patient/${patient.id}`, _count: '1000' });
    const keys = observations.map((o) => o.identifier?.find((i) => i.system === metriportResourceSystem('Observation'))?.value);
    expect(new Set(keys).size).toBe(keys.length);
    // The merge lock was released.
    expect(await isLocked(client, LockKind.metriportMerge, patient.id)).toBe(false);
  });

  test('a wrongly signed or unsigned call is refused (400, nothing recorded); Metriport\'s replay, without meta.data, is merged', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    fake.faults.signature = 'wrong';
    let patient: WithId<Patient>;
    try {
      patient = await createPatient();
      const metriportId = await linkedId(patient.id);
      const row = await waitFor('the refused delivery', () =>
        fake.webhooks().find((w) => w.type === 'medical.consolidated-data' && fake.queries().some((q) => q.patientId === metriportId && q.requestId === w.requestId) && w.status === 'failure')
      );
      expect(row.httpStatus).toBe(400);
      expect(row.responseBody).toMatch(/wrong x-metriport-signature/);
      expect(fake.settings().webhookEnabled).toBe(false);
      fake.faults.signature = 'missing';
      const unsigned = await fake.sendWebhook('patient.admit', { payload: { patientId: metriportId } });
      expect(unsigned.status).toBe('failure');
      expect(unsigned.responseBody).toMatch(/missing x-metriport-signature/);
      expect(await tasksFor(patient.id)).toHaveLength(0);
      expect(await client.searchResources('Task', { code: TASK_CODE, identifier: `${METRIPORT_REQUEST_ID_SYSTEM}|${row.requestId}` })).toHaveLength(0);
    } finally {
      fake.faults.signature = 'valid';
    }
    // The manual retry resends every failed message, same messageId, no meta.data; the URL is still valid.
    await fake.retryFailed();
    const tasks = await waitForTasks(patient.id, 'the replayed message merged', (t) => t.some(isFinal));
    expect(outcomeOf(tasks[0])).toBe('merged');
    expect(fake.settings().webhookEnabled).toBe(true);
    const admit = await client.searchResources('Task', { code: TASK_CODE, status: 'completed', _count: '100' });
    expect(admit.some((t) => t.input?.[0]?.valueString === 'patient.admit' && outcomeOf(t) === 'not-handled')).toBe(true);
  });

  test('expired download URLs: a new query each time, at most 3 per patient per hour, every message recorded', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    fake.faults.expireUrlsBeforeDelivery = true;
    try {
      const patient = await createPatient();
      const metriportId = await linkedId(patient.id);
      const tasks = await waitForTasks(patient.id, 'four expired downloads', (t) => t.filter(isFinal).length >= 4, 30_000);
      expect(tasks.every((t) => outcomeOf(t) === 'url-expired' && t.status === 'failed')).toBe(true);
      const texts = tasks.map((t) => t.businessStatus?.text ?? '');
      expect(texts.filter((t) => /started consolidated query/.test(t))).toHaveLength(3);
      expect(texts.filter((t) => /not queried again/.test(t))).toHaveLength(1);
      await fake.idle();
      expect(fake.queries().filter((q) => q.patientId === metriportId)).toHaveLength(4);
    } finally {
      fake.faults.expireUrlsBeforeDelivery = false;
    }
  });

  test('a slow download does not delay the answer: the webhook is answered before the bundle is fetched', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    // The fake gives up on a webhook after 5 s; the download takes 6 s.
    fake.faults.downloadDelayMs = 6000;
    try {
      const patient = await createPatient();
      const metriportId = await linkedId(patient.id);
      const row = await waitFor('the webhook answered', () => {
        const query = fake.queries().find((q) => q.patientId === metriportId);
        return fake.webhooks().find((w) => w.requestId === query?.requestId && w.status !== 'processing');
      }, 10_000);
      expect(row.status).toBe('success');
      const [task] = await waitForTasks(patient.id, 'the merge after the slow download', (t) => t.some(isFinal), 30_000);
      expect(outcomeOf(task)).toBe('merged');
    } finally {
      fake.faults.downloadDelayMs = 0;
    }
  });

  test('failed and empty results, and message types the hub does not process, are acknowledged and recorded', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    fake.faults.failQuery = true;
    try {
      const failed = await createPatient();
      const [task] = await waitForTasks(failed.id, 'the failed query recorded', (t) => t.some(isFinal));
      expect([task.status, outcomeOf(task)]).toEqual(['failed', 'metriport-failed']);
    } finally {
      fake.faults.failQuery = false;
    }
    const empty = await createPatient({}, EMPTY_RECORD);
    const [noData] = await waitForTasks(empty.id, 'the empty result recorded', (t) => t.some(isFinal));
    expect([noData.status, outcomeOf(noData)]).toEqual(['completed', 'no-data']);

    const row = await fake.sendWebhook('network-query.hie', { payload: { patientId: 'x', consolidatedDataUrl: 'http://127.0.0.1:9/x' } });
    expect(row.status).toBe('success');
    const [recorded] = await client.searchResources('Task', { identifier: `${METRIPORT_MESSAGE_ID_SYSTEM}|${row.messageId}` });
    expect([recorded.status, outcomeOf(recorded)]).toEqual(['completed', 'not-handled']);
  });

  test('without a facility or with demographics Metriport would refuse, nothing is sent and the reason is logged', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const since = new Date().toISOString();
    const noFacility = await createPatient({ managingOrganization: undefined });
    const partialDate = await createPatient({ birthDate: '1984-02' });
    const ids = [noFacility.id, partialDate.id];
    const logs = await waitFor('both bot runs', async () => {
      const text = (await patientBotRuns(since)).map((e) => e.outcomeDesc ?? '').join('\n');
      return ids.every((id) => text.includes(`Patient/${id}:`)) ? text : undefined;
    });
    expect(logs).toContain(`Patient/${noFacility.id}: not-configured: not sent to Metriport: Patient.managingOrganization does not reference an Organization`);
    expect(logs).toContain(`Patient/${partialDate.id}: invalid: not sent to Metriport, Metriport would refuse it: Patient.birthDate is partial`);
    expect(logs).not.toContain('1984-02');
    // Other patients' runs may call Metriport meanwhile; none of these two did (every call the bot
    // makes names the Medplum id: externalId in the query or the body).
    const mentions = (r: (typeof fake.requests)[number]): boolean =>
      ids.includes(r.query.externalId ?? '') || ids.includes((r.body as { externalId?: string } | undefined)?.externalId ?? '');
    expect(fake.requests.filter(mentions)).toEqual([]);
  });

  test('a second Medplum Patient with the same demographics is not linked to the first one\'s Metriport patient', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const first = await createPatient();
    const metriportId = await linkedId(first.id);
    const since = new Date().toISOString();
    const twin = await client.createResource<Patient>({ ...first, id: undefined, meta: undefined, identifier: [{ system: 'urn:e2e:mrn', value: `TWIN-${Date.now()}` }] });
    const logs = await waitFor('the twin\'s run', async () => {
      const text = (await patientBotRuns(since)).map((e) => e.outcomeDesc ?? '').join('\n');
      return text.includes(`Patient/${twin.id}: conflict`) ? text : undefined;
    });
    expect(logs).toContain(`Patient/${twin.id}: conflict: not linked: Metriport patient ${metriportId} belongs to Patient/${first.id}`);
    const stored = await client.readResource('Patient', twin.id);
    expect(stored.identifier?.some((i) => i.system === METRIPORT_PATIENT_SYSTEM)).toBe(false);
  });

  test('429s are waited out', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    fake.faults.rateLimitAll = true;
    const patient = await createPatient();
    await waitFor('a refused call', () => (fake.requests.some((r) => r.status === 429 && r.path.startsWith('/medical/v1/patient')) ? true : undefined));
    fake.faults.rateLimitAll = false;
    await linkedId(patient.id);
    const [task] = await waitForTasks(patient.id, 'the merge', (t) => t.some(isFinal));
    expect(outcomeOf(task)).toBe('merged');
  });

  test('the merged Observations point at the Medplum patient and carry their Metriport key', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const patient = await createPatient();
    await waitForTasks(patient.id, 'the merge', (t) => t.some(isFinal));
    const observations = await client.searchResources('Observation', { _tag: `${METRIPORT_SOURCE_TAG.system}|${METRIPORT_SOURCE_TAG.code}`, _count: '1000' });
    const mine = observations.filter((o) => o.subject?.reference === `Patient/${patient.id}`);
    expect(mine.length).toBeGreaterThan(50);
    // Every Observation of the bundle that has a subject points at the Medplum Patient.
    expect(observations.filter((o) => o.subject?.reference?.startsWith('Patient/') && !o.subject.reference.slice(8).match(/^[0-9a-f-]{36}$/))).toEqual([]);
    for (const observation of mine as Observation[]) {
      expect(observation.identifier?.some((i) => i.system === metriportResourceSystem('Observation'))).toBe(true);
      expect(observation.meta?.tag).toContainEqual(expect.objectContaining(METRIPORT_SOURCE_TAG));
    }
  });

  test('a record found by externalId alone (not linked yet, no meta.data) is merged and linked', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    // Not sent by the hub (no managing organization), but known to Metriport with externalId = its id.
    const patient = await createPatient({ managingOrganization: undefined });
    const known = fake.addPatient({
      firstName: 'Ana',
      lastName: 'External',
      dob: '1984-02-29',
      genderAtBirth: 'F',
      address: [{ addressLine1: '12 Elm St', city: 'Springfield', state: 'IL', zip: '62704', country: 'USA' }],
      facilityIds: [FACILITY],
      externalId: patient.id,
    });
    // A query started from Metriport's dashboard: no metadata.
    const response = await fetch(`${fake.baseUrl}/medical/v1/patient/${known.id}/consolidated/query?conversionType=json`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBe(200);
    const [task] = await waitForTasks(patient.id, 'the merge', (t) => t.some(isFinal));
    expect(outcomeOf(task), task.businessStatus?.text).toBe('merged');
    expect(await linkedId(patient.id)).toBe(known.id);
  });

  test('bundles of the three realistic sizes merge completely, through the bots', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    for (const [name, size] of Object.entries(SIZED)) {
      const patient = await createPatient({}, name);
      const [task] = await waitForTasks(patient.id, `the ${name} record merged`, (t) => t.some(isFinal), 240_000);
      expect(outcomeOf(task), task.businessStatus?.text).toBe('merged');
      // Every resource but the Patient (Metriport's copy of it is never written).
      expect(outputCount(task, 'created'), name).toBe(size - 1);
      expect(outputCount(task, 'skipped'), name).toBe(0);
    }
  }, 400_000);
});
