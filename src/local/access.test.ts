import type { AccessPolicy, Observation, Patient, ProjectMembership } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import {
  applyProjectAdminRules,
  applySmartScopes,
  buildAccessPolicy,
  isResourceWriteable,
  removeHiddenFields,
  restoreReadonlyFields,
  searchFilter,
  substituteParameters,
  supportsInteraction,
} from './access.ts';
import { compartmentsOf } from './compartments.ts';

beforeAll(() => {
  loadFhirDefinitions();
});

const member: ProjectMembership = {
  resourceType: 'ProjectMembership',
  project: { reference: 'Project/p1' },
  user: { reference: 'ClientApplication/c1' },
  profile: { reference: 'ClientApplication/c1' },
};

const orgPolicy: AccessPolicy = {
  resourceType: 'AccessPolicy',
  resource: [
    { resourceType: 'Patient', criteria: 'Patient?organization=%organization', readonly: true },
    { resourceType: 'Observation', criteria: 'Observation?_tag=sys|%org.id' },
  ],
};

describe('buildAccessPolicy', () => {
  test('substitutes parameters as text, longer names first, and turns readonly into read interactions', async () => {
    const policy = await buildAccessPolicy(
      {
        ...member,
        access: [
          {
            policy: { reference: 'AccessPolicy/a' },
            parameter: [
              { name: 'org', valueReference: { reference: 'Organization/o2' } },
              { name: 'organization', valueReference: { reference: 'Organization/o1' } },
            ],
          },
        ],
      },
      async () => orgPolicy
    );
    expect(policy.resource?.[0]).toEqual({
      resourceType: 'Patient',
      criteria: 'Patient?organization=Organization/o1',
      readonly: true,
      interaction: ['read', 'vread', 'history', 'search'],
    });
    expect(policy.resource?.[1].criteria).toBe('Observation?_tag=sys|o2');
    // Everyone may read the definitions.
    expect(policy.resource?.map((r) => r.resourceType)).toEqual(['Patient', 'Observation', 'SearchParameter', 'StructureDefinition']);
  });

  test('%patient defaults to the profile; no policy at all means full access', async () => {
    const replaced = substituteParameters(
      { resourceType: 'AccessPolicy', resource: [{ resourceType: 'Observation', criteria: 'Observation?_compartment=%patient' }] },
      { policy: { reference: 'AccessPolicy/a' } },
      { reference: 'Patient/p9' }
    );
    expect(replaced.resource?.[0].criteria).toBe('Observation?_compartment=Patient/p9');
    const open = await buildAccessPolicy(member, async () => orgPolicy);
    expect(open.resource?.[0]).toEqual({ resourceType: '*' });
  });
});

describe('applySmartScopes', () => {
  const policy: AccessPolicy = {
    resourceType: 'AccessPolicy',
    resource: [{ resourceType: '*' }, { resourceType: 'Patient', criteria: 'Patient?active=true' }],
  };

  test('keeps only scoped types, read scopes set readonly, queries narrow criteria', () => {
    const narrowed = applySmartScopes(policy, 'openid system/Observation.rs system/Patient.read?gender=female');
    expect(narrowed.resource).toEqual([
      { resourceType: 'Observation', readonly: true },
      { resourceType: 'Patient', readonly: true, criteria: 'Patient?gender=female' },
      { resourceType: 'Patient', criteria: 'Patient?active=true&gender=female', readonly: true },
    ]);
    expect(supportsInteraction(narrowed, 'create', 'Observation')).toBe(false);
    expect(supportsInteraction(narrowed, 'read', 'Encounter')).toBe(false);
  });

  test('as on the stock server, a read scope does not narrow an entry that lists its interactions', () => {
    const listed: AccessPolicy = { resourceType: 'AccessPolicy', resource: [{ resourceType: 'Patient', interaction: ['read', 'update'] }] };
    const narrowed = applySmartScopes(listed, 'system/Patient.rs');
    expect(supportsInteraction(narrowed, 'update', 'Patient')).toBe(true);
  });

  test('no resource scope leaves the policy as it is; write letters do not make it read-only', () => {
    expect(applySmartScopes(policy, 'openid offline_access')).toBe(policy);
    const written = applySmartScopes(policy, 'system/Observation.cruds');
    expect(written.resource).toEqual([{ resourceType: 'Observation' }]);
  });
});

describe('applyProjectAdminRules', () => {
  test('only admins get the project admin types, and never through *', () => {
    const policy: AccessPolicy = { resourceType: 'AccessPolicy', resource: [{ resourceType: '*' }, { resourceType: 'ProjectMembership' }] };
    const plain = applyProjectAdminRules(policy, { resourceType: 'Project', id: 'p1' }, member);
    expect(supportsInteraction(plain, 'read', 'ProjectMembership')).toBe(false);
    expect(supportsInteraction(plain, 'read', 'Project')).toBe(false);
    const admin = applyProjectAdminRules(policy, { resourceType: 'Project', id: 'p1' }, { ...member, admin: true });
    expect(supportsInteraction(admin, 'update', 'ProjectMembership')).toBe(true);
    expect(supportsInteraction(admin, 'delete', 'Project')).toBe(false);
  });
});

describe('per-resource rules', () => {
  const labOnly: AccessPolicy = {
    resourceType: 'AccessPolicy',
    resource: [
      {
        resourceType: 'Observation',
        criteria: 'Observation?category=laboratory',
        hiddenFields: ['note', 'performer.display'],
        readonlyFields: ['status'],
        writeConstraint: [{ language: 'text/fhirpath', expression: "%before.exists().not() or %before.subject = %after.subject" }],
      },
    ],
  };
  const lab: Observation = {
    resourceType: 'Observation',
    id: 'o1',
    status: 'final',
    code: { text: 'x' },
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
    subject: { reference: 'Patient/p1' },
    performer: [{ reference: 'Organization/o1', display: 'Lab' }],
    note: [{ text: 'internal' }],
  };
  const vital: Observation = { ...lab, id: 'o2', category: [{ coding: [{ code: 'vital-signs' }] }] };

  test('search results are filtered by the criteria; hidden fields are removed, also nested ones', () => {
    const allowed = searchFilter(labOnly, 'Observation');
    expect(allowed(lab)).toBe(true);
    expect(allowed(vital)).toBe(false);
    const shown = removeHiddenFields(labOnly, structuredClone(lab));
    expect(shown.note).toBeUndefined();
    expect(shown.performer).toEqual([{ reference: 'Organization/o1' }]);
  });

  test('read-only and hidden fields cannot be written; top-level ones come back from the current version', () => {
    const input = restoreReadonlyFields(labOnly, { ...structuredClone(lab), status: 'cancelled', note: [{ text: 'new' }] }, lab);
    expect(input.status).toBe('final');
    expect(input.note).toEqual([{ text: 'internal' }]);
    const created = restoreReadonlyFields(labOnly, structuredClone(lab), undefined);
    expect(created.status).toBeUndefined();
  });

  test('a write must satisfy the criteria and every write constraint', () => {
    expect(isResourceWriteable(labOnly, lab, { ...lab, code: { text: 'y' } }, 'update')).toBe(true);
    expect(isResourceWriteable(labOnly, lab, { ...lab, subject: { reference: 'Patient/p2' } }, 'update')).toBe(false);
    expect(isResourceWriteable(labOnly, undefined, vital, 'create')).toBe(false);
    expect(isResourceWriteable(labOnly, undefined, lab, 'create')).toBe(true);
  });
});

describe('compartmentsOf', () => {
  test('a Patient is in its own compartment, an Observation in its subject’s, both in their project', () => {
    const patient: Patient = { resourceType: 'Patient', id: 'p1', meta: { project: 'proj' } };
    expect(compartmentsOf(patient)).toEqual([{ reference: 'Project/proj' }, { reference: 'Patient/p1' }]);
    const observation: Observation = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'x' },
      subject: { reference: 'Patient/p1' },
      performer: [{ reference: 'Practitioner/x' }],
      meta: { project: 'proj' },
    };
    expect(compartmentsOf(observation)).toEqual([{ reference: 'Project/proj' }, { reference: 'Patient/p1' }]);
    expect(compartmentsOf({ resourceType: 'Organization', meta: { project: 'proj' } })).toEqual([{ reference: 'Project/proj' }]);
  });
});
