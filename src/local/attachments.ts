import type { Binary } from '@medplum/fhirtypes';
import type { BinaryStorage } from './binary-storage.ts';
import type { HubRepository } from './repo.ts';

const BINARY_URL = /^Binary\/([0-9A-Za-z\-.]{1,64})$/;

/**
 * Rewrites attachment URLs of the form `Binary/<id>` into presigned download URLs, as the stock
 * server does in API responses and subscription payloads, so clients and bots can download
 * attachment content directly. The input is not modified.
 * @param value - A resource (or any JSON value).
 * @param repo - Used to find each Binary's current version.
 * @param storage - Signs the URLs.
 * @param baseUrl - The server base URL, ending with a slash.
 * @returns A copy with rewritten URLs.
 */
export async function rewriteAttachmentUrls<T>(
  value: T,
  repo: HubRepository,
  storage: BinaryStorage,
  baseUrl: string
): Promise<T> {
  if (Array.isArray(value)) {
    return (await Promise.all(value.map((v) => rewriteAttachmentUrls(v, repo, storage, baseUrl)))) as T;
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  if ((value as { resourceType?: string }).resourceType === 'Binary') {
    // The stock rewriter never looks inside a Binary (its own `url` is set by the server).
    return value;
  }
  const result: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    // Like the stock rewriter (`fhir/rewrite.ts`), any `url` or `path` property naming a Binary is
    // rewritten, whether or not its object has a `contentType`.
    const match = (key === 'url' || key === 'path') && typeof child === 'string' ? BINARY_URL.exec(child) : null;
    if (match) {
      result[key] = await presignBinary(match[1], repo, storage, baseUrl, child);
    } else {
      result[key] = await rewriteAttachmentUrls(child, repo, storage, baseUrl);
    }
  }
  return result as T;
}

async function presignBinary(
  id: string,
  repo: HubRepository,
  storage: BinaryStorage,
  baseUrl: string,
  original: string
): Promise<string> {
  try {
    const binary = await repo.readResource<Binary>('Binary', id);
    return storage.presign(baseUrl, binary.id, binary.meta?.versionId as string);
  } catch (_err) {
    return original;
  }
}

/**
 * The inverse of {@link rewriteAttachmentUrls}, applied to every write as the stock server does:
 * a presigned URL of this server's storage (as read back by a client) is stored again as the
 * `Binary/<id>` reference it stands for, so read-modify-write round trips keep attachments intact.
 * @param value - A resource about to be stored (modified in place).
 * @param baseUrl - The server base URL, ending with a slash.
 */
export function unsignAttachmentUrls(value: unknown, baseUrl: string): void {
  if (Array.isArray(value)) {
    value.forEach((v) => unsignAttachmentUrls(v, baseUrl));
    return;
  }
  if (value === null || typeof value !== 'object') {
    return;
  }
  const record = value as Record<string, unknown>;
  for (const [key, child] of Object.entries(record)) {
    if (key === 'url' && typeof child === 'string' && child.startsWith(baseUrl + 'storage/')) {
      const id = child.slice((baseUrl + 'storage/').length).split(/[/?]/)[0];
      if (id) {
        record[key] = 'Binary/' + id;
      }
    } else {
      unsignAttachmentUrls(child, baseUrl);
    }
  }
}
