import type { WithId } from '@medplum/core';
import { createReference, Hl7Message } from '@medplum/core';
import type {
  Agent,
  AgentChannel,
  AuditEvent,
  Binary,
  Bot,
  ClientApplication,
  Endpoint,
  Project,
  ProjectMembership,
  Reference,
} from '@medplum/fhirtypes';
import type { Hl7Connection, Hl7MessageEvent } from '@medplum/hl7';
import { Hl7Client } from '@medplum/hl7';
import Client, { Message } from 'node-hl7-client';
import { randomUUID } from 'node:crypto';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AGENT_CLIENT_EXTENSION } from '../constants.ts';
import type { MllpListener } from './agent-bridge.ts';
import { AgentBridge } from './agent-bridge.ts';
import { AuthService } from './auth.ts';
import { BinaryStorage } from './binary-storage.ts';
import { BotExecutor } from './bots/executor.ts';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { HubRepository } from './repo.ts';
import { ResourceStore } from './store.ts';
import { sleep, waitUntil } from '../../test/support/wait.ts';

/** How long a test waits before concluding that the sender gets no (further) ACK. */
const SILENCE_MS = 1500;
/** Upper bound for any expected ACK. */
const ACK_TIMEOUT_MS = 4000;

const BOTS = {
  ack: 'exports.handler = async (medplum, event) => event.input.buildAck();',
  ae: `exports.handler = async (medplum, event) => {
  const err = Hl7Message.parse('MSH|^~\\\\&|X\\rERR|||207^Application internal error^HL70357|E').getSegment('ERR');
  return event.input.buildAck({ ackCode: 'AE', errSegment: err });
};`,
  throws: `exports.handler = async (medplum, event) => {
  throw new Error('cannot process ' + event.input.getSegment('MSH').getField(9).toString());
};`,
  silent: `exports.handler = async (medplum, event) => {
  console.log('processed without returning an ACK');
};`,
  // AE for control ids starting with FAIL, AA otherwise.
  switch: `exports.handler = async (medplum, event) => {
  const id = event.input.getSegment('MSH').getField(10).toString();
  return event.input.buildAck({ ackCode: id.startsWith('FAIL') ? 'AE' : 'AA' });
};`,
  // Echoes MSH-13 (the sequence number the agent assigns) in MSA-3.
  seq: `exports.handler = async (medplum, event) => {
  const ack = event.input.buildAck();
  ack.getSegment('MSA').setField(3, event.input.getSegment('MSH').getField(13).toString());
  return ack;
};`,
} as const;

function adt(controlId: string): Hl7Message {
  return Hl7Message.parse(
    [
      `MSH|^~\\&|ADT_SRC|HOSP|HUB|HUB|20240102030405||ADT^A01|${controlId}|P|2.5`,
      'EVN|A01|20240102030405',
      'PID|1||MRN123^^^HOSP^MR||DOE^JANE||19800101|F',
    ].join('\r')
  );
}

function msa(message: Hl7Message, field: number): string | undefined {
  return message.getSegment('MSA')?.getField(field)?.toString();
}

/** An MLLP sender that records every frame it gets back, for exact assertions on what arrives. */
class Sender {
  readonly received: Hl7Message[] = [];
  /** Arrival time (ms) of each entry of `received`. */
  readonly receivedAt: number[] = [];
  private readonly client: Hl7Client;
  private connection?: Hl7Connection;
  closed = false;

  constructor(port: number) {
    this.client = new Hl7Client({ host: '127.0.0.1', port, connectTimeout: 2000 });
  }

  async open(): Promise<this> {
    const connection = await this.client.connect();
    this.connection = connection;
    connection.addEventListener('message', (event: Hl7MessageEvent) => {
      this.received.push(event.message);
      this.receivedAt.push(Date.now());
    });
    connection.addEventListener('close', () => {
      this.closed = true;
    });
    return this;
  }

  async send(message: Hl7Message): Promise<void> {
    await this.client.send(message);
  }

  /** @returns The replies to one control id, once `count` arrived or the timeout passed. */
  async replies(controlId: string, count: number, timeoutMs = ACK_TIMEOUT_MS): Promise<Hl7Message[]> {
    const matching = (): Hl7Message[] => this.received.filter((m) => msa(m, 2) === controlId);
    await waitUntil(() => matching().length >= count, timeoutMs);
    return matching();
  }

  async close(): Promise<void> {
    if (this.connection && !this.connection.isClosed()) {
      this.connection.socket.destroy();
    }
    await this.client.close().catch(() => undefined);
  }
}

async function connectionRefused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 1000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED');
    });
  });
}

describe('AgentBridge (real MLLP sockets)', () => {
  const store = new ResourceStore();
  const binaries = new BinaryStorage();
  const projectId = randomUUID();
  const repo = new HubRepository(store, {
    author: { reference: 'system' },
    projectId,
    fhirBaseUrl: 'http://127.0.0.1:1/fhir/R4/',
  });
  const logs: string[] = [];
  const senders: Sender[] = [];
  let bridge: AgentBridge;
  let agent: WithId<Agent>;
  let reloadAgent: WithId<Agent>;
  let reloadEndpoint: WithId<Endpoint>;
  let noExtensionAgent: WithId<Agent>;
  let noMembershipAgent: WithId<Agent>;
  let offAgent: WithId<Agent>;

  async function createBot(name: string, code: string): Promise<WithId<Bot>> {
    const binary = await repo.createResource<Binary>({ resourceType: 'Binary', contentType: 'text/javascript' });
    binaries.write(binary.id, binary.meta?.versionId as string, { contentType: 'text/javascript', data: Buffer.from(code) });
    return repo.createResource<Bot>({
      resourceType: 'Bot',
      name,
      runtimeVersion: 'vmcontext',
      executableCode: { contentType: 'text/javascript', url: `Binary/${binary.id}` },
    });
  }

  async function createEndpoint(address: string, status: Endpoint['status'] = 'active'): Promise<WithId<Endpoint>> {
    return repo.createResource<Endpoint>({
      resourceType: 'Endpoint',
      status,
      connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7v2-mllp' },
      payloadType: [{ text: 'HL7v2' }],
      address,
    });
  }

  async function createClient(withMembership: boolean): Promise<WithId<ClientApplication>> {
    const client = await repo.createResource<ClientApplication>({
      resourceType: 'ClientApplication',
      name: 'On-prem agent',
      secret: randomUUID(),
    });
    if (withMembership) {
      await repo.createResource<ProjectMembership>({
        resourceType: 'ProjectMembership',
        project: { reference: `Project/${projectId}` },
        user: createReference(client),
        profile: createReference(client),
      });
    }
    return client;
  }

  function clientExtension(client: WithId<ClientApplication>): Agent['extension'] {
    return [{ url: AGENT_CLIENT_EXTENSION, valueReference: createReference(client) }];
  }

  function listener(channel: string, agentId = agent.id): MllpListener {
    const found = bridge.listeners().find((l) => l.agentId === agentId && l.channel === channel);
    if (!found) {
      throw new Error(`no listener for channel ${channel}`);
    }
    return found;
  }

  async function sender(channel: string, agentId?: string): Promise<Sender> {
    const s = await new Sender(listener(channel, agentId).port).open();
    senders.push(s);
    return s;
  }

  beforeAll(async () => {
    loadFhirDefinitions();
    await repo.updateResource<Project>({ resourceType: 'Project', id: projectId, name: 'Agent bridge test', features: ['bots'] });
    const auth = new AuthService(repo, 'http://127.0.0.1:1/');
    const executor = new BotExecutor({ systemRepo: repo, binaries, auth, baseUrl: 'http://127.0.0.1:1/' });

    const bots = {
      ack: await createBot('ack', BOTS.ack),
      ae: await createBot('ae', BOTS.ae),
      throws: await createBot('throws', BOTS.throws),
      silent: await createBot('silent', BOTS.silent),
      switch: await createBot('switch', BOTS.switch),
      seq: await createBot('seq', BOTS.seq),
    };
    const channel = async (
      name: string,
      address: string,
      bot: Reference<Bot>,
      status: Endpoint['status'] = 'active'
    ): Promise<AgentChannel> => ({
      name,
      endpoint: createReference(await createEndpoint(address, status)),
      targetReference: bot,
    });

    const agentClient = await createClient(true);
    agent = await repo.createResource<Agent>({
      resourceType: 'Agent',
      name: 'Lab agent',
      status: 'active',
      extension: clientExtension(agentClient),
      channel: [
        await channel('aa', 'mllp://0.0.0.0:2575', createReference(bots.ack)),
        await channel('ae', 'mllp://0.0.0.0:2576', createReference(bots.ae)),
        await channel('throws', 'mllp://0.0.0.0:2577', createReference(bots.throws)),
        await channel('silent', 'mllp://0.0.0.0:2578', createReference(bots.silent)),
        await channel('enhanced', 'mllp://0.0.0.0:2579?enhanced=true', createReference(bots.ack)),
        await channel('enhanced-aa', 'mllp://0.0.0.0:2580?enhanced=aa', createReference(bots.ack)),
        await channel('er', 'mllp://0.0.0.0:2581?enhanced=true&appLevelAck=ER', createReference(bots.switch)),
        await channel('seq', 'mllp://0.0.0.0:2582?assignSeqNo=true', createReference(bots.seq)),
        await channel('missing-bot', 'mllp://0.0.0.0:2583', { reference: `Bot/${randomUUID()}` }),
        await channel('throttled', 'mllp://0.0.0.0:2585?messagesPerMin=120', createReference(bots.ack)),
        await channel('duplicate-port', 'mllp://0.0.0.0:2575', createReference(bots.ack)),
        await channel('endpoint-off', 'mllp://0.0.0.0:2584', createReference(bots.ack), 'off'),
      ],
    });

    reloadEndpoint = await createEndpoint('mllp://0.0.0.0:2590');
    reloadAgent = await repo.createResource<Agent>({
      resourceType: 'Agent',
      name: 'Reload agent',
      status: 'active',
      extension: clientExtension(agentClient),
      channel: [{ name: 'reload', endpoint: createReference(reloadEndpoint), targetReference: createReference(bots.ack) }],
    });

    noExtensionAgent = await repo.createResource<Agent>({
      resourceType: 'Agent',
      name: 'No client',
      status: 'active',
      channel: [await channel('no-extension', 'mllp://0.0.0.0:2600', createReference(bots.ack))],
    });
    noMembershipAgent = await repo.createResource<Agent>({
      resourceType: 'Agent',
      name: 'No membership',
      status: 'active',
      extension: clientExtension(await createClient(false)),
      channel: [await channel('no-membership', 'mllp://0.0.0.0:2601', createReference(bots.ack))],
    });
    offAgent = await repo.createResource<Agent>({
      resourceType: 'Agent',
      name: 'Switched off',
      status: 'off',
      extension: clientExtension(agentClient),
      channel: [await channel('agent-off', 'mllp://0.0.0.0:2602', createReference(bots.ack))],
    });

    bridge = new AgentBridge({ systemRepo: repo, executor, auth, mllpPort: () => 0, log: (line) => logs.push(line) });
    await bridge.start();
  });

  afterAll(async () => {
    await Promise.all(senders.map((s) => s.close()));
    await bridge?.stop();
  });

  test('opens one loopback listener per usable channel and logs it', () => {
    const channels = bridge.listeners().map((l) => `${l.agentId === agent.id ? 'lab' : 'other'}:${l.channel}`);
    expect(channels.sort()).toEqual(
      ['aa', 'ae', 'throws', 'silent', 'enhanced', 'enhanced-aa', 'er', 'seq', 'missing-bot', 'throttled']
        .map((c) => `lab:${c}`)
        .concat(['other:reload'])
        .sort()
    );
    for (const l of bridge.listeners()) {
      expect(l.host).toBe('127.0.0.1');
      expect(l.port).toBeGreaterThan(0);
      expect(logs).toContain(`[HL7:${l.channel}] listening on 127.0.0.1:${l.port}`);
    }
    expect(listener('enhanced').enhancedMode).toBe('standard');
    expect(listener('enhanced-aa').enhancedMode).toBe('aaMode');
    expect(listener('er').appLevelAck).toBe('ER');
    expect(listener('aa')).toMatchObject({ appLevelAck: 'AL', encoding: 'utf-8', enhancedMode: undefined, agentName: 'Lab agent' });
  });

  test('rejects a second channel on the same port and skips Endpoints that are off', () => {
    expect(logs.some((l) => l.includes('duplicate-port') && l.includes('2575') && l.includes('rejected'))).toBe(true);
    expect(logs.some((l) => l.startsWith('[HL7:endpoint-off]') && l.includes("'off'"))).toBe(true);
  });

  test('fails closed without the agent-client extension, a membership, or with the Agent off', () => {
    const agentIds = new Set(bridge.listeners().map((l) => l.agentId));
    expect(agentIds.has(noExtensionAgent.id)).toBe(false);
    expect(agentIds.has(noMembershipAgent.id)).toBe(false);
    expect(agentIds.has(offAgent.id)).toBe(false);
    expect(logs.some((l) => l.includes(`Agent/${noExtensionAgent.id}`) && l.includes(AGENT_CLIENT_EXTENSION))).toBe(true);
    expect(logs.some((l) => l.includes(`Agent/${noMembershipAgent.id}`) && l.includes('has no ProjectMembership'))).toBe(true);
  });

  test('binds loopback only', async () => {
    const { port } = listener('aa');
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal);
    if (external) {
      expect(await connectionRefused(external.address, port)).toBe(true);
    }
    expect(await connectionRefused('127.0.0.1', port)).toBe(false);
  });

  test('an AA from the bot reaches a node-hl7-client sender with MSA-2 = the original MSH-10', async () => {
    const client = new Client({ host: '127.0.0.1', version: '2.5' });
    const acks: { code: string; controlId: string }[] = [];
    const connection = client.createConnection(
      { host: '127.0.0.1', version: '2.5', port: listener('aa').port, maxConnectionAttempts: 1 },
      async (res) => {
        const message = res.getMessage();
        acks.push({ code: message.get('MSA.1').toString(), controlId: message.get('MSA.2').toString() });
      }
    );
    try {
      await connection.sendMessage(new Message({ text: adt('NHC-0001').toString() }));
      expect(await waitUntil(() => acks.length > 0, ACK_TIMEOUT_MS)).toBe(true);
      expect(acks).toEqual([{ code: 'AA', controlId: 'NHC-0001' }]);
    } finally {
      await connection.close();
    }
  });

  test('a run writes an AuditEvent with the Agent as entity', async () => {
    const s = await sender('aa');
    await s.send(adt('AUDIT-1'));
    expect(await s.replies('AUDIT-1', 1)).toHaveLength(1);
    const audit = await waitUntil(() => auditEventsFor(agent.id).length > 0, ACK_TIMEOUT_MS);
    expect(audit).toBe(true);
    const event = auditEventsFor(agent.id)[0];
    expect(event.outcome).toBe('0');
    expect(event.entity?.some((e) => e.what?.reference === `Agent/${agent.id}`)).toBe(true);
    expect(event.agent?.some((a) => a.who?.reference?.startsWith('ClientApplication/'))).toBe(true);
    // A run the agent starts gets a trace id of its own, as on the stock server.
    const traceId = event.extension?.find((e) => e.url === 'https://medplum.com/fhir/StructureDefinition/tracing')?.extension?.[0]?.valueId;
    expect(traceId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  function auditEventsFor(agentId: string): AuditEvent[] {
    return [...store.ids('AuditEvent')]
      .map((id) => store.latest('AuditEvent', id)?.resource as AuditEvent)
      .filter((e) => e.entity?.some((entity) => entity.what?.reference === `Agent/${agentId}`));
  }

  test('an AE from the bot is passed through', async () => {
    const s = await sender('ae');
    await s.send(adt('AE-1'));
    const [reply] = await s.replies('AE-1', 1);
    expect(reply).toBeDefined();
    expect(msa(reply, 1)).toBe('AE');
    expect(reply.getSegment('ERR')?.getField(3)?.getComponent(1)).toBe('207');
  });

  test('a bot that throws gives the sender nothing', async () => {
    const s = await sender('throws');
    await s.send(adt('THROW-1'));
    await sleep(SILENCE_MS);
    expect(s.received).toHaveLength(0);
    expect(logs.some((l) => l.startsWith('[HL7:throws]') && l.includes('THROW-1') && l.includes('status 400'))).toBe(true);
    // The error text is logged, never the message content.
    expect(logs.some((l) => l.includes('DOE^JANE'))).toBe(false);
  });

  test('a bot that returns nothing gives the sender nothing', async () => {
    const s = await sender('silent');
    await s.send(adt('SILENT-1'));
    await sleep(SILENCE_MS);
    expect(s.received).toHaveLength(0);
    expect(logs.some((l) => l.startsWith('[HL7:silent]') && l.includes('SILENT-1') && l.includes('Invalid HL7 message'))).toBe(true);
  });

  test('enhanced=true sends a CA first, then the bot AA', async () => {
    const s = await sender('enhanced');
    await s.send(adt('ENH-1'));
    const replies = await s.replies('ENH-1', 2);
    expect(replies.map((m) => msa(m, 1))).toEqual(['CA', 'AA']);
  });

  test('enhanced=aa answers AA immediately and does not forward the bot ACK', async () => {
    const s = await sender('enhanced-aa');
    await s.send(adt('ENHAA-1'));
    const first = await s.replies('ENHAA-1', 1);
    expect(first.map((m) => msa(m, 1))).toEqual(['AA']);
    // Give the bot run (a few ms) ample time, then make sure its AA was not forwarded.
    await sleep(SILENCE_MS);
    expect((await s.replies('ENHAA-1', 2, 0)).map((m) => msa(m, 1))).toEqual(['AA']);
  });

  test('appLevelAck=ER in standard enhanced mode suppresses the AA but forwards an AE', async () => {
    const s = await sender('er');
    await s.send(adt('OK-1'));
    await s.send(adt('FAIL-1'));
    expect((await s.replies('FAIL-1', 2)).map((m) => msa(m, 1))).toEqual(['CA', 'AE']);
    await sleep(SILENCE_MS);
    expect((await s.replies('OK-1', 2, 0)).map((m) => msa(m, 1))).toEqual(['CA']);
  });

  test('assignSeqNo=true writes a counter from 0 into MSH-13', async () => {
    const s = await sender('seq');
    await s.send(adt('SEQ-1'));
    const [first] = await s.replies('SEQ-1', 1);
    await s.send(adt('SEQ-2'));
    const [second] = await s.replies('SEQ-2', 1);
    expect(msa(first, 3)).toBe('0');
    expect(msa(second, 3)).toBe('1');
  });

  test('messagesPerMin throttles dispatch per connection', async () => {
    const s = await sender('throttled');
    await s.send(adt('THROTTLE-1'));
    await s.send(adt('THROTTLE-2'));
    expect(await s.replies('THROTTLE-2', 1)).toHaveLength(1);
    expect(await s.replies('THROTTLE-1', 1)).toHaveLength(1);
    // 120 messages/min: the second message is dispatched no sooner than 500 ms after the first.
    const at = (id: string): number => s.receivedAt[s.received.findIndex((m) => msa(m, 2) === id)];
    expect(at('THROTTLE-2') - at('THROTTLE-1')).toBeGreaterThanOrEqual(400);
  });

  test('a channel whose bot does not exist logs an error per message and answers nothing', async () => {
    const s = await sender('missing-bot');
    await s.send(adt('NOBOT-1'));
    await sleep(SILENCE_MS);
    expect(s.received).toHaveLength(0);
    expect(logs.some((l) => l.startsWith('[HL7:missing-bot]') && l.includes('NOBOT-1') && l.includes('target bot'))).toBe(true);
  });

  test('a bad frame is logged and the connection keeps working', async () => {
    const s = await sender('aa');
    const { port } = listener('aa');
    await new Promise<void>((resolve, reject) => {
      const raw = connect({ host: '127.0.0.1', port }, () => {
        raw.end(Buffer.from('\x0bNOT HL7 AT ALL\x1c\r'), () => resolve());
      });
      raw.once('error', reject);
    });
    await s.send(adt('AFTER-BAD-1'));
    expect((await s.replies('AFTER-BAD-1', 1)).map((m) => msa(m, 1))).toEqual(['AA']);
    expect(await waitUntil(() => logs.some((l) => l.startsWith('[HL7:aa]') && l.includes('Invalid HL7 message')), ACK_TIMEOUT_MS)).toBe(
      true
    );
  });

  test('reload reconfigures in place on the same port and rebinds when the port changes', async () => {
    const before = listener('reload', reloadAgent.id);
    const s = await sender('reload', reloadAgent.id);
    await s.send(adt('RELOAD-1'));
    expect((await s.replies('RELOAD-1', 1)).map((m) => msa(m, 1))).toEqual(['AA']);

    // Same port, new settings: the open connection stays and now gets the enhanced CA.
    reloadEndpoint = await repo.updateResource<Endpoint>({ ...reloadEndpoint, address: 'mllp://0.0.0.0:2590?enhanced=true' });
    await bridge.reload(reloadAgent.id);
    expect(listener('reload', reloadAgent.id)).toMatchObject({ port: before.port, enhancedMode: 'standard' });
    await s.send(adt('RELOAD-2'));
    expect((await s.replies('RELOAD-2', 2)).map((m) => msa(m, 1))).toEqual(['CA', 'AA']);

    // New port: the listener is rebound and its connections are closed.
    reloadEndpoint = await repo.updateResource<Endpoint>({ ...reloadEndpoint, address: 'mllp://0.0.0.0:2591' });
    await bridge.reload(reloadAgent.id);
    const after = listener('reload', reloadAgent.id);
    expect(after.address).toBe('mllp://0.0.0.0:2591');
    expect(await waitUntil(() => s.closed, ACK_TIMEOUT_MS)).toBe(true);
    expect(logs.some((l) => l.startsWith('[HL7:reload] address changed'))).toBe(true);
    expect(logs).toContain(`[HL7:reload] listening on 127.0.0.1:${after.port}`);
    const s2 = await sender('reload', reloadAgent.id);
    await s2.send(adt('RELOAD-3'));
    expect((await s2.replies('RELOAD-3', 1)).map((m) => msa(m, 1))).toEqual(['AA']);
  });

  test("reload closes the listener once the Endpoint's status is 'off'", async () => {
    const { port } = listener('reload', reloadAgent.id);
    reloadEndpoint = await repo.updateResource<Endpoint>({ ...reloadEndpoint, status: 'off' });
    await bridge.reload();
    expect(bridge.listeners().some((l) => l.agentId === reloadAgent.id)).toBe(false);
    expect(await connectionRefused('127.0.0.1', port)).toBe(true);
    expect(logs.some((l) => l.startsWith('[HL7:reload] stopped'))).toBe(true);
    // The other agent's channels are untouched by a reload of all agents.
    expect(bridge.listeners().some((l) => l.channel === 'aa')).toBe(true);
  });
});

describe('AgentBridge port conflicts', () => {
  test('EADDRINUSE is logged and the channel skipped instead of hanging', async () => {
    loadFhirDefinitions();
    const store = new ResourceStore();
    const projectId = randomUUID();
    const repo = new HubRepository(store, { author: { reference: 'system' }, projectId, fhirBaseUrl: 'http://127.0.0.1:1/fhir/R4/' });
    await repo.updateResource<Project>({ resourceType: 'Project', id: projectId, name: 'Conflict', features: ['bots'] });
    const auth = new AuthService(repo, 'http://127.0.0.1:1/');
    const executor = new BotExecutor({ systemRepo: repo, binaries: new BinaryStorage(), auth, baseUrl: 'http://127.0.0.1:1/' });
    const client = await repo.createResource<ClientApplication>({ resourceType: 'ClientApplication', name: 'agent' });
    await repo.createResource<ProjectMembership>({
      resourceType: 'ProjectMembership',
      project: { reference: `Project/${projectId}` },
      user: createReference(client),
      profile: createReference(client),
    });
    const endpoint = await repo.createResource<Endpoint>({
      resourceType: 'Endpoint',
      status: 'active',
      connectionType: { code: 'hl7v2-mllp' },
      payloadType: [{ text: 'HL7v2' }],
      address: 'mllp://0.0.0.0:2575',
    });
    await repo.createResource<Agent>({
      resourceType: 'Agent',
      name: 'Conflicting',
      status: 'active',
      extension: [{ url: AGENT_CLIENT_EXTENSION, valueReference: createReference(client) }],
      channel: [{ name: 'busy', endpoint: createReference(endpoint), targetReference: { reference: 'Bot/unused' } }],
    });

    const occupier = createServer();
    await new Promise<void>((resolve) => occupier.listen(0, '127.0.0.1', resolve));
    const busyPort = (occupier.address() as AddressInfo).port;
    const logs: string[] = [];
    const bridge = new AgentBridge({ systemRepo: repo, executor, auth, mllpPort: () => busyPort, log: (l) => logs.push(l) });
    try {
      await bridge.start();
      expect(bridge.listeners()).toEqual([]);
      expect(logs.some((l) => l.startsWith('[HL7:busy]') && l.includes(`port ${busyPort} is already in use`))).toBe(true);
    } finally {
      await bridge.stop();
      await new Promise<void>((resolve) => occupier.close(() => resolve()));
    }
  });
});
