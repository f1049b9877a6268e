import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A bot entry of `medplum.config.json`, as the Medplum CLI reads it. */
export interface MedplumConfigBot {
  readonly name: string;
  readonly id: string;
  readonly source: string;
  readonly dist: string;
}

/**
 * Writes `medplum.config.json` so that `npx medplum bot deploy <name>` (and `bot save`) work for
 * the target the hub was last deployed to: each bot with its id there, its source and its bundle.
 * Other top-level keys of an existing file are kept.
 * @param root - Project root.
 * @param bots - Bots with their ids on the target.
 */
export async function writeMedplumConfig(root: string, bots: readonly MedplumConfigBot[]): Promise<void> {
  const file = join(root, 'medplum.config.json');
  const existing = existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>) : {};
  const sorted = [...bots].sort((a, b) => a.name.localeCompare(b.name));
  const config = { ...existing, bots: sorted.map(({ name, id, source, dist }) => ({ name, id, source, dist })) };
  await writeFile(file, JSON.stringify(config, undefined, 2) + '\n');
}
