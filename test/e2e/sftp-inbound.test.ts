/**
 * SFTP inbound end to end: a real SFTP server (ssh2, on 127.0.0.1) holds partner folders; the
 * `sftp-inbound` cron bot, run as the cron worker runs it (its input is the Bot), takes the
 * complete files, records each once, writes what they hold through the same pipeline and writer
 * as MLLP messages, and moves them to the archive, or to the error folder with a reason file.
 * Cases: good, duplicate, partial (young or temporary names, a truncated batch), malformed (one
 * bad message among good ones, bad roster rows), and a server presenting another host key.
 */
import type { MedplumClient, WithId } from '@medplum/core';
import type { Bot, Coverage, Endpoint, MessageHeader, Observation, Patient, Task } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BOT_NAME_SYSTEM } from '../../src/constants.ts';
import { SFTP_FILE_TASK_CODE } from '../../src/sftp/ledger.ts';
import { ExportExtension, RESULT_COLUMNS, SFTP_OUTBOUND_CONNECTION } from '../../src/sftp/export.ts';
import { FILE_FORMAT_SYSTEM, SFTP_INBOUND_CONNECTION, SFTP_SOURCE_SYSTEM, SftpExtension } from '../../src/sftp/source.ts';
import { adtA01, adtWithoutPatientId, controlIdOf, SYSTEMS, testPatient } from '../support/hl7-messages.ts';
import { setProjectSecret } from '../support/partners.ts';
import { SftpTestServer } from '../support/sftp-server.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';

const PASSWORD = 'e2e-sftp-password';
const OLD = new Date(Date.now() - 10 * 60_000);

let server: SftpTestServer;
let target: E2eTarget;
let client: MedplumClient;
let bot: WithId<Bot>;
let skip: string | undefined;

/** Runs the cron bot once, as the cron worker would (its input is the Bot). */
async function poll(): Promise<{ sources: { source: string; files?: { name: string; outcome: string; movedTo?: string; text: string }[]; error?: string }[] }> {
  return (await client.executeBot({ system: BOT_NAME_SYSTEM, value: 'sftp-inbound' }, bot, 'application/fhir+json')) as never;
}

async function createSource(name: string, format: string, folder: string, pattern: string, overrides: { hostKey?: string; secret?: string } = {}): Promise<WithId<Endpoint>> {
  return client.createResource<Endpoint>({
    resourceType: 'Endpoint',
    status: 'active',
    name,
    identifier: [{ system: SFTP_SOURCE_SYSTEM, value: name }],
    connectionType: { ...SFTP_INBOUND_CONNECTION },
    payloadType: [{ coding: [{ system: FILE_FORMAT_SYSTEM, code: format }] }],
    address: `sftp://${server.host}:${server.port}${folder}`,
    extension: [
      { url: SftpExtension.username, valueString: 'hub' },
      { url: SftpExtension.credentialSecret, valueString: overrides.secret ?? 'SFTP_E2E_PASSWORD' },
      { url: SftpExtension.hostKey, valueString: overrides.hostKey ?? server.hostKeySha256 },
      { url: SftpExtension.archiveFolder, valueString: `${folder}/archive` },
      { url: SftpExtension.errorFolder, valueString: `${folder}/error` },
      { url: SftpExtension.filePattern, valueString: pattern },
      { url: SftpExtension.minAgeSeconds, valueInteger: 60 },
      { url: SftpExtension.senderFacility, valueString: 'NSH' },
    ],
  });
}

function batch(messages: string[], declaredCount = messages.length): string {
  return ['FHS|^~\\&|EPIC|NSH|HUB|HUB|20240315080000||batch-1.hl7', 'BHS|^~\\&|EPIC|NSH|HUB|HUB|20240315080000', ...messages, `BTS|${declaredCount}`, 'FTS|1'].join('\r\n') + '\r\n';
}

async function fileTask(name: string): Promise<WithId<Task>> {
  const tasks = await client.searchResources('Task', { code: `${SFTP_FILE_TASK_CODE.system}|${SFTP_FILE_TASK_CODE.code}`, _count: '100' });
  const task = tasks.find((t) => t.input?.some((i) => i.type?.text === 'file name' && i.valueString === name));
  expect(task, `the file Task of ${name}`).toBeDefined();
  return task as WithId<Task>;
}

async function patientByMrn(mrn: string): Promise<WithId<Patient> | undefined> {
  return client.searchOne('Patient', { identifier: `${SYSTEMS.mrn}|${mrn}` });
}

beforeAll(async () => {
  server = await new SftpTestServer({ users: [{ username: 'hub', password: PASSWORD }] }).start();
  target = await startE2eTarget();
  if (target.kind === 'stock') {
    skip = 'stock target: the test SFTP server listens on 127.0.0.1 only; run against the local runtime';
    return;
  }
  client = target.client;
  bot = (await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|sftp-inbound` })) as WithId<Bot>;
  await setProjectSecret(client, 'SFTP_E2E_PASSWORD', PASSWORD);
}, 60_000);

afterAll(async () => {
  await target?.stop();
  await server?.stop();
});

describe('SFTP inbound', () => {
  test('HL7 batches: good, duplicate, partial and malformed files', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const source = await createSource('northside-batch', 'hl7v2-batch', '/hl7', '*.hl7');
    const [a, b, c] = [testPatient('Batchley', 'Ann'), testPatient('Batchley', 'Ben'), testPatient('Batchley', 'Cal')];
    const good = batch([adtA01(a), adtA01(b)]);
    const withBadMessage = batch([adtA01(c), adtWithoutPatientId(testPatient())]);
    await server.put('/hl7/good.hl7', good, { mtime: OLD });
    await server.put('/hl7/mixed.hl7', withBadMessage, { mtime: OLD });
    await server.put('/hl7/truncated.hl7', batch([adtA01(testPatient())], 3), { mtime: OLD });
    await server.put('/hl7/young.hl7', good);
    await server.put('/hl7/uploading.hl7.part', good, { mtime: OLD });
    await server.put('/hl7/notes.txt', 'not a batch', { mtime: OLD });

    const report = await poll();
    const files = report.sources.find((s) => s.source === 'northside-batch')?.files ?? [];
    expect(files.map((f) => [f.name, f.outcome]).sort()).toEqual([
      ['good.hl7', 'processed'],
      ['mixed.hl7', 'processed'],
      ['truncated.hl7', 'rejected'],
    ]);
    // Good: both patients written, the file archived, its Task complete with the raw file.
    expect(await patientByMrn(a.mrn)).toBeDefined();
    expect(await patientByMrn(b.mrn)).toBeDefined();
    expect(await server.list('/hl7/archive')).toEqual(['good.hl7', 'mixed.hl7']);
    const goodTask = await fileTask('good.hl7');
    expect(goodTask.status).toBe('completed');
    expect(goodTask.input?.find((i) => i.type?.text === 'raw file')?.valueAttachment?.size).toBe(Buffer.byteLength(good));
    // Malformed message among good ones: the good one committed, the bad one dead-lettered on its own.
    expect(await patientByMrn(c.mrn)).toBeDefined();
    const badControlId = controlIdOf(withBadMessage.split('\r\n').filter((l) => l.startsWith('MSH'))[1]);
    const [deadLetter] = await client.searchResources('MessageHeader', { _tag: 'https://fhir.integration-hub.dev/CodeSystem/hl7-message-outcome|dead-letter', _count: '100' }).then((all) =>
      all.filter((m: MessageHeader) => JSON.stringify(m).includes(badControlId))
    );
    expect(deadLetter).toBeDefined();
    // Partial: a truncated batch is refused whole, with a reason file naming the line; nothing imported.
    expect(await server.list('/hl7/error')).toEqual(['truncated.hl7', 'truncated.hl7.reason.txt']);
    expect((await server.read('/hl7/error/truncated.hl7.reason.txt'))?.toString()).toMatch(/BTS-1 says 3 messages, the batch holds 1 \(line \d+\)/);
    // Young, temporary and non-matching files wait where they are.
    expect(await server.list('/hl7')).toEqual(['notes.txt', 'uploading.hl7.part', 'young.hl7']);

    // Duplicate: the same file again is archived without being processed a second time.
    await server.put('/hl7/good.hl7', good, { mtime: OLD });
    const before = await client.searchResources('MessageHeader', { _count: '1000' });
    const again = await poll();
    const duplicate = again.sources.find((s) => s.source === 'northside-batch')?.files?.find((f) => f.name === 'good.hl7');
    expect(duplicate?.outcome).toBe('duplicate');
    expect((await server.list('/hl7/archive')).filter((n) => n.startsWith('good.hl7'))).toHaveLength(2);
    expect(await client.searchResources('MessageHeader', { _count: '1000' })).toHaveLength(before.length);
    await client.updateResource<Endpoint>({ ...source, status: 'off' });
  });

  test('CSV rosters: rows written idempotently, bad rows reported by line, the file kept in the error folder', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const source = await createSource('northside-roster', 'csv-roster', '/rosters', '*.csv');
    const mrn = `R${Date.now()}`;
    const roster = [
      'mrn,mrn_authority,family,given,birth_date,sex,city,state,postal_code,payer_id,payer_name,member_id,plan_id',
      `${mrn}1,NSH,Okafor,Ada,1970-01-31,F,Chicago,IL,60614,AETNA60054,Aetna,W1,AETSEL`,
      `${mrn}2,NSH,Okafor,Obi,19720315,M,Chicago,IL,60614,,,,`,
      `${mrn}3,NSH,Okafor,Eze,1972-13-45,M,Chicago,IL,60614,,,,`,
      `${mrn}4,NSH,,Ije,1980-01-01,F,Chicago,IL,60614,,,,`,
    ].join('\r\n');
    await server.put('/rosters/roster-1.csv', roster, { mtime: OLD });
    const report = await poll();
    const file = report.sources.find((s) => s.source === 'northside-roster')?.files?.[0];
    expect(file?.outcome).toBe('partly-processed');
    const ada = await client.searchOne('Patient', { identifier: `${SYSTEMS.mrn}|${mrn}1` });
    expect(ada?.birthDate).toBe('1970-01-31');
    const [coverage] = await client.searchResources('Coverage', { beneficiary: `Patient/${ada?.id}` });
    expect((coverage as Coverage | undefined)?.subscriberId ?? coverage?.identifier?.[0]?.value).toBeDefined();
    expect(await client.searchOne('Patient', { identifier: `${SYSTEMS.mrn}|${mrn}2` })).toBeDefined();
    expect(await client.searchOne('Patient', { identifier: `${SYSTEMS.mrn}|${mrn}3` })).toBeUndefined();
    expect(await server.list('/rosters/error')).toEqual(['roster-1.csv', 'roster-1.csv.reason.txt']);
    const reason = (await server.read('/rosters/error/roster-1.csv.reason.txt'))?.toString() ?? '';
    expect(reason).toMatch(/line 4: birth_date/);
    expect(reason).toMatch(/line 5: family/);
    expect(reason).not.toContain('Ije');
    expect((await fileTask('roster-1.csv')).status).toBe('failed');

    // Fixed and sent again: the good rows change nothing, the fixed ones are written.
    const versionBefore = ada?.meta?.versionId;
    await server.put('/rosters/roster-1.csv', roster.replace('1972-13-45', '1972-12-05').replace(`${mrn}4,NSH,,Ije`, `${mrn}4,NSH,Okafor,Ije`), { mtime: OLD });
    const second = await poll();
    expect(second.sources.find((s) => s.source === 'northside-roster')?.files?.[0]?.outcome).toBe('processed');
    expect((await client.searchOne('Patient', { identifier: `${SYSTEMS.mrn}|${mrn}1` }))?.meta?.versionId).toBe(versionBefore);
    expect(await client.searchOne('Patient', { identifier: `${SYSTEMS.mrn}|${mrn}3` })).toBeDefined();
    expect(await server.list('/rosters/archive')).toEqual(['roster-1.csv']);
    await client.updateResource<Endpoint>({ ...source, status: 'off' });
  });

  test('names with search separators are still processed once; a file that is not UTF-8 is refused whole', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const source = await createSource('odd-files', 'hl7v2-batch', '/odd', '*.hl7');
    const content = batch([adtA01(testPatient('Comma', 'Carla'))]);
    await server.put('/odd/ward 3, bed 2|a\\b.hl7', content, { mtime: OLD });
    await server.put('/odd/latin1.hl7', Buffer.from(batch([adtA01(testPatient('Lef\u00e8vre', 'Zo\u00e9'))]), 'latin1'), { mtime: OLD });
    const first = (await poll()).sources.find((s) => s.source === 'odd-files')?.files ?? [];
    expect(first.map((f) => [f.name, f.outcome]).sort()).toEqual([
      ['latin1.hl7', 'rejected'],
      ['ward 3, bed 2|a\\b.hl7', 'processed'],
    ]);
    expect((await server.read('/odd/error/latin1.hl7.reason.txt'))?.toString()).toMatch(/not UTF-8/);
    await server.put('/odd/ward 3, bed 2|a\\b.hl7', content, { mtime: OLD });
    const second = (await poll()).sources.find((s) => s.source === 'odd-files')?.files ?? [];
    expect(second.map((f) => f.outcome)).toEqual(['duplicate']);
    await client.updateResource<Endpoint>({ ...source, status: 'off' });
  });

  test('scheduled export: changed results written as a CSV file (temporary name, then renamed), each change once', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const exportEndpoint = await client.createResource<Endpoint>({
      resourceType: 'Endpoint',
      status: 'active',
      name: 'results export',
      identifier: [{ system: SFTP_SOURCE_SYSTEM, value: 'results-export' }],
      connectionType: { ...SFTP_OUTBOUND_CONNECTION },
      payloadType: [{ coding: [{ system: FILE_FORMAT_SYSTEM, code: 'csv-results' }] }],
      address: `sftp://${server.host}:${server.port}/exports`,
      extension: [
        { url: SftpExtension.username, valueString: 'hub' },
        { url: SftpExtension.credentialSecret, valueString: 'SFTP_E2E_PASSWORD' },
        { url: SftpExtension.hostKey, valueString: server.hostKeySha256 },
        { url: ExportExtension.query, valueString: 'Observation?category=laboratory' },
        { url: ExportExtension.filePrefix, valueString: 'results-' },
      ],
    });
    const exportBot = (await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|sftp-export` })) as WithId<Bot>;
    const runExportBot = async (): Promise<{ rows: number; file?: string }[]> =>
      (await client.executeBot({ system: BOT_NAME_SYSTEM, value: 'sftp-export' }, exportBot, 'application/fhir+json')) as never;
    // Everything before this test is exported by a first run; the changes after it are the test's.
    await runExportBot();
    const before = await server.list('/exports');
    const patient = await client.createResource<Patient>({ resourceType: 'Patient', identifier: [{ system: SYSTEMS.mrn, value: `X${Date.now()}`, type: { coding: [{ code: 'MR' }] } }] });
    const lab = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] };
    const potassium = await client.createResource<Observation>({
      resourceType: 'Observation',
      status: 'final',
      category: [lab],
      subject: { reference: `Patient/${patient.id}` },
      code: { coding: [{ system: 'http://loinc.org', code: '2823-3', display: 'Potassium, "serum"' }] },
      valueQuantity: { value: 4.1, unit: 'mmol/L' },
    });
    await client.createResource<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'not a lab result' } });
    const [first] = await runExportBot();
    expect(first.rows).toBe(1);
    const added = (await server.list('/exports')).filter((n) => !before.includes(n));
    expect(added).toEqual([first.file?.split('/').pop()]);
    const csv = (await server.read(`/exports/${added[0]}`))?.toString() ?? '';
    expect(csv.split('\r\n')[0]).toBe(RESULT_COLUMNS.join(','));
    expect(csv).toContain(`${potassium.id},${patient.id},${SYSTEMS.mrn},${patient.identifier?.[0].value},http://loinc.org,2823-3,"Potassium, ""serum""",4.1,mmol/L,final`);
    // Written under a temporary name and renamed: never a partial file under the final name.
    const writes = server.operations.filter((o) => o.path?.startsWith('/exports/') && o.op === 'OPEN' && (o as { flags?: string }).flags !== 'r');
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.every((o) => o.path?.endsWith('.tmp'))).toBe(true);
    expect(server.operations.some((o) => o.op === 'RENAME' && o.path2 === first.file)).toBe(true);
    // Nothing changed: no file. A change: a file with just that change.
    expect((await runExportBot())[0].rows).toBe(0);
    await client.updateResource<Observation>({ ...potassium, valueQuantity: { value: 4.3, unit: 'mmol/L' } });
    const [third] = await runExportBot();
    expect(third.rows).toBe(1);
    expect((await server.read(third.file as string))?.toString()).toContain(',4.3,mmol/L,');
    await client.updateResource<Endpoint>({ ...exportEndpoint, status: 'off' });
  });

  test('a server presenting another host key is refused; a source missing its secret is reported; files stay', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const wrongKey = await createSource('impostor', 'hl7v2-batch', '/impostor', '*.hl7', { hostKey: 'SHA256:' + 'B'.repeat(43) });
    const noSecret = await createSource('no-secret', 'hl7v2-batch', '/nosecret', '*.hl7', { secret: 'SFTP_NOT_SET' });
    await server.put('/impostor/a.hl7', batch([adtA01(testPatient())]), { mtime: OLD });
    const report = await poll();
    expect(report.sources.find((s) => s.source === 'impostor')?.error).toMatch(/presented host key SHA256:.*not the pinned SHA256:B+: refused/);
    expect(report.sources.find((s) => s.source === `Endpoint/${noSecret.id}`)?.error).toMatch(/the bot secret SFTP_NOT_SET is not set/);
    expect(await server.list('/impostor')).toEqual(['a.hl7']);
    expect(server.operations.filter((o) => o.path?.startsWith('/impostor'))).toEqual([]);
    for (const endpoint of [wrongKey, noSecret]) {
      await client.updateResource<Endpoint>({ ...endpoint, status: 'off' });
    }
  });
});
