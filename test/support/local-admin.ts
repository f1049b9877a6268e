import { MedplumClient } from '@medplum/core';
import { LocalRuntime } from '../../src/local/runtime.ts';

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
