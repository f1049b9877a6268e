import type { BotEvent, MedplumClient } from '@medplum/core';
import type { Patient } from '@medplum/fhirtypes';
import type { OutboundResult } from '../../src/metriport/outbound.ts';
import { sendPatientToMetriport } from '../../src/metriport/outbound.ts';

/**
 * Metriport outbound: fired by the `metriport-patient-*` subscriptions when a Patient is created,
 * or when something Metriport matches on changes, or while it is not linked yet. Finds or
 * creates the patient in Metriport (externalId = the Medplum id), stores the Metriport id on the
 * Patient and starts a consolidated-data query; see `sendPatientToMetriport`.
 * @param medplum - Client with the bot's identity.
 * @param event - The Patient, and the bot secrets (METRIPORT_API_KEY, METRIPORT_ENV or METRIPORT_API_URL).
 * @returns What was done.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Patient>): Promise<OutboundResult> {
  return sendPatientToMetriport(medplum, event.input, { secrets: event.secrets });
}
