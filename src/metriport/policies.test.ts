import type { AccessPolicy } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { BOT_NAME_SYSTEM } from '../constants.ts';
import { IMPORTED_TYPES } from './consolidated.ts';
import { LOCK_CODE_SYSTEM, LockKind } from '../fhir/lock.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const policy = (name: string): AccessPolicy => JSON.parse(readFileSync(join(ROOT, 'access-policies', `${name}.json`), 'utf8')) as AccessPolicy;
const allowed = (p: AccessPolicy): string[] =>
  (p.resource ?? []).flatMap((r) => (r.interaction ?? (r.readonly ? ['read', 'search'] : [])).map((i) => `${r.resourceType}:${i}`)).sort();

describe('Metriport access policies (least privilege per caller)', () => {
  test('the webhook client may only read the receiver bot (Metriport calls $execute; the bot runs as itself)', () => {
    const client = policy('client-metriport-webhook');
    expect(client.resource).toEqual([{ resourceType: 'Bot', criteria: `Bot?identifier=${BOT_NAME_SYSTEM}|metriport-webhook`, readonly: true }]);
  });

  test('the receiver bot may only record and find webhook Tasks', () => {
    const receiver = policy('bot-metriport-webhook');
    expect(allowed(receiver)).toEqual(['Task:create', 'Task:read', 'Task:search']);
    expect(receiver.resource?.[0].criteria).toMatch(/^Task\?code=.*\|metriport-webhook$/);
  });

  test('the outbound bot reads Patients and Organizations and updates Patients (the link), nothing else', () => {
    expect(allowed(policy('bot-metriport-patient'))).toEqual(['Organization:read', 'Organization:search', 'Patient:read', 'Patient:search', 'Patient:update']);
  });

  test('the processing bot can write every imported type, deletes only its locks, and touches only webhook Tasks', () => {
    const processing = policy('bot-metriport-consolidated');
    const rules = allowed(processing);
    for (const type of IMPORTED_TYPES) {
      for (const interaction of ['read', 'search', 'create', 'update']) {
        expect(rules).toContain(`${type}:${interaction}`);
      }
    }
    // It deletes nothing but its own per-patient merge locks.
    expect(rules.filter((r) => r.endsWith(':delete'))).toEqual(['Basic:delete']);
    expect(processing.resource?.find((r) => r.resourceType === 'Basic')?.criteria).toBe(`Basic?code=${LOCK_CODE_SYSTEM}|${LockKind.metriportMerge}`);
    expect(rules.filter((r) => r.startsWith('Patient:'))).toEqual(['Patient:read', 'Patient:search', 'Patient:update']);
    const task = processing.resource?.find((r) => r.resourceType === 'Task');
    expect(task?.criteria).toMatch(/\|metriport-webhook$/);
    expect(task?.interaction?.sort()).toEqual(['read', 'search', 'update']);
  });
});
