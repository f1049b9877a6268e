import { buildBots } from '../bots/build.ts';
import { connectTarget } from '../deploy/target.ts';
import { LocalRuntime } from '../local/runtime.ts';
import { runDeploy } from './deploy.ts';
import type { ProgressSettings } from './progress.ts';

/** Options of {@link startHub}. */
export interface StartHubOptions {
  readonly root: string;
  readonly env: NodeJS.ProcessEnv;
  readonly log: (line: string) => void;
  readonly version: string;
  /** Overrides HUB_PORT (tests use 0). */
  readonly port?: number;
  /** Maps configured MLLP ports (tests use `() => 0`). */
  readonly mllpPort?: (configuredPort: number) => number;
  readonly subscriptionBackoffScale?: number;
  /** Where the deploy's running count goes (default: stderr). */
  readonly progress?: ProgressSettings;
}

/**
 * `npm start`: builds the bots, starts the local runtime on 127.0.0.1 (`HUB_PORT`, default 8103),
 * deploys the hub's managed resources and bots into it over its own HTTP API (the same deploy
 * that targets a stock server), and prints what is listening.
 * @param options - Root folder, environment, output.
 * @returns The running runtime.
 */
export async function startHub(options: StartHubOptions): Promise<LocalRuntime> {
  const { env, log } = options;
  await buildBots(options.root);
  const port = options.port ?? (env.HUB_PORT ? Number.parseInt(env.HUB_PORT, 10) : 8103);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`HUB_PORT must be a TCP port number, got ${env.HUB_PORT}`);
  }
  const runtime = await new LocalRuntime({
    port,
    adminClientId: env.MEDPLUM_CLIENT_ID || undefined,
    adminClientSecret: env.MEDPLUM_CLIENT_SECRET || undefined,
    maxJsonSize: env.HUB_MAX_JSON_SIZE ? Number.parseInt(env.HUB_MAX_JSON_SIZE, 10) : undefined,
    mllpPort: options.mllpPort,
    subscriptionBackoffScale: options.subscriptionBackoffScale,
    version: options.version,
    log,
  }).start();
  try {
    const admin = runtime.adminCredentials;
    const target = await connectTarget({ baseUrl: runtime.baseUrl, clientId: admin.clientId, clientSecret: admin.clientSecret });
    await runDeploy(target, { root: options.root, dryRun: false, writeConfig: false, skipBuild: true, env, log, progress: options.progress });
  } catch (err) {
    await runtime.stop();
    throw err;
  }
  return runtime;
}

/**
 * @param runtime - A started runtime.
 * @returns The lines printed after start: endpoints, MLLP channels and the admin client.
 */
export function describeRuntime(runtime: LocalRuntime): string[] {
  const admin = runtime.adminCredentials;
  const lines = [
    `Hub local runtime listening (state is in memory and is lost when it stops)`,
    `  FHIR base URL:   ${runtime.fhirBaseUrl}`,
    `  OAuth2 token:    ${runtime.baseUrl}oauth2/token`,
    `  Health:          ${runtime.baseUrl}healthcheck`,
    `  Status page:     ${runtime.baseUrl}hub/status  (log in with a client id and secret, e.g. the ops client's)`,
  ];
  for (const listener of runtime.agents.listeners()) {
    lines.push(`  MLLP ${listener.channel.padEnd(14)} ${listener.host}:${listener.port}  (Agent ${listener.agentName ?? listener.agentId})`);
  }
  lines.push(`  Admin client id: ${admin.clientId}`);
  lines.push(
    admin.generated
      ? `  Admin secret:    ${admin.clientSecret}  (generated; set MEDPLUM_CLIENT_ID/MEDPLUM_CLIENT_SECRET to fix them)`
      : `  Admin secret:    (from MEDPLUM_CLIENT_SECRET)`
  );
  return lines;
}
