import type { MedplumClient, WithId } from '@medplum/core';
import type { ClientApplication, Coding, MessageHeader, Organization, Task } from '@medplum/fhirtypes';
import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TestContext } from 'vitest';
import { BOT_NAME_SYSTEM, HL7_SENDER_SYSTEM, SENDER_TIMEZONE_EXTENSION } from '../../src/constants.ts';
import { findManaged } from '../../src/deploy/managed.ts';
import { MESSAGE_KEY_SYSTEM, messageKey, outcomeOf } from '../../src/fhir/ledger.ts';
import { readHl7Message, readMessageHeader } from '../../src/hl7/message.ts';
import { CHART_COLORS } from '../../src/ops/status-html.ts';
import { METRIPORT_WEBHOOK_TASK_CODE } from '../../src/metriport/constants.ts';
import { TASK_OUTCOME_SYSTEM } from '../../src/metriport/task-outcome.ts';
import { DELIVERY_TASK_CODE } from '../../src/outbound/delivery.ts';
import { LAB_ORDER_TASK_CODE } from '../../src/outbound/lab-orders.ts';
import { DELIVERY_STATE_SYSTEM } from '../../src/outbound/queue.ts';
import type { ChannelCounts, ChannelStatus, HubStatus } from '../../src/ops/status-model.ts';
import { emptyCounts } from '../../src/ops/status-model.ts';
import { collectStatus } from '../../src/ops/status.ts';
import { createStatusPageHandler } from '../../src/ops/status-page.ts';
import { chromiumMissing, launchChromium } from '../support/chromium.ts';
import { adtA01, testPatient, unsupportedQuery, vxuV04 } from '../support/hl7-messages.ts';
import type { TestPatient } from '../support/hl7-messages.ts';
import { ackCode, MllpSender } from '../support/mllp-sender.ts';
import { countColour, decodePng } from '../support/png.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import type { HubCliResult } from '../support/hub-cli.ts';
import { adminCredentials, hubCliEnv, runHubCli } from '../support/hub-cli.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** The little of the DOM the page-side callbacks use. */
interface DomNode {
  getAttribute(name: string): string | null;
  readonly textContent: string | null;
  querySelectorAll(selector: string): Iterable<DomNode>;
}

/**
 * The status page end to end in headless Chromium (Debian's, driven by playwright-core), served
 * by the local runtime (or, against a stock server, by the same handler started here), and
 * `hub status` as a child process. HL7 messages go through MLLP: two ADTs that commit, a query
 * answered AR, and a VXU from a sender whose settings name a time zone that does not exist, so
 * it is dead-lettered. The page, logged in with the admin client's id and secret (HTTP Basic),
 * must show exactly those counts, bars in its chart (checked in the DOM and in the pixels of a
 * screenshot), and the dead letter; after the sender's settings are fixed, the dead letter's
 * Replay button commits it, and the page shows the new counts without being reloaded.
 */
describe('hub status page', () => {
  let target: E2eTarget;
  let client: MedplumClient;
  let credentials: { clientId: string; clientSecret: string };
  let pageUrl: string;
  let standalone: Server | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page | undefined;
  const senders: MllpSender[] = [];
  const cleanup: string[] = [];
  const missing = chromiumMissing();

  const patient: TestPatient = testPatient('Quenby', 'Odalys');
  const facility = `E2ESTAT${patient.tag}`;
  let baseline: HubStatus;
  let sender: WithId<Organization>;
  let deadLetterId: string;
  /** Whether the page's Replay button committed the dead letter (the browser test ran). */
  let replayed = false;

  beforeAll(async () => {
    target = await startE2eTarget();
    client = target.client;
    credentials = adminCredentials(target);
    if (target.kind === 'local') {
      pageUrl = `${target.baseUrl}hub/status`;
    } else {
      // A stock server does not serve the page: run the same handler here, as `hub status --serve` does.
      const handler = createStatusPageHandler({ baseUrl: target.baseUrl });
      standalone = createServer((req, res) => void handler(req, res));
      await new Promise<void>((resolve) => standalone?.listen(0, '127.0.0.1', resolve));
      pageUrl = `http://127.0.0.1:${(standalone.address() as AddressInfo).port}/hub/status`;
    }
    if (!missing) {
      browser = await launchChromium();
    }
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    for (const s of senders) {
      await s.close();
    }
    for (const reference of cleanup.reverse()) {
      const [type, id] = reference.split('/');
      await client.deleteResource(type as 'Organization', id).catch(() => undefined);
    }
    await new Promise<void>((resolve) => (standalone ? standalone.close(() => resolve()) : resolve()));
    await target?.stop();
  });

  /** Delivers a message over MLLP when the target exposes the channel, else with `Bot/$execute` (the same pipeline). */
  async function deliver(channel: string, er7: string): Promise<string> {
    const address = target.kind === 'local' ? target.mllp(channel) : target.mllp('northside-adt');
    if (!('skip' in address)) {
      const s = channel === 'state-iis' && target.kind === 'local' ? new MllpSender(address.host, address.port, '2.5.1', 'latin1') : new MllpSender(address.host, address.port);
      senders.push(s);
      const [ack] = await s.send(er7);
      return ack;
    }
    return String(await client.executeBot({ system: BOT_NAME_SYSTEM, value: 'hl7-inbound' }, er7, 'x-application/hl7-v2+er7'));
  }

  function basic(): string {
    return `Basic ${Buffer.from(`${credentials.clientId}:${credentials.clientSecret}`).toString('base64')}`;
  }

  function countsOfKey(status: HubStatus, key: string): ChannelCounts {
    return status.channels.find((c) => c.key === key)?.counts ?? emptyCounts();
  }

  function countsOf(status: HubStatus, name: string): ChannelCounts {
    return status.channels.find((c) => c.kind === 'hl7' && c.name === name)?.counts ?? emptyCounts();
  }

  /** The counts a channel's row on the page shows. */
  async function rowCounts(name: string): Promise<Record<string, number> | undefined> {
    return (page as Page).evaluate((channel) => {
      // Runs in the page (the test's TypeScript has no DOM library).
      const { document } = globalThis as unknown as { document: DomNode };
      const row = [...document.querySelectorAll('#channels tbody tr')].find((r) => r.getAttribute('data-name') === channel);
      if (!row) {
        return undefined;
      }
      return Object.fromEntries([...row.querySelectorAll('td[data-count]')].map((td) => [td.getAttribute('data-count'), Number(td.textContent)]));
    }, name);
  }

  function requireBrowser(ctx: TestContext): Page {
    if (missing) {
      ctx.skip(missing);
    }
    // With Chromium installed these are failures, never skips: a browser that does not start or a
    // page an earlier test did not open must not pass unnoticed.
    if (!browser) {
      throw new Error('Chromium is installed but did not start (see beforeAll)');
    }
    if (!page) {
      throw new Error('the page was not opened: an earlier test in this file failed or was filtered out');
    }
    return page as Page;
  }

  /** `hub ...` as a child process against the target. */
  function hub(args: string[]): Promise<HubCliResult> {
    return runHubCli(args, hubCliEnv(target));
  }

  test('messages through MLLP: two commit, one is rejected, one is dead-lettered', async () => {
    baseline = await collectStatus(client);
    sender = await client.createResource<Organization>({
      resourceType: 'Organization',
      name: `${facility} (HL7 sender settings, e2e)`,
      identifier: [{ system: HL7_SENDER_SYSTEM, value: facility }],
      extension: [{ url: SENDER_TIMEZONE_EXTENSION, valueString: 'America/Chicgo' }],
    });
    cleanup.push(`Organization/${sender.id}`);

    expect(ackCode(await deliver('northside-adt', adtA01(patient)))).toBe('AA');
    expect(ackCode(await deliver('northside-adt', adtA01(testPatient('Ibsen', 'Maren'))))).toBe('AA');
    expect(ackCode(await deliver('northside-adt', unsupportedQuery()))).toBe('AR');
    // RXA-3 without a UTC offset, from a sender whose time zone does not exist: AE, dead letter.
    const vxu = vxuV04(patient).replace('|IISAPP|STATEIIS|', `|IISAPP|${facility}|`).replace(/\rRXA\|0\|1\|20240301\|/, '\rRXA|0|1|202403011015|');
    expect(ackCode(await deliver('state-iis', vxu))).toBe('AE');
    const [entry] = await client.searchResources('MessageHeader', { _tag: `${MESSAGE_KEY_SYSTEM}|${messageKey(readMessageHeader(readHl7Message(vxu)))}` });
    expect(outcomeOf(entry as MessageHeader)).toBe('dead-letter');
    deadLetterId = entry.id;
  });

  test('without credentials: 401 with a Basic challenge, for the page and its data', async () => {
    for (const url of [pageUrl, `${pageUrl}.json`]) {
      const response = await fetch(url);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm="hub status"/);
    }
    const wrong = await fetch(`${pageUrl}.json`, { headers: { authorization: `Basic ${Buffer.from(`${credentials.clientId}:wrong`).toString('base64')}` } });
    expect(wrong.status).toBe(401);
    const refused = await fetch(`${pageUrl}/replay`, { method: 'POST', headers: { authorization: basic(), 'content-type': 'text/plain' }, body: '{}' });
    expect(refused.status).toBe(415);
  });

  test('the page in Chromium: 401 without credentials; with them, the counts sent, a chart with bars, the dead letter', async (ctx) => {
    if (missing) {
      ctx.skip(missing);
      return;
    }
    if (!browser) {
      throw new Error('Chromium is installed but did not start (see beforeAll)');
    }
    // Without credentials the server's challenge reaches the browser, which has nothing to answer it with.
    const anonymous = await browser.newContext();
    const anonymousPage = await anonymous.newPage();
    const challenges: { status: number; challenge?: string }[] = [];
    anonymousPage.on('response', (r) => challenges.push({ status: r.status(), challenge: r.headers()['www-authenticate'] }));
    await anonymousPage.goto(pageUrl).catch((err: Error) => expect(err.message).toContain('ERR_INVALID_AUTH_CREDENTIALS'));
    expect(challenges).toContainEqual({ status: 401, challenge: expect.stringMatching(/^Basic realm="hub status"/) });
    await anonymous.close();

    context = await browser.newContext({ httpCredentials: { username: credentials.clientId, password: credentials.clientSecret }, viewport: { width: 1400, height: 1200 } });
    page = await context.newPage();
    const response = await page.goto(`${pageUrl}?refresh=1`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("default-src 'none'");
    await page.waitForSelector('#meta[data-generated-at]', { timeout: 15_000 });

    const adt = countsOf(baseline, 'NORTHSIDE/ADTSYS');
    const ehr = countsOf(baseline, 'NORTHSIDE/EHR');
    expect(await rowCounts('NORTHSIDE/ADTSYS')).toMatchObject({ received: adt.received + 2, committed: adt.committed + 2, rejected: adt.rejected, deadLettered: adt.deadLettered });
    expect(await rowCounts('NORTHSIDE/EHR')).toMatchObject({ received: ehr.received + 1, rejected: ehr.rejected + 1 });
    expect(await rowCounts(`${facility}/IISAPP`)).toMatchObject({ received: 1, committed: 0, deadLettered: 1, resolved: 0 });
    const total = Number(await page.locator('#totals [data-count="received"] .value').textContent());
    expect(total).toBe(baseline.total.counts.received + 4);

    // The chart: bars in the DOM with heights, and their colours in the screenshot's pixels.
    const bars = await page.$$eval('#chart rect.bar', (rects) => rects.map((r) => ({ cls: r.getAttribute('class'), height: Number(r.getAttribute('height')) })));
    expect(bars.filter((b) => b.cls === 'bar throughput' && b.height > 0).length).toBeGreaterThan(0);
    expect(bars.filter((b) => b.cls === 'bar errors' && b.height > 0).length).toBeGreaterThan(0);
    const image = decodePng(await page.locator('#chart').screenshot());
    expect(image.width).toBeGreaterThan(700);
    expect(countColour(image, CHART_COLORS.throughput)).toBeGreaterThan(200);
    expect(countColour(image, CHART_COLORS.errors)).toBeGreaterThan(200);

    // The dead letter, listed with what it is and why, without patient data.
    const row = page.locator(`#dead-letters tr[data-kind="hl7-message"][data-id="${deadLetterId}"]`);
    await expect.poll(() => row.count()).toBe(1);
    const text = (await row.textContent()) ?? '';
    expect(text).toContain('VXU^V04');
    expect(text).toContain('RXA-3 (102)');
    const body = (await page.locator('body').textContent()) ?? '';
    for (const phi of [patient.family, patient.given, patient.mrn, '202403011015']) {
      expect(body).not.toContain(phi);
    }
  });

  test('counts change live: a new message, then the dead letter replayed with its button after the fix', async (ctx) => {
    const p = requireBrowser(ctx);
    // Marks this page load: a reload would lose it.
    await p.evaluate(() => Object.assign(globalThis, { loadMarker: 'first load' }));
    const before = (await rowCounts('NORTHSIDE/ADTSYS')) as Record<string, number>;
    expect(ackCode(await deliver('northside-adt', adtA01(testPatient('Vance', 'Tove'))))).toBe('AA');
    await expect.poll(async () => (await rowCounts('NORTHSIDE/ADTSYS'))?.received, { timeout: 15_000 }).toBe(before.received + 1);

    await client.updateResource<Organization>({ ...sender, extension: [{ url: SENDER_TIMEZONE_EXTENSION, valueString: 'America/Chicago' }] });
    await p.locator(`#dead-letters button.replay[data-id="${deadLetterId}"]`).click();
    await expect.poll(() => p.locator('#replay-result').textContent(), { timeout: 10_000 }).toMatch(/^Replay requested: MessageHeader\/.+ replay Task\/.+ created$/);
    await expect.poll(() => rowCounts(`${facility}/IISAPP`), { timeout: 45_000, interval: 500 }).toMatchObject({ received: 1, deadLettered: 0, resolved: 1 });
    expect(await p.locator(`#dead-letters tr[data-id="${deadLetterId}"]`).count()).toBe(0);
    expect(await p.evaluate(() => (globalThis as unknown as { loadMarker?: string }).loadMarker)).toBe('first load');
    expect(outcomeOf(await client.readResource('MessageHeader', deadLetterId))).toBe('resolved');
    replayed = true;

    // A second replay of the same entry is refused: it is no longer a dead letter.
    const again = await p.evaluate(
      async ([base, id]) => (await fetch(`${base}/replay`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ kind: 'hl7-message', id }) })).status,
      [new URL(pageUrl).pathname, deadLetterId]
    );
    expect(again).toBe(409);
  }, 90_000);

  test('`hub status` prints the same counts, as a table and as JSON, with no patient data', async () => {
    const json = await hub(['status', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const status = JSON.parse(json.stdout) as HubStatus;
    expect(status.invariantHolds).toBe(true);
    expect(countsOf(status, `${facility}/IISAPP`)).toMatchObject({ received: 1, committed: 0, deadLettered: replayed ? 0 : 1, resolved: replayed ? 1 : 0 });
    expect(countsOf(status, 'NORTHSIDE/EHR').rejected).toBe(countsOf(baseline, 'NORTHSIDE/EHR').rejected + 1);
    const table = await hub(['status']);
    expect(table.code, table.stderr).toBe(0);
    const [dead, resolved] = replayed ? [0, 1] : [1, 0];
    expect(table.stdout).toMatch(new RegExp(`^hl7 ${facility}/IISAPP\\s+1\\s+0\\s+0\\s+${dead}\\s+${resolved}\\s`, 'm'));
    expect(table.stdout).toContain('(holds for every channel)');
    for (const text of [json.stdout, table.stdout]) {
      for (const phi of [patient.family, patient.given, patient.mrn]) {
        expect(text).not.toContain(phi);
      }
    }
  });

  test('the page reads as the caller: the ops client sees the ledgers, a partner client none and may not replay', async (ctx) => {
    const clientOf = async (name: string): Promise<string | undefined> => {
      const [found] = (await findManaged(client, 'ClientApplication', name)) as WithId<ClientApplication>[];
      return found?.secret ? `Basic ${Buffer.from(`${found.id}:${found.secret}`).toString('base64')}` : undefined;
    };
    const [ops, partner] = [await clientOf('ops'), await clientOf('partner-acme-analytics')];
    if (!ops || !partner) {
      ctx.skip('the ops and partner-acme-analytics clients are not deployed on this target');
      return;
    }
    const asCaller = async (authorization: string): Promise<HubStatus> => (await fetch(`${pageUrl}.json`, { headers: { authorization } })).json() as Promise<HubStatus>;
    const admin = await asCaller(basic());
    const opsView = await asCaller(ops);
    expect(opsView.unavailable).toEqual([]);
    expect(opsView.channels.map((c) => [c.key, c.counts])).toEqual(admin.channels.map((c) => [c.key, c.counts]));
    const partnerView = await asCaller(partner);
    expect(partnerView.channels).toEqual([]);
    expect(partnerView.total.counts.received).toBe(0);
    expect(partnerView.unavailable.map((u) => u.source)).toContain('HL7 message ledger (MessageHeader)');
    const refused = await fetch(`${pageUrl}/replay`, {
      method: 'POST',
      headers: { authorization: partner, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'hl7-message', id: deadLetterId }),
    });
    expect([403, 404]).toContain(refused.status);
  });

  test('Task ledgers: partner, lab and Metriport items are counted, and their dead letters replayed through the page', async (ctx) => {
    if (target.kind !== 'local') {
      ctx.skip('ledger Tasks are written by hand only into the local runtime (a stock server may have live partners)');
      return;
    }
    const before = await collectStatus(client);
    const partner = before.channels.find((c) => c.kind === 'partner');
    const lab = before.channels.find((c) => c.kind === 'lab');
    if (!partner || !lab) {
      throw new Error('the seed partner Endpoint and lab Device are deployed with the hub');
    }
    // What the queues and the webhook receiver write (src/outbound/queue.ts, src/metriport/*): the
    // example partner is `off`, so nothing sends these.
    const authoredOn = new Date(Date.now() - 10 * 60_000).toISOString();
    const queued = (code: Coding, owner: string, status: Task['status'], businessStatus: Task['businessStatus']): Promise<WithId<Task>> =>
      client.createResource<Task>({ resourceType: 'Task', intent: 'order', status, authoredOn, code: { coding: [code] }, owner: { reference: owner }, businessStatus });
    const deadDelivery = await queued(DELIVERY_TASK_CODE, partner.key.slice('partner:'.length), 'failed', {
      coding: [{ system: DELIVERY_STATE_SYSTEM, code: 'dead-letter' }],
      text: 'not delivered within the retry window (3 attempt(s), last: HTTP 503)',
    });
    await queued(DELIVERY_TASK_CODE, partner.key.slice('partner:'.length), 'requested', { coding: [{ system: DELIVERY_STATE_SYSTEM, code: 'retrying' }], text: 'attempt 1 failed: HTTP 503' });
    await queued(LAB_ORDER_TASK_CODE, lab.key.slice('lab:'.length), 'failed', { text: 'not sendable: ServiceRequest.subject is not a Patient' });
    const metriport = await client.createResource<Task>({
      resourceType: 'Task',
      intent: 'order',
      status: 'failed',
      authoredOn,
      code: { coding: [{ ...METRIPORT_WEBHOOK_TASK_CODE }] },
      input: [{ type: { text: 'message type' }, valueString: 'medical.consolidated-data' }],
      businessStatus: { coding: [{ system: TASK_OUTCOME_SYSTEM, code: 'error' }], text: "download failed: 'https://example.invalid/x'" },
    });

    const get = async (): Promise<HubStatus> => (await fetch(`${pageUrl}.json`, { headers: { authorization: basic() } })).json() as Promise<HubStatus>;
    const status = await get();
    const channel = (key: string): ChannelStatus => status.channels.find((c) => c.key === key) as ChannelStatus;
    expect(channel(partner.key).counts).toMatchObject({ received: partner.counts.received + 2, deadLettered: partner.counts.deadLettered + 1, retrying: partner.counts.retrying + 1 });
    expect(channel(partner.key).oldestPendingAgeSeconds).toBeGreaterThanOrEqual(600);
    expect(channel(partner.key).lastError?.text).toBe('attempt 1 failed: HTTP 503');
    expect(channel(lab.key).counts.deadLettered).toBe(lab.counts.deadLettered + 1);
    expect(channel('metriport').counts.deadLettered).toBe(countsOfKey(before, 'metriport').deadLettered + 1);
    expect(status.invariantHolds).toBe(true);
    expect(status.deadLetters.find((d) => d.id === metriport.id)).toMatchObject({ kind: 'metriport-webhook', detail: 'medical.consolidated-data', error: "error: download failed: '…'", replayable: true });

    const replay = (kind: string, id: string): Promise<Response> =>
      fetch(`${pageUrl}/replay`, { method: 'POST', headers: { authorization: basic(), 'content-type': 'application/json', origin: new URL(pageUrl).origin }, body: JSON.stringify({ kind, id }) });
    expect((await replay('partner-delivery', deadDelivery.id)).status).toBe(200);
    expect(await client.readResource('Task', deadDelivery.id)).toMatchObject({ status: 'requested', businessStatus: { coding: [{ code: 'replayed' }] } });
    expect((await replay('partner-delivery', deadDelivery.id)).status).toBe(409);
    expect((await replay('metriport-webhook', metriport.id)).status).toBe(200);
    // The processing bot takes the re-driven message at once: its history shows it requested again.
    const history = await client.readHistory('Task', metriport.id);
    expect(history.entry?.some((e) => (e.resource as Task | undefined)?.status === 'requested')).toBe(true);
    const crossSite = await fetch(`${pageUrl}/replay`, {
      method: 'POST',
      headers: { authorization: basic(), 'content-type': 'application/json', origin: 'http://evil.example' },
      body: JSON.stringify({ kind: 'partner-delivery', id: deadDelivery.id }),
    });
    expect(crossSite.status).toBe(403);
    const after = await get();
    expect(after.channels.find((c) => c.key === partner.key)?.counts).toMatchObject({ deadLettered: partner.counts.deadLettered, pending: partner.counts.pending + 1 });
  });

  test('`hub status --serve` serves the page against MEDPLUM_BASE_URL, as the caller', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'src', 'cli.ts'), 'status', '--serve', '--port', '0'], {
      cwd: tmpdir(),
      env: { ...process.env, MEDPLUM_BASE_URL: target.baseUrl, MEDPLUM_CLIENT_ID: '', MEDPLUM_CLIENT_SECRET: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 20_000);
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const match = /http:\/\/127\.0\.0\.1:\d+\/hub\/status/.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve(match[0]);
          }
        });
      });
      expect((await fetch(`${url}.json`)).status).toBe(401);
      const response = await fetch(`${url}.json`, { headers: { authorization: basic() } });
      expect(response.status).toBe(200);
      const status = (await response.json()) as HubStatus;
      expect(countsOf(status, `${facility}/IISAPP`).received).toBe(1);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
