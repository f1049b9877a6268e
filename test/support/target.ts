import { MedplumClient } from '@medplum/core';
import { join } from 'node:path';
import { startHub } from '../../src/commands/start.ts';
import type { LocalRuntime } from '../../src/local/runtime.ts';

/** Where the end-to-end scenarios run. */
export interface E2eTarget {
  readonly kind: 'local' | 'stock';
  readonly baseUrl: string;
  /** Logged in as the hub's project admin client. */
  readonly client: MedplumClient;
  /** MLLP address of an agent channel by name, or a reason why the channel cannot be reached. */
  mllp(channel: string): { host: string; port: number } | { skip: string };
  /** Host a webhook receiver must bind so the target can reach it, or a reason to skip. */
  readonly receiverHost: string | { skip: string };
  /** The local runtime, when the target is local. */
  readonly runtime?: LocalRuntime;
  stop(): Promise<void>;
}

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Chooses the target: a stock Medplum server when `MEDPLUM_BASE_URL`, `MEDPLUM_CLIENT_ID` and
 * `MEDPLUM_CLIENT_SECRET` are set (the hub must have been deployed there with `npm run deploy`;
 * `HUB_E2E_AGENT_MLLP_HOST` and `HUB_E2E_AGENT_MLLP_PORT_<CHANNEL>` give the stock agent's channels
 * (`HUB_E2E_AGENT_MLLP_PORT` for northside-adt) and
 * `HUB_E2E_RECEIVER_HOST` an interface the server can reach), otherwise a fresh local runtime on
 * free loopback ports with the hub deployed into it by `npm start`'s own code path.
 * @param options - Extra environment for the local runtime's deploy (e.g. bot secrets).
 * @param options.env - Variables added to the process environment.
 * @param options.log - The local runtime's process log (and its deploy's lines); discarded by
 * default. A stock target's logs are the server's own and cannot be captured here.
 * @returns The target.
 */
export async function startE2eTarget(options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {}): Promise<E2eTarget> {
  const env = process.env;
  if (env.MEDPLUM_BASE_URL && env.MEDPLUM_CLIENT_ID && env.MEDPLUM_CLIENT_SECRET) {
    const client = new MedplumClient({ baseUrl: env.MEDPLUM_BASE_URL, clientId: env.MEDPLUM_CLIENT_ID });
    await client.startClientLogin(env.MEDPLUM_CLIENT_ID, env.MEDPLUM_CLIENT_SECRET);
    const mllpHost = env.HUB_E2E_AGENT_MLLP_HOST;
    return {
      kind: 'stock',
      baseUrl: env.MEDPLUM_BASE_URL,
      client,
      mllp: (channel) => {
        // HUB_E2E_AGENT_MLLP_PORT_<CHANNEL> per channel (e.g. _ACME_LAB); HUB_E2E_AGENT_MLLP_PORT for northside-adt.
        const name = `HUB_E2E_AGENT_MLLP_PORT_${channel.toUpperCase().replaceAll('-', '_')}`;
        const port = env[name] ?? (channel === 'northside-adt' ? env.HUB_E2E_AGENT_MLLP_PORT : undefined);
        return mllpHost && port
          ? { host: mllpHost, port: Number(port) }
          : { skip: `stock target: set HUB_E2E_AGENT_MLLP_HOST and ${name} to reach the stock agent's ${channel} channel` };
      },
      receiverHost: env.HUB_E2E_RECEIVER_HOST ?? {
        skip: 'stock target: set HUB_E2E_RECEIVER_HOST to an interface the Medplum server can reach for webhooks',
      },
      stop: async () => undefined,
    };
  }

  const localEnv: NodeJS.ProcessEnv = { ...env, ...options.env, MEDPLUM_CLIENT_ID: '', MEDPLUM_CLIENT_SECRET: '' };
  const runtime = await startHub({
    root: ROOT,
    env: localEnv,
    log: options.log ?? (() => undefined),
    version: 'e2e',
    port: 0,
    mllpPort: () => 0,
    subscriptionBackoffScale: 0.05,
  });
  const admin = runtime.adminCredentials;
  const client = new MedplumClient({ baseUrl: runtime.baseUrl, clientId: admin.clientId });
  await client.startClientLogin(admin.clientId, admin.clientSecret);
  return {
    kind: 'local',
    baseUrl: runtime.baseUrl,
    client,
    runtime,
    mllp: (channel) => {
      const listener = runtime.agents.listeners().find((l) => l.channel === channel);
      return listener ? { host: listener.host, port: listener.port } : { skip: `no local MLLP listener for channel ${channel}` };
    },
    receiverHost: '127.0.0.1',
    stop: () => runtime.stop(),
  };
}
