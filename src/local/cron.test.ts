import type { WithId } from '@medplum/core';
import type { AuditEvent, Bot, Project } from '@medplum/fhirtypes';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { deployBot } from './bots/operations.ts';
import { cronPatternOf, isValidCronString, timingToCron } from './cron.ts';
import { LocalRuntime } from './runtime.ts';

describe('timingToCron (stock convertTimingToCron)', () => {
  test.each([
    [{ repeat: { period: 1 } }, '0 */24 * * *'],
    [{ repeat: {} }, '0 */24 * * *'],
    [{ repeat: { period: 24 } }, '0 */1 * * *'],
    [{ repeat: { period: 6 } }, '0 */4 * * *'],
    [{ repeat: { period: 48 } }, '*/30 * * * *'],
    [{ repeat: { period: 59 } }, '*/25 * * * *'],
    [{ repeat: { period: 60 } }, '0 */1 * * *'],
    [{ repeat: { period: 1, dayOfWeek: ['mon', 'wed'] } }, '0 */24 * * 1,3'],
    [{ repeat: { period: 24, dayOfWeek: ['sun', 'sat'] } }, '0 */1 * * 0,6'],
  ] as const)('%j -> %s', (timing, expected) => {
    expect(timingToCron(structuredClone(timing) as never)).toBe(expected);
  });

  test('no repeat means no schedule', () => {
    expect(timingToCron({ event: ['2024-01-01T00:00:00Z'] })).toBeUndefined();
  });
});

describe('cronPatternOf', () => {
  const bot = (extra: Partial<Bot>): Bot => ({ resourceType: 'Bot', name: 'b', ...extra });

  test('cronTiming wins over cronString', () => {
    expect(cronPatternOf(bot({ cronTiming: { repeat: { period: 24 } }, cronString: '*/5 * * * *' }))).toBe('0 */1 * * *');
    // A timing without repeat falls back to the string.
    expect(cronPatternOf(bot({ cronTiming: {}, cronString: '*/5 * * * *' }))).toBe('*/5 * * * *');
  });

  test('invalid cronString is ignored', () => {
    expect(cronPatternOf(bot({ cronString: 'not a cron' }))).toBeUndefined();
    expect(cronPatternOf(bot({ cronString: '61 * * * *' }))).toBeUndefined();
    expect(cronPatternOf(bot({}))).toBeUndefined();
  });

  test('validation follows cron-validator defaults, as the stock cron worker does', () => {
    for (const ok of ['* * * * *', '*/15 0-6 1,15 */2 1-5', '5/10 * * * 0', '0 0 31 12 6']) {
      expect(isValidCronString(ok), ok).toBe(true);
    }
    // Seconds, names, aliases, '?' and day 7 are refused by the stock server.
    const refused = ['* * * * * *', '0 0 * JAN MON', '@daily', '0 0 ? * *', '0 0 * * 7', '*/ * * * *', '5-1 * * * *'];
    for (const bad of refused) {
      expect(isValidCronString(bad), bad).toBe(false);
    }
  });
});

describe('CronScheduler in a running LocalRuntime', () => {
  let runtime: LocalRuntime;
  let project: WithId<Project>;

  beforeAll(async () => {
    runtime = await new LocalRuntime({ port: 0 }).start();
    project = await runtime.systemRepo().readResource<Project>('Project', runtime.hubProjectId);
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  afterAll(async () => {
    await runtime?.stop();
  });

  /** Creates a deployed bot that logs the reference of its input. */
  async function createBot(name: string): Promise<WithId<Bot>> {
    const repo = runtime.systemRepo();
    const bot = await runtime.admin.createBot(project, { name });
    await deployBot(repo, repo, runtime.binaries, project, bot.id, {
      code: `exports.handler = async (medplum, event) => {
        console.log('input ' + event.input.resourceType + '/' + event.input.id);
      };`,
    });
    return repo.readResource<Bot>('Bot', bot.id);
  }

  async function setCron(bot: WithId<Bot>, cronString: string | undefined): Promise<WithId<Bot>> {
    const current = await runtime.systemRepo().readResource<Bot>('Bot', bot.id);
    return runtime.systemRepo().updateResource<Bot>({ ...current, cronString });
  }

  function runsOf(bot: Bot): Promise<AuditEvent[]> {
    return runtime.systemRepo().searchResources<AuditEvent>({
      resourceType: 'AuditEvent',
      count: 100,
      filters: [{ code: 'entity', operator: 'eq' as never, value: 'Bot/' + bot.id }],
    });
  }

  /** Polls without timers (they are faked), bounded in real time. */
  async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 3000): Promise<T> {
    const start = performance.now();
    for (;;) {
      const value = await check();
      if (value !== undefined) {
        return value;
      }
      if (performance.now() - start > timeoutMs) {
        throw new Error('timed out waiting for ' + what);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  const isScheduled = (bot: Bot): boolean => runtime.cron.scheduled().some((s) => s.botId === bot.id);

  /** Lets pending asynchronous work settle without advancing the fake clock. */
  async function drain(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  function fakeClock(): void {
    // Only the scheduler's clock is faked: sockets, setImmediate and performance stay real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2030-01-01T00:00:30Z') });
  }

  test('a bot on "* * * * *" runs every minute with itself as input, and stops when the cronString is removed', async () => {
    fakeClock();
    const bot = await createBot('cron-every-minute');
    await setCron(bot, '* * * * *');
    await until('schedule', () => (isScheduled(bot) ? true : undefined));
    expect(runtime.cron.scheduled().find((s) => s.botId === bot.id)?.pattern).toBe('* * * * *');

    await vi.advanceTimersByTimeAsync(30_000);
    const first = await until('first run', async () => ((await runsOf(bot)).length >= 1 ? runsOf(bot) : undefined));
    expect(first[0].outcome).toBe('0');
    expect(first[0].outcomeDesc).toBe('input Bot/' + bot.id);
    expect(first[0].type.code).toBe('execute');
    expect(first[0].agent?.[1]?.who?.reference).toBe('Bot/' + bot.id);

    await vi.advanceTimersByTimeAsync(60_000);
    await until('second run', async () => ((await runsOf(bot)).length >= 2 ? true : undefined));

    // An update that keeps the pattern keeps the schedule.
    const current = await runtime.systemRepo().readResource<Bot>('Bot', bot.id);
    await runtime.systemRepo().updateResource<Bot>({ ...current, description: 'touched' });
    await drain();
    expect(isScheduled(bot)).toBe(true);

    await setCron(bot, undefined);
    await until('unschedule', () => (isScheduled(bot) ? undefined : true));
    await vi.advanceTimersByTimeAsync(180_000);
    await drain();
    expect(await runsOf(bot)).toHaveLength(2);
  });

  test('deleting the bot stops its schedule', async () => {
    fakeClock();
    const bot = await setCron(await createBot('cron-deleted'), '* * * * *');
    await until('schedule', () => (isScheduled(bot) ? true : undefined));
    await vi.advanceTimersByTimeAsync(30_000);
    await until('first run', async () => ((await runsOf(bot)).length >= 1 ? true : undefined));

    await runtime.systemRepo().deleteResource('Bot', bot.id);
    expect(isScheduled(bot)).toBe(false);
    await vi.advanceTimersByTimeAsync(180_000);
    await drain();
    expect(await runsOf(bot)).toHaveLength(1);
  });

  test('a six-field (seconds) cronString is not scheduled, as on the stock server', async () => {
    fakeClock();
    const bot = await setCron(await createBot('cron-seconds'), '* * * * * *');
    await drain();
    expect(isScheduled(bot)).toBe(false);
    await vi.advanceTimersByTimeAsync(120_000);
    await drain();
    expect(await runsOf(bot)).toHaveLength(0);
  });

  test('no runs without the project cron feature', async () => {
    fakeClock();
    const repo = runtime.systemRepo();
    await repo.updateResource<Project>({ ...project, features: project.features?.filter((f) => f !== 'cron') });
    try {
      const bot = await setCron(await createBot('cron-no-feature'), '* * * * *');
      await drain();
      expect(isScheduled(bot)).toBe(false);
      await vi.advanceTimersByTimeAsync(120_000);
      await drain();
      expect(await runsOf(bot)).toHaveLength(0);
    } finally {
      const latest = await repo.readResource<Project>('Project', project.id);
      await repo.updateResource<Project>({ ...latest, features: project.features });
    }
  });
});
