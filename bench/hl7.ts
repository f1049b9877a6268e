import type { MedplumClient, WithId } from '@medplum/core';
import { Hl7Message } from '@medplum/core';
import type { Agent, Bot, Endpoint, ProjectMembership } from '@medplum/fhirtypes';
import { Hl7Client } from '@medplum/hl7';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { findManaged } from '../src/deploy/managed.ts';
import { readHl7Message, readMessageHeader } from '../src/hl7/message.ts';
import { readMappingConfigFiles } from '../src/mapping/config-files.ts';
import type { MappingConfig } from '../src/mapping/context.ts';
import { MappingContext } from '../src/mapping/context.ts';
import { findMessageMapper } from '../src/mapping/messages/registry.ts';
import { MappingError } from '../src/mapping/plan.ts';
import { startE2eTarget } from '../test/support/target.ts';
import { fmt, printTable } from './table.ts';

/**
 * `npm run bench:hl7`: what the HL7 inbound path costs, in one bounded run (about a minute).
 *
 * (a) Mapping, pure: readHl7Message + MappingContext + message map on the ADT and ORU corpus
 *     messages, against `@medplum/core` `Hl7Message.parse` alone on the same messages.
 * (b) End to end over MLLP through the local runtime (agent bridge, vmcontext sandbox, FHIR API,
 *     in-memory store): the real hl7-inbound bot against a trivial bot that only returns
 *     `buildAck()`, deployed on the same runtime with its own Agent channel; 1 and 8 concurrent
 *     connections, one message in flight per connection, distinct patients per message.
 *
 * Options (environment): BENCH_PURE_MS (per measurement, default 2500), BENCH_E2E_MS (per
 * configuration, default 8000), BENCH_WARMUP_MS (default 1500).
 */

const ROOT = join(import.meta.dirname, '..');
const PURE_MS = Number(process.env.BENCH_PURE_MS ?? 2500);
const E2E_MS = Number(process.env.BENCH_E2E_MS ?? 8000);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1500);
/** Hard bound of the whole run; the end-to-end part stops early when it would pass. */
const TOTAL_LIMIT_MS = 120_000;
const ACK_TIMEOUT_MS = 15_000;
const TRIVIAL_BOT_CODE = 'exports.handler = async (medplum, event) => event.input.buildAck();\n';

const started = performance.now();

// A built-in message per family, used when the corpus has none (written for this benchmark).
const FALLBACK: Record<'adt' | 'oru', string> = {
  adt: [
    'MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20240312081500||ADT^A01^ADT_A01|NS100001|P|2.5.1',
    'EVN|A01|20240312081500',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi^Emeka||19781104|M|||1200 Lakeview Ave^^Springfield^IL^62704',
    'PV1|1|I|4W^402^B^NSH||||1234567890^Patel^Ravi^^^^^^NPI|||MED||||||||IN|V20240312-01^^^NSHV^VN',
  ].join('\r'),
  oru: [
    'MSH|^~\\&|LABSYS|ACMELAB|HUB|NORTHSIDE|20240312103045-0500||ORU^R01^ORU_R01|ACM552001|P|2.5.1',
    'PID|1||448812^^^NSH^MR||Okafor^Chidi||19781104|M',
    'ORC|RE|ORD7731^NSHORD|ACC99120^ACME||CM',
    'OBR|1|ORD7731^NSHORD|ACC99120^ACME|BMP^Basic metabolic panel^99ACM|||20240312090000',
    'OBX|1|NM|GLU^Glucose^99ACM||98|mg/dL|70-99|N|||F',
    'OBX|2|NM|2823-3^Potassium^LN||5.6|mmol/L|3.5-5.1|H|||F',
  ].join('\r'),
};

interface Row {
  readonly what: string;
  readonly cells: readonly string[];
}

function cellsOf(row: Row): string[] {
  return [row.what, ...row.cells];
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(`# hl7 benchmark, ${new Date().toISOString()}`);
  console.log(`machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${process.platform}/${process.arch}, Node ${process.version}`);
  console.log('');

  // ---- (a) pure mapping vs parsing
  const config = readMappingConfigFiles(join(ROOT, 'seed'));
  const pureRows: Row[] = [];
  const corpus: Record<'adt' | 'oru', string[]> = { adt: mappableMessages('adt', config), oru: mappableMessages('oru', config) };
  for (const family of ['adt', 'oru'] as const) {
    const messages = corpus[family];
    const bytes = messages.reduce((n, m) => n + Buffer.byteLength(m), 0) / messages.length;
    const parse = measure(PURE_MS, messages, (text) => Hl7Message.parse(text));
    const map = measure(PURE_MS, messages, (text) => mapMessage(text, config));
    pureRows.push({
      what: `${family.toUpperCase()} (${messages.length} msgs, avg ${Math.round(bytes)} B)`,
      cells: [fmt(parse), fmt(map), `${(parse / map).toFixed(1)}x`],
    });
  }
  printTable('(a) pure, one core: messages/s', ['messages', 'Hl7Message.parse', 'read + map', 'map cost / parse cost'], pureRows.map(cellsOf));

  // ---- (b) end to end over MLLP
  const target = await startE2eTarget();
  const clients: Hl7Client[] = [];
  try {
    const runtime = target.runtime;
    if (!runtime) {
      throw new Error('the benchmark runs on the local runtime (unset MEDPLUM_BASE_URL)');
    }
    const trivialChannel = await deployTrivialBot(target.client, runtime.hubProjectId);
    const address = (channel: string): { host: string; port: number } => {
      const mllp = target.mllp(channel);
      if ('skip' in mllp) {
        throw new Error(mllp.skip);
      }
      return mllp;
    };
    const template = corpus.adt.find((m) => /\|ADT\^A0[14]/.test(m)) ?? FALLBACK.adt;
    let sequence = 0;
    const nextMessage = (): Hl7Message => uniqueAdt(template, `B${process.pid}X${++sequence}`);

    const configs = [
      { label: 'trivial ACK bot', channel: trivialChannel, connections: 1 },
      { label: 'hl7-inbound', channel: 'northside-adt', connections: 1 },
      // The same bot with the agent's membership stripped of its AccessPolicy (full access): what
      // enforcing the policy costs on the inbound path.
      { label: 'hl7-inbound, agent without policy', channel: 'northside-adt', connections: 1, withoutPolicy: true },
      { label: 'trivial ACK bot', channel: trivialChannel, connections: 8 },
      { label: 'hl7-inbound', channel: 'northside-adt', connections: 8 },
    ];
    const agentMembership = await membershipOf(target.client, 'client-agent');
    const results: (LoadResult & { label: string; connections: number })[] = [];
    for (const c of configs) {
      const left = TOTAL_LIMIT_MS - (performance.now() - started) - 5_000;
      const duration = Math.max(1000, Math.min(E2E_MS, (left - WARMUP_MS * (configs.length - results.length)) / (configs.length - results.length)));
      const pool = Array.from({ length: c.connections }, () => new Hl7Client({ ...address(c.channel), keepAlive: true }));
      clients.push(...pool);
      if (c.withoutPolicy) {
        const { accessPolicy: _policy, ...open } = agentMembership;
        await setMembership(target.client, runtime.hubProjectId, open);
      }
      try {
        await load(pool, nextMessage, WARMUP_MS);
        const result = await load(pool, nextMessage, duration);
        results.push({ ...result, label: c.label, connections: c.connections });
      } finally {
        if (c.withoutPolicy) {
          await setMembership(target.client, runtime.hubProjectId, agentMembership);
        }
      }
      await Promise.all(pool.map((client) => client.close()));
    }
    const rows: Row[] = results.map((r) => {
      const base = results.find((b) => b.label === 'trivial ACK bot' && b.connections === r.connections) as LoadResult;
      const isBase = r === base;
      return {
        what: `${r.label}, ${r.connections} conn`,
        cells: [
          `${r.count}${r.failures ? ` (+${r.failures} failed)` : ''}`,
          fmt(r.throughput),
          r.p50.toFixed(1),
          r.p99.toFixed(1),
          isBase ? '1' : `${(r.throughput / base.throughput).toFixed(2)}x`,
          isBase ? '1' : `${(r.p50 / base.p50).toFixed(1)}x`,
        ],
      };
    });
    printTable(
      `(b) end to end over MLLP, local runtime (in-memory store), ${messageType(template)} from the corpus with a new patient per message`,
      ['bot, connections', 'messages', 'msg/s', 'p50 ms', 'p99 ms', 'msg/s vs trivial', 'p50 vs trivial'],
      rows.map(cellsOf)
    );
    const withPolicy = results.find((r) => r.label === 'hl7-inbound' && r.connections === 1);
    const withoutPolicy = results.find((r) => r.label === 'hl7-inbound, agent without policy');
    if (withPolicy && withoutPolicy) {
      console.log(
        `AccessPolicy enforcement: hl7-inbound, 1 conn, ${fmt(withPolicy.throughput)} msg/s with the agent's policy vs ${fmt(withoutPolicy.throughput)} without (${(withPolicy.throughput / withoutPolicy.throughput).toFixed(2)}x; p50 ${withPolicy.p50.toFixed(1)} vs ${withoutPolicy.p50.toFixed(1)} ms)`
      );
    }
    const acks = results.flatMap((r) => Object.entries(r.codes).map(([k, v]) => `${r.label}/${r.connections}: ${k} ${v}`));
    console.log(`ACK codes: ${acks.join('; ')}`);
    const bots = await target.client.searchResources('Bot', { _count: '100' });
    const audit = bots.map((b) => `${b.name}: ${b.auditEventTrigger ?? 'always (default)'}`).join(', ');
    console.log(`Bot.auditEventTrigger: ${audit}`);
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await target.stop();
  }
  console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * The family's corpus messages that map without a data error (falls back to a built-in one).
 * @param family - Corpus folder.
 * @param config - Mapping configuration.
 * @returns ER7 texts.
 */
function mappableMessages(family: 'adt' | 'oru', config: MappingConfig): string[] {
  const dir = join(ROOT, 'test', 'corpus', family);
  const texts = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.hl7'))
        .sort()
        .map((f) => readFileSync(join(dir, f), 'utf8'))
    : [];
  const ok = texts.filter((text) => {
    try {
      return mapMessage(text, config) && text.startsWith('MSH');
    } catch (err) {
      if (err instanceof MappingError) {
        return false;
      }
      throw err;
    }
  });
  return ok.length ? ok : [FALLBACK[family]];
}

/**
 * Reads and maps one message, as the hl7-inbound bot does before writing.
 * @param text - ER7 text.
 * @param config - Mapping configuration.
 * @returns Whether a mapper exists for the message type.
 */
function mapMessage(text: string, config: MappingConfig): boolean {
  const message = readHl7Message(text);
  const header = readMessageHeader(message);
  const mapper = findMessageMapper(header);
  mapper?.(message, new MappingContext(header, config));
  return Boolean(mapper);
}

/**
 * Runs `fn` over the messages in a loop: a warm-up of a fifth of the time, then counts.
 * @returns Messages per second.
 */
function measure(durationMs: number, messages: readonly string[], fn: (text: string) => void): number {
  const run = (ms: number): number => {
    let n = 0;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      for (const text of messages) {
        fn(text);
      }
      n += messages.length;
    }
    return n;
  };
  run(durationMs / 5);
  const t0 = performance.now();
  const n = run(durationMs);
  return (n / (performance.now() - t0)) * 1000;
}

/**
 * The template with new patient, visit and policy identifiers and a new MSH-10: every message
 * creates its own Patient, Encounter, Coverage...; practitioners, locations and payors are shared
 * (created once, then found unchanged), as in a real feed.
 */
function uniqueAdt(template: string, id: string): Hl7Message {
  const message = Hl7Message.parse(template.replace(/\r\n|\n/g, '\r'));
  message.getSegment('MSH')?.setField(10, id);
  message.getSegment('PID')?.setField(3, `${id}^^^NSH^MR`);
  message.getSegment('PV1')?.setField(19, `V${id}^^^NSHV^VN`);
  for (const in1 of message.getAllSegments('IN1')) {
    in1.setField(36, `POL${id}`);
  }
  return message;
}

interface LoadResult {
  readonly count: number;
  readonly failures: number;
  readonly throughput: number;
  readonly p50: number;
  readonly p99: number;
  readonly codes: Record<string, number>;
}

/** Each client sends one message at a time until the time is up. */
async function load(pool: readonly Hl7Client[], next: () => Hl7Message, durationMs: number): Promise<LoadResult> {
  const latencies: number[] = [];
  const codes: Record<string, number> = {};
  let failures = 0;
  const t0 = performance.now();
  const end = t0 + durationMs;
  await Promise.all(
    pool.map(async (client) => {
      while (performance.now() < end) {
        const message = next();
        const sent = performance.now();
        try {
          const ack = await client.sendAndWait(message, { timeoutMs: ACK_TIMEOUT_MS });
          latencies.push(performance.now() - sent);
          const msa = ack.getSegment('MSA');
          const code = msa?.getField(1)?.toString() ?? '?';
          const key = code === 'AA' ? code : `${code} (${msa?.getField(3)?.toString() ?? ''})`;
          codes[key] = (codes[key] ?? 0) + 1;
        } catch (_err) {
          failures++;
        }
      }
    })
  );
  const elapsed = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? NaN;
  return { count: latencies.length, failures, throughput: (latencies.length / elapsed) * 1000, p50: pct(50), p99: pct(99), codes };
}

/** The membership of a managed ClientApplication. */
async function membershipOf(client: MedplumClient, name: string): Promise<WithId<ProjectMembership>> {
  const [app] = await findManaged(client, 'ClientApplication', name);
  const membership = app && (await client.searchOne('ProjectMembership', { profile: `ClientApplication/${app.id}` }));
  if (!membership) {
    throw new Error(`no membership for the managed client ${name}`);
  }
  return membership;
}

async function setMembership(client: MedplumClient, projectId: string, membership: WithId<ProjectMembership>): Promise<void> {
  await client.post(`admin/projects/${projectId}/members/${membership.id}`, membership);
}

/**
 * Deploys the trivial bot through the admin API and `$deploy`, with an Endpoint and a channel of
 * its own on the hub's Agent (the local runtime picks a free port).
 * @returns The channel name.
 */
async function deployTrivialBot(client: MedplumClient, projectId: string): Promise<string> {
  const bot = (await client.post(`admin/projects/${projectId}/bot`, { name: 'bench-trivial-ack', runtimeVersion: 'vmcontext' })) as WithId<Bot>;
  // Default Bot settings (auditEventTrigger 'always': one AuditEvent per run, as on a stock server).
  await client.post(client.fhirUrl('Bot', bot.id, '$deploy'), { code: TRIVIAL_BOT_CODE, filename: 'bench-trivial-ack.js' });
  const endpoint = await client.createResource<Endpoint>({
    resourceType: 'Endpoint',
    status: 'active',
    name: 'bench trivial ACK',
    connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7v2-mllp' },
    payloadType: [{ text: 'HL7 v2' }],
    address: 'mllp://0.0.0.0:2599?encoding=utf-8',
  });
  const agents = await client.searchResources('Agent', { _count: '10' });
  const agent = agents[0] as WithId<Agent> | undefined;
  if (!agent) {
    throw new Error('no Agent deployed');
  }
  const channel = 'bench-trivial-ack';
  await client.updateResource<Agent>({
    ...agent,
    channel: [...(agent.channel ?? []), { name: channel, endpoint: { reference: `Endpoint/${endpoint.id}` }, targetReference: { reference: `Bot/${bot.id}` } }],
  });
  await client.get(client.fhirUrl('Agent', agent.id, '$reload-config'));
  return channel;
}

/** @returns MSH-9 of an ER7 message, e.g. `ADT^A04`. */
function messageType(text: string): string {
  return Hl7Message.parse(text.replace(/\r\n|\n/g, '\r')).getSegment('MSH')?.getField(9)?.toString() ?? 'message';
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
}
// Nothing may keep the process (or its children) alive after the run.
setTimeout(() => process.exit(), 3000).unref();
