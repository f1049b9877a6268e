import type { Hl7Segment } from '@medplum/core';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseField } from '../../hl7/fields.ts';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { addMinutes, durationMinutes, minutesPerUnit, resourceTiming } from './ai-timing.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const AIP_FIELDS = { start: 6, offset: 7, offsetUnits: 8, duration: 9, durationUnits: 10 };

function aip(line: string): { segment: Hl7Segment; ctx: MappingContext } {
  const message = readHl7Message(`MSH|^~\\&|CADENCE|NORTHSIDE|HUB|HUB|20240318090512||SIU^S12|1|P|2.5.1\r${line}`);
  return { segment: message.getSegment('AIP') as Hl7Segment, ctx: new MappingContext(readMessageHeader(message), config) };
}

describe('addMinutes', () => {
  test('keeps the offset, crosses days and months', () => {
    expect(addMinutes('2024-03-25T10:00:00-05:00', 30)).toBe('2024-03-25T10:30:00-05:00');
    expect(addMinutes('2024-02-29T23:45:00+01:00', 30)).toBe('2024-03-01T00:15:00+01:00');
    expect(addMinutes('2024-03-25T10:00:00Z', 0.5)).toBe('2024-03-25T10:00:30Z');
    expect(addMinutes('2024-03-25T10:00:00.250-05:00', -60)).toBe('2024-03-25T09:00:00-05:00');
  });

  test('a date without a time cannot be shifted', () => {
    expect(addMinutes('2024-03-25', 30)).toBeUndefined();
  });
});

describe('durations', () => {
  test('time units: HL7/ANSI codes, UCUM, and minutes by default', () => {
    const units = (text: string): number | undefined => minutesPerUnit(parseField(text, readHl7Message('MSH|^~\\&|A').context)[0]);
    expect(units('MIN^minutes^ANS+')).toBe(1);
    expect(units('min^minute^UCUM')).toBe(1);
    expect(units('H')).toBe(60);
    expect(units('h^hour^UCUM')).toBe(60);
    expect(units('S')).toBe(1 / 60);
    expect(units('D')).toBe(1440);
    expect(units('X9^Minutes^L')).toBe(1);
    expect(units('mL')).toBeUndefined();
    expect(minutesPerUnit(undefined)).toBe(1);
  });

  test('an amount that is not a number is reported', () => {
    const { ctx } = aip('AIP|1');
    expect(durationMinutes('', undefined, ctx, { segment: 'AIP', field: 9 })).toBeUndefined();
    expect(durationMinutes('thirty', undefined, ctx, { segment: 'AIP', field: 9 })).toBeUndefined();
    expect(ctx.warnings).toHaveLength(1);
  });
});

describe('resourceTiming', () => {
  test('start plus duration; the sender zone applies to times without an offset', () => {
    const { segment, ctx } = aip('AIP|1|A|123^Doe^Jane|||20240325100000|||45|MIN');
    expect(resourceTiming(segment, AIP_FIELDS, undefined, ctx, 1)).toEqual({ start: '2024-03-25T10:00:00-05:00', end: '2024-03-25T10:45:00-05:00' });
  });

  test('without a start, the appointment start plus the offset', () => {
    const { segment, ctx } = aip('AIP|1|A|123^Doe^Jane||||15|MIN|30|MIN');
    expect(resourceTiming(segment, AIP_FIELDS, '2024-03-25T10:00:00-05:00', ctx, 1)).toEqual({
      start: '2024-03-25T10:15:00-05:00',
      end: '2024-03-25T10:45:00-05:00',
    });
    expect(resourceTiming(segment, AIP_FIELDS, undefined, ctx, 1)).toEqual({});
  });

  test('a start without a time is not an instant: dropped with a warning', () => {
    const { segment, ctx } = aip('AIP|1|A|123^Doe^Jane|||20240325|||30');
    expect(resourceTiming(segment, AIP_FIELDS, undefined, ctx, 2)).toEqual({});
    expect(ctx.warnings[0].location).toEqual({ segment: 'AIP', sequence: 2, field: 6 });
  });
});
