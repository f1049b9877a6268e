import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../hl7/message.ts';
import { MappingContext } from './context.ts';
import { at, mapSubject, readOrderGroups } from './groups.ts';
import type { ResourcePlan } from './plan.ts';

function read(...segments: string[]): ReturnType<typeof readOrderGroups> {
  return readOrderGroups(readHl7Message(['MSH|^~\\&|LAB|ACMELAB|HUB|NS|20261115||ORU^R01|1|P|2.5.1', ...segments].join('\r')));
}

const names = (refs: { segment: { name: string } }[]): string[] => refs.map((r) => r.segment.name);

describe('readOrderGroups', () => {
  test('an ORC applies to its own OBR only; an OBR without ORC opens a group without one', () => {
    const { patients } = read('PID|1||1^^^NSH^MR', 'ORC|RE|P1', 'OBR|1|P1', 'OBX|1|NM|A||1', 'ORC|RE|P2', 'OBR|2|P2', 'OBR|3|P3', 'OBX|1|NM|B||2');
    expect(patients).toHaveLength(1);
    const orders = patients[0].orders;
    expect(orders).toHaveLength(3);
    expect(orders.map((o) => [o.orc?.sequence, o.obr?.sequence])).toEqual([
      [1, 1],
      [2, 2],
      [undefined, 3],
    ]);
    expect(orders[2].observations.map((o) => o.obx.sequence)).toEqual([2]);
  });

  test('OBX after an SPM belong to that specimen; NTE go to the segment they follow', () => {
    const { patients } = read(
      'PID|1||1^^^NSH^MR',
      'OBR|1|P1',
      'NTE|1||report comment',
      'TQ1|1',
      'OBX|1|NM|A||1',
      'NTE|1||result comment',
      'SPM|1|S1',
      'NTE|1||specimen comment',
      'OBX|1|NM|VOL||5',
      'SPM|2|S2',
      'OBX|1|NM|VOL||6'
    );
    const [order] = patients[0].orders;
    expect(names(order.notes)).toEqual(['NTE']);
    expect(order.timing).toHaveLength(1);
    expect(order.observations).toHaveLength(1);
    expect(order.observations[0].notes.map((n) => n.sequence)).toEqual([2]);
    expect(order.specimens.map((s) => [s.spm.sequence, s.observations.map((o) => o.obx.sequence), s.notes.length])).toEqual([
      [1, [2], 1],
      [2, [3], 0],
    ]);
  });

  test('specimen-first (OML^O33): the SPM opens the order its ORC and OBR join; OBX after the OBR are the order\'s', () => {
    const { patients } = read('PID|1||1^^^NSH^MR', 'SPM|1|S1', 'OBX|1|NM|VOL||5', 'ORC|NW|P1', 'OBR|1|P1', 'OBX|1|NM|A||1');
    const [order, ...rest] = patients[0].orders;
    expect(rest).toHaveLength(0);
    expect([order.orc?.sequence, order.obr?.sequence]).toEqual([1, 1]);
    expect(order.specimens.map((s) => [s.spm.sequence, s.observations.map((o) => o.obx.sequence)])).toEqual([[1, [1]]]);
    expect(order.observations.map((o) => o.obx.sequence)).toEqual([2]);
  });

  test('a PID after orders starts the next patient group; visit segments stay with their patient', () => {
    const { patients } = read('PID|1||1^^^NSH^MR', 'PV1|1|I', 'OBR|1|P1', 'PV1|1|O', 'PID|2||2^^^NSH^MR', 'OBR|1|P2');
    expect(patients).toHaveLength(2);
    expect(patients[0].pv1?.sequence).toBe(1);
    expect(patients[1].pid?.sequence).toBe(2);
    expect(patients[1].orders).toHaveLength(1);
  });

  test('OML: TQ1 between ORC and OBR stays in the ORC group; DG1 joins the order', () => {
    const { patients } = read('PID|1||1^^^NSH^MR', 'ORC|NW|P1', 'TQ1|1', 'OBR|1|P1', 'DG1|1||E11.9^^I10', 'ORC|NW|P2', 'TQ1|1', 'OBR|1|P2');
    const orders = patients[0].orders;
    expect(orders.map((o) => [o.orc?.sequence, o.obr?.sequence, o.timing.length, o.diagnoses.length])).toEqual([
      [1, 1, 1, 1],
      [2, 2, 1, 0],
    ]);
  });

  test('a non-lab order detail (RXO) is kept apart; patient-level OBX are not put in an order', () => {
    const { patients } = read('PID|1||1^^^NSH^MR', 'OBX|1|NM|WT||70', 'ORC|NW|RX1', 'RXO|123', 'ORC|NW|P1', 'OBR|1|P1');
    expect(patients[0].observations).toHaveLength(1);
    expect(patients[0].orders.map((o) => [o.otherDetail?.segment.name, o.obr?.sequence])).toEqual([
      ['RXO', undefined],
      [undefined, 1],
    ]);
  });

  test('at() gives the ERR-2 location', () => {
    const { patients } = read('PID|1||1^^^NSH^MR', 'OBR|1|P1', 'OBR|2|P2');
    const obr = patients[0].orders[1].obr;
    expect(obr && at(obr, 3)).toEqual({ segment: 'OBR', sequence: 2, field: 3 });
  });
});

describe('mapSubject', () => {
  const message = readHl7Message(
    [
      'MSH|^~\\&|LAB|ACMELAB|HUB|NS|20261115||ORU^R01|1|P|2.5.1',
      'PID|1||100^^^NSH^MR||Doe^Jo',
      'PV1|1|I|||||||||||||||||V1^^^NSHV^VN',
      'OBR|1|P1',
      'PID|2||100^^^NSH^MR||Doe^Jo',
      'PV1|1|I|||||||||||||||||V1^^^NSHV^VN',
      'OBR|1|P2',
    ].join('\r')
  );
  const ctx = new MappingContext(readMessageHeader(message));

  test('Patient and Encounter are filled, not overlaid; the same patient twice is planned once', () => {
    const plans: ResourcePlan[] = [];
    const { patients } = readOrderGroups(message);
    const first = mapSubject(patients[0], 0, ctx, plans);
    const second = mapSubject(patients[1], 1, ctx, plans);
    expect(first).toEqual({ patientKey: 'Patient', encounterKey: 'Encounter' });
    expect(second).toEqual(first);
    expect(plans.filter((p) => p.resource.resourceType === 'Patient')).toHaveLength(1);
    expect(plans.every((p) => p.merge === 'fill' && !p.clear)).toBe(true);
  });
});
