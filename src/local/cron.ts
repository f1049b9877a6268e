import type { WithId } from '@medplum/core';
import { ContentType, createReference, normalizeErrorString } from '@medplum/core';
import type { Bot, Project, Timing } from '@medplum/fhirtypes';
import { CronExpressionParser } from 'cron-parser';
import type { AuthService } from './auth.ts';
import type { BotExecutor } from './bots/executor.ts';
import type { HubRepository } from './repo.ts';
import type { ResourceChange } from './store.ts';

const DAYS_OF_WEEK: Record<string, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };

/**
 * Converts `Bot.cronTiming` to a cron pattern with the stock server's rule
 * (`convertTimingToCron`): `repeat.period` is read as "times per day" (hours when up to 24,
 * minutes when 25-59), on minute 0, restricted to `repeat.dayOfWeek`.
 * @param timing - The Timing.
 * @returns The cron pattern, or undefined without `repeat`.
 */
export function timingToCron(timing: Timing): string | undefined {
  if (!timing.repeat) {
    return undefined;
  }
  let minute = '0';
  let hour = '*';
  const period = timing.repeat.period ? timing.repeat.period : 1;
  if (period > 24 && period < 60) {
    minute = `*/${Math.ceil((24 * 60) / period)}`;
  } else {
    hour = `*/${Math.ceil(24 / period)}`;
  }
  const days = timing.repeat.dayOfWeek;
  const dayOfWeek = days ? days.map((d) => DAYS_OF_WEEK[d]).join(',') : '*';
  return `${minute} ${hour} * * ${dayOfWeek}`;
}

/**
 * The schedule a Bot runs on: `cronTiming` wins over `cronString`, invalid patterns are ignored.
 * @param bot - The bot.
 * @returns The cron pattern, or undefined when the bot is not scheduled.
 */
export function cronPatternOf(bot: Bot): string | undefined {
  if (bot.cronTiming) {
    const fromTiming = timingToCron(bot.cronTiming);
    if (fromTiming) {
      return fromTiming;
    }
  }
  if (bot.cronString && isValidCronString(bot.cronString)) {
    return bot.cronString;
  }
  return undefined;
}

/** Bounds of the five fields: minute, hour, day of month, month, day of week. */
const CRON_FIELD_BOUNDS: readonly (readonly [number, number])[] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 6],
];

/**
 * Whether the stock server schedules a `Bot.cronString`. It checks the string with
 * `cron-validator`'s `isValidCron` and default options (`workers/cron.ts`), which accept exactly
 * five numeric fields: no seconds field, no month or weekday names, no `?`, `@daily` or `L`, and
 * day of week 0-6. A six-field pattern such as `* * * * * *` is therefore never run by the stock
 * server, although cron-parser would accept it. The pattern must also parse for the scheduler.
 * @param pattern - The cron string.
 * @returns True when the stock server would schedule it.
 */
export function isValidCronString(pattern: string): boolean {
  const fields = pattern.trim().split(/\s+/);
  if (fields.length !== CRON_FIELD_BOUNDS.length) {
    return false;
  }
  if (!fields.every((field, i) => isValidCronField(field, CRON_FIELD_BOUNDS[i][0], CRON_FIELD_BOUNDS[i][1]))) {
    return false;
  }
  try {
    CronExpressionParser.parse(pattern);
    return true;
  } catch (_err) {
    return false;
  }
}

/**
 * One field: comma-separated items, each `*`, `n` or `a-b` within bounds, optionally `/step`.
 * @param field - The field text.
 * @param min - Smallest allowed value.
 * @param max - Largest allowed value.
 * @returns True when the field is valid.
 */
function isValidCronField(field: string, min: number, max: number): boolean {
  if (!/^[\d,\-/*]+$/.test(field)) {
    return false;
  }
  return field.split(',').every((item) => {
    const [range, step, ...rest] = item.split('/');
    if (rest.length > 0 || (step !== undefined && !/^\d+$/.test(step))) {
      return false;
    }
    if (range === '*') {
      return true;
    }
    const ends = range.split('-');
    if (ends.length > 2 || !ends.every((end) => /^\d+$/.test(end))) {
      return false;
    }
    const low = Number(ends[0]);
    const high = Number(ends[ends.length - 1]);
    return min <= low && low <= high && high <= max;
  });
}

/** Dependencies provided by the runtime. */
export interface CronSchedulerOptions {
  readonly systemRepo: HubRepository;
  readonly executor: BotExecutor;
  readonly auth: AuthService;
  readonly log?: (message: string) => void;
}

interface Schedule {
  readonly pattern: string;
  timer?: NodeJS.Timeout;
}

/**
 * Runs cron bots like the stock server's cron worker: a Bot with a valid `cronString` or
 * `cronTiming` in a project with the `cron` feature runs on schedule, as its own membership,
 * with the Bot resource as input (`application/fhir+json`). Schedules follow Bot writes. The
 * finest schedule is once a minute, since the stock server refuses a seconds field.
 */
export class CronScheduler {
  private readonly options: CronSchedulerOptions;
  private readonly schedules = new Map<string, Schedule>();
  private stopped = false;

  constructor(options: CronSchedulerOptions) {
    this.options = options;
  }

  /** Schedules every existing cron bot. */
  async start(): Promise<void> {
    const bots = await this.options.systemRepo.searchResources<Bot>({ resourceType: 'Bot', count: 1000 });
    for (const bot of bots) {
      await this.reschedule(bot);
    }
  }

  /**
   * Follows Bot creates, updates and deletes. Called by the store after each commit.
   * @param changes - Committed changes.
   */
  onCommit(changes: readonly ResourceChange[]): void {
    for (const change of changes) {
      if (change.resource.resourceType !== 'Bot') {
        continue;
      }
      const bot = change.resource as WithId<Bot>;
      if (change.interaction === 'delete') {
        this.unschedule(bot.id);
      } else {
        this.reschedule(bot).catch((err: unknown) => this.log(`Cron schedule for Bot/${bot.id} failed: ${normalizeErrorString(err)}`));
      }
    }
  }

  /** @returns The bots currently scheduled, with their patterns. */
  scheduled(): { botId: string; pattern: string }[] {
    return [...this.schedules].map(([botId, s]) => ({ botId, pattern: s.pattern }));
  }

  /** Cancels every schedule. */
  stop(): void {
    this.stopped = true;
    for (const id of [...this.schedules.keys()]) {
      this.unschedule(id);
    }
  }

  private async reschedule(bot: WithId<Bot>): Promise<void> {
    const pattern = cronPatternOf(bot);
    const project = await this.options.systemRepo.readResource<Project>('Project', bot.meta?.project as string);
    const enabled = pattern !== undefined && Boolean(project.features?.includes('cron'));
    const existing = this.schedules.get(bot.id);
    if (existing && enabled && existing.pattern === pattern) {
      return;
    }
    this.unschedule(bot.id);
    if (enabled && !this.stopped) {
      const schedule: Schedule = { pattern: pattern as string };
      this.schedules.set(bot.id, schedule);
      this.armNext(bot.id, schedule);
    }
  }

  private armNext(botId: string, schedule: Schedule): void {
    const next = CronExpressionParser.parse(schedule.pattern).next().getTime();
    // setTimeout cannot wait longer than ~24.8 days; re-arm in steps for sparse schedules.
    const delay = Math.min(Math.max(0, next - Date.now()), 2 ** 31 - 1);
    schedule.timer = setTimeout(() => {
      if (this.schedules.get(botId) !== schedule) {
        return;
      }
      this.armNext(botId, schedule);
      if (Date.now() + 5 < next) {
        // Woken early by the step limit above: not due yet.
        return;
      }
      this.runBot(botId).catch((err: unknown) => this.log(`Cron run of Bot/${botId} failed: ${normalizeErrorString(err)}`));
    }, delay);
    schedule.timer.unref?.();
  }

  private unschedule(botId: string): void {
    const schedule = this.schedules.get(botId);
    if (schedule?.timer) {
      clearTimeout(schedule.timer);
    }
    this.schedules.delete(botId);
  }

  private async runBot(botId: string): Promise<void> {
    const bot = await this.options.systemRepo.readResource<Bot>('Bot', botId);
    const runAs = await this.options.auth.findMembership(createReference(bot));
    if (!runAs) {
      throw new Error('Could not find project membership for bot');
    }
    await this.options.executor.execute({
      bot,
      runAs,
      input: bot,
      contentType: ContentType.FHIR_JSON,
    });
  }

  private log(message: string): void {
    this.options.log?.(message);
  }
}
