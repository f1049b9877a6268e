import type { WithId } from '@medplum/core';
import { ContentType, Hl7Message, MedplumClient, normalizeErrorString } from '@medplum/core';
import type { Agent, Device, OperationOutcome } from '@medplum/fhirtypes';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { PingCommand } from './agent-ping.ts';
import { pingHost } from './agent-ping.ts';
import { DeviceClients } from './device-clients.ts';
import { LocalRuntime } from './runtime.ts';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { answer, FakeDevice, sentAcks } from '../../test/support/mllp-device.ts';
import { sleep, waitUntil } from '../../test/support/wait.ts';

/** Every test here is bounded well below the suite's timeout. */
const TEST_TIMEOUT_MS = 10_000;
/** A short `waitTimeout` for the calls that must time out. */
const SHORT_WAIT_MS = 400;

function orm(controlId: string): string {
  return [
    `MSH|^~\\&|HUB|HOSP|LAB|LABFAC|20240102030405||ORM^O01|${controlId}|P|2.5`,
    'PID|1||MRN123^^^HOSP^MR||DOE^JANE||19800101|F',
    'ORC|NW|ORD1',
    'OBR|1|ORD1||CBC^Complete blood count',
  ].join('\r');
}

/** @returns A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** @returns The error text of a rejected client call. */
async function failure(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (err) {
    return normalizeErrorString(err);
  }
  throw new Error('expected the call to fail');
}

function msa(text: string): string[] {
  return Hl7Message.parse(text).getSegment('MSA')?.toString().split('|') ?? [];
}

describe('Agent/$push (real MLLP device on 127.0.0.1)', () => {
  const pings: { host: string; count: number | undefined }[] = [];
  const fakePing: PingCommand = async (host, count) => {
    pings.push({ host, count });
    return { stdout: `PING ${host} (${host}) 56(84) bytes of data.\n1 packets transmitted, 1 received\n`, stderr: '' };
  };
  const logs: string[] = [];
  let runtime: LocalRuntime;
  let medplum: MedplumClient;
  let device: FakeDevice;
  let agent: WithId<Agent>;
  let labDevice: WithId<Device>;

  beforeAll(async () => {
    device = await new FakeDevice().start();
    runtime = await new LocalRuntime({ port: 0, agentPing: fakePing, log: (m) => logs.push(m) }).start();
    medplum = new MedplumClient({ baseUrl: runtime.baseUrl, cacheTime: 0 });
    const { clientId, clientSecret } = runtime.adminCredentials;
    await medplum.startClientLogin(clientId, clientSecret);
    agent = await medplum.createResource<Agent>({
      resourceType: 'Agent',
      name: 'Push agent',
      status: 'active',
      identifier: [{ system: 'https://hub.example/agents', value: 'push-agent' }],
    });
    labDevice = await medplum.createResource<Device>({ resourceType: 'Device', url: device.url });
  });

  afterEach(() => {
    device.reset();
  });

  afterAll(async () => {
    await runtime?.stop();
    await device?.stop();
  });

  async function push(
    destination: string,
    body: string,
    options: { contentType?: string; wait?: boolean; waitTimeout?: number; agentRef?: WithId<Agent> } = {}
  ): Promise<unknown> {
    return medplum.pushToAgent(
      options.agentRef ?? agent,
      destination,
      body,
      options.contentType ?? ContentType.HL7_V2,
      options.wait ?? true,
      options.waitTimeout === undefined ? undefined : { waitTimeout: options.waitTimeout }
    );
  }

  async function rawPush(path: string, body: unknown): Promise<Response> {
    return fetch(runtime.fhirBaseUrl + path, {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + medplum.getAccessToken(), 'Content-Type': ContentType.FHIR_JSON },
      body: JSON.stringify(body),
    });
  }

  test('waitForResponse returns the device AA as raw ER7 text', { timeout: TEST_TIMEOUT_MS }, async () => {
    sentAcks.length = 0;
    const result = await push(`Device/${labDevice.id}`, orm('ORD-AA'));
    expect(typeof result).toBe('string');
    expect(msa(result as string).slice(1, 3)).toEqual(['AA', 'ORD-AA']);
    expect(result).toBe(sentAcks[0]);
    expect(device.received.map((m) => m.getSegment('MSH')?.getField(10)?.toString())).toEqual(['ORD-AA']);

    const res = await rawPush(`Agent/${agent.id}/$push`, {
      destination: `Device/${labDevice.id}`,
      contentType: ContentType.HL7_V2,
      body: orm('ORD-RAW'),
      waitForResponse: true,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('x-application/hl7-v2+er7; charset=utf-8');
    const text = await res.text();
    expect(text.startsWith('MSH|')).toBe(true);
    expect(text.split('\r')[1]).toBe('MSA|AA|ORD-RAW|OK');
    expect(text).toBe(sentAcks[1]);
  });

  test('AE and AR come back as the device sent them', { timeout: TEST_TIMEOUT_MS }, async () => {
    device.behaviour = answer('AE');
    expect(msa((await push(`Device/${labDevice.id}`, orm('ORD-AE'))) as string)[1]).toBe('AE');
    device.behaviour = answer('AR');
    expect(msa((await push(`Device/${labDevice.id}`, orm('ORD-AR'))) as string)[1]).toBe('AR');
  });

  test('a commit ACK (CA) is skipped: the following AA is returned', { timeout: TEST_TIMEOUT_MS }, async () => {
    device.behaviour = (message, connection) => {
      connection.send(message.buildAck({ ackCode: 'CA' }));
      setTimeout(() => connection.send(message.buildAck({ ackCode: 'AA' })), 150);
    };
    const started = Date.now();
    const result = (await push(`Device/${labDevice.id}`, orm('ORD-CA'))) as string;
    expect(msa(result)[1]).toBe('AA');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  test('one pooled connection per device, reopened after the device drops it', { timeout: TEST_TIMEOUT_MS }, async () => {
    device.dropConnections();
    await sleep(50);
    device.connections = 0;
    await push(`Device/${labDevice.id}`, orm('ORD-P1'));
    await push(`Device/${labDevice.id}`, orm('ORD-P2'));
    await Promise.all([push(`Device/${labDevice.id}`, orm('ORD-P3')), push(`Device/${labDevice.id}`, orm('ORD-P4'))]);
    expect(device.connections).toBe(1);
    device.dropConnections();
    await sleep(50);
    expect(msa((await push(`Device/${labDevice.id}`, orm('ORD-P5'))) as string)[2]).toBe('ORD-P5');
    expect(device.connections).toBe(2);
  });

  test('Device?search destinations and Agent/$push?identifier= work', { timeout: TEST_TIMEOUT_MS }, async () => {
    await medplum.updateResource<Device>({ ...labDevice, identifier: [{ system: 'https://hub.example/devices', value: 'lab-1' }] });
    const res = await rawPush(`Agent/$push?identifier=${encodeURIComponent('https://hub.example/agents|push-agent')}`, {
      destination: 'Device?identifier=https://hub.example/devices|lab-1',
      contentType: ContentType.HL7_V2,
      body: orm('ORD-ID'),
      waitForResponse: true,
    });
    expect(res.status).toBe(200);
    expect((await res.text()).includes('MSA|AA|ORD-ID')).toBe(true);

    const none = await rawPush('Agent/$push', { destination: `Device/${labDevice.id}`, contentType: ContentType.HL7_V2, body: 'x' });
    expect(none.status).toBe(400);
    expect(((await none.json()) as OperationOutcome).issue?.[0]?.details?.text).toBe('Must specify agent ID or identifier');
  });

  test('a Parameters body is read from valueString only, as on the stock server', { timeout: TEST_TIMEOUT_MS }, async () => {
    const res = await rawPush(`Agent/${agent.id}/$push`, {
      resourceType: 'Parameters',
      parameter: [
        { name: 'destination', valueString: `Device/${labDevice.id}` },
        { name: 'contentType', valueString: ContentType.HL7_V2 },
        { name: 'body', valueString: orm('ORD-PARAMS') },
        { name: 'waitForResponse', valueString: 'true' },
      ],
    });
    expect(res.status).toBe(200);
    expect((await res.text()).includes('MSA|AA|ORD-PARAMS')).toBe(true);

    // valueBoolean is not read: the push is fire and forget.
    const typed = await rawPush(`Agent/${agent.id}/$push`, {
      resourceType: 'Parameters',
      parameter: [
        { name: 'destination', valueString: `Device/${labDevice.id}` },
        { name: 'contentType', valueString: ContentType.HL7_V2 },
        { name: 'body', valueString: orm('ORD-TYPED') },
        { name: 'waitForResponse', valueBoolean: true },
      ],
    });
    expect(typed.status).toBe(200);
    expect(((await typed.json()) as OperationOutcome).resourceType).toBe('OperationOutcome');
  });

  test('a message header without MSH-10 is dropped: 400 Timeout after waitTimeout', { timeout: TEST_TIMEOUT_MS }, async () => {
    const started = Date.now();
    const text = await failure(push(`Device/${labDevice.id}`, 'MSH|^~\\&|HUB|HOSP|LAB|LABFAC|20240102||ORM^O01', { waitTimeout: SHORT_WAIT_MS }));
    const elapsed = Date.now() - started;
    expect(text).toBe('Timeout');
    expect(elapsed).toBeGreaterThanOrEqual(SHORT_WAIT_MS - 10);
    expect(elapsed).toBeLessThan(SHORT_WAIT_MS + 2000);
    expect(device.received).toHaveLength(0);
    expect(logs.some((l) => l.includes('MSH.10 is missing but required'))).toBe(true);
  });

  test('an empty MSH-10 and a body that is not HL7 fail as on the stock agent', { timeout: TEST_TIMEOUT_MS }, async () => {
    // The field exists but is empty: Hl7Connection.sendAndWait refuses it, and the agent answers 400.
    const empty = await failure(push(`Device/${labDevice.id}`, 'MSH|^~\\&|HUB|HOSP|LAB|LABFAC|20240102||ORM^O01||P|2.5'));
    expect(empty).toBe('Required field missing: MSH.10');
    // Not HL7 at all: the agent cannot parse it and answers nothing.
    expect(await failure(push(`Device/${labDevice.id}`, 'hello', { waitTimeout: SHORT_WAIT_MS }))).toBe('Timeout');
  });

  test('the device down gives a 400 with the socket error at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const down = await medplum.createResource<Device>({ resourceType: 'Device', url: `mllp://127.0.0.1:${await closedPort()}` });
    const started = Date.now();
    const text = await failure(push(`Device/${down.id}`, orm('ORD-DOWN')));
    expect(text).toMatch(/ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('a device that never answers: 400 Timeout after waitTimeout', { timeout: TEST_TIMEOUT_MS }, async () => {
    device.behaviour = () => undefined;
    const started = Date.now();
    expect(await failure(push(`Device/${labDevice.id}`, orm('ORD-SILENT'), { waitTimeout: SHORT_WAIT_MS }))).toBe('Timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(SHORT_WAIT_MS - 10);
    expect(device.received).toHaveLength(1);
  });

  test('without waitForResponse: allOk at once, and the device still gets the message', { timeout: TEST_TIMEOUT_MS }, async () => {
    device.behaviour = () => undefined;
    const started = Date.now();
    const result = (await push(`Device/${labDevice.id}`, orm('ORD-FAF'), { wait: false })) as OperationOutcome;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(result.resourceType).toBe('OperationOutcome');
    expect(result.issue?.[0]?.code).toBe('informational');
    expect(await waitUntil(() => device.received.length === 1)).toBe(true);
    expect(device.received[0].getSegment('MSH')?.getField(10)?.toString()).toBe('ORD-FAF');
  });

  test('destination and parameter errors', { timeout: TEST_TIMEOUT_MS }, async () => {
    const noUrl = await medplum.createResource<Device>({ resourceType: 'Device' });
    expect(await failure(push(`Device/${noUrl.id}`, orm('X1')))).toBe('Destination device missing url');
    expect(await failure(push('Device/does-not-exist', orm('X2')))).toBe('Destination device not found');
    expect(await failure(push('127.0.0.1', orm('X3')))).toBe('Destination device not found');
    expect(await failure(push(`Device/${labDevice.id}`, orm('X4'), { waitTimeout: 60_000 }))).toBe('Invalid wait timeout');
    expect(await failure(push(`Device/${labDevice.id}`, ''))).toBe('Missing body parameter');
    const noType = await rawPush(`Agent/${agent.id}/$push`, { destination: `Device/${labDevice.id}`, body: orm('X5') });
    expect(((await noType.json()) as OperationOutcome).issue?.[0]?.details?.text).toBe('Missing contentType parameter');
    const unknown = await rawPush('Agent/no-such-agent/$push', { destination: `Device/${labDevice.id}`, body: 'x', contentType: 'x' });
    expect(unknown.status).toBe(404);
    expect(device.received).toHaveLength(0);
  });

  test('PING is answered by the agent without a device', { timeout: TEST_TIMEOUT_MS }, async () => {
    pings.length = 0;
    const res = await rawPush(`Agent/${agent.id}/$push`, {
      destination: '127.0.0.1',
      contentType: ContentType.PING,
      body: 'PING',
      waitForResponse: true,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('x-application/ping; charset=utf-8');
    expect(await res.text()).toBe('PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n1 packets transmitted, 1 received');
    expect(await push('localhost', 'PING 3', { contentType: ContentType.PING })).toMatch(/^PING localhost/);
    expect(pings).toEqual([
      { host: '127.0.0.1', count: undefined },
      { host: 'localhost', count: 3 },
    ]);
    expect(await failure(push('localhost', 'PING x', { contentType: ContentType.PING }))).toBe(
      'Unable to ping localhost "x" times. "x" is not a number.'
    );
  });

  test("Agent.status 'off' refuses pushes; PING passes the server but not the agent", { timeout: TEST_TIMEOUT_MS }, async () => {
    const off = await medplum.createResource<Agent>({ resourceType: 'Agent', name: 'Off agent', status: 'off' });
    expect(await failure(push(`Device/${labDevice.id}`, orm('OFF1'), { agentRef: off }))).toBe(
      "Agent is currently disabled. Agent.status is 'off'"
    );
    expect(await failure(push('127.0.0.1', 'PING', { agentRef: off, contentType: ContentType.PING }))).toBe(
      'Agent.status is currently set to off'
    );
    expect(device.received).toHaveLength(0);
  });

  test('the agent checks the status it last loaded, until $reload-config', { timeout: TEST_TIMEOUT_MS }, async () => {
    let subject = await medplum.createResource<Agent>({ resourceType: 'Agent', name: 'Reloaded agent', status: 'active' });
    const reload = async (): Promise<void> => {
      await medplum.get(medplum.fhirUrl('Agent', subject.id, '$reload-config'));
    };
    await reload();
    subject = await medplum.updateResource<Agent>({ ...subject, status: 'off' });
    // The server reads 'off'; the agent still runs with 'active' and answers PING.
    expect(await push('127.0.0.1', 'PING', { agentRef: subject, contentType: ContentType.PING })).toMatch(/^PING/);
    await reload();
    subject = await medplum.updateResource<Agent>({ ...subject, status: 'active' });
    // The server reads 'active'; the agent still has 'off' and refuses.
    expect(await failure(push(`Device/${labDevice.id}`, orm('RL1'), { agentRef: subject }))).toBe('Agent.status is currently set to off');
    await reload();
    expect(msa((await push(`Device/${labDevice.id}`, orm('RL2'), { agentRef: subject })) as string)[1]).toBe('AA');
  });

  test('a call still waiting ends when the runtime stops', { timeout: TEST_TIMEOUT_MS }, async () => {
    const local = await new LocalRuntime({ port: 0 }).start();
    const client = new MedplumClient({ baseUrl: local.baseUrl, cacheTime: 0 });
    const { clientId, clientSecret } = local.adminCredentials;
    await client.startClientLogin(clientId, clientSecret);
    const a = await client.createResource<Agent>({ resourceType: 'Agent', name: 'Stopping', status: 'active' });
    const d = await client.createResource<Device>({ resourceType: 'Device', url: device.url });
    device.behaviour = () => undefined;
    const pending = client.pushToAgent(a, d, orm('ORD-STOP'), ContentType.HL7_V2, true, { waitTimeout: 50_000 }).catch((err: unknown) => err);
    expect(await waitUntil(() => device.received.length === 1)).toBe(true);
    const started = Date.now();
    await local.stop();
    await pending;
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('DeviceClients', () => {
  test('closes an idle connection, and every connection on close()', { timeout: TEST_TIMEOUT_MS }, async () => {
    const device = await new FakeDevice().start();
    const clients = new DeviceClients({ idleTimeoutMs: 200 });
    try {
      const reply = await clients.push('agent-1', device.url, orm('IDLE1'), false);
      expect(reply?.statusCode).toBe(200);
      expect(clients.size()).toBe(1);
      expect(await waitUntil(() => clients.size() === 0, 2000)).toBe(true);

      // keepAlive: no idle close; close() ends it and refuses later pushes.
      await clients.push('agent-1', device.url, orm('KEEP1'), true);
      await sleep(400);
      expect(clients.size()).toBe(1);
      await clients.close();
      expect(clients.size()).toBe(0);
      expect(await clients.push('agent-1', device.url, orm('KEEP2'), true)).toEqual({
        statusCode: 400,
        contentType: ContentType.TEXT,
        body: 'Cannot get new client, pool is closed',
      });
    } finally {
      await clients.close();
      await device.stop();
    }
  });

  test('without keepAlive, the idle close also ends a push still waiting', { timeout: TEST_TIMEOUT_MS }, async () => {
    const device = await new FakeDevice().start();
    device.behaviour = () => undefined;
    const clients = new DeviceClients({ idleTimeoutMs: 200 });
    try {
      const started = Date.now();
      const reply = await clients.push('agent-1', device.url, orm('STUCK1'), false);
      expect(reply).toEqual({ statusCode: 400, contentType: ContentType.TEXT, body: 'Message was still pending when connection closed' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    } finally {
      await clients.close();
      await device.stop();
    }
  });

  test('each agent has its own connection to a device', { timeout: TEST_TIMEOUT_MS }, async () => {
    const device = await new FakeDevice().start();
    const clients = new DeviceClients();
    try {
      await clients.push('agent-1', device.url, orm('OWN1'), false);
      await clients.push('agent-2', device.url, orm('OWN2'), false);
      expect(device.connections).toBe(2);
      await clients.closeOwner('agent-1');
      expect(clients.size()).toBe(1);
    } finally {
      await clients.close();
      await device.stop();
    }
  });
});

describe('pingHost with the system ping', () => {
  test('answers 200 with the output, or 400 with the error where ping is missing or not allowed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const reply = await pingHost('127.0.0.1', 'PING');
    expect([200, 400]).toContain(reply.statusCode);
    expect(reply.contentType).toBe(reply.statusCode === 200 ? ContentType.PING : ContentType.TEXT);
    expect(reply.body.length).toBeGreaterThan(0);
    const v6 = await pingHost('::1', 'PING');
    expect(v6.statusCode).toBe(400);
    expect(v6.body).toContain('IPv6 is currently unsupported');
  });
});
