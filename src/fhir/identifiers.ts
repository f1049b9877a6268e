import type { Identifier } from '@medplum/fhirtypes';

/**
 * Merges identifiers: keeps every existing one (other feeds' identifiers are never dropped) and
 * adds the incoming ones whose `system|value` is not present yet.
 * @param existing - Identifiers on the stored resource.
 * @param incoming - Identifiers from the message.
 * @returns The merged list.
 */
export function mergeIdentifiers(existing: Identifier[] | undefined, incoming: Identifier[] | undefined): Identifier[] {
  const result = [...(existing ?? [])];
  const keys = new Set(result.map(identifierKey));
  for (const identifier of incoming ?? []) {
    const key = identifierKey(identifier);
    if (!keys.has(key)) {
      keys.add(key);
      result.push(identifier);
    }
  }
  return result;
}

/**
 * @param identifier - An identifier.
 * @returns Its search token `system|value`.
 */
export function identifierKey(identifier: Identifier): string {
  return `${identifier.system ?? ''}|${identifier.value ?? ''}`;
}
