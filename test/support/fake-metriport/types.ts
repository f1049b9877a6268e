import type { IncomingHttpHeaders } from 'node:http';

/** Sex at birth as Metriport's demographics carry it. */
export type GenderAtBirth = 'M' | 'F' | 'O' | 'U';

/** An address as Metriport stores it (zip cut to 5 digits, state upper case, country USA). */
export interface FakeAddress {
  readonly addressLine1: string;
  readonly addressLine2?: string;
  readonly city: string;
  readonly state: string;
  readonly zip: string;
  /** Always "USA" once stored. */
  readonly country?: 'USA';
}

/** A contact: at least a phone (10 digits once stored) or an email. */
export interface FakeContact {
  readonly phone?: string;
  readonly email?: string;
}

/** `{type:"driversLicense", state, value}` or `{type:"ssn", value}`. */
export interface FakePersonalIdentifier {
  readonly type: 'driversLicense' | 'ssn';
  readonly value: string;
  readonly state?: string;
  readonly period?: { readonly start?: string; readonly end?: string };
  readonly assigner?: string;
}

/** Validated, normalized demographics (facts §1.2). */
export interface FakeDemographics {
  readonly firstName: string;
  readonly lastName: string;
  /** YYYY-MM-DD. */
  readonly dob: string;
  readonly genderAtBirth: GenderAtBirth;
  readonly personalIdentifiers?: readonly FakePersonalIdentifier[];
  readonly address: readonly FakeAddress[];
  readonly contact?: readonly FakeContact[];
}

/** A stored patient, in PatientDTO form (facts §1.4). */
export interface FakePatient extends FakeDemographics {
  readonly id: string;
  readonly eTag: string;
  readonly facilityIds: readonly string[];
  readonly externalId?: string;
  /** ISO-8601. */
  readonly dateCreated: string;
}

/** Output format of a consolidated query. */
export type ConversionType = 'json' | 'pdf' | 'html';

/** A consolidated-data query (ConsolidatedQuery DTO plus the patient it belongs to). */
export interface FakeConsolidatedQuery {
  /** Not part of Metriport's DTO: the API answers leave it out. */
  readonly patientId: string;
  readonly requestId: string;
  readonly status: 'processing' | 'completed' | 'failed';
  /** ISO-8601. */
  readonly startedAt: string;
  readonly resources: readonly string[];
  readonly dateFrom?: string;
  readonly dateTo?: string;
  readonly conversionType: ConversionType;
}

/** One API call the fake answered. */
export interface RecordedRequest {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The parsed JSON body, or undefined. */
  readonly body: unknown;
  readonly headers: IncomingHttpHeaders;
  /** Status answered. */
  readonly status: number;
  /** ISO-8601 time of arrival. */
  readonly at: string;
}

/** A row of Metriport's webhook_request table, as the fake keeps it. */
export interface WebhookRequestRow {
  /** `meta.messageId`: the row id, unchanged on replays. */
  readonly messageId: string;
  readonly requestId?: string;
  readonly type: string;
  readonly status: 'processing' | 'success' | 'failure';
  /** Status of the last delivery's answer, when there was one. */
  readonly httpStatus?: number;
  /** Why the last delivery failed (Metriport's wording, e.g. `AxiosError: timeout of 5000ms exceeded`). */
  readonly statusDetail?: string;
  /** `meta.when`: ISO-8601 creation time, unchanged on replays. */
  readonly createdAt: string;
  /** Duration of the last delivery. */
  readonly durationMs?: number;
  /** The message without `meta`. */
  readonly payload: Readonly<Record<string, unknown>>;
  /** `meta.data` of the first delivery (replays leave it out). */
  readonly data?: Readonly<Record<string, string>>;
  /** Body of the last answer, when there was one (first 64 KiB). */
  readonly responseBody?: string;
  /** Deliveries attempted so far (duplicates and replays included). */
  readonly deliveries: number;
}

/** Operations Metriport rate-limits per customer (facts §1.5). */
export type RateLimitOperation = 'patientCreateOrUpdate' | 'documentQuery' | 'consolidatedDataQuery';

/** Fault switches, read at the moment they matter; tests may flip them at any time. */
export interface FakeMetriportFaults {
  /** Every webhook is sent twice (same messageId and body). */
  duplicateDelivery: boolean;
  /** Send as a manual replay would: no `meta.data`. */
  dropMetaData: boolean;
  /** Presigned URLs are already expired when the webhook goes out. */
  expireUrlsBeforeDelivery: boolean;
  /** Consolidated webhooks say `status:"failed"`, without bundle. */
  failQuery: boolean;
  /** `x-metriport-signature`: right, absent, or computed with another key. */
  signature: 'valid' | 'missing' | 'wrong';
  /** The fake S3 waits this long before answering. */
  downloadDelayMs: number;
  /** Every rate-limited route answers 429. */
  rateLimitAll: boolean;
}

/** What setting the webhook URL reports. */
export interface PingOutcome {
  readonly pingOk: boolean;
  /** Why it failed (Metriport's `webhookStatusDetail`). */
  readonly detail?: string;
}

/** The account's webhook settings and status. */
export interface FakeWebhookSettings {
  readonly webhookUrl?: string;
  readonly webhookEnabled: boolean;
  readonly webhookStatusDetail?: string;
}
