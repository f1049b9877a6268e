import type { ProjectSetting } from '@medplum/fhirtypes';
// Imported explicitly: the stock bot sandbox has no global setTimeout.
import { setTimeout as sleepMs } from 'node:timers/promises';
import type { Demographics } from './demographics.ts';
import { hideValues } from '../fhir/strings.ts';
import { timeoutOption } from '../net/fetch.ts';
import { METRIPORT_HOSTS, MetriportSecret } from './constants.ts';

/** The part of Metriport's PatientDTO the hub reads (facts §1.4). */
export interface MetriportPatient {
  id: string;
  facilityIds: string[];
  externalId?: string;
}

/** A consolidated-data query as Metriport reports it. */
export interface ConsolidatedQuery {
  requestId: string;
  status: 'processing' | 'completed' | 'failed';
  startedAt?: string;
}

/** How to reach Metriport. */
export interface MetriportApiConfig {
  readonly apiKey: string;
  /** Host without `/medical/v1`, e.g. `https://api.sandbox.metriport.com`. */
  readonly baseUrl: string;
  /** Attempts per call when Metriport answers 429 or 5xx, or the network fails (default 5). */
  readonly maxAttempts?: number;
  /** Longest single wait between attempts, in ms (default 60 s: Metriport's rate window). */
  readonly maxWaitMs?: number;
  /** Request timeout in ms (default 20 s, the SDK's). */
  readonly timeoutMs?: number;
  /** Waits between attempts; tests replace it. */
  readonly sleep?: (ms: number) => Promise<unknown>;
}

/** Metriport answered with an error (RFC-7807-like body: status, name, title, detail). */
export class MetriportApiError extends Error {
  readonly status: number;
  readonly detail?: string;
  constructor(status: number, message: string, detail?: string) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

/**
 * Reads the Metriport configuration from bot secrets: `METRIPORT_API_KEY` and the host, from
 * `METRIPORT_API_URL` or else `METRIPORT_ENV` (`sandbox` or `production`). Nothing defaults to
 * production or sandbox silently.
 * @param secrets - `event.secrets`.
 * @param names - The secrets needed besides the host (e.g. the webhook key).
 * @returns The configuration and secret values, or the names that are missing or invalid.
 */
export function metriportSettings(
  secrets: Record<string, ProjectSetting> | undefined,
  names: readonly string[] = [MetriportSecret.apiKey]
): { ok: true; baseUrl: string; values: Record<string, string> } | { ok: false; missing: string[] } {
  const read = (name: string): string | undefined => secrets?.[name]?.valueString?.trim() || undefined;
  const missing: string[] = [];
  const values: Record<string, string> = {};
  for (const name of names) {
    const value = read(name);
    if (value) {
      values[name] = value;
    } else {
      missing.push(name);
    }
  }
  const environment = read(MetriportSecret.environment);
  const baseUrl = read(MetriportSecret.apiUrl) ?? (environment ? METRIPORT_HOSTS[environment as keyof typeof METRIPORT_HOSTS] : undefined);
  if (!baseUrl) {
    missing.push(
      environment
        ? `${MetriportSecret.environment} (must be "sandbox" or "production", or set ${MetriportSecret.apiUrl})`
        : `${MetriportSecret.environment} or ${MetriportSecret.apiUrl}`
    );
  }
  return missing.length ? { ok: false, missing } : { ok: true, baseUrl: (baseUrl as string).replace(/\/+$/, ''), values };
}

/**
 * A thin client of the Metriport Medical API (the calls the hub makes), with the `x-api-key`
 * header and retries: a 429 waits as long as `Retry-After` or `RateLimit-Reset` say (or an
 * exponential backoff when they say nothing), 5xx and network failures back off the same way.
 * Plain `fetch` rather than `@metriport/api-sdk`, which would bundle a second, older
 * `@medplum/core` and axios into the bot.
 */
export class MetriportClient {
  private readonly config: MetriportApiConfig;

  constructor(config: MetriportApiConfig) {
    this.config = config;
  }

  /**
   * `POST /medical/v1/patient/match`.
   * @param demographics - The demographics.
   * @returns The matching patient, or undefined (404).
   */
  async matchPatient(demographics: Demographics): Promise<MetriportPatient | undefined> {
    return this.orUndefinedOn404(() => this.request<MetriportPatient>('POST', '/medical/v1/patient/match', undefined, demographics));
  }

  /**
   * `GET /medical/v1/patient/external-id`.
   * @param externalId - The id the patient was created with (the hub uses the Medplum id).
   * @returns The patient, or undefined (404).
   */
  async getPatientByExternalId(externalId: string): Promise<MetriportPatient | undefined> {
    return this.orUndefinedOn404(() => this.request<MetriportPatient>('GET', '/medical/v1/patient/external-id', { externalId }));
  }

  /**
   * `POST /medical/v1/patient?facilityId=`: Metriport returns the existing patient when the
   * demographics match one.
   * @param demographics - The demographics.
   * @param externalId - The Medplum Patient id.
   * @param facilityId - The Metriport facility.
   * @returns The patient.
   */
  async createPatient(demographics: Demographics, externalId: string, facilityId: string): Promise<MetriportPatient> {
    return this.request<MetriportPatient>('POST', '/medical/v1/patient', { facilityId }, { ...demographics, externalId });
  }

  /**
   * `PUT /medical/v1/patient/:id?facilityId=` (a full replacement of the demographics).
   * @param id - The Metriport patient id.
   * @param demographics - The demographics.
   * @param externalId - The Medplum Patient id.
   * @param facilityId - The Metriport facility.
   * @returns The patient.
   */
  async updatePatient(id: string, demographics: Demographics, externalId: string, facilityId: string): Promise<MetriportPatient> {
    return this.request<MetriportPatient>('PUT', `/medical/v1/patient/${encodeURIComponent(id)}`, { facilityId }, { ...demographics, externalId });
  }

  /**
   * `POST /medical/v1/patient/:id/consolidated/query?conversionType=json`: the result arrives by
   * a `medical.consolidated-data` webhook. Metriport returns the running query when one with the
   * same parameters is processing.
   * @param patientId - The Metriport patient id.
   * @param metadata - Strings echoed back in the webhook's `meta.data`.
   * @returns The query.
   */
  async startConsolidatedQuery(patientId: string, metadata: Record<string, string>): Promise<ConsolidatedQuery> {
    return this.request<ConsolidatedQuery>(
      'POST',
      `/medical/v1/patient/${encodeURIComponent(patientId)}/consolidated/query`,
      { conversionType: 'json' },
      { metadata }
    );
  }

  private async orUndefinedOn404<T>(call: () => Promise<T>): Promise<T | undefined> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof MetriportApiError && err.status === 404) {
        return undefined;
      }
      throw err;
    }
  }

  private async request<T>(method: string, path: string, query: Record<string, string> | undefined, body?: unknown): Promise<T> {
    const url = new URL(this.config.baseUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      url.searchParams.set(name, value);
    }
    const maxAttempts = this.config.maxAttempts ?? 5;
    const sleep = this.config.sleep ?? sleepMs;
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await fetch(url.toString(), {
          method,
          headers: { 'x-api-key': this.config.apiKey, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body === undefined ? undefined : JSON.stringify(body),
          ...timeoutOption(this.config.timeoutMs ?? 20_000),
        });
      } catch (err) {
        if (attempt >= maxAttempts) {
          throw new MetriportApiError(0, `${method} ${path}: ${(err as Error).message}`);
        }
        await sleep(this.backoff(attempt, undefined));
        continue;
      }
      const text = await response.text();
      if (response.ok) {
        return (text ? JSON.parse(text) : undefined) as T;
      }
      const retryable = response.status === 429 || response.status >= 500;
      if (retryable && attempt < maxAttempts) {
        await sleep(this.backoff(attempt, response.headers));
        continue;
      }
      throw toApiError(method, path, response.status, text);
    }
  }

  /**
   * @param attempt - The attempt that failed (1-based).
   * @param headers - The response headers, if any.
   * @returns How long to wait: what the server asked for, else 1 s doubling, within `maxWaitMs`.
   */
  private backoff(attempt: number, headers: Headers | undefined): number {
    const asked = Number.parseFloat(headers?.get('retry-after') ?? headers?.get('ratelimit-reset') ?? '');
    const wait = Number.isFinite(asked) && asked >= 0 ? asked * 1000 : 1000 * 2 ** (attempt - 1);
    return Math.min(wait, this.config.maxWaitMs ?? 60_000);
  }
}

function toApiError(method: string, path: string, status: number, text: string): MetriportApiError {
  let detail: string | undefined;
  let title: string | undefined;
  try {
    const body = JSON.parse(text) as { title?: string; detail?: string; message?: string };
    title = body.title;
    detail = body.detail ?? body.message;
  } catch {
    detail = text.slice(0, 300) || undefined;
  }
  // Metriport's validation details can quote the values sent (PHI): quoted text is hidden.
  const safeDetail = detail === undefined ? undefined : hideValues(detail);
  return new MetriportApiError(status, `Metriport ${method} ${path} answered ${status}${title ? ` ${title}` : ''}${safeDetail ? `: ${safeDetail}` : ''}`, safeDetail);
}
