import type { Patient } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { toDemographics } from './demographics.ts';

const valid: Patient = {
  resourceType: 'Patient',
  name: [{ use: 'official', family: 'Rivera', given: ['Ana', 'Maria'] }],
  birthDate: '1984-02-29',
  gender: 'female',
  address: [{ line: ['12 Elm St', 'Apt 4'], city: 'Springfield', state: 'il', postalCode: '62704-1234' }],
  telecom: [
    { system: 'phone', value: '+1 (217) 555-0142' },
    { system: 'email', value: 'ana@example.org' },
    { system: 'phone', value: '555-0100' },
  ],
  identifier: [{ system: 'http://hl7.org/fhir/sid/us-ssn', value: '123-45-6789' }],
};

describe('toDemographics', () => {
  test('maps a complete Patient the way Metriport stores it', () => {
    expect(toDemographics(valid, '2026-01-01')).toEqual({
      ok: true,
      demographics: {
        firstName: 'Ana Maria',
        lastName: 'Rivera',
        dob: '1984-02-29',
        genderAtBirth: 'F',
        address: [{ addressLine1: '12 Elm St', addressLine2: 'Apt 4', city: 'Springfield', state: 'IL', zip: '62704', country: 'USA' }],
        contact: [{ phone: '2175550142', email: 'ana@example.org' }],
        personalIdentifiers: [{ type: 'ssn', value: '123456789' }],
      },
    });
  });

  test('sends no contact without a usable phone or email', () => {
    const result = toDemographics({ ...valid, telecom: [{ system: 'phone', value: '555' }, { system: 'email', value: 'mailto:x' }] }, '2026-01-01');
    expect(result.ok && result.demographics.contact).toBeUndefined();
  });

  test('lists every problem, naming elements but never values', () => {
    const result = toDemographics(
      {
        resourceType: 'Patient',
        name: [{ given: ['Ana'] }],
        birthDate: '1984-02',
        address: [{ line: ['1 Main'], city: 'Toronto', state: 'ON', postalCode: 'M5V 2T6', country: 'US' }],
      },
      '2026-01-01'
    );
    expect(result).toEqual({
      ok: false,
      problems: [
        'Patient.name has no family name',
        'Patient.birthDate is partial: Metriport needs year, month and day',
        'Patient.gender is missing',
        'Patient.address[0].state is not a US state or territory code',
        'Patient.address[0].postalCode is not a valid 5-digit US zip',
      ],
    });
    expect(JSON.stringify(result)).not.toMatch(/Ana|1984|Toronto|M5V/);
  });

  test('uses the current US address when another one is old or foreign', () => {
    const result = toDemographics(
      {
        ...valid,
        address: [
          { use: 'old', line: ['9 Gone Rd'], city: 'X', state: 'TX', postalCode: '73301' },
          { line: ['1 Rue'], city: 'Paris', country: 'France' },
          { line: ['5 Oak Ave'], city: 'Austin', state: 'TX', postalCode: '78701' },
        ],
      },
      '2026-01-01'
    );
    expect(result.ok && result.demographics.address).toEqual([{ addressLine1: '5 Oak Ave', city: 'Austin', state: 'TX', zip: '78701', country: 'USA' }]);
  });

  test('refuses birth dates before 1900 or in the future, and deny-listed zips', () => {
    expect(toDemographics({ ...valid, birthDate: '1899-12-31' }, '2026-01-01').ok).toBe(false);
    expect(toDemographics({ ...valid, birthDate: '2026-01-02' }, '2026-01-01').ok).toBe(false);
    expect(toDemographics({ ...valid, address: [{ line: ['1 A'], city: 'B', state: 'NY', postalCode: '00000' }] }, '2026-01-01')).toEqual({
      ok: false,
      problems: ['Patient.address[0].postalCode is not a valid 5-digit US zip'],
    });
    expect(toDemographics({ ...valid, address: [] }, '2026-01-01')).toEqual({ ok: false, problems: ['Patient.address: no current address'] });
  });
});
