import type { ProjectSetting } from '@medplum/fhirtypes';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { ProjectSecretsReport, SecretDeclaration } from './project-secrets.ts';
import {
  loadSecretDeclarations,
  parseSecretDeclarations,
  planProjectSecrets,
  PROJECT_SECRETS_FILE,
  summarizeSecrets,
} from './project-secrets.ts';

const declare = (...names: string[]): SecretDeclaration[] => names.map((name) => ({ name, description: `${name} for tests` }));

describe('planProjectSecrets', () => {
  const declarations = declare('API_KEY', 'WEBHOOK_KEY', 'ENV', 'API_URL');
  const current: ProjectSetting[] = [
    { name: 'OTHER', valueString: 'other-value' },
    { name: 'WEBHOOK_KEY', valueString: 'old-webhook-value' },
    { name: 'FLAG', valueBoolean: true },
    { name: 'ENV', valueString: 'sandbox' },
  ];

  test('sets, changes, leaves unchanged and skips what the environment lacks', () => {
    const plan = planProjectSecrets(current, declarations, {
      API_KEY: 'new-api-value',
      WEBHOOK_KEY: 'new-webhook-value',
      ENV: 'sandbox',
      API_URL: '',
    });
    expect(plan.entries).toEqual([
      { name: 'API_KEY', action: 'set' },
      { name: 'WEBHOOK_KEY', action: 'changed' },
      { name: 'ENV', action: 'unchanged' },
      { name: 'API_URL', action: 'not-in-environment' },
    ]);
    expect(plan.changed).toBe(true);
    // Undeclared secrets stay where they were; a changed one keeps its place; a new one is appended.
    expect(plan.secrets).toEqual([
      { name: 'OTHER', valueString: 'other-value' },
      { name: 'WEBHOOK_KEY', valueString: 'new-webhook-value' },
      { name: 'FLAG', valueBoolean: true },
      { name: 'ENV', valueString: 'sandbox' },
      { name: 'API_KEY', valueString: 'new-api-value' },
    ]);
  });

  test('a secret missing from the environment keeps its value on the project', () => {
    const plan = planProjectSecrets(current, declarations, {});
    expect(plan.entries.map((e) => e.action)).toEqual(Array(4).fill('not-in-environment'));
    expect(plan.changed).toBe(false);
    expect(plan.secrets).toEqual(current);
  });

  test('applying the plan again changes nothing', () => {
    const env = { API_KEY: 'a', WEBHOOK_KEY: 'b', ENV: 'production', API_URL: 'http://127.0.0.1:8200' };
    const first = planProjectSecrets(undefined, declarations, env);
    expect(first.entries.every((e) => e.action === 'set')).toBe(true);
    const second = planProjectSecrets(first.secrets, declarations, env);
    expect(second.changed).toBe(false);
    expect(second.entries.every((e) => e.action === 'unchanged')).toBe(true);
    expect(second.secrets).toEqual(first.secrets);
  });

  test('leaves the current array alone (the planner is pure)', () => {
    const before = structuredClone(current);
    planProjectSecrets(current, declarations, { API_KEY: 'x', WEBHOOK_KEY: 'y' });
    expect(current).toEqual(before);
  });

  test('a value of another type, or duplicates of a name, are replaced by one string value', () => {
    const plan = planProjectSecrets(
      [
        { name: 'ENV', valueString: 'production' },
        { name: 'OTHER', valueString: 'o' },
        { name: 'ENV', valueString: 'sandbox' },
        { name: 'API_KEY', valueInteger: 42 },
      ],
      declare('ENV', 'API_KEY'),
      { ENV: 'production', API_KEY: '42' }
    );
    // Bots see the last ENV (sandbox), so production is a change.
    expect(plan.entries).toEqual([
      { name: 'ENV', action: 'changed' },
      { name: 'API_KEY', action: 'changed' },
    ]);
    expect(plan.secrets).toEqual([
      { name: 'ENV', valueString: 'production' },
      { name: 'OTHER', valueString: 'o' },
      { name: 'API_KEY', valueString: '42' },
    ]);
  });

  test('no report or summary carries a value', () => {
    const values = { API_KEY: 'v-api-1f3c', WEBHOOK_KEY: 'v-webhook-9a2e', ENV: 'v-env-77d0' };
    const plan = planProjectSecrets([{ name: 'ENV', valueString: 'v-old-env-5b1a' }], declarations, values);
    for (const dryRun of [true, false]) {
      const report: ProjectSecretsReport = { dryRun, entries: plan.entries, changed: plan.changed };
      const text = JSON.stringify(report) + '\n' + summarizeSecrets(report);
      for (const value of [...Object.values(values), 'v-old-env-5b1a']) {
        expect(text).not.toContain(value);
      }
    }
  });
});

describe('summarizeSecrets', () => {
  test('counts the actions and names what the environment lacks', () => {
    const entries = [
      { name: 'A', action: 'set' },
      { name: 'B', action: 'unchanged' },
      { name: 'C', action: 'not-in-environment' },
      { name: 'D', action: 'not-in-environment' },
    ] as const;
    expect(summarizeSecrets({ dryRun: false, entries: [...entries], changed: true })).toBe(
      'Project secrets: set 1, changed 0, 1 unchanged; not in the environment: C, D.'
    );
    expect(summarizeSecrets({ dryRun: true, entries: [...entries], changed: true })).toBe(
      'Project secrets: would set 1, change 0, leave 1 unchanged; not in the environment: C, D.'
    );
  });
});

describe('parseSecretDeclarations', () => {
  test('accepts the declaration and keeps its order', () => {
    expect(
      parseSecretDeclarations({
        secrets: [
          { name: 'METRIPORT_API_KEY', description: 'key' },
          { name: 'X1_Y', description: 'other' },
        ],
      })
    ).toEqual([
      { name: 'METRIPORT_API_KEY', description: 'key' },
      { name: 'X1_Y', description: 'other' },
    ]);
  });

  test.each([
    ['not an object', [], /expected an object/],
    ['no secrets array', { secrets: {} }, /expected an object/],
    ['a lower-case name', { secrets: [{ name: 'api_key', description: 'd' }] }, /name must match/],
    ['a name starting with a digit', { secrets: [{ name: '1KEY', description: 'd' }] }, /name must match/],
    ['a name with a dash', { secrets: [{ name: 'API-KEY', description: 'd' }] }, /name must match/],
    ['a missing name', { secrets: [{ description: 'd' }] }, /name must match/],
    ['a missing description', { secrets: [{ name: 'KEY' }] }, /KEY\): description must be a non-empty string/],
    [
      'a duplicate name',
      { secrets: [{ name: 'KEY', description: 'd' }, { name: 'KEY', description: 'e' }] },
      /KEY is declared more than once/,
    ],
    ['an unknown key in an entry', { secrets: [{ name: 'KEY', description: 'd', value: 'x' }] }, /unknown key "value"/],
    ['an unknown top-level key', { secrets: [], values: {} }, /unknown key "values"/],
    ['an entry that is not an object', { secrets: ['KEY'] }, /secrets\[0\]: expected an object/],
  ])('rejects %s', (_label, json, message) => {
    expect(() => parseSecretDeclarations(json)).toThrow(message);
  });
});

describe('loadSecretDeclarations', () => {
  test('reads project-secrets.json; a project without it declares nothing; bad JSON is an error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hub-secrets-'));
    try {
      expect(await loadSecretDeclarations(dir)).toEqual([]);
      await writeFile(join(dir, PROJECT_SECRETS_FILE), JSON.stringify({ secrets: [{ name: 'KEY', description: 'd' }] }));
      expect(await loadSecretDeclarations(dir)).toEqual([{ name: 'KEY', description: 'd' }]);
      await writeFile(join(dir, PROJECT_SECRETS_FILE), '{ "secrets": [');
      await expect(loadSecretDeclarations(dir)).rejects.toThrow(/project-secrets\.json: not valid JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the repository's own declaration is valid and declares the Metriport, SFTP and partner secrets", async () => {
    const declarations = await loadSecretDeclarations(join(import.meta.dirname, '..', '..'));
    expect(declarations.map((d) => d.name)).toEqual([
      'METRIPORT_API_KEY',
      'METRIPORT_WEBHOOK_KEY',
      'METRIPORT_ENV',
      'METRIPORT_API_URL',
      'SFTP_RIVERSIDE_CREDENTIAL',
      'PARTNER_ACME_ANALYTICS_SECRET',
      'PARTNER_ACME_ANALYTICS_SECRET_PREVIOUS',
    ]);
  });
});
