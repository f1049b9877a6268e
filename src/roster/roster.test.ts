import { validateResource } from '@medplum/core';
import type { Coverage, Organization, Patient, Resource } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { HUB_SID } from '../constants.ts';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { readHl7Message, readMessageHeader } from '../hl7/message.ts';
import { readMappingConfigFiles } from '../mapping/config-files.ts';
import type { MappingConfig } from '../mapping/context.ts';
import { MappingContext } from '../mapping/context.ts';
import { findMessageMapper } from '../mapping/messages/registry.ts';
import type { MessagePlan, ResourcePlan } from '../mapping/plan.ts';
import { LOCAL_REFERENCE_PREFIX } from '../mapping/plan.ts';
import { parseCsv } from './csv.ts';
import type { RosterContext } from './roster.ts';
import { mapRosterRow, readRoster, REQUIRED_COLUMNS, ROSTER_COLUMNS, rosterDate, rosterGender } from './roster.ts';
import { AETNA, AETNA_PAYER_NAMING_SYSTEM } from '../../test/support/roster-fixtures.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NORTHSIDE_MRN = 'https://northside.example.org/fhir/sid/mrn';
const RIVERCLINIC_MRN = 'https://riverclinic.example.org/fhir/sid/mrn';
const MR = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] };

const payerNamingSystem = AETNA_PAYER_NAMING_SYSTEM;

const seed = readMappingConfigFiles(join(ROOT, 'seed'));
const config: MappingConfig = { ...seed, namingSystems: [...seed.namingSystems, payerNamingSystem] };
const context: RosterContext = { config, sender: 'Acme Partners', mrnAuthority: 'RIVERCLINIC' };

const HEADER =
  'MRN,mrn_authority,Family,Given,birth_date,sex,address_line1,address_line2,city,state,postal_code,country,phone,email,ssn,' +
  'payer_id,payer_id_authority,payer_name,member_id,group_number,plan_id,plan_name,coverage_start,coverage_end,relationship';

const GOOD_ROSTER = [
  HEADER,
  '100234,NSH,KOWALSKI,ANNA MARIE,1968-04-12,F,1420 Lakeview Ave,Apt 3B,Chicago,IL,60614,USA,+1 312 555 0147,anna.k@example.net,123-45-6789,' +
    'AETNA60054,AETNA,Aetna,W2298871401,GRP1,AETSEL,Aetna Select,2025-07-01,2025-12-31,',
  '200111,2.16.840.1.113883.3.9999.1,O\'Neil,Mary Ann,19900215,f,"12 Main St, Unit 4",,Springfield,IL,62701,,(217) 555-0134,,,' + ',,,,,,,,,',
  '  R-77  ,,Nguyen,Bao,2001-11-30,M,,,,,,,,bao@example.org,,,,Medicaid of Illinois,,,ILMCD,,20260101,,Spouse',
].join('\r\n');

beforeAll(() => loadFhirDefinitions());

/** Local references become plain ones so a planned resource can be validated on its own. */
function validate(resource: Resource): void {
  const json = JSON.stringify(resource).replaceAll(new RegExp(`"${LOCAL_REFERENCE_PREFIX}([A-Za-z]+)[^"]*"`, 'g'), '"$1/dummy"');
  validateResource(JSON.parse(json) as Resource);
}

function planned<T extends Resource>(plan: MessagePlan | undefined, type: T['resourceType']): ResourcePlan<T>[] {
  return (plan?.resources ?? []).filter((r): r is ResourcePlan<T> => r.resource.resourceType === type);
}

describe('readRoster: a good roster', () => {
  const roster = readRoster(GOOD_ROSTER, context);

  test('every row has a plan, without errors, and every planned resource is valid FHIR', () => {
    expect(roster.problems).toEqual([]);
    expect(roster.warnings).toEqual([]);
    expect(roster.rows.map((r) => [r.line, r.errors, r.warnings])).toEqual([
      [2, [], []],
      [3, [], []],
      [4, [], []],
    ]);
    for (const row of roster.rows) {
      for (const resource of row.plan?.resources ?? []) {
        expect(() => validate(resource.resource), `${row.line} ${resource.key}`).not.toThrow();
        expect(resource.identifiers.length).toBeGreaterThan(0);
      }
    }
  });

  test('row 1: Patient with the NamingSystem MRN system, SSN recorded, demographics, telecom', () => {
    const plan = roster.rows[0].plan;
    const [patient] = planned<Patient>(plan, 'Patient');
    const mrn = { system: NORTHSIDE_MRN, value: '100234', type: MR };
    expect(patient.key).toBe('Patient');
    expect(patient.merge).toBe('overlay');
    // Matched by the MRN only: the SSN is recorded, as PID-19, never matched on.
    expect(patient.identifiers).toEqual([mrn]);
    expect(patient.resource).toEqual({
      resourceType: 'Patient',
      identifier: [
        mrn,
        { system: 'http://hl7.org/fhir/sid/us-ssn', value: '123-45-6789', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] } },
      ],
      active: true,
      name: [{ family: 'KOWALSKI', given: ['ANNA', 'MARIE'] }],
      gender: 'female',
      birthDate: '1968-04-12',
      address: [{ line: ['1420 Lakeview Ave', 'Apt 3B'], city: 'Chicago', state: 'IL', postalCode: '60614', country: 'USA' }],
      telecom: [
        { system: 'phone', value: '+1 312 555 0147' },
        { system: 'email', value: 'anna.k@example.net' },
      ],
    });
  });

  test('row 1: payer Organization (fill) and Coverage keyed like IN1, beneficiary and subscriber the Patient', () => {
    const plan = roster.rows[0].plan;
    const [payer] = planned<Organization>(plan, 'Organization');
    const [coverage] = planned<Coverage>(plan, 'Coverage');
    expect(plan?.resources.map((r) => r.resource.resourceType)).toEqual(['Patient', 'Organization', 'Coverage']);
    expect(payer).toEqual({
      key: `Organization/${AETNA}^AETNA60054`,
      resource: { resourceType: 'Organization', identifier: [{ system: AETNA, value: 'AETNA60054' }], name: 'Aetna' },
      identifiers: [{ system: AETNA, value: 'AETNA60054' }],
      merge: 'fill',
    });
    const id = { system: `${HUB_SID}/coverage`, value: `${NORTHSIDE_MRN}^100234^${AETNA}^AETNA60054^W2298871401` };
    expect(coverage).toEqual({
      key: `Coverage/${id.value}`,
      resource: {
        resourceType: 'Coverage',
        identifier: [id],
        status: 'active',
        beneficiary: { reference: 'local:Patient' },
        payor: [{ reference: `local:Organization/${AETNA}^AETNA60054`, display: 'Aetna' }],
        relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/subscriber-relationship', code: 'self' }] },
        subscriber: { reference: 'local:Patient' },
        subscriberId: 'W2298871401',
        period: { start: '2025-07-01', end: '2025-12-31' },
        class: [
          { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'plan' }] }, value: 'AETSEL', name: 'Aetna Select' },
          { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'group' }] }, value: 'GRP1' },
        ],
      },
      identifiers: [id],
      merge: 'overlay',
    });
  });

  test('row 2: an OID authority finds the same NamingSystem; YYYYMMDD, lower-case sex, quoted comma; no coverage', () => {
    const plan = roster.rows[1].plan;
    const [patient] = planned<Patient>(plan, 'Patient');
    expect(plan?.resources).toHaveLength(1);
    expect(patient.identifiers).toEqual([{ system: NORTHSIDE_MRN, value: '200111', type: MR }]);
    expect(patient.resource.name).toEqual([{ family: "O'Neil", given: ['Mary', 'Ann'] }]);
    expect(patient.resource.birthDate).toBe('1990-02-15');
    expect(patient.resource.gender).toBe('female');
    expect(patient.resource.address).toEqual([{ line: ['12 Main St, Unit 4'], city: 'Springfield', state: 'IL', postalCode: '62701' }]);
    expect(patient.resource.telecom).toEqual([{ system: 'phone', value: '(217) 555-0134' }]);
  });

  test('row 3: the sender default authority; a coverage without payer id is keyed by plan, payer only named', () => {
    const plan = roster.rows[2].plan;
    const [patient] = planned<Patient>(plan, 'Patient');
    const [coverage] = planned<Coverage>(plan, 'Coverage');
    expect(patient.identifiers).toEqual([{ system: RIVERCLINIC_MRN, value: 'R-77', type: MR }]);
    expect(planned(plan, 'Organization')).toEqual([]);
    expect(coverage.identifiers).toEqual([{ system: `${HUB_SID}/coverage-plan`, value: `${RIVERCLINIC_MRN}^R-77^^ILMCD` }]);
    expect(coverage.resource.payor).toEqual([{ display: 'Medicaid of Illinois' }]);
    expect(coverage.resource.relationship?.coding?.[0].code).toBe('spouse');
    expect(coverage.resource.subscriber).toBeUndefined();
    expect(coverage.resource.period).toEqual({ start: '2026-01-01' });
    expect(coverage.resource.class).toEqual([{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'plan' }] }, value: 'ILMCD' }]);
  });

  test('the same roster maps to the same plans (idempotent upserts)', () => {
    expect(readRoster(GOOD_ROSTER, context)).toEqual(roster);
  });
});

describe('identifier systems', () => {
  const row = (authority: string, ctx: RosterContext): ResourcePlan | undefined => {
    const result = mapRosterRow({ line: 2, cells: ['42', authority, 'Doe', 'Jo', '2000-01-01', 'U'] }, ['mrn', 'mrn_authority', 'family', 'given', 'birth_date', 'sex'], ctx);
    return 'plan' in result ? result.plan.resources[0] : undefined;
  };

  test('without an authority or default: scoped to the sender, never a bare value', () => {
    expect(row('', { config, sender: 'Acme Partners' })?.identifiers[0].system).toBe(`${HUB_SID}/roster/Acme-Partners/mrn`);
  });

  test('an authority no NamingSystem lists: the hub-scoped system HL7 uses, with a warning naming the column', () => {
    const result = mapRosterRow(
      { line: 9, cells: ['42', 'UNKNOWNAUTH', 'Doe', 'Jo', '2000-01-01', 'U'] },
      ['mrn', 'mrn_authority', 'family', 'given', 'birth_date', 'sex'],
      { config, sender: 'x' }
    );
    expect('plan' in result && result.plan.resources[0].identifiers[0].system).toBe(`${HUB_SID}/assigning-authority/UNKNOWNAUTH`);
    expect('plan' in result && result.warnings).toEqual(['line 9: mrn_authority: No NamingSystem for assigning authority UNKNOWNAUTH; using a hub-scoped system']);
  });

  test('a URI authority is the system; the column wins over the sender default', () => {
    expect(row('https://partner.example.org/sid/mrn', context)?.identifiers[0].system).toBe('https://partner.example.org/sid/mrn');
    expect(row('NSH', context)?.identifiers[0].system).toBe(NORTHSIDE_MRN);
  });

  test('patientMerge fill plans the Patient as a non-authoritative feed', () => {
    expect(row('NSH', { ...context, patientMerge: 'fill' })?.merge).toBe('fill');
  });
});

describe('row errors', () => {
  test('missing required values: every one named by line and column', () => {
    const roster = readRoster('mrn,family,given,birth_date,sex\n,Doe,,2000-01-01,\n', context);
    expect(roster.rows).toEqual([{ line: 2, errors: ['line 2: mrn is required', 'line 2: given is required', 'line 2: sex is required'], warnings: [] }]);
  });

  test('a missing required column is a file problem, and each row says what it lacks', () => {
    const roster = readRoster('mrn,family,given,sex\n1,Doe,Jo,M\n2,Roe,Al,F\n', context);
    expect(roster.problems).toEqual([{ line: 1, message: 'required column birth_date is missing' }]);
    expect(roster.rows.map((r) => r.errors)).toEqual([['line 2: birth_date is required'], ['line 3: birth_date is required']]);
  });

  test('bad dates and sex, without quoting values', () => {
    const text = [
      'mrn,family,given,birth_date,sex,payer_name,plan_id,coverage_start,coverage_end,relationship,ssn,email,phone',
      'S1,SECRETNAME,Jo,1999-02-30,X,P,PL,2024-13-01,2023-01-01,cousin,12345,not-an-email,none',
      'S2,SECRETNAME,Jo,31/12/1999,male,P,PL,2024-05-01,2024-04-30,,,,',
    ].join('\n');
    const roster = readRoster(text, context);
    expect(roster.rows[0].errors).toEqual([
      'line 2: birth_date is not a date (YYYY-MM-DD or YYYYMMDD)',
      'line 2: sex is not M, F, O or U',
      'line 2: ssn is not 9 digits (NNN-NN-NNNN or NNNNNNNNN)',
      'line 2: phone has no digits',
      'line 2: email is not an email address',
      'line 2: coverage_start is not a date (YYYY-MM-DD or YYYYMMDD)',
      'line 2: relationship is not one of self, spouse, child, parent, common, other, injured',
    ]);
    expect(roster.rows[1].errors).toEqual(['line 3: birth_date is not a date (YYYY-MM-DD or YYYYMMDD)', 'line 3: coverage_end is before coverage_start']);
    expect(JSON.stringify(roster)).not.toMatch(/SECRETNAME|1999-02-30|31\/12|cousin|not-an-email|12345/);
  });

  test('coverage columns need a payer, and a payer id or plan id to key the coverage', () => {
    const roster = readRoster('mrn,family,given,birth_date,sex,member_id,payer_name\n1,Doe,Jo,2000-01-01,M,M1,\n2,Doe,Al,2000-01-01,M,M2,Acme Health\n', context);
    expect(roster.rows.map((r) => r.errors)).toEqual([
      ['line 2: payer_id or payer_name is required when coverage columns are filled'],
      ['line 3: payer_id or plan_id is required to identify the coverage'],
    ]);
  });

  test("an identifier with '|' cannot be found again: refused", () => {
    const roster = readRoster('mrn,family,given,birth_date,sex\nA|B,Doe,Jo,2000-01-01,M\n', context);
    expect(roster.rows[0].errors).toEqual(["line 2: mrn contains '|', which identifier searches cannot match"]);
  });

  test('relationship without coverage is ignored with a warning', () => {
    const roster = readRoster('mrn,family,given,birth_date,sex,relationship\n1,Doe,Jo,2000-01-01,M,child\n', context);
    expect(roster.rows[0].plan?.resources).toHaveLength(1);
    expect(roster.rows[0].warnings).toEqual(['line 2: relationship is ignored: the row has no coverage']);
  });
});

describe('file level', () => {
  test('unknown and unnamed columns are warned once, not per row, and do not stop the rows', () => {
    const roster = readRoster('mrn,family,given,birth_date,sex,Favourite_Colour,,notes\n1,Doe,Jo,2000-01-01,M,blue,x,n\n2,Roe,Al,2000-01-02,F,red,y,m\n', context);
    expect(roster.warnings).toEqual([
      { line: 1, message: 'column 7 has no name; ignored' },
      { line: 1, message: 'column 6 (favourite_colour) is not a roster column; ignored' },
      { line: 1, message: 'column 8 (notes) is not a roster column; ignored' },
    ]);
    expect(roster.problems).toEqual([]);
    expect(roster.rows.map((r) => [r.errors, r.warnings, Boolean(r.plan)])).toEqual([
      [[], [], true],
      [[], [], true],
    ]);
  });

  test('column names are case-insensitive and in any order', () => {
    const roster = readRoster(' SEX ,Birth_Date,GIVEN,family,Mrn\nM,2000-01-01,Jo,Doe,7\n', context);
    const patient = roster.rows[0].plan?.resources[0].resource as Patient;
    expect(patient).toMatchObject({ gender: 'male', birthDate: '2000-01-01', name: [{ family: 'Doe', given: ['Jo'] }] });
  });

  test('rows are independent: a bad row, a ragged row and a blank row do not affect the others', () => {
    const text = [
      'mrn,family,given,birth_date,sex',
      '1,Doe,Jo,2000-01-01,M',
      '2,Roe,Al,not a date,F',
      '3,Poe,Ed,2000-01-03',
      ',,,,',
      '4,Loe,Ann,2000-01-04,F',
    ].join('\n');
    const roster = readRoster(text, context);
    expect(roster.problems).toEqual([{ line: 4, message: 'the row has 4 cells, the header 5' }]);
    expect(roster.rows.map((r) => [r.line, r.errors.length, r.plan?.resources[0].identifiers[0].value])).toEqual([
      [2, 0, '1'],
      [3, 1, undefined],
      [6, 0, '4'],
    ]);
    // Each row's plan is the same as when it is read alone.
    const alone = readRoster('mrn,family,given,birth_date,sex\n\n\n\n\n4,Loe,Ann,2000-01-04,F\n', context);
    expect(alone.rows[0]).toEqual(roster.rows[2]);
  });

  test('a repeated column is a problem; rows are refused rather than read from a guessed column', () => {
    const roster = readRoster('mrn,family,given,birth_date,sex,MRN\n1,Doe,Jo,2000-01-01,M,2\n', context);
    expect(roster.problems).toEqual([{ line: 1, message: 'column mrn appears 2 times (columns 1, 6)' }]);
    expect(roster.rows[0].errors).toEqual(['line 2: column mrn appears more than once in the header']);
  });

  test('a file without a header row: nothing mapped, no value echoed', () => {
    const roster = readRoster('100234,NSH,KOWALSKI,ANNA,1968-04-12,F\n', context);
    expect(roster.rows).toEqual([]);
    expect(roster.warnings).toEqual([]);
    expect(roster.problems).toHaveLength(1);
    expect(JSON.stringify(roster)).not.toContain('KOWALSKI');
  });

  test('an empty file', () => {
    expect(readRoster('\uFEFF', context)).toEqual({ rows: [], problems: [{ line: 1, message: 'the file has no header row' }], warnings: [] });
  });

  test('BOM and CRLF, as spreadsheets export', () => {
    const roster = readRoster('\uFEFFmrn,family,given,birth_date,sex\r\n1,Doe,Jo,2000-01-01,M\r\n', context);
    expect(roster.rows[0].errors).toEqual([]);
  });

  test('mapRosterRow works on parseCsv output directly', () => {
    const table = parseCsv('mrn,family,given,birth_date,sex\n1,Doe,Jo,2000-01-01,M\n');
    expect('plan' in mapRosterRow(table.rows[0], table.header, context)).toBe(true);
  });
});

describe('cell formats', () => {
  test('dates: YYYY-MM-DD and YYYYMMDD calendar dates only', () => {
    expect(rosterDate('2024-02-29')).toBe('2024-02-29');
    expect(rosterDate('20240229')).toBe('2024-02-29');
    expect(rosterDate('2023-02-29')).toBeUndefined();
    expect(rosterDate('2024-0229')).toBeUndefined();
    expect(rosterDate('2024-1-5')).toBeUndefined();
    expect(rosterDate('0000-01-01')).toBeUndefined();
  });

  test('sex: HL7 table 0001 codes and FHIR gender codes', () => {
    expect(['M', 'f', 'O', 'U', 'A', 'N', 'Female', 'unknown', 'X', ''].map(rosterGender)).toEqual([
      'male',
      'female',
      'other',
      'unknown',
      'other',
      'unknown',
      'female',
      'unknown',
      undefined,
      undefined,
    ]);
  });
});

describe('the same patient by roster and by HL7 ADT', () => {
  // IN1-3 with assigning authority AETNA, so the HL7 payer id has the same system as the roster's.
  const er7 = readFileSync(join(ROOT, 'test', 'corpus', 'adt', 'northside-a01-admit.hl7'), 'utf8').replace('|AETNA60054|', '|AETNA60054^^^AETNA|');

  function hl7Plan(): MessagePlan {
    const message = readHl7Message(er7);
    const header = readMessageHeader(message);
    const mapper = findMessageMapper(header);
    if (!mapper) {
      throw new Error('no ADT mapper');
    }
    return mapper(message, new MappingContext(header, config));
  }

  const csv = [HEADER, GOOD_ROSTER.split('\r\n')[1]].join('\n');

  test('the roster Patient matches the HL7 Patient by the same identifier', () => {
    const [hl7Patient] = planned<Patient>(hl7Plan(), 'Patient');
    const [rosterPatient] = planned<Patient>(readRoster(csv, context).rows[0].plan, 'Patient');
    expect(hl7Patient.identifiers[0]).toEqual({ system: NORTHSIDE_MRN, value: '100234', type: MR });
    expect(rosterPatient.identifiers).toEqual([hl7Patient.identifiers[0]]);
    expect(rosterPatient.key).toBe(hl7Patient.key);
  });

  test('the roster Coverage and payer are the ones IN1 plans', () => {
    const hl7 = hl7Plan();
    const roster = readRoster(csv, context).rows[0].plan;
    const hl7Coverage = planned<Coverage>(hl7, 'Coverage').find((c) => c.resource.subscriberId === 'W2298871401');
    const [rosterCoverage] = planned<Coverage>(roster, 'Coverage');
    expect(rosterCoverage.identifiers).toEqual(hl7Coverage?.identifiers);
    expect(rosterCoverage.key).toBe(hl7Coverage?.key);
    const hl7Payer = planned<Organization>(hl7, 'Organization').find((o) => o.identifiers[0].value === 'AETNA60054');
    const [rosterPayer] = planned<Organization>(roster, 'Organization');
    expect(rosterPayer.identifiers).toEqual(hl7Payer?.identifiers);
  });
});

describe('docs/file-formats.md', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'file-formats.md'), 'utf8');

  test('documents exactly the columns the code reads', () => {
    // The roster section only: other sections have tables too.
    const section = doc.slice(doc.indexOf('## CSV patient roster'), doc.indexOf('\n## ', doc.indexOf('## CSV patient roster') + 1));
    const documented = [...section.matchAll(/^\| `([a-z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(documented).toEqual([...ROSTER_COLUMNS]);
    for (const column of REQUIRED_COLUMNS) {
      expect(doc).toContain(`| \`${column}\` | required |`);
    }
  });

  test('the example roster reads without problems or errors', () => {
    const example = /```csv\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    const roster = readRoster(example, { config, sender: 'docs' });
    expect(roster.problems).toEqual([]);
    expect(roster.warnings).toEqual([]);
    expect(roster.rows.map((r) => [r.errors, r.warnings])).toEqual([
      [[], []],
      [[], []],
    ]);
  });
});
