import { deflateSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { countColour, decodePng } from './png.ts';

/** Encodes RGB or RGBA rows as a PNG, each row with the given filter (0-4), as an encoder would. */
function encodePng(width: number, height: number, channels: 3 | 4, pixel: (x: number, y: number) => number[], filterOf: (y: number) => number): Buffer {
  const rows: number[][] = [];
  for (let y = 0; y < height; y++) {
    const row: number[] = [];
    for (let x = 0; x < width; x++) {
      row.push(...pixel(x, y).slice(0, channels));
    }
    rows.push(row);
  }
  const raw: number[] = [];
  rows.forEach((row, y) => {
    const filter = filterOf(y);
    raw.push(filter);
    row.forEach((value, x) => {
      const left = x >= channels ? row[x - channels] : 0;
      const up = y > 0 ? rows[y - 1][x] : 0;
      const upLeft = y > 0 && x >= channels ? rows[y - 1][x - channels] : 0;
      const paeth = (): number => {
        const p = left + up - upLeft;
        const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)];
        return pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      };
      const prediction = [0, left, up, (left + up) >> 1, paeth()][filter];
      raw.push((value - prediction) & 0xff);
    });
  });
  const chunk = (type: string, body: Buffer): Buffer => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(body.length);
    // The reader does not check CRCs; a zero CRC keeps the encoder short.
    return Buffer.concat([length, Buffer.from(type, 'latin1'), body, Buffer.alloc(4)]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, channels === 4 ? 6 : 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.from(raw))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('PNG reader for screenshots', () => {
  // Left half blue bars on white, a red square; varied values so every filter predicts something.
  const pixel = (x: number, y: number): number[] =>
    x < 6 && y >= 2 ? [0x25, 0x63, 0xeb, 255] : x >= 8 && y >= 6 ? [0xdc, 0x26, 0x26, 255] : [255 - x, 255 - y, 250, 255];

  for (const channels of [3, 4] as const) {
    test(`decodes ${channels === 4 ? 'RGBA' : 'RGB'} rows with filters 0 to 4`, () => {
      const image = decodePng(encodePng(12, 10, channels, pixel, (y) => y % 5));
      expect([image.width, image.height]).toEqual([12, 10]);
      for (const [x, y] of [
        [0, 0],
        [3, 5],
        [11, 9],
        [7, 1],
      ]) {
        expect([...image.pixels.subarray((y * 12 + x) * 4, (y * 12 + x) * 4 + 4)]).toEqual(pixel(x, y));
      }
      expect(countColour(image, '#2563eb')).toBe(6 * 8);
      expect(countColour(image, '#dc2626')).toBe(4 * 4);
    });
  }

  test('refuses what it does not read', () => {
    expect(() => decodePng(Buffer.from('GIF89a'))).toThrow('not a PNG');
  });
});
