import { describe, expect, test } from 'vitest';
import type { ListedFile } from './files.ts';
import { readyFiles } from './files.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const file = (name: string, ageS: number, type = '-'): ListedFile => ({ name, type, size: 10, modifyTime: NOW - ageS * 1000 });

describe('readyFiles', () => {
  test('takes complete files matching the pattern, oldest first; waits for young ones; skips transfers in progress', () => {
    const { ready, tooYoung } = readyFiles(
      [
        file('b.hl7', 120),
        file('a.hl7', 300),
        file('young.hl7', 5),
        file('.hidden.hl7', 600),
        file('c.hl7.part', 600),
        file('d.hl7.tmp', 600),
        file('notes.txt', 600),
        file('archive', 600, 'd'),
        file('e.hl7~', 600),
      ],
      /^.*\.hl7$/,
      60_000,
      NOW
    );
    expect(ready.map((f) => f.name)).toEqual(['a.hl7', 'b.hl7']);
    expect(tooYoung).toBe(1);
  });
});
