import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { loadDesiredState, orderByDependencies } from './manifest.ts';
import type { ManagedResource } from './manifest.ts';

const dirs: string[] = [];

async function project(files: Record<string, unknown>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'hub-manifest-'));
  dirs.push(root);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return root;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) {
    await rm(dir, { recursive: true, force: true });
  }
});

describe('loadDesiredState', () => {
  test('loads one resource per file, named after the file, dependencies first', async () => {
    const root = await project({
      'agent-config/agent.json': {
        resourceType: 'Agent',
        name: 'a',
        status: 'active',
        channel: [{ name: 'c', endpoint: { reference: '{{Endpoint/ep}}' } }],
      },
      'agent-config/ep.json': { resourceType: 'Endpoint', status: 'active', address: 'mllp://0.0.0.0:2575', connectionType: { code: 'hl7v2-mllp' }, payloadType: [{ text: 'x' }] },
      'access-policies/README.md': 'not a resource',
    });
    const state = await loadDesiredState(root);
    expect(state.resources.map((r) => `${r.resourceType}/${r.name}`)).toEqual(['Endpoint/ep', 'Agent/agent']);
    expect(state.resources[1].dependsOn).toEqual([{ resourceType: 'Endpoint', name: 'ep' }]);
  });

  test('refuses ids, unknown references, duplicates and non-resources', async () => {
    await expect(loadDesiredState(await project({ 'seed/o.json': { resourceType: 'Organization', id: 'x' } }))).rejects.toThrow(
      /must not carry an id/
    );
    await expect(
      loadDesiredState(await project({ 'seed/o.json': { resourceType: 'Organization', partOf: { reference: '{{Organization/nope}}' } } }))
    ).rejects.toThrow(/does not name a managed resource/);
    await expect(
      loadDesiredState(
        await project({ 'seed/o.json': { resourceType: 'Organization' }, 'agent-config/o.json': { resourceType: 'Organization' } })
      )
    ).rejects.toThrow(/Two managed resources are named Organization\/o/);
    await expect(loadDesiredState(await project({ 'seed/x.json': { hello: 'world' } }))).rejects.toThrow(/not a FHIR resource/);
    await expect(loadDesiredState(await project({ 'seed/x.json': '{ not json' }))).rejects.toThrow(/invalid JSON/);
  });

  test('requires built bots', async () => {
    const root = await project({ 'bots/echo/index.ts': 'export async function handler() { return 1; }', 'package.json': { version: '1.0.0' } });
    await expect(loadDesiredState(root)).rejects.toThrow(/Bot echo is not built/);
  });
});

describe('orderByDependencies', () => {
  const r = (name: string, deps: string[]): ManagedResource => ({
    name,
    resourceType: 'Organization',
    file: name,
    template: { resourceType: 'Organization' },
    dependsOn: deps.map((d) => ({ resourceType: 'Organization', name: d })),
    env: [],
  });

  test('keeps file order when independent, puts dependencies first', () => {
    expect(orderByDependencies([r('a', ['c']), r('b', []), r('c', [])]).map((x) => x.name)).toEqual(['c', 'a', 'b']);
  });

  test('refuses cycles', () => {
    expect(() => orderByDependencies([r('a', ['b']), r('b', ['a'])])).toThrow(/cycle: Organization\/a -> Organization\/b -> Organization\/a/);
  });
});
