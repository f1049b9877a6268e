import { MedplumClient } from '@medplum/core';
import { LocalRuntime } from '../../src/local/runtime.ts';
import { afterAll, beforeAll } from 'vitest';

/** A local runtime on free ports with a client signed in as its admin ClientApplication. */
export interface LocalAdmin {
  readonly runtime: LocalRuntime;
  readonly medplum: MedplumClient;
}

/**
 * Starts a local runtime for a test file (stop it in `afterAll`) and signs in as its admin.
 * @returns The runtime and the admin's client.
 */
export async function startLocalAdmin(): Promise<LocalAdmin> {
  const runtime = await new LocalRuntime({ port: 0, mllpPort: () => 0 }).start();
  const medplum = new MedplumClient({ baseUrl: runtime.baseUrl });
  await medplum.startClientLogin(runtime.adminCredentials.clientId, runtime.adminCredentials.clientSecret);
  return { runtime, medplum };
}

/**
 * Registers `beforeAll`/`afterAll` hooks that start a local runtime for the calling test file,
 * signed in as its admin, and stop it afterwards.
 * @returns The runtime and client, filled in once the hooks have run.
 */
export function useLocalAdmin(): LocalAdmin {
  const admin = {} as { runtime: LocalRuntime; medplum: MedplumClient };
  beforeAll(async () => {
    Object.assign(admin, await startLocalAdmin());
  });
  afterAll(async () => {
    await admin.runtime?.stop();
  });
  return admin;
}
