import type { OperationOutcome } from '@medplum/fhirtypes';
import { badRequest, ContentType, getStatus } from '@medplum/core';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The stock server's default `maxJsonSize`: JSON bodies, `$deploy` code and sync Bundles. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** A request body as the stock server's body parsers leave it. */
export interface ParsedBody {
  /** The parsed value: an object for JSON and forms, a string for text and HL7, a Buffer otherwise. */
  readonly value: unknown;
  /** The bare media type, lower case, without parameters. */
  readonly mediaType: string;
}

/** A failure to answer with an OperationOutcome and the given status. */
export class HttpError extends Error {
  readonly outcome: OperationOutcome;
  readonly status: number;
  constructor(outcome: OperationOutcome, status: number = getStatus(outcome)) {
    super(outcome.issue?.[0]?.details?.text ?? 'HTTP error');
    this.outcome = outcome;
    this.status = status;
  }
}

/**
 * @param contentType - A Content-Type header value.
 * @returns The media type without parameters, lower case.
 */
export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

/**
 * Reads a request body up to a size limit.
 * @param req - The request.
 * @param limit - Maximum size in bytes; larger bodies are refused with 400 "File too large".
 * @returns The bytes.
 */
export async function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new HttpError(tooLarge());
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new HttpError(tooLarge());
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads and parses a body the way the stock server's express parsers do: JSON media types
 * (including `application/fhir+json` and JSON Patch) as JSON, `text/plain` and HL7 v2 as text,
 * forms as key/value maps; anything else stays raw.
 * @param req - The request.
 * @param limit - Maximum size in bytes.
 * @returns The parsed body.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<ParsedBody> {
  const raw = await readRawBody(req, limit);
  const mediaType = mediaTypeOf(req.headers['content-type']);
  if (raw.length === 0) {
    return { value: undefined, mediaType };
  }
  if (mediaType === 'application/json' || mediaType.endsWith('+json')) {
    try {
      return { value: JSON.parse(raw.toString('utf8')), mediaType };
    } catch (_err) {
      // The stock error handler's answer to body-parser's `entity.parse.failed`.
      throw new HttpError(badRequest('Content could not be parsed'));
    }
  }
  if (mediaType === ContentType.TEXT || mediaType === ContentType.HL7_V2) {
    return { value: raw.toString('utf8'), mediaType };
  }
  if (mediaType === ContentType.FORM_URL_ENCODED) {
    return { value: Object.fromEntries(new URLSearchParams(raw.toString('utf8'))), mediaType };
  }
  return { value: raw, mediaType };
}

/**
 * Sends a JSON body.
 * @param res - The response.
 * @param status - HTTP status.
 * @param body - The value to serialize.
 * @param contentType - The media type; FHIR JSON by default.
 * @param headers - Extra headers.
 */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  contentType: string = ContentType.FHIR_JSON,
  headers: Record<string, string> = {}
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': contentType + '; charset=utf-8',
    'Content-Length': Buffer.byteLength(text).toString(),
    ...headers,
  });
  res.end(text);
}

/**
 * Sends an OperationOutcome.
 * @param res - The response.
 * @param outcome - The outcome.
 * @param status - HTTP status; by default the one the outcome implies.
 */
export function sendOutcome(res: ServerResponse, outcome: OperationOutcome, status: number = getStatus(outcome)): void {
  sendJson(res, status, outcome);
}

/**
 * Sends a text or binary body.
 * @param res - The response.
 * @param status - HTTP status.
 * @param body - The body.
 * @param contentType - Its media type.
 */
export function sendBytes(res: ServerResponse, status: number, body: string | Buffer, contentType: string): void {
  const data = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const withCharset = typeof body === 'string' && !contentType.includes('charset') ? contentType + '; charset=utf-8' : contentType;
  res.writeHead(status, { 'Content-Type': withCharset, 'Content-Length': data.length.toString() });
  res.end(data);
}

/**
 * The stock server answers body-parser's `entity.too.large` with `badRequest('File too large')`
 * (`app.ts` errorHandler): HTTP 400, not 413, so a client sees the same status and outcome here.
 * @returns The outcome.
 */
function tooLarge(): OperationOutcome {
  return badRequest('File too large');
}
