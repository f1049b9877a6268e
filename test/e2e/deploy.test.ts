import type { AccessPolicy, Bot, ProjectMembership, ProjectSetting } from '@medplum/fhirtypes';
import { MedplumClient } from '@medplum/core';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runDeploy } from '../../src/commands/deploy.ts';
import { BOT_NAME_SYSTEM, BOT_VERSION_EXTENSION, MANAGED_TAG_SYSTEM } from '../../src/constants.ts';
import { isNoop } from '../../src/deploy/deploy.ts';
import type { Target } from '../../src/deploy/target.ts';
import { connectTarget } from '../../src/deploy/target.ts';
import { LocalRuntime } from '../../src/local/runtime.ts';
import { copyProject } from '../support/project-copy.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

/**
 * `npm run deploy` against a Medplum-compatible server (the local runtime, without its own
 * self-deploy): plan, apply, idempotence, updates, bot redeploys by content hash, memberships,
 * environment placeholders, project secrets from the environment, medplum.config.json and the CLI's
 * dry run.
 */
describe('deploy managed resources and bots', () => {
  let runtime: LocalRuntime;
  let target: Target;
  let root: string;
  let removeCopy: (() => Promise<void>) | undefined;
  const lines: string[] = [];
  const deployOnce = (dryRun = false, env: NodeJS.ProcessEnv = {}) =>
    runDeploy(target, { root, dryRun, writeConfig: true, env, log: (l) => lines.push(l) });

  beforeAll(async () => {
    const copy = await copyProject();
    root = copy.root;
    removeCopy = copy.remove;
    runtime = await new LocalRuntime({ port: 0, mllpPort: () => 0 }).start();
    const admin = runtime.adminCredentials;
    target = await connectTarget({ baseUrl: runtime.baseUrl, clientId: admin.clientId, clientSecret: admin.clientSecret });
  });

  afterAll(async () => {
    await runtime?.stop();
    await removeCopy?.();
  });

  test('a dry run on an empty project plans a create for everything and changes nothing', async () => {
    const plan = await deployOnce(true);
    expect(plan.entries.map((e) => e.action)).toEqual(plan.entries.map(() => 'create'));
    expect(plan.entries.map((e) => e.key)).toEqual(
      expect.arrayContaining(['AccessPolicy/agent', 'ClientApplication/client-agent', 'Endpoint/endpoint-adt', 'Bot/hl7-inbound', 'Agent/agent'])
    );
    expect(await target.client.searchResources('Bot', {})).toHaveLength(0);
  });

  test('apply creates everything; applying twice changes nothing', async () => {
    const first = await deployOnce();
    expect(first.entries.every((e) => e.action === 'create')).toBe(true);
    expect(first.entries.find((e) => e.key === 'Bot/hl7-inbound')?.code?.action).toBe('deploy');
    const second = await deployOnce();
    expect(isNoop(second)).toBe(true);
    expect(lines.at(-2)).toBe('No changes.');
    const dry = await deployOnce(true);
    expect(isNoop(dry)).toBe(true);
  });

  test('references resolve to target ids and memberships get their policies', async () => {
    const [bot] = await target.client.searchResources('Bot', { identifier: `${BOT_NAME_SYSTEM}|hl7-inbound` });
    const [policy] = await target.client.searchResources('AccessPolicy', { _tag: `${MANAGED_TAG_SYSTEM}|bot-hl7` });
    const [agent] = await target.client.searchResources('Agent', { _tag: `${MANAGED_TAG_SYSTEM}|agent` });
    expect(agent.channel?.[0].targetReference?.reference).toBe(`Bot/${bot.id}`);
    const membership = (await target.client.searchOne('ProjectMembership', { profile: `Bot/${bot.id}` })) as ProjectMembership;
    expect(membership.accessPolicy?.reference).toBe(`AccessPolicy/${policy.id}`);
    // The local runtime opened the agent channel after deploy told the agent to reload.
    expect(runtime.agents.listeners().map((l) => l.channel)).toContain('northside-adt');
    const config = JSON.parse(await readFile(join(root, 'medplum.config.json'), 'utf8'));
    expect(config.bots).toContainEqual({ name: 'hl7-inbound', id: bot.id, source: 'bots/hl7-inbound/index.ts', dist: 'dist/bots/hl7-inbound.js' });
  });

  test('a changed file is planned and applied as an update of only that resource', async () => {
    const file = join(root, 'access-policies', 'bot-hl7.json');
    const policy = JSON.parse(await readFile(file, 'utf8')) as AccessPolicy;
    policy.resource?.push({ resourceType: 'Organization', readonly: true });
    await writeFile(file, JSON.stringify(policy));
    const plan = await deployOnce(true);
    const changed = plan.entries.filter((e) => e.action !== 'unchanged');
    expect(changed.map((e) => [e.key, e.action, e.changedFields])).toEqual([['AccessPolicy/bot-hl7', 'update', ['resource']]]);
    await deployOnce();
    expect(isNoop(await deployOnce())).toBe(true);
  });

  test('a bot is redeployed only when its bundle hash changes, and records the version it runs', async () => {
    const [before] = await target.client.searchResources('Bot', { identifier: `${BOT_NAME_SYSTEM}|hl7-inbound` });
    const source = join(root, 'bots', 'hl7-inbound', 'index.ts');
    const code = await readFile(source, 'utf8');
    await writeFile(source, code.replace('return result.ack;', "console.log('bundle (v2)');\n  return result.ack;"));
    const report = await deployOnce();
    const entry = report.entries.find((e) => e.key === 'Bot/hl7-inbound');
    expect(entry?.code?.action).toBe('deploy');
    const after = (await target.client.readResource('Bot', before.id as string)) as Bot;
    expect(after.executableCode?.url).not.toBe(before.executableCode?.url);
    const version = after.extension?.find((e) => e.url === BOT_VERSION_EXTENSION)?.valueString;
    expect(version).toBe(entry?.code?.version);
    const running = await (await target.client.download(after.executableCode?.url as string)).text();
    expect(running).toContain('(v2)');
    expect(running.split('\n')[0]).toContain(version);
    expect(isNoop(await deployOnce())).toBe(true);
  });

  test('a membership policy changed by hand is set back', async () => {
    const [bot] = await target.client.searchResources('Bot', { identifier: `${BOT_NAME_SYSTEM}|hl7-inbound` });
    const membership = (await target.client.searchOne('ProjectMembership', { profile: `Bot/${bot.id}` })) as ProjectMembership;
    const projectId = target.projectId;
    await target.client.post(`admin/projects/${projectId}/members/${membership.id}`, { ...membership, accessPolicy: undefined });
    const report = await deployOnce();
    expect(report.entries.find((e) => e.key === 'Bot/hl7-inbound')?.membershipPolicy?.action).toBe('set');
    expect(isNoop(await deployOnce())).toBe(true);
  });

  test('environment placeholders: missing values stop the deploy, values never appear in the output', async () => {
    await writeFile(
      join(root, 'subscriptions', 'partner.json'),
      JSON.stringify({
        resourceType: 'Subscription',
        status: 'active',
        reason: 'partner feed',
        criteria: 'Patient',
        channel: { type: 'rest-hook', endpoint: '{{env:HUB_TEST_PARTNER_URL}}' },
        extension: [{ url: 'https://www.medplum.com/fhir/StructureDefinition/subscription-secret', valueString: '{{env:HUB_TEST_PARTNER_SECRET}}' }],
      })
    );
    await expect(deployOnce()).rejects.toThrow(/HUB_TEST_PARTNER_URL, HUB_TEST_PARTNER_SECRET/);
    const secret = 'do-not-print-' + Date.now();
    lines.length = 0;
    const env = { HUB_TEST_PARTNER_URL: 'http://127.0.0.1:9/partner', HUB_TEST_PARTNER_SECRET: secret };
    await deployOnce(false, env);
    const [subscription] = await target.client.searchResources('Subscription', { _tag: `${MANAGED_TAG_SYSTEM}|partner` });
    expect(subscription.channel.endpoint).toBe('http://127.0.0.1:9/partner');
    expect(lines.join('\n')).not.toContain(secret);
    expect(isNoop(await deployOnce(false, env))).toBe(true);
    await rm(join(root, 'subscriptions', 'partner.json'));
  });

  test('project secrets: declared names get their values from the environment, never printed', async () => {
    const projectSecrets = async (): Promise<ProjectSetting[]> =>
      ((await target.client.get(`admin/projects/${target.projectId}`)) as { project: { secret?: ProjectSetting[] } })
        .project.secret ?? [];
    const undeclared = { name: 'PARTNER_TOKEN', valueString: 'undeclared-' + Date.now() };
    await target.client.post(`admin/projects/${target.projectId}/secrets`, [undeclared]);
    const apiKey = 'mp-api-key-' + Date.now();
    const webhookKey = 'mp-webhook-key-' + Date.now();
    const env = { METRIPORT_API_KEY: apiKey, METRIPORT_WEBHOOK_KEY: webhookKey, METRIPORT_ENV: 'sandbox', METRIPORT_API_URL: '' };
    lines.length = 0;

    const plan = await deployOnce(true, env);
    expect(plan.secrets.entries).toEqual([
      { name: 'METRIPORT_API_KEY', action: 'set' },
      { name: 'METRIPORT_WEBHOOK_KEY', action: 'set' },
      { name: 'METRIPORT_ENV', action: 'set' },
      { name: 'METRIPORT_API_URL', action: 'not-in-environment' },
      { name: 'SFTP_RIVERSIDE_CREDENTIAL', action: 'not-in-environment' },
      { name: 'PARTNER_ACME_ANALYTICS_SECRET', action: 'not-in-environment' },
      { name: 'PARTNER_ACME_ANALYTICS_SECRET_PREVIOUS', action: 'not-in-environment' },
    ]);
    expect(lines).toContain('would set METRIPORT_API_KEY (project secret)');
    expect(await projectSecrets()).toEqual([undeclared]);

    const applied = await deployOnce(false, env);
    expect(applied.secrets.changed).toBe(true);
    expect(applied.secrets.entries.map((e) => e.action)).toEqual(['set', 'set', 'set', 'not-in-environment', 'not-in-environment', 'not-in-environment', 'not-in-environment']);
    expect(await projectSecrets()).toEqual([
      undeclared,
      { name: 'METRIPORT_API_KEY', valueString: apiKey },
      { name: 'METRIPORT_WEBHOOK_KEY', valueString: webhookKey },
      { name: 'METRIPORT_ENV', valueString: 'sandbox' },
    ]);
    expect(lines).toContain('set METRIPORT_WEBHOOK_KEY (project secret)');
    expect(lines).toContain('Project secrets: set 3, changed 0, 0 unchanged; not in the environment: METRIPORT_API_URL, SFTP_RIVERSIDE_CREDENTIAL, PARTNER_ACME_ANALYTICS_SECRET, PARTNER_ACME_ANALYTICS_SECRET_PREVIOUS.');

    const again = await deployOnce(false, env);
    expect(isNoop(again) && !again.secrets.changed).toBe(true);
    expect(again.secrets.entries.map((e) => e.action)).toEqual(['unchanged', 'unchanged', 'unchanged', 'not-in-environment', 'not-in-environment', 'not-in-environment', 'not-in-environment']);
    expect(lines.at(-2)).toBe('No changes.');

    // A changed value is replaced in place; a name missing from the environment keeps its value.
    const changed = await deployOnce(false, { METRIPORT_API_KEY: apiKey, METRIPORT_ENV: 'production' });
    expect(changed.secrets.entries.map((e) => e.action)).toEqual(['unchanged', 'not-in-environment', 'changed', 'not-in-environment', 'not-in-environment', 'not-in-environment', 'not-in-environment']);
    expect(await projectSecrets()).toEqual([
      undeclared,
      { name: 'METRIPORT_API_KEY', valueString: apiKey },
      { name: 'METRIPORT_WEBHOOK_KEY', valueString: webhookKey },
      { name: 'METRIPORT_ENV', valueString: 'production' },
    ]);
    expect(lines).toContain('changed METRIPORT_ENV (project secret)');

    const output = lines.join('\n');
    for (const value of [apiKey, webhookKey, undeclared.valueString]) {
      expect(output).not.toContain(value);
    }
    // Later tests (the CLI's dry run uses the process environment) see a project without declarations.
    await rm(join(root, 'project-secrets.json'));
  });

  test('the hub command prints the plan with --dry-run', async () => {
    const admin = runtime.adminCredentials;
    const { stdout } = await run('node', [join(ROOT, 'src', 'cli.ts'), 'deploy', '--dry-run'], {
      cwd: root,
      env: { ...process.env, MEDPLUM_BASE_URL: runtime.baseUrl, MEDPLUM_CLIENT_ID: admin.clientId, MEDPLUM_CLIENT_SECRET: admin.clientSecret },
      timeout: 60_000,
    });
    expect(stdout).toMatch(/Plan for http:\/\/127\.0\.0\.1:\d+\//);
    expect(stdout).toMatch(/unchanged Bot\/hl7-inbound/);
    expect(stdout).toContain('No changes.');
  });

  test('a Bot/$execute by the bot-name identifier reaches the deployed bot', async () => {
    const admin = runtime.adminCredentials;
    const client = new MedplumClient({ baseUrl: runtime.baseUrl });
    await client.startClientLogin(admin.clientId, admin.clientSecret);
    const ack = await client.executeBot(
      { system: BOT_NAME_SYSTEM, value: 'hl7-inbound' },
      'MSH|^~\\&|A|B|C|D|20240101||QRY^A19|X1|P|2.5.1\rQRD|20240101|R|I|Q1',
      'x-application/hl7-v2+er7'
    );
    expect(ack).toContain('MSA|AR|X1');
  });
});
