import type { MedplumRequestOptions, WithId } from '@medplum/core';
import { MedplumClient, validateResource } from '@medplum/core';
import type { Bundle, Patient, Reference, Resource } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadFhirDefinitions } from '../src/fhir/definitions.ts';
import { LocalRuntime } from '../src/local/runtime.ts';
import type { ImportItem, PreparedImport, ResourceCheck } from '../src/metriport/consolidated.ts';
import { logicalItemReference, prepareConsolidatedImport, resolveTokens } from '../src/metriport/consolidated.ts';
import type { MergeResult } from '../src/metriport/merge.ts';
import { mergePreparedImport, orderedGroups } from '../src/metriport/merge.ts';
import { resourceValidator } from '../src/metriport/process-task.ts';
import { BUNDLE_SIZES, generateConsolidatedBundle, SAMPLE_PATIENT } from '../test/support/metriport-bundles.ts';
import { fmt, printTable } from './table.ts';

/**
 * `npm run bench:metriport`: what the hub's Metriport import costs per consolidated bundle, in one
 * bounded run (a few minutes on 2 cores).
 *
 * For each size tier of `BUNDLE_SIZES` (1,438, 8,714 and 50,000 entries, fixed seed), in this
 * process and against the local runtime (FHIR API over HTTP on loopback, in-memory store):
 * - **merge**: `prepareConsolidatedImport` (with the bot's validation of every resource) then
 *   `mergePreparedImport` into a fresh runtime, as the processing bot does; checked to have created
 *   every item and failed none, so the rate is the one of a correct run;
 * - **re-merge**: the same bundle again on that runtime (a duplicate query): nothing to write;
 * - **baseline**: a naive importer on a second fresh runtime: the same prepared resources written
 *   one `createResource` request each, dependencies first (`orderedGroups`), references resolved
 *   to the ids created so far. The large tier's is capped at the first {@link BASELINE_CAP} items.
 * Rates are compared within the run only: on 2 shared cores absolute numbers move by 10 % or more
 * between runs.
 *
 * Options (environment): BENCH_SIZES (comma-separated tiers, default `small,typical,large`),
 * BENCH_BASELINE_MS (time bound of one baseline, default 90000).
 */

const SEED = 42;
/** The baseline of the large tier writes at most this many items: one request per resource for 50k items would take most of the run. */
const BASELINE_CAP = 5000;
const BASELINE_MS = Number(process.env.BENCH_BASELINE_MS ?? 90_000);
/** Hard bound of the whole run: the process exits with an error past it. */
const TOTAL_LIMIT_MS = 900_000;
/** Bound of one HTTP request (a 500-entry transaction on a busy core takes well under this). */
const REQUEST_TIMEOUT_MS = 120_000;
const SAMPLE_MS = 25;

// A full GC at each phase boundary (outside the timed windows) makes "heap at the start of a
// phase" the live heap, so what each phase retains can be told apart; without it, garbage of the
// previous tier lingers in heapUsed. Enabled here so the npm script needs no node flag.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const PATIENT = SAMPLE_PATIENT;

type Tier = keyof typeof BUNDLE_SIZES;

interface TierResult {
  readonly tier: Tier;
  readonly entries: number;
  readonly items: number;
  readonly skipped: number;
  readonly dangling: number;
  readonly jsonMb: number;
  readonly prepareS: number;
  readonly mergeS: number;
  readonly merge: MergeResult;
  /** Request time of the merge: resolve (batch) and transaction. */
  readonly mergeRequests: RequestTimes;
  readonly remergeS: number;
  readonly remerge: MergeResult;
  readonly remergeRequests: RequestTimes;
  readonly baseline: BaselineResult;
  readonly memory: MemorySampler;
}

interface RequestTimes {
  batchS: number;
  transactionS: number;
}

interface BaselineResult {
  readonly written: number;
  readonly failures: number;
  readonly seconds: number;
  /** Why it stopped before the last item, if it did. */
  readonly stopped?: string;
}

interface MemoryPeak {
  readonly rssMb: number;
  readonly heapMb: number;
}

const started = performance.now();

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(`# metriport merge benchmark, ${new Date().toISOString()}`);
  console.log(`machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${process.platform}/${process.arch}, Node ${process.version}`);
  console.log('');
  loadFhirDefinitions();
  const check = resourceValidator(validateResource);
  const tiers = (process.env.BENCH_SIZES ?? 'small,typical,large').split(',').map((t) => t.trim()) as Tier[];
  for (const tier of tiers) {
    if (!(tier in BUNDLE_SIZES)) {
      throw new Error(`unknown size ${tier} (one of ${Object.keys(BUNDLE_SIZES).join(', ')})`);
    }
  }

  // Warm-up, not reported: the first tier would otherwise pay for JIT compilation of the
  // validator, the router and the store, which the baseline, run after it, would not.
  await runTier('small', 300, check, 200);

  const results: TierResult[] = [];
  for (const tier of tiers) {
    results.push(await runTier(tier, BUNDLE_SIZES[tier], check, tier === 'large' ? BASELINE_CAP : Infinity));
    const r = results[results.length - 1];
    console.log(
      `${tier}: ${r.items} items (${r.skipped} entries skipped, ${r.dangling} dangling references), ` +
        `merge ${r.merge.transactions} transactions (requests: resolve ${r.mergeRequests.batchS.toFixed(2)} s, transactions ${r.mergeRequests.transactionS.toFixed(2)} s), ` +
        `re-merge ${r.remergeS.toFixed(2)} s (${r.remerge.unchanged} unchanged; resolve ${r.remergeRequests.batchS.toFixed(2)} s), ` +
        `baseline ${r.baseline.written} creates in ${r.baseline.seconds.toFixed(1)} s${r.baseline.failures ? ` (${r.baseline.failures} refused)` : ''}` +
        `${r.baseline.stopped ? ` [baseline ${r.baseline.stopped}]` : ''}`
    );
    console.log(`${tier}: ${r.memory.summary()}`);
    const live = (from: string, to: string): string => (r.memory.startHeapMb(to) - r.memory.startHeapMb(from)).toFixed(0);
    console.log(
      `${tier}: live heap retained (after GC): bundle ${live('generate', 'prepare')} MB, prepared items ${live('prepare', 'merge')} MB, ` +
        `runtime store after the merge ${live('merge', 're-merge')} MB`
    );
  }
  console.log('');

  const rows = results.map((r) => {
    const merged = r.items / (r.prepareS + r.mergeS);
    const mergeOnly = r.items / r.mergeS;
    const baseline = r.baseline.written / r.baseline.seconds;
    // A duplicate query is downloaded and prepared again before the merge finds nothing to write.
    const remerge = r.items / (r.prepareS + r.remergeS);
    return [
      `${r.tier}${r.baseline.written < r.items ? ` (baseline: first ${r.baseline.written.toLocaleString('en-US')})` : ''}`,
      r.entries.toLocaleString('en-US'),
      r.jsonMb.toFixed(1),
      r.prepareS.toFixed(2),
      r.mergeS.toFixed(2),
      fmt(merged),
      fmt(mergeOnly),
      fmt(baseline),
      `${(merged / baseline).toFixed(1)}x`,
      fmt(remerge),
      r.memory.peak('prepare', 'merge').rssMb.toFixed(0),
      r.memory.peak('prepare', 'merge').heapMb.toFixed(0),
    ];
  });
  printTable(
    'resources merged per second: merge = prepare (with validation) + mergePreparedImport; baseline = one createResource request per resource; re-merge = prepare + merging the same bundle again',
    ['size', 'resources', 'JSON MB', 'prepare s', 'merge s', 'merged/s', 'merge-only/s', 'baseline/s', 'merged / baseline', 're-merge/s', 'peak RSS MB', 'peak heap MB'],
    rows
  );
  const usage = process.resourceUsage();
  console.log(`process maxRSS (whole run, runtime and bundles included): ${(usage.maxRSS / 1024).toFixed(0)} MB`);
  console.log(`node ${process.version}, ${cpu.length} CPUs`);
  console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * One size tier: generate, prepare and merge into a fresh runtime, merge again, then the
 * baseline on a second fresh runtime.
 * @param tier - Label.
 * @param size - Bundle entries, Patient included.
 * @param check - The bot's validation.
 * @param baselineCap - Most items the baseline writes.
 * @returns The measurements.
 */
async function runTier(tier: Tier, size: number, check: ResourceCheck, baselineCap: number): Promise<TierResult> {
  // Sampled through the whole tier, per phase: the table reports prepare + merge (the bot's run),
  // the other phases tell what else the process held at its peak.
  const memory = new MemorySampler();
  memory.start('generate');
  const { bundle, jsonMb } = downloaded(size);
  // Prepare is synchronous and takes seconds at 50k: a timer would never fire during it, so the
  // check itself samples memory (throttled to the same interval).
  const sampledCheck: ResourceCheck = (resource) => {
    memory.maybeSample();
    return check(resource);
  };
  let prepared: PreparedImport;
  let prepareS: number;
  let merge: MergeResult;
  let mergeS: number;
  let mergeRequests: RequestTimes;
  let remerge: MergeResult;
  let remergeRequests: RequestTimes;
  let remergeS: number;
  let first: Target | undefined;
  try {
    first = await startTarget();
    memory.enter('prepare');
    const t0 = performance.now();
    prepared = prepareConsolidatedImport(bundle, PATIENT.id, sampledCheck);
    prepareS = (performance.now() - t0) / 1000;
    memory.enter('merge');
    const t1 = performance.now();
    first.medplum.times = { batchS: 0, transactionS: 0 };
    merge = await mergePreparedImport(first.medplum, prepared, { patient: first.patient });
    mergeS = (performance.now() - t1) / 1000;
    mergeRequests = first.medplum.times;
    memory.enter('re-merge');
    if (merge.created !== prepared.items.length || merge.failed.length) {
      throw new Error(`${tier}: merge created ${merge.created} of ${prepared.items.length} items, ${merge.failed.length} failed (${merge.failed[0]?.reference}: ${merge.failed[0]?.reason})`);
    }
    const t2 = performance.now();
    first.medplum.times = { batchS: 0, transactionS: 0 };
    remerge = await mergePreparedImport(first.medplum, prepared, { patient: first.patient });
    remergeS = (performance.now() - t2) / 1000;
    remergeRequests = first.medplum.times;
    if (remerge.created || remerge.updated || remerge.failed.length) {
      throw new Error(`${tier}: the re-merge wrote (${remerge.created} created, ${remerge.updated} updated, ${remerge.failed.length} failed)`);
    }
  } catch (err) {
    memory.stop();
    throw err;
  } finally {
    // Stopped before the baseline starts: its store holds the whole record.
    await first?.runtime.stop();
  }
  first = undefined;
  // The stopped server's handles are released on the next turns of the event loop, and the
  // runtime with them: let them go before the heap is collected.
  await new Promise<void>((resolve) => setTimeout(resolve, 100));
  memory.enter('baseline');
  let baseline: BaselineResult;
  try {
    const second = await startTarget();
    try {
      baseline = await naiveImport(second, prepared.items, baselineCap);
    } finally {
      await second.runtime.stop();
    }
  } finally {
    memory.stop();
  }
  return {
    tier,
    entries: bundle.entry?.length ?? 0,
    items: prepared.items.length,
    skipped: prepared.skipped.length,
    dangling: prepared.danglingReferences,
    jsonMb,
    prepareS,
    mergeS,
    merge,
    mergeRequests,
    remergeS,
    remerge,
    remergeRequests,
    baseline,
    memory,
  };
}

/**
 * A client that adds up the time of batch and transaction requests, to tell the merge's resolve
 * searches from its writes (the rest of the merge is the client's own work).
 */
class TimedClient extends MedplumClient {
  times: RequestTimes = { batchS: 0, transactionS: 0 };

  override async executeBatch(bundle: Bundle, options?: MedplumRequestOptions): Promise<Bundle> {
    const t0 = performance.now();
    try {
      return await super.executeBatch(bundle, options);
    } finally {
      const seconds = (performance.now() - t0) / 1000;
      if (bundle.type === 'transaction') {
        this.times.transactionS += seconds;
      } else {
        this.times.batchS += seconds;
      }
    }
  }
}

/**
 * The bundle as the bot has it after the download: generated, serialized, parsed. The generator
 * shares objects between resources, a parsed download does not (half as much heap again at 50k);
 * the JSON string is dropped on return, as the bot drops the response body.
 * @param size - Bundle entries, Patient included.
 * @returns The parsed bundle and the size of its JSON, MB.
 */
function downloaded(size: number): { bundle: Bundle; jsonMb: number } {
  const json = JSON.stringify(generateConsolidatedBundle({ patient: PATIENT, resources: size, seed: SEED }));
  return { bundle: JSON.parse(json) as Bundle, jsonMb: Buffer.byteLength(json) / 2 ** 20 };
}

interface Target {
  readonly runtime: LocalRuntime;
  readonly medplum: TimedClient;
  /** `Patient/<id>` of the record. */
  readonly patient: string;
}

/** A fresh local runtime, its admin signed in, and the record's Patient created. */
async function startTarget(): Promise<Target> {
  const runtime = await new LocalRuntime({ port: 0, mllpPort: () => 0 }).start();
  try {
    const medplum = new TimedClient({
      baseUrl: runtime.baseUrl,
      // Every request is bounded, so a stuck server fails the run instead of hanging it.
      fetch: (url: string, options?: RequestInit) => fetch(url, { ...options, signal: options?.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS) }),
    });
    await medplum.startClientLogin(runtime.adminCredentials.clientId, runtime.adminCredentials.clientSecret);
    const patient = await medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family: PATIENT.lastName, given: [PATIENT.firstName] }], birthDate: PATIENT.dob });
    return { runtime, medplum, patient: `Patient/${patient.id}` };
  } catch (err) {
    await runtime.stop();
    throw err;
  }
}

/**
 * The naive importer: one create per resource, dependencies first; a reference to an item not
 * created yet (a reference cycle) becomes the item's logical reference, as the merge does for
 * items it could not write.
 * @param target - Runtime, client and patient.
 * @param items - The prepared items.
 * @param cap - Most items to write.
 * @returns How many were written in how long.
 */
async function naiveImport(target: Target, items: readonly ImportItem[], cap: number): Promise<BaselineResult> {
  const order = orderedGroups(items, () => false).flat();
  const ids = new Map<number, string>();
  const resolve = (ref: number | 'patient'): string | Reference => {
    if (ref === 'patient') {
      return target.patient;
    }
    const id = ids.get(ref);
    return id ? `${items[ref].resourceType}/${id}` : logicalItemReference(items[ref]);
  };
  let written = 0;
  let failures = 0;
  let stopped: string | undefined;
  const t0 = performance.now();
  for (const index of order) {
    if (written + failures >= cap) {
      stopped = `capped at ${cap.toLocaleString('en-US')} of ${items.length.toLocaleString('en-US')} items`;
      break;
    }
    if (performance.now() - t0 > BASELINE_MS) {
      stopped = `stopped by its ${BASELINE_MS / 1000} s bound`;
      break;
    }
    try {
      const created: WithId<Resource> = await target.medplum.createResource(resolveTokens(items[index].resource, resolve));
      ids.set(index, created.id);
      written++;
    } catch (_err) {
      // Counted, not fatal: the naive importer has no retry or split logic.
      failures++;
    }
  }
  return { written, failures, seconds: (performance.now() - t0) / 1000, stopped };
}

/**
 * Peak RSS and heap per phase, sampled on a timer and on demand (a timer cannot fire during a
 * synchronous stretch such as prepare); every phase is also sampled when it begins and ends.
 */
class MemorySampler {
  private readonly peaks = new Map<string, { rss: number; heap: number }>();
  /** Heap in use when each phase began. */
  private readonly startHeaps = new Map<string, number>();
  private current = '';
  private timer?: NodeJS.Timeout;
  private last = 0;
  private samples = 0;

  /** Starts the timer in a first phase. */
  start(phase: string): void {
    this.enter(phase);
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  /** Ends the current phase and begins the next one, from a collected heap. */
  enter(phase: string): void {
    if (this.current) {
      this.sample();
    }
    collectGarbage();
    this.current = phase;
    this.startHeaps.set(phase, process.memoryUsage().heapUsed);
    this.sample();
  }

  /** @returns Live heap at the start of a phase, MB. */
  startHeapMb(phase: string): number {
    return (this.startHeaps.get(phase) ?? NaN) / 2 ** 20;
  }

  stop(): void {
    if (this.current) {
      this.sample();
    }
    this.current = '';
    clearInterval(this.timer);
  }

  /** Samples when the last sample is older than the interval. */
  maybeSample(): void {
    if (this.current && performance.now() - this.last >= SAMPLE_MS) {
      this.sample();
    }
  }

  /** @returns The peaks over the given phases, MB. */
  peak(...phases: string[]): MemoryPeak {
    const peaks = phases.map((p) => this.peaks.get(p) ?? { rss: 0, heap: 0 });
    return { rssMb: Math.max(...peaks.map((p) => p.rss)) / 2 ** 20, heapMb: Math.max(...peaks.map((p) => p.heap)) / 2 ** 20 };
  }

  /** @returns One line: per phase, heap at its start and peak RSS / heap (MB). */
  summary(): string {
    const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
    const phases = [...this.peaks].map(([phase, p]) => `${phase} ${mb(this.startHeaps.get(phase) ?? 0)} → ${mb(p.rss)}/${mb(p.heap)}`);
    return `memory MB by phase (heap at start → peak RSS/peak heap): ${phases.join(', ')}; ${this.samples} samples`;
  }

  private sample(): void {
    const usage = process.memoryUsage();
    const peak = this.peaks.get(this.current) ?? { rss: 0, heap: 0 };
    this.peaks.set(this.current, { rss: Math.max(peak.rss, usage.rss), heap: Math.max(peak.heap, usage.heapUsed) });
    this.samples++;
    this.last = performance.now();
  }
}

// Past the hard bound the run fails instead of hanging (a server that stopped answering).
const watchdog = setTimeout(() => {
  console.error(`bench:metriport: stopped after ${TOTAL_LIMIT_MS / 1000} s`);
  process.exit(1);
}, TOTAL_LIMIT_MS);
try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
}
// Nothing may keep the process alive after the run.
setTimeout(() => process.exit(), 3000).unref();
