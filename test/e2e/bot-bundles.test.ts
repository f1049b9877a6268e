import { ContentType } from '@medplum/core';
import type { AuditEvent, Bot } from '@medplum/fhirtypes';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BOT_NAME_SYSTEM } from '../../src/constants.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BOTS = readdirSync(join(ROOT, 'bots'), { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(join(ROOT, 'bots', e.name, 'index.ts')))
  .map((e) => e.name);

/**
 * A fixture file `bots/<bot>/fixtures/<case>.<expect>.<ext>`: `.hl7` is sent as HL7 v2 and
 * `<expect>` is the MSA-1 the answer must carry; `.json` is sent as FHIR JSON and `<expect>` is
 * `ok`, or `rejected` for input the bot must refuse (the run fails with HTTP 400 and its
 * AuditEvent records the refusal, not a sandbox error).
 */
interface Fixture {
  readonly file: string;
  readonly contentType: string;
  readonly expected: string;
  readonly body: string;
}

function fixturesOf(bot: string): Fixture[] {
  const dir = join(ROOT, 'bots', bot, 'fixtures');
  if (!existsSync(dir)) {
    return [];
  }
  return readdirSync(dir)
    .filter((f) => /\.[A-Za-z]+\.(hl7|json)$/.test(f))
    .map((file) => {
      const [, expected, ext] = /\.([A-Za-z]+)\.(hl7|json)$/.exec(file) as RegExpExecArray;
      return {
        file,
        expected,
        contentType: ext === 'hl7' ? ContentType.HL7_V2 : ContentType.FHIR_JSON,
        body: readFileSync(join(dir, file), 'utf8'),
      };
    });
}

/**
 * Every bot bundle, built by `npm run build`, deployed by the hub's deploy and executed in the
 * runtime's vmcontext sandbox (the stock server's globals: no Buffer, setTimeout, process,
 * console.error...) with each of its fixtures. A bot that touches something the stock sandbox
 * lacks fails its run, and the run's AuditEvent records the error.
 */
describe('bot bundles run in the stock vmcontext sandbox', () => {
  let target: E2eTarget;

  beforeAll(async () => {
    target = await startE2eTarget();
  });

  afterAll(async () => {
    await target?.stop();
  });

  test('every bot has fixtures', () => {
    for (const bot of BOTS) {
      expect(fixturesOf(bot).length, `bots/${bot}/fixtures/ must hold at least one fixture`).toBeGreaterThan(0);
    }
  });

  for (const bot of BOTS) {
    for (const fixture of fixturesOf(bot)) {
      test(`${bot}: ${fixture.file}`, async () => {
        const { client } = target;
        const deployed = await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|${bot}` });
        expect(deployed, `Bot ${bot} is deployed`).toBeDefined();
        const started = new Date().toISOString();
        const run = client.executeBot(
          { system: BOT_NAME_SYSTEM, value: bot },
          fixture.contentType === ContentType.HL7_V2 ? fixture.body : JSON.parse(fixture.body),
          fixture.contentType
        );
        if (fixture.expected === 'rejected') {
          await expect(run).rejects.toThrow();
          const audit = await latestRun(target, deployed as Bot, started);
          expect(audit?.outcome).toBe('4');
          expect(audit?.outcomeDesc ?? '').not.toMatch(/is not defined|is not a function|Cannot find module/);
          return;
        }
        const result = await run;
        // executeBot throws when the run fails (HTTP 400). A bot that audits every run leaves
        // an AuditEvent to check; one auditing only runs with output (or errors) may leave none.
        const audit = await latestRun(target, deployed as Bot, started);
        const trigger = (deployed as Bot).auditEventTrigger ?? 'always';
        if (trigger === 'always' || audit) {
          expect(audit?.outcome, `run of ${bot} failed: ${audit?.outcomeDesc ?? ''}`).toBe('0');
          expect(audit?.outcomeDesc ?? '').not.toMatch(/Unhandled error|is not defined|is not a function/);
        }
        if (fixture.contentType === ContentType.HL7_V2) {
          expect(typeof result).toBe('string');
          const msa = (result as string).split(/\r|\n/).find((s) => s.startsWith('MSA|'));
          expect(msa?.split('|')[1]).toBe(fixture.expected);
        }
      });
    }
  }
});

async function latestRun(target: E2eTarget, bot: Bot, since: string): Promise<AuditEvent | undefined> {
  const events = await target.client.searchResources('AuditEvent', {
    entity: `Bot/${bot.id}`,
    _sort: '-_lastUpdated',
    _count: '5',
  });
  return events.find((e) => (e.period?.start ?? '') >= since.slice(0, 19));
}
