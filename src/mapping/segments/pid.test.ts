import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { MappingError } from '../plan.ts';
import { administrativeGender, mapPatient, patientLink, preferredIdentifier } from './pid.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function patient(pid: string): ReturnType<typeof mapPatient> {
  const message = readHl7Message(`MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261105141000||ADT^A08|1|P|2.5.1\r${pid}`);
  return mapPatient(message.getSegment('PID'), new MappingContext(readMessageHeader(message), config));
}

describe('mapPatient', () => {
  test('the MRN comes first in the lookup identifiers whatever the PID-3 order', () => {
    const plan = patient('PID|1||E9000123^^^EMPI^PI~100234^^^NSH^MR||KOWALSKI^ANNA');
    expect(plan.identifiers.map((i) => i.value)).toEqual(['100234', 'E9000123']);
    expect(plan.resource.identifier?.map((i) => i.value)).toEqual(['E9000123', '100234']);
    expect(patientLink(plan)).toEqual({
      key: 'Patient',
      identifier: plan.identifiers[0],
      token: 'https://northside.example.org/fhir/sid/mrn^100234',
    });
  });

  test('"" clears address, telecom and birth date', () => {
    const plan = patient('PID|1||100234^^^NSH^MR||KOWALSKI^ANNA||""|F|||""||""|');
    expect(plan.clear).toEqual(['birthDate', 'address', 'telecom']);
    expect(plan.resource.address).toBeUndefined();
  });

  test('an empty PID-3 (or only "") is refused', () => {
    expect(() => patient('PID|1||""||KOWALSKI^ANNA')).toThrow(MappingError);
    expect(() => patient('PID|1||^^^NSH^MR||KOWALSKI^ANNA')).toThrow('PID-3 (patient identifier list) has no identifier');
  });
});

describe('preferredIdentifier and administrativeGender', () => {
  test('first MR, else the first identifier', () => {
    const a = { system: 'a', value: '1' };
    const mr = { system: 'b', value: '2', type: { coding: [{ code: 'MR' }] } };
    expect(preferredIdentifier([a, mr])).toBe(mr);
    expect(preferredIdentifier([a])).toBe(a);
  });

  test('table 0001', () => {
    expect(administrativeGender(' f ')).toBe('female');
    expect(administrativeGender('U')).toBe('unknown');
    expect(administrativeGender('X')).toBeUndefined();
  });
});
