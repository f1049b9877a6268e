import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/** A stored object. */
interface StoredObject {
  readonly body: Buffer;
  readonly contentType: string;
  readonly contentEncoding?: string;
  readonly etag: string;
  readonly lastModified: string;
}

/** A presigned URL the fake issued. */
interface IssuedUrl {
  readonly key: string;
  readonly expiresAtMs: number;
  readonly expiresSeconds: number;
}

/**
 * The S3 bucket behind Metriport's consolidated files: objects under fixed keys (a later put
 * overwrites, so an older URL still in its lifetime serves the newer file, as on S3), presigned
 * GET URLs in SigV4 query form, and S3's XML errors. The URL lifetime is kept in milliseconds on
 * the fake's side (X-Amz-Expires only has seconds), so tests can use sub-second lifetimes.
 */
export class FakeS3 {
  private readonly objects = new Map<string, StoredObject>();
  private readonly issued = new Map<string, IssuedUrl>();
  private readonly secret = randomBytes(32);

  /**
   * Stores an object.
   * @param key - Object key.
   * @param body - Bytes.
   * @param contentType - Content-Type to serve.
   * @param contentEncoding - Content-Encoding to serve (e.g. `gzip` for the `.gz` copy).
   */
  put(key: string, body: Buffer, contentType: string, contentEncoding?: string): void {
    this.objects.set(key, {
      body,
      contentType,
      contentEncoding,
      etag: `"${createHash('md5').update(body).digest('hex')}"`,
      lastModified: new Date().toUTCString(),
    });
  }

  /**
   * Makes a presigned GET URL.
   * @param baseUrl - The fake's base URL.
   * @param key - Object key.
   * @param ttlMs - Lifetime.
   * @param issuedAtMs - Signing time (in the past to hand out an already expired URL).
   * @returns The URL.
   */
  presign(baseUrl: string, key: string, ttlMs: number, issuedAtMs = Date.now()): string {
    const amzDate = new Date(issuedAtMs).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const expiresSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const signature = createHmac('sha256', this.secret).update(`${key}\n${amzDate}\n${expiresSeconds}\n${issuedAtMs}\n${this.issued.size}`).digest('hex');
    this.issued.set(signature, { key, expiresAtMs: issuedAtMs + ttlMs, expiresSeconds });
    const params = new URLSearchParams({
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD',
      'X-Amz-Credential': `ASIAFAKEMETRIPORT/${amzDate.slice(0, 8)}/us-west-1/s3/aws4_request`,
      'X-Amz-Date': amzDate,
      'X-Amz-Expires': String(expiresSeconds),
      'X-Amz-Signature': signature,
      'X-Amz-SignedHeaders': 'host',
      'x-id': 'GetObject',
    });
    return `${baseUrl}/s3/${key.split('/').map(encodeURIComponent).join('/')}?${params}`;
  }

  /**
   * Answers `GET|HEAD /s3/<key>?X-Amz-...` as S3 does: the object, or 403 `AccessDenied` once
   * expired, 403 `SignatureDoesNotMatch` for a URL it did not sign, 404 `NoSuchKey`.
   * @param res - The response.
   * @param method - GET or HEAD.
   * @param key - Decoded object key.
   * @param query - Query parameters.
   */
  serve(res: ServerResponse, method: string, key: string, query: URLSearchParams): void {
    const signature = query.get('X-Amz-Signature') ?? '';
    const url = this.issued.get(signature);
    if (!url || url.key !== key || query.get('X-Amz-Expires') !== String(url.expiresSeconds)) {
      sendS3Error(res, 403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
      return;
    }
    const now = Date.now();
    if (now >= url.expiresAtMs) {
      sendS3Error(res, 403, 'AccessDenied', 'Request has expired', {
        'X-Amz-Expires': String(url.expiresSeconds),
        Expires: s3Time(url.expiresAtMs),
        ServerTime: s3Time(now),
      });
      return;
    }
    const object = this.objects.get(key);
    if (!object) {
      sendS3Error(res, 404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
      return;
    }
    res.writeHead(200, {
      'content-type': object.contentType,
      ...(object.contentEncoding ? { 'content-encoding': object.contentEncoding } : {}),
      'content-length': object.body.length,
      etag: object.etag,
      'last-modified': object.lastModified,
      'accept-ranges': 'bytes',
      'x-amz-request-id': randomBytes(8).toString('hex').toUpperCase(),
      server: 'AmazonS3',
    });
    res.end(method === 'HEAD' ? undefined : object.body);
  }
}

/** S3's time format in error documents: ISO-8601 without milliseconds. */
function s3Time(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function sendS3Error(res: ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  const fields = Object.entries(extra)
    .map(([name, value]) => `<${name}>${escapeXml(value)}</${name}>`)
    .join('');
  const requestId = randomBytes(8).toString('hex').toUpperCase();
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${escapeXml(message)}</Message>${fields}<RequestId>${requestId}</RequestId>` +
    `<HostId>${randomBytes(24).toString('base64')}</HostId></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml), server: 'AmazonS3' });
  res.end(xml);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
