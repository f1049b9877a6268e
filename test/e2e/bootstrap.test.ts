import type { Agent, Bot, ClientApplication, Project, ProjectMembership } from '@medplum/fhirtypes';
import { MedplumClient } from '@medplum/core';
import { readFile } from 'node:fs/promises';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runBootstrap } from '../../src/commands/bootstrap.ts';
import { HUB_TOTAL_FHIR_QUOTA, HUB_USER_FHIR_QUOTA } from '../../src/deploy/bootstrap.ts';
import { parseEnvFile } from '../../src/deploy/env-file.ts';
import { LocalRuntime } from '../../src/local/runtime.ts';
import { ackCode, MllpSender } from '../support/mllp-sender.ts';
import { copyProject } from '../support/project-copy.ts';

/**
 * `npm run bootstrap` against a server that starts like a fresh stock stack: only the super-admin
 * project and its seeded client exist (the local runtime with `createHubProject: false`).
 */
describe('bootstrap a fresh server with super-admin credentials', () => {
  const superAdmin = { clientId: randomUUID(), clientSecret: randomBytes(24).toString('hex') };
  let runtime: LocalRuntime;
  let root: string;
  let remove: () => Promise<void>;
  const lines: string[] = [];
  let env: NodeJS.ProcessEnv;

  const bootstrap = (): Promise<void> =>
    runBootstrap({ root, env, log: (l) => lines.push(l), envFile: join(root, '.env') });
  const recorded = async (): Promise<Map<string, string>> => parseEnvFile(await readFile(join(root, '.env'), 'utf8'));
  const asSuperAdmin = async (): Promise<MedplumClient> => {
    const client = new MedplumClient({ baseUrl: runtime.baseUrl });
    await client.startClientLogin(superAdmin.clientId, superAdmin.clientSecret);
    return client;
  };

  beforeAll(async () => {
    ({ root, remove } = await copyProject());
    runtime = await new LocalRuntime({ port: 0, mllpPort: () => 0, createHubProject: false, superAdminClient: superAdmin }).start();
    env = {
      MEDPLUM_BASE_URL: runtime.baseUrl,
      MEDPLUM_SUPER_ADMIN_CLIENT_ID: superAdmin.clientId,
      MEDPLUM_SUPER_ADMIN_CLIENT_SECRET: superAdmin.clientSecret,
      HUB_PROJECT_NAME: 'Hub bootstrap test',
    };
  });

  afterAll(async () => {
    await runtime?.stop();
    await remove?.();
  });

  test('creates the project with the hub features and quotas, a project-admin client, and deploys', async () => {
    await bootstrap();
    const client = await asSuperAdmin();
    const projects = await client.searchResources('Project', { name: 'Hub bootstrap test' });
    expect(projects).toHaveLength(1);
    const project = projects[0] as Project;
    expect(project.features).toEqual(expect.arrayContaining(['bots', 'cron', 'transaction-bundles']));
    expect(project.systemSetting).toEqual(
      expect.arrayContaining([
        { name: 'userFhirQuota', valueInteger: HUB_USER_FHIR_QUOTA },
        { name: 'totalFhirQuota', valueInteger: HUB_TOTAL_FHIR_QUOTA },
      ])
    );

    const values = await recorded();
    const adminId = values.get('MEDPLUM_CLIENT_ID') as string;
    const membership = (await client.searchOne('ProjectMembership', { profile: `ClientApplication/${adminId}` })) as ProjectMembership;
    expect(membership.admin).toBe(true);
    expect(membership.project?.reference).toBe(`Project/${project.id}`);

    const admin = new MedplumClient({ baseUrl: runtime.baseUrl });
    await admin.startClientLogin(adminId, values.get('MEDPLUM_CLIENT_SECRET') as string);
    expect(admin.getProject()?.id).toBe(project.id);
    const bots = (await admin.searchResources('Bot', {})) as Bot[];
    expect(bots.map((b) => b.name)).toContain('hl7-inbound');
    const [agent] = (await admin.searchResources('Agent', {})) as Agent[];
    expect(values.get('MEDPLUM_AGENT_ID')).toBe(agent.id);
    const agentClient = (await admin.readResource('ClientApplication', values.get('MEDPLUM_AGENT_CLIENT_ID') as string)) as ClientApplication;
    expect(agentClient.secret).toBe(values.get('MEDPLUM_AGENT_CLIENT_SECRET'));
    expect(lines.join('\n')).not.toContain(values.get('MEDPLUM_CLIENT_SECRET'));
  });

  test('running it again finds everything and changes nothing', async () => {
    const before = await recorded();
    lines.length = 0;
    await bootstrap();
    expect(lines.join('\n')).toMatch(/Project [0-9a-f-]+: found; admin client [0-9a-f-]+: found/);
    expect(lines).toContain('No changes.');
    const after = await recorded();
    expect(after.get('MEDPLUM_CLIENT_ID')).toBe(before.get('MEDPLUM_CLIENT_ID'));
    expect((await (await asSuperAdmin()).searchResources('Project', { name: 'Hub bootstrap test' })).length).toBe(1);
  });

  test('the deployed agent channel answers over MLLP', async () => {
    const listener = runtime.agents.listeners().find((l) => l.channel === 'northside-adt');
    expect(listener).toBeDefined();
    const sender = new MllpSender(listener?.host as string, listener?.port as number);
    try {
      const [ack] = await sender.send(
        'MSH|^~\\&|EPIC|HOSP|HUB|HUB|20240101120000||ADT^A04^ADT_A01|BOOT1|P|2.5.1\rPID|1||B1^^^BOOT^MR||Boot^Strap\rPV1|1|O'
      );
      expect(ackCode(ack)).toBe('AA');
    } finally {
      await sender.close();
    }
  });

  test('a client that is not a super admin is refused', async () => {
    const values = await recorded();
    await expect(
      runBootstrap({
        root,
        env: {
          ...env,
          MEDPLUM_SUPER_ADMIN_CLIENT_ID: values.get('MEDPLUM_CLIENT_ID'),
          MEDPLUM_SUPER_ADMIN_CLIENT_SECRET: values.get('MEDPLUM_CLIENT_SECRET'),
        },
        log: () => undefined,
        envFile: join(root, '.env.other'),
      })
    ).rejects.toThrow(/needs super-admin client credentials/);
  });
});
