import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { MedplumConfigBot } from './config-file.ts';

const ROOT = join(import.meta.dirname, '..', '..');

describe('the committed medplum.config.json', () => {
  test('lists every bot under bots/ with its source and bundle, and no id (ids belong to a target)', () => {
    const bots = readdirSync(join(ROOT, 'bots')).filter((name) => existsSync(join(ROOT, 'bots', name, 'index.ts'))).sort();
    const config = JSON.parse(readFileSync(join(ROOT, 'medplum.config.json'), 'utf8')) as { bots: MedplumConfigBot[] };
    expect(config.bots).toEqual(bots.map((name) => ({ name, id: '', source: `bots/${name}/index.ts`, dist: `dist/bots/${name}.js` })));
  });
});
