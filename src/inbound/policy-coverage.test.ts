import type { AccessPolicy, AccessPolicyResource } from '@medplum/fhirtypes';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { MessagePlan } from '../mapping/plan.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const policy = (name: string): AccessPolicy => JSON.parse(readFileSync(join(ROOT, 'access-policies', name + '.json'), 'utf8')) as AccessPolicy;

function goldenPlanTypes(dir: string): Set<string> {
  const types = new Set<string>();
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      goldenPlanTypes(path).forEach((t) => types.add(t));
    } else if (entry.name.endsWith('.plan.json')) {
      for (const r of (JSON.parse(readFileSync(path, 'utf8')) as MessagePlan).resources) {
        types.add(r.resource.resourceType);
      }
    }
  }
  return types;
}

function allows(entries: AccessPolicyResource[] | undefined, resourceType: string, interaction: string): boolean {
  return Boolean(entries?.some((e) => e.resourceType === resourceType && (e.interaction as string[] | undefined)?.includes(interaction)));
}

/**
 * Bots triggered by the agent run as the agent's ClientApplication (medplum-facts 1.10): its
 * policy must allow every write the HL7 maps can plan, or the stock server answers 403 and the
 * message is dead-lettered. The corpus goldens list every resource type the maps produce.
 */
describe('the inbound access policies cover what the HL7 maps write', () => {
  const written = goldenPlanTypes(join(ROOT, 'test', 'corpus'));
  written.add('MessageHeader');

  for (const name of ['agent', 'bot-hl7']) {
    test(`${name}.json`, () => {
      const entries = policy(name).resource;
      for (const type of written) {
        for (const interaction of ['read', 'search', 'create', 'update', 'delete']) {
          expect(allows(entries, type, interaction), `${name} allows ${interaction} on ${type}`).toBe(true);
        }
      }
      expect(allows(entries, 'Binary', 'create')).toBe(true);
    });
  }
});
