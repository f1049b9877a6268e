import type { WithId } from '@medplum/core';
import { allOk, badRequest, created, forbidden, OperationOutcomeError } from '@medplum/core';
import { FhirRouter } from '@medplum/fhir-router';
import type { AccessPolicy, ClientApplication, Parameters, Project } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AdminApi } from './admin.ts';
import { AgentBridge } from './agent-bridge.ts';
import type { PingCommand } from './agent-ping.ts';
import type { AuthState } from './auth.ts';
import { AuthService } from './auth.ts';
import { BinaryStorage } from './binary-storage.ts';
import { BotExecutor } from './bots/executor.ts';
import { deployBot } from './bots/operations.ts';
import type { DeployBotBody } from './bots/operations.ts';
import { currentRequestContext } from './context.ts';
import { CronScheduler } from './cron.ts';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { DEFAULT_MAX_BODY_BYTES } from './http.ts';
import { HubRepository } from './repo.ts';
import { createRequestListener } from './server.ts';
import { ResourceStore } from './store.ts';
import { SubscriptionEngine } from './subscriptions.ts';

/** Features the hub's project needs: bots, cron bots and atomic transaction Bundles. */
export const HUB_PROJECT_FEATURES: Project['features'] = ['bots', 'cron', 'transaction-bundles'];

/** Options of {@link LocalRuntime}. */
export interface LocalRuntimeOptions {
  /** TCP port of the HTTP API; 0 picks a free one. Default 8103. */
  readonly port?: number;
  /** Interface to listen on; always loopback by default. */
  readonly host?: string;
  /** Fixed credentials for the admin ClientApplication (MEDPLUM_CLIENT_ID / MEDPLUM_CLIENT_SECRET). */
  readonly adminClientId?: string;
  readonly adminClientSecret?: string;
  /** Name of the hub's project. */
  readonly projectName?: string;
  /** JSON body limit, as the server's `maxJsonSize`. Default 1 MiB, the stock default. */
  readonly maxJsonSize?: number;
  /** Maps an Endpoint's MLLP port to the port to listen on (tests use `() => 0`). */
  readonly mllpPort?: (configuredPort: number) => number;
  /** The ping behind `Agent/$push` with `x-application/ping`; the operating system's `ping` by default. */
  readonly agentPing?: PingCommand;
  /** Idle time before an `Agent/$push` device connection without keepAlive closes; stock 10 s. */
  readonly deviceIdleTimeoutMs?: number;
  /** Scales subscription retry delays; 1 is the stock schedule. */
  readonly subscriptionBackoffScale?: number;
  /** Operational log lines (never PHI). */
  readonly log?: (message: string) => void;
  /** Reported by /healthcheck. */
  readonly version?: string;
  /**
   * Create the hub's project and admin client on start (default). Off, the runtime starts like a
   * fresh stock server: only the super-admin project, for `npm run bootstrap` to prepare.
   */
  readonly createHubProject?: boolean;
  /**
   * A super-admin ClientApplication, as the stock server seeds from `defaultSuperAdminClientId` /
   * `defaultSuperAdminClientSecret`: a member (admin) of a `superAdmin` project.
   */
  readonly superAdminClient?: { readonly clientId: string; readonly clientSecret: string };
}

/** The admin client the runtime created or reused on start. */
export interface AdminClientCredentials {
  readonly clientId: string;
  readonly clientSecret: string;
  /** True when the secret was generated (and must be shown to the operator). */
  readonly generated: boolean;
}

/**
 * The hub's local runtime: a Medplum-compatible server for one machine, built from Medplum's own
 * libraries (`@medplum/fhir-router` for REST, `@medplum/core` for validation, search matching,
 * subscription criteria and HL7, `@medplum/hl7` for MLLP). State lives in memory.
 */
export class LocalRuntime {
  readonly store = new ResourceStore();
  readonly binaries = new BinaryStorage();
  readonly router = new FhirRouter();
  readonly options: LocalRuntimeOptions;
  readonly version: string;
  readonly maxJsonSize: number;

  private server?: Server;
  private port = 0;
  private projectId = '';
  private adminClient?: AdminClientCredentials;
  /** Aborted on stop, so that calls still waiting (an `Agent/$push` reply) end. */
  private lifetime = new AbortController();
  private services?: {
    auth: AuthService;
    executor: BotExecutor;
    subscriptions: SubscriptionEngine;
    cron: CronScheduler;
    admin: AdminApi;
    agents: AgentBridge;
  };

  constructor(options: LocalRuntimeOptions = {}) {
    this.options = options;
    this.version = options.version ?? 'local';
    this.maxJsonSize = options.maxJsonSize ?? DEFAULT_MAX_BODY_BYTES;
  }

  /**
   * Starts the runtime: loads the FHIR definitions, listens on loopback, creates the hub's project
   * and admin client, and starts subscriptions, cron and the agent bridge.
   * @returns The runtime.
   */
  async start(): Promise<this> {
    loadFhirDefinitions();
    this.lifetime = new AbortController();
    const server = createServer(createRequestListener(this));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 8103, this.options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;

    const bootstrapRepo = this.systemRepoFor('bootstrap');
    const auth = new AuthService(bootstrapRepo, this.baseUrl);
    const executor = new BotExecutor({ systemRepo: bootstrapRepo, binaries: this.binaries, auth, baseUrl: this.baseUrl });
    const log = this.options.log;
    const subscriptions = new SubscriptionEngine({
      systemRepo: bootstrapRepo,
      executor,
      auth,
      binaries: this.binaries,
      baseUrl: this.baseUrl,
      backoffScale: this.options.subscriptionBackoffScale,
      log,
    });
    const cron = new CronScheduler({ systemRepo: bootstrapRepo, executor, auth, log });
    const admin = new AdminApi({ repoForProject: (id) => this.systemRepoFor(id), binaries: this.binaries });
    const agents = new AgentBridge({
      systemRepo: bootstrapRepo,
      executor,
      auth,
      mllpPort: this.options.mllpPort,
      ping: this.options.agentPing,
      deviceIdleTimeoutMs: this.options.deviceIdleTimeoutMs,
      log,
    });
    this.services = { auth, executor, subscriptions, cron, admin, agents };

    this.registerOperations();
    if (this.options.superAdminClient) {
      await this.createSuperAdminProject(this.options.superAdminClient);
    }
    if (this.options.createHubProject !== false) {
      await this.bootstrapProject();
    }
    this.store.onCommit((changes) => subscriptions.onCommit(changes));
    this.store.onCommit((changes) => cron.onCommit(changes));
    await cron.start();
    await agents.start();
    return this;
  }

  /** Stops listening and cancels background work. */
  async stop(): Promise<void> {
    this.lifetime.abort();
    this.services?.subscriptions.stop();
    this.services?.cron.stop();
    await this.services?.agents.stop();
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** @returns A signal aborted when the runtime stops. */
  get stopSignal(): AbortSignal {
    return this.lifetime.signal;
  }

  /** @returns The server base URL, ending with a slash, e.g. `http://127.0.0.1:8103/`. */
  get baseUrl(): string {
    return `http://${this.options.host ?? '127.0.0.1'}:${this.port}/`;
  }

  /** @returns The FHIR base URL, e.g. `http://127.0.0.1:8103/fhir/R4/`. */
  get fhirBaseUrl(): string {
    return this.baseUrl + 'fhir/R4/';
  }

  /** @returns The hub project's id. */
  get hubProjectId(): string {
    return this.projectId;
  }

  /** @returns The admin client's credentials. */
  get adminCredentials(): AdminClientCredentials {
    return this.required(this.adminClient);
  }

  get auth(): AuthService {
    return this.required(this.services).auth;
  }

  get executor(): BotExecutor {
    return this.required(this.services).executor;
  }

  get subscriptions(): SubscriptionEngine {
    return this.required(this.services).subscriptions;
  }

  get cron(): CronScheduler {
    return this.required(this.services).cron;
  }

  get admin(): AdminApi {
    return this.required(this.services).admin;
  }

  get agents(): AgentBridge {
    return this.required(this.services).agents;
  }

  /**
   * @param auth - The caller.
   * @returns A repository that writes as the caller.
   */
  repoFor(auth: AuthState): HubRepository {
    return new HubRepository(this.store, {
      author: auth.profile,
      projectId: auth.project.id,
      fhirBaseUrl: this.fhirBaseUrl,
      superAdmin: Boolean(auth.project.superAdmin),
      accessPolicy: auth.accessPolicy,
    });
  }

  /** @returns A repository for the runtime's own writes (AuditEvents, bootstrap), authored by `system`. */
  systemRepo(): HubRepository {
    return this.systemRepoFor(this.projectId);
  }

  /**
   * The body of `GET /auth/me`, in the stock server's shape.
   * @param auth - The caller.
   * @returns Project, membership, profile and access policy.
   */
  async describeSession(auth: AuthState): Promise<Record<string, unknown>> {
    const repo = this.systemRepo();
    const profile = await repo.readReference(auth.profile);
    const accessPolicy = auth.membership.accessPolicy
      ? await repo.readReference<AccessPolicy>(auth.membership.accessPolicy).catch(() => undefined)
      : undefined;
    return {
      project: {
        resourceType: 'Project',
        id: auth.project.id,
        name: auth.project.name,
        strictMode: auth.project.strictMode,
        superAdmin: auth.project.superAdmin,
      },
      membership: {
        resourceType: 'ProjectMembership',
        id: auth.membership.id,
        user: auth.membership.user,
        profile: auth.membership.profile,
        admin: auth.membership.admin,
      },
      profile,
      config: { resourceType: 'UserConfiguration' },
      accessPolicy,
    };
  }

  /**
   * @param projectId - The project new resources go to; empty for the hub's project (known only
   * after bootstrap, so resolved lazily).
   * @returns A system repository: it sees every project, like the stock server's system repo.
   */
  private systemRepoFor(projectId: string): HubRepository {
    const self = this;
    return new HubRepository(this.store, {
      author: { reference: 'system' },
      get projectId() {
        return projectId || self.projectId;
      },
      fhirBaseUrl: this.fhirBaseUrl,
    });
  }

  private registerOperations(): void {
    this.router.add('POST', 'Bot/:id/$deploy', async (req, repo) => {
      const auth = currentRequestContext()?.auth;
      if (!auth) {
        throw new OperationOutcomeError(badRequest('Not authenticated'));
      }
      const outcome = await deployBot(
        repo as HubRepository,
        this.systemRepoFor(auth.project.id),
        this.binaries,
        auth.project,
        req.params.id,
        req.body as DeployBotBody
      );
      return [outcome];
    });
    const reload = async (agentId?: string): Promise<[typeof allOk]> => {
      await this.agents.reload(agentId);
      return [allOk];
    };
    this.router.add('GET', 'Agent/:id/$reload-config', async (req, repo) => {
      await repo.readResource('Agent', req.params.id);
      return reload(req.params.id);
    });
    this.router.add('GET', 'Agent/$reload-config', async () => reload());
    this.router.add('POST', 'Project/$init', async (req) => {
      const auth = currentRequestContext()?.auth;
      if (!auth?.project.superAdmin) {
        throw new OperationOutcomeError(forbidden);
      }
      const name = (req.body as Parameters | undefined)?.parameter?.find((p) => p.name === 'name')?.valueString;
      if (!name) {
        throw new OperationOutcomeError(badRequest('Missing name'));
      }
      return [created, await this.initProject(name)];
    });
  }

  /**
   * `Project/$init` as on the stock server: a new project (strict mode, no features) with its
   * default ClientApplication.
   * @param name - Project name.
   * @returns The project.
   */
  private async initProject(name: string): Promise<WithId<Project>> {
    const projectId = randomUUID();
    const project = await this.systemRepoFor(projectId).updateResource<Project>({
      resourceType: 'Project',
      id: projectId,
      name,
      strictMode: true,
    });
    await this.admin.createClient(project, { name: `${name} Default Client`, description: `Default client for ${name}` });
    return project;
  }

  private async createSuperAdminProject(client: { clientId: string; clientSecret: string }): Promise<void> {
    const projectId = randomUUID();
    const project = await this.systemRepoFor(projectId).updateResource<Project>({
      resourceType: 'Project',
      id: projectId,
      name: 'Super Admin',
      superAdmin: true,
      strictMode: true,
    });
    await this.admin.createClient(
      project,
      { name: 'Default Super Admin Client' },
      { id: client.clientId, secret: client.clientSecret },
      true
    );
  }

  /**
   * Creates the hub's project and its admin ClientApplication on first start, or reuses them.
   * With MEDPLUM_CLIENT_ID / MEDPLUM_CLIENT_SECRET given, the admin client has exactly those.
   */
  private async bootstrapProject(): Promise<void> {
    const repo = this.systemRepoFor('');
    const projectName = this.options.projectName ?? 'Integration Hub';
    let project = (await repo.searchResources<Project>({ resourceType: 'Project', count: 1000 })).find(
      (p) => !p.superAdmin && p.name === projectName
    );
    if (!project) {
      const projectId = repo.generateId();
      project = await this.systemRepoFor(projectId).updateResource<Project>({
        resourceType: 'Project',
        id: projectId,
        name: projectName,
        strictMode: true,
        features: HUB_PROJECT_FEATURES,
      });
    }
    this.projectId = project.id;

    const { adminClientId, adminClientSecret } = this.options;
    const existing = adminClientId
      ? await repo.readResource<ClientApplication>('ClientApplication', adminClientId).catch(() => undefined)
      : undefined;
    if (existing) {
      if (adminClientSecret && existing.secret !== adminClientSecret) {
        await this.systemRepo().updateResource<ClientApplication>({ ...existing, secret: adminClientSecret });
      }
      this.adminClient = { clientId: existing.id, clientSecret: adminClientSecret ?? (existing.secret as string), generated: false };
      return;
    }
    const client = await this.admin.createClient(
      project as WithId<Project>,
      { name: 'Hub admin', description: 'Project admin client of the local runtime (deploys the hub)' },
      { id: adminClientId, secret: adminClientSecret },
      true
    );
    this.adminClient = { clientId: client.id, clientSecret: client.secret as string, generated: !adminClientSecret };
  }

  private required<T>(value: T | undefined): T {
    if (value === undefined) {
      throw new Error('LocalRuntime is not started');
    }
    return value;
  }
}

