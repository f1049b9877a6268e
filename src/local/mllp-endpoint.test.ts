import { describe, expect, test } from 'vitest';
import { parseMllpAddress, shouldSendAppLevelAck } from './mllp-endpoint.ts';

describe('parseMllpAddress', () => {
  test('reads the port and the stock agent options', () => {
    expect(parseMllpAddress('mllp://0.0.0.0:2575?encoding=latin1&enhanced=true&appLevelAck=er&assignSeqNo=TRUE&messagesPerMin=60')).toEqual({
      settings: {
        address: 'mllp://0.0.0.0:2575?encoding=latin1&enhanced=true&appLevelAck=er&assignSeqNo=TRUE&messagesPerMin=60',
        configuredPort: 2575,
        encoding: 'latin1',
        enhancedMode: 'standard',
        appLevelAck: 'ER',
        assignSeqNo: true,
        messagesPerMin: 60,
      },
      warnings: [],
    });
    expect(parseMllpAddress('mllp://host:2576?enhanced=aa').settings).toMatchObject({ enhancedMode: 'aaMode', appLevelAck: 'AL', encoding: 'utf-8' });
  });

  test('falls back to the stock defaults on invalid options, with warnings', () => {
    const parsed = parseMllpAddress('mllp://0.0.0.0:2575?enhanced=yes&appLevelAck=XX&messagesPerMin=fast');
    expect(parsed.settings).toMatchObject({ enhancedMode: undefined, appLevelAck: 'AL', messagesPerMin: undefined });
    expect(parsed.warnings).toHaveLength(3);
  });

  test('refuses what cannot be an MLLP listener', () => {
    expect(parseMllpAddress(undefined).error).toBe('empty address');
    expect(parseMllpAddress('not a url').error).toMatch(/not a URL/);
    expect(parseMllpAddress('dicom://0.0.0.0:104').error).toMatch(/only mllp/);
    expect(parseMllpAddress('mllp://host').error).toBe('address has no port');
  });
});

describe('shouldSendAppLevelAck', () => {
  test('follows the stock agent table', () => {
    expect(shouldSendAppLevelAck({ appLevelAck: 'NE' }, 'AA')).toBe(true);
    expect(shouldSendAppLevelAck({ enhancedMode: 'aaMode', appLevelAck: 'AL' }, 'AE')).toBe(false);
    expect(shouldSendAppLevelAck({ enhancedMode: 'standard', appLevelAck: 'AL' }, 'AA')).toBe(true);
    expect(shouldSendAppLevelAck({ enhancedMode: 'standard', appLevelAck: 'NE' }, 'AE')).toBe(false);
    expect(shouldSendAppLevelAck({ enhancedMode: 'standard', appLevelAck: 'ER' }, 'AA')).toBe(false);
    expect(shouldSendAppLevelAck({ enhancedMode: 'standard', appLevelAck: 'ER' }, 'AR')).toBe(true);
    expect(shouldSendAppLevelAck({ enhancedMode: 'standard', appLevelAck: 'SU' }, 'AA')).toBe(true);
    expect(shouldSendAppLevelAck({ enhancedMode: 'standard', appLevelAck: 'SU' }, 'AE')).toBe(false);
  });
});
