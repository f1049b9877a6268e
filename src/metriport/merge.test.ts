import type { WithId } from '@medplum/core';
import { badRequest, MedplumClient, OperationOutcomeError, tooManyRequests, validateResource } from '@medplum/core';
import type { Bundle, Condition, DocumentReference, Encounter, Observation, Patient, Practitioner, Resource } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { describe, expect, test } from 'vitest';
import { useLocalAdmin } from '../../test/support/local-admin.ts';
import { COND, ENC, MP, quirkyBundle } from '../../test/support/metriport-quirky-bundle.ts';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import type { ImportItem } from './consolidated.ts';
import { prepareConsolidatedImport } from './consolidated.ts';
import { metriportResourceSystem } from './constants.ts';
import { classifyFailure } from '../fhir/failures.ts';
import { mergeImported, mergePreparedImport, orderedGroups } from './merge.ts';
import { resourceValidator } from './process-task.ts';

const admin = useLocalAdmin();
loadFhirDefinitions();
const check = resourceValidator(validateResource);

async function createPatient(): Promise<WithId<Patient>> {
  return admin.medplum.createResource<Patient>({ resourceType: 'Patient', name: [{ family: 'Rivera', given: ['Ana'] }], identifier: [{ system: 'urn:mrn', value: 'M1' }] });
}

/**
 * A second admin client on the test runtime whose batches and transactions go through
 * `intercept`, to play what the server or the network does to a request.
 */
async function interceptedClient(intercept: (bundle: Bundle, send: (bundle: Bundle) => Promise<Bundle>) => Promise<Bundle>): Promise<MedplumClient> {
  const client = new MedplumClient({ baseUrl: admin.runtime.baseUrl });
  await client.startClientLogin(admin.runtime.adminCredentials.clientId, admin.runtime.adminCredentials.clientSecret);
  const send = client.executeBatch.bind(client);
  client.executeBatch = (bundle: Bundle) => intercept(bundle, send);
  return client;
}

async function byKey<T extends Resource>(resourceType: T['resourceType'], sourceId: string): Promise<WithId<T>[]> {
  const found = await admin.medplum.searchResources(resourceType, { identifier: `${metriportResourceSystem(resourceType)}|${sourceId}` });
  return found as unknown as WithId<T>[];
}

describe('mergePreparedImport', () => {
  test('writes every resource once, with references resolved to the stored ids and the Medplum patient', async () => {
    const patient = await createPatient();
    const result = await mergePreparedImport(admin.medplum, prepareConsolidatedImport(quirkyBundle(), MP, check), { patient: `Patient/${patient.id}` });
    expect(result).toMatchObject({ created: 6, updated: 0, unchanged: 0, failed: [] });

    const [encounter] = await byKey<Encounter>('Encounter', ENC);
    const [condition] = await byKey<Condition>('Condition', COND);
    const [practitioner] = await byKey<Practitioner>('Practitioner', 'prac-1');
    expect(encounter.subject?.reference).toBe(`Patient/${patient.id}`);
    expect(encounter.diagnosis?.[0].condition.reference).toBe(`Condition/${condition.id}`);
    expect(encounter.participant?.[0].individual?.reference).toBe(`Practitioner/${practitioner.id}`);
    expect(condition.encounter?.reference).toBe(`Encounter/${encounter.id}`);
    // The Metriport copy of the Patient is never written over the Medplum one.
    expect(await admin.medplum.readResource('Patient', patient.id)).toEqual(patient);
  });

  test('the same bundle again writes nothing', async () => {
    const patient = await createPatient();
    await mergePreparedImport(admin.medplum, prepareConsolidatedImport(quirkyBundle(), MP, check), { patient: `Patient/${patient.id}` });
    const again = await mergePreparedImport(admin.medplum, prepareConsolidatedImport(quirkyBundle(), MP, check), { patient: `Patient/${patient.id}` });
    expect(again).toMatchObject({ created: 0, updated: 0, unchanged: 6, failed: [], transactions: 0 });
  });

  test('an update keeps identifiers and elements from other feeds, and changes what Metriport changed', async () => {
    const patient = await createPatient();
    const bundle = (id: string, value: number): Bundle => ({
      resourceType: 'Bundle',
      type: 'searchset',
      entry: [
        {
          resource: {
            resourceType: 'Observation',
            id,
            status: 'final',
            code: { text: 'Weight' },
            subject: { reference: `Patient/${MP}` },
            valueQuantity: { value, unit: 'kg' },
          } as Observation,
        },
      ],
    });
    await mergePreparedImport(admin.medplum, prepareConsolidatedImport(bundle('obs-w', 70), MP, check), { patient: `Patient/${patient.id}` });
    const [stored] = await byKey<Observation>('Observation', 'obs-w');
    await admin.medplum.updateResource<Observation>({ ...stored, identifier: [...(stored.identifier ?? []), { system: 'urn:lab', value: 'L9' }], note: [{ text: 'checked' }] });
    const result = await mergePreparedImport(admin.medplum, prepareConsolidatedImport(bundle('obs-w', 71), MP, check), { patient: `Patient/${patient.id}` });
    expect(result).toMatchObject({ created: 0, updated: 1 });
    const [after] = await byKey<Observation>('Observation', 'obs-w');
    expect(after.valueQuantity?.value).toBe(71);
    expect(after.note).toEqual([{ text: 'checked' }]);
    expect(after.identifier).toContainEqual({ system: 'urn:lab', value: 'L9' });
  });

  test('small transactions: cycles stay together, later chunks reference what earlier ones created', async () => {
    const patient = await createPatient();
    // The same bundle with new ids (references follow, whatever their case).
    let text = JSON.stringify(quirkyBundle());
    for (const id of (quirkyBundle().entry ?? []).map((e) => e.resource?.id as string)) {
      text = text.replace(new RegExp(id.replace(/[-.]/g, '\\$&'), 'gi'), (found) => `${found}-x`);
    }
    const prepared = prepareConsolidatedImport(JSON.parse(text) as Bundle, `${MP}-x`, check);
    const result = await mergePreparedImport(admin.medplum, prepared, { patient: `Patient/${patient.id}`, maxEntries: 2 });
    expect(result.failed).toEqual([]);
    expect(result.created).toBe(6);
    expect(result.transactions).toBeGreaterThanOrEqual(3);
    const [encounter] = await byKey<Encounter>('Encounter', `${ENC}-x`);
    const [condition] = await byKey<Condition>('Condition', `${COND.toLowerCase()}-x`);
    expect(encounter.diagnosis?.[0].condition.reference).toBe(`Condition/${condition.id}`);
    expect(condition.encounter?.reference).toBe(`Encounter/${encounter.id}`);
  });

  test('a resource the server refuses is isolated and reported; the rest is written', async () => {
    const patient = await createPatient();
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      entry: ['a', 'b', 'c', 'd'].map((id) => ({
        resource: { resourceType: 'Observation', id: `refuse-${id}`, status: 'final', code: { text: id }, subject: { reference: `Patient/${MP}` } } as Observation,
      })),
    };
    // No validation here: the server's validation refuses the bad one inside a transaction.
    delete (bundle.entry?.[2].resource as Partial<Observation>).code;
    const result = await mergePreparedImport(admin.medplum, prepareConsolidatedImport(bundle, MP), { patient: `Patient/${patient.id}` });
    expect(result.created).toBe(3);
    expect(result.failed).toHaveLength(1);
    expect(result.failed[0].reference).toBe('Observation/refuse-c');
    expect(result.failed[0].reason).toMatch(/refused by the server/);
  });

  test('a 429 waits and resumes; an answer lost after the commit is looked up, not written twice', async () => {
    const patient = await createPatient();
    let transactions = 0;
    const client = await interceptedClient(async (bundle, send) => {
      if (bundle.type === 'transaction' && ++transactions <= 2) {
        if (transactions === 1) {
          throw new OperationOutcomeError(tooManyRequests);
        }
        await send(bundle);
        throw new TypeError('fetch failed: socket hang up');
      }
      return send(bundle);
    });
    const waits: number[] = [];
    const bundle = JSON.parse(JSON.stringify(quirkyBundle()).replaceAll('prac-1', 'prac-flaky')) as Bundle;
    const prepared = prepareConsolidatedImport(bundle, MP, check);
    // A fresh Practitioner key, the rest already stored by the first test: the chunk holds one create.
    const result = await mergePreparedImport(client, prepared, { patient: `Patient/${patient.id}`, sleep: async (ms) => waits.push(ms) });
    expect(waits).toEqual([2000]);
    expect(result.failed).toEqual([]);
    expect(await byKey<Practitioner>('Practitioner', 'prac-flaky')).toHaveLength(1);
  });

  test('lookups answered 429 (a batch over the FHIR quota) wait and are sent again', async () => {
    const patient = await createPatient();
    let lookups = 0;
    const client = await interceptedClient(async (bundle, send) => {
      if (bundle.type === 'batch' && ++lookups === 1) {
        return { resourceType: 'Bundle', type: 'batch-response', entry: (bundle.entry ?? []).map(() => ({ response: { status: '429', outcome: tooManyRequests } })) };
      }
      return send(bundle);
    });
    const waits: number[] = [];
    const result = await mergePreparedImport(client, prepareConsolidatedImport(quirkyBundle(), MP, check), { patient: `Patient/${patient.id}`, sleep: async (ms) => waits.push(ms) });
    expect(waits).toEqual([2000]);
    // Everything was found (stored by earlier cases): nothing created twice.
    expect(result).toMatchObject({ failed: [], created: 0 });
  });

  test('a 4xx refusal is isolated; failures that persist are reported, never retried forever', async () => {
    expect(classifyFailure(new OperationOutcomeError(tooManyRequests))).toBe('throttled');
    expect(classifyFailure(new OperationOutcomeError(badRequest('bad')))).toBe('refused');
    expect(classifyFailure(new TypeError('fetch failed'))).toBe('transient');
    expect(classifyFailure({ outcome: { resourceType: 'OperationOutcome', id: 'precondition-failed', issue: [] } })).toBe('conflict');
    const patient = await createPatient();
    const client = await interceptedClient(async (bundle, send) => {
      if (bundle.type === 'transaction') {
        throw new TypeError('fetch failed');
      }
      return send(bundle);
    });
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      entry: [{ resource: { resourceType: 'Observation', id: 'never-written', status: 'final', code: { text: 'x' } } as Observation }],
    };
    const result = await mergePreparedImport(client, prepareConsolidatedImport(bundle, MP, check), { patient: `Patient/${patient.id}`, sleep: async () => undefined });
    expect(result.failed).toEqual([{ reference: 'Observation/never-written', reason: 'not written after retries: fetch failed' }]);
    expect(result.transactions).toBe(5);
  });

  test('a document too large to travel inline is stored as a Binary, once', async () => {
    const patient = await createPatient();
    const text = 'Discharge summary. '.repeat(60_000);
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      entry: [
        {
          resource: {
            resourceType: 'DocumentReference',
            id: 'big-doc',
            status: 'current',
            subject: { reference: `Patient/${MP}` },
            content: [{ attachment: { contentType: 'text/plain', title: 'summary', data: Buffer.from(text).toString('base64') } }],
          } as DocumentReference,
        },
      ],
    };
    const first = await mergePreparedImport(admin.medplum, prepareConsolidatedImport(bundle, MP, check), { patient: `Patient/${patient.id}` });
    expect(first).toMatchObject({ created: 1, failed: [] });
    const [stored] = await byKey<DocumentReference>('DocumentReference', 'big-doc');
    const attachment = stored.content[0].attachment;
    expect(attachment.data).toBeUndefined();
    expect(attachment).toMatchObject({ contentType: 'text/plain', title: 'summary', size: Buffer.byteLength(text) });
    // Read back, the server presents `Binary/<id>` as a presigned storage URL, as the stock server does.
    const binaryId = /\/storage\/([^/?]+)\//.exec(attachment.url as string)?.[1] as string;
    expect(binaryId).toBeDefined();
    const content = await admin.medplum.download(admin.medplum.fhirUrl('Binary', binaryId));
    expect(await content.text()).toBe(text);
    const again = await mergePreparedImport(admin.medplum, prepareConsolidatedImport(bundle, MP, check), { patient: `Patient/${patient.id}` });
    expect(again).toMatchObject({ created: 0, updated: 0, unchanged: 1 });
  });

  test('a key found on two stored resources is reported, not guessed', async () => {
    const patient = await createPatient();
    const key = { system: metriportResourceSystem('Observation'), value: 'twice' };
    for (let i = 0; i < 2; i++) {
      await admin.medplum.createResource<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, identifier: [key] });
    }
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      entry: [{ resource: { resourceType: 'Observation', id: 'twice', status: 'final', code: { text: 'x' } } as Observation }],
    };
    const result = await mergePreparedImport(admin.medplum, prepareConsolidatedImport(bundle, MP, check), { patient: `Patient/${patient.id}` });
    expect(result.failed).toEqual([{ reference: 'Observation/twice', reason: expect.stringMatching(/matches 2 stored resources/) }]);
  });
});

describe('orderedGroups', () => {
  const item = (index: number, references: number[]): ImportItem => ({
    index,
    resourceType: 'Basic',
    sourceId: String(index),
    key: { kind: 'identifier', system: 's', value: String(index) },
    resource: { resourceType: 'Basic', code: {} },
    references,
  });

  test('emits dependencies first and keeps cycles together', () => {
    // 0 → 1 ⇄ 2 → 3; 4 alone.
    const groups = orderedGroups([item(0, [1]), item(1, [2]), item(2, [1, 3]), item(3, []), item(4, [])], () => false);
    const position = (i: number): number => groups.findIndex((g) => g.includes(i));
    expect(groups.find((g) => g.includes(1))?.sort()).toEqual([1, 2]);
    expect(position(3)).toBeLessThan(position(1));
    expect(position(1)).toBeLessThan(position(0));
    expect(groups.flat().sort()).toEqual([0, 1, 2, 3, 4]);
  });

  test('references to stored resources create no dependency', () => {
    const groups = orderedGroups([item(0, [1]), item(1, [0])], (i) => i === 1);
    expect(groups).toEqual([[0], [1]]);
  });

  test('a long chain does not overflow the stack', () => {
    const items = Array.from({ length: 100_000 }, (_, i) => item(i, i + 1 < 100_000 ? [i + 1] : []));
    const groups = orderedGroups(items, () => false);
    expect(groups[0]).toEqual([99_999]);
    expect(groups.at(-1)).toEqual([0]);
  });
});

describe('mergeImported', () => {
  test('incoming elements win, stored-only elements, identifiers and tags stay, meta is the stored one', () => {
    const stored = {
      resourceType: 'Observation',
      id: 'o1',
      meta: { versionId: '3', tag: [{ system: 't', code: 'a' }] },
      status: 'final',
      code: { text: 'x' },
      note: [{ text: 'kept' }],
      identifier: [{ system: 'urn:other', value: '1' }],
    } as WithId<Observation>;
    const incoming = { resourceType: 'Observation', meta: { source: 'doc', tag: [{ system: 't', code: 'b' }] }, status: 'amended', code: { text: 'x' }, identifier: [{ system: 'urn:mp', value: '9' }] } as Observation;
    expect(mergeImported(stored, incoming)).toEqual({
      ...stored,
      status: 'amended',
      meta: { versionId: '3', source: 'doc', tag: [{ system: 't', code: 'a' }, { system: 't', code: 'b' }] },
      identifier: [{ system: 'urn:other', value: '1' }, { system: 'urn:mp', value: '9' }],
    });
  });
});
