import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { MessagePlan } from '../plan.ts';
import { MappingError } from '../plan.ts';
import { adtMappers } from './adt.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function map(event: string, ...segments: string[]): MessagePlan {
  const message = readHl7Message([`MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261104082600||ADT^${event}|1|P|2.5.1`, ...segments].join('\r'));
  const mapper = adtMappers[`ADT^${event}`];
  if (!mapper) {
    throw new Error(`no mapper for ${event}`);
  }
  return mapper(message, new MappingContext(readMessageHeader(message), config));
}

/** A segment with the given fields set (1-based positions), so tests do not count pipes. */
function seg(name: string, fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return [name, ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}

const PID = 'PID|1||100234^^^NSH^MR||KOWALSKI^ANNA||19680412|F';
const PV1 = 'PV1|1|I|4W^412^A||||||||||||||||V100^^^NSHV^VN';

describe('adtMappers', () => {
  test('exactly the supported events are registered', () => {
    expect(Object.keys(adtMappers).sort()).toEqual(
      ['A01', 'A02', 'A03', 'A04', 'A05', 'A06', 'A07', 'A08', 'A11', 'A12', 'A13', 'A14', 'A28', 'A31', 'A40', 'A60'].map((e) => `ADT^${e}`)
    );
  });

  test('event statuses', () => {
    const status = (event: string): string | undefined =>
      (map(event, 'EVN||20261104082500', PID, PV1).resources.find((r) => r.key === 'Encounter')?.resource as { status?: string } | undefined)?.status;
    expect(['A01', 'A02', 'A03', 'A04', 'A05', 'A06', 'A07', 'A08', 'A11', 'A12', 'A13', 'A14'].map(status)).toEqual([
      'in-progress', 'in-progress', 'finished', 'arrived', 'planned', 'in-progress', 'in-progress', 'unknown', 'cancelled', 'in-progress', 'in-progress', 'planned',
    ]);
  });

  test('visit events need a PV1; updates and person events do not', () => {
    expect(() => map('A03', PID)).toThrow(MappingError);
    expect(map('A08', PID).resources.map((r) => r.key)).toEqual(['Patient']);
    expect(map('A31', PID, 'PV1|1|O|4W^412^A').resources.map((r) => r.key)).toEqual(['Patient']);
  });

  test('the same diagnosis twice (admitting and final) is one Condition with two uses', () => {
    const plan = map('A03', PID, PV1, 'DG1|1||I10^HTN^I10|||A', 'DG1|2||I10^HTN^I10|||F');
    expect(plan.resources.filter((r) => r.resource.resourceType === 'Condition')).toHaveLength(1);
    const encounter = plan.resources.find((r) => r.key === 'Encounter')?.resource as { diagnosis: unknown[] };
    expect(encounter.diagnosis).toHaveLength(2);
  });

  test('an IN1 subscriber named like an NK1 references the NK1 RelatedPerson', () => {
    const plan = map('A01', PID, 'NK1|1|KOWALSKI^PIOTR|SPO', PV1, seg('IN1', { 1: '1', 2: 'PPO', 3: 'BCBS', 4: 'Blue Cross', 16: 'KOWALSKI^PIOTR', 17: 'SPO', 36: 'XYZ' }));
    const people = plan.resources.filter((r) => r.resource.resourceType === 'RelatedPerson');
    expect(people.map((p) => p.merge)).toEqual(['overlay']);
    const coverage = plan.resources.find((r) => r.resource.resourceType === 'Coverage')?.resource as { subscriber: unknown };
    expect(coverage.subscriber).toEqual({ reference: `local:${people[0].key}` });
  });

  test('A60 plans the Patient with merge fill', () => {
    const plan = map('A60', PID, 'IAM|1|DA|7980^Penicillin G^RXNORM|SV||A');
    expect(plan.resources.map((r) => [r.key, r.merge])).toEqual([
      ['Patient', 'fill'],
      ['AllergyIntolerance/http://www.nlm.nih.gov/research/umls/rxnorm^7980', 'overlay'],
    ]);
  });

  test('A40: pairs naming the same survivor share its plan; a chain is refused', () => {
    const shared = map('A40', PID, 'MRG|100899^^^NSH^MR', PID, 'MRG|100901^^^NSH^MR');
    expect(shared.resources.map((r) => r.key)).toEqual(['Patient', 'Patient/merged', 'Patient/2/merged']);
    expect(() => map('A40', PID, 'MRG|100899^^^NSH^MR', 'PID|1||100899^^^NSH^MR||KOWALSKA^ANNA', 'MRG|100777^^^NSH^MR')).toThrow(
      'A40 merges overlap'
    );
    expect(() => map('A40', 'EVN||20261104082500')).toThrow('PID segment missing');
  });

  test('mapping is deterministic', () => {
    const segments = ['EVN||20261104082500', PID, PV1, 'AL1|1|DA|^Latex', 'DG1|1||R07.9^Chest pain^I10|||A'];
    expect(JSON.stringify(map('A01', ...segments))).toBe(JSON.stringify(map('A01', ...segments)));
  });
});
