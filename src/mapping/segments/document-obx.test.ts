import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { DocumentContent } from './document-obx.ts';
import { documentContent } from './document-obx.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function content(obxs: string, header = 'MSH|^~\\&|EPICDOC|NORTHSIDE|HUB|HUB|20240315161204||MDM^T02|1|P|2.5.1'): { body: DocumentContent; ctx: MappingContext } {
  const message = readHl7Message(`${header}\r${obxs.trim().split('\n').join('\r')}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  return { body: documentContent(message.getAllSegments('OBX'), ctx), ctx };
}

function decoded(data: string | undefined): string {
  return Buffer.from(data ?? '', 'base64').toString('utf8');
}

describe('documentContent', () => {
  test('text OBX rows and repetitions are the lines of one plain-text attachment', () => {
    const { body } = content(`
OBX|1|TX|11506-3^Progress note^LN|1|Cough \\T\\ fever.||||||F
OBX|2|TX|11506-3^Progress note^LN|1|||||||F
OBX|3|FT|11506-3^Progress note^LN|2|Plan:\\.br\\rest~fluids||||||F
OBX|4|ST|11506-3^Progress note^LN|3|BP 120^80 (unescaped)||||||F`);
    expect(body.uploads).toEqual([]);
    expect(body.content).toHaveLength(1);
    const attachment = body.content[0].attachment;
    const text = 'Cough & fever.\n\nPlan:\nrest\nfluids\nBP 120^80 (unescaped)';
    expect(decoded(attachment.data)).toBe(text);
    expect(attachment).toMatchObject({
      contentType: 'text/plain; charset=utf-8',
      size: Buffer.byteLength(text),
      hash: createHash('sha1').update(text).digest('base64'),
    });
  });

  test('a Base64 ED is uploaded as a Binary; the attachment keeps size and hash only', () => {
    const pdf = Buffer.from('%PDF-1.4 tiny').toString('base64');
    const { body } = content(`OBX|1|ED|18842-5^Discharge summary^LN|1|^AP^PDF^Base64^${pdf}||||||F`);
    expect(body.content).toEqual([
      { attachment: { contentType: 'application/pdf', size: 13, hash: createHash('sha1').update('%PDF-1.4 tiny').digest('base64') } },
    ]);
    expect(body.uploads).toEqual([{ path: 'content.0.attachment', contentType: 'application/pdf', data: pdf, hash: body.content[0].attachment.hash }]);
  });

  test('text and several EDs keep their order; each upload points at its own content entry', () => {
    const { body } = content(`
OBX|1|ED|1^Scan^L|1|^IM^JPEG^Hex^FFD8FFE0||||||F
OBX|2|TX|2^Text^L|1|See attached images.||||||F
OBX|3|ED|3^Scan^L|2|^image^png^Base64^iVBORw0KGgo=||||||F`);
    expect(body.content.map((c) => c.attachment.contentType)).toEqual(['image/jpeg', 'text/plain; charset=utf-8', 'image/png']);
    expect(body.uploads.map((u) => u.path)).toEqual(['content.0.attachment', 'content.2.attachment']);
    expect(body.uploads[0].data).toBe(Buffer.from('FFD8FFE0', 'hex').toString('base64'));
  });

  test('unreadable ED data and non-document value types are dropped with warnings', () => {
    const { body, ctx } = content(`
OBX|1|ED|1^Scan^L|1|^AP^PDF^Base64^not base64!||||||F
OBX|2|ED|1^Scan^L|1|^AP^PDF^Zip^UEsDBA==||||||F
OBX|3|NM|8867-4^Heart rate^LN||72|/min|||||F`);
    expect(body).toEqual({ content: [], uploads: [] });
    expect(ctx.warnings.map((w) => w.location)).toEqual([
      { segment: 'OBX', sequence: 1, field: 5 },
      { segment: 'OBX', sequence: 2, field: 5 },
      { segment: 'OBX', sequence: 3, field: 2 },
    ]);
  });

  test('the text keeps the message delimiters when joining unescaped pieces', () => {
    const { body } = content('OBX#1#TX#1$Note$L##a$b!c#', 'MSH#$*@!#EPICDOC#NORTHSIDE#HUB#HUB#20240315161204##MDM$T02#1#P#2.5.1');
    expect(decoded(body.content[0].attachment.data)).toBe('a$b!c');
  });
});
