import { Hl7Context } from '@medplum/core';
import { describe, expect, test } from 'vitest';
import { decodeEscapes, encodeEscapes, parseField, reps, val } from './fields.ts';
import { readHl7Message } from './message.ts';

const ctx = new Hl7Context();

describe('escapes', () => {
  test('decodes delimiters, line breaks, hex and formatting', () => {
    expect(decodeEscapes('Smith \\T\\ Sons\\F\\Ltd\\S\\x\\R\\y\\E\\z', ctx)).toBe('Smith & Sons|Ltd^x~y\\z');
    expect(decodeEscapes('line1\\.br\\line2\\X0D0A\\end', ctx)).toBe('line1\nline2\r\nend');
    expect(decodeEscapes('caf\\XC3A9\\', ctx)).toBe('café');
    expect(decodeEscapes('\\H\\bold\\N\\ \\.sp2\\x', ctx)).toBe('bold \n\nx');
    expect(decodeEscapes('unknown \\Q\\ and \\unterminated', ctx)).toBe('unknown \\Q\\ and \\unterminated');
  });

  test('uses the message delimiters, not the defaults', () => {
    const custom = new Hl7Context('\r', '#', '$', '*', '@', '!');
    expect(decodeEscapes('a@F@b@S@c@T@d@R@e@E@f', custom)).toBe('a#b$c!d*e@f');
  });

  test('encoding is the inverse for delimiters and line breaks', () => {
    const text = 'A|B^C~D\\E&F\nG';
    expect(decodeEscapes(encodeEscapes(text, ctx), ctx)).toBe(text);
  });
});

describe('fields', () => {
  test('splits repetitions, components and subcomponents, decoding each leaf', () => {
    const [first, second] = parseField('12345^^^NSH&2.16.840.1&ISO^MR~999\\S\\1^^^SSA^SS', ctx);
    expect(first.get(1)).toBe('12345');
    expect(first.sub(4, 1)).toBe('NSH');
    expect(first.sub(4, 3)).toBe('ISO');
    expect(first.get(4)).toBe('NSH&2.16.840.1&ISO');
    expect(second.get(1)).toBe('999^1');
  });

  test('"" is an explicit null; empty is absent', () => {
    expect(parseField('""', ctx)[0].isNull).toBe(true);
    expect(parseField('', ctx)).toEqual([]);
    expect(parseField('a~""', ctx)[1].isNull).toBe(true);
  });

  test('reads fields of a parsed message, MSH numbering included', () => {
    const message = readHl7Message('MSH|^~\\&|APP|FAC|||20240101||ADT^A01|1|P|2.5\rPID|1||A1^^^X^MR~B2^^^Y^MR||Doe^Jane');
    expect(val(message.getSegment('MSH'), 3)).toBe('APP');
    expect(reps(message.getSegment('PID'), 3).map((r) => r.get(1))).toEqual(['A1', 'B2']);
    expect(val(message.getSegment('PID'), 5, 2)).toBe('Jane');
    expect(val(message.getSegment('PID'), 99)).toBe('');
  });
});

describe('control characters', () => {
  test('are removed from decoded values, escapes included; tab, CR and LF stay', () => {
    const [rep] = parseField('A\u0001B\\X07\\C\tD\\.br\\E', ctx);
    expect(rep.get(1)).toBe('ABC\tD\nE');
  });
});
