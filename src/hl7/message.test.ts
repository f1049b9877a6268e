import { describe, expect, test } from 'vitest';
import { reps } from './fields.ts';
import { Hl7FormatError, readHl7Message, readMessageHeader } from './message.ts';

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
