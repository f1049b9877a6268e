import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../hl7/message.ts';
import { readMappingConfigFiles } from './config-files.ts';
import { MappingContext } from './context.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', 'seed'));

function context(): MappingContext {
  return new MappingContext(readMessageHeader(readHl7Message('MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261105141000||ADT^A01|1|P|2.5.1')), config);
}

describe('identifierSystem', () => {
  test('a configured NamingSystem wins; then the universal id (OID, URI, UUID)', () => {
    const ctx = context();
    expect(ctx.identifierSystem({ namespace: 'NSH', universalId: '', universalIdType: '' }, 'MR')).toBe('https://northside.example.org/fhir/sid/mrn');
    expect(ctx.identifierSystem({ namespace: '', universalId: '2.16.840.1.113883.4.1', universalIdType: 'ISO' }, 'SS')).toBe('urn:oid:2.16.840.1.113883.4.1');
    expect(ctx.identifierSystem({ namespace: '', universalId: 'https://ids.example.org/mrn', universalIdType: 'URI' }, 'MR')).toBe('https://ids.example.org/mrn');
    expect(ctx.identifierSystem({ namespace: '', universalId: 'A5B2C3D4-0000-4000-8000-00000000000F', universalIdType: 'UUID' }, 'MR')).toBe(
      'urn:uuid:a5b2c3d4-0000-4000-8000-00000000000f'
    );
    expect(ctx.warnings).toEqual([]);
  });

  test('a malformed universal id is not used as a system (a FHIR uri has no spaces): warning, then the namespace', () => {
    const ctx = context();
    for (const [i, [universalId, universalIdType]] of [
      ['2.16.840 .1', 'ISO'],
      ['1.2.x', 'ISO'],
      ['https://ids.example.org/a b', 'URI'],
      ['not-a-uuid', 'UUID'],
    ].entries()) {
      const system = ctx.identifierSystem({ namespace: 'LOCALX', universalId, universalIdType }, 'MR', { segment: 'PID', sequence: i + 1, field: 3 });
      expect(system).toBe('https://fhir.integration-hub.dev/sid/assigning-authority/LOCALX');
    }
    expect(ctx.warnings.filter((w) => w.text.startsWith('Assigning authority universal id is not a valid'))).toHaveLength(4);
  });
});
