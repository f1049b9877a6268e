import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { MappingError } from '../plan.ts';
import { mapMerge } from './mrg.ts';
import { mapPatient } from './pid.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const MRN = 'https://northside.example.org/fhir/sid/mrn';

function merge(mrg: string | undefined): ReturnType<typeof mapMerge> {
  const text = ['MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261109100000||ADT^A40|1|P|2.5.1', 'PID|1||100234^^^NSH^MR~E9000123^^^EMPI^PI||KOWALSKI^ANNA', mrg]
    .filter(Boolean)
    .join('\r');
  const message = readHl7Message(text);
  const ctx = new MappingContext(readMessageHeader(message), config);
  return mapMerge(mapPatient(message.getSegment('PID'), ctx), message.getSegment('MRG'), ctx, 1, 'Patient/merged');
}

describe('mapMerge', () => {
  test('the survivor keeps its lookup identifiers, carries the old ones (use old) and replaces the old Patient', () => {
    const [survivor, old] = merge('MRG|100899^^^NSH^MR||||||KOWALSKA^ANNA');
    expect(survivor.identifiers.map((i) => i.value)).toEqual(['100234', 'E9000123']);
    expect(survivor.resource.identifier?.at(-1)).toMatchObject({ system: MRN, value: '100899', use: 'old' });
    expect(survivor.resource.link).toEqual([{ other: { reference: 'local:Patient/merged' }, type: 'replaces' }]);
    expect(old).toMatchObject({
      key: 'Patient/merged',
      merge: 'overlay',
      identifiers: [{ system: MRN, value: '100899' }],
      resource: { resourceType: 'Patient', active: false, link: [{ other: { reference: 'local:Patient' }, type: 'replaced-by' }], name: [{ family: 'KOWALSKA' }] },
    });
  });

  test('an identifier shared with PID-3 (an enterprise id) does not find the old Patient', () => {
    const [survivor, old] = merge('MRG|100899^^^NSH^MR~E9000123^^^EMPI^PI');
    expect(old.identifiers.map((i) => i.value)).toEqual(['100899']);
    expect(old.resource.identifier?.map((i) => i.value)).toEqual(['100899', 'E9000123']);
    expect(survivor.resource.identifier?.filter((i) => i.use === 'old').map((i) => i.value)).toEqual(['100899']);
  });

  test('missing MRG, empty MRG-1, or MRG-1 = PID-3 are refused', () => {
    expect(() => merge(undefined)).toThrow('MRG segment missing');
    expect(() => merge('MRG|^^^NSH^MR')).toThrow('MRG-1 (prior patient identifier list) has no identifier');
    expect(() => merge('MRG|100234^^^NSH^MR')).toThrow(MappingError);
  });
});
