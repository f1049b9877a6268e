import { describe, expect, test } from 'vitest';
import { dtmToFhirDateTime, dtmToFhirInstant, dtToFhirDate, tmToFhirTime } from './datetime.ts';

describe('HL7 date/time to FHIR', () => {
  test('keeps the precision of dates', () => {
    expect(dtmToFhirDateTime('2024', undefined)).toEqual({ value: '2024' });
    expect(dtmToFhirDateTime('202402', undefined)).toEqual({ value: '2024-02' });
    expect(dtmToFhirDateTime('20240229', undefined)).toEqual({ value: '2024-02-29' });
    expect(dtToFhirDate('19800102120000')).toEqual({ value: '1980-01-02' });
  });

  test('keeps the sender offset, and fractions', () => {
    expect(dtmToFhirDateTime('202407021230-0500', undefined)).toEqual({ value: '2024-07-02T12:30:00-05:00' });
    expect(dtmToFhirDateTime('20240702123045.1234+0530', undefined)).toEqual({ value: '2024-07-02T12:30:45.1234+05:30' });
    expect(dtmToFhirDateTime('202407021230+05', undefined)).toEqual({ value: '2024-07-02T12:30:00+05:00' });
  });

  test('applies the sender time zone, daylight saving included, when there is no offset', () => {
    expect(dtmToFhirDateTime('20240102123000', 'America/Chicago')).toEqual({ value: '2024-01-02T12:30:00-06:00' });
    expect(dtmToFhirDateTime('20240702123000', 'America/Chicago')).toEqual({ value: '2024-07-02T12:30:00-05:00' });
    expect(dtmToFhirDateTime('2024070212', 'Europe/Berlin')).toEqual({ value: '2024-07-02T12:00:00+02:00' });
  });

  test('refuses what FHIR cannot represent', () => {
    expect(dtmToFhirDateTime('20230229', undefined)).toHaveProperty('error');
    expect(dtmToFhirDateTime('20240102123000', undefined)).toHaveProperty('error');
    expect(dtmToFhirDateTime('20240102123000', 'Mars/Base')).toHaveProperty('error');
    expect(dtmToFhirDateTime('2024-01-02', undefined)).toHaveProperty('error');
    expect(dtmToFhirDateTime('20241302', undefined)).toHaveProperty('error');
    expect(dtmToFhirInstant('20240102', 'UTC')).toHaveProperty('error');
  });

  test('times', () => {
    expect(tmToFhirTime('0730')).toEqual({ value: '07:30:00' });
    expect(tmToFhirTime('073015.5-0500')).toEqual({ value: '07:30:15.5' });
    expect(tmToFhirTime('2561')).toHaveProperty('error');
  });
});
