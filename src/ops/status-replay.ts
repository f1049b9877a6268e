import type { MedplumClient } from '@medplum/core';
import { outcomeOf } from '../fhir/ledger.ts';
import { buildReplayTask } from '../inbound/replay.ts';
import { isReplay } from '../inbound/stats.ts';
import { DELIVERY_TASK_CODE } from '../outbound/delivery.ts';
import { LAB_ORDER_TASK_CODE } from '../outbound/lab-orders.ts';
import { replayQueued } from '../outbound/queue.ts';
import { METRIPORT_WEBHOOK_TASK_CODE } from '../metriport/constants.ts';
import { redriveWebhookTask } from '../metriport/task-outcome.ts';
import type { DeadLetterKind } from './status-model.ts';
import { metriportTaskState } from './status-model.ts';

/**
 * Replays one dead letter from the status page, with the replay each ledger already has: an HL7
 * message gets a replay Task for the hl7-replay bot (as `hub hl7 replay --no-wait`), a Metriport
 * message is re-driven (as `hub metriport redrive`), a partner delivery or a lab order is queued
 * again with a fresh retry window (`replayQueued`, as `hub partners replay` / `hub labs replay`).
 * Everything runs as the given client, so the caller's AccessPolicy decides whether it may.
 */

/** The kinds the page can replay (SFTP files are put back in their folder instead). */
export const REPLAYABLE_KINDS: readonly DeadLetterKind[] = ['hl7-message', 'metriport-webhook', 'partner-delivery', 'lab-order'];

/** Retry window of a delivery or an order queued again (the CLI's default). */
const REPLAY_WINDOW_MS = 72 * 3600_000;

/** What a replay request did. */
export interface ReplayResult {
  /** What was done, for people (ids only). */
  readonly text: string;
  /** The resource that carries the replay: the replay Task, or the re-queued Task. */
  readonly reference: string;
}

/** A replay request that cannot be carried out as asked (answered 400 or 409). */
export class ReplayRefusedError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/**
 * @param value - A request body.
 * @returns The dead letter it names, or why it names none.
 */
export function readReplayRequest(value: unknown): { kind: DeadLetterKind; id: string } | string {
  const { kind, id } = (value ?? {}) as { kind?: unknown; id?: unknown };
  if (typeof kind !== 'string' || !REPLAYABLE_KINDS.includes(kind as DeadLetterKind)) {
    return `kind must be one of ${REPLAYABLE_KINDS.join(', ')}`;
  }
  if (typeof id !== 'string' || !/^[A-Za-z0-9\-.]{1,64}$/.test(id)) {
    return 'id must be a FHIR resource id';
  }
  return { kind: kind as DeadLetterKind, id };
}

/**
 * Replays one open dead letter.
 * @param medplum - The caller's client.
 * @param request - The dead letter.
 * @param request.kind - Its kind.
 * @param request.id - Its ledger entry's id.
 * @returns What was done.
 * @throws ReplayRefusedError when the entry is not an open dead letter of that kind.
 */
export async function replayDeadLetter(medplum: MedplumClient, request: { kind: DeadLetterKind; id: string }): Promise<ReplayResult> {
  switch (request.kind) {
    case 'hl7-message': {
      const entry = await medplum.readResource('MessageHeader', request.id);
      if (outcomeOf(entry) !== 'dead-letter' || isReplay(entry)) {
        throw new ReplayRefusedError(`MessageHeader/${request.id} is not an open dead letter (outcome ${outcomeOf(entry) ?? 'none'})`, 409);
      }
      const task = await medplum.createResource(buildReplayTask({ reference: `MessageHeader/${entry.id}` }, 'Replay requested on the hub status page'));
      return { text: `MessageHeader/${entry.id}: replay Task/${task.id} created`, reference: `Task/${task.id}` };
    }
    case 'metriport-webhook': {
      const task = await medplum.readResource('Task', request.id);
      const isWebhook = task.code?.coding?.some((c) => c.system === METRIPORT_WEBHOOK_TASK_CODE.system && c.code === METRIPORT_WEBHOOK_TASK_CODE.code);
      if (!isWebhook || metriportTaskState(task).state !== 'dead-letter') {
        throw new ReplayRefusedError(`Task/${request.id} is not a failed Metriport webhook message`, 409);
      }
      await redriveWebhookTask(medplum, task);
      return { text: `Task/${request.id}: requested again`, reference: `Task/${request.id}` };
    }
    case 'partner-delivery':
    case 'lab-order': {
      const queue = request.kind === 'partner-delivery' ? DELIVERY_TASK_CODE : LAB_ORDER_TASK_CODE;
      const task = await medplum.readResource('Task', request.id);
      if (task.status !== 'failed') {
        throw new ReplayRefusedError(`Task/${request.id} is not a dead letter (status ${task.status})`, 409);
      }
      await replayQueued(medplum, request.id, queue, REPLAY_WINDOW_MS);
      return { text: `Task/${request.id}: queued again (retry window 72 h)`, reference: `Task/${request.id}` };
    }
    default:
      throw new ReplayRefusedError(`${request.kind} dead letters are not replayed here`, 400);
  }
}
