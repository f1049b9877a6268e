/**
 * The Metriport fake against a real local HTTP receiver: API validation and errors, patient
 * idempotence, facilities, rate limits, consolidated queries delivered by signed webhooks with
 * exact bytes, the fake S3 (presigned URLs, expiry, gzip copy), fault switches, webhook status
 * bookkeeping, manual replays and the ping test.
 */
import { createHmac } from 'node:crypto';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createServer, get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { Bundle, DocumentReference } from '@medplum/fhirtypes';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { FakeMetriportOptions } from './index.ts';
import { emptySearchset, FakeMetriport } from './index.ts';

const API_KEY = 'test-api-key';
const WEBHOOK_KEY = 'test-webhook-key';
const FACILITY = 'facility-1';

const jane = {
  firstName: 'Jane',
  lastName: 'Doe',
  dob: '1980-05-17',
  genderAtBirth: 'F',
  address: [{ addressLine1: '1 Main St', city: 'Chicago', state: 'IL', zip: '60601' }],
  contact: [{ phone: '(312) 555-0100', email: 'jane@example.com' }],
};

/** The parts of a webhook message the tests read. */
interface Message {
  readonly meta: { messageId: string; requestId?: string; when: string; type: string; data?: Record<string, string> };
  readonly ping?: string;
  readonly patients?: { patientId: string; externalId?: string; status: string; bundle?: Bundle; filters?: Record<string, string> }[];
}

/** What the receiver got: the exact bytes and headers. */
interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly raw: string;
  readonly json: Message;
}

/** @returns The URL of the n-th attachment of a consolidated message's DocumentReference. */
function attachmentUrl(message: Received, index: number): string {
  const docRef = message.json.patients?.[0].bundle?.entry?.[0].resource as DocumentReference;
  return docRef.content[index].attachment.url as string;
}

/** How the receiver answers one message. */
interface Reply {
  readonly status?: number;
  readonly body?: string;
  readonly delayMs?: number;
}

/** A webhook endpoint: records every request; answers pings with the pong by default. */
class Receiver {
  readonly received: Received[] = [];
  reply: (json: Message) => Reply = (json) => (json.meta?.type === 'ping' ? { body: JSON.stringify({ pong: json.ping }) } : {});
  private server?: Server;

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const json = JSON.parse(raw) as Message;
        this.received.push({ headers: req.headers, raw, json });
        const reply = this.reply(json);
        const answer = (): void => {
          res.writeHead(reply.status ?? 200, { 'content-type': 'application/json' }).end(reply.body ?? '{}');
        };
        if (reply.delayMs) {
          setTimeout(answer, reply.delayMs);
        } else {
          answer();
        }
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metriport/webhook`;
  }

  messages(type = 'medical.consolidated-data'): Received[] {
    return this.received.filter((r) => r.json.meta?.type === type);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}

interface Response {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The parsed body; empty when it is not JSON. */
  readonly json: Record<string, unknown>;
}

async function call(fake: FakeMetriport, method: string, path: string, body?: unknown, headers: Record<string, string> = { 'x-api-key': API_KEY }): Promise<Response> {
  const response = await fetch(fake.baseUrl + path, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON (429 text, S3 XML): left empty.
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** GETs a URL with node:http, without decoding the body (fetch would gunzip it). */
function rawGet(url: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

function sign(body: string, key = WEBHOOK_KEY): string {
  return createHmac('sha256', key).update(body).digest('hex');
}

describe('FakeMetriport', () => {
  let fake: FakeMetriport;
  let receiver: Receiver;
  let webhookUrl: string;

  async function startFake(options: Partial<FakeMetriportOptions> = {}): Promise<FakeMetriport> {
    await fake?.stop();
    fake = await new FakeMetriport({ apiKey: API_KEY, webhookKey: WEBHOOK_KEY, facilityIds: [FACILITY], webhookTimeoutMs: 300, pingTimeoutMs: 300, ...options }).start();
    return fake;
  }

  async function createJane(): Promise<string> {
    const created = await call(fake, 'POST', `/medical/v1/patient?facilityId=${FACILITY}`, { ...jane, externalId: 'medplum-1' });
    expect(created.status).toBe(201);
    return created.json.id as string;
  }

  async function startQuery(patientId: string, query = 'conversionType=json', metadata?: Record<string, string>): Promise<Response> {
    return call(fake, 'POST', `/medical/v1/patient/${patientId}/consolidated/query?${query}`, metadata ? { metadata } : {});
  }

  beforeEach(async () => {
    receiver = new Receiver();
    webhookUrl = await receiver.start();
    await startFake();
  });

  afterEach(async () => {
    await fake.stop();
    await receiver.stop();
  });

  describe('API', () => {
    test('every route needs the API key', async () => {
      for (const headers of [{}, { 'x-api-key': 'wrong' }] as Record<string, string>[]) {
        const res = await call(fake, 'GET', '/settings', undefined, headers);
        expect(res.status).toBe(403);
        expect(res.json).toEqual({ message: 'Forbidden' });
      }
      expect(fake.requests.map((r) => r.status)).toEqual([403, 403]);
    });

    test('demographics are validated with Metriport messages', async () => {
      const cases: [unknown, string][] = [
        [{ ...jane, dob: '1990' }, 'Date must be a valid ISO 8601 date formatted YYYY-MM-DD. Example: 2023-03-15, on [dob]'],
        [{ ...jane, dob: '1899-12-31' }, "Date can't be before 1900, on [dob]"],
        [{ ...jane, address: [{ ...jane.address[0], zip: '60601-1234' }] }, 'Zip must be a string consisting of 5 numbers, on [address,0,zip]'],
        [{ ...jane, address: { ...jane.address[0], zip: '6060' } }, 'Zip must be a string consisting of 5 numbers, on [address,zip]'],
        [{ ...jane, contact: [{}] }, 'Either email or phone must be present, on [contact,0]'],
        [{ ...jane, contact: [{ phone: '555-0100' }] }, 'Phone must be a string consisting of 10 numbers. For example: 4153245540, on [contact,0,phone]'],
        [{ ...jane, contact: [{ email: 'mailto:jane@example.com' }] }, 'Invalid email, on [contact,0,email]'],
        [{ ...jane, address: [{ ...jane.address[0], state: 'ZZ' }] }, 'Invalid input, on [address]'],
        [{ ...jane, address: [] }, 'Array must contain at least 1 element(s), on [address]'],
        [{ ...jane, genderAtBirth: 'X' }, "Invalid enum value. Expected 'F' | 'M' | 'O' | 'U', received 'X', on [genderAtBirth]"],
        [{ ...jane, firstName: undefined, lastName: '' }, 'Required, on [firstName], String must contain at least 1 character(s), on [lastName]'],
      ];
      for (const [body, detail] of cases) {
        const res = await call(fake, 'POST', '/medical/v1/patient/match', body);
        expect(res.status, detail).toBe(400);
        expect(res.json).toEqual({ status: 400, name: 'BAD_REQUEST', title: 'Missing or invalid parameters', detail });
      }
      // Accepted: lower-case state, ZIP with a dash-less 5 digits, phone with a leading 1.
      const ok = await call(fake, 'POST', '/medical/v1/patient/match', { ...jane, address: [{ ...jane.address[0], state: 'il' }], contact: [{ phone: '+1 312 555 0100' }] });
      expect(ok.status).toBe(404);
    });

    test('match, create and lookups: creation is idempotent on demographics', async () => {
      const noMatch = await call(fake, 'POST', '/medical/v1/patient/match', jane);
      expect(noMatch.status).toBe(404);
      expect(noMatch.json).toEqual({ status: 404, name: 'NOT_FOUND', title: 'NotFoundError', detail: 'Cannot find patient' });

      const id = await createJane();
      const again = await call(fake, 'POST', `/medical/v1/patient?facilityId=${FACILITY}`, { ...jane, firstName: 'Jane, Janet', externalId: 'other' });
      expect(again.status).toBe(201);
      expect(again.json.id).toBe(id);
      expect(again.json.externalId).toBe('medplum-1');
      expect(fake.patients()).toHaveLength(1);

      const matched = await call(fake, 'POST', '/medical/v1/patient/match', jane);
      expect(matched.status).toBe(200);
      expect(Object.keys(matched.json)).toEqual(['id', 'eTag', 'facilityIds', 'externalId', 'dateCreated', 'firstName', 'lastName', 'dob', 'genderAtBirth', 'address', 'contact']);
      expect(matched.json).toMatchObject({
        id,
        facilityIds: [FACILITY],
        address: [{ addressLine1: '1 Main St', city: 'Chicago', state: 'IL', zip: '60601', country: 'USA' }],
        contact: [{ phone: '3125550100', email: 'jane@example.com' }],
      });
      expect((await call(fake, 'GET', `/medical/v1/patient/${id}`)).json.id).toBe(id);
      expect((await call(fake, 'GET', '/medical/v1/patient/external-id?externalId=medplum-1')).json.id).toBe(id);
      expect((await call(fake, 'GET', '/medical/v1/patient/external-id?externalId=nobody')).status).toBe(404);
      expect((await call(fake, 'GET', '/medical/v1/patient/0000')).json.detail).toBe('Could not find patient');

      const updated = await call(fake, 'PUT', `/medical/v1/patient/${id}?facilityId=${FACILITY}`, { ...jane, lastName: 'Smith' });
      expect(updated.status).toBe(200);
      expect(updated.json).toMatchObject({ id, lastName: 'Smith', externalId: 'medplum-1' });
      expect(updated.json.eTag).not.toBe(matched.json.eTag);
      const stale = await call(fake, 'PUT', `/medical/v1/patient/${id}`, jane, { 'x-api-key': API_KEY, 'if-match': matched.json.eTag as string });
      expect(stale.status).toBe(412);
    });

    test('facilities: facilityId is required and must exist', async () => {
      const missing = await call(fake, 'POST', '/medical/v1/patient', jane);
      expect(missing.status).toBe(400);
      expect(missing.json).toMatchObject({ title: 'BadRequestError', detail: 'Missing facilityId query param' });
      const unknown = await call(fake, 'POST', '/medical/v1/patient?facilityId=nope', jane);
      expect(unknown.status).toBe(404);
      expect(unknown.json.detail).toBe('Could not find facility');
      const persona = fake.addPatient({ ...jane, genderAtBirth: 'F', facilityIds: [FACILITY], firstName: 'Chris', id: 'persona-chris' });
      expect((await call(fake, 'PUT', `/medical/v1/patient/${persona.id}?facilityId=nope`, jane)).status).toBe(404);
    });

    test('rate limits answer 429 with the text message, then the window resets', async () => {
      await startFake({ rateLimits: { patientCreateOrUpdate: 2 }, rateWindowMs: 400 });
      const statuses: number[] = [];
      let refused: Response | undefined;
      for (let i = 0; i < 3; i++) {
        const res = await call(fake, 'POST', `/medical/v1/patient?facilityId=${FACILITY}`, { ...jane, dob: `198${i}-01-01` });
        statuses.push(res.status);
        refused = res.status === 429 ? res : refused;
      }
      expect(statuses).toEqual([201, 201, 429]);
      expect(refused?.text).toBe('Too many patient creates or updates, please try again later.');
      expect(refused?.headers.get('content-type')).toContain('text/html');
      expect(Number(refused?.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(refused?.headers.get('ratelimit-limit')).toBe('2');

      await new Promise((resolve) => setTimeout(resolve, 450));
      expect((await call(fake, 'POST', `/medical/v1/patient?facilityId=${FACILITY}`, { ...jane, dob: '1970-01-01' })).status).toBe(201);

      fake.faults.rateLimitAll = true;
      const id = fake.patients()[0].id;
      const query = await startQuery(id);
      expect(query.status).toBe(429);
      expect(query.text).toBe('Too many patient consolidated data query starts, please try again later.');
    });

    test('consolidated query parameters and metadata are validated', async () => {
      const id = await createJane();
      expect((await call(fake, 'POST', `/medical/v1/patient/${id}/consolidated/query`, {})).json.detail).toBe('Missing conversionType query param');
      expect((await startQuery(id, 'conversionType=xml')).status).toBe(400);
      expect((await startQuery(id, 'conversionType=json&resources=Observation,Nope')).status).toBe(400);
      const tooLong = await startQuery(id, 'conversionType=json', { ['k'.repeat(41)]: 'v' });
      expect(tooLong.json.detail).toBe(`String must contain at most 40 character(s), on [metadata,${'k'.repeat(41)}]`);
      const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
      expect((await startQuery(id, 'conversionType=json', many)).json.detail).toBe('Record has too many properties, on [metadata,meta]');
      const notString = await call(fake, 'POST', `/medical/v1/patient/${id}/consolidated/query?conversionType=json`, { metadata: { n: 1 } });
      expect(notString.json.detail).toBe('Expected string, received number, on [metadata,n]');
      expect((await startQuery('unknown-patient')).status).toBe(404);
    });
  });

  describe('consolidated data by webhook', () => {
    test('a query ends with a signed medical.consolidated-data webhook, byte for byte', async () => {
      expect(await fake.setWebhookUrl(webhookUrl)).toEqual({ pingOk: true });
      const id = await createJane();
      const started = await startQuery(id, 'conversionType=json', { medplumPatientId: 'medplum-1' });
      expect(started.status).toBe(200);
      expect(Object.keys(started.json)).toEqual(['requestId', 'status', 'startedAt', 'resources', 'conversionType']);
      expect(started.json).toMatchObject({ status: 'processing', resources: [], conversionType: 'json' });
      await fake.idle();

      const [message] = receiver.messages();
      expect(receiver.messages()).toHaveLength(1);
      expect(message.headers['content-type']).toBe('application/json');
      expect(message.headers['user-agent']).toBe('Metriport API');
      expect(message.headers['x-metriport-signature']).toBe(sign(message.raw));
      expect(JSON.stringify(message.json)).toBe(message.raw);
      expect(Object.keys(message.json)).toEqual(['meta', 'patients']);
      expect(Object.keys(message.json.meta)).toEqual(['messageId', 'requestId', 'when', 'type', 'data']);
      const [row] = fake.webhooks();
      expect(message.json.meta).toEqual({ messageId: row.messageId, requestId: started.json.requestId, when: row.createdAt, type: 'medical.consolidated-data', data: { medplumPatientId: 'medplum-1' } });
      expect(row).toMatchObject({ status: 'success', httpStatus: 200, deliveries: 1 });

      const patient = message.json.patients?.[0];
      expect(Object.keys(patient ?? {})).toEqual(['patientId', 'externalId', 'status', 'bundle', 'filters']);
      expect(patient).toMatchObject({ patientId: id, externalId: 'medplum-1', status: 'completed', filters: { resources: '', dateFrom: '', dateTo: '', conversionType: 'json' } });
      expect(patient?.bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 1 });
      const docRef = patient?.bundle?.entry?.[0].resource;
      expect(Object.keys(patient?.bundle?.entry?.[0] ?? {})).toEqual(['resource']);
      expect(docRef).toEqual({
        resourceType: 'DocumentReference',
        subject: { reference: `Patient/${id}` },
        content: [{ attachment: { contentType: 'application/json', url: expect.any(String) } }, { attachment: { contentType: 'application/gzip', url: expect.any(String) } }],
      });

      const json = await fetch(attachmentUrl(message, 0));
      expect(json.status).toBe(200);
      const bundle = (await json.json()) as { type: string; entry: { resource: { resourceType: string; id: string } }[] };
      expect(bundle.type).toBe('searchset');
      expect(bundle.entry.filter((e) => e.resource.resourceType === 'Patient').map((e) => e.resource.id)).toEqual([id]);
      expect(bundle.entry.length).toBeGreaterThan(1400);

      const gz = await rawGet(attachmentUrl(message, 1));
      expect(gz.headers['content-encoding']).toBe('gzip');
      expect(gz.headers['content-type']).toBe('application/json');
      expect(JSON.parse(gunzipSync(gz.body).toString('utf8'))).toEqual(bundle);

      const status = await call(fake, 'GET', `/medical/v1/patient/${id}/consolidated/query`);
      expect(status.json.status).toBe('completed');
      expect(status.json.queries as unknown[]).toHaveLength(1);
      expect((await call(fake, 'GET', `/medical/v1/patient/${id}/consolidated/query/${started.json.requestId}`)).json.status).toBe('completed');
      expect((await call(fake, 'GET', `/medical/v1/patient/${id}/consolidated/query/nope`)).status).toBe(404);
    });

    test('presigned URLs expire with an S3 XML error; the file key is fixed per patient', async () => {
      await startFake({ urlTtlMs: 300 });
      await fake.setWebhookUrl(webhookUrl);
      const id = await createJane();
      await startQuery(id, 'conversionType=json&resources=Condition');
      await fake.idle();
      const url = attachmentUrl(receiver.messages()[0], 0);
      expect(url).toMatch(/X-Amz-Expires=1&/);
      const first = (await (await fetch(url)).json()) as { entry: { resource: { resourceType: string } }[] };
      expect(new Set(first.entry.map((e) => e.resource.resourceType))).toContain('Condition');
      expect(new Set(first.entry.map((e) => e.resource.resourceType))).not.toContain('Observation');

      await new Promise((resolve) => setTimeout(resolve, 350));
      const expired = await fetch(url);
      expect(expired.status).toBe(403);
      expect(expired.headers.get('content-type')).toBe('application/xml');
      const xml = await expired.text();
      expect(xml).toContain('<Code>AccessDenied</Code><Message>Request has expired</Message>');

      const tampered = await fetch(url.replace(/X-Amz-Signature=[0-9a-f]+/, 'X-Amz-Signature=00'));
      expect(await tampered.text()).toContain('<Code>SignatureDoesNotMatch</Code>');

      await startQuery(id, 'conversionType=json');
      await fake.idle();
      const second = attachmentUrl(receiver.messages()[1], 0);
      expect(new URL(second).pathname).toBe(new URL(url).pathname);
    });

    test('a query with identical parameters still processing is returned, not restarted', async () => {
      await startFake({ webhookDelayMs: 10_000 });
      const id = await createJane();
      const a = await startQuery(id, 'conversionType=json', { run: '1' });
      const b = await startQuery(id, 'conversionType=json', { run: '2' });
      expect(b.json.requestId).toBe(a.json.requestId);
      const c = await startQuery(id, 'conversionType=json&resources=Condition&dateFrom=2020-01-01');
      expect(c.json.requestId).not.toBe(a.json.requestId);
      expect(c.json).toMatchObject({ resources: ['Condition'], dateFrom: '2020-01-01' });
      expect(fake.queries().map((q) => q.status)).toEqual(['processing', 'processing']);
    });

    test('faults: duplicate delivery, no meta.data, failed query, expired URLs', async () => {
      await fake.setWebhookUrl(webhookUrl);
      const id = await createJane();

      fake.faults.duplicateDelivery = true;
      await startQuery(id, 'conversionType=json', { medplumPatientId: 'medplum-1' });
      await fake.idle();
      const [one, two] = receiver.messages();
      expect(two.raw).toBe(one.raw);
      expect(two.headers['x-metriport-signature']).toBe(one.headers['x-metriport-signature']);
      expect(fake.webhooks()[0].deliveries).toBe(2);
      fake.faults.duplicateDelivery = false;

      fake.faults.dropMetaData = true;
      await startQuery(id, 'conversionType=json', { medplumPatientId: 'medplum-1' });
      await fake.idle();
      expect(receiver.messages()[2].json.meta.data).toBeUndefined();
      expect(receiver.messages()[2].json.meta.requestId).toBeDefined();
      fake.faults.dropMetaData = false;

      fake.faults.failQuery = true;
      const failed = await startQuery(id, 'conversionType=json&resources=Condition');
      await fake.idle();
      expect(receiver.messages()[3].json.patients?.[0]).toEqual({
        patientId: id,
        externalId: 'medplum-1',
        status: 'failed',
        filters: { resources: 'Condition', dateFrom: '', dateTo: '', conversionType: 'json' },
      });
      expect(fake.queries().find((q) => q.requestId === failed.json.requestId)?.status).toBe('failed');
      fake.faults.failQuery = false;

      fake.faults.expireUrlsBeforeDelivery = true;
      await startQuery(id, 'conversionType=json');
      await fake.idle();
      const url = attachmentUrl(receiver.messages()[4], 1);
      expect((await fetch(url)).status).toBe(403);
    });

    test('no data: the raw empty searchset is the bundle', async () => {
      await startFake({ bundleFor: () => emptySearchset() });
      await fake.setWebhookUrl(webhookUrl);
      const id = await createJane();
      await startQuery(id);
      await fake.idle();
      expect(receiver.messages()[0].json.patients?.[0]).toMatchObject({ status: 'completed', bundle: { resourceType: 'Bundle', type: 'searchset', total: 0, entry: [] } });
    });

    test('a slow download honours downloadDelayMs', async () => {
      await fake.setWebhookUrl(webhookUrl);
      const id = await createJane();
      await startQuery(id);
      await fake.idle();
      fake.faults.downloadDelayMs = 200;
      const started = performance.now();
      const res = await fetch(attachmentUrl(receiver.messages()[0], 0));
      await res.arrayBuffer();
      expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    });
  });

  describe('webhook sender', () => {
    test('signature faults: wrong or missing', async () => {
      await fake.setWebhookUrl(webhookUrl);
      fake.faults.signature = 'wrong';
      await fake.sendWebhook('patient.admit', { payload: { patientId: 'p1', url: 'https://example.com/x' } });
      fake.faults.signature = 'missing';
      await fake.sendWebhook('patient.admit', { payload: { patientId: 'p1', url: 'https://example.com/x' } });
      const [wrong, missing] = receiver.messages('patient.admit');
      expect(wrong.headers['x-metriport-signature']).toMatch(/^[0-9a-f]{64}$/);
      expect(wrong.headers['x-metriport-signature']).not.toBe(sign(wrong.raw));
      expect(missing.headers['x-metriport-signature']).toBeUndefined();
    });

    test('any message type is sent in the real shape; URL credentials become Basic auth', async () => {
      const withCredentials = webhookUrl.replace('http://', 'http://client%40id:s3cret@');
      await fake.setWebhookUrl(withCredentials);
      const row = await fake.sendWebhook(
        'network-query.hie',
        { payload: { patientId: 'p1', consolidatedDataUrl: 'https://example.com/x', source: { type: 'hie', status: 'completed' } } },
        { data: { medplumPatientId: 'm1' }, requestId: 'req-1' }
      );
      const [message] = receiver.messages('network-query.hie');
      expect(message.raw.startsWith(`{"meta":{"messageId":"${row.messageId}","requestId":"req-1","when":"${row.createdAt}","type":"network-query.hie","data":{"medplumPatientId":"m1"}},"payload":`)).toBe(true);
      expect(message.headers.authorization).toBe(`Basic ${Buffer.from('client@id:s3cret').toString('base64')}`);
      expect(message.headers['x-metriport-signature']).toBe(sign(message.raw));
      expect(row).toMatchObject({ status: 'success', requestId: 'req-1', type: 'network-query.hie' });
      expect(row.durationMs).toBeGreaterThanOrEqual(0);
    });

    test('a slow receiver times out: failure row, webhook disabled, later messages still sent', async () => {
      await fake.setWebhookUrl(webhookUrl);
      receiver.reply = () => ({ delayMs: 1000 });
      const failed = await fake.sendWebhook('medical.document-download', { patients: [] });
      expect(failed).toMatchObject({ status: 'failure', statusDetail: 'AxiosError: timeout of 300ms exceeded' });
      expect(failed.durationMs).toBeGreaterThanOrEqual(290);
      expect(failed.durationMs).toBeLessThan(900);
      expect(fake.settings()).toMatchObject({ webhookEnabled: false, webhookStatusDetail: 'AxiosError: timeout of 300ms exceeded' });
      const status = await call(fake, 'GET', '/settings/webhook');
      expect(status.json).toEqual({ webhookEnabled: false, webhookStatusDetail: 'AxiosError: timeout of 300ms exceeded', webhookRequestsProcessing: 0, webhookRequestsFailed: 1 });

      receiver.reply = () => ({ status: 500 });
      const error = await fake.sendWebhook('medical.document-conversion', { patients: [] });
      expect(error).toMatchObject({ status: 'failure', httpStatus: 500, statusDetail: 'AxiosError: Request failed with status code 500' });

      receiver.reply = () => ({ status: 204, body: '' });
      expect((await fake.sendWebhook('medical.document-conversion', { patients: [] })).status).toBe('success');
      expect(fake.settings()).toMatchObject({ webhookEnabled: true, webhookStatusDetail: 'OK' });
    });

    test('replays resend failures oldest first, without meta.data, same messageId, when and requestId', async () => {
      await fake.setWebhookUrl(webhookUrl);
      receiver.reply = () => ({ status: 503 });
      const a = await fake.sendWebhook('medical.document-download', { patients: [{ patientId: 'a' }] }, { data: { k: 'v' }, requestId: 'r1' });
      const b = await fake.sendWebhook('medical.document-conversion', { patients: [{ patientId: 'b' }] }, { data: { k: 'v' } });
      receiver.reply = () => ({});
      const before = receiver.received.length;

      const res = await call(fake, 'POST', '/settings/webhook/retry');
      expect(res.status).toBe(200);
      expect(res.text).toBe('OK');
      await fake.idle();

      const replays = receiver.received.slice(before);
      expect(replays.map((r) => r.json.meta.messageId)).toEqual([a.messageId, b.messageId]);
      expect(replays[0].json.meta).toEqual({ messageId: a.messageId, requestId: 'r1', when: a.createdAt, type: 'medical.document-download' });
      expect(replays[1].json.meta).toEqual({ messageId: b.messageId, when: b.createdAt, type: 'medical.document-conversion' });
      expect(replays[0].headers['x-metriport-signature']).toBe(sign(replays[0].raw));
      expect(fake.webhooks().map((r) => r.status)).toEqual(['success', 'success']);
      await fake.retryFailed();
      expect(receiver.received.length).toBe(before + 2);
    });

    test('without a webhook URL messages fail and wait for a replay', async () => {
      await fake.sendWebhook('patient.discharge', { payload: { patientId: 'p' } });
      expect(fake.webhooks()[0]).toMatchObject({ status: 'failure', deliveries: 0 });
      await fake.setWebhookUrl(webhookUrl);
      await fake.retryFailed();
      expect(fake.webhooks()[0]).toMatchObject({ status: 'success', deliveries: 1 });
      expect(receiver.messages('patient.discharge')).toHaveLength(1);
    });

    test('ping: passes only on the matching pong', async () => {
      const outcome = await fake.setWebhookUrl(webhookUrl);
      expect(outcome).toEqual({ pingOk: true });
      const [ping] = receiver.messages('ping');
      expect(Object.keys(ping.json)).toEqual(['ping', 'meta']);
      expect(Object.keys(ping.json.meta)).toEqual(['messageId', 'when', 'type']);
      expect(ping.headers['x-metriport-signature']).toBe(sign(ping.raw));
      expect(fake.settings()).toEqual({ webhookUrl, webhookEnabled: true, webhookStatusDetail: 'OK' });

      receiver.reply = () => ({ body: JSON.stringify({ pong: 'something else' }) });
      expect(await fake.setWebhookUrl(webhookUrl)).toEqual({ pingOk: false, detail: 'Bad response from webhook call' });
      expect(fake.settings().webhookEnabled).toBe(false);

      receiver.reply = () => ({ status: 401 });
      expect(await fake.setWebhookUrl(webhookUrl)).toEqual({ pingOk: false, detail: 'AxiosError: Request failed with status code 401' });

      receiver.reply = () => ({ delayMs: 600 });
      expect((await fake.setWebhookUrl(webhookUrl)).detail).toBe('AxiosError: timeout of 300ms exceeded');
    });

    test('POST /settings sets the URL, answers, then pings', async () => {
      const res = await call(fake, 'POST', '/settings', { webhookUrl });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ id: fake.cxId, webhookUrl, webhookKey: WEBHOOK_KEY });
      await fake.idle();
      expect(receiver.messages('ping')).toHaveLength(1);
      expect((await call(fake, 'GET', '/settings/webhook')).json.webhookEnabled).toBe(true);
      expect((await call(fake, 'POST', '/settings', { webhookUrl: 'not a url' })).status).toBe(400);
      expect((await call(fake, 'POST', '/settings', { webhookUrl, other: 1 })).status).toBe(400);
      expect((await call(fake, 'GET', '/settings')).json).toEqual({ id: fake.cxId, webhookUrl, webhookKey: WEBHOOK_KEY });
    });

    test('stop cancels scheduled webhooks', async () => {
      await startFake({ webhookDelayMs: 200 });
      await fake.setWebhookUrl(webhookUrl);
      const id = await createJane();
      await startQuery(id);
      await fake.stop();
      await fake.idle();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(receiver.messages()).toHaveLength(0);
    });
  });
});
