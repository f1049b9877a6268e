import type { ConceptMap, NamingSystem, Organization, Resource } from '@medplum/fhirtypes';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HL7_SENDER_SYSTEM } from '../constants.ts';
import type { MappingConfig } from './context.ts';

/**
 * Picks the mapping configuration out of a set of resources: NamingSystems, ConceptMaps, and
 * Organizations that identify an HL7 sender.
 * @param resources - Any resources (e.g. a search result, or the seed/ folder).
 * @returns The configuration.
 */
export function mappingConfigFrom(resources: readonly Resource[]): MappingConfig {
  return {
    namingSystems: resources.filter((r): r is NamingSystem => r.resourceType === 'NamingSystem' && r.status !== 'retired'),
    conceptMaps: resources.filter((r): r is ConceptMap => r.resourceType === 'ConceptMap' && r.status !== 'retired'),
    senders: resources.filter(
      (r): r is Organization =>
        r.resourceType === 'Organization' && Boolean(r.identifier?.some((i) => i.system === HL7_SENDER_SYSTEM))
    ),
  };
}

/**
 * Reads the mapping configuration from a folder of resource files (the hub's seed/), as
 * deploy would write it to the server. For tests and tools; bots read it from the server.
 * @param dir - The folder.
 * @returns The configuration.
 */
export function readMappingConfigFiles(dir: string): MappingConfig {
  const resources = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Resource);
  return mappingConfigFrom(resources);
}
