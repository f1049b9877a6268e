import type { WithId } from '@medplum/core';
import { badRequest, createReference, forbidden, notFound, OperationOutcomeError } from '@medplum/core';
import type {
  AccessPolicy,
  Binary,
  Bot,
  ClientApplication,
  Project,
  ProjectMembership,
  ProjectSetting,
  Reference,
} from '@medplum/fhirtypes';
import { randomBytes } from 'node:crypto';
import type { AuthState } from './auth.ts';
import type { BinaryStorage } from './binary-storage.ts';
import type { HubRepository } from './repo.ts';

/** The source a new Bot starts with, as on the stock server: a handler that does nothing. */
const DEFAULT_BOT_SOURCE = `import { BotEvent, MedplumClient } from '@medplum/core';

export async function handler(medplum: MedplumClient, event: BotEvent): Promise<any> {
  // Your code here
}
`;

/** Answer of an admin route: status and JSON body. */
export interface AdminResponse {
  readonly status: number;
  readonly body: unknown;
}

/** Dependencies of the admin API. */
export interface AdminApiOptions {
  /** A system repository whose writes land in the given project. */
  readonly repoForProject: (projectId: string) => HubRepository;
  readonly binaries: BinaryStorage;
}

/**
 * The subset of the stock server's `/admin/projects/:projectId/...` API that deploying bots and
 * clients needs: creating a Bot or ClientApplication together with its ProjectMembership (the only
 * way, on the stock server, to give it an identity of its own), reading and updating memberships,
 * and replacing project secrets. Callers must be project admins. As on the stock server the
 * `:projectId` in the path is ignored for project admins: their own project is used.
 */
export class AdminApi {
  private readonly options: AdminApiOptions;

  constructor(options: AdminApiOptions) {
    this.options = options;
  }

  /**
   * Routes one admin request.
   * @param auth - The caller.
   * @param method - HTTP method.
   * @param segments - Path segments after `admin/projects/`.
   * @param body - The parsed JSON body.
   * @returns The response.
   */
  async handle(auth: AuthState, method: string, segments: string[], body: unknown): Promise<AdminResponse> {
    if (!auth.membership.admin) {
      throw new OperationOutcomeError(forbidden);
    }
    // A super admin addresses any project by id; a project admin always gets their own.
    const project = auth.project.superAdmin
      ? await this.options.repoForProject(auth.project.id).readResource<Project>('Project', segments[0] ?? '')
      : auth.project;
    const [, resource, id] = segments;
    if (method === 'GET' && segments.length === 1) {
      return { status: 200, body: this.describeProject(project) };
    }
    if (method === 'POST' && resource === 'bot' && !id) {
      return { status: 201, body: await this.createBot(project, body as CreateBotRequest) };
    }
    if (method === 'POST' && resource === 'client' && !id) {
      return { status: 201, body: await this.createClient(project, body as CreateClientRequest) };
    }
    if (resource === 'members' && id && method === 'GET') {
      return { status: 200, body: await this.readMembership(project, id) };
    }
    if (resource === 'members' && id && method === 'POST') {
      return { status: 200, body: await this.updateMembership(project, id, body as ProjectMembership) };
    }
    if (resource === 'secrets' && method === 'POST') {
      return { status: 200, body: await this.setSecrets(project, body as ProjectSetting[]) };
    }
    throw new OperationOutcomeError(notFound);
  }

  /**
   * Creates a Bot with a membership of its own (user = profile = the Bot), and its default source.
   * @param project - The project.
   * @param request - Name, description, optional access policy and runtime.
   * @returns The Bot.
   */
  async createBot(project: WithId<Project>, request: CreateBotRequest): Promise<WithId<Bot>> {
    if (!request?.name) {
      throw new OperationOutcomeError(badRequest('Bot name is required'));
    }
    const { binaries } = this.options;
    const systemRepo = this.options.repoForProject(project.id);
    const source = await systemRepo.createResource<Binary>({ resourceType: 'Binary', contentType: 'text/typescript' });
    binaries.write(source.id, source.meta?.versionId as string, {
      contentType: 'text/typescript',
      data: Buffer.from(DEFAULT_BOT_SOURCE),
    });
    const bot = await systemRepo.createResource<Bot>({
      resourceType: 'Bot',
      name: request.name,
      description: request.description,
      runtimeVersion: request.runtimeVersion ?? 'vmcontext',
      sourceCode: { contentType: 'text/typescript', title: 'index.ts', url: 'Binary/' + source.id },
    });
    await this.createMembership(project, bot, request.accessPolicy, false);
    return bot;
  }

  /**
   * Creates a ClientApplication with a generated secret and a membership of its own.
   * @param project - The project.
   * @param request - Name, description, optional access policy.
   * @param fixed - Optional fixed id and secret (the runtime's own admin client from the environment).
   * @param fixed.id - The client id.
   * @param fixed.secret - The client secret.
   * @param admin - Whether the membership is a project admin.
   * @returns The ClientApplication, secret included.
   */
  async createClient(
    project: WithId<Project>,
    request: CreateClientRequest,
    fixed?: { id?: string; secret?: string },
    admin?: boolean
  ): Promise<WithId<ClientApplication>> {
    if (!request?.name) {
      throw new OperationOutcomeError(badRequest('Client name is required'));
    }
    const systemRepo = this.options.repoForProject(project.id);
    const draft: ClientApplication = {
      resourceType: 'ClientApplication',
      id: fixed?.id,
      name: request.name,
      description: request.description,
      redirectUri: request.redirectUri,
      secret: fixed?.secret ?? randomBytes(32).toString('hex'),
    };
    const client = fixed?.id
      ? await systemRepo.updateResource<ClientApplication>(draft as WithId<ClientApplication>)
      : await systemRepo.createResource<ClientApplication>(draft);
    await this.createMembership(project, client, request.accessPolicy, Boolean(admin));
    return client;
  }

  /**
   * Gives a Bot or ClientApplication its own identity in the project, as the stock admin API
   * does: a membership whose user and profile are the resource itself.
   */
  private async createMembership(
    project: WithId<Project>,
    profile: WithId<Bot> | WithId<ClientApplication>,
    accessPolicy: Reference<AccessPolicy> | undefined,
    admin: boolean
  ): Promise<void> {
    await this.options.repoForProject(project.id).createResource<ProjectMembership>({
      resourceType: 'ProjectMembership',
      project: createReference(project),
      user: createReference(profile) as Reference,
      profile: createReference(profile) as Reference,
      accessPolicy,
      admin: admin || undefined,
    } as ProjectMembership);
  }

  private describeProject(project: WithId<Project>): unknown {
    // The stock handler's shape (admin/project.ts): project settings only, no member list.
    return { project: { id: project.id, name: project.name, setting: project.setting, secret: project.secret, site: project.site } };
  }

  private async readMembership(project: WithId<Project>, id: string): Promise<WithId<ProjectMembership>> {
    const membership = await this.options.repoForProject(project.id).readResource<ProjectMembership>('ProjectMembership', id);
    if (membership.project?.reference !== 'Project/' + project.id) {
      throw new OperationOutcomeError(notFound);
    }
    return membership;
  }

  private async updateMembership(
    project: WithId<Project>,
    id: string,
    membership: ProjectMembership
  ): Promise<WithId<ProjectMembership>> {
    if (membership?.resourceType !== 'ProjectMembership' || membership.id !== id) {
      throw new OperationOutcomeError(badRequest('Body must be the ProjectMembership ' + id));
    }
    const existing = await this.readMembership(project, id);
    // The project, user and profile of a membership cannot be moved by a project admin.
    return this.options.repoForProject(project.id).updateResource<ProjectMembership>({
      ...membership,
      project: existing.project,
      user: existing.user,
      profile: existing.profile,
    } as WithId<ProjectMembership>);
  }

  private async setSecrets(project: WithId<Project>, secrets: ProjectSetting[]): Promise<WithId<Project>> {
    if (!Array.isArray(secrets)) {
      throw new OperationOutcomeError(badRequest('Body must be an array of ProjectSetting'));
    }
    // Like the stock route, this replaces the whole Project.secret array.
    return this.options.repoForProject(project.id).updateResource<Project>({ ...project, secret: secrets });
  }
}

/** Body of `POST admin/projects/:id/bot`. */
export interface CreateBotRequest {
  readonly name: string;
  readonly description?: string;
  readonly accessPolicy?: Reference<AccessPolicy>;
  readonly runtimeVersion?: Bot['runtimeVersion'];
}

/** Body of `POST admin/projects/:id/client`. */
export interface CreateClientRequest {
  readonly name: string;
  readonly description?: string;
  readonly redirectUri?: string;
  readonly accessPolicy?: Reference<AccessPolicy>;
}
