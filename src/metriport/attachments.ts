import type { MedplumClient } from '@medplum/core';
import type { Attachment, Resource } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mapObjects } from '../fhir/walk.ts';

/**
 * Inline attachment data (base64 characters) above which the content is stored as a Binary: a
 * resource must fit one request (the stock server's JSON limit is 1 MB), and documents do not
 * belong in every search result.
 */
export const INLINE_DATA_LIMIT = 256 * 1024;

/**
 * Moves large inline attachment data (`Attachment.data`, e.g. a DocumentReference's document) to
 * Binary resources: the attachment keeps its content type and title and gets `url`
 * (`Binary/<id>`), `size` and `hash` (base64 SHA-1, as FHIR defines it). When the stored version
 * already holds an attachment with the same hash, its Binary is reused, so importing the same
 * bundle again uploads nothing and changes nothing.
 * @param medplum - The client.
 * @param resource - The resource to write (not modified).
 * @param stored - Its stored version, if any.
 * @returns The resource with large data replaced by Binary URLs.
 */
export async function externalizeLargeAttachments<T extends Resource>(medplum: MedplumClient, resource: T, stored: Resource | undefined): Promise<T> {
  const known = new Map<string, Attachment>();
  collectAttachments(stored, (attachment) => {
    if (attachment.hash && attachment.url) {
      known.set(attachment.hash, attachment);
    }
  });
  const visit = async (value: unknown): Promise<unknown> => {
    if (Array.isArray(value)) {
      return Promise.all(value.map(visit));
    }
    if (!value || typeof value !== 'object') {
      return value;
    }
    const copy: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      copy[key] = await visit(child);
    }
    if (!isLargeInlineAttachment(copy)) {
      return copy;
    }
    const { data, ...attachment } = copy as Attachment;
    const bytes = Buffer.from(data as string, 'base64');
    const hash = createHash('sha1').update(bytes).digest('base64');
    const url = known.get(hash)?.url ?? `Binary/${(await medplum.createBinary({ data: bytes, contentType: attachment.contentType ?? 'application/octet-stream' })).id}`;
    return { ...attachment, url, size: bytes.length, hash };
  };
  return (await visit(resource)) as T;
}

/**
 * A copy of a resource for validation, large inline data replaced by a short placeholder: the
 * data is moved to a Binary before writing, so the server never sees it inline (its validator
 * refuses strings over 1 MB).
 * @param resource - A prepared resource.
 * @returns The copy (the resource itself when it holds no large data).
 */
export function withoutLargeInlineData<T extends Resource>(resource: T): T {
  let found = false;
  const copy = mapObjects(resource, (object) => {
    if (!isLargeInlineAttachment(object)) {
      return object;
    }
    found = true;
    return { ...object, data: '' };
  });
  return found ? copy : resource;
}

/** An Attachment with large inline data (SampledData also has a string `data`, with an `origin`). */
function isLargeInlineAttachment(value: Record<string, unknown>): boolean {
  return typeof value.data === 'string' && value.data.length > INLINE_DATA_LIMIT && !('origin' in value);
}

function collectAttachments(value: unknown, found: (attachment: Attachment) => void): void {
  if (Array.isArray(value)) {
    value.forEach((v) => collectAttachments(v, found));
  } else if (value && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if (typeof object.url === 'string' && typeof object.hash === 'string') {
      found(object as Attachment);
    }
    Object.values(object).forEach((v) => collectAttachments(v, found));
  }
}
