import { describe, expect, test } from 'vitest';
import { parseCsv } from './csv.ts';

describe('parseCsv', () => {
  test('reads a header and rows, LF line ends, trailing empty line ignored', () => {
    const table = parseCsv('a,b,c\n1,2,3\n4,5,6\n');
    expect(table.header).toEqual(['a', 'b', 'c']);
    expect(table.headerLine).toBe(1);
    expect(table.rows).toEqual([
      { line: 2, cells: ['1', '2', '3'] },
      { line: 3, cells: ['4', '5', '6'] },
    ]);
    expect(table.problems).toEqual([]);
  });

  test('CRLF and a last line without a line end', () => {
    const table = parseCsv('a,b\r\n1,2\r\n3,4');
    expect(table.rows).toEqual([
      { line: 2, cells: ['1', '2'] },
      { line: 3, cells: ['3', '4'] },
    ]);
  });

  test('a lone CR ends a record too', () => {
    expect(parseCsv('a,b\r1,2\r').rows).toEqual([{ line: 2, cells: ['1', '2'] }]);
  });

  test('drops a UTF-8 BOM', () => {
    const table = parseCsv('\uFEFFmrn,family\r\n1,Łukasz\r\n');
    expect(table.header).toEqual(['mrn', 'family']);
    expect(table.rows[0].cells).toEqual(['1', 'Łukasz']);
  });

  test('quoted fields: commas, escaped quotes, empty quoted fields', () => {
    const table = parseCsv('a,b,c\n"x, y","say ""hi""",""\n');
    expect(table.rows).toEqual([{ line: 2, cells: ['x, y', 'say "hi"', ''] }]);
  });

  test('line breaks inside quotes: the row keeps its first line, later rows their own', () => {
    const table = parseCsv('a,b\r\n"one\r\ntwo",x\r\n"three\nfour\nfive",y\n6,z\n');
    expect(table.rows).toEqual([
      { line: 2, cells: ['one\r\ntwo', 'x'] },
      { line: 4, cells: ['three\nfour\nfive', 'y'] },
      { line: 7, cells: ['6', 'z'] },
    ]);
  });

  test('empty fields and a trailing comma are cells', () => {
    expect(parseCsv('a,b,c\n,,\n1,,\n').rows).toEqual([
      { line: 2, cells: ['', '', ''] },
      { line: 3, cells: ['1', '', ''] },
    ]);
  });

  test('keeps spaces (the mapping trims)', () => {
    expect(parseCsv('a,b\n 1 , 2 \n').rows[0].cells).toEqual([' 1 ', ' 2 ']);
  });

  test('ragged rows are problems of their line; the other rows are read', () => {
    const table = parseCsv('a,b,c\n1,2,3\n1,2\n1,2,3,4\n7,8,9\n');
    expect(table.rows.map((r) => r.line)).toEqual([2, 5]);
    expect(table.problems).toEqual([
      { line: 3, message: 'the row has 2 cells, the header 3' },
      { line: 4, message: 'the row has 4 cells, the header 3' },
    ]);
  });

  test('empty lines are skipped, before the header too', () => {
    const table = parseCsv('\n\na,b\n\n1,2\n\n\n');
    expect(table.header).toEqual(['a', 'b']);
    expect(table.headerLine).toBe(3);
    expect(table.rows).toEqual([{ line: 5, cells: ['1', '2'] }]);
    expect(table.problems).toEqual([]);
  });

  test('a quote inside an unquoted field, or text after a closing quote, is a problem of that row only', () => {
    const table = parseCsv('a,b\n5\'10",x\n"ab"c,y\nok,z\n');
    expect(table.rows).toEqual([{ line: 4, cells: ['ok', 'z'] }]);
    expect(table.problems).toEqual([
      { line: 2, message: 'a quote inside an unquoted field' },
      { line: 3, message: 'text after the closing quote of a field' },
    ]);
  });

  test('an unclosed quote is reported on the line it opens', () => {
    const table = parseCsv('a,b\n1,2\n"open,3\n4,5\n');
    expect(table.rows).toEqual([{ line: 2, cells: ['1', '2'] }]);
    expect(table.problems).toEqual([{ line: 3, message: 'a quoted field is not closed' }]);
  });

  test('an unreadable header stops the file', () => {
    const table = parseCsv('"a,b\n1,2\n');
    expect(table).toEqual({ header: [], headerLine: 1, rows: [], problems: [{ line: 1, message: 'a quoted field is not closed' }] });
  });

  test('empty text, or only a BOM', () => {
    expect(parseCsv('')).toEqual({ header: [], headerLine: 1, rows: [], problems: [] });
    expect(parseCsv('\uFEFF')).toEqual({ header: [], headerLine: 1, rows: [], problems: [] });
  });

  test('problems never contain cell values', () => {
    const table = parseCsv('a,b\nSECRET"X,1\n"SECRET"Y,2\nSECRET,Z,3\n');
    expect(table.problems).toHaveLength(3);
    expect(JSON.stringify(table.problems)).not.toContain('SECRET');
  });
});
