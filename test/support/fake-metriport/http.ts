import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * An error answered in Metriport's RFC-7807-like shape `{status, name, title, detail}`
 * (MP `default-error-handler.ts`): `name` is the status name, `title` the error class.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;

  constructor(status: number, title: string, detail: string) {
    super(detail);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

const STATUS_NAMES: Readonly<Record<number, string>> = {
  400: 'BAD_REQUEST',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  412: 'PRECONDITION_FAILED',
  423: 'LOCKED',
  429: 'TOO_MANY_REQUESTS',
  500: 'INTERNAL_SERVER_ERROR',
};

/**
 * @param status - HTTP status.
 * @returns Its name as Metriport's errors spell it (`NOT_FOUND`).
 */
export function statusName(status: number): string {
  return STATUS_NAMES[status] ?? 'ERROR';
}

/** @returns A 404 `NotFoundError`. */
export function notFound(detail: string): ApiError {
  return new ApiError(404, 'NotFoundError', detail);
}

/** @returns A 400 `BadRequestError`. */
export function badRequest(detail: string): ApiError {
  return new ApiError(400, 'BadRequestError', detail);
}

/** A zod issue: its message and the path to the offending value. */
export interface Issue {
  readonly message: string;
  readonly path: readonly (string | number)[];
}

/**
 * @param issues - Validation issues.
 * @returns The 400 Metriport answers to a zod failure: title `Missing or invalid parameters`,
 * `detail` joining `<message>, on [<path>]` (the path joined with commas, as `${array}` does).
 */
export function invalidParameters(issues: readonly Issue[]): ApiError {
  return new ApiError(400, 'Missing or invalid parameters', issues.map((i) => `${i.message}, on [${i.path.join(',')}]`).join(', '));
}

/**
 * Reads a whole request body.
 * @param req - The request.
 * @returns The bytes.
 */
export async function readRawBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Parses a JSON body the way express's `json()` does: only for JSON media types; none gives `{}`.
 * @param raw - The bytes.
 * @param contentType - The Content-Type header.
 * @returns The value.
 * @throws ApiError 400 when the JSON does not parse (body-parser's error, through Metriport's handler).
 */
export function parseJsonBody(raw: Buffer, contentType: string | undefined): unknown {
  const mediaType = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (raw.length === 0 || !(mediaType === 'application/json' || mediaType.endsWith('+json'))) {
    return {};
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ApiError(400, 'MetriportError', (err as Error).message);
  }
}

/**
 * Sends a JSON answer.
 * @param res - The response.
 * @param status - HTTP status.
 * @param body - Serialized with `JSON.stringify`.
 * @param headers - Extra headers.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Sends a text answer the way express's `res.send(string)` does (`text/html`).
 * @param res - The response.
 * @param status - HTTP status.
 * @param text - The body.
 * @param headers - Extra headers.
 */
export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * @param err - An ApiError.
 * @returns Metriport's error body.
 */
export function errorBody(err: ApiError): Record<string, unknown> {
  return { status: err.status, name: statusName(err.status), title: err.title, detail: err.detail };
}
