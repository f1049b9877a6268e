import type { Issue } from './http.ts';
import { badRequest, invalidParameters } from './http.ts';
import type { ConversionType } from './types.ts';

/**
 * Types a consolidated query may ask for (MP `packages/shared/src/medical/fhir/resources.ts`):
 * the patient-compartment types plus a few support types. Case-sensitive, as Metriport's check.
 */
export const CONSOLIDATED_RESOURCE_TYPES: ReadonlySet<string> = new Set([
  'Account', 'AdverseEvent', 'AllergyIntolerance', 'Appointment', 'AppointmentResponse', 'AuditEvent', 'Basic', 'Binary',
  'BodyStructure', 'CarePlan', 'CareTeam', 'ChargeItem', 'Claim', 'ClaimResponse', 'ClinicalImpression', 'Communication',
  'CommunicationRequest', 'Composition', 'Condition', 'Consent', 'Coverage', 'CoverageEligibilityRequest',
  'CoverageEligibilityResponse', 'DetectedIssue', 'Device', 'DeviceRequest', 'DeviceUseStatement', 'DiagnosticReport',
  'DocumentManifest', 'DocumentReference', 'Encounter', 'EnrollmentRequest', 'EpisodeOfCare', 'ExplanationOfBenefit',
  'FamilyMemberHistory', 'Flag', 'Goal', 'GuidanceResponse', 'ImagingStudy', 'Immunization', 'ImmunizationEvaluation',
  'ImmunizationRecommendation', 'Invoice', 'List', 'Location', 'MeasureReport', 'Media', 'MedicationAdministration',
  'MedicationDispense', 'MedicationRequest', 'MedicationStatement', 'MolecularSequence', 'NutritionOrder', 'Observation',
  'Organization', 'Patient', 'Person', 'Practitioner', 'Procedure', 'Provenance', 'QuestionnaireResponse', 'RelatedPerson',
  'RequestGroup', 'ResearchSubject', 'RiskAssessment', 'Schedule', 'ServiceRequest', 'Specimen', 'SupplyDelivery',
  'SupplyRequest', 'Task', 'VisionPrescription',
]);

const CONVERSION_TYPES: readonly ConversionType[] = ['json', 'pdf', 'html'];

/** The parameters of a consolidated query start. */
export interface ConsolidatedQueryParams {
  readonly resources: readonly string[];
  readonly dateFrom?: string;
  readonly dateTo?: string;
  readonly conversionType: ConversionType;
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * Validates `POST /patient/:id/consolidated/query`: `conversionType` (required), `resources`
 * (comma list), `dateFrom`/`dateTo` (YYYY-MM-DD) and the body's `metadata` (at most 50 string
 * pairs, keys 1-40 characters, values up to 500: MP `request-metadata.ts`).
 * @param query - The query string.
 * @param body - The parsed body.
 * @returns The parameters.
 * @throws ApiError 400 with Metriport's messages.
 */
export function parseConsolidatedQuery(query: URLSearchParams, body: unknown): ConsolidatedQueryParams {
  const resources = (query.get('resources') ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  const unknown = resources.filter((r) => !CONSOLIDATED_RESOURCE_TYPES.has(r));
  if (unknown.length) {
    throw badRequest(`Invalid resource type(s): ${unknown.join(', ')}`);
  }
  const dateFrom = isoDateParam(query, 'dateFrom');
  const dateTo = isoDateParam(query, 'dateTo');
  const type = query.get('conversionType');
  if (!type) {
    throw badRequest('Missing conversionType query param');
  }
  if (!CONVERSION_TYPES.includes(type as ConversionType)) {
    throw invalidParameters([{ message: `Invalid enum value. Expected 'json' | 'pdf' | 'html', received '${type}'`, path: [] }]);
  }
  const metadata = parseMetadata(body);
  return { resources, dateFrom, dateTo, conversionType: type as ConversionType, ...(metadata ? { metadata } : {}) };
}

function isoDateParam(query: URLSearchParams, name: string): string | undefined {
  const value = query.get(name) || undefined;
  if (value !== undefined && !(/^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(`${value}T00:00:00Z`)))) {
    throw badRequest(`Invalid ${name}, expected YYYY-MM-DD: ${value}`);
  }
  return value;
}

function parseMetadata(body: unknown): Record<string, string> | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidParameters([{ message: `Expected object, received ${Array.isArray(body) ? 'array' : typeof body}`, path: [] }]);
  }
  const metadata = (body as { metadata?: unknown }).metadata;
  if (metadata === undefined) {
    return undefined;
  }
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw invalidParameters([{ message: `Expected object, received ${metadata === null ? 'null' : Array.isArray(metadata) ? 'array' : typeof metadata}`, path: ['metadata'] }]);
  }
  const issues: Issue[] = [];
  for (const [key, value] of Object.entries(metadata)) {
    if (key.length < 1) {
      issues.push({ message: 'String must contain at least 1 character(s)', path: ['metadata', key] });
    } else if (key.length > 40) {
      issues.push({ message: 'String must contain at most 40 character(s)', path: ['metadata', key] });
    }
    if (typeof value !== 'string') {
      issues.push({ message: `Expected string, received ${value === null ? 'null' : typeof value}`, path: ['metadata', key] });
    } else if (value.length > 500) {
      issues.push({ message: 'String must contain at most 500 character(s)', path: ['metadata', key] });
    }
  }
  if (Object.keys(metadata).length > 50) {
    issues.push({ message: 'Record has too many properties', path: ['metadata', 'meta'] });
  }
  if (issues.length) {
    throw invalidParameters(issues);
  }
  return metadata as Record<string, string>;
}
