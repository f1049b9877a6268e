import type { AccessPolicy } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { LOCK_CODE_SYSTEM, LockKind } from '../fhir/lock.ts';
import { SFTP_FILE_TASK_CODE } from './ledger.ts';
import { SFTP_INBOUND_CONNECTION } from './source.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const policy = (name: string): AccessPolicy => JSON.parse(readFileSync(join(ROOT, 'access-policies', `${name}.json`), 'utf8')) as AccessPolicy;

describe('sftp-inbound bot policy', () => {
  test('covers everything the HL7 pipeline writes, reads only SFTP source Endpoints, and only its own file Tasks', () => {
    const sftp = policy('bot-sftp-inbound');
    const hl7 = policy('bot-hl7');
    for (const rule of hl7.resource ?? []) {
      if (rule.resourceType === 'Task' || rule.resourceType === 'Binary') {
        continue;
      }
      expect(sftp.resource).toContainEqual(rule);
    }
    expect(sftp.resource?.find((r) => r.resourceType === 'Endpoint')).toEqual({
      resourceType: 'Endpoint',
      criteria: `Endpoint?connection-type=${SFTP_INBOUND_CONNECTION.system}|${SFTP_INBOUND_CONNECTION.code}`,
      readonly: true,
    });
    expect(sftp.resource?.filter((r) => r.resourceType === 'Binary')).toEqual([{ resourceType: 'Binary', interaction: ['create'] }]);
    expect(sftp.resource?.find((r) => r.resourceType === 'Basic')?.criteria).toBe(`Basic?code=${LOCK_CODE_SYSTEM}|${LockKind.sftpSource}`);
    const tasks = sftp.resource?.filter((r) => r.resourceType === 'Task');
    expect(tasks).toEqual([{ resourceType: 'Task', criteria: `Task?code=${SFTP_FILE_TASK_CODE.system}|${SFTP_FILE_TASK_CODE.code}`, interaction: ['read', 'search', 'create', 'update'] }]);
  });
});
