import type { WithId } from '@medplum/core';
import { MedplumClient } from '@medplum/core';
import type { ClientApplication, Parameters, Project, ProjectMembership, ProjectSetting } from '@medplum/fhirtypes';
import { MANAGED_TAG_SYSTEM } from '../constants.ts';
import { findManaged } from './managed.ts';

/** Features the hub needs in its project (a super admin must set them on a stock server). */
const REQUIRED_FEATURES: NonNullable<Project['features']> = ['bots', 'cron', 'transaction-bundles'];

/**
 * FHIR interaction quota per user per minute for the hub's project (`userFhirQuota`). A write costs
 * 100 points, so the stock default (50,000) allows about 8 writes a second per client; the agent's
 * client carries every inbound HL7 write (medplum-facts 12). 3,000,000 points allow about 500
 * writes a second per client, above what a 2-core server sustains, so the server, not the quota,
 * is the limit.
 */
export const HUB_USER_FHIR_QUOTA = 3_000_000;
/** Project-wide quota (`totalFhirQuota`): ten times the per-user quota, as the stock default ratio. */
export const HUB_TOTAL_FHIR_QUOTA = 10 * HUB_USER_FHIR_QUOTA;

/** Managed name of the hub's project-admin ClientApplication. */
const HUB_ADMIN_CLIENT_NAME = 'hub-admin';

/** Options of {@link bootstrapProject}. */
export interface BootstrapOptions {
  readonly baseUrl: string;
  /** Super-admin ClientApplication (seeded from `defaultSuperAdminClientId`/`Secret`). */
  readonly superAdminClientId: string;
  readonly superAdminClientSecret: string;
  /** Name of the hub's project; found by name, created when missing. */
  readonly projectName: string;
  readonly log?: (line: string) => void;
}

/** What bootstrap found or created. */
export interface BootstrapResult {
  readonly projectId: string;
  readonly projectCreated: boolean;
  /** Fields of the Project changed by this run (features, quotas). */
  readonly projectChanges: string[];
  readonly adminClientId: string;
  readonly adminClientSecret: string;
  readonly adminClientCreated: boolean;
}

/**
 * Prepares a fresh (or existing) stock Medplum server for the hub, idempotently, with
 * super-admin credentials: finds or creates the hub's project, makes sure it has the features
 * the hub needs and FHIR quotas sized for integration traffic (only a super admin may change
 * `Project.features` and `systemSetting`), and finds or creates the hub's project-admin
 * ClientApplication, which then deploys the hub.
 * @param options - Server, super-admin credentials, project name.
 * @returns The project and the admin client's credentials.
 */
export async function bootstrapProject(options: BootstrapOptions): Promise<BootstrapResult> {
  const log = options.log ?? ((): void => undefined);
  const client = new MedplumClient({ baseUrl: options.baseUrl, clientId: options.superAdminClientId });
  await client.startClientLogin(options.superAdminClientId, options.superAdminClientSecret);
  if (!client.getProject()?.superAdmin) {
    throw new Error('Bootstrap needs super-admin client credentials (MEDPLUM_SUPER_ADMIN_CLIENT_ID / _SECRET)');
  }

  let project = (await client.searchResources('Project', { name: options.projectName })).find(
    (p) => p.name === options.projectName
  );
  const projectCreated = !project;
  if (!project) {
    project = await createProject(client, options.projectName);
    log(`created Project ${project.name} (${project.id})`);
  }

  const { updated, changes } = withHubSettings(project);
  if (changes.length) {
    project = await client.updateResource(updated);
    log(`updated Project ${project.name}: ${changes.join(', ')}`);
  }
  const projectId = project.id as string;

  let admin = await findAdminClient(client, projectId);
  const adminClientCreated = !admin;
  if (!admin) {
    const created: WithId<ClientApplication> = await client.post(`admin/projects/${projectId}/client`, {
      name: 'Hub admin',
      description: 'Project admin client of the integration hub: deploys bots and managed resources',
    });
    admin = await client.updateResource<ClientApplication>({
      ...created,
      meta: { ...created.meta, tag: [{ system: MANAGED_TAG_SYSTEM, code: HUB_ADMIN_CLIENT_NAME }] },
    });
    log(`created ClientApplication Hub admin (${admin.id})`);
  }
  await ensureProjectAdmin(client, projectId, admin.id as string, log);
  return {
    projectId,
    projectCreated,
    projectChanges: changes,
    adminClientId: admin.id as string,
    adminClientSecret: admin.secret as string,
    adminClientCreated,
  };
}

/**
 * Adds the hub's features and quota settings to a Project, keeping everything else.
 * @param project - The project.
 * @returns The updated project and the names of what changed.
 */
function withHubSettings(project: Project): { updated: Project; changes: string[] } {
  const changes: string[] = [];
  const features = [...(project.features ?? [])];
  for (const feature of REQUIRED_FEATURES) {
    if (!features.includes(feature)) {
      features.push(feature);
      changes.push(`feature ${feature}`);
    }
  }
  const systemSetting: ProjectSetting[] = [...(project.systemSetting ?? [])];
  for (const [name, value] of [
    ['userFhirQuota', HUB_USER_FHIR_QUOTA],
    ['totalFhirQuota', HUB_TOTAL_FHIR_QUOTA],
  ] as const) {
    const existing = systemSetting.find((s) => s.name === name);
    if (!existing) {
      systemSetting.push({ name, valueInteger: value });
      changes.push(`systemSetting ${name}=${value}`);
    } else if ((existing.valueInteger ?? 0) < value) {
      existing.valueInteger = value;
      changes.push(`systemSetting ${name}=${value}`);
    }
  }
  return { updated: { ...project, features, systemSetting }, changes };
}

/**
 * Creates the project with the stock `Project/$init` operation (which also creates the project's
 * default client and patient access policy), falling back to a plain create on servers without it.
 */
async function createProject(client: MedplumClient, name: string): Promise<WithId<Project>> {
  try {
    const result = (await client.post(client.fhirUrl('Project', '$init'), {
      resourceType: 'Parameters',
      parameter: [{ name: 'name', valueString: name }],
    })) as Project | Parameters;
    if (result.resourceType === 'Project') {
      return result as WithId<Project>;
    }
    const returned = result.parameter?.find((p) => p.name === 'return')?.resource;
    if (returned?.resourceType === 'Project') {
      return returned as WithId<Project>;
    }
  } catch (_err) {
    // Older servers: fall through to a direct create, which super admins may do.
  }
  return client.createResource<Project>({ resourceType: 'Project', name, strictMode: true });
}

async function findAdminClient(client: MedplumClient, projectId: string): Promise<ClientApplication | undefined> {
  // A super admin sees the hub admin clients of every project on the server: keep this project's.
  const found = await findManaged(client, 'ClientApplication', HUB_ADMIN_CLIENT_NAME);
  return found.find((c) => c.meta?.project === projectId);
}

async function ensureProjectAdmin(client: MedplumClient, projectId: string, clientId: string, log: (line: string) => void): Promise<void> {
  const memberships = await client.searchResources('ProjectMembership', { profile: `ClientApplication/${clientId}` });
  const membership = memberships.find((m) => m.project?.reference === `Project/${projectId}`) as
    | WithId<ProjectMembership>
    | undefined;
  if (!membership) {
    throw new Error(`ClientApplication/${clientId} has no membership in Project/${projectId}`);
  }
  if (!membership.admin) {
    await client.updateResource<ProjectMembership>({ ...membership, admin: true });
    log(`made ClientApplication/${clientId} a project admin`);
  }
}
