import type { Organization, Patient } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { HL7_SENDER_SYSTEM } from '../constants.ts';
import { hasOwnerTag, OWNER_ORGANIZATION_SYSTEM, ownerOrganizations, senderOrganizationId, withOwnerTags } from './owner.ts';

describe('owner organization tags', () => {
  test('adds the organization once and keeps other tags', () => {
    const patient: Patient = { resourceType: 'Patient', meta: { tag: [{ system: 'other', code: 'x' }] } };
    const tagged = withOwnerTags(patient, ['org-1']);
    expect(tagged.meta?.tag).toEqual([
      { system: 'other', code: 'x' },
      { system: OWNER_ORGANIZATION_SYSTEM, code: 'org-1' },
    ]);
    expect(withOwnerTags(tagged, ['org-1'])).toBe(tagged);
    const both = withOwnerTags(tagged, ['org-1', 'org-2']);
    expect(ownerOrganizations(both)).toEqual(['org-1', 'org-2']);
    expect(hasOwnerTag(both, 'org-2')).toBe(true);
    expect(hasOwnerTag(patient, 'org-1')).toBe(false);
    expect(withOwnerTags(patient, [])).toBe(patient);
  });

  test('the sender organization is the one whose identifier is the sending facility, not the defaults', () => {
    const senders: Organization[] = [
      { resourceType: 'Organization', id: 'default', identifier: [{ system: HL7_SENDER_SYSTEM, value: '*' }] },
      { resourceType: 'Organization', id: 'north', identifier: [{ system: HL7_SENDER_SYSTEM, value: 'NORTHSIDE' }] },
    ];
    expect(senderOrganizationId(senders, 'NORTHSIDE')).toBe('north');
    expect(senderOrganizationId(senders, 'ELSEWHERE')).toBeUndefined();
    expect(senderOrganizationId(senders, '')).toBeUndefined();
  });
});
