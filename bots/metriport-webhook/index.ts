import type { BotEvent, MedplumClient } from '@medplum/core';
import type { WebhookAnswer } from '../../src/metriport/webhook.ts';
import { receiveWebhook } from '../../src/metriport/webhook.ts';

/**
 * Metriport webhook receiver, called by Metriport through `Bot/<id>/$execute` with the
 * `metriport-webhook` client's credentials. Verifies `x-metriport-signature` (a wrong or missing
 * one fails the call: HTTP 400 with an OperationOutcome), answers `ping` with its `pong`, and
 * records every other message as a Task, once per `meta.messageId`, then answers at once; the
 * `metriport-consolidated` bot downloads and merges after the answer.
 * @param medplum - Client with the bot's identity.
 * @param event - The webhook body, headers and bot secrets (METRIPORT_WEBHOOK_KEY).
 * @returns The answer.
 */
export async function handler(medplum: MedplumClient, event: BotEvent): Promise<WebhookAnswer> {
  return receiveWebhook(medplum, event);
}
