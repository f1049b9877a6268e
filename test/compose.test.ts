/**
 * Checks docker-compose.yml.
 *
 * Always: every MLLP Endpoint in agent-config/ has its port published by the
 * medplum-agent service (the agent listens on the Endpoint's port inside its container).
 *
 * When a `docker-compose` binary or the `docker compose` plugin is installed: the file
 * validates with a .env written by the hub's own generator, images are pinned, data
 * lives on named volumes, the services have healthchecks, the agent sits behind the
 * `agent` profile, and the multi-line signing key survives the trip through .env.
 * No Docker engine is needed; `config` only parses and interpolates.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateDockerEnv, renderEnvFile } from '../src/deploy/env-file.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const composeFile = join(root, 'docker-compose.yml');
const composeText = readFileSync(composeFile, 'utf8');

/** The compose command available here: `docker-compose` (1.29) or `docker compose` (v2). */
const compose = findCompose();
const composeName = compose ? compose.join(' ') : 'docker compose';
/** The checks that need compose itself (interpolating .env) say why they are skipped without it. */
const skipNote = compose ? '' : ' (skipped: needs docker-compose to interpolate .env, and none is installed here)';

function findCompose(): string[] | undefined {
  for (const command of [['docker-compose'], ['docker', 'compose']]) {
    const result = spawnSync(command[0], [...command.slice(1), 'version'], { encoding: 'utf8', timeout: 30_000 });
    if (result.status === 0) {
      return command;
    }
  }
  return undefined;
}

/** Lines of the block under the first `key:` line (YAML text, judged by indentation). */
function blockOf(lines: string[], key: string): string[] {
  const start = lines.findIndex((line) => new RegExp(`^(\\s*)${escapeRe(key)}:\\s*(#.*)?$`).test(line));
  if (start === -1) {
    return [];
  }
  const keyIndent = indentOf(lines[start]);
  const block: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '' || line.trim().startsWith('#')) {
      continue;
    }
    const indent = indentOf(line);
    // YAML allows list items at the same indent as their key.
    if (indent > keyIndent || (indent === keyIndent && line.trim().startsWith('- '))) {
      block.push(line);
    } else {
      break;
    }
  }
  return block;
}

/** The block of one service under the top-level `services:` key. */
function serviceBlock(text: string, service: string): string[] {
  const services = blockOf(text.split(/\r?\n/), 'services');
  if (services.length === 0) {
    return [];
  }
  const childIndent = indentOf(services[0]);
  const start = services.findIndex((line) => indentOf(line) === childIndent && line.trim() === `${service}:`);
  if (start === -1) {
    return [];
  }
  const block: string[] = [];
  for (const line of services.slice(start + 1)) {
    if (indentOf(line) <= childIndent) {
      break;
    }
    block.push(line);
  }
  return block;
}

/** The items of a list under `key:` within a block, without quotes and trailing comments. */
function listItems(block: string[], key: string): string[] {
  return blockOf(block, key)
    .filter((line) => line.trim().startsWith('- '))
    .map((line) =>
      line
        .trim()
        .slice(2)
        .replace(/\s+#.*$/, '')
        .trim()
        .replace(/^(['"])(.*)\1$/, '$2')
    );
}

function scalar(block: string[], key: string): string | undefined {
  const re = new RegExp(`^\\s*${escapeRe(key)}:\\s*(.*)$`);
  const indent = Math.min(...block.map(indentOf));
  for (const line of block) {
    const match = re.exec(line);
    if (match && indentOf(line) === indent) {
      return match[1].replace(/\s+#.*$/, '').replace(/^(['"])(.*)\1$/, '$2');
    }
  }
  return undefined;
}

function indentOf(line: string): number {
  return /^ */.exec(line)?.[0].length ?? 0;
}

function escapeRe(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Ports of the MLLP Endpoints defined in agent-config/ (plain resources or Bundles). */
function mllpEndpointPorts(): { file: string; name?: string; port: string }[] {
  const dir = join(root, 'agent-config');
  const result: { file: string; name?: string; port: string }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const json = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      resourceType?: string;
      entry?: { resource?: unknown }[];
    };
    const resources = json.resourceType === 'Bundle' ? (json.entry ?? []).map((e) => e.resource) : [json];
    for (const resource of resources as { resourceType?: string; name?: string; address?: string }[]) {
      if (resource?.resourceType === 'Endpoint' && resource.address?.startsWith('mllp://')) {
        const port = new URL(resource.address).port;
        expect(port, `${file}: ${resource.address} has no port`).not.toBe('');
        result.push({ file, name: resource.name, port });
      }
    }
  }
  return result;
}

describe('docker-compose.yml', () => {
  test('publishes the port of every MLLP Endpoint in agent-config/ on the agent service', () => {
    const endpoints = mllpEndpointPorts();
    expect(endpoints.length, 'agent-config/ defines no MLLP Endpoint').toBeGreaterThan(0);
    const published = listItems(serviceBlock(composeText, 'medplum-agent'), 'ports');
    for (const { file, name, port } of endpoints) {
      expect(composeText, `${file} (${name})`).toMatch(new RegExp(`['"]${port}:${port}['"]`));
      expect(published, `medplum-agent must publish ${port}:${port} for ${file} (${name})`).toContain(
        `${port}:${port}`
      );
    }
  });

  test('pins every image to a version, medplum images all to the same one', () => {
    const images = [...composeText.matchAll(/^\s+image:\s*['"]?([^'"\s#]+)/gm)].map((m) => m[1]);
    expect(images.length).toBeGreaterThanOrEqual(5);
    for (const image of images) {
      expect(image, image).toMatch(/:[\w.-]+$/);
      expect(image, image).not.toMatch(/:latest$/);
    }
    const medplumTags = new Set(images.filter((i) => i.startsWith('medplum/')).map((i) => i.split(':')[1]));
    expect(medplumTags.size, [...medplumTags].join(', ')).toBe(1);
    expect([...medplumTags][0]).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

/** Top-level keys of a block (the services or volumes of a compose file as written). */
function childKeys(block: string[]): string[] {
  const indent = Math.min(...block.map(indentOf));
  return block.filter((line) => indentOf(line) === indent && /^\s*[\w.-]+:\s*$/.test(line)).map((line) => line.trim().slice(0, -1));
}

/** `profiles` of a service block, in block (`- agent`) or flow (`['agent']`) style. */
function profilesOf(block: string[]): string[] {
  const flow = scalar(block, 'profiles');
  if (flow && flow.startsWith('[')) {
    return flow
      .slice(1, -1)
      .split(',')
      .map((p) => p.trim().replace(/^(['"])(.*)\1$/, '$2'))
      .filter((p) => p !== '');
  }
  return listItems(block, 'profiles');
}

// Structural checks read compose's resolved configuration when a compose binary is installed, and
// the file as written otherwise (the same keys, before interpolation), so they always run.
describe(`docker-compose.yml as resolved by ${compose ? composeName : 'its own text (no compose binary here)'}`, () => {
  let dir = '';
  let envFile = '';
  let defaultConfig = '';
  let defaultServices: string[] = [];
  let agentServices: string[] = [];
  let volumes: string[] = [];

  function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
    return runWith(envFile, ...args);
  }

  function runWith(file: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
    const [command, ...prefix] = compose as string[];
    const result = spawnSync(command, [...prefix, '--env-file', file, '-f', composeFile, ...args], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
      // Only what compose needs: the caller's MEDPLUM_* or POSTGRES_* variables would
      // otherwise override the env file.
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() },
    });
    return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
  }

  function lines(text: string): string[] {
    return text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '');
  }

  beforeAll(() => {
    if (!compose) {
      const lines = composeText.split(/\r?\n/);
      const topLevel = (key: string): string[] => blockOf(lines.slice(lines.findIndex((l) => l.startsWith(`${key}:`))), key);
      defaultConfig = composeText;
      agentServices = childKeys(topLevel('services'));
      defaultServices = agentServices.filter((service) => !profilesOf(serviceBlock(composeText, service)).length);
      volumes = childKeys(topLevel('volumes'));
      return;
    }
    dir = mkdtempSync(join(tmpdir(), 'hub-compose-'));
    envFile = join(dir, '.env');
    writeFileSync(envFile, renderEnvFile('', generateDockerEnv()), { mode: 0o600 });

    const config = run('config');
    expect(config.status, config.stderr).toBe(0);
    defaultConfig = config.stdout;
    const services = run('config', '--services');
    expect(services.status, services.stderr).toBe(0);
    defaultServices = lines(services.stdout);
    const agent = run('--profile', 'agent', 'config', '--services');
    expect(agent.status, agent.stderr).toBe(0);
    agentServices = lines(agent.stdout);
    const vols = run('config', '--volumes');
    expect(vols.status, vols.stderr).toBe(0);
    volumes = lines(vols.stdout);
  }, 120_000);

  afterAll(() => {
    if (dir) {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.skipIf(!compose)(`validates with a generated .env${skipNote}`, () => {
    expect(defaultServices).toEqual(expect.arrayContaining(['postgres', 'redis', 'medplum-server', 'medplum-app']));
    const server = serviceBlock(defaultConfig, 'medplum-server');
    expect(scalar(server, 'image')).toMatch(/^medplum\/medplum-server:\d+\.\d+\.\d+$/);
    for (const service of defaultServices) {
      const image = scalar(serviceBlock(defaultConfig, service), 'image') ?? '';
      expect(image, service).not.toMatch(/:latest$/);
      expect(image, service).toMatch(/:[\w.-]+$/);
    }
  });

  test.skipIf(!compose)(`fails with a clear message when .env is missing${skipNote}`, () => {
    const empty = join(dir, 'empty.env');
    writeFileSync(empty, '');
    const result = runWith(empty, 'config');
    expect(result.status).not.toBe(0);
    expect(`${result.stdout}${result.stderr}`).toContain('npm run env:init');
  });

  test(`keeps postgres, redis and binary data on named volumes`, () => {
    expect(volumes).toEqual(expect.arrayContaining(['postgres-data', 'redis-data', 'medplum-binary']));
    const mounts = (service: string): string =>
      serviceBlock(defaultConfig, service)
        .filter((l) => /volumes:|source:|target:|^\s*- /.test(l))
        .join('\n');
    expect(mounts('postgres')).toMatch(/postgres-data(?![\w-])[\s\S]*\/var\/lib\/postgresql\/data/);
    expect(mounts('redis')).toMatch(/redis-data(?![\w-])[\s\S]*\/data/);
    expect(mounts('medplum-server')).toMatch(/medplum-binary(?![\w-])[\s\S]*\/usr\/src\/medplum\/binary/);
    const server = serviceBlock(defaultConfig, 'medplum-server').join('\n');
    const storage = /MEDPLUM_BINARY_STORAGE:\s*['"]?file:(\S+?)['"]?$/m.exec(server);
    expect(storage?.[1]).toBe('/usr/src/medplum/binary/');
  });

  test(`gives postgres, redis and the server healthchecks`, () => {
    for (const service of ['postgres', 'redis', 'medplum-server']) {
      const block = serviceBlock(defaultConfig, service);
      expect(block.some((l) => /^\s*healthcheck:/.test(l)), service).toBe(true);
    }
    const dependsOn = blockOf(serviceBlock(defaultConfig, 'medplum-server'), 'depends_on').join('\n');
    expect(dependsOn).toMatch(/postgres:\s*\n\s*condition: service_healthy/);
    expect(dependsOn).toMatch(/redis:\s*\n\s*condition: service_healthy/);
  });

  test(`puts the agent behind the "agent" profile`, () => {
    expect(agentServices).toContain('medplum-agent');
    const agent = serviceBlock(defaultConfig, 'medplum-agent');
    if (agent.length > 0) {
      // docker-compose 1.29 lists every service in `config`; v2 drops inactive profiles.
      expect(profilesOf(agent)).toEqual(['agent']);
    } else {
      expect(defaultServices).not.toContain('medplum-agent');
    }
  });

  test.skipIf(!compose)(`passes the multi-line signing key from .env intact${skipNote}`, () => {
    // A real line break after the PEM header: the \n escapes in .env were decoded.
    expect(defaultConfig).toMatch(/-----BEGIN ENCRYPTED PRIVATE KEY-----\r?\n/);
    expect(defaultConfig).not.toMatch(/-----BEGIN ENCRYPTED PRIVATE KEY-----\\n/);
    expect(defaultConfig).toMatch(/-----END ENCRYPTED PRIVATE KEY-----/);
  });
});
