import type { Coding, Organization, Resource } from '@medplum/fhirtypes';
import { HL7_SENDER_SYSTEM, HUB_URI } from '../constants.ts';

/**
 * Which organizations' data a resource is: one `meta.tag` per organization, code = the
 * Organization's id. A resource a message creates or changes belongs to the organization whose
 * feed sent it and to every organization its patient already belongs to, so that a lab's results
 * for a hospital's patient are visible to the hospital's clinicians. Tags alone never make a
 * new version except the sender's on the Patient (src/fhir/writer.ts), so re-sending a message
 * stays a no-op; data written before a patient gained an organization keeps its owners. AccessPolicies select an organization's patients and their data
 * with `_tag=<system>|%organization.id` (access-policies/clinician.json), a plain token criteria
 * that `@medplum/core`'s matcher and the stock server's SQL both evaluate; criteria cannot chain
 * from an Observation to its Patient's organization.
 */
export const OWNER_ORGANIZATION_SYSTEM = `${HUB_URI}/CodeSystem/owner-organization`;

/**
 * @param resource - A resource about to be written.
 * @param organizationIds - The ids of the Organizations whose data it is.
 * @returns The resource with those organizations' tags added (other tags kept; a copy only when
 * a tag is new).
 */
export function withOwnerTags<T extends Resource>(resource: T, organizationIds: readonly string[]): T {
  const missing = organizationIds.filter((id) => !hasOwnerTag(resource, id));
  if (missing.length === 0) {
    return resource;
  }
  const tags: Coding[] = missing.map((code) => ({ system: OWNER_ORGANIZATION_SYSTEM, code }));
  return { ...resource, meta: { ...resource.meta, tag: [...(resource.meta?.tag ?? []), ...tags] } };
}

/**
 * @param resource - A stored resource.
 * @param organizationId - An Organization id.
 * @returns True when the resource carries the organization's tag.
 */
export function hasOwnerTag(resource: Resource, organizationId: string): boolean {
  return Boolean(resource.meta?.tag?.some((t) => t.system === OWNER_ORGANIZATION_SYSTEM && t.code === organizationId));
}

/**
 * @param resource - A stored resource.
 * @returns The ids of the organizations whose data it is.
 */
export function ownerOrganizations(resource: Resource | undefined): string[] {
  return (resource?.meta?.tag ?? []).filter((t) => t.system === OWNER_ORGANIZATION_SYSTEM && t.code).map((t) => t.code as string);
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
