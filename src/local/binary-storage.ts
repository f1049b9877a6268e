import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Bytes and content type of one Binary version. */
export interface StoredBinary {
  readonly contentType: string;
  readonly data: Buffer;
}

/**
 * In-memory Binary content, keyed by Binary id and version, with presigned download URLs.
 *
 * The stock server keeps Binary content outside the FHIR table (file system or S3) and hands out
 * presigned `storage/` URLs; bots download attachments through them. This mirrors that contract:
 * URLs carry an expiry and an HMAC signature and are refused once expired or tampered with.
 */
export class BinaryStorage {
  private readonly content = new Map<string, StoredBinary>();
  private readonly signingKey = randomBytes(32);

  /**
   * Stores content for a Binary version.
   * @param id - The Binary id.
   * @param versionId - The Binary version id.
   * @param binary - The content.
   */
  write(id: string, versionId: string, binary: StoredBinary): void {
    this.content.set(id + '/' + versionId, binary);
  }

  /**
   * @param id - The Binary id.
   * @param versionId - The Binary version id.
   * @returns The stored content, if any.
   */
  read(id: string, versionId: string): StoredBinary | undefined {
    return this.content.get(id + '/' + versionId);
  }

  /**
   * Creates a presigned download URL for a Binary version.
   * @param baseUrl - The server base URL, ending with a slash.
   * @param id - The Binary id.
   * @param versionId - The Binary version id.
   * @param ttlSeconds - How long the URL stays valid; the stock server uses one hour.
   * @returns The URL.
   */
  presign(baseUrl: string, id: string, versionId: string, ttlSeconds = 3600): string {
    const expires = Math.floor(Date.now() / 1000) + ttlSeconds;
    const signature = this.sign(id, versionId, expires);
    return `${baseUrl}storage/${id}/${versionId}?Expires=${expires}&Signature=${signature}`;
  }

  /**
   * Checks a presigned URL's parameters.
   * @param id - The Binary id from the path.
   * @param versionId - The version id from the path.
   * @param expires - The `Expires` query parameter.
   * @param signature - The `Signature` query parameter.
   * @returns True when the signature matches and the URL has not expired.
   */
  verify(id: string, versionId: string, expires: string | null, signature: string | null): boolean {
    if (!expires || !signature || !/^\d+$/.test(expires)) {
      return false;
    }
    if (Number(expires) < Date.now() / 1000) {
      return false;
    }
    const expected = Buffer.from(this.sign(id, versionId, Number(expires)));
    const actual = Buffer.from(signature);
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }

  private sign(id: string, versionId: string, expires: number): string {
    return createHmac('sha256', this.signingKey).update(`${id}/${versionId}/${expires}`).digest('base64url');
  }
}
