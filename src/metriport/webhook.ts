import type { BotEvent, MedplumClient, WithId } from '@medplum/core';
import type { Task, TaskInput } from '@medplum/fhirtypes';
import {
  METRIPORT_MESSAGE_ID_SYSTEM,
  METRIPORT_REQUEST_ID_SYSTEM,
  METRIPORT_WEBHOOK_TASK_CODE,
  MetriportSecret,
} from './constants.ts';
import { headerValue } from '../net/headers.ts';
import { verifyWebhookSignature } from './signature.ts';
import { TaskOutcome, taskOutcome } from './task-outcome.ts';

/** The envelope of every Metriport webhook message (facts §2.1). */
export interface WebhookMeta {
  messageId: string;
  requestId?: string;
  when: string;
  type: string;
  data?: Record<string, string>;
}

/** A Metriport webhook body: `meta` plus a type-specific payload (`patients`, `payload`, …). */
export interface WebhookMessage {
  meta: WebhookMeta;
  [key: string]: unknown;
}

/** The message types whose data the hub imports (by the processing bot). */
export const PROCESSED_TYPES: ReadonlySet<string> = new Set(['medical.consolidated-data']);

/** Task input holding the exact webhook body. */
export const WEBHOOK_BODY_INPUT = { text: 'webhook body' } as const;

/**
 * Thrown for calls that are not from Metriport (no or wrong signature) or cannot be checked
 * (no webhook key configured). The bot's failure makes the Medplum server answer 400 with the
 * message as an OperationOutcome.
 */
export class WebhookRejectedError extends Error {}

/** What the receiver answered. */
export type WebhookAnswer = { pong: string } | { received: string; duplicate: boolean; task: string };

/**
 * Receives a Metriport webhook call: checks `x-metriport-signature` over the body, answers a
 * `ping` with its `pong`, and records every other message as a Task keyed by `meta.messageId`
 * (a conditional create, so a second delivery of the same message, including Metriport's manual
 * replays, records nothing new). Data messages are recorded `requested`, for the processing
 * bot; other types are recorded `completed` as not handled; unreadable bodies `failed`. The
 * answer goes back within one write, well inside Metriport's 4-5 s.
 * @param medplum - The client (the receiver bot's identity).
 * @param event - The `$execute` event: parsed body, request headers, secrets.
 * @returns The answer.
 * @throws WebhookRejectedError when the call cannot be verified.
 */
export async function receiveWebhook(medplum: MedplumClient, event: BotEvent): Promise<WebhookAnswer> {
  const webhookKey = event.secrets?.[MetriportSecret.webhookKey]?.valueString;
  if (!webhookKey) {
    throw new WebhookRejectedError(`Metriport webhook rejected: the ${MetriportSecret.webhookKey} bot secret is not set`);
  }
  // The server hands bots the parsed body; re-serializing yields the exact bytes Metriport signed.
  const body = typeof event.input === 'string' ? event.input : JSON.stringify(event.input);
  const signature = headerValue(event.headers, 'x-metriport-signature');
  if (!verifyWebhookSignature(webhookKey, body, signature)) {
    throw new WebhookRejectedError(`Metriport webhook rejected: ${signature ? 'wrong' : 'missing'} x-metriport-signature`);
  }
  const message = typeof event.input === 'string' ? safeParse(event.input) : event.input;
  const ping = (message as { ping?: unknown } | undefined)?.ping;
  if (typeof ping === 'string') {
    return { pong: ping };
  }
  const task = buildWebhookTask(message, body, new Date().toISOString());
  const messageId = task.identifier?.find((i) => i.system === METRIPORT_MESSAGE_ID_SYSTEM)?.value;
  const stored: WithId<Task> = messageId
    ? await medplum.createResourceIfNoneExist(task, `identifier=${encodeURIComponent(`${METRIPORT_MESSAGE_ID_SYSTEM}|${messageId}`)}`)
    : await medplum.createResource(task);
  const duplicate = stored.authoredOn !== task.authoredOn;
  console.log(`Metriport ${task.input?.[0]?.valueString ?? 'message'} ${messageId ?? '(no messageId)'}: ${duplicate ? 'already received' : 'recorded'} as Task/${stored.id}`);
  return { received: messageId ?? '', duplicate, task: `Task/${stored.id}` };
}

/**
 * Builds the Task recording a webhook message (pure).
 * @param message - The parsed body.
 * @param body - The exact body, kept for processing and replay.
 * @param now - The reception time.
 * @returns The Task.
 */
export function buildWebhookTask(message: unknown, body: string, now: string): Task {
  const meta = readMeta(message);
  const inputs: TaskInput[] = [
    { type: { text: 'message type' }, valueString: meta?.type ?? 'unknown' },
    { type: WEBHOOK_BODY_INPUT, valueString: body },
  ];
  const task: Task = {
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    code: { coding: [{ ...METRIPORT_WEBHOOK_TASK_CODE }], text: 'Metriport webhook message' },
    authoredOn: now,
    input: inputs,
  };
  if (!meta) {
    return { ...task, status: 'failed', ...taskOutcome(TaskOutcome.unreadable, 'the body has no meta.messageId, meta.type and meta.when') };
  }
  task.identifier = [{ system: METRIPORT_MESSAGE_ID_SYSTEM, value: meta.messageId }];
  if (meta.requestId) {
    task.identifier.push({ system: METRIPORT_REQUEST_ID_SYSTEM, value: meta.requestId });
  }
  task.description = `Metriport ${meta.type} sent ${meta.when}`;
  if (!PROCESSED_TYPES.has(meta.type)) {
    return { ...task, status: 'completed', ...taskOutcome(TaskOutcome.notHandled, `the hub does not process ${meta.type} messages`) };
  }
  return task;
}

/**
 * @param message - A parsed body.
 * @returns Its `meta`, when it has the fields every message carries.
 */
export function readMeta(message: unknown): WebhookMeta | undefined {
  const meta = (message as { meta?: Partial<WebhookMeta> } | undefined)?.meta;
  return meta && typeof meta.messageId === 'string' && meta.messageId && typeof meta.type === 'string' && typeof meta.when === 'string'
    ? (meta as WebhookMeta)
    : undefined;
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
