import type { NamingSystem } from '@medplum/fhirtypes';

/** Identifier system of Aetna payer ids in the roster tests. */
export const AETNA = 'https://payers.example.org/sid/aetna';

/** A payer NamingSystem beside the seed's: HL7 IN1-3 `...^^^AETNA` and roster `payer_id_authority` AETNA both use it. */
export const AETNA_PAYER_NAMING_SYSTEM: NamingSystem = {
  resourceType: 'NamingSystem',
  name: 'AetnaPayerIds',
  status: 'active',
  kind: 'identifier',
  date: '2026-01-01',
  uniqueId: [
    { type: 'uri', value: AETNA, preferred: true },
    { type: 'other', value: 'AETNA' },
  ],
};
