import type { Bundle } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { defaultConsolidatedBundle, documentReferenceBundle, webhookFilters } from './consolidated.ts';
import { demographicsMatch, normalizeDemographics, parsePatientBody } from './demographics.ts';
import { ApiError, badRequest, errorBody, invalidParameters, notFound, parseJsonBody, readRawBody, sendJson, sendText } from './http.ts';
import type { ConsolidatedQueryParams } from './query-params.ts';
import { parseConsolidatedQuery } from './query-params.ts';
import { RATE_LIMIT_MESSAGES, RateLimiter } from './rate-limit.ts';
import { FakeS3 } from './s3.ts';
import type {
  FakeConsolidatedQuery,
  FakeDemographics,
  FakeMetriportFaults,
  FakePatient,
  FakeWebhookSettings,
  PingOutcome,
  RateLimitOperation,
  RecordedRequest,
  WebhookRequestRow,
} from './types.ts';
import { WebhookOutbox } from './webhook-outbox.ts';

export type {
  ConversionType,
  FakeAddress,
  FakeConsolidatedQuery,
  FakeContact,
  FakeDemographics,
  FakeMetriportFaults,
  FakePatient,
  FakePersonalIdentifier,
  FakeWebhookSettings,
  GenderAtBirth,
  PingOutcome,
  RateLimitOperation,
  RecordedRequest,
  WebhookRequestRow,
} from './types.ts';
export { emptySearchset } from './consolidated.ts';

const gzipAsync = promisify(gzip);

/** How the fake behaves. */
export interface FakeMetriportOptions {
  readonly apiKey: string;
  readonly webhookKey: string;
  /** Facilities of the account: `facilityId` must be one of them. */
  readonly facilityIds: readonly string[];
  /** Presigned URL lifetime, default 180_000 (3 min, as Metriport's consolidated URLs). */
  readonly urlTtlMs?: number;
  /**
   * Bundle for a consolidated query; default: a generated 'small' record for the patient. Return
   * `{resourceType:'Bundle', type:'searchset', total:0, entry:[]}` for "no data"; throwing fails the query.
   */
  readonly bundleFor?: (patient: FakePatient, query: FakeConsolidatedQuery) => Bundle;
  /** Delay between a query start and its webhook, default 20 ms. */
  readonly webhookDelayMs?: number;
  /** Webhook HTTP timeout, default 5000. */
  readonly webhookTimeoutMs?: number;
  /** Ping HTTP timeout, default 2000. */
  readonly pingTimeoutMs?: number;
  /** Per-window limits: defaults patientCreateOrUpdate 15, documentQuery 20, consolidatedDataQuery 120. */
  readonly rateLimits?: Partial<Record<RateLimitOperation, number>>;
  /** Rate-limit window, default 60_000 ms. */
  readonly rateWindowMs?: number;
}

type MutableQuery = { -readonly [K in keyof FakeConsolidatedQuery]: FakeConsolidatedQuery[K] };

/** An answer of a route handler. */
interface Answer {
  readonly status: number;
  readonly body: unknown;
}

/**
 * A local stand-in for the Metriport Medical API (`/medical/v1`), its settings routes
 * (`/settings`), the S3 bucket behind consolidated files (`/s3`), and its webhook sender, all on
 * 127.0.0.1. It follows Metriport's observable behaviour (facts §1, §2, §6): validation messages,
 * RFC-7807 errors, rate limits, idempotent patient creation, consolidated queries answered by a
 * signed `medical.consolidated-data` webhook pointing at presigned URLs, webhook status
 * bookkeeping and manual replays without `meta.data`. Departures, for local use: webhook URLs on
 * localhost are accepted (Metriport refuses them), the webhook key never rotates, and
 * `dateFrom`/`dateTo` do not filter the default bundle.
 */
export class FakeMetriport {
  readonly faults: FakeMetriportFaults = {
    duplicateDelivery: false,
    dropMetaData: false,
    expireUrlsBeforeDelivery: false,
    failQuery: false,
    signature: 'valid',
    downloadDelayMs: 0,
    rateLimitAll: false,
  };
  /** The customer id (first segment of the S3 keys). */
  readonly cxId = randomUUID();

  private readonly options: FakeMetriportOptions;
  private readonly recorded: RecordedRequest[] = [];
  private readonly s3 = new FakeS3();
  private readonly limiter: RateLimiter;
  private readonly patientById = new Map<string, FakePatient>();
  /** Consolidated-query metadata, per patient: each start overwrites it (facts §2.1). */
  private readonly metadataByPatient = new Map<string, Readonly<Record<string, string>>>();
  private readonly queryList: MutableQuery[] = [];
  private readonly outbox: WebhookOutbox;
  private server?: Server;
  private url?: string;
  private stopped = false;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly sleepers = new Set<() => void>();
  private busy = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(options: FakeMetriportOptions) {
    this.options = options;
    this.limiter = new RateLimiter(options.rateLimits, options.rateWindowMs ?? 60_000);
    this.outbox = new WebhookOutbox({
      webhookKey: options.webhookKey,
      timeoutMs: options.webhookTimeoutMs ?? 5000,
      pingTimeoutMs: options.pingTimeoutMs ?? 2000,
      faults: this.faults,
    });
  }

  /** Every call the fake answered (API, settings and S3 downloads), in arrival order. */
  get requests(): readonly RecordedRequest[] {
    return this.recorded;
  }

  /** `http://127.0.0.1:<port>`: the API is under `/medical/v1`, settings under `/settings`. */
  get baseUrl(): string {
    if (!this.url) {
      throw new Error('FakeMetriport is not started');
    }
    return this.url;
  }

  /**
   * Starts listening on 127.0.0.1, on a free port.
   * @returns This fake.
   */
  async start(): Promise<this> {
    const server = createServer((req, res) => {
      this.onRequest(req, res).catch(() => res.destroy());
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  /** Stops the server, cancels scheduled webhooks and aborts deliveries in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) {
      clearTimeout(timer);
    }
    this.timers.clear();
    for (const wake of this.sleepers) {
      wake();
    }
    this.outbox.stop();
    this.busy = 0;
    this.releaseIdleWaiters();
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** @returns The patients, in creation order. */
  patients(): readonly FakePatient[] {
    return [...this.patientById.values()];
  }

  /** @returns Every consolidated query, in start order (snapshots). */
  queries(): readonly FakeConsolidatedQuery[] {
    return this.queryList.map((q) => ({ ...q }));
  }

  /** @returns The webhook_request rows, in creation order (snapshots). */
  webhooks(): readonly WebhookRequestRow[] {
    return this.outbox.snapshot();
  }

  /** @returns The webhook settings and status. */
  settings(): FakeWebhookSettings {
    return this.outbox.settings();
  }

  /**
   * As `POST /settings {webhookUrl}` followed by the ping test, awaited: sets the URL (an empty
   * one clears it), sends `{ping, meta}`, and records `webhookEnabled` from the answer.
   * @param url - The webhook URL; credentials in it go out as Basic auth.
   * @returns Whether the ping passed, and why not.
   */
  async setWebhookUrl(url: string): Promise<PingOutcome> {
    return this.track(this.outbox.setUrl(url));
  }

  /**
   * Sends a message of any type as the real sender would (a new row, `meta` first, signed).
   * @param type - `meta.type`, e.g. `patient.admit`, `network-query.hie`, `medical.document-download`.
   * @param payload - The keys besides `meta`.
   * @param meta - Optional `meta.data` and `meta.requestId`.
   * @returns The row once delivered (or failed).
   */
  async sendWebhook(type: string, payload: Record<string, unknown>, meta?: { data?: Record<string, string>; requestId?: string }): Promise<WebhookRequestRow> {
    const row = this.outbox.createRow(type, payload, meta?.requestId, meta?.data);
    await this.track(this.outbox.deliver(row, true));
    return { ...row };
  }

  /**
   * As `POST /settings/webhook/retry`: every failure row, oldest first, sent again with its
   * messageId, `when` and requestId but without `meta.data`. Awaited here; the route answers first.
   */
  async retryFailed(): Promise<void> {
    await this.track(this.outbox.replay(this.outbox.takeFailures()));
  }

  /** Resolves when no webhook is scheduled or in flight (nor ping, replay or query). */
  idle(): Promise<void> {
    return this.busy === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Adds a patient directly, as if created earlier (e.g. a sandbox persona to be found by match).
   * @param p - The patient; `id` defaults to a new UUID.
   * @returns The stored patient.
   */
  addPatient(p: Omit<FakePatient, 'id' | 'dateCreated' | 'eTag'> & { id?: string }): FakePatient {
    const { id, facilityIds, externalId, ...demographics } = p;
    const patient = this.storePatient(id ?? randomUUID(), normalizeDemographics(demographics), facilityIds, externalId, new Date().toISOString(), 0);
    return patient;
  }

  // -------------------------------------------------------------------------------------------
  // HTTP

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const at = new Date().toISOString();
    let body: unknown;
    let status = 500;
    try {
      const raw = await readRawBody(req);
      if (url.pathname.startsWith('/s3/')) {
        // Presigned: no API key. The delay applies before the first byte, as a slow bucket would.
        await this.sleep(this.faults.downloadDelayMs);
        const key = url.pathname.slice('/s3/'.length).split('/').map(decodeURIComponent).join('/');
        this.s3.serve(res, method, key, url.searchParams);
        status = res.statusCode;
        return;
      }
      if (req.headers['x-api-key'] !== this.options.apiKey) {
        // API Gateway's answer to a missing or wrong key (facts §1.5, assumed).
        status = 403;
        sendJson(res, 403, { message: 'Forbidden' });
        return;
      }
      body = parseJsonBody(raw, req.headers['content-type']);
      status = this.route(method, url, body, req, res);
    } catch (err) {
      const apiError = err instanceof ApiError ? err : new ApiError(500, 'InternalServerError', 'Please try again or reach out to support@metriport.com');
      status = apiError.status;
      sendJson(res, status, errorBody(apiError), { 'x-sentry-id': '' });
    } finally {
      this.recorded.push({ method, path: url.pathname, query: Object.fromEntries(url.searchParams), body, headers: req.headers, status, at });
    }
  }

  /** @returns The status answered. */
  private route(method: string, url: URL, body: unknown, req: IncomingMessage, res: ServerResponse): number {
    const path = url.pathname.replace(/\/+$/, '');
    const q = url.searchParams;
    const reply = (answer: Answer, headers?: Record<string, string>): number => {
      sendJson(res, answer.status, answer.body, headers);
      return answer.status;
    };
    const limited = (operation: RateLimitOperation, handler: () => Answer): number => {
      const verdict = this.limiter.hit(operation, this.faults.rateLimitAll);
      if (!verdict.allowed) {
        sendText(res, 429, RATE_LIMIT_MESSAGES[operation], verdict.headers);
        return 429;
      }
      return reply(handler(), verdict.headers);
    };

    if (path === '/medical/v1/patient/match' && method === 'POST') {
      return reply(this.matchPatient(body));
    }
    if (path === '/medical/v1/patient' && method === 'POST') {
      return limited('patientCreateOrUpdate', () => this.createPatient(q, body));
    }
    if (path === '/medical/v1/patient' && method === 'GET') {
      const facilityId = q.get('facilityId');
      const patients = this.patients().filter((p) => !facilityId || p.facilityIds.includes(facilityId));
      return reply({ status: 200, body: { meta: { itemsOnPage: patients.length }, patients: patients.map(patientDto) } });
    }
    if (path === '/medical/v1/patient/external-id' && method === 'GET') {
      return reply(this.patientByExternalId(q));
    }
    const patientRoute = /^\/medical\/v1\/patient\/([^/]+)(\/consolidated\/query(?:\/([^/]+))?)?$/.exec(path);
    if (patientRoute) {
      const [, id, consolidated, requestId] = patientRoute.map((s) => (s === undefined ? undefined : decodeURIComponent(s)));
      if (!consolidated && method === 'GET') {
        return reply({ status: 200, body: patientDto(this.patientOr404(id as string)) });
      }
      if (!consolidated && method === 'PUT') {
        return limited('patientCreateOrUpdate', () => this.updatePatient(id as string, q, body, req.headers['if-match']));
      }
      if (consolidated && !requestId && method === 'POST') {
        return limited('consolidatedDataQuery', () => this.startConsolidatedQuery(id as string, parseConsolidatedQuery(q, body)));
      }
      if (consolidated && !requestId && method === 'GET') {
        return reply(this.consolidatedQueryStatus(id as string));
      }
      if (consolidated && requestId && method === 'GET') {
        this.patientOr404(id as string);
        const query = this.queryList.find((x) => x.patientId === id && x.requestId === requestId);
        if (!query) {
          throw notFound('Consolidated query not found');
        }
        return reply({ status: 200, body: queryDto(query) });
      }
    }
    if (path === '/settings' && method === 'GET') {
      return reply({ status: 200, body: this.settingsDto() });
    }
    if (path === '/settings' && method === 'POST') {
      return reply(this.updateSettings(body));
    }
    if (path === '/settings/webhook' && method === 'GET') {
      return reply({ status: 200, body: this.outbox.statusDto() });
    }
    if (path === '/settings/webhook/retry' && method === 'POST') {
      // Metriport marks the failures as processing, answers, then replays in the background.
      const failures = this.outbox.takeFailures();
      this.track(this.outbox.replay(failures)).catch(() => undefined);
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 2 });
      res.end('OK');
      return 200;
    }
    throw notFound(`Cannot ${method} ${url.pathname}`);
  }

  // -------------------------------------------------------------------------------------------
  // Patients

  private matchPatient(body: unknown): Answer {
    const parsed = parsePatientBody(body);
    if (!parsed.ok) {
      throw invalidParameters(parsed.issues);
    }
    const found = this.findByDemographics(parsed.value);
    if (!found) {
      throw notFound('Cannot find patient');
    }
    return { status: 200, body: patientDto(found) };
  }

  private createPatient(q: URLSearchParams, body: unknown): Answer {
    const facilityId = q.get('facilityId');
    if (!facilityId) {
      throw badRequest('Missing facilityId query param');
    }
    const parsed = parsePatientBody(body);
    if (!parsed.ok) {
      throw invalidParameters(parsed.issues);
    }
    if (!this.options.facilityIds.includes(facilityId)) {
      throw notFound('Could not find facility');
    }
    // Metriport returns the existing patient when the demographics match one (getPatientByDemo).
    const existing = this.findByDemographics(parsed.value);
    if (existing) {
      return { status: 201, body: patientDto(existing) };
    }
    const { externalId, ...demographics } = parsed.value;
    const patient = this.storePatient(randomUUID(), demographics, [facilityId], externalId ?? (q.get('externalId') || undefined), new Date().toISOString(), 0);
    return { status: 201, body: patientDto(patient) };
  }

  private updatePatient(id: string, q: URLSearchParams, body: unknown, ifMatch: string | undefined): Answer {
    const parsed = parsePatientBody(body);
    if (!parsed.ok) {
      throw invalidParameters(parsed.issues);
    }
    const patient = this.patientOr404(id);
    const facilityId = q.get('facilityId');
    if (facilityId) {
      if (!this.options.facilityIds.includes(facilityId)) {
        throw notFound('Could not find facility');
      }
      if (!patient.facilityIds.includes(facilityId)) {
        throw badRequest('Patient not associated with given facility');
      }
    } else if (patient.facilityIds.length > 1) {
      throw badRequest('Patient is associated with more than one facility, please specify facilityId');
    }
    if (ifMatch !== undefined && ifMatch !== patient.eTag) {
      throw new ApiError(412, 'MetriportError', 'ETag mismatch - Please try again');
    }
    const { externalId, ...demographics } = parsed.value;
    // A full replacement of the demographics; an absent externalId leaves the stored one.
    const updated = this.storePatient(id, demographics, patient.facilityIds, externalId ?? patient.externalId, patient.dateCreated, Number(patient.eTag) + 1);
    return { status: 200, body: patientDto(updated) };
  }

  private patientByExternalId(q: URLSearchParams): Answer {
    const externalId = q.get('externalId');
    if (!externalId) {
      throw badRequest('Missing externalId query param');
    }
    const patient = this.patients().find((p) => p.externalId === externalId);
    if (!patient) {
      throw notFound('Could not find patient');
    }
    return { status: 200, body: patientDto(patient) };
  }

  private patientOr404(id: string): FakePatient {
    const patient = this.patientById.get(id);
    if (!patient) {
      throw notFound('Could not find patient');
    }
    return patient;
  }

  private findByDemographics(demographics: FakeDemographics): FakePatient | undefined {
    return this.patients().find((p) => demographicsMatch(p, demographics));
  }

  private storePatient(
    id: string,
    demographics: FakeDemographics,
    facilityIds: readonly string[],
    externalId: string | undefined,
    dateCreated: string,
    version: number
  ): FakePatient {
    const patient: FakePatient = {
      id,
      eTag: String(version),
      facilityIds: [...facilityIds],
      ...(externalId ? { externalId } : {}),
      dateCreated,
      firstName: demographics.firstName,
      lastName: demographics.lastName,
      dob: demographics.dob,
      genderAtBirth: demographics.genderAtBirth,
      ...(demographics.personalIdentifiers ? { personalIdentifiers: demographics.personalIdentifiers } : {}),
      address: demographics.address,
      ...(demographics.contact ? { contact: demographics.contact } : {}),
    };
    this.patientById.set(id, patient);
    return patient;
  }

  // -------------------------------------------------------------------------------------------
  // Consolidated queries

  private startConsolidatedQuery(patientId: string, params: ConsolidatedQueryParams): Answer {
    const patient = this.patientOr404(patientId);
    // A query with the same parameters still processing is returned as is; metadata unchanged.
    const running = this.queryList.find(
      (q) =>
        q.patientId === patient.id &&
        q.status === 'processing' &&
        q.conversionType === params.conversionType &&
        q.dateFrom === params.dateFrom &&
        q.dateTo === params.dateTo &&
        q.resources.join(',') === params.resources.join(',')
    );
    if (running) {
      return { status: 200, body: queryDto(running) };
    }
    if (params.metadata) {
      this.metadataByPatient.set(patient.id, params.metadata);
    } else {
      this.metadataByPatient.delete(patient.id);
    }
    const query: MutableQuery = {
      patientId: patient.id,
      requestId: randomUUID(),
      status: 'processing',
      startedAt: new Date().toISOString(),
      resources: params.resources,
      ...(params.dateFrom ? { dateFrom: params.dateFrom } : {}),
      ...(params.dateTo ? { dateTo: params.dateTo } : {}),
      conversionType: params.conversionType,
    };
    this.queryList.push(query);
    this.schedule(this.options.webhookDelayMs ?? 20, () => this.completeQuery(query));
    return { status: 200, body: queryDto(query) };
  }

  private consolidatedQueryStatus(patientId: string): Answer {
    this.patientOr404(patientId);
    const queries = this.queryList.filter((q) => q.patientId === patientId);
    return {
      status: 200,
      body: {
        status: queries.at(-1)?.status,
        queries: queries.length ? queries.map(queryDto) : null,
        message: 'Trigger a new query by POST /patient/:id/consolidated/query; data will be sent through Webhook',
      },
    };
  }

  /** Builds the data, uploads it, and sends `medical.consolidated-data` (facts §2.3). */
  private async completeQuery(query: MutableQuery): Promise<void> {
    const patient = this.patientById.get(query.patientId);
    if (!patient) {
      return;
    }
    const filters = webhookFilters(query);
    let result: Record<string, unknown>;
    let bundle: Bundle | undefined;
    if (!this.faults.failQuery) {
      try {
        bundle = (this.options.bundleFor ?? defaultConsolidatedBundle)(patient, { ...query });
      } catch {
        bundle = undefined;
      }
    }
    if (!bundle) {
      query.status = 'failed';
      result = { patientId: patient.id, externalId: patient.externalId, status: 'failed', filters };
    } else {
      const delivered = bundle.entry?.length ? await this.upload(patient, query, bundle) : bundle;
      if (this.stopped) {
        return;
      }
      query.status = 'completed';
      result = { patientId: patient.id, externalId: patient.externalId, status: 'completed', bundle: delivered, filters };
    }
    const row = this.outbox.createRow('medical.consolidated-data', { patients: [result] }, query.requestId, this.metadataByPatient.get(patient.id));
    await this.outbox.deliver(row, true);
  }

  /**
   * Writes the file under the patient's fixed key (a later query overwrites it) and returns the
   * webhook's DocumentReference bundle with presigned URLs.
   */
  private async upload(patient: FakePatient, query: FakeConsolidatedQuery, bundle: Bundle): Promise<Bundle> {
    const ttl = this.options.urlTtlMs ?? 180_000;
    const issuedAt = this.faults.expireUrlsBeforeDelivery ? Date.now() - ttl - 1000 : Date.now();
    const base = `${this.cxId}/${patient.id}/${this.cxId}_${patient.id}_MR`;
    const presign = (key: string): string => this.s3.presign(this.baseUrl, key, ttl, issuedAt);
    if (query.conversionType !== 'json') {
      // pdf/html: one rendered summary (a placeholder here).
      const contentType = query.conversionType === 'pdf' ? 'application/pdf' : 'text/html';
      const text = query.conversionType === 'pdf' ? '%PDF-1.4\n% Medical record summary\n%%EOF\n' : '<html><body><h1>Medical record summary</h1></body></html>';
      this.s3.put(`${base}.${query.conversionType}`, Buffer.from(text, 'utf8'), contentType);
      return documentReferenceBundle(patient.id, [{ contentType, url: presign(`${base}.${query.conversionType}`) }]);
    }
    const json = Buffer.from(JSON.stringify(bundle), 'utf8');
    const gz = await gzipAsync(json);
    this.s3.put(`${base}.json`, json, 'application/json');
    this.s3.put(`${base}.json.gz`, gz, 'application/json', 'gzip');
    return documentReferenceBundle(patient.id, [
      { contentType: 'application/json', url: presign(`${base}.json`) },
      { contentType: 'application/gzip', url: presign(`${base}.json.gz`) },
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // Settings

  private settingsDto(): Record<string, unknown> {
    const url = this.outbox.webhookUrl;
    return { id: this.cxId, webhookUrl: url ?? null, webhookKey: url ? this.options.webhookKey : null };
  }

  /** `POST /settings`: a strict `{webhookUrl}` (a URL, "" or null); the ping runs after the answer. */
  private updateSettings(body: unknown): Answer {
    const record = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const extra = Object.keys(record).filter((k) => k !== 'webhookUrl');
    if (extra.length) {
      throw invalidParameters([{ message: `Unrecognized key(s) in object: ${extra.map((k) => `'${k}'`).join(', ')}`, path: [] }]);
    }
    const webhookUrl = record.webhookUrl;
    if (webhookUrl !== undefined && webhookUrl !== null && webhookUrl !== '' && (typeof webhookUrl !== 'string' || !URL.canParse(webhookUrl))) {
      throw invalidParameters([{ message: 'Invalid url', path: ['webhookUrl'] }]);
    }
    this.setWebhookUrl((webhookUrl as string | null | undefined) ?? '').catch(() => undefined);
    return { status: 200, body: this.settingsDto() };
  }

  // -------------------------------------------------------------------------------------------
  // Background work

  private schedule(ms: number, task: () => Promise<void>): void {
    this.busy++;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      task()
        .catch(() => undefined)
        .finally(() => this.release());
    }, ms);
    this.timers.add(timer);
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.busy++;
    return promise.finally(() => this.release());
  }

  private release(): void {
    if (this.stopped) {
      return;
    }
    this.busy--;
    if (this.busy === 0) {
      this.releaseIdleWaiters();
    }
  }

  private releaseIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) {
      resolve();
    }
  }

  /** Waits, or less if the fake stops. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.timers.delete(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.timers.add(timer);
      this.sleepers.add(wake);
    });
  }
}

/** PatientDTO, keys in Metriport's order (MP `dtoFromModel`). */
function patientDto(p: FakePatient): Record<string, unknown> {
  return {
    id: p.id,
    eTag: p.eTag,
    facilityIds: p.facilityIds,
    externalId: p.externalId,
    dateCreated: p.dateCreated,
    firstName: p.firstName,
    lastName: p.lastName,
    dob: p.dob,
    genderAtBirth: p.genderAtBirth,
    personalIdentifiers: p.personalIdentifiers,
    address: p.address,
    contact: p.contact,
  };
}

/** ConsolidatedQuery DTO (the patient id is the fake's own bookkeeping). */
function queryDto(q: FakeConsolidatedQuery): Record<string, unknown> {
  return {
    requestId: q.requestId,
    status: q.status,
    startedAt: q.startedAt,
    resources: q.resources,
    dateFrom: q.dateFrom,
    dateTo: q.dateTo,
    conversionType: q.conversionType,
  };
}
