import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { FieldRep } from '../../hl7/fields.ts';
import { reps } from '../../hl7/fields.ts';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { obxValue } from './obx-value.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

/** Maps the OBX of a one-OBX message from Acme (America/New_York). */
function value(obx: string): { result: ReturnType<typeof obxValue>; ctx: MappingContext } {
  const message = readHl7Message(`MSH|^~\\&|LABSYS|ACMELAB|HUB|NS|20261115||ORU^R01|1|P|2.5.1\r${obx}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  const segment = message.getSegment('OBX');
  const values: FieldRep[] = reps(segment, 5);
  const result = obxValue(segment?.getField(2)?.toString() ?? '', values, reps(segment, 6)[0], ctx, { segment: 'OBX', sequence: 1, field: 5 });
  return { result, ctx };
}

describe('obxValue', () => {
  test('NM → valueQuantity with UCUM units; leading zeros and + are read', () => {
    expect(value('OBX|1|NM|GLU||+0112.0|mg/dL').result).toEqual({
      value: { valueQuantity: { value: 112, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' } },
    });
  });

  test('NM with a comparator → Quantity with comparator and a warning', () => {
    const { result, ctx } = value('OBX|1|NM|TSH||<0.01|mIU/L');
    expect(result.value?.valueQuantity).toMatchObject({ value: 0.01, comparator: '<', code: 'm[IU]/L' });
    expect(ctx.warnings.map((w) => w.text)).toEqual(['OBX-5 has a comparator but OBX-2 is NM (should be SN); read as a Quantity with a comparator']);
  });

  test('NM that is not a number → valueString and a warning (no patient data in the text)', () => {
    const { result, ctx } = value('OBX|1|NM|PLT||CLUMPED|10*3/uL');
    expect(result).toEqual({ value: { valueString: 'CLUMPED' } });
    expect(ctx.warnings[0].text).not.toContain('CLUMPED');
  });

  test('SN → Quantity (comparator), Range, Ratio or string; units on quantities', () => {
    expect(value('OBX|1|SN|X||>=^4|ug/mL').result.value?.valueQuantity).toMatchObject({ value: 4, comparator: '>=', code: 'ug/mL' });
    expect(value('OBX|1|SN|X||^10^-^20|/[HPF]').result.value?.valueRange).toMatchObject({ low: { value: 10, code: '/[HPF]' }, high: { value: 20 } });
    expect(value('OBX|1|SN|X||^1^:^160').result.value).toEqual({ valueRatio: { numerator: { value: 1 }, denominator: { value: 160 } } });
    expect(value('OBX|1|SN|X||^2^+').result.value).toEqual({ valueString: '2+' });
  });

  test('ST/TX/FT → valueString: escapes and \\.br\\ decoded, repetitions joined by line breaks', () => {
    expect(value('OBX|1|FT|X||Line one\\.br\\Line \\T\\ two~Second paragraph').result.value).toEqual({
      valueString: 'Line one\nLine & two\nSecond paragraph',
    });
    expect(value('OBX|1|TX|X||~  indented~~last  ').result.value).toEqual({ valueString: '  indented\n\nlast' });
    expect(value('OBX|1|ST|X||a^b').result.value).toEqual({ valueString: 'a^b' });
  });

  test('CWE/CE → valueCodeableConcept; repeated → components', () => {
    expect(value('OBX|1|CWE|X||112283007^Escherichia coli^SCT').result.value?.valueCodeableConcept?.coding?.[0]).toEqual({
      system: 'http://snomed.info/sct',
      code: '112283007',
      display: 'Escherichia coli',
    });
    expect(value('OBX|1|CE|X||A^Anti-A^L~B^Anti-B^L').result.components).toHaveLength(2);
  });

  test('DT, TM, DTM, DR', () => {
    expect(value('OBX|1|DT|X||20261101').result.value).toEqual({ valueDateTime: '2026-11-01' });
    expect(value('OBX|1|TM|X||0730').result.value).toEqual({ valueTime: '07:30:00' });
    expect(value('OBX|1|DTM|X||202611142130').result.value).toEqual({ valueDateTime: '2026-11-14T21:30:00-05:00' });
    expect(value('OBX|1|DR|X||20261114^20261115').result.value).toEqual({ valuePeriod: { start: '2026-11-14', end: '2026-11-15' } });
  });

  test('ED Base64 → a document with contentType, size, SHA-1 hash and the content to upload', () => {
    const pdf = Buffer.from('%PDF-1.4\n%%EOF\n');
    const { result } = value(`OBX|1|ED|PDF||ACMELAB^AP^PDF^Base64^${pdf.toString('base64')}`);
    const hash = createHash('sha1').update(pdf).digest('base64');
    expect(result.documents).toEqual([
      {
        attachment: { contentType: 'application/pdf', size: pdf.length, hash },
        upload: { contentType: 'application/pdf', data: pdf.toString('base64'), hash },
      },
    ]);
  });

  test('ED Hex and text encodings; undecodable data is dropped with a warning', () => {
    expect(value('OBX|1|ED|X||^TEXT^PLAIN^Hex^48656C6C6F').result.documents?.[0].upload?.data).toBe(Buffer.from('Hello').toString('base64'));
    expect(value('OBX|1|ED|X||^text^html^A^<b>hi</b>').result.documents?.[0].attachment.contentType).toBe('text/html');
    const bad = value('OBX|1|ED|X||^AP^PDF^Base64^not base64!');
    expect(bad.result).toEqual({});
    expect(bad.ctx.warnings).toHaveLength(1);
  });

  test('RP: a URL is a document reference, any other pointer is text', () => {
    expect(value('OBX|1|RP|X||https://img.example.com/1^APP^IM^JPEG').result).toEqual({
      documents: [{ attachment: { url: 'https://img.example.com/1', contentType: 'image/jpeg' } }],
    });
    expect(value('OBX|1|RP|X||DOC123^APP^AP^PDF').result).toEqual({ value: { valueString: 'DOC123' } });
  });

  test('empty and "" values give nothing; a value without OBX-2 is text with a warning', () => {
    expect(value('OBX|1|NM|X||').result).toEqual({});
    expect(value('OBX|1|NM|X||""').result).toEqual({});
    const untyped = value('OBX|1||X||free text');
    expect(untyped.result).toEqual({ value: { valueString: 'free text' } });
    expect(untyped.ctx.warnings).toHaveLength(1);
  });
});
