import type { Hl7Segment } from '@medplum/core';
import type { DocumentReferenceContent } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { ErrorLocation } from '../../hl7/ack.ts';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import type { AttachmentUpload } from '../plan.ts';
import { repText } from './note-text.ts';

/** The document body read from OBX segments: DocumentReference.content, and what to upload as Binary. */
export interface DocumentContent {
  readonly content: DocumentReferenceContent[];
  readonly uploads: AttachmentUpload[];
}

/** Text value types: their OBX-5 lines make one plain-text attachment. */
const TEXT_TYPES = new Set(['TX', 'FT', 'ST', '']);

/** HL7 table 0291 subtypes whose MIME type is not simply `<type>/<subtype>`. */
const SUBTYPES: Record<string, string> = {
  PDF: 'application/pdf',
  JPEG: 'image/jpeg',
  JPG: 'image/jpeg',
  GIF: 'image/gif',
  PNG: 'image/png',
  TIFF: 'image/tiff',
  HTML: 'text/html',
  RTF: 'application/rtf',
  XML: 'application/xml',
  'OCTET-STREAM': 'application/octet-stream',
  POSTSCRIPT: 'application/postscript',
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
 * The OBX segments of an MDM message → DocumentReference.content (IG OBX[DocumentReference]
 * map). Text OBXs (OBX-2 TX, FT, ST) are the document's lines: every OBX row and every OBX-5
 * repetition is one line (escapes and `\.br\` decoded, blank rows kept), and together they make one
 * `text/plain; charset=utf-8` attachment carried inline (`data`, `size`, SHA-1 `hash`). Each ED
 * OBX (OBX-5: source^type^subtype^encoding^data) is its own attachment whose MIME type comes from
 * ED.2/ED.3; its content (Base64, Hex or ASCII) goes to a Binary through the plan's `uploads`, so
 * the attachment itself carries `size` and `hash` only. Other value types are dropped with a
 * warning.
 * @param obxs - The OBX segments in message order.
 * @param ctx - The mapping context.
 * @returns The content entries and uploads (both empty when nothing was readable).
 */
export function documentContent(obxs: readonly Hl7Segment[], ctx: MappingContext): DocumentContent {
  const content: DocumentReferenceContent[] = [];
  const uploads: AttachmentUpload[] = [];
  let lines: string[] | undefined;
  let textSlot = 0;
  for (const [index, obx] of obxs.entries()) {
    const type = val(obx, 2).trim().toUpperCase();
    const location: ErrorLocation = { segment: 'OBX', sequence: index + 1, field: 5 };
    if (TEXT_TYPES.has(type)) {
      if (!lines) {
        lines = [];
        // The text attachment takes the position of the first text OBX; its data is set at the end.
        content.push({ attachment: {} });
        textSlot = content.length - 1;
      }
      const values = reps(obx, 5);
      lines.push(...(values.length ? values.map((r) => repText(r, obx.context)) : ['']));
    } else if (type === 'ED') {
      const ed = rep(obx, 5);
      const read = ed ? readEd(ed) : undefined;
      if (!read) {
        ctx.warn({ code: Hl7ErrorCode.DataType, text: 'OBX-5 (ED) has no readable content (ED.4 encoding Base64, Hex or A); OBX ignored', location });
        continue;
      }
      const hash = sha1(read.bytes);
      content.push({ attachment: { contentType: read.contentType, size: read.bytes.length, hash } });
      uploads.push({ path: `content.${content.length - 1}.attachment`, contentType: read.contentType, data: read.bytes.toString('base64'), hash });
    } else {
      ctx.warn({
        code: Hl7ErrorCode.DataType,
        text: `OBX-2 value type '${type}' is not document content; OBX ignored`,
        location: { ...location, field: 2 },
      });
    }
  }
  if (lines) {
    const bytes = Buffer.from(lines.join('\n'), 'utf8');
    content[textSlot] = {
      attachment: { contentType: 'text/plain; charset=utf-8', data: bytes.toString('base64'), size: bytes.length, hash: sha1(bytes) },
    };
  }
  return { content, uploads };
}

/** ED → bytes and MIME type; undefined when the data cannot be decoded. */
function readEd(ed: FieldRep): { contentType: string; bytes: Buffer } | undefined {
  const encoding = ed.get(4).trim().toUpperCase();
  const data = ed.get(5).replace(/\s+/g, '');
  let bytes: Buffer | undefined;
  if (encoding === 'BASE64' && /^[A-Za-z0-9+/]+={0,2}$/.test(data) && data.length % 4 === 0) {
    bytes = Buffer.from(data, 'base64');
  } else if (encoding === 'HEX' && /^([0-9A-Fa-f]{2})+$/.test(data)) {
    bytes = Buffer.from(data, 'hex');
  } else if (encoding === 'A' && ed.get(5)) {
    bytes = Buffer.from(ed.get(5), 'utf8');
  }
  if (!bytes || bytes.length === 0) {
    return undefined;
  }
  return { contentType: mimeType(ed.get(2), ed.get(3)), bytes };
}

/**
 * @param type - ED.2, table 0191 (AP, IM, TEXT...) or a MIME top-level type.
 * @param subtype - ED.3, table 0291 (PDF, JPEG, HTML...) or a MIME subtype.
 * @returns The MIME type; `application/octet-stream` when nothing is known.
 */
export function mimeType(type: string, subtype: string): string {
  const sub = subtype.trim();
  if (sub.includes('/')) {
    return sub.toLowerCase();
  }
  const known = SUBTYPES[sub.toUpperCase()];
  if (known) {
    return known;
  }
  const top = TYPES[type.trim().toUpperCase()];
  return top && /^[A-Za-z0-9.+-]+$/.test(sub) ? `${top}/${sub.toLowerCase()}` : 'application/octet-stream';
}

function sha1(bytes: Buffer): string {
  return createHash('sha1').update(bytes).digest('base64');
}
