import type { Attachment } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { FieldRep } from '../../hl7/fields.ts';
import type { AttachmentUpload } from '../plan.ts';

/** HL7 table 0291 subtypes (and common spellings) whose MIME type is not simply `<type>/<subtype>`. */
const SUBTYPES: Record<string, string> = {
  PDF: 'application/pdf',
  JPEG: 'image/jpeg',
  JPG: 'image/jpeg',
  PNG: 'image/png',
  GIF: 'image/gif',
  TIFF: 'image/tiff',
  TIF: 'image/tiff',
  BMP: 'image/bmp',
  RTF: 'application/rtf',
  HTML: 'text/html',
  XML: 'application/xml',
  PLAIN: 'text/plain',
  TXT: 'text/plain',
  DICOM: 'application/dicom',
  MSWORD: 'application/msword',
  POSTSCRIPT: 'application/postscript',
  'OCTET-STREAM': 'application/octet-stream',
};

/** HL7 table 0191 type of data → MIME top-level type. */
const TYPES: Record<string, string> = {
  AP: 'application',
  APPLICATION: 'application',
  IM: 'image',
  IMAGE: 'image',
  TEXT: 'text',
  TX: 'text',
  AU: 'audio',
  AUDIO: 'audio',
  VIDEO: 'video',
};

/**
 * @param type - ED.2 / RP.3 type of data: table 0191 (AP, IM, TEXT...) or a MIME type.
 * @param subtype - ED.3 / RP.4 subtype: table 0291 (PDF, JPEG, HTML...) or a MIME type.
 * @returns The MIME type: `text/plain` for text of unknown subtype, `application/octet-stream`
 * when nothing usable is known.
 */
export function mimeType(type: string, subtype: string): string {
  const t = type.trim();
  const s = subtype.trim();
  if (s.includes('/')) {
    return s.toLowerCase();
  }
  if (t.includes('/')) {
    return t.toLowerCase();
  }
  const known = SUBTYPES[s.toUpperCase()];
  if (known) {
    return known;
  }
  const top = TYPES[t.toUpperCase()];
  if (top && /^[A-Za-z0-9.+-]+$/.test(s)) {
    return `${top}/${s.toLowerCase()}`;
  }
  return top === 'text' && !s ? 'text/plain' : 'application/octet-stream';
}

/** An ED's decoded content. */
export interface EdContent {
  readonly contentType: string;
  readonly bytes: Buffer;
}

/**
 * ED (encapsulated data) → its bytes and MIME type: ED.2/ED.3 → {@link mimeType}; ED.4 encoding
 * Base64 or Hex (whitespace ignored), or A / none (the text itself, UTF-8); ED.5 the data.
 * @param ed - One repetition of an ED field (or a value of type ED).
 * @returns The content, or undefined when the data is empty or cannot be decoded.
 */
export function decodeEd(ed: FieldRep): EdContent | undefined {
  const encoding = ed.get(4).trim().toUpperCase();
  const raw = ed.get(5);
  const compact = raw.replace(/\s+/g, '');
  let bytes: Buffer | undefined;
  if (encoding === 'BASE64') {
    bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(compact) && compact.length % 4 === 0 ? Buffer.from(compact, 'base64') : undefined;
  } else if (encoding === 'HEX') {
    bytes = /^([0-9A-Fa-f]{2})+$/.test(compact) ? Buffer.from(compact, 'hex') : undefined;
  } else if ((encoding === 'A' || encoding === '') && raw.trim()) {
    bytes = Buffer.from(raw, 'utf8');
  }
  return bytes && bytes.length > 0 ? { contentType: mimeType(ed.get(2), ed.get(3)), bytes } : undefined;
}

/** Decoded content as the plan carries it: the attachment without data, and its Binary upload. */
export interface StoredContent {
  /** `contentType`, `size` and `hash`; the writer sets `url` once the Binary exists. */
  readonly attachment: Attachment;
  /** What to store as the Binary (the caller adds the attachment's `path`). */
  readonly upload: Omit<AttachmentUpload, 'path'>;
}

/**
 * @param content - Decoded ED content (from {@link decodeEd}).
 * @returns The attachment (`contentType`, `size`, SHA-1 `hash`) and the upload (base64 `data`).
 * The hash is deterministic, so a re-sent document is stored once.
 */
export function storedContent(content: EdContent): StoredContent {
  const { contentType, bytes } = content;
  const hash = sha1Base64(bytes);
  return { attachment: { contentType, size: bytes.length, hash }, upload: { contentType, data: bytes.toString('base64'), hash } };
}

/**
 * @param bytes - Content.
 * @returns Its SHA-1, base64, as `Attachment.hash` carries it.
 */
export function sha1Base64(bytes: Buffer): string {
  return createHash('sha1').update(bytes).digest('base64');
}
