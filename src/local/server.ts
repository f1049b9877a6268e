import {
  allOk,
  badRequest,
  ContentType,
  getStatus,
  isOk,
  normalizeOperationOutcome,
  notFound,
  OperationOutcomeError,
  unauthorized,
} from '@medplum/core';
import type { FhirRequest, HttpMethod } from '@medplum/fhir-router';
import type { Binary, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { agentPushOperation } from './agent-push.ts';
import { rewriteAttachmentUrls } from './attachments.ts';
import type { AuthState } from './auth.ts';
import { OAuthError } from './auth.ts';
import { executeBotOperation } from './bots/operations.ts';
import type { RequestContext } from './context.ts';
import { runInRequestContext, traceIdFromHeaders } from './context.ts';
import type { ParsedBody } from './http.ts';
import { HttpError, mediaTypeOf, readBody, readRawBody, sendBytes, sendJson, sendOutcome } from './http.ts';
import type { LocalRuntime } from './runtime.ts';
import { handleStatusPage, isStatusPath } from '../ops/status-page.ts';
import { randomUUID } from 'node:crypto';

/** Body limits of the stock server's parsers other than JSON (express defaults). */
const TEXT_BODY_LIMIT = 100 * 1024;
const BINARY_BODY_LIMIT = 100 * 1024 * 1024;

const FHIR_PREFIX = '/fhir/R4';
const EXECUTE_PATH = /^\/fhir\/R4\/Bot(?:\/([^/$]+))?\/\$execute(?:\/.*)?$/;
const PUSH_PATH = /^\/fhir\/R4\/Agent(?:\/([^/$]+))?\/\$push$/;

/**
 * Builds the request listener of the local runtime's HTTP server: the stock server's paths for
 * health, OAuth2, `auth/me`, the admin API, presigned storage and `/fhir/R4`.
 * @param runtime - The runtime.
 * @returns The listener for `http.createServer`.
 */
export function createRequestListener(runtime: LocalRuntime): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const context: RequestContext = { requestId: randomUUID(), traceId: traceIdFromHeaders(req.headers) };
    runInRequestContext(context, () => {
      handle(runtime, req, res, context).catch((err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof HttpError) {
          sendOutcome(res, err.outcome, err.status);
        } else if (err instanceof OAuthError) {
          sendJson(res, err.status, { error: err.code, error_description: err.message }, ContentType.JSON);
        } else {
          const outcome = normalizeOperationOutcome(err);
          sendOutcome(res, outcome);
        }
      });
    });
  };
}

async function handle(
  runtime: LocalRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  requestContext: RequestContext
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname.replaceAll('%24', '$');
  const method = (req.method ?? 'GET').toUpperCase();

  if (path === '/healthcheck' && method === 'GET') {
    sendJson(res, 200, { ok: true, version: runtime.version, runtime: 'local' }, ContentType.JSON);
    return;
  }
  if (path === '/oauth2/token' && method === 'POST') {
    await handleToken(runtime, req, res);
    return;
  }
  if (path.startsWith('/storage/') && method === 'GET') {
    handleStorage(runtime, path, url, res);
    return;
  }

  if (isStatusPath(path)) {
    // The status page authenticates its callers itself (HTTP Basic) and reads as them over FHIR.
    await handleStatusPage(req, res, runtime.baseUrl);
    return;
  }

  const auth = await runtime.auth.authenticate(req.headers.authorization);
  if (!auth) {
    sendOutcome(res, unauthorized);
    return;
  }
  const context: RequestContext = { ...requestContext, auth };
  await runInRequestContext(context, async () => {
    if (path === '/auth/me' && method === 'GET') {
      sendJson(res, 200, await runtime.describeSession(auth), ContentType.JSON);
    } else if (path.startsWith('/admin/projects/')) {
      const body = await readBody(req, runtime.maxJsonSize);
      const segments = path.slice('/admin/projects/'.length).split('/').filter(Boolean);
      const result = await runtime.admin.handle(auth, method, segments, body.value);
      sendJson(res, result.status, result.body, ContentType.JSON);
    } else if (path === FHIR_PREFIX || path.startsWith(FHIR_PREFIX + '/')) {
      await handleFhir(runtime, auth, context.traceId, req, res, method, path.slice(FHIR_PREFIX.length + 1), url);
    } else {
      sendOutcome(res, notFound);
    }
  });
}

async function handleToken(runtime: LocalRuntime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readBody(req, TEXT_BODY_LIMIT);
  // As the stock token endpoint (`oauth/token.ts`): only form bodies, and every grant error is an
  // `invalid_request`; a JSON body that would parse here is refused there.
  if (body.mediaType !== ContentType.FORM_URL_ENCODED) {
    sendBytes(res, 400, 'Unsupported content type', ContentType.TEXT);
    return;
  }
  const params = (body.value ?? {}) as Record<string, string>;
  if (!params.grant_type) {
    throw new OAuthError('invalid_request', 'Missing grant_type');
  }
  if (params.grant_type !== 'client_credentials') {
    throw new OAuthError('invalid_request', 'Unsupported grant_type');
  }
  let clientId = params.client_id;
  let clientSecret = params.client_secret;
  const authorization = req.headers.authorization;
  if (authorization) {
    // An Authorization header takes precedence over the body, and must be Basic.
    if (!authorization.startsWith('Basic ')) {
      throw new OAuthError('invalid_request', 'Invalid authorization header');
    }
    const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
    const separator = decoded.indexOf(':');
    clientId = separator >= 0 ? decoded.slice(0, separator) : decoded;
    clientSecret = separator >= 0 ? decoded.slice(separator + 1) : '';
  }
  const tokens = await runtime.auth.clientCredentials(clientId, clientSecret, params.scope);
  sendJson(res, 200, tokens, ContentType.JSON, { 'Cache-Control': 'no-store', Pragma: 'no-cache' });
}

function handleStorage(runtime: LocalRuntime, path: string, url: URL, res: ServerResponse): void {
  const [, , id, versionId] = path.split('/');
  if (!id || !versionId || !runtime.binaries.verify(id, versionId, url.searchParams.get('Expires'), url.searchParams.get('Signature'))) {
    sendOutcome(res, unauthorized);
    return;
  }
  const content = runtime.binaries.read(id, versionId);
  if (!content) {
    sendOutcome(res, notFound);
    return;
  }
  sendBytes(res, 200, content.data, content.contentType);
}

async function handleFhir(
  runtime: LocalRuntime,
  auth: AuthState,
  traceId: string,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  fhirPath: string,
  url: URL
): Promise<void> {
  const repo = runtime.repoFor(auth);
  const mediaType = mediaTypeOf(req.headers['content-type']);
  const query = Object.fromEntries(
    [...new Set(url.searchParams.keys())].map((k) => {
      const values = url.searchParams.getAll(k);
      return [k, values.length === 1 ? values[0] : values];
    })
  ) as Record<string, string | string[]>;

  const execute = EXECUTE_PATH.exec(FHIR_PREFIX + '/' + fhirPath);
  if (execute && (method === 'GET' || method === 'POST')) {
    const body = method === 'POST' ? await readBody(req, bodyLimit(runtime, mediaType)) : undefined;
    const result = await executeBotOperation(
      { repo, systemRepo: runtime.systemRepo(), executor: runtime.executor, auth: runtime.auth },
      {
        auth,
        method,
        botId: execute[1],
        query,
        body: body?.value,
        contentType: req.headers['content-type'],
        headers: req.headers,
        traceId,
      }
    );
    if (typeof result.body === 'string') {
      sendBytes(res, result.status, result.body, result.contentType);
    } else {
      sendJson(res, result.status, result.body, result.contentType);
    }
    return;
  }

  // The stock server routes `$push` (POST only) outside its FhirRouter, like `$execute`: the
  // answer can be the agent's raw reply rather than a resource.
  const push = PUSH_PATH.exec(FHIR_PREFIX + '/' + fhirPath);
  if (push && method === 'POST') {
    const body = await readBody(req, bodyLimit(runtime, mediaType));
    const result = await agentPushOperation(
      { repo, transmit: (agent, request) => runtime.agents.push(agent, request), signal: runtime.stopSignal, log: runtime.options.log },
      { agentId: push[1], query, body: body.value }
    );
    if (typeof result.body === 'string') {
      sendBytes(res, result.status, result.body, result.contentType);
    } else {
      sendJson(res, result.status, result.body, result.contentType);
    }
    return;
  }

  const segments = fhirPath.split('/').filter(Boolean);
  if (segments[0] === 'Binary' && isRawBinaryRequest(method, mediaType, req.headers.accept)) {
    await handleRawBinary(runtime, repo, req, res, method, segments, mediaType);
    return;
  }

  let body: ParsedBody | undefined;
  if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
    body = await readBody(req, bodyLimit(runtime, mediaType));
  }
  const fhirRequest: FhirRequest = {
    method: method as HttpMethod,
    url: fhirPath + url.search,
    pathname: '',
    body: body?.value,
    params: {},
    query,
    headers: req.headers,
    config: { transactions: Boolean(auth.project.features?.includes('transaction-bundles')) },
  };
  const [outcome, resource] = await runtime.router.handleRequest(fhirRequest, repo);
  if (!resource) {
    sendOutcome(res, outcome);
    return;
  }
  // Signed as the caller, as on the stock server: a Binary it may not read stays `Binary/<id>`
  // (a presigned URL needs no login, so signing as the system would hand out any Binary).
  const rewritten = await rewriteAttachmentUrls(resource, repo, runtime.binaries, runtime.baseUrl);
  sendJson(res, getStatus(outcome), withBinaryUrl(runtime, rewritten), ContentType.FHIR_JSON, resourceHeaders(runtime, outcome, resource));
}

function bodyLimit(runtime: LocalRuntime, mediaType: string): number {
  if (mediaType === 'application/json' || mediaType.endsWith('+json')) {
    return runtime.maxJsonSize;
  }
  return mediaType === ContentType.TEXT || mediaType === ContentType.HL7_V2 || mediaType === ContentType.FORM_URL_ENCODED
    ? TEXT_BODY_LIMIT
    : BINARY_BODY_LIMIT;
}

function isRawBinaryRequest(method: string, mediaType: string, accept: string | undefined): boolean {
  if (method === 'POST' || method === 'PUT') {
    return mediaType !== ContentType.FHIR_JSON && mediaType !== ContentType.JSON;
  }
  if (method === 'GET') {
    return !accept || !(accept.includes(ContentType.FHIR_JSON) || accept.includes(ContentType.JSON));
  }
  return false;
}

/**
 * Binary content travels as raw bytes, as on the stock server: `POST Binary` (or `PUT Binary/id`)
 * with any non-FHIR content type stores the bytes; `GET Binary/id` without a FHIR Accept returns them.
 */
async function handleRawBinary(
  runtime: LocalRuntime,
  repo: ReturnType<LocalRuntime['repoFor']>,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  segments: string[],
  mediaType: string
): Promise<void> {
  if (method === 'GET') {
    if (segments.length !== 2) {
      throw new OperationOutcomeError(badRequest('Binary search requires a FHIR Accept header'));
    }
    const binary = await repo.readResource<Binary>('Binary', segments[1]);
    const content = runtime.binaries.read(binary.id, binary.meta?.versionId as string);
    sendBytes(res, 200, content?.data ?? Buffer.alloc(0), binary.contentType ?? ContentType.OCTET_STREAM);
    return;
  }
  const data = await readRawBody(req, BINARY_BODY_LIMIT);
  const contentType = mediaType || ContentType.OCTET_STREAM;
  const draft: Binary = { resourceType: 'Binary', contentType };
  const binary =
    method === 'PUT' && segments[1]
      ? await repo.updateResource<Binary>({ ...draft, id: segments[1] })
      : await repo.createResource<Binary>(draft);
  runtime.binaries.write(binary.id, binary.meta?.versionId as string, { contentType, data });
  const status = method === 'POST' ? 201 : 200;
  sendJson(res, status, withBinaryUrl(runtime, binary), ContentType.FHIR_JSON, resourceHeaders(runtime, allOk, binary));
}

function withBinaryUrl(runtime: LocalRuntime, resource: Resource): Resource {
  if (resource.resourceType === 'Binary' && resource.id && resource.meta?.versionId) {
    return { ...resource, url: runtime.binaries.presign(runtime.baseUrl, resource.id, resource.meta.versionId) } as Binary;
  }
  return resource;
}

function resourceHeaders(runtime: LocalRuntime, outcome: OperationOutcome, resource: Resource): Record<string, string> {
  const headers: Record<string, string> = {};
  const versionId = resource.meta?.versionId;
  if (versionId) {
    headers.ETag = `W/"${versionId}"`;
  }
  if (resource.meta?.lastUpdated) {
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (isOk(outcome) && getStatus(outcome) === 201 && resource.id) {
    headers.Location = `${runtime.fhirBaseUrl}${resource.resourceType}/${resource.id}/_history/${versionId}`;
  }
  return headers;
}

