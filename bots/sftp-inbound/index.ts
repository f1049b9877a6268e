import type { BotEvent, MedplumClient } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Bot } from '@medplum/fhirtypes';
import type { PollReport } from '../../src/sftp/poll.ts';
import { pollSource } from '../../src/sftp/poll.ts';
import { readSftpSource, SFTP_INBOUND_CONNECTION } from '../../src/sftp/source.ts';

/** No new file is started after this much of a run: the next cron run (a minute later) continues. */
const RUN_BUDGET_MS = 45_000;

/**
 * SFTP inbound, run by cron every minute: polls every active `sftp-inbound` Endpoint (one per
 * partner folder) and takes its complete files: HL7 v2 batches through the same pipeline as MLLP,
 * CSV rosters through the same writer. One source failing (unreachable, misconfigured) does not
 * stop the others; each failure is logged with its reason.
 * @param medplum - Client with the bot's identity.
 * @param event - The cron event (its input is the Bot) and the bot secrets (SFTP credentials).
 * @returns One report per source.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Bot>): Promise<{ sources: (PollReport | { source: string; error: string })[] }> {
  const deadline = Date.now() + RUN_BUDGET_MS;
  const endpoints = await medplum.searchResources('Endpoint', {
    'connection-type': `${SFTP_INBOUND_CONNECTION.system}|${SFTP_INBOUND_CONNECTION.code}`,
    status: 'active',
    _count: '100',
  });
  const sources: (PollReport | { source: string; error: string })[] = [];
  for (const endpoint of endpoints) {
    const read = readSftpSource(endpoint, event.secrets);
    if ('problems' in read) {
      read.problems.forEach((p) => console.log(`sftp: not polled: ${p}`));
      sources.push({ source: `Endpoint/${endpoint.id}`, error: read.problems.join('; ') });
      continue;
    }
    try {
      sources.push(await pollSource(medplum, read.source, { deadline, log: (line) => console.log(line) }));
    } catch (err) {
      const error = normalizeErrorString(err);
      console.log(`sftp ${read.source.name}: poll failed: ${error}`);
      sources.push({ source: read.source.name, error });
    }
  }
  return { sources };
}
