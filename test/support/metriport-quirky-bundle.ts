import type { Bundle, Condition, DocumentReference, Encounter, Observation, Provenance } from '@medplum/fhirtypes';

/** The Metriport patient id of {@link quirkyBundle}. */
export const MP = '0195a0b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b';
export const ENC = 'b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e';
export const COND = 'C1D2E3F4-A5B6-4C7D-8E9F-0A1B2C3D4E5F';

/** A small consolidated bundle with Metriport's quirks: mixed-case UUIDs, urn:id, a cycle, a dangling reference. */
export function quirkyBundle(): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: 7,
    entry: [
      { fullUrl: `urn:uuid:${MP}`, resource: { resourceType: 'Patient', id: MP, name: [{ family: 'Metriport', given: ['Copy'] }] } },
      {
        fullUrl: `urn:uuid:${ENC}`,
        resource: {
          resourceType: 'Encounter',
          id: ENC,
          status: 'finished',
          class: { code: 'AMB' },
          subject: { reference: `Patient/${MP}` },
          diagnosis: [{ condition: { reference: `Condition/${COND.toLowerCase()}` } }],
          participant: [{ individual: { reference: 'Practitioner/prac-1' } }],
        } as Encounter,
      },
      {
        fullUrl: `urn:uuid:${COND}`,
        resource: {
          resourceType: 'Condition',
          id: COND,
          subject: { reference: `Patient/${MP}` },
          encounter: { reference: `urn:uuid:${ENC.toUpperCase()}` },
          code: { text: 'Hypertension' },
        } as Condition,
      },
      { fullUrl: 'urn:id:prac-1', resource: { resourceType: 'Practitioner', id: 'prac-1', name: [{ family: 'Osler' }] } },
      {
        fullUrl: 'urn:uuid:9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
        resource: {
          resourceType: 'Observation',
          id: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
          meta: { source: 'doc/123.xml', versionId: '7', lastUpdated: '2024-01-01T00:00:00Z' },
          status: 'final',
          code: { text: 'BP' },
          subject: { reference: `Patient/${MP}` },
          performer: [{ reference: 'Practitioner/not-in-bundle', display: 'Dr Absent' }],
          issued: '2024-03-05',
        } as Observation,
      },
      {
        fullUrl: 'urn:uuid:aa8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
        resource: {
          resourceType: 'Provenance',
          id: 'aa8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
          target: [{ reference: `Encounter/${ENC}` }],
          recorded: '2024-03-05T10:00',
          agent: [{ who: { reference: '#org' } }],
        } as Provenance,
      },
      {
        fullUrl: 'urn:uuid:bb8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
        resource: {
          resourceType: 'DocumentReference',
          id: 'bb8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
          status: 'current',
          contained: [{ resourceType: 'Organization', id: 'org', name: 'Clinic' }],
          author: [{ reference: '#org' }],
          subject: { reference: `Patient/${MP}` },
          content: [{ attachment: { contentType: 'text/plain', data: 'aGVsbG8=' } }],
          date: '2024-03-05',
        } as DocumentReference,
      },
      { resource: { resourceType: 'Binary', id: 'bin-1', contentType: 'text/plain' } },
    ],
  };
}
