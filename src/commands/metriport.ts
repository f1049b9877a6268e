import type { MedplumClient, WithId } from '@medplum/core';
import { ensureTrailingSlash } from '@medplum/core';
import type { Bot, ClientApplication, Task } from '@medplum/fhirtypes';
import { BOT_NAME_SYSTEM } from '../constants.ts';
import { findManaged } from '../deploy/managed.ts';
import type { Target, TargetOptions } from '../deploy/target.ts';
import { connectTarget } from '../deploy/target.ts';
import { hideValues } from '../fhir/strings.ts';
import { redriveWebhookTask } from '../metriport/task-outcome.ts';
import type { ProgressSettings } from './progress.ts';
import { createProgress, logAbove } from './progress.ts';
import { METRIPORT_MESSAGE_ID_SYSTEM, METRIPORT_WEBHOOK_TASK_CODE } from '../metriport/constants.ts';

export const METRIPORT_USAGE = `Usage: hub metriport <command>

  webhook-url              the URL to enter as the webhook in Metriport's dashboard (it holds
                           the metriport-webhook client's secret: paste it, do not share it)
  tasks [--failed] [--limit N]
                           received webhook messages, newest first, with their outcome
  redrive <Task id ...>    process recorded messages again (sets each Task back to requested)
`;

/** Options of {@link runMetriportCommand}. */
export interface MetriportCommandOptions {
  readonly log: (line: string) => void;
  readonly error: (line: string) => void;
  /** Where the running count of redrives goes (default: stderr). */
  readonly progress?: ProgressSettings;
}

/**
 * `hub metriport ...`: the operator's view of the Metriport integration on the target.
 * @param target - A connected target, the options to connect with, or why there is none.
 * @param args - Arguments after `metriport`.
 * @param options - Output.
 * @returns The exit code (2 for a usage error).
 */
export async function runMetriportCommand(target: Target | TargetOptions | string, args: readonly string[], options: MetriportCommandOptions): Promise<number> {
  const [command, ...rest] = args;
  if (!['webhook-url', 'tasks', 'redrive'].includes(command ?? '') || (command === 'redrive' && rest.length === 0)) {
    options.error(METRIPORT_USAGE);
    return 2;
  }
  if (typeof target === 'string') {
    options.error(target);
    return 2;
  }
  const connected = 'client' in target ? target : await connectTarget(target);
  if (command === 'webhook-url') {
    options.log(await metriportWebhookUrl(connected.client, connected.baseUrl));
    return 0;
  }
  if (command === 'tasks') {
    const limitIndex = rest.indexOf('--limit');
    const limit = limitIndex >= 0 ? Number.parseInt(rest[limitIndex + 1] ?? '', 10) : 50;
    if (!Number.isInteger(limit) || limit < 1) {
      options.error(METRIPORT_USAGE);
      return 2;
    }
    for (const task of await listWebhookTasks(connected.client, { failedOnly: rest.includes('--failed'), limit })) {
      options.log(describeTask(task));
    }
    return 0;
  }
  const progress = createProgress({ label: 'metriport redrive', total: rest.length, ...options.progress });
  const log = logAbove(progress, options.log);
  try {
    for (const id of rest) {
      const task = await connected.client.readResource('Task', id);
      await redriveWebhookTask(connected.client, task);
      log(`Task/${id}: requested again (was ${task.status}${isStale(task) ? ', stale' : ''})`);
      progress.tick(1, `Task/${id}`);
    }
  } finally {
    progress.done(`${progress.count} requested again`);
  }
  return 0;
}

/**
 * Builds the webhook URL Metriport calls: the receiver bot's `$execute`, with the
 * `metriport-webhook` client's id and secret as URL credentials (Metriport sends them as HTTP
 * Basic authentication).
 * @param medplum - A project-admin client.
 * @param baseUrl - The server's public base URL.
 * @returns The URL.
 */
export async function metriportWebhookUrl(medplum: MedplumClient, baseUrl: string): Promise<string> {
  const [client] = (await findManaged(medplum, 'ClientApplication', 'metriport-webhook')) as WithId<ClientApplication>[];
  const bot = await medplum.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|metriport-webhook` });
  if (!client?.secret || !bot) {
    throw new Error('The metriport-webhook client or bot is not deployed on this target: run `npm run deploy`');
  }
  const url = new URL(`fhir/R4/Bot/${(bot as WithId<Bot>).id}/$execute`, ensureTrailingSlash(baseUrl));
  url.username = client.id;
  url.password = client.secret;
  return url.toString();
}

/**
 * @param medplum - A client.
 * @param options - Only failed Tasks; how many.
 * @param options.failedOnly - Only Tasks whose processing failed.
 * @param options.limit - How many, newest first.
 * @returns Webhook Tasks, newest first.
 */
export async function listWebhookTasks(medplum: MedplumClient, options: { failedOnly: boolean; limit: number }): Promise<WithId<Task>[]> {
  return medplum.searchResources('Task', {
    code: `${METRIPORT_WEBHOOK_TASK_CODE.system}|${METRIPORT_WEBHOOK_TASK_CODE.code}`,
    ...(options.failedOnly ? { status: 'failed' } : {}),
    _sort: '-_lastUpdated',
    _count: String(options.limit),
  });
}

/**
 * @param task - A webhook Task.
 * @returns One line: id, status, outcome, message id and what happened (no PHI: ids and counts;
 * quoted values in the outcome's text hidden).
 */
export function describeTask(task: Task): string {
  const messageId = task.identifier?.find((i) => i.system === METRIPORT_MESSAGE_ID_SYSTEM)?.value ?? '-';
  // By name, not position: the other input is the webhook body, full of patient data.
  const type = task.input?.find((i) => i.type?.text === 'message type')?.valueString ?? '-';
  const outcome = task.businessStatus?.coding?.[0]?.code ?? '-';
  const status = isStale(task) ? `${task.status} (stale: no run has finished it; redrive it)` : task.status;
  return `Task/${task.id}  ${task.authoredOn ?? ''}  ${type}  message ${messageId}  ${status}  ${outcome}  ${hideValues(task.businessStatus?.text ?? '')}`.trimEnd();
}

/** Longer than the processing bot's timeout (900 s): a run still `in-progress` after it has died. */
const STALE_AFTER_MS = 20 * 60_000;

/**
 * @param task - A webhook Task.
 * @param now - The current time in ms.
 * @returns True when it is `in-progress` but was last changed longer ago than any run can take.
 */
export function isStale(task: Task, now = Date.now()): boolean {
  const changed = Date.parse(task.lastModified ?? task.meta?.lastUpdated ?? '');
  return task.status === 'in-progress' && Number.isFinite(changed) && now - changed > STALE_AFTER_MS;
}
