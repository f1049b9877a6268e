import { getStatus, isOperationOutcome, MedplumClient, normalizeErrorString, OperationOutcomeError } from '@medplum/core';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CollectStatusOptions } from './status.ts';
import { collectStatus, parseTime } from './status.ts';
import { renderStatusPage } from './status-html.ts';
import type { QueueDepthStatus } from './status-model.ts';
import { sanitizeError } from './status-model.ts';
import { readReplayRequest, replayDeadLetter, ReplayRefusedError } from './status-replay.ts';

/**
 * The status page's HTTP handler (node:http): `GET /hub/status` (the page), `GET
 * /hub/status.json` (the data: {@link collectStatus}) and `POST /hub/status/replay` (`{kind, id}`:
 * replays one dead letter). Callers authenticate with HTTP Basic, a ClientApplication's id and
 * secret (a browser prompts for them); the handler logs in to the FHIR server with those
 * credentials and does everything as that caller, so the caller's AccessPolicy decides what the
 * page shows and whether a replay is allowed. Logins are cached per credential hash for a minute.
 * It is served by the local runtime (src/local/server.ts) and, against a stock server, by
 * `hub status --serve`.
 */

/** The paths the handler answers. */
export const STATUS_PATH = '/hub/status';

/** Options of {@link createStatusPageHandler}. */
export interface StatusPageOptions {
  /** The FHIR server's base URL (`MEDPLUM_BASE_URL`, or the local runtime's own). */
  readonly baseUrl: string;
  /** Seconds between the page's data refreshes (default 5). */
  readonly refreshSeconds?: number;
  /** How long a login is reused (default 60 s). */
  readonly loginTtlMs?: number;
  /** Reads the server's job queue depths (Redis); not shown when absent. */
  readonly queueDepth?: () => Promise<QueueDepthStatus>;
}

/** Handles one request under {@link STATUS_PATH}. */
export type StatusPageHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

const REALM = 'Basic realm="hub status", charset="UTF-8"';
const MAX_REPLAY_BODY = 4096;
const MAX_CACHED_LOGINS = 100;
const PAGE_SECURITY_HEADERS = {
  // Everything the page needs is inline; it talks only to its own origin.
  'Content-Security-Policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/**
 * @param pathname - A request path.
 * @returns True when the status handler answers it.
 */
export function isStatusPath(pathname: string): boolean {
  return pathname === STATUS_PATH || pathname === `${STATUS_PATH}/` || pathname === `${STATUS_PATH}.json` || pathname.startsWith(`${STATUS_PATH}/`);
}

/**
 * @param header - An `Authorization` header.
 * @returns The Basic credentials in it.
 */
export function basicCredentials(header: string | undefined): { clientId: string; clientSecret: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) {
    return undefined;
  }
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const separator = decoded.indexOf(':');
  if (separator <= 0) {
    return undefined;
  }
  return { clientId: decoded.slice(0, separator), clientSecret: decoded.slice(separator + 1) };
}

/**
 * @param url - The request URL's query.
 * @returns The collect options it asks for (`since`, `bucketMinutes`, `buckets`), or why they are wrong.
 */
export function statusQuery(url: URL): Pick<CollectStatusOptions, 'since' | 'bucketSeconds' | 'buckets'> | string {
  const since = url.searchParams.get('since') ?? undefined;
  if (since !== undefined) {
    try {
      parseTime(since);
    } catch (err) {
      return (err as Error).message;
    }
  }
  const integer = (name: string, max: number): number | undefined | string => {
    const value = url.searchParams.get(name);
    if (value === null) {
      return undefined;
    }
    const n = Number(value);
    return Number.isInteger(n) && n > 0 && n <= max ? n : `${name} must be an integer from 1 to ${max}`;
  };
  const bucketMinutes = integer('bucketMinutes', 7 * 24 * 60);
  const buckets = integer('buckets', 500);
  if (typeof bucketMinutes === 'string' || typeof buckets === 'string') {
    return typeof bucketMinutes === 'string' ? bucketMinutes : (buckets as string);
  }
  return { since, ...(bucketMinutes ? { bucketSeconds: bucketMinutes * 60 } : {}), ...(buckets ? { buckets } : {}) };
}

/**
 * Creates the handler for one FHIR server.
 * @param options - The server and the page's settings.
 * @returns The handler.
 */
export function createStatusPageHandler(options: StatusPageOptions): StatusPageHandler {
  const ttl = options.loginTtlMs ?? 60_000;
  const logins = new Map<string, { expires: number; client: Promise<MedplumClient> }>();
  const page = renderStatusPage({ refreshSeconds: options.refreshSeconds ?? 5 });

  /** The caller's logged-in client, from the cache or a new client-credentials login. */
  const login = (clientId: string, clientSecret: string): Promise<MedplumClient> => {
    const now = Date.now();
    for (const [key, entry] of logins) {
      if (entry.expires <= now) {
        logins.delete(key);
      }
    }
    const key = createHash('sha256').update(`${clientId}\n${clientSecret}`).digest('hex');
    const cached = logins.get(key);
    if (cached) {
      return cached.client;
    }
    const client = (async () => {
      const medplum = new MedplumClient({ baseUrl: options.baseUrl, clientId, cacheTime: 0 });
      await medplum.startClientLogin(clientId, clientSecret);
      return medplum;
    })();
    if (logins.size >= MAX_CACHED_LOGINS) {
      logins.delete(logins.keys().next().value as string);
    }
    logins.set(key, { expires: now + ttl, client });
    // A failed login is not kept: the next attempt (new credentials typed in) tries again.
    client.catch(() => logins.delete(key));
    return client;
  };

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    try {
      const route = routeOf(url.pathname, method);
      if (typeof route === 'number') {
        sendJson(res, route, { error: route === 405 ? 'method not allowed' : 'not found' });
        return;
      }
      const credentials = basicCredentials(req.headers.authorization);
      if (!credentials) {
        sendUnauthorized(res, 'HTTP Basic authentication with a ClientApplication id and secret is required');
        return;
      }
      let medplum: MedplumClient;
      try {
        medplum = await login(credentials.clientId, credentials.clientSecret);
      } catch (err) {
        if (err instanceof OperationOutcomeError) {
          // The server answered: the credentials are wrong (the browser asks again).
          sendUnauthorized(res, 'login to the FHIR server failed: check the client id and secret');
        } else {
          sendJson(res, 502, { error: `the FHIR server cannot be reached (${sanitizeError(normalizeErrorString(err))})` });
        }
        return;
      }
      switch (route) {
        case 'page':
          send(res, 200, page, 'text/html; charset=utf-8', PAGE_SECURITY_HEADERS);
          return;
        case 'json': {
          const query = statusQuery(url);
          if (typeof query === 'string') {
            sendJson(res, 400, { error: query });
            return;
          }
          sendJson(res, 200, await collectStatus(medplum, { ...query, queueDepth: options.queueDepth }));
          return;
        }
        case 'replay':
          await replay(req, res, medplum);
          return;
      }
    } catch (err) {
      if (!res.headersSent) {
        const status = err instanceof OperationOutcomeError ? getStatus(err.outcome) : isOperationOutcome(err) ? getStatus(err) : 500;
        sendJson(res, status >= 400 ? status : 500, { error: sanitizeError(normalizeErrorString(err)) });
      } else {
        res.destroy();
      }
    }
  };
}

const handlers = new Map<string, StatusPageHandler>();

/**
 * Answers a status request for the FHIR server at `baseUrl`, with one handler (and login cache)
 * per server: the entry point of the local runtime's HTTP server.
 * @param req - The request (its path starts with {@link STATUS_PATH}).
 * @param res - The response.
 * @param baseUrl - The FHIR server's base URL.
 */
export async function handleStatusPage(req: IncomingMessage, res: ServerResponse, baseUrl: string): Promise<void> {
  let handler = handlers.get(baseUrl);
  if (!handler) {
    handler = createStatusPageHandler({ baseUrl });
    handlers.set(baseUrl, handler);
  }
  await handler(req, res);
}

function routeOf(pathname: string, method: string): 'page' | 'json' | 'replay' | number {
  if (pathname === STATUS_PATH || pathname === `${STATUS_PATH}/`) {
    return method === 'GET' || method === 'HEAD' ? 'page' : 405;
  }
  if (pathname === `${STATUS_PATH}.json`) {
    return method === 'GET' ? 'json' : 405;
  }
  if (pathname === `${STATUS_PATH}/replay`) {
    return method === 'POST' ? 'replay' : 405;
  }
  return 404;
}

async function replay(req: IncomingMessage, res: ServerResponse, medplum: MedplumClient): Promise<void> {
  // A browser sends remembered Basic credentials with cross-site requests too: only a same-origin
  // JSON request (a cross-site one needs a CORS preflight, which is never granted) may replay.
  const origin = req.headers.origin;
  if (origin && origin !== 'null' && new URL(origin).host !== req.headers.host) {
    sendJson(res, 403, { error: 'cross-origin replay requests are refused' });
    return;
  }
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    sendJson(res, 415, { error: 'send {"kind": ..., "id": ...} as application/json' });
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(await readText(req, MAX_REPLAY_BODY));
  } catch (err) {
    sendJson(res, 400, { error: err instanceof RangeError ? err.message : 'the body is not JSON' });
    return;
  }
  const request = readReplayRequest(body);
  if (typeof request === 'string') {
    sendJson(res, 400, { error: request });
    return;
  }
  try {
    sendJson(res, 200, await replayDeadLetter(medplum, request));
  } catch (err) {
    if (err instanceof ReplayRefusedError) {
      sendJson(res, err.status, { error: err.message });
      return;
    }
    throw err;
  }
}

async function readText(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      throw new RangeError(`the body is larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendUnauthorized(res: ServerResponse, error: string): void {
  send(res, 401, JSON.stringify({ error }), 'application/json', { 'WWW-Authenticate': REALM });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON.stringify(body), 'application/json');
}

function send(res: ServerResponse, status: number, body: string, contentType: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store', ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}
