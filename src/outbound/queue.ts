import type { MedplumClient, WithId } from '@medplum/core';
import type { Coding, Task } from '@medplum/fhirtypes';
import { HUB_URI } from '../constants.ts';
import type { LockKindCode } from '../fhir/lock.ts';
import { acquireLock, releaseLock } from '../fhir/lock.ts';

/** Extensions on a queued Task: when it may be tried next, and how often it was tried. */
export const QueueExtension = {
  nextAttempt: `${HUB_URI}/StructureDefinition/delivery-next-attempt`,
  attempts: `${HUB_URI}/StructureDefinition/delivery-attempts`,
} as const;
/** Code system of a queued Task's state (`Task.businessStatus`): delivered, retrying, dead-letter, replayed. */
export const DELIVERY_STATE_SYSTEM = `${HUB_URI}/CodeSystem/partner-delivery-state`;
/** Longest wait between two attempts. */
const MAX_BACKOFF_MS = 3600_000;
/** A pass stops starting attempts after this long, well before a lock counts as stale. */
const PASS_BUDGET_MS = 50_000;

/** What one attempt gave. */
export type AttemptResult =
  | { readonly ok: true; readonly text: string }
  | {
      readonly ok: false;
      readonly reason: string;
      /** The other side cannot be reached: the rest of the queue would fail the same way. */
      readonly unreachable?: boolean;
      /** Refused for good (an HL7 AR): dead-lettered without retrying. */
      readonly final?: boolean;
    };

/** A queue of Tasks sent to one destination. */
export interface QueueOptions {
  /** The Task code of the queue. */
  readonly code: Coding;
  /** `Type/id` of the destination (the Tasks' owner). */
  readonly owner: string;
  /** One pass per destination at a time. */
  readonly lockKind: LockKindCode;
  /** Events younger than this wait (an earlier version may still be on its way into the queue). */
  readonly settleMs: number;
  readonly retryBaseMs: number;
  /** Sends one Task. */
  readonly attempt: (task: WithId<Task>) => Promise<AttemptResult>;
}

/** What one pass did. */
export interface QueueReport {
  readonly delivered: number;
  readonly failed: number;
  readonly deadLettered: number;
  readonly waiting: number;
  readonly skipped?: string;
}

/**
 * The Task fields a queued item starts with: tried at once, no attempts yet, retried until
 * `windowMs` after the event.
 * @param eventTime - When the event happened (orders the queue).
 * @param windowMs - The retry window.
 * @returns Fields to spread into the Task.
 */
export function queuedTaskFields(eventTime: string, windowMs: number): Pick<Task, 'status' | 'authoredOn' | 'restriction' | 'extension'> {
  return {
    status: 'requested',
    authoredOn: eventTime,
    restriction: { period: { end: new Date(Date.parse(eventTime) + windowMs).toISOString() } },
    extension: [
      { url: QueueExtension.nextAttempt, valueInstant: new Date().toISOString() },
      { url: QueueExtension.attempts, valueInteger: 0 },
    ],
  };
}

/**
 * Works through a destination's queue, oldest event first and in order per resource (the Task
 * input `resource`): a resource's later item waits until its earlier one is done, and an item
 * younger than the settle time waits too. A success completes the item; a failure schedules the
 * next attempt with exponential backoff and jitter ({@link retryDelay}); a failure whose next
 * attempt would fall after the retry window, or a final refusal, goes to the dead-letter
 * (`failed`); an unreachable destination ends the pass. One pass per destination at a time (a
 * lock), at most 50 s.
 * @param medplum - The client.
 * @param options - The queue.
 * @param now - The current time, ms.
 * @returns Counts.
 */
export async function processQueue(medplum: MedplumClient, options: QueueOptions, now = Date.now()): Promise<QueueReport> {
  const lease = await acquireLock(medplum, options.lockKind, options.owner.replace('/', '-'), `queue ${options.code.code}`);
  if (!lease) {
    return { delivered: 0, failed: 0, deadLettered: 0, waiting: 0, skipped: 'another pass is working on this queue' };
  }
  const started = Date.now();
  try {
    const pending = await medplum.searchResources('Task', {
      code: `${options.code.system}|${options.code.code}`,
      owner: options.owner,
      status: 'requested',
      _sort: 'authored-on',
      _count: '200',
    });
    const blocked = new Set<string>();
    const report = { delivered: 0, failed: 0, deadLettered: 0, waiting: 0 };
    for (const task of pending) {
      const resource = inputOf(task, 'resource') ?? '';
      const settled = Date.parse(task.authoredOn ?? '') <= now - options.settleMs;
      if (blocked.has(resource) || !settled || Date.parse(nextAttemptOf(task) ?? '') > now || Date.now() - started > PASS_BUDGET_MS) {
        blocked.add(resource);
        report.waiting++;
        continue;
      }
      // A send that throws is a failed attempt, counted like any other (never an endless retry).
      const answer = await options.attempt(task).catch((err: unknown): AttemptResult => ({ ok: false, reason: `the attempt failed (${(err as Error).name ?? 'error'})` }));
      const attempts = attemptsOf(task) + 1;
      if (answer.ok) {
        await settle(medplum, task, 'completed', 'delivered', `${answer.text} (attempt ${attempts})`, attempts);
        report.delivered++;
        continue;
      }
      const delay = retryDelay(options.retryBaseMs, attempts, Math.random());
      if (answer.final || now + delay > Date.parse(task.restriction?.period?.end ?? '')) {
        const why = answer.final ? 'refused for good' : 'not delivered within the retry window';
        await settle(medplum, task, 'failed', 'dead-letter', `${why} (${attempts} attempt(s), last: ${answer.reason})`, attempts);
        report.deadLettered++;
      } else {
        await reschedule(medplum, task, attempts, new Date(now + delay).toISOString(), `attempt ${attempts} failed: ${answer.reason}`);
        report.failed++;
      }
      blocked.add(resource);
      if (answer.unreachable) {
        break;
      }
    }
    return report;
  } finally {
    await releaseLock(medplum, lease);
  }
}

/**
 * @param baseMs - The first retry delay.
 * @param attempts - Attempts made so far (1 after the first failure).
 * @param random - A number in [0, 1): the jitter (±20 %), so a destination coming back up is not
 * hit by every queued item at the same instant.
 * @returns The wait before the next attempt: the base doubled per attempt, jittered, at most an hour.
 */
export function retryDelay(baseMs: number, attempts: number, random: number): number {
  return Math.min(baseMs * 2 ** (attempts - 1) * (0.8 + random * 0.4), MAX_BACKOFF_MS);
}

/**
 * Puts a dead-lettered item back in its queue with a fresh retry window.
 * @param medplum - The client.
 * @param taskId - The Task (it must be a dead letter of the queue).
 * @param code - The queue's Task code.
 * @param windowMs - The new retry window.
 * @returns The Task.
 */
export async function replayQueued(medplum: MedplumClient, taskId: string, code: Coding, windowMs: number): Promise<WithId<Task>> {
  const task = await medplum.readResource('Task', taskId);
  if (!task.code?.coding?.some((c) => c.system === code.system && c.code === code.code) || task.status !== 'failed') {
    throw new Error(`Task/${taskId} is not a dead letter of the ${code.code} queue`);
  }
  const now = new Date();
  return medplum.updateResource<Task>({
    ...task,
    status: 'requested',
    businessStatus: { coding: [{ system: DELIVERY_STATE_SYSTEM, code: 'replayed' }], text: `replayed ${now.toISOString()}` },
    restriction: { period: { end: new Date(now.getTime() + windowMs).toISOString() } },
    extension: withExtensions(task, { attempts: 0, next: now.toISOString() }),
  });
}

/**
 * @param task - A queued Task.
 * @param name - An input's type text.
 * @returns The input's string value.
 */
export function inputOf(task: Task, name: string): string | undefined {
  return task.input?.find((i) => i.type?.text === name)?.valueString;
}

async function settle(medplum: MedplumClient, task: WithId<Task>, status: 'completed' | 'failed', state: string, text: string, attempts: number): Promise<void> {
  await medplum.updateResource<Task>({
    ...task,
    status,
    businessStatus: { coding: [{ system: DELIVERY_STATE_SYSTEM, code: state }], text },
    lastModified: new Date().toISOString(),
    extension: withExtensions(task, { attempts }),
  });
}

async function reschedule(medplum: MedplumClient, task: WithId<Task>, attempts: number, next: string, text: string): Promise<void> {
  await medplum.updateResource<Task>({
    ...task,
    businessStatus: { coding: [{ system: DELIVERY_STATE_SYSTEM, code: 'retrying' }], text },
    lastModified: new Date().toISOString(),
    extension: withExtensions(task, { attempts, next }),
  });
}

function withExtensions(task: Task, values: { attempts: number; next?: string }): Task['extension'] {
  const others = (task.extension ?? []).filter((e) => e.url !== QueueExtension.attempts && e.url !== QueueExtension.nextAttempt);
  return [
    ...others,
    { url: QueueExtension.attempts, valueInteger: values.attempts },
    { url: QueueExtension.nextAttempt, valueInstant: values.next ?? nextAttemptOf(task) ?? new Date().toISOString() },
  ];
}

function attemptsOf(task: Task): number {
  return task.extension?.find((e) => e.url === QueueExtension.attempts)?.valueInteger ?? 0;
}

function nextAttemptOf(task: Task): string | undefined {
  return task.extension?.find((e) => e.url === QueueExtension.nextAttempt)?.valueInstant;
}
