import type { Agent, ClientApplication, Reference } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { AGENT_CLIENT_EXTENSION } from '../constants.ts';
import { bootstrapProject } from '../deploy/bootstrap.ts';
import { updateEnvFile } from '../deploy/env-file.ts';
import { connectTarget } from '../deploy/target.ts';
import { runDeploy } from './deploy.ts';

/** Options of {@link runBootstrap}. */
export interface RunBootstrapOptions {
  readonly root: string;
  readonly env: NodeJS.ProcessEnv;
  readonly log: (line: string) => void;
  /** Where to record the created credentials; `.env` in the project root by default. */
  readonly envFile?: string;
}

/**
 * `npm run bootstrap`: with the super-admin client of a stock stack, creates or finds the hub's
 * project (features, quotas) and its admin client, deploys the hub with that client, and records
 * in `.env` what the next steps need: the admin client (`MEDPLUM_CLIENT_ID`/`_SECRET`, for
 * `npm run deploy` and the Medplum CLI) and the agent's id and client (for the `agent` profile).
 * Running it again changes nothing.
 * @param options - Root, environment, output.
 */
export async function runBootstrap(options: RunBootstrapOptions): Promise<void> {
  const { env, log } = options;
  const baseUrl = env.MEDPLUM_BASE_URL;
  const superAdminClientId = env.MEDPLUM_SUPER_ADMIN_CLIENT_ID;
  const superAdminClientSecret = env.MEDPLUM_SUPER_ADMIN_CLIENT_SECRET;
  if (!baseUrl || !superAdminClientId || !superAdminClientSecret) {
    throw new Error('Set MEDPLUM_BASE_URL, MEDPLUM_SUPER_ADMIN_CLIENT_ID and MEDPLUM_SUPER_ADMIN_CLIENT_SECRET (npm run env:init writes them to .env)');
  }
  const result = await bootstrapProject({
    baseUrl,
    superAdminClientId,
    superAdminClientSecret,
    projectName: env.HUB_PROJECT_NAME || 'Integration Hub',
    log,
  });
  log(`Project ${result.projectId}: ${result.projectCreated ? 'created' : 'found'}; admin client ${result.adminClientId}: ${result.adminClientCreated ? 'created' : 'found'}`);

  const target = await connectTarget({ baseUrl, clientId: result.adminClientId, clientSecret: result.adminClientSecret });
  await runDeploy(target, { root: options.root, dryRun: false, writeConfig: true, env, log });

  const updates: Record<string, string> = {
    MEDPLUM_CLIENT_ID: result.adminClientId,
    MEDPLUM_CLIENT_SECRET: result.adminClientSecret,
  };
  const agents = await target.client.searchResources('Agent', {});
  if (agents.length === 1) {
    const agent = agents[0] as Agent;
    updates.MEDPLUM_AGENT_ID = agent.id as string;
    const clientRef = agent.extension?.find((e) => e.url === AGENT_CLIENT_EXTENSION)?.valueReference;
    if (clientRef?.reference?.startsWith('ClientApplication/')) {
      const agentClient = await target.client.readReference(clientRef as Reference<ClientApplication>);
      updates.MEDPLUM_AGENT_CLIENT_ID = agentClient.id as string;
      updates.MEDPLUM_AGENT_CLIENT_SECRET = agentClient.secret as string;
    }
  }
  const envFile = options.envFile ?? join(options.root, '.env');
  await updateEnvFile(envFile, updates);
  log(`Recorded ${Object.keys(updates).join(', ')} in ${envFile}`);
}
