/**
 * "No PHI in process logs; PHI only in the FHIR record and its AuditEvents." The local runtime is
 * started with a capturing process log, and everything this test process writes to its console,
 * stdout and stderr is captured too; the hub CLI runs as a child process with its stdout and
 * stderr captured. Representative flows then carry distinctive patient data (a name, a birth
 * date, MRNs, an address): HL7 ADT and ORU over MLLP, a malformed message (AR), a dead-lettered
 * one (AE) and its replay, a partner webhook subscribed to patients (down, then up), and the
 * operator's commands (`hub hl7 stats`, `dead-letters`, `replay`, `import` of a file carrying the
 * same data in its content and its name, `hub partners deliveries`). None of the values may
 * appear in any captured output, while each must appear in the FHIR record: the check fails if
 * the fixtures stop carrying them.
 */
import type { MedplumClient, WithId } from '@medplum/core';
import type { Bot, Endpoint, MessageHeader, Patient, Task } from '@medplum/fhirtypes';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { BOT_NAME_SYSTEM } from '../../src/constants.ts';
import { MESSAGE_KEY_SYSTEM, messageKey, outcomeOf, readRawMessage } from '../../src/fhir/ledger.ts';
import { readHl7Message, readMessageHeader } from '../../src/hl7/message.ts';
import { generateWebhookSecret } from '../../src/outbound/standard-webhooks.ts';
import { adtA01, adtWithoutPatientId, oruR01, SYSTEMS, testPatient } from '../support/hl7-messages.ts';
import type { TestPatient } from '../support/hl7-messages.ts';
import { ackCode, MllpSender } from '../support/mllp-sender.ts';
import { createTestPartner, partnerDeliveries, runPartnerDeliveryPass, setProjectSecret } from '../support/partners.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import type { HubCliResult } from '../support/hub-cli.ts';
import { hubCliEnv, runHubCli } from '../support/hub-cli.ts';
import { waitFor } from '../support/wait.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';


const FAMILY = 'Zyxwvutsrq';
const GIVEN = 'Qponmlkjih';
/** PID-7 as sent, and as the record stores it. */
const BIRTH_HL7 = '19730419';
const BIRTH_FHIR = '1973-04-19';
const STREET = '4417 Vexqorn Lane';
const CITY = 'Quillbrook';

/** Puts the distinctive birth date and address in a fixture message (PID-7, IN1-18, PID-11). */
function withPhi(er7: string): string {
  return er7.replaceAll('19800102', BIRTH_HL7).replaceAll('12 Oak St^^Springfield^IL', `${STREET}^^${CITY}^IL`);
}

/** Sends a message over MLLP as raw framed bytes (for text a client library would refuse) and returns the ACK. */
function sendRaw(host: string, port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no ACK within 10 s'));
    }, 10_000);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\u001c\r');
      if (end >= 0) {
        clearTimeout(timer);
        socket.end();
        resolve(received.subarray(received.indexOf(0x0b) + 1, end).toString('utf8'));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(text, 'utf8'), Buffer.from([0x1c, 0x0d])]));
  });
}

describe('no PHI in process logs', () => {
  let target: E2eTarget;
  let client: MedplumClient;
  let env: NodeJS.ProcessEnv;
  let folder: string;
  let skip: string | undefined;
  /** Everything that went to a process log or console, by where it came from. */
  const captured: { source: string; text: string }[] = [];
  const senders: MllpSender[] = [];
  /** Every patient the flows carried, for their MRNs. */
  const patients: TestPatient[] = [];
  const phiPatient = (): TestPatient => {
    const patient = testPatient(FAMILY, GIVEN);
    patients.push(patient);
    return patient;
  };

  const capture = (source: string) => (...args: unknown[]) => {
    captured.push({ source, text: args.map((a) => (typeof a === 'string' ? a : a instanceof Uint8Array ? Buffer.from(a).toString('utf8') : String(a))).join(' ') });
  };

  beforeAll(async () => {
    // This process's own output: what the in-process runtime (and anything it calls) prints.
    for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
      const original = console[method].bind(console);
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        capture(`console.${method}`)(...args);
        original(...args);
      });
    }
    for (const [name, stream] of [['stdout', process.stdout], ['stderr', process.stderr]] as const) {
      const original = stream.write.bind(stream) as (...args: unknown[]) => boolean;
      vi.spyOn(stream, 'write').mockImplementation(((...args: unknown[]) => {
        capture(`process.${name}`)(args[0]);
        return original(...args);
      }) as typeof stream.write);
    }
    target = await startE2eTarget({ log: capture('runtime log') });
    if (target.kind === 'stock') {
      skip = "stock target: the server's process logs are its own and cannot be captured here";
      return;
    }
    client = target.client;
    env = hubCliEnv(target);
    folder = await mkdtemp(join(tmpdir(), 'hub-no-phi-'));
  });

  afterAll(async () => {
    for (const sender of senders) {
      await sender.close();
    }
    await target?.stop();
    vi.restoreAllMocks();
    if (folder) {
      await rm(folder, { recursive: true, force: true });
    }
  });

  /** Runs `hub ...` as a child process and captures its stdout and stderr. */
  async function hub(args: string[]): Promise<HubCliResult> {
    const result = await runHubCli(args, env);
    captured.push({ source: `hub ${args[0]} ${args[1]} (stdout)`, text: result.stdout }, { source: `hub ${args[0]} ${args[1]} (stderr)`, text: result.stderr });
    return result;
  }

  async function send(channel: string, er7: string): Promise<string> {
    const address = target.mllp(channel);
    if ('skip' in address) {
      throw new Error(address.skip);
    }
    const sender = new MllpSender(address.host, address.port);
    senders.push(sender);
    const [ack] = await sender.send(er7);
    return ack;
  }

  /** The ledger entry of a message, found by its key (sender and MSH-10; the MSH of `er7` is enough). */
  async function ledgerOf(er7: string): Promise<WithId<MessageHeader>> {
    const [entry] = await client.searchResources('MessageHeader', { _tag: `${MESSAGE_KEY_SYSTEM}|${messageKey(readMessageHeader(readHl7Message(er7)))}` });
    return entry;
  }

  /** A partner that receives patients: its scope, Endpoint and Subscription, as ops would set it up. */
  async function patientPartner(url: string, secret: string): Promise<WithId<Endpoint>> {
    await setProjectSecret(client, 'PARTNER_NO_PHI_E2E_SECRET', secret);
    const partner = await createTestPartner(client, {
      name: 'no-PHI e2e partner',
      url,
      secretName: 'PARTNER_NO_PHI_E2E_SECRET',
      windowHours: 72,
      scope: [{ resourceType: 'Patient', readonly: true }],
      criteria: 'Patient',
    });
    return partner.endpoint;
  }

  const deliveries = (endpoint: Endpoint): Promise<WithId<Task>[]> => partnerDeliveries(client, endpoint);
  const deliveryPass = (): Promise<void> => runPartnerDeliveryPass(client);

  /** The distinctive values, in the forms they could be printed in. */
  function phiValues(): string[] {
    return [FAMILY, GIVEN, BIRTH_HL7, BIRTH_FHIR, STREET, 'Vexqorn', CITY, ...patients.map((p) => p.mrn)];
  }

  test('HL7 over MLLP, a partner webhook and the operator commands: the values reach the record, never a log', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const secret = generateWebhookSecret();
    const receiver = new WebhookReceiver(secret);
    const url = await receiver.start();
    try {
      receiver.status = 503;
      const partner = await patientPartner(url, secret);

      // ADT A01 and an A08 (same address) from the ADT system, an ORU from the lab: committed.
      const p = phiPatient();
      const a01 = withPhi(adtA01(p));
      expect(ackCode(await send('northside-adt', a01))).toBe('AA');
      const a08 = withPhi(adtA01(p, { event: 'A08', time: '20240316101500' }));
      expect(ackCode(await send('northside-adt', a08))).toBe('AA');
      const oru = withPhi(oruR01(p));
      expect(ackCode(await send('acme-lab', oru))).toBe('AA');

      // Malformed: a stray line of free text (patient data in it) inside the message: AR.
      const wellFormed = withPhi(adtA01(phiPatient(), { event: 'A08' }));
      const malformed = wellFormed + `\r${FAMILY.toLowerCase()} ${GIVEN} lives at ${STREET}`;
      const listener = target.mllp('northside-adt') as { host: string; port: number };
      const malformedAck = await sendRaw(listener.host, listener.port, malformed);
      expect(ackCode(malformedAck)).toBe('AR');
      expect(outcomeOf(await ledgerOf(wellFormed))).toBe('rejected');

      // Dead-lettered: the A01 without its patient identifier: AE.
      const dead = withPhi(adtWithoutPatientId(phiPatient()));
      expect(ackCode(await send('northside-adt', dead))).toBe('AE');
      const deadEntry = await ledgerOf(dead);
      expect(outcomeOf(deadEntry)).toBe('dead-letter');

      // The partner is down, then up: the patient's delivery is retried, then sent.
      const queued = await waitFor('the patient delivery queued', async () => {
        const tasks = await deliveries(partner);
        return tasks.length > 0 ? tasks : undefined;
      }, 20_000);
      await deliveryPass();
      expect(receiver.received.length).toBeGreaterThan(0);
      const listing = await hub(['partners', 'deliveries', '--limit', '100']);
      expect(listing.code).toBe(0);
      expect(listing.stdout).toContain(`Task/${queued[0].id}`);
      receiver.status = 200;
      const before = receiver.received.length;
      await deliveryPass();
      const sent = receiver.received.slice(before).map((r) => r.rawBody.toString('utf8'));
      // What the partner may receive, it receives: the record, not the logs, carries the data.
      expect(sent.some((body) => body.includes(FAMILY) && body.includes(BIRTH_FHIR))).toBe(true);

      // The operator's commands.
      const stats = await hub(['hl7', 'stats']);
      expect(stats.code).toBe(0);
      expect(stats.stdout).toContain('NORTHSIDE/ADTSYS');
      const letters = await hub(['hl7', 'dead-letters', '--limit', '1000']);
      expect(letters.code).toBe(0);
      expect(letters.stdout).toContain(`MessageHeader/${deadEntry.id}`);
      const replay = await hub(['hl7', 'replay', deadEntry.id, '--timeout', '30']);
      expect(replay.code, replay.stdout + replay.stderr).toBe(1);
      expect(replay.stdout).toContain(`MessageHeader/${deadEntry.id}`);
      expect(replay.stderr).toMatch(/^hl7 replay: 1\/1 in \S+: 0 completed, 1 failed$/m);

      // An import of a file whose content and name carry the same data: one committed, one dead-lettered.
      const q = phiPatient();
      const importedDead = withPhi(adtWithoutPatientId(phiPatient()));
      const file = join(folder, `${FAMILY}-${GIVEN}-${BIRTH_HL7}.hl7`);
      await writeFile(file, [withPhi(adtA01(q)), importedDead].join('\r\n'));
      const imported = await hub(['hl7', 'import', file]);
      expect(imported.code, imported.stdout + imported.stderr).toBe(1);
      expect(imported.stdout).toContain('Imported 2 message(s): AA 1, AE 1, AR 0');
      expect(imported.stderr).toMatch(/^hl7 import: 2\/2 in \S+: AA 1, AE 1, AR 0$/m);

      // The operator's views of the same traffic: status (table, JSON, the page's data) and traces.
      expect((await hub(['status'])).code).toBe(0);
      expect((await hub(['status', '--json'])).code).toBe(0);
      for (const message of [wellFormed, dead]) {
        expect((await hub(['trace', readMessageHeader(readHl7Message(message)).controlId])).code).toBe(0);
      }
      const [tracedPatient] = await client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` });
      expect((await hub(['trace', `Patient/${tracedPatient.id}`])).code).toBe(0);
      const page = await fetch(new URL('hub/status.json', target.baseUrl), {
        headers: { authorization: 'Basic ' + Buffer.from(`${env.MEDPLUM_CLIENT_ID}:${env.MEDPLUM_CLIENT_SECRET}`).toString('base64') },
      });
      expect(page.status).toBe(200);
      captured.push({ source: 'status page JSON', text: await page.text() });

      // The values are in the FHIR record: the patients, and the raw text of the messages not committed.
      for (const patient of [p, q]) {
        const [stored] = await client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${patient.mrn}` });
        expect(stored as Patient).toMatchObject({
          name: [expect.objectContaining({ family: FAMILY, given: expect.arrayContaining([GIVEN]) })],
          birthDate: BIRTH_FHIR,
          address: [expect.objectContaining({ line: [STREET], city: CITY })],
        });
      }
      for (const entry of [deadEntry, await ledgerOf(wellFormed), await ledgerOf(importedDead)]) {
        const raw = await readRawMessage(client, entry);
        expect(raw).toContain(FAMILY);
        expect(raw).toContain(BIRTH_HL7);
        expect(raw).toContain(STREET);
      }
      // The bot runs that did not commit logged to their AuditEvents (the FHIR record), which is allowed.
      const audits = await client.searchResources('AuditEvent', { entity: `Bot/${((await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|hl7-inbound` })) as WithId<Bot>).id}`, _count: '50' });
      expect(audits.some((a) => a.outcomeDesc?.includes(readMessageHeader(readHl7Message(dead)).controlId))).toBe(true);
    } finally {
      await receiver.stop();
    }

    // What was captured is real output: the runtime logged its channels, the CLI its counts.
    const sources = new Set(captured.map((c) => c.source));
    expect(sources).toContain('runtime log');
    expect(captured.filter((c) => c.source === 'runtime log').length).toBeGreaterThan(10);
    expect(captured.some((c) => c.source.startsWith('hub hl7 import') && c.text.includes('MSH-10'))).toBe(true);
    expect(captured.some((c) => c.source.startsWith('hub trace') && c.text.includes('MessageHeader/'))).toBe(true);
    expect(captured.some((c) => c.source === 'status page JSON' && c.text.includes('deadLetters'))).toBe(true);

    const leaks = captured.flatMap((c) =>
      phiValues()
        .filter((value) => c.text.toLowerCase().includes(value.toLowerCase()))
        .map((value) => `${c.source}: ${value} in ${JSON.stringify(c.text.slice(Math.max(0, c.text.toLowerCase().indexOf(value.toLowerCase()) - 80), c.text.toLowerCase().indexOf(value.toLowerCase()) + 80))}`)
    );
    expect(leaks).toEqual([]);
  });
});
