import { Hl7Context } from '@medplum/core';
import { describe, expect, test } from 'vitest';
import { parseField } from '../../hl7/fields.ts';
import { decodeEd, mimeType } from './ed.ts';

describe('mimeType', () => {
  test.each([
    ['AP', 'PDF', 'application/pdf'],
    ['Application', 'pdf', 'application/pdf'],
    ['TEXT', 'HTML', 'text/html'],
    ['IM', 'TIFF', 'image/tiff'],
    ['IM', 'PNG', 'image/png'],
    ['application', 'msword', 'application/msword'],
    ['application', 'vnd.ms-excel', 'application/vnd.ms-excel'],
    ['', 'application/pdf', 'application/pdf'],
    ['', 'image/svg+xml', 'image/svg+xml'],
    ['TEXT', '', 'text/plain'],
    ['AP', '', 'application/octet-stream'],
    ['??', 'weird type', 'application/octet-stream'],
    ['TEXT', 'weird type', 'application/octet-stream'],
    ['', '', 'application/octet-stream'],
  ])('%s/%s → %s', (type, subtype, mime) => expect(mimeType(type, subtype)).toBe(mime));
});

describe('decodeEd', () => {
  const ed = (text: string): ReturnType<typeof decodeEd> => decodeEd(parseField(text, new Hl7Context())[0]);

  test('Base64 and Hex (whitespace ignored), A and no encoding as UTF-8 text', () => {
    expect(ed('^AP^PDF^Base64^JVBE Rg==')).toEqual({ contentType: 'application/pdf', bytes: Buffer.from('%PDF') });
    expect(ed('^AP^PDF^HEX^2550 4446')).toEqual({ contentType: 'application/pdf', bytes: Buffer.from('%PDF') });
    expect(ed('^TEXT^^A^héllo')?.bytes.toString('utf8')).toBe('héllo');
    expect(ed('^TEXT^^^plain')?.contentType).toBe('text/plain');
  });

  test('undecodable or empty data gives nothing', () => {
    for (const text of ['^AP^PDF^Base64^not base64!', '^AP^PDF^Hex^ABC', '^AP^PDF^Base64^', '^AP^PDF^UU^abc', '^TEXT^^A^  ']) {
      expect(ed(text), text).toBeUndefined();
    }
  });
});
