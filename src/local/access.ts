import type { AccessPolicyInteraction } from '@medplum/core';
import {
  accessPolicySupportsInteraction,
  deepClone,
  evalFhirPathTyped,
  matchesSearchRequest,
  parseSearchRequest,
  projectAdminResourceTypes,
  readInteractions,
  satisfiedAccessPolicy,
  toTypedValue,
} from '@medplum/core';
import type {
  AccessPolicy,
  AccessPolicyResource,
  Project,
  ProjectMembership,
  ProjectMembershipAccess,
  Reference,
  Resource,
  ResourceType,
} from '@medplum/fhirtypes';

/**
 * AccessPolicy evaluation for the local runtime, following the stock server
 * (`packages/server/src/fhir/accesspolicy.ts`, `smart.ts` and the checks in `fhir/repo.ts`). The
 * per-resource decisions are `@medplum/core`'s own (`satisfiedAccessPolicy`,
 * `accessPolicySupportsInteraction`, `matchesSearchRequest`); this module builds the effective
 * policy of a login and applies hidden, read-only and write-constraint rules around them.
 */

/** Resource types every member may read (the stock `addDefaultResourceTypes`). */
const DEFAULT_READ_TYPES: readonly ResourceType[] = ['SearchParameter', 'StructureDefinition'];

/**
 * Project admin types: core's list plus PasswordChangeRequest, which the stock server also
 * reserves for admins.
 */
const ADMIN_TYPES: readonly string[] = [...projectAdminResourceTypes, 'PasswordChangeRequest'];

/**
 * Builds the effective AccessPolicy of a membership as the stock `buildAccessPolicy` does:
 * `accessPolicy` first, then each `access[]` entry with its parameters substituted as plain text
 * (`%name` and `%name.id`; `%profile` is the member's profile, `%patient` defaults to it), resource
 * entries concatenated (the first matching entry wins), the last compartment kept, `readonly`
 * turned into the read interactions, full access when no policy is attached, and read-only
 * SearchParameter and StructureDefinition always.
 * @param membership - The member.
 * @param readPolicy - Reads an AccessPolicy by reference (the system repository).
 * @returns The policy.
 */
export async function buildAccessPolicy(
  membership: ProjectMembership,
  readPolicy: (reference: Reference<AccessPolicy>) => Promise<AccessPolicy>
): Promise<AccessPolicy> {
  const access: ProjectMembershipAccess[] = [];
  if (membership.accessPolicy) {
    access.push({ policy: membership.accessPolicy });
  }
  access.push(...(membership.access ?? []));

  const resource: AccessPolicyResource[] = [];
  let compartment: AccessPolicy['compartment'];
  for (const entry of access) {
    if (!entry.policy) {
      continue;
    }
    const policy = substituteParameters(await readPolicy(entry.policy), entry, membership.profile as Reference);
    if (policy.compartment) {
      compartment = policy.compartment;
    }
    for (const item of policy.resource ?? []) {
      resource.push(item.readonly && !item.interaction ? { ...item, interaction: [...readInteractions] } : item);
    }
  }
  if (resource.length === 0) {
    resource.push({ resourceType: '*' });
  }
  for (const resourceType of DEFAULT_READ_TYPES) {
    if (!resource.some((r) => r.resourceType === resourceType)) {
      resource.push({ resourceType, readonly: true });
    }
  }
  return { resourceType: 'AccessPolicy', compartment, resource };
}

/**
 * Replaces `%<name>` variables in a policy's JSON with a membership's parameters, as the stock
 * server does: plain text replacement, `%name.id` before `%name` for references, longer names
 * first so that `%org` cannot eat `%organization`.
 * @param policy - The policy as stored.
 * @param access - The membership's access entry (policy and parameters).
 * @param profile - The member's profile.
 * @returns The policy with its variables replaced.
 */
export function substituteParameters(policy: AccessPolicy, access: ProjectMembershipAccess, profile: Reference): AccessPolicy {
  const parameters = [...(access.parameter ?? [])];
  if (!parameters.some((p) => p.name === 'profile')) {
    parameters.push({ name: 'profile', valueReference: profile });
  }
  if (!parameters.some((p) => p.name === 'patient')) {
    parameters.push({ name: 'patient', valueReference: profile });
  }
  parameters.sort((a, b) => (b.name?.length ?? 0) - (a.name?.length ?? 0));
  let json = JSON.stringify(policy);
  for (const parameter of parameters) {
    if (!parameter.name) {
      continue;
    }
    if (parameter.valueReference?.reference) {
      const reference = parameter.valueReference.reference;
      json = json.replaceAll(`%${parameter.name}.id`, reference.slice(reference.indexOf('/') + 1));
      json = json.replaceAll(`%${parameter.name}`, reference);
    } else if (parameter.valueString !== undefined) {
      json = json.replaceAll(`%${parameter.name}`, parameter.valueString);
    }
  }
  return JSON.parse(json) as AccessPolicy;
}

/**
 * Narrows a policy with SMART scopes (stock `applySmartScopes`): scopes of the form
 * `(patient|user|system)/(Type|*).(read|write|*|c?r?u?d?s?)[?query]`. An entry is kept only for a
 * type the scopes name (a `*` entry is expanded per named type); scopes with read and search
 * letters only set the entry's `readonly` (which core ignores for an entry that lists its
 * interactions); a scope's query is added to the entry's criteria. Without
 * a single resource scope the policy is unchanged.
 * @param policy - The membership's policy.
 * @param scope - The login's space-separated scopes.
 * @returns The narrowed policy.
 */
export function applySmartScopes(policy: AccessPolicy, scope: string | undefined): AccessPolicy {
  const scopes = parseSmartScopes(scope);
  if (scopes.length === 0) {
    return policy;
  }
  const resource: AccessPolicyResource[] = [];
  for (const entry of policy.resource ?? []) {
    for (const smart of scopes) {
      let resourceType: string | undefined;
      if (smart.resourceType === '*' || smart.resourceType === entry.resourceType) {
        resourceType = entry.resourceType;
      } else if (entry.resourceType === '*') {
        resourceType = smart.resourceType;
      }
      if (!resourceType) {
        continue;
      }
      const narrowed: AccessPolicyResource = { ...entry, resourceType };
      if (smart.readOnly) {
        // As the stock `mergeAccessPolicyWithScope`: the entry becomes `readonly`, which core
        // ignores when the entry lists its interactions, so a read scope narrows only entries
        // that do not.
        narrowed.readonly = true;
      }
      if (smart.query) {
        narrowed.criteria = narrowed.criteria ? `${narrowed.criteria}&${smart.query}` : `${resourceType}?${smart.query}`;
      }
      resource.push(narrowed);
    }
  }
  return { ...policy, resource };
}

interface SmartScope {
  readonly resourceType: string;
  readonly readOnly: boolean;
  readonly query?: string;
}

function parseSmartScopes(scope: string | undefined): SmartScope[] {
  const result: SmartScope[] = [];
  for (const token of (scope ?? '').split(/\s+/)) {
    const [main, query] = token.split('?', 2);
    const match = /^(patient|user|system)\/(\w+|\*)\.(read|write|\*|c?r?u?d?s?)$/.exec(main);
    if (!match || match[3] === '') {
      continue;
    }
    const permission = { read: 'rs', write: 'cud', '*': 'cruds' }[match[3]] ?? match[3];
    result.push({ resourceType: match[2], readOnly: !/[cud]/.test(permission), query: query || undefined });
  }
  return result;
}

/**
 * The project admin rules of the stock `applyProjectAdminAccessPolicy`: for a non-admin every
 * entry naming an admin type is removed; an admin may read and edit its own Project (features,
 * links and system settings read-only; super-admin flags and secrets hidden) and its memberships
 * (project and user read-only), and read UserSecurityRequests.
 * @param policy - The policy.
 * @param project - The member's project.
 * @param membership - The member.
 * @returns The policy with the admin rules applied.
 */
export function applyProjectAdminRules(policy: AccessPolicy, project: Project, membership: ProjectMembership): AccessPolicy {
  const resource = (policy.resource ?? []).filter((r) => !ADMIN_TYPES.includes(r.resourceType as string));
  if (membership.admin) {
    resource.push(
      {
        resourceType: 'Project',
        criteria: `Project?_id=${project.id}`,
        interaction: ['read', 'vread', 'history', 'search', 'update'],
        readonlyFields: ['features', 'link', 'systemSetting'],
        hiddenFields: ['superAdmin', 'systemSecret', 'strictMode'],
      },
      { resourceType: 'ProjectMembership', readonlyFields: ['project', 'user'] },
      { resourceType: 'UserSecurityRequest', readonly: true },
      { resourceType: 'User', hiddenFields: ['passwordHash', 'mfaSecret'] }
    );
  }
  return { ...policy, resource };
}

/**
 * @param policy - The caller's policy.
 * @param interaction - The interaction.
 * @param resourceType - The type.
 * @returns True when some entry allows the interaction on the type (the stock 403 check).
 */
export function supportsInteraction(policy: AccessPolicy, interaction: AccessPolicyInteraction, resourceType: string): boolean {
  return accessPolicySupportsInteraction(policy, interaction, resourceType as ResourceType);
}

/**
 * @param policy - The caller's policy.
 * @param interaction - The interaction.
 * @param resource - The resource.
 * @returns True when an entry allows the interaction on this resource (type, criteria,
 * compartment).
 */
export function canPerformInteraction(policy: AccessPolicy, interaction: AccessPolicyInteraction, resource: Resource): boolean {
  return satisfiedAccessPolicy(resource, interaction, policy) !== undefined;
}

/**
 * The stock search filter (`addAccessPolicyFilters`): the entries for the searched type or `*`,
 * whatever their interactions; one without criteria lets everything through, otherwise a resource
 * must match the criteria of at least one.
 * @param policy - The caller's policy.
 * @param resourceType - The searched type.
 * @returns A predicate over the type's resources.
 */
export function searchFilter(policy: AccessPolicy, resourceType: string): (resource: Resource) => boolean {
  const entries = (policy.resource ?? []).filter(
    (r) => r.resourceType === resourceType || (r.resourceType === '*' && !ADMIN_TYPES.includes(resourceType))
  );
  if (resourceType === 'Binary' || entries.some((r) => !r.criteria && !r.compartment)) {
    return () => true;
  }
  const requests = entries.map((r) => {
    const criteria = r.criteria ?? `${resourceType}?`;
    const parsed = parseSearchRequest(criteria.startsWith('*?') ? resourceType + criteria.slice(1) : criteria);
    return { request: { ...parsed, resourceType: resourceType as ResourceType }, compartment: r.compartment?.reference };
  });
  return (resource) =>
    requests.some(
      ({ request, compartment }) =>
        (!compartment || Boolean(resource.meta?.compartment?.some((c) => c.reference === compartment))) &&
        matchesSearchRequest(resource, request)
    );
}

/**
 * Removes the hidden fields of the first entry that lets the caller read the resource (stock
 * `removeHiddenFields`).
 * @param policy - The caller's policy.
 * @param resource - A resource about to be returned (changed in place).
 * @returns The same resource.
 */
export function removeHiddenFields<T extends Resource>(policy: AccessPolicy, resource: T): T {
  const entry = satisfiedAccessPolicy(resource, 'read', policy);
  for (const path of entry?.hiddenFields ?? []) {
    removeField(resource, path);
  }
  return resource;
}

/**
 * What a write may not set (stock `restoreReadonlyFields`): the read-only and hidden fields of the
 * entry that allows the write are removed from the input; on update the top-level ones are copied
 * back from the current version. Nested paths are removed and not restored, as on the stock
 * server.
 * @param policy - The caller's policy.
 * @param input - The resource as sent (changed in place).
 * @param existing - The current version, on update.
 * @returns The input.
 */
export function restoreReadonlyFields<T extends Resource>(policy: AccessPolicy, input: T, existing: T | undefined): T {
  const entry = existing ? satisfiedAccessPolicy(existing, 'update', policy) : satisfiedAccessPolicy(input, 'create', policy);
  const paths = [...(entry?.readonlyFields ?? []), ...(entry?.hiddenFields ?? [])];
  for (const path of paths) {
    removeField(input, path);
    if (existing && !path.includes('.') && !path.endsWith('[x]')) {
      const value = (existing as unknown as Record<string, unknown>)[path];
      if (value !== undefined) {
        (input as unknown as Record<string, unknown>)[path] = deepClone(value);
      }
    }
  }
  return input;
}

/**
 * The stock "check after the write" (`isResourceWriteable`): an entry must allow the interaction
 * on the result, and every write constraint of that entry must evaluate to exactly `true`, with
 * `%before` (the current version) and `%after` (the result).
 * @param policy - The caller's policy.
 * @param existing - The current version, if any.
 * @param result - The version to write.
 * @param interaction - `create` or `update`.
 * @returns True when the write is allowed.
 */
export function isResourceWriteable(
  policy: AccessPolicy,
  existing: Resource | undefined,
  result: Resource,
  interaction: 'create' | 'update'
): boolean {
  const entry = satisfiedAccessPolicy(result, interaction, policy);
  if (!entry) {
    return false;
  }
  const after = toTypedValue(result);
  const variables = { '%before': existing ? toTypedValue(existing) : { type: 'undefined', value: undefined }, '%after': after };
  return (entry.writeConstraint ?? []).every((constraint) => {
    if (!constraint.expression) {
      return true;
    }
    const values = evalFhirPathTyped(constraint.expression, [after], variables);
    return values.length === 1 && values[0].value === true;
  });
}

/**
 * Deletes a dotted path from an object, through arrays.
 * @param target - The object.
 * @param path - E.g. `note` or `name.family`.
 */
function removeField(target: unknown, path: string): void {
  const [head, ...rest] = path.split('.');
  if (Array.isArray(target)) {
    for (const item of target) {
      removeField(item, path);
    }
    return;
  }
  if (!target || typeof target !== 'object') {
    return;
  }
  const record = target as Record<string, unknown>;
  if (rest.length === 0) {
    delete record[head];
    return;
  }
  removeField(record[head], rest.join('.'));
}
