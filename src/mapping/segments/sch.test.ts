import type { Hl7Segment } from '@medplum/core';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ScheduleInfo } from './sch.ts';
import { appointmentStatus, mapSchedule } from './sch.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const SENDER_SID = 'https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/CADENCE';

/** A segment from fields by position (1-based), the rest empty. */
function segment(name: string, fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return [name, ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}

function schedule(sch: Record<number, string>, tq1?: Record<number, string>): { info: ScheduleInfo; ctx: MappingContext } {
  const lines = [segment('SCH', sch), ...(tq1 ? [segment('TQ1', tq1)] : [])];
  const message = readHl7Message(`MSH|^~\\&|CADENCE|NORTHSIDE|HUB|HUB|20240318090512||SIU^S12|1|P|2.5.1\r${lines.join('\r')}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  return { info: mapSchedule(message.getSegment('SCH') as Hl7Segment, message.getSegment('TQ1'), ctx), ctx };
}

describe('mapSchedule', () => {
  test('the filler id is the match key; both ids are recorded, scoped to the sender', () => {
    const { info } = schedule({ 1: 'APT-1', 2: '99342', 6: 'NEW^New^L' });
    expect(info.identifiers).toEqual([
      { system: `${SENDER_SID}/appointment-filler`, value: '99342', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'FILL' }] } },
      { system: `${SENDER_SID}/appointment-placer`, value: 'APT-1', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC' }] } },
    ]);
    expect(info.matchIdentifiers).toEqual([info.identifiers[0]]);
    expect(info.eventReason?.coding?.[0].code).toBe('NEW');
  });

  test('without a filler id the placer id is the key; without either the message is refused', () => {
    expect(schedule({ 1: 'APT-1' }).info.matchIdentifiers[0].value).toBe('APT-1');
    expect(() => schedule({ 6: 'NEW' })).toThrow('SCH-1 (placer appointment id) and SCH-2 (filler appointment id) are both missing');
  });

  test('an authority with an ISO OID gives an urn:oid system', () => {
    const { info } = schedule({ 2: 'A-66^SUMMITSCHED^1.2.840.114350.1.13^ISO' });
    expect(info.identifiers[0].system).toBe('urn:oid:1.2.840.114350.1.13');
  });

  test('reason, type, duration and orders', () => {
    const { info } = schedule({
      2: '1',
      7: 'ROUTINE^Routine appointment',
      8: 'Normal',
      9: '1.5',
      10: 'H^hours^ANS+',
      26: 'ORD-1^NSHORD',
      27: 'F-9',
    });
    expect(info.elements).toMatchObject({
      reasonCode: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0276', code: 'ROUTINE' }] }],
      appointmentType: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0277', code: 'Normal' }] },
      minutesDuration: 90,
    });
    expect(info.elements.basedOn).toEqual([
      { type: 'ServiceRequest', identifier: expect.objectContaining({ system: 'https://northside.example.org/fhir/sid/placer-order', value: 'ORD-1' }) },
      { type: 'ServiceRequest', identifier: expect.objectContaining({ value: 'F-9' }) },
    ]);
  });

  test('times from SCH-11 (TQ): start and end, or start plus a TQ duration', () => {
    expect(schedule({ 2: '1', 11: '^^30^20240325100000-0500^20240325103000-0500' }).info.timing).toEqual({
      start: '2024-03-25T10:00:00-05:00',
      end: '2024-03-25T10:30:00-05:00',
    });
    expect(schedule({ 2: '1', 11: '^^M45^200403121030' }).info.timing).toEqual({
      start: '2004-03-12T10:30:00-06:00',
      end: '2004-03-12T11:15:00-06:00',
    });
  });

  test('times from TQ1 (v2.5+): start and end, or start plus the occurrence duration', () => {
    expect(schedule({ 2: '1' }, { 1: '1', 7: '20241010083000-0600', 8: '20241010091500-0600' }).info.timing).toEqual({
      start: '2024-10-10T08:30:00-06:00',
      end: '2024-10-10T09:15:00-06:00',
    });
    expect(schedule({ 2: '1' }, { 1: '1', 7: '20241010083000-0600', 13: '20^min&minute&UCUM' }).info.timing).toEqual({
      start: '2024-10-10T08:30:00-06:00',
      end: '2024-10-10T08:50:00-06:00',
    });
  });

  test('"" in SCH-7, SCH-8 and SCH-9 clears those elements; SCH-25 is read as sent', () => {
    const { info } = schedule({ 2: '1', 7: '""', 8: '""', 9: '""', 25: 'Booked^Booked^HL70278' });
    expect(info.clear).toEqual(['reasonCode', 'appointmentType', 'minutesDuration']);
    expect(info.elements).toEqual({});
    expect(info.fillerStatus).toBe('Booked');
  });

  test('an unreadable duration is dropped with a warning', () => {
    const { info, ctx } = schedule({ 2: '1', 9: '30', 10: 'furlongs' });
    expect(info.elements.minutesDuration).toBeUndefined();
    expect(ctx.warnings[0].location).toEqual({ segment: 'SCH', field: 9 });
  });
});

describe('appointmentStatus', () => {
  test('HL7 table 0278 → Appointment.status (IG FillerStatusCodes map)', () => {
    expect(['Pending', 'Waitlist', 'Booked', 'Overbook', 'Started', 'Complete', 'Cancelled', 'Deleted', 'Noshow'].map(appointmentStatus)).toEqual([
      'pending',
      'waitlist',
      'booked',
      'booked',
      'checked-in',
      'fulfilled',
      'cancelled',
      'entered-in-error',
      'noshow',
    ]);
    expect(appointmentStatus('Blocked')).toBeUndefined();
    expect(appointmentStatus(undefined)).toBeUndefined();
  });
});
