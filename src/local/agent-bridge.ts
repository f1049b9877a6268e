import type { WithId } from '@medplum/core';
import { ContentType, Hl7Message, normalizeErrorString } from '@medplum/core';
import type { Agent, AgentChannel, Bot, ClientApplication, Endpoint, ProjectMembership, Reference } from '@medplum/fhirtypes';
import type { Hl7ErrorEvent, Hl7MessageEvent } from '@medplum/hl7';
import { Hl7Connection } from '@medplum/hl7';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { AGENT_CLIENT_EXTENSION } from '../constants.ts';
import { hideValues } from '../fhir/strings.ts';
import type { AgentReply, AgentTransmitRequest } from './agent-messages.ts';
import type { PingCommand } from './agent-ping.ts';
import { pingHost } from './agent-ping.ts';
import type { AuthService } from './auth.ts';
import type { BotExecutor } from './bots/executor.ts';
import { DeviceClients } from './device-clients.ts';
import type { AppLevelAckMode, ChannelSettings, EnhancedMode } from './mllp-endpoint.ts';
import { APP_LEVEL_ACK_CODES, parseMllpAddress, shouldSendAppLevelAck } from './mllp-endpoint.ts';
import { MAX_SEARCH_COUNT } from './repo.ts';
import type { HubRepository } from './repo.ts';

/** The local runtime only ever binds loopback: devices reach it through the machine's own forwarding. */
export const MLLP_HOST = '127.0.0.1';

/** How long `stop()` and channel restarts let in-flight bot runs finish so their ACKs can still be written. */
export const DRAIN_TIMEOUT_MS = 2000;

/** Upper bound for closing a socket or a listener; `stop()` must never hang on a stuck peer. */
const CLOSE_TIMEOUT_MS = 1000;

/** Dependencies of the bridge, provided by the runtime. */
export interface AgentBridgeOptions {
  readonly systemRepo: HubRepository;
  readonly executor: BotExecutor;
  readonly auth: AuthService;
  /** Maps an Endpoint's configured MLLP port to the port to listen on (tests pass () => 0 for a free port). */
  readonly mllpPort?: (configuredPort: number) => number;
  /** The ping behind `x-application/ping` pushes; the operating system's `ping` by default. */
  readonly ping?: PingCommand;
  /** Idle time before an outbound device connection without keepAlive is closed (tests shorten it). */
  readonly deviceIdleTimeoutMs?: number;
  readonly log?: (message: string) => void;
}

/** One open MLLP listener, as reported by {@link AgentBridge.listeners}. */
export interface MllpListener {
  readonly agentId: string;
  readonly agentName?: string;
  readonly channel: string;
  readonly endpointId: string;
  /** The Endpoint's configured address (only its port and query parameters are used). */
  readonly address: string;
  /** The interface actually bound: always loopback. */
  readonly host: string;
  /** The port actually bound. */
  readonly port: number;
  readonly enhancedMode?: EnhancedMode;
  readonly appLevelAck: AppLevelAckMode;
  readonly encoding: string;
}

/** A channel the Agent/Endpoint configuration asks for. */
interface DesiredChannel {
  readonly name: string;
  readonly endpoint: WithId<Endpoint>;
  readonly settings: ChannelSettings;
}

/** What the stock server answers an `agent:transmit:request` with. */
interface TransmitResponse {
  readonly statusCode: number;
  readonly body: string;
}

/** One running HL7 channel: a loopback listener and its connections, keyed by remote `ip:port`. */
interface RunningChannel {
  readonly key: string;
  readonly agentId: string;
  readonly name: string;
  agentName?: string;
  /** Agent.status at the last (re)load: the stock agent drops server responses unless it is 'active'. */
  agentStatus?: string;
  endpointId: string;
  settings: ChannelSettings;
  readonly server: Server;
  readonly port: number;
  readonly connections: Map<string, Hl7Connection>;
  readonly inFlight: Set<Promise<void>>;
  /** Last MSH-13 assigned; the stock agent starts at -1 so the first message gets 0. */
  lastSeqNo: number;
}

/**
 * The local runtime's stand-in for the Medplum Agent's HL7 channels plus the server side of the
 * agent WebSocket. Each `mllp://` channel of an active Agent gets a loopback MLLP listener; every
 * received message runs the channel's target Bot as the agent's ClientApplication membership, and
 * the bot's answer is written back to the sending connection under the stock agent's rules
 * (status >= 400 and non-HL7 answers are dropped, enhanced mode and `appLevelAck` decide which
 * application ACKs are forwarded). Outbound, {@link push} is the agent's side of `Agent/$push`.
 */
export class AgentBridge {
  private readonly options: AgentBridgeOptions;
  private readonly channels = new Map<string, RunningChannel>();
  /**
   * Each Agent as of its last (re)load: the stock agent checks its status and `keepAlive` against
   * the config it last read, not the stored Agent, until `$reload-config`.
   */
  private readonly loaded = new Map<string, WithId<Agent>>();
  private readonly devices: DeviceClients;
  /** Serialises start/reload/stop so two `$reload-config` calls never race on the same ports. */
  private lock: Promise<void> = Promise.resolve();

  constructor(options: AgentBridgeOptions) {
    this.options = options;
    this.devices = new DeviceClients({ log: options.log, idleTimeoutMs: options.deviceIdleTimeoutMs });
  }

  /** Opens the channels of every Agent whose status is not 'off'. */
  async start(): Promise<void> {
    await this.exclusive(async () => {
      for (const agent of await this.allAgents()) {
        await this.applyAgentLogged(agent.id, agent);
      }
    });
  }

  /**
   * `Agent/$reload-config`: re-reads the Agent(s) and their Endpoints, then starts, stops, rebinds
   * (port changed) or reconfigures (other settings changed) channels, as the stock agent does.
   * @param agentId - One Agent; all Agents (and every Agent with open channels) when omitted.
   */
  async reload(agentId?: string): Promise<void> {
    await this.exclusive(async () => {
      if (agentId) {
        await this.applyAgent(agentId, await this.readAgent(agentId));
        return;
      }
      const agents = await this.allAgents();
      const ids = new Set([...agents.map((a) => a.id), ...[...this.channels.values()].map((c) => c.agentId)]);
      for (const id of ids) {
        await this.applyAgentLogged(id, agents.find((a) => a.id === id));
      }
    });
  }

  /** Closes every listener and connection. Bounded: in-flight runs get {@link DRAIN_TIMEOUT_MS}. */
  async stop(): Promise<void> {
    await this.exclusive(async () => {
      await Promise.all([
        ...[...this.channels.values()].map((channel) => this.stopChannel(channel)),
        this.devices.close(),
      ]);
    });
  }

  /**
   * The stock agent's handling of an `agent:transmit:request` from `Agent/$push`: refused unless
   * the Agent's loaded status is 'active' (PING included: the server lets PING through for an
   * Agent that is 'off', the agent does not), PING runs the ping command, anything else is sent
   * to the device as HL7 ({@link DeviceClients.push}). The local runtime acts as an agent that is
   * always connected; an Agent never loaded (created after start, no `$reload-config` yet) is
   * taken as stored, as an agent starting now would read it.
   * @param agent - The Agent as the server read it.
   * @param request - The push.
   * @returns The agent's reply, or undefined when it drops the push without answering.
   */
  async push(agent: WithId<Agent>, request: AgentTransmitRequest): Promise<AgentReply | undefined> {
    const config = this.loaded.get(agent.id) ?? agent;
    if (config.status !== 'active') {
      this.log(`[push] Agent/${agent.id}: loaded Agent.status is '${config.status}', not 'active'; push to ${request.remote} refused`);
      return { statusCode: 400, contentType: ContentType.TEXT, body: 'Agent.status is currently set to off' };
    }
    if (request.contentType === ContentType.PING) {
      return pingHost(request.remote, request.body, this.options.ping);
    }
    return this.devices.push(agent.id, request.remote, request.body, keepAliveOf(config));
  }

  /** @returns The open listeners. */
  listeners(): MllpListener[] {
    return [...this.channels.values()].map((c) => ({
      agentId: c.agentId,
      agentName: c.agentName,
      channel: c.name,
      endpointId: c.endpointId,
      address: c.settings.address,
      host: (c.server.address() as AddressInfo | null)?.address ?? MLLP_HOST,
      port: c.port,
      enhancedMode: c.settings.enhancedMode,
      appLevelAck: c.settings.appLevelAck,
      encoding: c.settings.encoding,
    }));
  }

  private log(message: string): void {
    this.options.log?.(message);
  }

  private exclusive(fn: () => Promise<void>): Promise<void> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async allAgents(): Promise<WithId<Agent>[]> {
    const agents: WithId<Agent>[] = [];
    for (let offset = 0; ; offset += MAX_SEARCH_COUNT) {
      const bundle = await this.options.systemRepo.search<Agent>({ resourceType: 'Agent', count: MAX_SEARCH_COUNT, offset });
      const page = (bundle.entry ?? []).map((e) => e.resource as WithId<Agent>);
      agents.push(...page);
      if (page.length < MAX_SEARCH_COUNT) {
        return agents;
      }
    }
  }

  private async readAgent(agentId: string): Promise<WithId<Agent> | undefined> {
    try {
      return await this.options.systemRepo.readResource<Agent>('Agent', agentId);
    } catch (_err) {
      return undefined;
    }
  }

  /** One Agent's failure must not keep the other Agents' channels closed. */
  private async applyAgentLogged(agentId: string, agent: WithId<Agent> | undefined): Promise<void> {
    try {
      await this.applyAgent(agentId, agent);
    } catch (err) {
      this.log(`Agent/${agentId}: channels not (re)loaded: ${normalizeErrorString(err)}`);
    }
  }

  /**
   * Brings one Agent's running channels in line with its configuration.
   * @param agentId - The Agent id.
   * @param agent - The Agent as stored now; undefined when it was deleted.
   */
  private async applyAgent(agentId: string, agent: WithId<Agent> | undefined): Promise<void> {
    const previous = this.loaded.get(agentId);
    if (agent) {
      this.loaded.set(agentId, agent);
    } else {
      this.loaded.delete(agentId);
    }
    // As the stock agent: a keepAlive change resets its outbound connections.
    if (!agent || (previous && keepAliveOf(previous) !== keepAliveOf(agent))) {
      await this.devices.closeOwner(agentId);
    }
    const running = [...this.channels.values()].filter((c) => c.agentId === agentId);
    const desired = agent ? await this.desiredChannels(agent) : [];
    const wanted = new Map(desired.map((d) => [d.name, d]));

    // Stop removed channels and those whose port changed first, so their ports are free to reuse.
    const toStart: DesiredChannel[] = [];
    for (const channel of running) {
      const next = wanted.get(channel.name);
      if (!next) {
        await this.stopChannel(channel);
      } else if (next.settings.configuredPort !== channel.settings.configuredPort) {
        this.log(`[HL7:${channel.name}] address changed: ${channel.settings.address} => ${next.settings.address}; rebinding`);
        await this.stopChannel(channel);
        toStart.push(next);
      } else {
        this.reconfigure(channel, agent as WithId<Agent>, next);
      }
    }
    for (const next of desired) {
      if (!running.some((c) => c.name === next.name)) {
        toStart.push(next);
      }
    }
    for (const next of toStart) {
      await this.startChannel(agent as WithId<Agent>, next);
    }
  }

  /**
   * The channels an Agent asks for, after the stock agent's filters: nothing for status 'off',
   * nothing without a usable run-as identity (fail closed), Endpoints with status 'off' skipped,
   * and a second channel on an already used port rejected.
   * @param agent - The Agent.
   * @returns The channels to run.
   */
  private async desiredChannels(agent: WithId<Agent>): Promise<DesiredChannel[]> {
    const label = `Agent/${agent.id}${agent.name ? ` (${agent.name})` : ''}`;
    if (agent.status === 'off') {
      if (agent.channel?.length) {
        this.log(`${label}: status is 'off'; all channels are closed until it is set back to 'active'`);
      }
      return [];
    }
    if (!agent.channel?.length) {
      return [];
    }
    const runAs = await this.resolveRunAs(agent);
    if (typeof runAs === 'string') {
      this.log(`${label}: channels not opened: ${runAs}`);
      return [];
    }

    const desired: DesiredChannel[] = [];
    const ports = new Map<number, string>();
    for (const definition of agent.channel) {
      const prefix = `[HL7:${definition.name}]`;
      let endpoint: WithId<Endpoint>;
      try {
        endpoint = await this.options.systemRepo.readReference<Endpoint>(definition.endpoint as Reference<Endpoint>);
      } catch (err) {
        this.log(`${prefix} ${label}: cannot read ${definition.endpoint?.reference ?? 'endpoint'}: ${normalizeErrorString(err)}`);
        continue;
      }
      if (endpoint.status === 'off') {
        this.log(`${prefix} Endpoint/${endpoint.id} has status 'off'; channel not opened until it is set back to 'active'`);
        continue;
      }
      const settings = this.parseAddress(definition, endpoint);
      if (!settings) {
        continue;
      }
      const conflict = ports.get(settings.configuredPort);
      if (conflict !== undefined) {
        this.log(
          `${prefix} ${label}: rejected: channels '${conflict}' and '${definition.name}' both declare port ${settings.configuredPort}; only '${conflict}' is opened`
        );
        continue;
      }
      ports.set(settings.configuredPort, definition.name);
      desired.push({ name: definition.name, endpoint, settings });
    }
    return desired;
  }

  /**
   * Reads the channel settings from its Endpoint, logging why a channel cannot run here.
   * @param definition - The channel.
   * @param endpoint - Its Endpoint.
   * @returns The settings, or undefined when the channel cannot run.
   */
  private parseAddress(definition: AgentChannel, endpoint: WithId<Endpoint>): ChannelSettings | undefined {
    const prefix = `[HL7:${definition.name}] Endpoint/${endpoint.id}`;
    const parsed = parseMllpAddress(endpoint.address);
    for (const warning of parsed.warnings) {
      this.log(`${prefix}: ${warning}`);
    }
    if (!parsed.settings) {
      this.log(`${prefix}: ${parsed.error}; channel not opened`);
    }
    return parsed.settings;
  }

  /**
   * The identity inbound bots run as: on the stock server, the membership of the ClientApplication
   * the on-prem agent logged in with. The hub records that client on the Agent; without it there
   * is no faithful identity, so the bridge refuses to run rather than fall back to an admin.
   * @param agent - The Agent.
   * @returns The membership, or a description of what is missing.
   */
  private async resolveRunAs(agent: WithId<Agent>): Promise<WithId<ProjectMembership> | string> {
    const extension = agent.extension?.find((e) => e.url === AGENT_CLIENT_EXTENSION);
    const reference = extension?.valueReference?.reference;
    if (!extension) {
      return `the Agent has no extension ${AGENT_CLIENT_EXTENSION} (valueReference to the agent's ClientApplication)`;
    }
    if (!reference?.startsWith('ClientApplication/')) {
      return `extension ${AGENT_CLIENT_EXTENSION} must hold a valueReference to a ClientApplication (found ${reference ? `'${reference}'` : 'none'})`;
    }
    try {
      await this.options.systemRepo.readReference<ClientApplication>({ reference } as Reference<ClientApplication>);
    } catch (_err) {
      return `${reference} (named by ${AGENT_CLIENT_EXTENSION}) does not exist`;
    }
    const membership = await this.options.auth.findMembership({ reference });
    if (!membership) {
      return `${reference} has no ProjectMembership`;
    }
    return membership;
  }

  private async startChannel(agent: WithId<Agent>, desired: DesiredChannel): Promise<void> {
    const { name, settings } = desired;
    const prefix = `[HL7:${name}]`;
    const port = this.options.mllpPort ? this.options.mllpPort(settings.configuredPort) : settings.configuredPort;
    const server = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host: MLLP_HOST, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      // Hl7Server would retry EADDRINUSE forever; the bridge reports it and leaves the channel closed
      // so that start and $reload-config always complete.
      const code = (err as NodeJS.ErrnoException).code;
      const reason = code === 'EADDRINUSE' ? `port ${port} is already in use` : normalizeErrorString(err);
      this.log(`${prefix} cannot listen on ${MLLP_HOST}:${port}: ${reason}; channel not opened`);
      server.close();
      return;
    }

    const channel: RunningChannel = {
      key: `${agent.id}/${name}`,
      agentId: agent.id,
      name,
      agentName: agent.name,
      agentStatus: agent.status,
      endpointId: desired.endpoint.id,
      settings,
      server,
      port: (server.address() as AddressInfo).port,
      connections: new Map(),
      inFlight: new Set(),
      lastSeqNo: -1,
    };
    server.on('error', (err) => this.log(`${prefix} listener error: ${normalizeErrorString(err)}`));
    server.on('connection', (socket) => this.acceptConnection(channel, socket));
    this.channels.set(channel.key, channel);
    if (settings.messagesPerMin !== undefined) {
      this.log(`${prefix} throttling dispatch to ${settings.messagesPerMin} messages/min per connection`);
    }
    this.log(`${prefix} listening on ${MLLP_HOST}:${channel.port}`);
  }

  /** Applies new settings on the same port, to the channel and its open connections (no rebind). */
  private reconfigure(channel: RunningChannel, agent: WithId<Agent>, next: DesiredChannel): void {
    const previous = channel.settings;
    channel.agentName = agent.name;
    channel.agentStatus = agent.status;
    channel.endpointId = next.endpoint.id;
    channel.settings = next.settings;
    if (!next.settings.assignSeqNo) {
      channel.lastSeqNo = -1;
    }
    if (previous.address !== next.settings.address) {
      this.log(`[HL7:${channel.name}] reconfigured ${channel.connections.size} connection(s): ${previous.address} => ${next.settings.address}`);
      for (const connection of channel.connections.values()) {
        connection.setEncoding(next.settings.encoding);
        connection.setEnhancedMode(next.settings.enhancedMode === 'standard');
        connection.setMessagesPerMin(next.settings.messagesPerMin);
      }
    }
  }

  private acceptConnection(channel: RunningChannel, socket: Socket): void {
    const prefix = `[HL7:${channel.name}]`;
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const { settings } = channel;
    // @medplum/hl7 5.0.10's Hl7Connection takes a boolean: true auto-sends a CA on receipt
    // (stock 'standard' mode). The stock 'aaMode' immediate AA is sent by the listener below.
    const connection = new Hl7Connection(socket, settings.encoding, settings.enhancedMode === 'standard', {
      messagesPerMin: settings.messagesPerMin,
    });
    channel.connections.set(remote, connection);
    connection.addEventListener('message', (event: Hl7MessageEvent) => {
      if (channel.settings.enhancedMode === 'aaMode') {
        this.safeSend(channel, connection, event.message.buildAck({ ackCode: 'AA' }));
      }
      const run = this.handleMessage(channel, remote, event.message).catch((err: unknown) =>
        this.log(`${prefix} message handling failed: ${normalizeErrorString(err)}`)
      );
      channel.inFlight.add(run);
      void run.finally(() => channel.inFlight.delete(run));
    });
    connection.addEventListener('error', (event: Hl7ErrorEvent) => {
      this.log(`${prefix} connection ${remote} error: ${normalizeErrorString(event.error)}`);
    });
    connection.addEventListener('close', () => {
      // Only forget this connection; a reconnect from the same ip:port may already have replaced it.
      if (channel.connections.get(remote) === connection) {
        channel.connections.delete(remote);
      }
    });
  }

  /**
   * One received message: the stock agent forwards it to the server, the server runs the bot,
   * and the agent decides what to write back.
   */
  private async handleMessage(channel: RunningChannel, remote: string, message: Hl7Message): Promise<void> {
    const prefix = `[HL7:${channel.name}]`;
    const controlId = message.getSegment('MSH')?.getField(10)?.toString() || '(no MSH-10)';
    if (channel.settings.assignSeqNo) {
      channel.lastSeqNo += 1;
      message.getSegment('MSH')?.setField(13, String(channel.lastSeqNo));
    }
    let response: TransmitResponse;
    try {
      response = await this.transmit(channel, message.toString());
    } catch (err) {
      // The stock server answers agent:error; the agent logs it and the device gets nothing.
      this.log(`${prefix} message ${controlId}: ${hideValues(normalizeErrorString(err))}`);
      return;
    }
    this.sendToRemote(channel, remote, controlId, response);
  }

  /**
   * The server side of `agent:transmit:request` (`packages/server/src/agent/websockets.ts`): re-reads
   * the Agent and its channel, runs the target bot as the agent client's membership and turns the
   * result into the response body.
   * @param channel - The running channel.
   * @param body - The message as ER7.
   * @returns The status code and body the agent would receive.
   */
  private async transmit(channel: RunningChannel, body: string): Promise<TransmitResponse> {
    const requestTime = new Date().toISOString();
    const { systemRepo, executor } = this.options;
    const agent = await systemRepo.readResource<Agent>('Agent', channel.agentId);
    const definition = agent.channel?.find((c) => c.name === channel.name);
    if (!definition) {
      throw new Error('Channel not found');
    }
    const runAs = await this.resolveRunAs(agent);
    if (typeof runAs === 'string') {
      throw new Error(`no run-as identity: ${runAs}`);
    }
    let bot: WithId<Bot>;
    try {
      bot = await systemRepo.readReference<Bot>(definition.targetReference as Reference<Bot>);
    } catch (err) {
      throw new Error(`target bot ${definition.targetReference?.reference ?? '(none)'}: ${normalizeErrorString(err)}`, {
        cause: err,
      });
    }
    const result = await executor.execute({
      bot,
      runAs,
      input: Hl7Message.parse(body),
      contentType: ContentType.HL7_V2,
      agent,
      requestTime,
    });
    let responseBody: string;
    if (result.returnValue && !result.success) {
      responseBody = JSON.stringify(result.returnValue);
    } else if (result.returnValue) {
      responseBody = typeof result.returnValue === 'string' ? result.returnValue : JSON.stringify(result.returnValue);
    } else {
      responseBody = `Bot execution logs:\n${result.logResult}`;
    }
    return { statusCode: result.success ? 200 : 400, body: responseBody };
  }

  /**
   * The agent side of `agent:transmit:response` (`packages/agent/src/app.ts`, `hl7.ts` `sendToRemote`).
   */
  private sendToRemote(channel: RunningChannel, remote: string, controlId: string, response: TransmitResponse): void {
    const prefix = `[HL7:${channel.name}]`;
    if (channel.agentStatus !== 'active') {
      this.log(`${prefix} message ${controlId}: Agent/${channel.agentId} is not active (status '${channel.agentStatus ?? ''}'); response dropped`);
      return;
    }
    if (response.statusCode >= 400) {
      // The body is the bot's log or return value, which may quote the message: it stays in the
      // run's AuditEvent (the FHIR record), not in the process log.
      this.log(`${prefix} message ${controlId}: bot run failed (status ${response.statusCode}; its log is in the bot's AuditEvent); no ACK sent`);
      return;
    }
    let reply: Hl7Message;
    try {
      reply = Hl7Message.parse(response.body);
    } catch (_err) {
      this.log(`${prefix} message ${controlId}: Invalid HL7 message returned by the bot; no ACK sent (the bot must return an ACK)`);
      return;
    }
    const ackCode = reply.getSegment('MSA')?.getField(1)?.toString()?.toUpperCase();
    if (ackCode && APP_LEVEL_ACK_CODES.includes(ackCode) && !shouldSendAppLevelAck(channel.settings, ackCode)) {
      return;
    }
    const connection = channel.connections.get(remote);
    if (!connection) {
      this.log(`${prefix} message ${controlId}: sender ${remote} disconnected; ACK dropped`);
      return;
    }
    this.safeSend(channel, connection, reply);
  }

  private safeSend(channel: RunningChannel, connection: Hl7Connection, reply: Hl7Message): void {
    try {
      connection.send(reply);
    } catch (err) {
      this.log(`[HL7:${channel.name}] failed to write ACK: ${normalizeErrorString(err)}`);
    }
  }

  private async stopChannel(channel: RunningChannel): Promise<void> {
    if (this.channels.get(channel.key) !== channel) {
      return;
    }
    this.channels.delete(channel.key);
    // Stop accepting first, then give in-flight runs a moment to write their ACKs.
    const closed = new Promise<void>((resolve) => channel.server.close(() => resolve()));
    if (channel.inFlight.size > 0) {
      await withTimeout(Promise.allSettled([...channel.inFlight]), DRAIN_TIMEOUT_MS);
    }
    await Promise.all(
      [...channel.connections.values()].map((connection) => withTimeout(connection.close().catch(() => undefined), CLOSE_TIMEOUT_MS))
    );
    for (const connection of channel.connections.values()) {
      connection.socket.destroy();
    }
    channel.connections.clear();
    await withTimeout(closed, CLOSE_TIMEOUT_MS);
    this.log(`[HL7:${channel.name}] stopped (was listening on ${MLLP_HOST}:${channel.port})`);
  }
}

/**
 * @param agent - An Agent.
 * @returns Its `keepAlive` setting (persistent outbound connections), false when unset.
 */
function keepAliveOf(agent: Agent): boolean {
  return agent.setting?.find((setting) => setting.name === 'keepAlive')?.valueBoolean ?? false;
}

async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
