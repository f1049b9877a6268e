import type { MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { MessageHeader, Task } from '@medplum/fhirtypes';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Target, TargetOptions } from '../deploy/target.ts';
import { connectTarget } from '../deploy/target.ts';
import { LedgerExtension, outcomeOf } from '../fhir/ledger.ts';
import { hideValues } from '../fhir/strings.ts';
import { buildReplayTask } from '../inbound/replay.ts';
import type { LedgerCounts, LedgerStats } from '../inbound/stats.ts';
import { controlIdOf, invariantHolds, ledgerStats, listDeadLetterEntries, listDeadLetters, senderLabel } from '../inbound/stats.ts';
import type { ImportResult } from './hl7-import.ts';
import { countByAck, describeFailure, importMessages, resolveImportTarget, splitImportFile } from './hl7-import.ts';
import type { ProgressSettings } from './progress.ts';
import { createProgress, logAbove } from './progress.ts';

export const HL7_USAGE = `Usage: hub hl7 <command>

  stats [--since <ISO date>]   messages received per sender and in total, by outcome
  dead-letters [--limit N]     open dead letters, oldest first (default limit 50)
  replay <MessageHeader id ...> | --all [--no-wait] [--timeout <s>] [--parallel <n>]
                               replay dead letters through the hl7-replay bot (one Task each) and
                               wait for each to finish (default; at most --timeout seconds each,
                               default 120), --parallel at a time (default 1, in reception order)
  import <file> [--parallel N] [--channel <name>]
                               send the messages of an HL7 batch file (FHS/BHS...) or of a file of
                               plain messages through the inbound pipeline, as if received over
                               MLLP (each gets its ledger entry and ACK): the channel's bot and
                               encoding (default: the hl7-inbound bot, UTF-8), --parallel at a time
                               (default 1, in file order). A file whose structure does not add up
                               (a truncated transfer) is refused whole. Exit 1 unless every
                               message is answered AA.

Output carries no patient data: ids, senders, message types, control ids and error texts, with
quoted values in error texts hidden (the ledger entry has the full text); import names neither the
file nor its content. Long commands show a running count on stderr.
`;

/** Options of {@link runHl7Command}. */
export interface Hl7CommandOptions {
  readonly log: (line: string) => void;
  readonly error: (line: string) => void;
  /** Task poll interval in ms (default 250). */
  readonly pollMs?: number;
  /** Where the running count of replays and imports goes (default: stderr). */
  readonly progress?: ProgressSettings;
}

/** The arguments of `hub hl7 ...`, checked. */
export type Hl7Args =
  | { readonly command: 'stats'; readonly since?: string }
  | { readonly command: 'dead-letters'; readonly limit: number }
  | {
      readonly command: 'replay';
      readonly ids: string[];
      readonly all: boolean;
      readonly wait: boolean;
      readonly timeoutMs: number;
      readonly parallel: number;
    }
  | { readonly command: 'import'; readonly file: string; readonly parallel: number; readonly channel?: string };

/** Task statuses after which the replay bot is done with a Task. */
const FINAL_STATUSES: readonly Task['status'][] = ['completed', 'failed', 'cancelled', 'rejected', 'entered-in-error'];

/**
 * `hub hl7 ...`: the operator's view of the HL7 message ledger on the target (the same
 * environment as deploy: `MEDPLUM_BASE_URL`, `MEDPLUM_CLIENT_ID`, `MEDPLUM_CLIENT_SECRET`).
 * @param target - A connected target, the options to connect with (after the arguments are
 * checked), or why the environment names no target.
 * @param args - Arguments after `hl7`.
 * @param options - Output.
 * @returns The exit code: 0 when everything succeeded, 1 when a replay failed (or the ledger
 * does not add up), 2 for a usage error.
 */
export async function runHl7Command(target: Target | TargetOptions | string, args: readonly string[], options: Hl7CommandOptions): Promise<number> {
  const parsed = parseHl7Args(args);
  if (typeof parsed === 'string') {
    options.error(parsed);
    options.error(HL7_USAGE);
    return 2;
  }
  if (typeof target === 'string') {
    options.error(target);
    return 2;
  }
  const connected = 'client' in target ? target : await connectTarget(target);
  switch (parsed.command) {
    case 'stats':
      return printStats(connected, parsed.since, options);
    case 'dead-letters':
      return printDeadLetters(connected.client, parsed.limit, options);
    case 'replay':
      return replay(connected.client, parsed, options);
    case 'import':
      return importFile(connected.client, parsed, options);
  }
}

/**
 * @param args - Arguments after `hl7`.
 * @returns The checked arguments, or what is wrong with them.
 */
export function parseHl7Args(args: readonly string[]): Hl7Args | string {
  const [command, ...rest] = args;
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  const valued = new Set(['--since', '--limit', '--timeout', '--parallel', '--channel']);
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg.startsWith('--')) {
      const [name, inline] = arg.split(/=(.*)/s, 2);
      if (valued.has(name)) {
        const value = inline ?? rest[++i];
        if (value === undefined || value.startsWith('--')) {
          return `${name} needs a value`;
        }
        flags.set(name, value);
      } else {
        flags.set(name, true);
      }
    } else {
      positional.push(arg);
    }
  }
  const known: Record<string, string[]> = {
    stats: ['--since'],
    'dead-letters': ['--limit'],
    replay: ['--all', '--wait', '--no-wait', '--timeout', '--parallel'],
    import: ['--parallel', '--channel'],
  };
  if (!command || !(command in known)) {
    return command ? `Unknown hl7 command: ${command}` : 'Missing hl7 command';
  }
  const unknown = [...flags.keys()].filter((f) => !known[command].includes(f));
  if (unknown.length) {
    return `Unknown option for hl7 ${command}: ${unknown.join(', ')}`;
  }
  const positiveInt = (name: string, fallback: number): number | string => {
    const value = flags.get(name);
    if (value === undefined) {
      return fallback;
    }
    const n = Number(value);
    return typeof value === 'string' && Number.isInteger(n) && n > 0 ? n : `${name} must be a positive integer`;
  };
  switch (command) {
    case 'stats': {
      if (positional.length) {
        return `Unexpected argument: ${positional[0]}`;
      }
      const since = flags.get('--since') as string | undefined;
      if (since !== undefined && Number.isNaN(Date.parse(since))) {
        return `--since must be an ISO 8601 date or date-time, got ${since}`;
      }
      return { command, since };
    }
    case 'dead-letters': {
      if (positional.length) {
        return `Unexpected argument: ${positional[0]}`;
      }
      const limit = positiveInt('--limit', 50);
      return typeof limit === 'string' ? limit : { command, limit };
    }
    case 'import': {
      if (positional.length !== 1) {
        return positional.length === 0 ? 'Give the file to import' : `Give one file to import, not ${positional.length}`;
      }
      const parallel = positiveInt('--parallel', 1);
      if (typeof parallel === 'string') {
        return parallel;
      }
      const channel = flags.get('--channel') as string | undefined;
      return { command, file: positional[0], parallel: Math.min(parallel, 16), ...(channel !== undefined ? { channel } : {}) };
    }
    default: {
      const all = flags.has('--all');
      if (all === positional.length > 0) {
        return all ? 'Give either MessageHeader ids or --all, not both' : 'Give the MessageHeader ids to replay, or --all';
      }
      const timeout = positiveInt('--timeout', 120);
      const parallel = positiveInt('--parallel', 1);
      if (typeof timeout === 'string' || typeof parallel === 'string') {
        return typeof timeout === 'string' ? timeout : (parallel as string);
      }
      const ids = positional.map((p) => p.replace(/^MessageHeader\//, ''));
      const bad = ids.find((id) => !/^[A-Za-z0-9\-.]{1,64}$/.test(id));
      if (bad !== undefined) {
        return `Not a MessageHeader id: ${bad}`;
      }
      return { command: 'replay', ids, all, wait: !flags.has('--no-wait'), timeoutMs: timeout * 1000, parallel: Math.min(parallel, 16) };
    }
  }
}

async function printStats(target: Target, since: string | undefined, options: Hl7CommandOptions): Promise<number> {
  const stats = await ledgerStats(target.client, { since });
  options.log(`HL7 message ledger on ${target.baseUrl} (project ${target.projectId}), ${stats.since ? `received since ${stats.since}` : 'all time'}`);
  for (const line of statsTable(stats)) {
    options.log(line);
  }
  const t = stats.total;
  const holds = stats.invariantHolds;
  options.log(
    `received = committed + rejected + dead-lettered + resolved: ${t.received} = ${t.committed} + ${t.rejected} + ${t.deadLettered} + ${t.resolved} ` +
      (holds ? '(holds for every sender)' : `(DOES NOT HOLD for: ${[...stats.senders.filter((s) => !invariantHolds(s)).map((s) => senderLabel(s.sender)), ...(invariantHolds(t) ? [] : ['total'])].join(', ')})`)
  );
  options.log('duplicates are committed receptions that repeated an earlier message; replays are not receptions.');
  return holds ? 0 : 1;
}

/**
 * @param stats - Ledger statistics.
 * @returns The table the `stats` command prints: one row per sender, then the total.
 */
export function statsTable(stats: LedgerStats): string[] {
  const columns: [string, keyof LedgerCounts][] = [
    ['received', 'received'],
    ['committed', 'committed'],
    ['rejected', 'rejected'],
    ['dead-letter', 'deadLettered'],
    ['resolved', 'resolved'],
    ['duplicates', 'duplicates'],
    ['replays', 'replays'],
  ];
  const rows: [string, LedgerCounts][] = [...stats.senders.map((s): [string, LedgerCounts] => [senderLabel(s.sender), s]), ['total', stats.total]];
  const width = Math.max('sender'.length, ...rows.map(([name]) => name.length));
  const line = (name: string, cells: string[]): string =>
    [name.padEnd(width), ...cells.map((c, i) => c.padStart(columns[i][0].length))].join('  ').trimEnd();
  return [
    line('sender', columns.map(([title]) => title)),
    ...rows.map(([name, counts]) => line(name, columns.map(([, key]) => String(counts[key])))),
  ];
}

async function printDeadLetters(medplum: MedplumClient, limit: number, options: Hl7CommandOptions): Promise<number> {
  const letters = await listDeadLetters(medplum, { limit: limit + 1 });
  const shown = letters.slice(0, limit);
  if (shown.length === 0) {
    options.log('No open dead letters.');
    return 0;
  }
  options.log(
    letters.length > limit ? `Oldest ${limit} open dead letters (there are more; raise --limit):` : `${shown.length} open dead letter(s), oldest first:`
  );
  for (const d of shown) {
    options.log(`MessageHeader/${d.id}  ${d.received}  ${senderLabel(d.sender)}  ${d.type}  ${d.controlId}  ${hideValues(d.error)}`);
  }
  options.log(`Replay with: hub hl7 replay <id ...>  (or --all)`);
  return 0;
}

interface ReplayJob {
  readonly entry: WithId<MessageHeader>;
  task?: WithId<Task>;
  deadline?: number;
  result?: 'completed' | 'failed';
}

async function replay(medplum: MedplumClient, parsed: Extract<Hl7Args, { command: 'replay' }>, options: Hl7CommandOptions): Promise<number> {
  let failures = 0;
  const entries: WithId<MessageHeader>[] = [];
  if (parsed.all) {
    entries.push(...(await listDeadLetterEntries(medplum)));
    if (entries.length === 0) {
      options.log('No open dead letters to replay.');
      return 0;
    }
  } else {
    for (const id of parsed.ids) {
      try {
        entries.push(await medplum.readResource('MessageHeader', id));
      } catch (err) {
        options.error(`MessageHeader/${id}: cannot be read: ${hideValues(normalizeErrorString(err))}`);
        failures++;
      }
    }
  }

  const jobs: ReplayJob[] = entries.map((entry) => ({ entry }));
  const total = jobs.length;
  const progress = createProgress({ label: parsed.wait ? 'hl7 replay' : 'hl7 replay (creating Tasks)', total, ...options.progress });
  const log = logAbove(progress, options.log);
  if (!parsed.wait) {
    try {
      for (const job of jobs) {
        const task = await createTask(medplum, job.entry);
        log(`${describeEntry(job.entry)}: Task/${task.id} created`);
        progress.tick(1, `Task/${task.id}`);
      }
    } finally {
      progress.done(`${progress.count} Task(s) created`);
    }
    options.log(`Created ${total} replay Task(s); not waiting (check them with: hub hl7 dead-letters / hub hl7 stats).`);
    return failures ? 1 : 0;
  }

  const pollMs = options.pollMs ?? 250;
  let next = 0;
  let done = 0;
  const running: ReplayJob[] = [];
  try {
    while (done < total) {
      while (running.length < parsed.parallel && next < total) {
        const job = jobs[next++];
        job.task = await createTask(medplum, job.entry);
        job.deadline = Date.now() + parsed.timeoutMs;
        running.push(job);
      }
      await sleep(pollMs);
      for (const task of await readTasks(medplum, running.map((j) => j.task?.id as string))) {
        const job = running.find((j) => j.task?.id === task.id) as ReplayJob;
        job.task = task;
      }
      for (const job of [...running]) {
        const task = job.task as WithId<Task>;
        const finished = FINAL_STATUSES.includes(task.status);
        if (!finished && Date.now() < (job.deadline as number)) {
          continue;
        }
        running.splice(running.indexOf(job), 1);
        done++;
        job.result = task.status === 'completed' ? 'completed' : 'failed';
        if (job.result === 'failed') {
          failures++;
        }
        log(await describeOutcome(medplum, job, finished, parsed.timeoutMs));
        progress.tick(1);
      }
      progress.note(running.length ? `waiting for ${running.map((j) => `Task/${j.task?.id}`).join(', ')}` : undefined);
    }
  } finally {
    const finished = jobs.filter((j) => j.result === 'completed').length;
    progress.done(`${finished} completed, ${done - finished} failed`);
  }
  const completed = jobs.filter((j) => j.result === 'completed').length;
  options.log(`Replayed ${total}: ${completed} completed, ${total - completed} failed${failures > total - completed ? `; ${failures - (total - completed)} not found` : ''}.`);
  return failures ? 1 : 0;
}

/**
 * `hub hl7 import <file>`: every message of the file through the channel's inbound bot, as if
 * received over MLLP; a running count, then the count by ACK code and the control ids of the
 * messages not answered AA.
 */
async function importFile(medplum: MedplumClient, parsed: Extract<Hl7Args, { command: 'import' }>, options: Hl7CommandOptions): Promise<number> {
  let content: Buffer;
  try {
    content = await readFile(parsed.file);
  } catch (err) {
    // Node's message repeats the path, and file names can carry patient names or MRNs.
    options.error(`The file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return 1;
  }
  const target = await resolveImportTarget(medplum, parsed.channel);
  if (typeof target === 'string') {
    options.error(target);
    return 1;
  }
  const split = splitImportFile(content, target.encoding);
  if ('problems' in split) {
    options.error(`Not imported: the file is not an intact HL7 file (${split.problems.length} problem(s)); no message was sent`);
    split.problems.forEach((p) => options.error(`  ${p}`));
    return 1;
  }
  const total = split.messages.length;
  if (total === 0) {
    options.log('The file holds no message.');
    return 0;
  }
  options.log(`Importing ${total} message(s) through the ${target.label} (${target.encoding}), ${Math.min(parsed.parallel, total)} at a time`);
  const progress = createProgress({ label: 'hl7 import', total, ...options.progress });
  let results: ImportResult[];
  try {
    results = await importMessages(medplum, target, split.messages, { parallel: parsed.parallel, progress });
  } catch (err) {
    progress.done('stopped');
    throw err;
  }
  const counts = countByAck(results);
  const byAck = `AA ${counts.AA}, AE ${counts.AE}, AR ${counts.AR}${counts.none ? `, no ACK ${counts.none}` : ''}`;
  progress.done(byAck);
  const failed = results.filter((r) => r.ackCode !== 'AA');
  for (const result of failed) {
    options.log(describeFailure(result));
  }
  options.log(
    `Imported ${total} message(s): ${byAck}` +
      (counts.AE || counts.AR ? ' (AE: dead-lettered, AR: rejected; see hub hl7 dead-letters and hub hl7 stats)' : '')
  );
  return failed.length ? 1 : 0;
}

function createTask(medplum: MedplumClient, entry: WithId<MessageHeader>): Promise<WithId<Task>> {
  return medplum.createResource(buildReplayTask({ reference: `MessageHeader/${entry.id}` }, 'Replay requested with hub hl7 replay'));
}

async function readTasks(medplum: MedplumClient, ids: string[]): Promise<WithId<Task>[]> {
  const result: WithId<Task>[] = [];
  for (let i = 0; i < ids.length; i += 100) {
    const chunk = ids.slice(i, i + 100);
    result.push(...(await medplum.searchResources('Task', { _id: chunk.join(','), _count: String(chunk.length) })));
  }
  return result;
}

function describeEntry(entry: MessageHeader): string {
  const type = entry.eventCoding?.display ?? entry.eventCoding?.code ?? '?';
  return `MessageHeader/${entry.id} (${senderLabel(entry.source?.endpoint ?? '?')} ${type} ${controlIdOf(entry)})`;
}

async function describeOutcome(medplum: MedplumClient, job: ReplayJob, finished: boolean, timeoutMs: number): Promise<string> {
  const task = job.task as WithId<Task>;
  const head = `${describeEntry(job.entry)}: Task/${task.id}`;
  if (!finished) {
    return `${head}: not finished after ${timeoutMs / 1000} s (status ${task.status}); check it later`;
  }
  const ledger = task.output?.find((o) => o.valueReference?.reference?.startsWith('MessageHeader/'))?.valueReference?.reference;
  let detail = '';
  if (ledger && task.status !== 'completed') {
    // Why the replay failed: the error its own ledger entry recorded.
    const replayEntry = await medplum.readReference<MessageHeader>({ reference: ledger }).catch(() => undefined);
    const error = replayEntry?.extension?.find((e) => e.url === LedgerExtension.error)?.valueString;
    detail = error ? `; ${outcomeOf(replayEntry as MessageHeader)}: ${hideValues(error)}` : '';
  }
  return `${head}: ${task.status}: ${hideValues(task.businessStatus?.text ?? '')}${ledger ? ` -> ${ledger}` : ''}${detail}`;
}
