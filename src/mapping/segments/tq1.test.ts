import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { readOrderGroups } from '../groups.ts';
import { orderTiming } from './tq1.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function timing(...segments: string[]): ReturnType<typeof orderTiming> {
  const message = readHl7Message(['MSH|^~\\&|NSEHR|NORTHSIDE|LABSYS|ACMELAB|20261114||OML^O21|1|P|2.5.1', 'PID|1||1^^^NSH^MR', ...segments].join('\r'));
  const ctx = new MappingContext(readMessageHeader(message), config);
  const order = readOrderGroups(message).patients[0].orders[0];
  return orderTiming(order.timing, order.obr, order.orc, ctx);
}

describe('orderTiming', () => {
  test('TQ1-9 priority and TQ1-7 start', () => {
    expect(timing('ORC|NW|P1', 'TQ1|1||||||20261115070000||S^Stat^HL70485', 'OBR|1|P1||X')).toEqual({
      priority: 'stat',
      occurrenceDateTime: '2026-11-15T07:00:00-06:00',
    });
  });

  test('TQ1-7 and TQ1-8 → occurrencePeriod', () => {
    expect(timing('ORC|NW|P1', 'TQ1|1||||||20261115070000|20261115080000|R', 'OBR|1|P1||X')).toEqual({
      priority: 'routine',
      occurrencePeriod: { start: '2026-11-15T07:00:00-06:00', end: '2026-11-15T08:00:00-06:00' },
    });
  });

  test('without TQ1: OBR-27 (TQ), else ORC-7', () => {
    const obr27 = `OBR|1|P1||X${'|'.repeat(23)}^^^20261115060000^^A`;
    expect(timing('ORC|NW|P1', obr27)).toEqual({ priority: 'asap', occurrenceDateTime: '2026-11-15T06:00:00-06:00' });
    expect(timing('ORC|NW|P1|||||^^^20261115060000^^S', 'OBR|1|P1||X')).toEqual({ priority: 'stat', occurrenceDateTime: '2026-11-15T06:00:00-06:00' });
  });

  test('last fallbacks OBR-5 priority and OBR-6 requested date/time; unknown priorities are dropped', () => {
    expect(timing('ORC|NW|P1', 'OBR|1|P1||X|R|20261115090000')).toEqual({ priority: 'routine', occurrenceDateTime: '2026-11-15T09:00:00-06:00' });
    expect(timing('ORC|NW|P1', 'TQ1|1||||||||PRN')).toEqual({});
  });
});
