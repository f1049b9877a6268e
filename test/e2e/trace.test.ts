/**
 * `hub trace` end to end: an ORU^R01 with final results goes over real MLLP into the hub, a
 * partner Subscription queues its Observations for a real HTTP receiver, the `partner-delivery`
 * pass sends them; then the trace, started from the bare MSH-10, must lead from the ledger entry
 * to the Observations and Patient written, to the delivery Tasks and the receiver's answer, and
 * from an Observation back to the same message. A partner answering 500 shows as retrying and,
 * past its window, as a dead letter. An unknown id is "not found" with exit code 1.
 */
import type { WithId } from '@medplum/core';
import { MedplumClient } from '@medplum/core';
import type { Bot, Endpoint, Observation, Subscription, Task } from '@medplum/fhirtypes';
import type { TestContext } from 'vitest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runTraceCommand } from '../../src/commands/trace.ts';
import { BOT_NAME_SYSTEM } from '../../src/constants.ts';
import { findManaged } from '../../src/deploy/managed.ts';
import type { Target } from '../../src/deploy/target.ts';
import { MESSAGE_KEY_SYSTEM } from '../../src/fhir/ledger.ts';
import { traceChain } from '../../src/ops/trace.ts';
import type { TraceReport, WrittenTrace } from '../../src/ops/trace.ts';
import { generateWebhookSecret } from '../../src/outbound/standard-webhooks.ts';
import { FILE_FORMAT_SYSTEM, SFTP_INBOUND_CONNECTION, SFTP_SOURCE_SYSTEM, SftpExtension } from '../../src/sftp/source.ts';
import { adtA01, controlIdOf, oruR01, testPatient } from '../support/hl7-messages.ts';
import type { TestPatient } from '../support/hl7-messages.ts';
import { ackCode, MllpSender } from '../support/mllp-sender.ts';
import { SftpTestServer } from '../support/sftp-server.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import { waitFor } from '../support/wait.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';
import type { TestPartner } from '../support/partners.ts';
import { createTestPartner, notificationFocus, partnerDeliveries, runPartnerDeliveryPass, setProjectSecret } from '../support/partners.ts';

let target: E2eTarget;
let client: MedplumClient;
let sender: MllpSender | undefined;
let skip: string | undefined;

const setSecret = (name: string, value: string): Promise<void> => setProjectSecret(client, name, value);

/** A partner as ops would configure it: laboratory results in scope, sent at once, retried with no delay. */
function createPartner(name: string, url: string, secretName: string, windowHours: number): Promise<TestPartner> {
  const scope = [{ resourceType: 'Observation' as const, criteria: 'Observation?category=laboratory', readonly: true }];
  return createTestPartner(client, { name, url, secretName, windowHours, scope, criteria: 'Observation' });
}

async function retire(...partners: TestPartner[]): Promise<void> {
  for (const { subscription, endpoint } of partners) {
    await client.updateResource<Subscription>({ ...(await client.readResource('Subscription', subscription.id)), status: 'off' });
    await client.updateResource<Endpoint>({ ...(await client.readResource('Endpoint', endpoint.id)), status: 'off' });
  }
}

async function partnerWebhookBot(): Promise<WithId<Bot>> {
  return (await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|partner-webhook` })) as WithId<Bot>;
}

const deliveries = (partner: TestPartner): Promise<WithId<Task>[]> => partnerDeliveries(client, partner.endpoint);
const deliveryPass = (): Promise<void> => runPartnerDeliveryPass(client);

/** Sends an ORU^R01 over MLLP on the lab's channel and expects AA. */
async function sendOru(ctx: TestContext, p: TestPatient): Promise<string> {
  const address = target.mllp('acme-lab');
  if ('skip' in address) {
    ctx.skip(address.skip);
    return '';
  }
  sender ??= new MllpSender(address.host, address.port);
  const message = oruR01(p);
  const [ack] = await sender.send(message);
  expect(ackCode(ack)).toBe('AA');
  return message;
}

/** A client logged in as the managed `ops` ClientApplication. */
async function opsClient(): Promise<MedplumClient> {
  const [app] = await findManaged(client, 'ClientApplication', 'ops');
  const ops = new MedplumClient({ baseUrl: target.baseUrl, cacheTime: 0 });
  await ops.startClientLogin(app.id as string, app.secret as string);
  return ops;
}

/** The target as `hub trace` takes it: the admin client, connected. */
function hubTarget(): Target {
  return { client, baseUrl: target.baseUrl, projectId: (client.getProject() as { id: string }).id };
}

function capture(): { lines: string[]; io: { log: (line: string) => void; error: (line: string) => void } } {
  const lines: string[] = [];
  return { lines, io: { log: (line) => lines.push(line), error: (line) => lines.push(line) } };
}

/** No patient data in what the trace prints: names, MRN, birth date, address, result values. */
function expectNoPhi(output: string, p: TestPatient): void {
  for (const value of [p.family, p.given, p.mrn, p.visit, '19800102', 'Oak St', 'Springfield', '5551234', 'hemolyzed', '5.6']) {
    expect(output, `output must not contain ${value}`).not.toContain(value);
  }
}

function writtenObservations(report: TraceReport): WrittenTrace[] {
  return report.messages[0]?.receptions[0]?.written?.filter((w) => w.reference.startsWith('Observation/')) ?? [];
}

beforeAll(async () => {
  target = await startE2eTarget();
  if (typeof target.receiverHost !== 'string') {
    skip = target.receiverHost.skip;
    return;
  }
  if (target.kind === 'stock') {
    skip = 'stock target: the test receiver listens on 127.0.0.1 only; run against the local runtime';
    return;
  }
  client = target.client;
}, 60_000);

afterAll(async () => {
  await sender?.close();
  await target?.stop();
});

describe('hub trace', () => {
  test('from the MSH-10 of an ORU^R01 sent over MLLP to the partner webhook answered 200, and back from an Observation', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const secret = generateWebhookSecret();
    await setSecret('PARTNER_TRACE_SECRET', secret);
    const receiver = new WebhookReceiver(secret);
    const url = await receiver.start();
    const partner = await createPartner('Trace partner', url, 'PARTNER_TRACE_SECRET', 72);
    try {
      const p = testPatient();
      const message = await sendOru(ctx, p);
      const controlId = controlIdOf(message);
      const key = `LABSYS^ACMELAB^${controlId}`;
      // Four laboratory Observations: four deliveries, each answered 200.
      await waitFor('four deliveries queued', async () => ((await deliveries(partner)).length === 4 ? true : undefined), 20_000);
      await waitFor('four webhooks received', async () => {
        await deliveryPass();
        return receiver.received.length >= 4 ? true : undefined;
      }, 20_000);
      const tasks = await deliveries(partner);
      expect(tasks.map((t) => t.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
      const [ledger] = await client.searchResources('MessageHeader', { _tag: `${MESSAGE_KEY_SYSTEM}|${key}` });
      const bot = await partnerWebhookBot();

      const { lines, io } = capture();
      const hub = hubTarget();
      expect(await runTraceCommand(hub, [controlId], io)).toBe(0);
      const report = await traceChain(client, controlId);

      // Ops reads no clinical data: its trace still reaches every delivery and the partner's
      // answer, through the AuditEvents of the runs and the Tasks they queued.
      const asOps = await traceChain(await opsClient(), controlId);
      const opsObservations = writtenObservations(asOps);
      expect(opsObservations).toHaveLength(4);
      for (const written of opsObservations) {
        expect(written.problem).toMatch(/^cannot be read \(Forbidden\): runs since the message/);
        expect(written.versions.flatMap((v) => v.deliveries)).toEqual([
          expect.objectContaining({ queue: 'partner-delivery', destination: `Endpoint/${partner.endpoint.id}`, status: 'completed', response: 'HTTP 200' }),
        ]);
      }

      // The ledger entry: sender, control id, type, outcome, ACK.
      expect(report).toMatchObject({ found: true, resolvedAs: ['hl7-message'] });
      expect(report.messages).toHaveLength(1);
      const [traced] = report.messages;
      expect(traced).toMatchObject({ key, controlId, type: 'ORU^R01', sender: 'ACMELAB/LABSYS' });
      expect(traced.receptions).toHaveLength(1);
      const [reception] = traced.receptions;
      expect(reception).toMatchObject({ ledger: `MessageHeader/${ledger.id}`, outcome: 'committed', ackCode: 'AA', replay: false });

      // The resources written: everything the ledger names, the Patient among them.
      expect(reception.written?.map((w) => w.reference).sort()).toEqual((ledger.focus ?? []).map((f) => f.reference).sort());
      const patient = reception.written?.find((w) => w.reference.startsWith('Patient/'));
      expect(patient?.versions).toHaveLength(1);
      const observations = writtenObservations(report);
      expect(observations).toHaveLength(4);

      // Each Observation version → the partner-webhook run → its delivery Task → HTTP 200.
      for (const written of observations) {
        const observation = await client.readReference<Observation>({ reference: written.reference } as { reference: string });
        expect(written.versions.map((v) => v.versionId)).toEqual([observation.meta?.versionId]);
        const [version] = written.versions;
        const focus = `${written.reference}/_history/${version.versionId}`;
        const task = tasks.find((t) => t.focus?.reference === focus) as WithId<Task>;
        expect(version.deliveries).toEqual([
          expect.objectContaining({ task: `Task/${task.id}`, queue: 'partner-delivery', destination: `Endpoint/${partner.endpoint.id}`, status: 'completed', state: 'delivered', attempts: 1, response: 'HTTP 200' }),
        ]);
        // The receiver got exactly this delivery (webhook-id is the Task id) for this version.
        const received = receiver.received.filter((r) => r.headers['webhook-id'] === task.id);
        expect(received.map((r) => notificationFocus(r.rawBody))).toEqual([focus]);
        expect(version.runs).toContainEqual(
          expect.objectContaining({ kind: 'bot run', observer: `Bot/${bot.id}`, subscription: `Subscription/${partner.subscription.id}`, outcome: 'success', detail: expect.stringContaining(`Task/${task.id}`) })
        );
        expect(lines.some((l) => l.includes(`Task/${task.id}`) && l.includes('HTTP 200') && l.includes('delivered'))).toBe(true);
      }
      expect(lines.some((l) => l.includes(`MessageHeader/${ledger.id}`) && l.includes('committed') && l.includes('ACK AA'))).toBe(true);
      const json = capture();
      expect(await runTraceCommand(hub, [key, '--json'], json.io)).toBe(0);
      expect((JSON.parse(json.lines.join('\n')) as TraceReport).messages[0].receptions[0].ledger).toBe(`MessageHeader/${ledger.id}`);
      expectNoPhi([...lines, ...json.lines].join('\n'), p);

      // Backwards: from an Observation to the message that wrote it, and forward to its delivery.
      const [first] = observations;
      const back = await traceChain(client, first.reference);
      expect(back).toMatchObject({ found: true, resolvedAs: ['resource'] });
      expect(back.resource?.reference).toBe(first.reference);
      expect(back.resource?.versions[0]).toMatchObject({ versionId: first.versions[0].versionId, writtenBy: `MessageHeader/${ledger.id}` });
      expect(back.resource?.versions[0].deliveries.map((d) => d.task)).toEqual(first.versions[0].deliveries.map((d) => d.task));
      expect(back.messages.map((m) => m.key)).toEqual([key]);
      expect(back.messages[0].receptions.map((r) => r.ledger)).toEqual([`MessageHeader/${ledger.id}`]);

      // The ledger entry and a delivery Task lead to the same chain.
      const byEntry = await traceChain(client, `MessageHeader/${ledger.id}`);
      expect(writtenObservations(byEntry).map((w) => w.reference).sort()).toEqual(observations.map((w) => w.reference).sort());
      const byTask = await traceChain(client, first.versions[0].deliveries[0].task);
      expect(byTask.resolvedAs).toEqual(['delivery']);
      expect(byTask.resource?.versions.map((v) => v.writtenBy)).toEqual([`MessageHeader/${ledger.id}`]);
    } finally {
      await retire(partner);
      await receiver.stop();
    }
  });

  test('a partner answering 500: the trace shows the delivery retrying, and dead-lettered past its window', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const secret = generateWebhookSecret();
    await setSecret('PARTNER_TRACE_FAILING_SECRET', secret);
    const receiver = new WebhookReceiver(secret);
    receiver.status = 500;
    const url = await receiver.start();
    const retrying = await createPartner('Trace partner retrying', url, 'PARTNER_TRACE_FAILING_SECRET', 72);
    const deadLetter = await createPartner('Trace partner, no retry window', url, 'PARTNER_TRACE_FAILING_SECRET', 0);
    try {
      const p = testPatient();
      const controlId = controlIdOf(await sendOru(ctx, p));
      await waitFor('the deliveries tried and failed', async () => {
        await deliveryPass();
        const [a, b] = [await deliveries(retrying), await deliveries(deadLetter)];
        const tried = a.length === 4 && a.every((t) => t.businessStatus?.coding?.[0]?.code === 'retrying');
        return tried && b.length === 4 && b.every((t) => t.status === 'failed') ? true : undefined;
      }, 20_000);

      const { lines, io } = capture();
      const hub = hubTarget();
      expect(await runTraceCommand(hub, [controlId], io)).toBe(0);
      const report = await traceChain(client, controlId);
      const observations = writtenObservations(report);
      expect(observations).toHaveLength(4);
      for (const written of observations) {
        const [version] = written.versions;
        const byPartner = new Map(version.deliveries.map((d) => [d.destination, d]));
        expect(byPartner.get(`Endpoint/${retrying.endpoint.id}`)).toMatchObject({ status: 'requested', state: 'retrying', response: 'HTTP 500', nextAttempt: expect.any(String) });
        expect(byPartner.get(`Endpoint/${retrying.endpoint.id}`)?.attempts).toBeGreaterThanOrEqual(1);
        expect(byPartner.get(`Endpoint/${deadLetter.endpoint.id}`)).toMatchObject({ status: 'failed', state: 'dead-letter', attempts: 1, response: 'HTTP 500' });
      }
      expect(lines.some((l) => l.includes(`→ Endpoint/${retrying.endpoint.id}`) && l.includes('retrying') && l.includes('HTTP 500'))).toBe(true);
      expect(lines.some((l) => l.includes(`→ Endpoint/${deadLetter.endpoint.id}`) && l.includes('dead-letter') && l.includes('HTTP 500'))).toBe(true);
      expectNoPhi(lines.join('\n'), p);
    } finally {
      await retire(retrying, deadLetter);
      await receiver.stop();
    }
  });

  test('an HL7 batch file from SFTP: from its name to its messages and what they wrote, and from a message back to the file', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const server = await new SftpTestServer({ users: [{ username: 'hub', password: 'trace-e2e-password' }] }).start();
    const source = await client.createResource<Endpoint>({
      resourceType: 'Endpoint',
      status: 'active',
      name: 'trace-batch',
      identifier: [{ system: SFTP_SOURCE_SYSTEM, value: 'trace-batch' }],
      connectionType: { ...SFTP_INBOUND_CONNECTION },
      payloadType: [{ coding: [{ system: FILE_FORMAT_SYSTEM, code: 'hl7v2-batch' }] }],
      address: `sftp://${server.host}:${server.port}/trace`,
      extension: [
        { url: SftpExtension.username, valueString: 'hub' },
        { url: SftpExtension.credentialSecret, valueString: 'SFTP_TRACE_PASSWORD' },
        { url: SftpExtension.hostKey, valueString: server.hostKeySha256 },
        { url: SftpExtension.archiveFolder, valueString: '/trace/archive' },
        { url: SftpExtension.errorFolder, valueString: '/trace/error' },
        { url: SftpExtension.filePattern, valueString: '*.hl7' },
        { url: SftpExtension.minAgeSeconds, valueInteger: 60 },
        { url: SftpExtension.senderFacility, valueString: 'NSH' },
      ],
    });
    try {
      await setSecret('SFTP_TRACE_PASSWORD', 'trace-e2e-password');
      const [a, b] = [testPatient('Filetrace', 'Ann'), testPatient('Filetrace', 'Ben')];
      const messages = [adtA01(a), oruR01(b)];
      const file = ['FHS|^~\\&|EPIC|NSH|HUB|HUB|20240315080000', 'BHS|^~\\&|EPIC|NSH|HUB|HUB|20240315080000', ...messages, 'BTS|2', 'FTS|1'].join('\r\n') + '\r\n';
      // The file name carries a patient's name, as partners' file names sometimes do.
      const name = `results-${a.family}-${a.mrn}.hl7`;
      await server.put(`/trace/${name}`, file, { mtime: new Date(Date.now() - 10 * 60_000) });
      const sftpBot = (await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|sftp-inbound` })) as WithId<Bot>;
      await client.executeBot({ system: BOT_NAME_SYSTEM, value: 'sftp-inbound' }, sftpBot, 'application/fhir+json');
      const tasks = await client.searchResources('Task', { code: 'https://fhir.integration-hub.dev/CodeSystem/hub-task|sftp-file', _count: '100' });
      const task = tasks.find((t) => t.input?.some((i) => i.type?.text === 'file name' && i.valueString === name)) as WithId<Task>;
      expect(task?.status).toBe('completed');

      const byName = await traceChain(client, name);
      expect(byName).toMatchObject({ found: true, resolvedAs: ['sftp-file'], subject: 'an SFTP file name' });
      expect(byName.notes).toEqual([]);
      expect(byName.files).toHaveLength(1);
      const [traced] = byName.files;
      expect(traced).toMatchObject({ task: `Task/${task.id}`, source: 'trace-batch', format: 'hl7v2-batch', messageCount: 2, outcome: 'processed' });
      expect(traced.messages.map((m) => m.controlId)).toEqual(messages.map(controlIdOf));
      for (const message of traced.messages) {
        expect(message.receptions).toHaveLength(1);
        expect(message.receptions[0]).toMatchObject({ outcome: 'committed', ackCode: 'AA', files: [{ task: `Task/${task.id}`, source: 'trace-batch' }] });
        expect(message.receptions[0].written?.some((w) => w.reference.startsWith('Patient/') && w.versions.length === 1)).toBe(true);
      }
      // And back: the ORU's MSH-10 leads to the file it came in.
      const byControlId = await traceChain(client, controlIdOf(messages[1]));
      expect(byControlId.messages[0].receptions[0].files).toEqual([{ task: `Task/${task.id}`, source: 'trace-batch' }]);

      const { lines, io } = capture();
      const hub = hubTarget();
      expect(await runTraceCommand(hub, [name], io)).toBe(0);
      expect(lines.some((l) => l.startsWith(`SFTP file Task/${task.id}`))).toBe(true);
      expect(lines.join('\n')).not.toContain('results-');
      expectNoPhi(lines.join('\n'), a);
      expectNoPhi(lines.join('\n'), b);
    } finally {
      await client.updateResource<Endpoint>({ ...(await client.readResource('Endpoint', source.id)), status: 'off' });
      await server.stop();
    }
  });

  test('an unknown id is not found, with exit code 1', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const hub = hubTarget();
    const unknown = capture();
    expect(await runTraceCommand(hub, ['NOSUCHCONTROLID42'], unknown.io)).toBe(1);
    expect(unknown.lines[0]).toMatch(/^Not found/);
    expect(unknown.lines.some((l) => l.includes('not found: no Metriport messageId, no MSH-10'))).toBe(true);
    const missing = capture();
    expect(await runTraceCommand(hub, ['Observation/does-not-exist'], missing.io)).toBe(1);
    expect(missing.lines.some((l) => l.includes('Observation/does-not-exist: not found'))).toBe(true);
    expect((await traceChain(client, 'NOPE^NOWHERE^NOSUCHCONTROLID42')).found).toBe(false);
    expect(await runTraceCommand(hub, [], capture().io)).toBe(2);
  });
});
