import type { BotEvent, Hl7Message, MedplumClient } from '@medplum/core';
import { processInboundMessage } from '../../src/inbound/pipeline.ts';

/**
 * HL7 v2 inbound: every message from an agent channel (or `Bot/$execute` with an HL7 body) goes
 * through the hub's pipeline: mapped to FHIR per the HL7 v2-to-FHIR IG, written in one
 * transaction with its ledger entry, and answered AA only after the commit; AE with ERR for data
 * errors (dead-lettered for replay), AR for unreadable or unsupported messages. Never throws: a
 * throw would leave the device without any ACK.
 * @param medplum - Client with the agent's ClientApplication identity.
 * @param event - The message.
 * @returns The ACK.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Hl7Message | string>): Promise<Hl7Message> {
  const result = await processInboundMessage(medplum, event.input, { log: (line) => console.log(line) });
  return result.ack;
}
