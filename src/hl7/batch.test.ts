import { describe, expect, test } from 'vitest';
import { isCompleteBatch, readBatchFile } from './batch.ts';
import { readHl7Message, readMessageHeader } from './message.ts';

const msh = (id: string, sep = '|'): string => ['MSH', '^~\\&', 'LAB', 'HOSP', 'HUB', 'HUB', '20240101115900', '', 'ADT^A01^ADT_A01', id, 'P', '2.5'].join(sep);
const pid = (n: number): string => `PID|1||${n}^^^HOSP^MR||DOE^JANE`;

/** 3 messages across 2 batches; line numbers in comments. */
const FULL = [
  'FHS|^~\\&|LAB^1.2.3^ISO|HOSP|HUB|HUB|20240101120000||FILE-0001', // 1
  'BHS|^~\\&|LAB|HOSP|HUB|HUB|20240101120000||||B-1', // 2
  msh('M1'), // 3
  pid(1), // 4
  msh('M2'), // 5
  pid(2), // 6
  'BTS|2', // 7
  'BHS|^~\\&|LAB|HOSP|HUB|HUB|20240101120000||||B-2', // 8
  msh('M3'), // 9
  pid(3), // 10
  'BTS|1', // 11
  'FTS|2', // 12
];

const controlIds = (text: string): string[] => readBatchFile(text).messages.map((m) => readMessageHeader(readHl7Message(m.text)).controlId);

describe('readBatchFile', () => {
  test('reads a full FHS/BHS/BTS/FTS file: messages, lines, positions and header values', () => {
    const file = readBatchFile(FULL.join('\r') + '\r');
    expect(file.problems).toEqual([]);
    expect(isCompleteBatch(file)).toBe(true);
    expect(file.messages).toEqual([
      { text: `${msh('M1')}\r${pid(1)}`, line: 3, index: 1 },
      { text: `${msh('M2')}\r${pid(2)}`, line: 5, index: 2 },
      { text: `${msh('M3')}\r${pid(3)}`, line: 9, index: 3 },
    ]);
    expect(file.header).toEqual({ sendingApplication: 'LAB', sendingFacility: 'HOSP', time: '20240101120000', fileId: 'FILE-0001', batchControlId: 'B-1' });
    expect(controlIds(FULL.join('\r'))).toEqual(['M1', 'M2', 'M3']);
  });

  test('reads BHS/BTS without FHS/FTS, with the sender taken from BHS', () => {
    const file = readBatchFile(FULL.slice(1, 7).join('\r'));
    expect(file.problems).toEqual([]);
    expect(file.messages.map((m) => m.line)).toEqual([2, 4]);
    expect(file.header).toEqual({ sendingApplication: 'LAB', sendingFacility: 'HOSP', time: '20240101120000', batchControlId: 'B-1' });
  });

  test('reads bare messages one after another', () => {
    const file = readBatchFile([msh('M1'), pid(1), msh('M2'), pid(2), 'PV1|1|I'].join('\r'));
    expect(isCompleteBatch(file)).toBe(true);
    expect(file.header).toBeUndefined();
    expect(file.messages.map((m) => [m.line, m.index, m.text.split('\r').length])).toEqual([
      [1, 1, 2],
      [3, 2, 3],
    ]);
  });

  test('normalizes LF and CRLF line ends to CR, blank lines included in the line count', () => {
    for (const eol of ['\n', '\r\n']) {
      const lines = [...FULL.slice(0, 4), '', ...FULL.slice(4, 7), 'FTS|1', '', ''];
      const file = readBatchFile(lines.join(eol));
      expect(file.problems, JSON.stringify(eol)).toEqual([]);
      expect(file.messages.map((m) => m.line)).toEqual([3, 6]);
      expect(file.messages[1].text).toBe(`${msh('M2')}\r${pid(2)}`);
    }
  });

  test('ignores a BOM and MLLP framing bytes left in', () => {
    const text = '\ufeff\u000b' + FULL.slice(2, 4).join('\r') + '\r\u001c\r\u000b' + FULL.slice(4, 6).join('\r') + '\r\u001c\r';
    const file = readBatchFile(text);
    expect(file.problems).toEqual([]);
    expect(file.messages.map((m) => [m.line, m.text])).toEqual([
      [1, `${msh('M1')}\r${pid(1)}`],
      [4, `${msh('M2')}\r${pid(2)}`],
    ]);
  });

  test('a truncated file (BTS and FTS missing) is not complete', () => {
    const file = readBatchFile(FULL.slice(0, 10).join('\n'));
    expect(isCompleteBatch(file)).toBe(false);
    expect(file.messages).toHaveLength(3);
    expect(file.problems).toEqual([
      { line: 1, message: 'FHS at line 1 has no FTS (the file ends at line 10)' },
      { line: 8, message: 'BHS at line 8 has no BTS (the file ends at line 10)' },
    ]);
  });

  test('a BTS count higher than the messages (a partial batch) is not complete', () => {
    const lines = [...FULL];
    lines[6] = 'BTS|3';
    const file = readBatchFile(lines.join('\r'));
    expect(isCompleteBatch(file)).toBe(false);
    expect(file.problems).toEqual([{ line: 7, message: 'BTS-1 says 3 messages, the batch holds 2 (line 7)' }]);
  });

  test('a BTS count lower than the messages, an FTS count that disagrees, and a count that is not a number', () => {
    const lines = [...FULL];
    lines[6] = 'BTS|1';
    lines[10] = 'BTS|x1';
    lines[11] = 'FTS|3';
    expect(readBatchFile(lines.join('\r')).problems).toEqual([
      { line: 7, message: 'BTS-1 says 1 message, the batch holds 2 (line 7)' },
      { line: 11, message: 'BTS-1 is not a number (line 11)' },
      { line: 12, message: 'FTS-1 says 3 batches, the file holds 2 (line 12)' },
    ]);
  });

  test('empty counts are not problems (BTS-1 and FTS-1 are optional)', () => {
    const lines = [...FULL];
    lines[6] = 'BTS';
    lines[10] = 'BTS||comment';
    lines[11] = 'FTS|';
    expect(readBatchFile(lines.join('\r')).problems).toEqual([]);
  });

  test('reads each segment with its own field separator', () => {
    const text = [
      'FHS#^~\\&#LAB#HOSP#HUB#HUB#20240101120000##F-9',
      'BHS#^~\\&#LAB#HOSP#HUB#HUB#20240101120000####B-9',
      msh('M1', '#'),
      'PID#1##1^^^HOSP^MR',
      'BTS#1',
      'FTS#1',
    ].join('\r');
    const file = readBatchFile(text);
    expect(file.problems).toEqual([]);
    expect(file.header).toMatchObject({ sendingApplication: 'LAB', fileId: 'F-9', batchControlId: 'B-9' });
    expect(file.messages[0].text).toBe(`${msh('M1', '#')}\rPID#1##1^^^HOSP^MR`);
    expect(readMessageHeader(readHl7Message(file.messages[0].text)).controlId).toBe('M1');
  });

  test('an empty file is a problem', () => {
    for (const text of ['', '\ufeff', '\r\n\r\n', '\u000b\u001c\r']) {
      const file = readBatchFile(text);
      expect(file.messages).toEqual([]);
      expect(file.problems).toEqual([{ line: 1, message: 'The file is empty' }]);
      expect(isCompleteBatch(file)).toBe(false);
    }
  });

  test('text before the first MSH is reported once per run, without quoting it', () => {
    const file = readBatchFile(['Dear partner,', 'see attached DOE^JANE', 'PID|1||9^^^H^MR', msh('M1'), pid(1)].join('\n'));
    expect(file.messages.map((m) => m.line)).toEqual([4]);
    expect(file.problems).toEqual([{ line: 1, message: 'Text that is not a segment at line 1 is outside any message' }]);
    expect(readBatchFile(['BHS|^~\\&', 'EVN|A01', msh('M1'), 'BTS|1'].join('\r')).problems).toEqual([
      { line: 2, message: 'EVN segment at line 2 is outside any message' },
    ]);
    expect(JSON.stringify(file.problems)).not.toMatch(/DOE|JANE|partner/);
  });

  test('misplaced FHS/BHS/BTS/FTS and messages outside the batches', () => {
    const problems = (lines: string[]): string[] => readBatchFile(lines.join('\r')).problems.map((p) => p.message);
    expect(problems([msh('M1'), 'FHS|^~\\&', 'FTS|1'])).toEqual(['FHS at line 2 is not the first segment of the file']);
    expect(problems(['BTS|0', msh('M1')])).toEqual(['BTS at line 1 has no BHS']);
    expect(problems([msh('M1'), 'FTS|1'])).toEqual(['FTS at line 2 has no FHS']);
    expect(problems(['FHS|^~\\&', 'BHS|^~\\&', msh('M1'), 'BHS|^~\\&', msh('M2'), 'BTS|1', 'FTS|2'])).toEqual([
      'BHS at line 2 has no BTS (next BHS at line 4)',
    ]);
    expect(problems(['FHS|^~\\&', msh('M1'), 'FTS|1', msh('M2'), 'FTS|1'])).toEqual([
      'MSH at line 4 comes after the FTS (line 3)',
      'FTS at line 5 is a second file trailer (the first is at line 3)',
    ]);
    expect(problems(['BHS|^~\\&', msh('M1'), 'BTS|1', msh('M2')])).toEqual(['MSH at line 4 is outside any batch (the file has BHS batches)']);
  });

  test('FHS with messages directly under it counts as one batch', () => {
    expect(readBatchFile(['FHS|^~\\&', msh('M1'), msh('M2'), 'FTS|1'].join('\r')).problems).toEqual([]);
    expect(readBatchFile(['FHS|^~\\&', 'FTS|0'].join('\r')).problems).toEqual([]);
  });
});
