import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseField } from '../../hl7/fields.ts';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { scopedEiIdentifier } from './entity-id.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

describe('scopedEiIdentifier', () => {
  const message = readHl7Message('MSH|^~\\&|EPICDOC|NORTHSIDE|HUB|HUB|20240315161204||MDM^T02|1|P|2.5.1');
  const ctx = new MappingContext(readMessageHeader(message), config);
  const ei = (text: string) => parseField(text, message.context)[0];
  const location = { segment: 'TXA', field: 12 };

  test('a bare id is scoped to the sender and to what it numbers', () => {
    expect(scopedEiIdentifier(ei('DOC-1'), ctx, 'document', location)).toEqual({
      system: 'https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/EPICDOC/document',
      value: 'DOC-1',
    });
  });

  test('an assigning authority picks the system (NamingSystem or OID); the type is optional', () => {
    expect(scopedEiIdentifier(ei('ORD-1^NSHORD'), ctx, 'x', location, 'PLAC')).toEqual({
      system: 'https://northside.example.org/fhir/sid/placer-order',
      value: 'ORD-1',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC' }] },
    });
    expect(scopedEiIdentifier(ei('7^^1.2.3^ISO'), ctx, 'x', location)?.system).toBe('urn:oid:1.2.3');
  });

  test('empty and "" are no identifier', () => {
    expect(scopedEiIdentifier(undefined, ctx, 'document', location)).toBeUndefined();
    expect(scopedEiIdentifier(ei('""'), ctx, 'document', location)).toBeUndefined();
    expect(scopedEiIdentifier(ei('^NSHORD'), ctx, 'document', location)).toBeUndefined();
  });
});
