import { describe, expect, test } from 'vitest';
import { reps } from './fields.ts';
import { Hl7FormatError, readHl7Message, readMessageHeader, standInForUnreadable } from './message.ts';

describe('readHl7Message', () => {
  test('accepts a BOM, LF and CRLF endings, blank lines and trailing empty segments', () => {
    const text = '\ufeffMSH|^~\\&|A|B|C|D|20240101||ADT^A08^ADT_A01|X|P|2.3\r\nEVN|A08\n\nPID|1||1^^^N^MR  \r\n\r\n';
    const message = readHl7Message(text);
    expect(message.segments.map((s) => s.name)).toEqual(['MSH', 'EVN', 'PID']);
    expect(readMessageHeader(message)).toMatchObject({ messageCode: 'ADT', triggerEvent: 'A08', messageStructure: 'ADT_A01', controlId: 'X', version: '2.3' });
  });

  test('honours non-default delimiters and a short MSH-2', () => {
    const message = readHl7Message('MSH#$*@!#APP#FAC###20240101##ORU$R01#Y#P#2.5\rPID###7$$$N$MR*8$$$M@T@K$MR');
    expect(reps(message.getSegment('PID'), 3).map((r) => [r.get(1), r.get(4)])).toEqual([
      ['7', 'N'],
      ['8', 'M!K'],
    ]);
    expect(readMessageHeader(message)).toMatchObject({ sendingApplication: 'APP', messageCode: 'ORU', triggerEvent: 'R01' });
    const short = readHl7Message('MSH|^~|A|B|||20240101||ADT^A01|1|P|2.2');
    expect(short.context.escapeCharacter).toBe('\\');
    expect(short.context.subcomponentSeparator).toBe('&');
  });

  test('refuses what is not a message', () => {
    expect(() => readHl7Message('hello')).toThrow(Hl7FormatError);
    expect(() => readHl7Message('MSH')).toThrow(Hl7FormatError);
    expect(() => readHl7Message('MSH|^~\\&|A\rnot a segment')).toThrow(/Segment 2/);
  });
});

describe('delimiters and header values', () => {
  test('refuses letters, digits, spaces and repeated characters as delimiters', () => {
    for (const msh2 of ['S~\\&', '^M\\&', 'H)<%e', '^^\\&', '^ \\&', '^~\\&#!', '']) {
      expect(() => readHl7Message(`MSH|${msh2}|A|B|C|D|20240101||ADT^A01|X1|P|2.5\rPID|1`), msh2).toThrow(Hl7FormatError);
    }
    expect(readHl7Message('MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|X1|P|2.7\rPID|1').context.subcomponentSeparator).toBe('&');
  });

  test('header values lose control characters and edge spaces (they go to the ledger and logs)', () => {
    const header = readMessageHeader(readHl7Message('MSH|^~\\&| APP |FAC\u0007|||20240101||ADT^A0\u00078|X\u0010Y|P|2.5'));
    expect(header).toMatchObject({ sendingApplication: 'APP', sendingFacility: 'FAC', triggerEvent: 'A08', controlId: 'XY' });
  });
});

describe('standInForUnreadable', () => {
  test('answers with default delimiters and the sender\'s MSH-10, whatever MSH-2 was', () => {
    for (const text of ['MSH|S~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5\rPID|1', 'MSH||A|B|C|D|20240101||ADT^A01|X1|P|2.5', '\ufeff MSH|H)<%e|A|B|C|D|20240101||ADT^A01|X1|P|2.5']) {
      const ack = standInForUnreadable(text).buildAck({ ackCode: 'AR' });
      expect(ack.context.getMsh2()).toBe('^~\\&');
      expect(ack.getSegment('MSA')?.getField(2)?.toString()).toBe('X1');
      expect(ack.getSegment('MSH')?.getField(5)?.toString()).toBe('A');
      expect(ack.getSegment('MSH')?.getField(9)?.toString()).toBe('ACK^A01');
      expect(readMessageHeader(standInForUnreadable(text))).toMatchObject({ messageCode: 'ADT', triggerEvent: 'A01', controlId: 'X1' });
    }
  });

  test('escapes what would be delimiters and leaves MSA-2 empty when there is no usable field separator', () => {
    expect(standInForUnreadable('MSH#x#A|B#C#D#E#F##G#I^D#P#2.5').getSegment('MSH')?.toString()).toBe('MSH|^~\\&|A\\F\\B|C|D|E|F||G|I\\S\\D|P|2.5');
    for (const text of ['MSH', 'MSHA|B', 'hello', '', 'MSH\r|^~\\&']) {
      expect(standInForUnreadable(text).buildAck().getSegment('MSA')?.getField(2)?.toString()).toBe('');
    }
  });
});
