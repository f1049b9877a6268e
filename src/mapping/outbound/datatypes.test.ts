import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { HUB_SID } from '../../constants.ts';
import { dtmToFhirDateTime } from '../../hl7/datetime.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { EMPTY_MAPPING_CONFIG } from '../context.ts';
import { assigningAuthority, codingSystemName, conceptToCwe, humanNameToXpn, practitionerToXcn, replyContext } from './datatypes.ts';
import { buildSegment, fhirToDtm, isFhirInstant, one, text } from './encode.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const lab = replyContext(config, { application: 'LABSYS', facility: 'ACMELAB' });

describe('assigningAuthority', () => {
  test.each([
    ['a NamingSystem with a namespace and an OID', 'https://northside.example.org/fhir/sid/mrn', 'MR', { namespace: 'NSH', universalId: '2.16.840.1.113883.3.9999.1', universalIdType: 'ISO' }],
    ['a NamingSystem with a namespace only', 'https://northside.example.org/fhir/sid/placer-order', 'PLAC', { namespace: 'NSHORD', universalId: '', universalIdType: '' }],
    ['an OID system', 'urn:oid:1.2.3.4', 'MR', { namespace: '', universalId: '1.2.3.4', universalIdType: 'ISO' }],
    ['a UUID system', 'urn:uuid:0b8e0c6a-1b2c-4d5e-8f90-a1b2c3d4e5f6', 'MR', { namespace: '', universalId: '0b8e0c6a-1b2c-4d5e-8f90-a1b2c3d4e5f6', universalIdType: 'UUID' }],
    ['a hub-scoped bare namespace', `${HUB_SID}/assigning-authority/CITYLAB`, 'MR', { namespace: 'CITYLAB', universalId: '', universalIdType: '' }],
    ['an id local to the receiver', `${HUB_SID}/hl7/ACMELAB/LABSYS/FILL`, 'FILL', { namespace: '', universalId: '', universalIdType: '' }],
    ['an id local to another sender', `${HUB_SID}/hl7/OTHER/APP/FILL`, 'FILL', { namespace: '', universalId: `${HUB_SID}/hl7/OTHER/APP/FILL`, universalIdType: 'URI' }],
    ['any other URI', 'https://example.net/ids', 'MR', { namespace: '', universalId: 'https://example.net/ids', universalIdType: 'URI' }],
  ])('%s', (_what, system, type, expected) => {
    const hd = assigningAuthority(system, type, lab, config);
    expect(hd).toEqual(expected);
    // The inverse of the inbound map: the HD reads back as the system.
    expect(lab.identifierSystem(hd as NonNullable<typeof hd>, type)).toBe(system);
  });

  test('a system no HD can name', () => {
    expect(assigningAuthority('not a uri', 'MR', lab, config)).toBeUndefined();
  });

  test('a NamingSystem alias reads back as its preferred system', () => {
    const withAlias = {
      ...config,
      namingSystems: [
        {
          resourceType: 'NamingSystem' as const,
          name: 'X',
          status: 'active' as const,
          kind: 'identifier' as const,
          date: '2024-01-01',
          uniqueId: [
            { type: 'uri' as const, value: 'https://x.example/new', preferred: true },
            { type: 'uri' as const, value: 'https://x.example/old' },
            { type: 'other' as const, value: 'XNS' },
          ],
        },
      ],
    };
    expect(assigningAuthority('https://x.example/old', 'MR', replyContext(withAlias, { application: 'A', facility: 'F' }), withAlias)).toEqual({
      namespace: 'XNS',
      universalId: '',
      universalIdType: '',
    });
  });
});

describe('codingSystemName', () => {
  test.each(['LN', 'SCT', 'I10', 'I10P', 'I9C', 'C4', 'HCPCS', 'CVX', 'MVX', 'NDC', 'RXNORM', 'UCUM', 'NPI', 'ISO3166', 'ISO639', 'NUCCPID', 'UML', 'NCIT', 'HL70487'])(
    '%s reads back as the system it names',
    (name) => {
      expect(codingSystemName(lab.codeSystem(name), lab)).toBe(name);
    }
  );

  test('local codes: the receiver keeps its table name, others keep the URI', () => {
    expect(codingSystemName(`${HUB_SID}/local/ACMELAB/LABSYS/99ACM`, lab)).toBe('99ACM');
    expect(codingSystemName(`${HUB_SID}/local/NORTHSIDE/EHR/99NSH`, lab)).toBe(`${HUB_SID}/local/NORTHSIDE/EHR/99NSH`);
    expect(codingSystemName('http://example.org/codes', lab)).toBe('http://example.org/codes');
  });

  test('CWE: two triplets at most (v2.5.1), versions and original text', () => {
    const cwe = conceptToCwe(
      {
        coding: [
          { system: 'http://loinc.org', code: '2345-7', display: 'Glucose', version: '2.77' },
          { system: 'not a system', code: 'skipped' },
          { system: 'http://snomed.info/sct', code: '33747003' },
          { system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'third' },
        ],
        text: 'Glucose, serum',
      },
      lab
    );
    expect(cwe).toEqual(['2345-7', 'Glucose', 'LN', '33747003', '', 'SCT', '2.77', '', 'Glucose, serum']);
    expect(conceptToCwe({ text: 'free text only' }, lab)).toBeUndefined();
  });
});

describe('names and providers', () => {
  test('XPN: family, given, further given names, suffix, prefix, degree, type', () => {
    expect(humanNameToXpn({ use: 'maiden', family: 'Smith', given: ['Anna', 'Maria', 'Lou'], prefix: ['Ms'], suffix: ['Jr', 'MD'] })).toEqual([
      'Smith',
      'Anna',
      'Maria Lou',
      'Jr',
      'Ms',
      'MD',
      'M',
    ]);
    expect(humanNameToXpn({ text: 'only text' })).toBeUndefined();
  });

  test('XCN: a provider without an NPI is sent with the id an HD names; without any id, by name', () => {
    expect(
      practitionerToXcn({ resourceType: 'Practitioner', identifier: [{ system: 'https://northside.example.org/fhir/sid/staff', value: 'S55' }], name: [{ family: 'Lee' }] }, lab, config)
    ).toEqual(['S55', 'Lee', '', '', '', '', '', '', ['NSHSTAFF', '', ''], '', '', '', '']);
    expect(practitionerToXcn({ resourceType: 'Practitioner', name: [{ family: 'Lee', given: ['Ann'] }] }, lab, config)).toEqual([
      '',
      'Lee',
      'Ann',
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      '',
    ]);
    expect(practitionerToXcn({ resourceType: 'Practitioner' }, lab, EMPTY_MAPPING_CONFIG)).toBeUndefined();
  });
});

describe('encoding', () => {
  test.each([
    ['2024', '2024'],
    ['2024-03', '202403'],
    ['2024-03-15', '20240315'],
    ['2024-03-15T08:45:00-05:00', '20240315084500-0500'],
    ['2024-03-15T08:45:00.123456Z', '20240315084500.1234+0000'],
  ])('FHIR %s → DTM %s, read back as the same instant', (fhir, dtm) => {
    expect(fhirToDtm(fhir)).toBe(dtm);
    const back = dtmToFhirDateTime(dtm, undefined);
    expect('value' in back && Date.parse(back.value)).toBe(Date.parse(fhir.length === 7 ? fhir + '-01' : fhir.length === 4 ? fhir + '-01-01' : fhir));
  });

  test('not a date/time', () => {
    expect(fhirToDtm('15/03/2024')).toBeUndefined();
    expect(fhirToDtm(undefined)).toBeUndefined();
    expect(isFhirInstant('2024-03-15T08:45:00Z')).toBe(true);
    expect(isFhirInstant('2024-03-15T08:45')).toBe(false);
  });

  test('segments: no trailing delimiters, empty middle fields kept, subcomponents and repetitions escaped', () => {
    const segment = buildSegment('ZZZ', {
      1: text('a'),
      3: [
        ['x', ['y&', ''], '', ''],
        ['~', ''],
      ],
      4: text(''),
      5: one(undefined),
    });
    expect(segment.toString()).toBe('ZZZ|a||x^y\\T\\~\\R\\');
    expect(buildSegment('MSH', { 3: text('APP'), 9: one(['ADT', 'A01']) }).toString()).toBe('MSH|^~\\&|APP||||||ADT^A01');
  });
});
