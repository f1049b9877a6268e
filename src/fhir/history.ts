import type { MedplumClient } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';

/**
 * When a resource was created: `lastUpdated` moves with every update, the first version's stays.
 * @param medplum - The client.
 * @param resourceType - The resource type.
 * @param id - The resource id.
 * @returns The first version's `lastUpdated` (epoch ms), or undefined when the history has none.
 */
export async function createdTime(medplum: MedplumClient, resourceType: Resource['resourceType'], id: string): Promise<number | undefined> {
  const history = await medplum.readHistory(resourceType, id, { count: 1000 });
  const times = (history.entry ?? [])
    .map((e) => Date.parse(e.resource?.meta?.lastUpdated ?? e.response?.lastModified ?? ''))
    .filter((t) => !Number.isNaN(t));
  return times.length ? Math.min(...times) : undefined;
}
