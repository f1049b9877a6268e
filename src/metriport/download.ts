import type { Bundle, DocumentReference } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import { timeoutOption } from '../net/fetch.ts';

/** Where a consolidated-data message says the bundle is. */
export interface BundleLocation {
  /** Presigned URL of the JSON file. */
  readonly json?: string;
  /** Presigned URL of the gzip copy. */
  readonly gzip?: string;
}

/** The result of {@link downloadBundle}. */
export type DownloadResult =
  | { ok: true; bundle: Bundle; bytes: number }
  | { ok: false; expired: boolean; reason: string };

/** How long a download may take: a large record is 100-200 MB of JSON. */
const DOWNLOAD_TIMEOUT_MS = 5 * 60_000;

/**
 * Reads the bundle location from a consolidated-data payload: the DocumentReference in
 * `patients[0].bundle`, whose attachments are the JSON file and its gzip copy (facts §2.3).
 * @param bundle - `patients[0].bundle`.
 * @returns The URLs, or undefined when the bundle is the raw (empty) result instead.
 */
export function bundleLocation(bundle: Bundle | undefined): BundleLocation | undefined {
  const reference = bundle?.entry?.find((e) => e.resource?.resourceType === 'DocumentReference')?.resource as DocumentReference | undefined;
  if (!reference) {
    return undefined;
  }
  const attachments = (reference.content ?? []).map((c) => c.attachment).filter((a) => a?.url);
  const json = attachments.find((a) => a.contentType === 'application/json')?.url;
  const gzip = attachments.find((a) => a.contentType === 'application/gzip')?.url;
  return json || gzip ? { json, gzip } : undefined;
}

/**
 * Downloads the consolidated bundle: the gzip copy first (a fraction of the bytes), the JSON file
 * if that fails. The URLs live 3 minutes; S3 answers an expired (or otherwise refused) URL with
 * 403, reported as `expired` so the caller can ask Metriport again.
 * @param location - The URLs.
 * @returns The bundle, or why not.
 */
export async function downloadBundle(location: BundleLocation): Promise<DownloadResult> {
  const reasons: string[] = [];
  let expired = false;
  for (const url of [location.gzip, location.json].filter((u): u is string => Boolean(u))) {
    let response: Response;
    try {
      response = await fetch(url, { ...timeoutOption(DOWNLOAD_TIMEOUT_MS) });
    } catch (err) {
      reasons.push(`download failed: ${withoutQueryStrings((err as Error).message)}`);
      continue;
    }
    if (response.status === 403) {
      expired = true;
      const text = await response.text();
      reasons.push(`download refused (403${/expired/i.test(text) ? ', the presigned URL has expired' : ''})`);
      continue;
    }
    if (!response.ok) {
      reasons.push(`download answered HTTP ${response.status}`);
      continue;
    }
    let data = Buffer.from(await response.arrayBuffer());
    const bytes = data.length;
    try {
      // Fetch undoes `Content-Encoding: gzip`; a gzip object served without it arrives compressed.
      if (data[0] === 0x1f && data[1] === 0x8b) {
        data = gunzipSync(data);
      }
      const bundle = JSON.parse(data.toString('utf8')) as Bundle;
      if (bundle?.resourceType !== 'Bundle') {
        reasons.push('the downloaded file is not a FHIR Bundle');
        continue;
      }
      return { ok: true, bundle, bytes };
    } catch (err) {
      reasons.push(`the downloaded file could not be read: ${(err as Error).message}`);
    }
  }
  return { ok: false, expired, reason: reasons.join('; ') || 'the message holds no download URL' };
}

/**
 * Error texts of fetch name the URL; a presigned URL's query string is a credential to the whole
 * record for minutes, so it never reaches a Task or a log.
 * @param text - An error text.
 * @returns The text with every query string cut.
 */
export function withoutQueryStrings(text: string): string {
  return text.replace(/(https?:\/\/[^\s?'"]+)\?[^\s'"]*/g, '$1?…');
}
