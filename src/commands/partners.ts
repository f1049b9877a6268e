import type { WithId } from '@medplum/core';
import type { Coding, Task } from '@medplum/fhirtypes';
import type { Target, TargetOptions } from '../deploy/target.ts';
import { connectTarget } from '../deploy/target.ts';
import { hideValues } from '../fhir/strings.ts';
import { DELIVERY_TASK_CODE } from '../outbound/delivery.ts';
import { DELIVERY_STATE_SYSTEM, replayQueued } from '../outbound/queue.ts';
import type { ProgressSettings } from './progress.ts';
import { createProgress, logAbove } from './progress.ts';

export const PARTNERS_USAGE = `Usage: hub partners <command>   (or hub labs <command> for orders to labs)

  deliveries [--dead-letter] [--limit N]
                           deliveries to partners (hub labs: orders to labs), newest first
                           (event, destination, state, attempts)
  replay <Task id ...> [--window-hours H]
                           send dead letters again, with a new retry window (default 72 h)
`;

/** Options of {@link runPartnersCommand}. */
export interface PartnersCommandOptions {
  readonly log: (line: string) => void;
  readonly error: (line: string) => void;
  /** Where the running count of replays goes (default: stderr). */
  readonly progress?: ProgressSettings;
}

/**
 * `hub partners ...` and `hub labs ...`: an outbound queue (deliveries to partners, orders to
 * labs) and its dead-letter on the target.
 * @param target - A connected target, the options to connect with, or why there is none.
 * @param args - Arguments after `partners`.
 * @param options - Output.
 * @param queue - The queue's Task code (partner deliveries by default).
 * @returns The exit code (2 for a usage error).
 */
export async function runPartnersCommand(
  target: Target | TargetOptions | string,
  args: readonly string[],
  options: PartnersCommandOptions,
  queue: Coding = DELIVERY_TASK_CODE
): Promise<number> {
  const [command, ...rest] = args;
  const number = (flag: string, fallback: number): number => {
    const index = rest.indexOf(flag);
    return index >= 0 ? Number(rest[index + 1]) : fallback;
  };
  const ids = rest.filter((a, i) => !a.startsWith('--') && !rest[i - 1]?.startsWith('--'));
  const limit = number('--limit', 50);
  const windowHours = number('--window-hours', 72);
  if (!['deliveries', 'replay'].includes(command ?? '') || (command === 'replay' && ids.length === 0) || !(limit > 0) || !(windowHours > 0)) {
    options.error(PARTNERS_USAGE);
    return 2;
  }
  if (typeof target === 'string') {
    options.error(target);
    return 2;
  }
  const { client } = 'client' in target ? target : await connectTarget(target);
  if (command === 'deliveries') {
    const tasks = await client.searchResources('Task', {
      code: `${queue.system}|${queue.code}`,
      ...(rest.includes('--dead-letter') ? { status: 'failed' } : {}),
      _sort: '-_lastUpdated',
      _count: String(limit),
    });
    tasks.forEach((task) => options.log(describeDelivery(task)));
    return 0;
  }
  const progress = createProgress({ label: `${queue.code === DELIVERY_TASK_CODE.code ? 'partners' : 'labs'} replay`, total: ids.length, ...options.progress });
  const log = logAbove(progress, options.log);
  try {
    for (const id of ids) {
      await replayQueued(client, id, queue, windowHours * 3600_000);
      log(`Task/${id}: queued again (retry window ${windowHours} h); it is sent within a minute`);
      progress.tick(1, `Task/${id}`);
    }
  } finally {
    progress.done(`${progress.count} queued again`);
  }
  return 0;
}

/**
 * @param task - A delivery Task.
 * @returns One line: ids, state and attempts (no resource content; quoted values in the state's
 * text hidden, as a failure's text may quote what was sent).
 */
export function describeDelivery(task: WithId<Task>): string {
  const state = task.businessStatus?.coding?.find((c) => c.system === DELIVERY_STATE_SYSTEM)?.code ?? 'pending';
  return `Task/${task.id}  ${task.authoredOn ?? ''}  ${task.focus?.reference ?? ''}  → ${task.owner?.reference ?? ''}  ${task.status}  ${state}  ${hideValues(task.businessStatus?.text ?? '')}`.trimEnd();
}
