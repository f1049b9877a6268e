import type { BotEvent, MedplumClient } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Bot } from '@medplum/fhirtypes';
import type { ExportReport } from '../../src/sftp/export.ts';
import { readSftpExport, runExport, SFTP_OUTBOUND_CONNECTION } from '../../src/sftp/export.ts';

/**
 * Scheduled exports to partner SFTP folders (cron, hourly): for each active `sftp-outbound`
 * Endpoint, the Observations its search selects that changed since its last run are written as a
 * CSV results file (temporary name, renamed when complete). One export failing does not stop the
 * others; the failed window is covered again by the next run.
 * @param medplum - Client with the bot's identity.
 * @param event - The cron event and the bot secrets (SFTP credentials).
 * @returns One report per export.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Bot>): Promise<(ExportReport | { export: string; error: string })[]> {
  const endpoints = await medplum.searchResources('Endpoint', {
    'connection-type': `${SFTP_OUTBOUND_CONNECTION.system}|${SFTP_OUTBOUND_CONNECTION.code}`,
    status: 'active',
    _count: '100',
  });
  const reports: (ExportReport | { export: string; error: string })[] = [];
  for (const endpoint of endpoints) {
    const read = readSftpExport(endpoint, event.secrets);
    if ('problems' in read) {
      console.log(`sftp-export: not run: ${read.problems.join('; ')}`);
      reports.push({ export: `Endpoint/${endpoint.id}`, error: read.problems.join('; ') });
      continue;
    }
    try {
      reports.push(await runExport(medplum, read.export));
    } catch (err) {
      console.log(`sftp-export ${read.export.name}: failed: ${normalizeErrorString(err)}`);
      reports.push({ export: read.export.name, error: normalizeErrorString(err) });
    }
  }
  return reports;
}
