import type { MedplumClient, WithId } from '@medplum/core';
import type { ExtractResource, ResourceType } from '@medplum/fhirtypes';
import { MANAGED_TAG_SYSTEM } from '../constants.ts';

/**
 * The `_tag` search value that finds a managed resource: the hub tags everything it manages with
 * its managed name, so the name (not the id, which differs per target) is the lookup key.
 * @param name - The managed name.
 * @returns `<managed-resource system>|<name>`.
 */
export function managedTagQuery(name: string): string {
  return `${MANAGED_TAG_SYSTEM}|${name}`;
}

/**
 * Searches the target for the resources of a type that carry a managed name's tag. Returns all of
 * them: callers decide what several matches mean (a duplicate to report, or resources of other
 * projects that a super admin also sees).
 * @param client - A logged-in client.
 * @param resourceType - The resource type.
 * @param name - The managed name.
 * @returns The tagged resources (the server's first page).
 */
export async function findManaged<K extends ResourceType>(
  client: MedplumClient,
  resourceType: K,
  name: string
): Promise<WithId<ExtractResource<K>>[]> {
  return client.searchResources(resourceType, { _tag: managedTagQuery(name) });
}
