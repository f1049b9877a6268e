import type { BotEvent, MedplumClient } from '@medplum/core';
import type { Bot } from '@medplum/fhirtypes';
import type { QueueReport as DeliveryReport } from '../../src/outbound/queue.ts';
import { deliverAllPartners } from '../../src/outbound/route.ts';

/**
 * Partner deliveries, every minute (cron): for each active partner, the queued deliveries that
 * are due are sent, in order per resource; failures are retried with backoff; past the partner's
 * retry window (default 3 days) a delivery goes to the dead-letter.
 * @param medplum - Client with the bot's identity.
 * @param event - The cron event and the bot secrets (signing secrets).
 * @returns One report per partner.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Bot>): Promise<Record<string, DeliveryReport | { error: string }>> {
  const reports = await deliverAllPartners(medplum, event.secrets);
  for (const [partner, report] of Object.entries(reports)) {
    if ('error' in report || report.failed || report.deadLettered) {
      console.log(`partner-delivery ${partner}: ${JSON.stringify(report)}`);
    }
  }
  return reports;
}
