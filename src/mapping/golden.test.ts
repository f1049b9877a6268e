import { validateResource } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { readHl7Message, readMessageHeader } from '../hl7/message.ts';
import { readMappingConfigFiles } from './config-files.ts';
import { MappingContext } from './context.ts';
import { findMessageMapper } from './messages/registry.ts';
import type { MessagePlan } from './plan.ts';
import { assertFindableIdentities, LOCAL_REFERENCE_PREFIX, MappingError } from './plan.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CORPUS = join(ROOT, 'test', 'corpus');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/**
 * Golden-file tests of the pure mappings: every `test/corpus/<family>/<case>.hl7` is read, mapped
 * with the hub's own seed/ configuration, and compared with `<case>.plan.json` (or, for a message
 * the mapping must refuse, `<case>.error.json`). Every planned resource must pass `@medplum/core`
 * validation. `UPDATE_GOLDEN=1 npx vitest run src/mapping/golden.test.ts` rewrites the goldens;
 * review the diff before committing it.
 */
describe('golden mappings', () => {
  const config = readMappingConfigFiles(join(ROOT, 'seed'));
  beforeAll(() => loadFhirDefinitions());

  for (const file of corpusFiles(CORPUS)) {
    const name = relative(CORPUS, file);
    test(name, () => {
      const message = readHl7Message(readFileSync(file, 'utf8'));
      const header = readMessageHeader(message);
      const mapper = findMessageMapper(header);
      expect(mapper, `no mapper for ${header.messageCode}^${header.triggerEvent}`).toBeDefined();
      const ctx = new MappingContext(header, config);
      let actual: unknown;
      let goldenFile: string;
      try {
        const plan = mapper?.(message, ctx) as MessagePlan;
        for (const resource of plan.resources) {
          expect(() => validateResource(withDummyReferences(resource.resource)), `${resource.key} is valid FHIR`).not.toThrow();
          expect(resource.identifiers.length, `${resource.key} has business identifiers`).toBeGreaterThan(0);
        }
        expect(new Set(plan.resources.map((r) => r.key)).size, 'plan keys are unique').toBe(plan.resources.length);
        expect(() => assertFindableIdentities(plan), 'each resource is planned once').not.toThrow();
        actual = plan;
        goldenFile = file.replace(/\.hl7$/, '.plan.json');
      } catch (err) {
        if (!(err instanceof MappingError)) {
          throw err;
        }
        actual = { error: err.issue };
        goldenFile = file.replace(/\.hl7$/, '.error.json');
      }
      const json = JSON.stringify(actual, undefined, 2) + '\n';
      if (UPDATE) {
        writeFileSync(goldenFile, json);
      }
      expect(existsSync(goldenFile), `${relative(CORPUS, goldenFile)} is missing: run with UPDATE_GOLDEN=1 and review it`).toBe(true);
      expect(json).toBe(readFileSync(goldenFile, 'utf8'));
    });
  }
});

function corpusFiles(dir: string): string[] {
  if (!existsSync(dir)) {
    return [];
  }
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? corpusFiles(join(dir, e.name)) : e.name.endsWith('.hl7') ? [join(dir, e.name)] : []
  );
}

/** Local references become plain ones so the resource can be validated on its own. */
function withDummyReferences(resource: Resource): Resource {
  return JSON.parse(
    JSON.stringify(resource).replaceAll(new RegExp(`"${LOCAL_REFERENCE_PREFIX}([A-Za-z]+)/?[^"]*"`, 'g'), '"$1/dummy"').replaceAll(`"${LOCAL_REFERENCE_PREFIX}`, '"X/')
  ) as Resource;
}
