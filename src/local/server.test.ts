import { ContentType, Hl7Message, MedplumClient } from '@medplum/core';
import type { AuditEvent, Binary, Bot, OperationOutcome, Project } from '@medplum/fhirtypes';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalRuntime } from './runtime.ts';

let runtime: LocalRuntime;
let medplum: MedplumClient;
let clientId: string;
let clientSecret: string;

beforeAll(async () => {
  runtime = await new LocalRuntime({ port: 0 }).start();
  ({ clientId, clientSecret } = runtime.adminCredentials);
  medplum = new MedplumClient({ baseUrl: runtime.baseUrl, cacheTime: 0 });
  await medplum.startClientLogin(clientId, clientSecret);
});

afterAll(async () => {
  await runtime?.stop();
});

function url(path: string): string {
  return runtime.baseUrl + path;
}

/** Calls the API as the logged-in admin client. */
function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url(path), {
    ...init,
    headers: { Authorization: 'Bearer ' + medplum.getAccessToken(), ...(init.headers as Record<string, string>) },
  });
}

function basic(id: string, secret: string): string {
  return 'Basic ' + Buffer.from(id + ':' + secret).toString('base64');
}

function tokenRequest(body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url('oauth2/token'), {
    method: 'POST',
    headers: { 'Content-Type': ContentType.FORM_URL_ENCODED, ...headers },
    body,
  });
}

describe('health and authentication', () => {
  test('healthcheck', async () => {
    const res = await fetch(url('healthcheck'));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { ok: boolean }).ok).toBe(true);
  });

  test('client_credentials with body credentials and with a Basic header', async () => {
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret });
    const viaBody = await tokenRequest(form.toString());
    expect(viaBody.status).toBe(200);
    const tokens = (await viaBody.json()) as { token_type: string; access_token: string; expires_in: number };
    expect(tokens.token_type).toBe('Bearer');
    expect(tokens.expires_in).toBe(3600);
    const read = await fetch(url('fhir/R4/Patient'), { headers: { Authorization: 'Bearer ' + tokens.access_token } });
    expect(read.status).toBe(200);

    const viaHeader = await tokenRequest('grant_type=client_credentials', { Authorization: basic(clientId, clientSecret) });
    expect(viaHeader.status).toBe(200);
    expect(((await viaHeader.json()) as { access_token: string }).access_token).toBeTruthy();
  });

  test('token errors look like the stock server', async () => {
    const wrong = await tokenRequest(`grant_type=client_credentials&client_id=${clientId}&client_secret=nope`);
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ error: 'invalid_request', error_description: 'Invalid secret' });

    const grant = await tokenRequest('grant_type=password&username=a&password=b');
    expect(grant.status).toBe(400);
    expect(await grant.json()).toMatchObject({ error: 'invalid_request' });

    // The stock endpoint accepts only form bodies.
    const json = await fetch(url('oauth2/token'), {
      method: 'POST',
      headers: { 'Content-Type': ContentType.JSON },
      body: JSON.stringify({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }),
    });
    expect(json.status).toBe(400);
  });

  test('FHIR without credentials is 401 with an OperationOutcome; Basic id:secret works directly', async () => {
    const anonymous = await fetch(url('fhir/R4/Patient'));
    expect(anonymous.status).toBe(401);
    const outcome = (await anonymous.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue?.[0]?.code).toBe('login');

    expect((await fetch(url('fhir/R4/Patient'), { headers: { Authorization: basic(clientId, 'wrong') } })).status).toBe(401);
    const ok = await fetch(url('fhir/R4/Patient'), { headers: { Authorization: basic(clientId, clientSecret) } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { resourceType: string }).resourceType).toBe('Bundle');
  });

  test('MedplumClient.startClientLogin and getProject (auth/me)', async () => {
    const client = new MedplumClient({ baseUrl: runtime.baseUrl, cacheTime: 0 });
    await client.startClientLogin(clientId, clientSecret);
    expect(client.getProject()?.id).toBe(runtime.hubProjectId);
    expect(client.getProfile()?.resourceType).toBe('ClientApplication');
  });

  test('a JSON body over maxJsonSize is refused with the stock 400 "File too large"', async () => {
    const body = JSON.stringify({ resourceType: 'Patient', name: [{ text: 'x'.repeat(1024 * 1024 + 10) }] });
    const res = await api('fhir/R4/Patient', { method: 'POST', headers: { 'Content-Type': ContentType.FHIR_JSON }, body });
    expect(res.status).toBe(400);
    const outcome = (await res.json()) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue?.[0]?.details?.text).toBe('File too large');
  });
});

describe('Binary', () => {
  test('raw bytes in and out, and a presigned url that refuses tampering', async () => {
    const bytes = randomBytes(2048);
    const created = await api('fhir/R4/Binary', { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: bytes });
    expect(created.status).toBe(201);
    const binary = (await created.json()) as Binary;
    expect(binary.contentType).toBe('image/png');

    const raw = await api('fhir/R4/Binary/' + binary.id);
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await raw.arrayBuffer()).equals(bytes)).toBe(true);

    const asFhir = await api('fhir/R4/Binary/' + binary.id, { headers: { Accept: ContentType.FHIR_JSON } });
    const resource = (await asFhir.json()) as Binary;
    expect(resource.resourceType).toBe('Binary');
    expect(resource.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/storage\//);
    const download = await fetch(resource.url as string);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).equals(bytes)).toBe(true);

    const tampered = new URL(resource.url as string);
    tampered.searchParams.set('Signature', 'x' + (tampered.searchParams.get('Signature') ?? '').slice(1));
    expect((await fetch(tampered)).ok).toBe(false);
    const expired = new URL(resource.url as string);
    expired.searchParams.set('Expires', String(Number(expired.searchParams.get('Expires')) + 60));
    expect((await fetch(expired)).ok).toBe(false);

    // Any attachment `url` naming a Binary is presigned in responses, with or without contentType.
    const doc = await medplum.createResource({
      resourceType: 'DocumentReference',
      status: 'current',
      content: [{ attachment: { url: 'Binary/' + binary.id } }],
    });
    expect(doc.content[0].attachment.url).toMatch(/\/storage\//);
    const stored = await runtime.systemRepo().readResource('DocumentReference', doc.id as string);
    expect((stored as typeof doc).content[0].attachment.url).toBe('Binary/' + binary.id);
  });
});

describe('Bot $execute and $deploy', () => {
  const system = 'https://hub.example/bots';
  let bot: Bot;

  const ECHO = `exports.handler = async (medplum, event) => {
    const input = event.input;
    if (input && typeof input.buildAck === 'function') return input.buildAck();
    if (input && input.mode === 'nothing') return undefined;
    if (input && input.mode === 'throw') throw new Error('bot blew up');
    if (input && input.mode === 'bell') { console.log('ring' + String.fromCharCode(7) + 'ring'); return 'rang'; }
    if (typeof input === 'string') return 'echo:' + input;
    console.log('ran');
    const sawAuthorization = Boolean(event.headers && event.headers.authorization);
    return { got: input, contentType: event.contentType, sawAuthorization };
  };`;

  beforeAll(async () => {
    const projectId = medplum.getProject()?.id as string;
    const created = (await medplum.post(`admin/projects/${projectId}/bot`, { name: 'server-test-echo' })) as Bot;
    const deployUrl = medplum.fhirUrl('Bot', created.id as string, '$deploy');
    const deployed = await medplum.post(deployUrl, { code: ECHO, filename: 'echo.js' });
    expect(deployed.resourceType).toBe('OperationOutcome');
    const current = await medplum.readResource('Bot', created.id as string);
    bot = await medplum.updateResource<Bot>({ ...current, identifier: [{ system, value: 'echo' }] });
  });

  function execute(path: string, body: string | undefined, contentType?: string, method = 'POST'): Promise<Response> {
    return api('fhir/R4/' + path, { method, headers: contentType ? { 'Content-Type': contentType } : {}, body });
  }

  test('JSON in and out, by id and by identifier (POST and GET)', async () => {
    const byId = await execute(`Bot/${bot.id}/$execute`, JSON.stringify({ a: 1 }), ContentType.JSON);
    expect(byId.status).toBe(200);
    expect(byId.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await byId.json()).toEqual({ got: { a: 1 }, contentType: ContentType.JSON, sawAuthorization: true });

    const identifier = encodeURIComponent(system + '|echo');
    const byIdentifier = await execute(`Bot/$execute?identifier=${identifier}`, '{"b":2}', ContentType.JSON);
    expect(byIdentifier.status).toBe(200);
    expect(((await byIdentifier.json()) as { got: unknown }).got).toEqual({ b: 2 });

    const get = await execute(`Bot/$execute?identifier=${identifier}&x=1`, undefined, undefined, 'GET');
    expect(((await get.json()) as { got: unknown }).got).toEqual({ identifier: system + '|echo', x: '1' });

    const missing = await execute('Bot/$execute', '{}', ContentType.JSON);
    expect(missing.status).toBe(400);
  });

  test('text/plain is mirrored; HL7 round-trips; a non-MSH HL7 body is 400', async () => {
    const text = await execute(`Bot/${bot.id}/$execute`, 'hello', ContentType.TEXT);
    expect(text.status).toBe(200);
    expect(text.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await text.text()).toBe('echo:hello');

    const adt = 'MSH|^~\\&|A|B|C|D|20240101||ADT^A01|CTRL1|P|2.5.1\rPID|1||123';
    const hl7 = await execute(`Bot/${bot.id}/$execute`, adt, ContentType.HL7_V2);
    expect(hl7.status).toBe(200);
    expect(hl7.headers.get('content-type')).toMatch(/^x-application\/hl7-v2\+er7/);
    expect(Hl7Message.parse(await hl7.text()).getSegment('MSA')?.getField(2)?.toString()).toBe('CTRL1');

    for (const contentType of [ContentType.HL7_V2, ContentType.HL7_V2 + '; charset=utf-8']) {
      const bad = await execute(`Bot/${bot.id}/$execute`, 'PID|1||123', contentType);
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as OperationOutcome).resourceType).toBe('OperationOutcome');
    }
  });

  test('a bot returning nothing answers an OperationOutcome; a throwing bot answers 400', async () => {
    const nothing = await execute(`Bot/${bot.id}/$execute`, '{"mode":"nothing"}', ContentType.JSON);
    expect(nothing.status).toBe(200);
    const ok = (await nothing.json()) as OperationOutcome;
    expect(ok.resourceType).toBe('OperationOutcome');
    expect(ok.issue?.[0]?.severity).toBe('information');

    const thrown = await execute(`Bot/${bot.id}/$execute`, '{"mode":"throw"}', ContentType.JSON);
    expect(thrown.status).toBe(400);
    expect(JSON.stringify(await thrown.json())).toContain('bot blew up');
  });

  test('a log line with a control character neither fails the run nor loses its AuditEvent', async () => {
    const res = await execute(`Bot/${bot.id}/$execute`, '{"mode":"bell"}', ContentType.JSON);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('rang');
    const audits = await medplum.searchResources('AuditEvent', { entity: 'Bot/' + bot.id, _count: '100' });
    expect(audits.some((a: AuditEvent) => a.outcomeDesc?.includes('ringring'))).toBe(true);
  });

  test('$deploy stores a new Binary and a new Bot version', async () => {
    const before = await medplum.readResource('Bot', bot.id as string);
    const code = ECHO.replace("'echo:'", "'v2:'");
    await medplum.post(medplum.fhirUrl('Bot', bot.id as string, '$deploy'), { code, filename: 'echo-v2.js' });
    const after = await medplum.readResource('Bot', bot.id as string);
    expect(after.meta?.versionId).not.toBe(before.meta?.versionId);
    expect(after.executableCode?.url).not.toBe(before.executableCode?.url);
    expect(after.executableCode).toMatchObject({ contentType: ContentType.JAVASCRIPT, title: 'echo-v2.js' });
    // Responses carry attachment urls as presigned storage urls, as on the stock server.
    const storageId = (u?: string): string | undefined => /\/storage\/([^/]+)\//.exec(u ?? '')?.[1];
    expect(storageId(after.executableCode?.url)).toBeTruthy();
    expect(storageId(after.executableCode?.url)).not.toBe(storageId(before.executableCode?.url));
    const stored = await runtime.systemRepo().readResource<Bot>('Bot', bot.id as string);
    expect(stored.executableCode?.url).toBe('Binary/' + storageId(after.executableCode?.url));
    const source = await fetch(after.executableCode?.url as string);
    expect(await source.text()).toBe(code);
    const res = await execute(`Bot/${bot.id}/$execute`, 'hi', ContentType.TEXT);
    expect(await res.text()).toBe('v2:hi');
  });

  test('without the project bots feature: 400 "Bots not enabled" and an AuditEvent with outcome 4', async () => {
    const repo = runtime.systemRepo();
    const project = await repo.readResource<Project>('Project', runtime.hubProjectId);
    await repo.updateResource<Project>({ ...project, features: project.features?.filter((f) => f !== 'bots') });
    try {
      const res = await execute(`Bot/${bot.id}/$execute`, '{}', ContentType.JSON);
      expect(res.status).toBe(400);
      expect(JSON.stringify(await res.json())).toContain('Bots not enabled');
      const audits = await medplum.searchResources('AuditEvent', { entity: 'Bot/' + bot.id, _count: '100' });
      const failed = audits.filter((a: AuditEvent) => a.outcome === '4' && a.outcomeDesc === 'Bots not enabled');
      expect(failed).toHaveLength(1);
      expect(failed[0].type.code).toBe('execute');
    } finally {
      const latest = await repo.readResource<Project>('Project', runtime.hubProjectId);
      await repo.updateResource<Project>({ ...latest, features: project.features });
    }
  });
});
