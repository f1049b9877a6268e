import type { MedplumClient } from '@medplum/core';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { HL7_SENDER_SYSTEM } from '../constants.ts';
import { tokens } from '../fhir/writer.ts';
import { mappingConfigFrom } from '../mapping/config-files.ts';
import type { MappingConfig } from '../mapping/context.ts';

/**
 * Reads the mapping configuration from the server in one batch: active NamingSystems and
 * ConceptMaps, and the settings of this sender (and the default sender entry).
 * @param medplum - The client.
 * @param sendingFacility - MSH-4.1.
 * @returns The configuration.
 */
export async function loadMappingConfig(medplum: MedplumClient, sendingFacility: string): Promise<MappingConfig> {
  const senders = tokens([sendingFacility, '*'].filter(Boolean).map((value) => ({ system: HL7_SENDER_SYSTEM, value })));
  const response = await medplum.executeBatch({
    resourceType: 'Bundle',
    type: 'batch',
    entry: [
      { request: { method: 'GET', url: 'NamingSystem?status=active&_count=1000' } },
      { request: { method: 'GET', url: 'ConceptMap?status=active&_count=1000' } },
      { request: { method: 'GET', url: `Organization?identifier=${encodeURIComponent(senders)}&_count=10` } },
    ],
  });
  const resources: Resource[] = [];
  for (const entry of response.entry ?? []) {
    const status = entry.response?.status ?? '';
    if (!status.startsWith('2')) {
      throw new Error(`Reading the mapping configuration failed (${status})`);
    }
    for (const e of (entry.resource as Bundle | undefined)?.entry ?? []) {
      if (e.resource) {
        resources.push(e.resource);
      }
    }
  }
  return mappingConfigFrom(resources);
}
