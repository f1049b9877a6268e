import { HUB_URI } from '../constants.ts';

/**
 * Identifier system of the Metriport patient id on a Medplum Patient. The same system as
 * Medplum's and Vinta's Metriport demos, so records linked by either are found by the hub.
 */
export const METRIPORT_PATIENT_SYSTEM = 'https://metriport.com/fhir/identifiers/patient-id';

/**
 * Identifier system, on the Organization named by `Patient.managingOrganization`, of the
 * Metriport facility id that patients of that organization are created under.
 */
export const METRIPORT_FACILITY_SYSTEM = 'https://metriport.com/fhir/identifiers/facility-id';

/** Base of the identifier systems that key resources imported from Metriport: `<base>/<type>-id`. */
const METRIPORT_RESOURCE_SYSTEM_BASE = 'https://metriport.com/fhir/identifiers/';

/**
 * @param resourceType - A FHIR resource type.
 * @returns The identifier system keying resources of that type by their Metriport id. Per type,
 * because Metriport ids can repeat across types.
 */
export function metriportResourceSystem(resourceType: string): string {
  return `${METRIPORT_RESOURCE_SYSTEM_BASE}${resourceType.toLowerCase()}-id`;
}

/**
 * Tag system keying imported resources whose type has no repeating `identifier` (Composition has
 * one at most, Provenance none): the code is `<Type>/<Metriport id>`.
 */
export const METRIPORT_RESOURCE_TAG_SYSTEM = `${HUB_URI}/CodeSystem/metriport-resource`;

/** Tag on every resource written by a Metriport import (lets ops find and count them). */
export const METRIPORT_SOURCE_TAG = { system: `${HUB_URI}/CodeSystem/record-source`, code: 'metriport' } as const;

/** Task code of a received Metriport webhook message, processed after the answer. */
export const METRIPORT_WEBHOOK_TASK_CODE = { system: `${HUB_URI}/CodeSystem/hub-task`, code: 'metriport-webhook' } as const;

/** Task identifier system: the webhook `meta.messageId` (the same on Metriport's manual replays). */
export const METRIPORT_MESSAGE_ID_SYSTEM = `${HUB_URI}/sid/metriport-webhook-message-id`;

/** Task identifier system: the webhook `meta.requestId` (the query that caused the message). */
export const METRIPORT_REQUEST_ID_SYSTEM = `${HUB_URI}/sid/metriport-request-id`;

/** Hosts of Metriport's API per environment (facts §1.1). */
export const METRIPORT_HOSTS = {
  sandbox: 'https://api.sandbox.metriport.com',
  production: 'https://api.metriport.com',
} as const;

/** Bot secret names (Project.secret, deployed from the environment by `npm run deploy`). */
export const MetriportSecret = {
  apiKey: 'METRIPORT_API_KEY',
  webhookKey: 'METRIPORT_WEBHOOK_KEY',
  environment: 'METRIPORT_ENV',
  apiUrl: 'METRIPORT_API_URL',
} as const;
