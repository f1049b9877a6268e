import type { Coding, Organization, Resource } from '@medplum/fhirtypes';
import { HL7_SENDER_SYSTEM, HUB_URI } from '../constants.ts';

/**
 * Which organizations' data a resource is: one `meta.tag` per organization whose feed wrote it,
 * code = the Organization's id. AccessPolicies select an organization's patients and their data
 * with `_tag=<system>|%organization.id` (access-policies/clinician.json), a plain token criteria
 * that `@medplum/core`'s matcher and the stock server's SQL both evaluate; criteria cannot chain
 * from an Observation to its Patient's organization.
 */
export const OWNER_ORGANIZATION_SYSTEM = `${HUB_URI}/CodeSystem/owner-organization`;

/**
 * @param resource - A resource about to be written.
 * @param organizationId - The id of the Organization whose feed writes it.
 * @returns The resource with that organization's tag added (other tags kept; a copy only when
 * the tag is new).
 */
export function withOwnerTag<T extends Resource>(resource: T, organizationId: string | undefined): T {
  if (!organizationId || hasOwnerTag(resource, organizationId)) {
    return resource;
  }
  const tag: Coding = { system: OWNER_ORGANIZATION_SYSTEM, code: organizationId };
  return { ...resource, meta: { ...resource.meta, tag: [...(resource.meta?.tag ?? []), tag] } };
}

/**
 * @param resource - A stored resource.
 * @param organizationId - An Organization id, or undefined.
 * @returns True when the resource carries the organization's tag (or none is asked for).
 */
export function hasOwnerTag(resource: Resource, organizationId: string | undefined): boolean {
  return !organizationId || Boolean(resource.meta?.tag?.some((t) => t.system === OWNER_ORGANIZATION_SYSTEM && t.code === organizationId));
}

/**
 * @param senders - The sender Organizations of the mapping configuration.
 * @param sendingFacility - MSH-4.1.
 * @returns The id of the Organization that is this sending facility (not the `*` defaults).
 */
export function senderOrganizationId(senders: readonly Organization[], sendingFacility: string): string | undefined {
  if (!sendingFacility) {
    return undefined;
  }
  return senders.find((o) => o.identifier?.some((i) => i.system === HL7_SENDER_SYSTEM && i.value === sendingFacility))?.id;
}
