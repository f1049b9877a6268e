import { ensureTrailingSlash, MedplumClient } from '@medplum/core';

/** Where to deploy: a Medplum server and a project-admin ClientApplication of the hub's project. */
export interface TargetOptions {
  /** Server base URL, e.g. `http://localhost:8103/` (`MEDPLUM_BASE_URL`). */
  readonly baseUrl: string;
  /** `MEDPLUM_CLIENT_ID`. */
  readonly clientId: string;
  /** `MEDPLUM_CLIENT_SECRET`. */
  readonly clientSecret: string;
}

/** A logged-in client and the project it administers. */
export interface Target {
  readonly client: MedplumClient;
  readonly projectId: string;
  readonly baseUrl: string;
}

/**
 * Reads the target from the environment variables the Medplum CLI also reads.
 * @param env - The environment.
 * @returns The options, or an error message naming what is missing.
 */
export function targetFromEnv(env: NodeJS.ProcessEnv): TargetOptions | string {
  const baseUrl = env.MEDPLUM_BASE_URL;
  const clientId = env.MEDPLUM_CLIENT_ID;
  const clientSecret = env.MEDPLUM_CLIENT_SECRET;
  const missing = [
    ['MEDPLUM_BASE_URL', baseUrl],
    ['MEDPLUM_CLIENT_ID', clientId],
    ['MEDPLUM_CLIENT_SECRET', clientSecret],
  ]
    .filter(([, v]) => !v)
    .map(([k]) => k);
  if (missing.length) {
    return `Set ${missing.join(', ')} (or put them in .env) to say which Medplum server and client to deploy with`;
  }
  return { baseUrl: baseUrl as string, clientId: clientId as string, clientSecret: clientSecret as string };
}

/**
 * Logs in with client credentials and finds the client's project.
 * @param options - Server and credentials.
 * @returns The target.
 */
export async function connectTarget(options: TargetOptions): Promise<Target> {
  const baseUrl = ensureTrailingSlash(options.baseUrl);
  const client = new MedplumClient({ baseUrl, clientId: options.clientId });
  await client.startClientLogin(options.clientId, options.clientSecret);
  const projectId = client.getProject()?.id;
  if (!projectId) {
    throw new Error(`Logged in to ${baseUrl}, but the client belongs to no project`);
  }
  return { client, projectId, baseUrl };
}
