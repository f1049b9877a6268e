import type { Hl7Segment } from '@medplum/core';
import type { DocumentReferenceContent } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import type { ErrorLocation } from '../../hl7/ack.ts';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import type { AttachmentUpload } from '../plan.ts';
import { decodeEd, sha1Base64, storedContent } from '../datatypes/ed.ts';
import { repText } from './note-text.ts';

/** The document body read from OBX segments: DocumentReference.content, and what to upload as Binary. */
export interface DocumentContent {
  readonly content: DocumentReferenceContent[];
  readonly uploads: AttachmentUpload[];
}

/** Text value types: their OBX-5 lines make one plain-text attachment. */
const TEXT_TYPES = new Set(['TX', 'FT', 'ST', '']);

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
      const read = ed ? decodeEd(ed) : undefined;
      if (!read) {
        ctx.warn({ code: Hl7ErrorCode.DataType, text: 'OBX-5 (ED) has no readable content (ED.4 encoding Base64, Hex or A); OBX ignored', location });
        continue;
      }
      const { attachment, upload } = storedContent(read);
      content.push({ attachment });
      uploads.push({ path: `content.${content.length - 1}.attachment`, ...upload });
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
      attachment: { contentType: 'text/plain; charset=utf-8', data: bytes.toString('base64'), size: bytes.length, hash: sha1Base64(bytes) },
    };
  }
  return { content, uploads };
}
