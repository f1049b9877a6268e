import type { MedplumClient, WithId } from '@medplum/core';
import type { Organization, Patient, ProjectSetting } from '@medplum/fhirtypes';
import type { MetriportApiConfig, MetriportPatient } from './api.ts';
import { MetriportClient, metriportSettings } from './api.ts';
import { METRIPORT_FACILITY_SYSTEM, METRIPORT_PATIENT_SYSTEM, MetriportSecret } from './constants.ts';
import { toDemographics } from './demographics.ts';
import { linkMetriportId, metriportIdOf } from './patient-link.ts';

/** What the outbound run did. */
export interface OutboundResult {
  readonly action: 'linked' | 'updated' | 'not-configured' | 'invalid' | 'conflict' | 'skipped';
  readonly message: string;
  readonly metriportId?: string;
  readonly requestId?: string;
}

/** Options of {@link sendPatientToMetriport}. */
export interface OutboundOptions {
  readonly secrets?: Record<string, ProjectSetting>;
  /** Overrides of the API client (tests shorten waits). */
  readonly api?: Partial<MetriportApiConfig>;
  readonly log?: (line: string) => void;
}

/**
 * Sends a Medplum Patient to Metriport and asks for its records:
 * 1. reads the current version (the event may be stale) and the Organization named by
 *    `managingOrganization`, whose identifier with {@link METRIPORT_FACILITY_SYSTEM} is the
 *    Metriport facility: without it, logs exactly what is missing and does nothing else;
 * 2. checks the demographics against Metriport's rules and reports every problem instead of
 *    sending a request that would fail;
 * 3. a linked Patient (it carries the Metriport patient id) has its demographics updated; an
 *    unlinked one is found (by externalId = the Medplum id, then by demographics) or created,
 *    and the Metriport id is stored on the Patient, appended to its identifiers, unless the
 *    Metriport patient found is another Medplum Patient's (a `conflict`, logged, not linked);
 * 4. starts a consolidated-data query (`meta.data.medplumPatientId` = the Medplum id); its
 *    result comes back by webhook.
 * Rate limits (429) are waited out with backoff by the client.
 * @param medplum - The client (the bot's identity).
 * @param input - The Patient from the subscription.
 * @param options - Bot secrets and logging.
 * @returns What was done.
 */
export async function sendPatientToMetriport(medplum: MedplumClient, input: Patient, options: OutboundOptions = {}): Promise<OutboundResult> {
  const log = options.log ?? ((line: string): void => console.log(line));
  const done = (result: OutboundResult): OutboundResult => {
    log(`Patient/${input.id}: ${result.action}: ${result.message}`);
    return result;
  };
  if (!input.id) {
    return done({ action: 'skipped', message: 'the input is not a stored Patient' });
  }
  const patient = await medplum.readResource('Patient', input.id);

  const facility = await facilityOf(medplum, patient);
  if ('missing' in facility) {
    return done({ action: 'not-configured', message: `not sent to Metriport: ${facility.missing}` });
  }
  const settings = metriportSettings(options.secrets, [MetriportSecret.apiKey]);
  if (!settings.ok) {
    return done({ action: 'not-configured', message: `not sent to Metriport: missing bot secrets ${settings.missing.join(', ')}` });
  }
  const demographics = toDemographics(patient);
  if (!demographics.ok) {
    return done({ action: 'invalid', message: `not sent to Metriport, Metriport would refuse it: ${demographics.problems.join('; ')}` });
  }

  log(`Patient/${patient.id}: Metriport at ${settings.baseUrl}`);
  const client = new MetriportClient({ apiKey: settings.values[MetriportSecret.apiKey], baseUrl: settings.baseUrl, ...options.api });
  const linkedId = metriportIdOf(patient);
  let metriportPatient: MetriportPatient;
  let action: OutboundResult['action'];
  if (linkedId) {
    metriportPatient = await client.updatePatient(linkedId, demographics.demographics, patient.id, facility.id);
    action = 'updated';
  } else {
    metriportPatient =
      (await client.getPatientByExternalId(patient.id)) ??
      (await client.matchPatient(demographics.demographics)) ??
      (await client.createPatient(demographics.demographics, patient.id, facility.id));
    const conflict = await linkConflict(medplum, patient.id, metriportPatient);
    if (conflict) {
      return done({ action: 'conflict', message: `not linked: ${conflict}; a person must decide whether these are the same patient`, metriportId: metriportPatient.id });
    }
    await linkMetriportId(medplum, patient, metriportPatient.id);
    action = 'linked';
  }
  const query = await client.startConsolidatedQuery(metriportPatient.id, { medplumPatientId: patient.id });
  return done({
    action,
    message: `${action === 'linked' ? 'linked to' : 'demographics updated for'} Metriport patient ${metriportPatient.id}; consolidated query ${query.requestId} ${query.status}`,
    metriportId: metriportPatient.id,
    requestId: query.requestId,
  });
}

/**
 * @returns The Metriport facility id of the Patient's managing Organization, or what is missing.
 */
async function facilityOf(medplum: MedplumClient, patient: WithId<Patient>): Promise<{ id: string } | { missing: string }> {
  const reference = patient.managingOrganization?.reference;
  if (!reference?.startsWith('Organization/')) {
    return { missing: 'Patient.managingOrganization does not reference an Organization' };
  }
  let organization: Organization;
  try {
    organization = await medplum.readReference<Organization>({ reference });
  } catch {
    return { missing: `${reference} (Patient.managingOrganization) cannot be read` };
  }
  const id = organization.identifier?.find((i) => i.system === METRIPORT_FACILITY_SYSTEM && i.value)?.value;
  return id ? { id } : { missing: `${reference} has no identifier with system ${METRIPORT_FACILITY_SYSTEM} (the Metriport facility id)` };
}

/**
 * A Metriport patient found by demographics may be another Medplum Patient's (created with its
 * id as externalId, or already linked to it): linking both would merge two records' data.
 * @returns Why the link would be wrong, or undefined.
 */
async function linkConflict(medplum: MedplumClient, patientId: string, found: MetriportPatient): Promise<string | undefined> {
  if (found.externalId && found.externalId !== patientId) {
    return `Metriport patient ${found.id} belongs to Patient/${found.externalId} (its externalId)`;
  }
  const linked = await medplum.searchResources('Patient', { identifier: `${METRIPORT_PATIENT_SYSTEM}|${found.id}`, _count: '2' });
  const other = linked.find((p) => p.id !== patientId);
  return other ? `Metriport patient ${found.id} is already linked to Patient/${other.id}` : undefined;
}
