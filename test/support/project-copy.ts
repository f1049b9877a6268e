import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Copies the hub's project (sources, bots and managed resources) into a temporary folder, so a
 * test can deploy from it, edit it and let deploy write `medplum.config.json` and `.env` there
 * without touching the repository.
 * @returns The folder and a function that removes it.
 */
export async function copyProject(): Promise<{ root: string; remove: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'hub-project-'));
  for (const entry of ['src', 'bots', 'access-policies', 'agent-config', 'seed', 'subscriptions', 'clients', 'project-secrets.json', 'package.json', '.env.example']) {
    await cp(join(ROOT, entry), join(root, entry), { recursive: true });
  }
  return { root, remove: () => rm(root, { recursive: true, force: true }) };
}
