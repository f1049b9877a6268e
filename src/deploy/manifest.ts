import { isResourceType } from '@medplum/core';
import type { Bot, Resource } from '@medplum/fhirtypes';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { listBots, readBuildManifest } from '../bots/build.ts';
import { BOT_NAME_SYSTEM } from '../constants.ts';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import type { ManagedRef } from './placeholders.ts';
import { findPlaceholders } from './placeholders.ts';

/** Folders whose JSON files are managed resources (one FHIR resource per file). */
const MANAGED_FOLDERS = ['access-policies', 'clients', 'seed', 'agent-config', 'subscriptions'] as const;

/** A resource the hub manages: its template (with placeholders) and where it came from. */
export interface ManagedResource {
  /** Unique per resource type; the file name without `.json`, or the bot folder name. */
  readonly name: string;
  readonly resourceType: string;
  /** Source file, relative to the project root. */
  readonly file: string;
  /** The resource as written in the file, placeholders unresolved, no id. */
  readonly template: Resource;
  /** Managed resources this one references; they are applied first. */
  readonly dependsOn: ManagedRef[];
  /** Environment variables it needs. */
  readonly env: string[];
  /** For bots: the built bundle. */
  readonly bundle?: BotBundle;
}

/** A built bot bundle ready to deploy. */
export interface BotBundle {
  /** Source entry point, relative to the project root, as the build manifest records it. */
  readonly source: string;
  readonly dist: string;
  readonly code: string;
  readonly version: string;
  readonly hash: string;
}

/** The hub's desired state. */
export interface DesiredState {
  readonly resources: ManagedResource[];
}

/**
 * Loads the desired state from a project folder: every `*.json` resource under the managed
 * folders, and every bot under `bots/` (its `bot.json`, when present, plus the built bundle).
 * Checks that names are unique per type, that ids are absent (ids belong to the target) and that
 * every `{{Type/name}}` placeholder names a managed resource.
 * @param root - Project root.
 * @returns The desired state, ordered so that dependencies come first.
 */
export async function loadDesiredState(root: string): Promise<DesiredState> {
  loadFhirDefinitions();
  const resources: ManagedResource[] = [];
  for (const folder of MANAGED_FOLDERS) {
    const dir = join(root, folder);
    if (!existsSync(dir)) {
      continue;
    }
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!entry.isFile() || !entry.name.endsWith('.json')) {
        continue;
      }
      const file = join(dir, entry.name);
      resources.push(toManaged(root, file, basename(entry.name, '.json'), await readJsonResource(file)));
    }
  }
  resources.push(...(await loadBots(root)));
  checkUnique(resources);
  checkReferences(resources);
  return { resources: orderByDependencies(resources) };
}

async function loadBots(root: string): Promise<ManagedResource[]> {
  const names = await listBots(root);
  if (names.length === 0) {
    return [];
  }
  const manifest = await readBuildManifest(root);
  const result: ManagedResource[] = [];
  for (const name of names) {
    const built = manifest?.bots.find((b) => b.name === name);
    if (!built || !existsSync(join(root, built.dist))) {
      throw new Error(`Bot ${name} is not built: run \`npm run build\` first`);
    }
    const definitionFile = join(root, 'bots', name, 'bot.json');
    const definition = existsSync(definitionFile) ? ((await readJsonResource(definitionFile)) as Bot) : undefined;
    if (definition && definition.resourceType !== 'Bot') {
      throw new Error(`${relative(root, definitionFile)} must hold a Bot resource`);
    }
    const template: Bot = {
      ...definition,
      resourceType: 'Bot',
      name: definition?.name ?? name,
      runtimeVersion: definition?.runtimeVersion ?? 'vmcontext',
      identifier: [
        ...(definition?.identifier ?? []).filter((i) => i.system !== BOT_NAME_SYSTEM),
        { system: BOT_NAME_SYSTEM, value: name },
      ],
    };
    const code = await readFile(join(root, built.dist), 'utf8');
    const managed = toManaged(root, definition ? definitionFile : join(root, built.source), name, template);
    result.push({ ...managed, bundle: { source: built.source, dist: built.dist, code, version: built.version, hash: built.hash } });
  }
  return result;
}

async function readJsonResource(file: string): Promise<Resource> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: invalid JSON (${(err as Error).message})`);
  }
  const resource = value as Resource;
  if (!resource || typeof resource !== 'object' || !isResourceType(resource.resourceType)) {
    throw new Error(`${file}: not a FHIR resource (missing or unknown resourceType)`);
  }
  if (resource.id) {
    throw new Error(`${file}: managed resources must not carry an id (ids are assigned by the target)`);
  }
  return resource;
}

function toManaged(root: string, file: string, name: string, template: Resource): ManagedResource {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new Error(`${relative(root, file)}: "${name}" is not a valid managed name (letters, digits, . _ -)`);
  }
  const { refs, env, invalid } = findPlaceholders(template);
  if (invalid.length) {
    throw new Error(`${relative(root, file)}: invalid placeholders ${invalid.join(', ')}`);
  }
  return { name, resourceType: template.resourceType, file: relative(root, file), template, dependsOn: refs, env };
}

function keyOf(ref: ManagedRef): string {
  return `${ref.resourceType}/${ref.name}`;
}

function checkUnique(resources: ManagedResource[]): void {
  const seen = new Map<string, string>();
  for (const r of resources) {
    const key = keyOf(r);
    const other = seen.get(key);
    if (other) {
      throw new Error(`Two managed resources are named ${key}: ${other} and ${r.file}`);
    }
    seen.set(key, r.file);
  }
}

function checkReferences(resources: ManagedResource[]): void {
  const keys = new Set(resources.map(keyOf));
  for (const r of resources) {
    for (const ref of r.dependsOn) {
      if (!keys.has(keyOf(ref))) {
        throw new Error(`${r.file}: {{${keyOf(ref)}}} does not name a managed resource`);
      }
    }
  }
}

/**
 * Orders resources so that every resource comes after the ones it references (stable otherwise).
 * @param resources - The resources.
 * @returns The ordered list.
 */
export function orderByDependencies(resources: ManagedResource[]): ManagedResource[] {
  const byKey = new Map(resources.map((r) => [keyOf(r), r]));
  const ordered: ManagedResource[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (r: ManagedResource, path: string[]): void => {
    const key = keyOf(r);
    if (state.get(key) === 'done') {
      return;
    }
    if (state.get(key) === 'visiting') {
      throw new Error(`Managed resources reference each other in a cycle: ${[...path, key].join(' -> ')}`);
    }
    state.set(key, 'visiting');
    for (const ref of r.dependsOn) {
      const dep = byKey.get(keyOf(ref));
      if (dep && dep !== r) {
        visit(dep, [...path, key]);
      }
    }
    state.set(key, 'done');
    ordered.push(r);
  };
  for (const r of resources) {
    visit(r, []);
  }
  return ordered;
}
