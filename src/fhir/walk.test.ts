import { describe, expect, test } from 'vitest';
import { mapObjects } from './walk.ts';

describe('mapObjects', () => {
  test('maps every object bottom up, through arrays, without touching the input', () => {
    const input = { a: { reference: 'X/1' }, list: [{ reference: 'X/2' }, 3, 'text'], n: null };
    const seen: string[] = [];
    const copy = mapObjects(input, (object) => {
      seen.push(Object.keys(object).join(','));
      return typeof object.reference === 'string' ? { reference: object.reference.replace('X/', 'Y/') } : object;
    });
    expect(copy).toEqual({ a: { reference: 'Y/1' }, list: [{ reference: 'Y/2' }, 3, 'text'], n: null });
    expect(input.a.reference).toBe('X/1');
    expect(seen).toEqual(['reference', 'reference', 'a,list,n']);
  });
});
