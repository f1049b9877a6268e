import { describe, expect, test } from 'vitest';
import { clip, hideValues, stripControlCharacters } from './strings.ts';

describe('hideValues', () => {
  test('hides every quoted value, apostrophes inside a value included', () => {
    expect(hideValues("PID-5 (102): unknown name 'O'Brien' in 'Smith'")).toBe("PID-5 (102): unknown name '…' in '…'");
    expect(hideValues('value "D\'Arcy" and "x"')).toBe('value "…" and "…"');
    expect(hideValues("RXA-3 (102): unknown time zone 'Mars/Base'")).toBe("RXA-3 (102): unknown time zone '…'");
    expect(hideValues('no quotes here')).toBe('no quotes here');
  });

  test('a lone apostrophe in the text is not a value', () => {
    expect(hideValues("the sender's MSH-4 is empty")).toBe("the sender's MSH-4 is empty");
  });
});

describe('stripControlCharacters', () => {
  test('removes control characters but keeps tabs and line ends', () => {
    expect(stripControlCharacters('a\u0000b\tc\nd')).toBe('ab\tc\nd');
  });
});

test('clip', () => {
  expect(clip('abc', 3)).toBe('abc');
  expect(clip('abcd', 3)).toBe('ab…');
});
