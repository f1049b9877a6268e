import { getStatus, isOk } from '@medplum/core';
import type { FhirResponse, HttpMethod } from '@medplum/fhir-router';
import { FhirRouter } from '@medplum/fhir-router';
import type { Bundle, BundleEntry, OperationOutcome, Patient, Resource } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { HubRepository } from './repo.ts';
import type { ResourceChange } from './store.ts';
import { ResourceStore } from './store.ts';

const BASE = 'http://127.0.0.1:9999/fhir/R4/';
const AUTHOR = { reference: 'ClientApplication/11111111-1111-4111-8111-111111111111' };
const PROJECT = '22222222-2222-4222-8222-222222222222';
const SYS = 'https://hub.example/mrn';

let store: ResourceStore;
let repo: HubRepository;
let router: FhirRouter;
let changes: ResourceChange[];

beforeAll(() => {
  loadFhirDefinitions();
  store = new ResourceStore();
  store.onCommit((c) => changes.push(...c));
  changes = [];
  repo = new HubRepository(store, { author: AUTHOR, projectId: PROJECT, fhirBaseUrl: BASE });
  router = new FhirRouter();
});

interface Result<T extends Resource = Resource> {
  status: number;
  outcome: OperationOutcome;
  resource: T;
}

async function call<T extends Resource = Resource>(
  method: HttpMethod,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
  transactions = true
): Promise<Result<T>> {
  const [outcome, resource] = (await router.handleRequest(
    { method, url, pathname: '', body, params: {}, query: {}, headers, config: { transactions } },
    repo
  )) as FhirResponse;
  return { status: getStatus(outcome), outcome, resource: resource as T };
}

function patient(mrn: string, extra: Partial<Patient> = {}): Patient {
  return { resourceType: 'Patient', identifier: [{ system: SYS, value: mrn }], name: [{ family: mrn }], ...extra };
}

function issueText(outcome: OperationOutcome): string {
  return (outcome.issue ?? []).map((i) => i.details?.text ?? i.diagnostics ?? '').join(' ');
}

describe('HubRepository through FhirRouter', () => {
  test('create assigns id and meta, ignoring a client-supplied id', async () => {
    const before = Date.now();
    const created = await call<Patient>('POST', 'Patient', { ...patient('meta-1'), id: 'client-chosen' });
    expect(created.status).toBe(201);
    const p = created.resource;
    expect(p.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(p.id).not.toBe('client-chosen');
    expect(p.meta?.versionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(p.meta?.lastUpdated as string)).toBeGreaterThanOrEqual(before - 1);
    expect(p.meta?.author).toEqual(AUTHOR);
    expect(p.meta?.project).toBe(PROJECT);
    const read = await call<Patient>('GET', 'Patient/' + p.id);
    expect(read.status).toBe(200);
    expect(read.resource).toEqual(p);
  });

  test('a type whose identifier is a single Identifier (Composition) is stored and found by it', async () => {
    const composition = {
      resourceType: 'Composition',
      status: 'final',
      type: { text: 'Summary' },
      date: '2024-01-01',
      author: [{ display: 'A' }],
      title: 'Summary',
      identifier: { system: SYS, value: 'comp-1' },
    };
    expect((await call('POST', 'Composition', composition)).status).toBe(201);
    const found = await call<Bundle>('GET', `Composition?identifier=${SYS}|comp-1`);
    expect(found.resource.entry).toHaveLength(1);
  });

  test('an OR list of identifiers finds each match once, and the other filters still apply', async () => {
    for (const [value, gender] of [['or-1', 'female'], ['or-2', 'male'], ['or-3', 'female']]) {
      await call('POST', 'Patient', { resourceType: 'Patient', gender, identifier: [{ system: SYS, value }, { system: 'urn:other', value }] });
    }
    const tokens = ['or-1', 'or-2', 'or-3', 'or-missing'].map((v) => `${SYS}|${v}`).join(',');
    const all = await call<Bundle<Patient>>('GET', `Patient?identifier=${tokens}`);
    expect(all.resource.entry?.map((e) => e.resource?.identifier?.[0].value).sort()).toEqual(['or-1', 'or-2', 'or-3']);
    const women = await call<Bundle<Patient>>('GET', `Patient?identifier=${tokens}&gender=female`);
    expect(women.resource.entry?.map((e) => e.resource?.identifier?.[0].value).sort()).toEqual(['or-1', 'or-3']);
  });

  test('invalid resources are refused with a 400 OperationOutcome', async () => {
    const badDate = await call('POST', 'Patient', { resourceType: 'Patient', birthDate: 'not-a-date' });
    expect(badDate.status).toBe(400);
    expect(badDate.outcome.resourceType).toBe('OperationOutcome');
    expect(badDate.outcome.issue?.[0]?.expression?.[0]).toContain('birthDate');

    const unknown = await call('POST', 'Patient', { resourceType: 'Patient', favouriteColour: 'blue' });
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.outcome)).toContain('favouriteColour');
  });

  test('a no-op update keeps the versionId and emits no change; a real update makes a new version', async () => {
    const p = (await call<Patient>('POST', 'Patient', patient('noop'))).resource;
    changes.length = 0;
    const same = await call<Patient>('PUT', 'Patient/' + p.id, { ...p, meta: { ...p.meta, lastUpdated: undefined } });
    expect(same.status).toBe(200);
    expect(same.resource.meta?.versionId).toBe(p.meta?.versionId);
    expect(changes).toHaveLength(0);

    const changed = await call<Patient>('PUT', 'Patient/' + p.id, { ...p, gender: 'female' });
    expect(changed.resource.meta?.versionId).not.toBe(p.meta?.versionId);
    expect(changes.map((c) => c.interaction)).toEqual(['update']);
    expect((changes[0].previous as Patient).gender).toBeUndefined();
  });

  test('PUT to an id that never existed is 404 (only super admins may choose ids)', async () => {
    const res = await call('PUT', 'Patient/33333333-3333-4333-8333-333333333333', {
      ...patient('put-new'),
      id: '33333333-3333-4333-8333-333333333333',
    });
    expect(res.status).toBe(404);
  });

  test('If-Match mismatch gives 412, a match updates', async () => {
    const p = (await call<Patient>('POST', 'Patient', patient('ifmatch'))).resource;
    const stale = await call('PUT', 'Patient/' + p.id, { ...p, gender: 'male' }, { 'if-match': 'W/"not-the-version"' });
    expect(stale.status).toBe(412);
    const ok = await call('PUT', 'Patient/' + p.id, { ...p, gender: 'male' }, { 'if-match': `W/"${p.meta?.versionId}"` });
    expect(ok.status).toBe(200);
  });

  test('delete leaves a 410 tombstone visible in history; vread still reads old versions', async () => {
    const v1 = (await call<Patient>('POST', 'Patient', patient('del'))).resource;
    const v2 = (await call<Patient>('PUT', 'Patient/' + v1.id, { ...v1, gender: 'other' })).resource;
    expect((await call('DELETE', 'Patient/' + v1.id)).status).toBe(200);
    expect((await call('GET', 'Patient/' + v1.id)).status).toBe(410);
    // Deleting again is fine; deleting something that never existed is 404.
    expect((await call('DELETE', 'Patient/' + v1.id)).status).toBe(200);
    expect((await call('DELETE', 'Patient/44444444-4444-4444-8444-444444444444')).status).toBe(404);

    const history = (await call<Bundle>('GET', `Patient/${v1.id}/_history`)).resource;
    expect(history.type).toBe('history');
    const entries = history.entry as BundleEntry[];
    expect(entries.map((e) => e.response?.status)).toEqual(['410', '200', '200']);
    expect(entries[0].resource).toBeUndefined();
    expect(entries[0].response?.outcome?.issue?.[0]?.code).toBe('deleted');
    expect(entries[1].resource?.meta?.versionId).toBe(v2.meta?.versionId);
    expect(entries[2].resource?.meta?.versionId).toBe(v1.meta?.versionId);
    expect(entries[1].request?.url).toBe(`Patient/${v1.id}/_history/${v2.meta?.versionId}`);
    expect(entries[0].request?.url).not.toBe(entries[1].request?.url);

    const vread = await call<Patient>('GET', `Patient/${v1.id}/_history/${v1.meta?.versionId}`);
    expect(vread.status).toBe(200);
    expect(vread.resource.gender).toBeUndefined();
    expect((await call('GET', `Patient/${v1.id}/_history/nope`)).status).toBe(404);
  });

  test('search pages 20 by default with links, and honours _count, _offset, _sort, _summary=count, _total', async () => {
    for (let i = 0; i < 25; i++) {
      await call('POST', 'Patient', patient('page-' + String(i).padStart(2, '0'), { gender: 'unknown' }));
    }
    const first = (await call<Bundle<Patient>>('GET', 'Patient?gender=unknown')).resource;
    expect(first.entry).toHaveLength(20);
    expect(first.total).toBeUndefined();
    const relations = first.link?.map((l) => l.relation);
    expect(relations).toEqual(expect.arrayContaining(['self', 'first', 'next']));
    const next = first.link?.find((l) => l.relation === 'next')?.url as string;
    expect(next.startsWith(BASE + 'Patient?')).toBe(true);
    const second = (await call<Bundle<Patient>>('GET', next.slice(BASE.length))).resource;
    expect(second.entry).toHaveLength(5);
    expect(second.link?.some((l) => l.relation === 'next')).toBe(false);
    expect(second.link?.some((l) => l.relation === 'previous')).toBe(true);

    const sorted = (await call<Bundle<Patient>>('GET', 'Patient?gender=unknown&_sort=-family&_count=3&_offset=1'))
      .resource;
    expect(sorted.entry?.map((e) => e.resource?.name?.[0]?.family)).toEqual(['page-23', 'page-22', 'page-21']);

    const count = (await call<Bundle>('GET', 'Patient?gender=unknown&_summary=count')).resource;
    expect(count.total).toBe(25);
    expect(count.entry ?? []).toHaveLength(0);
    const accurate = (await call<Bundle>('GET', 'Patient?gender=unknown&_count=1&_total=accurate')).resource;
    expect(accurate.total).toBe(25);
    expect(accurate.entry).toHaveLength(1);
  });

  test('paging links keep prefix and modifier filters intact', async () => {
    for (let i = 0; i < 3; i++) {
      await call('POST', 'Patient', patient('born-' + i, { birthDate: `197${i}-01-01` }));
    }
    const first = (await call<Bundle<Patient>>('GET', 'Patient?birthdate=gt1970-06-01&_count=1')).resource;
    expect(first.entry).toHaveLength(1);
    const next = first.link?.find((l) => l.relation === 'next')?.url as string;
    const second = await call<Bundle<Patient>>('GET', next.slice(BASE.length));
    expect(second.status).toBe(200);
    expect(second.resource.entry?.[0]?.resource?.birthDate).toMatch(/^197[12]/);
  });

  test('conditional create, update and patch', async () => {
    const body = patient('cond-1');
    const created = await call<Patient>('POST', 'Patient', body, { 'if-none-exist': `identifier=${SYS}|cond-1` });
    expect(created.status).toBe(201);
    const again = await call<Patient>('POST', 'Patient', { ...body, gender: 'male' }, {
      'if-none-exist': `identifier=${SYS}|cond-1`,
    });
    expect(again.status).toBe(200);
    expect(again.resource.id).toBe(created.resource.id);
    expect(again.resource.gender).toBeUndefined();

    const upsert1 = await call<Patient>('PUT', `Patient?identifier=${SYS}|cond-2`, patient('cond-2'));
    expect(upsert1.status).toBe(201);
    const upsert2 = await call<Patient>('PUT', `Patient?identifier=${SYS}|cond-2`, patient('cond-2', { gender: 'female' }));
    expect(upsert2.status).toBe(200);
    expect(upsert2.resource.id).toBe(upsert1.resource.id);
    expect(upsert2.resource.gender).toBe('female');

    const patched = await call<Patient>('PATCH', `Patient?identifier=${SYS}|cond-2`, [
      { op: 'add', path: '/birthDate', value: '1980-02-03' },
    ]);
    expect(patched.status).toBe(200);
    expect(patched.resource.id).toBe(upsert1.resource.id);
    expect(patched.resource.birthDate).toBe('1980-02-03');
    expect(patched.resource.gender).toBe('female');
    const noMatch = await call('PATCH', `Patient?identifier=${SYS}|nobody`, [{ op: 'add', path: '/gender', value: 'male' }]);
    expect(noMatch.status).toBe(404);
  });
});

describe('batch and transaction Bundles', () => {
  const urn = 'urn:uuid:5e0c4a36-1b1e-4b8e-9d6c-7a1f0c2d3e4f';

  function bundle(type: 'transaction' | 'batch', entries: BundleEntry[]): Bundle {
    return { resourceType: 'Bundle', type, entry: entries };
  }

  test('a transaction is atomic and rewrites urn:uuid references', async () => {
    const ok = await call<Bundle>(
      'POST',
      '',
      bundle('transaction', [
        { fullUrl: urn, request: { method: 'POST', url: 'Patient' }, resource: patient('txn-1') },
        {
          request: { method: 'POST', url: 'Observation' },
          resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: urn } },
        },
      ])
    );
    expect(ok.status).toBe(200);
    expect(ok.resource.type).toBe('transaction-response');
    const [pEntry, oEntry] = ok.resource.entry as BundleEntry[];
    expect(pEntry.response?.status).toBe('201');
    const obs = (await call('GET', oEntry.response?.location as string)).resource as { subject?: { reference?: string } };
    expect(obs.subject?.reference).toBe('Patient/' + pEntry.resource?.id);

    const failed = await call(
      'POST',
      '',
      bundle('transaction', [
        { request: { method: 'POST', url: 'Patient' }, resource: patient('txn-rollback') },
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', birthDate: 'bad' } as Patient },
      ])
    );
    expect(failed.status).toBe(400);
    const search = (await call<Bundle>('GET', `Patient?identifier=${SYS}|txn-rollback`)).resource;
    expect(search.entry ?? []).toHaveLength(0);
  });

  test('without config.transactions a transaction Bundle runs like a batch, with per-entry errors', async () => {
    const res = await call<Bundle>(
      'POST',
      '',
      bundle('transaction', [
        { request: { method: 'POST', url: 'Patient' }, resource: patient('nontxn-ok') },
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', birthDate: 'bad' } as Patient },
      ]),
      {},
      false
    );
    expect(res.status).toBe(200);
    expect(res.resource.type).toBe('transaction-response');
    expect(res.resource.entry?.map((e) => e.response?.status)).toEqual(['201', '400']);
    const search = (await call<Bundle>('GET', `Patient?identifier=${SYS}|nontxn-ok`)).resource;
    expect(search.entry).toHaveLength(1);
  });

  test('the stock fhir-router limits hold: 8 entries with a conditional entry, 50 updates', async () => {
    // Preprocessing assigns ids in place, so each Bundle gets fresh entries.
    const conditional = (n: number): BundleEntry[] =>
      Array.from({ length: n }, (_, i) => ({
        request: { method: 'POST', url: 'Patient', ifNoneExist: i === 0 ? `identifier=${SYS}|limit-c` : undefined },
        resource: patient('limit-c-' + i),
      }));
    const tooMany = await call('POST', '', bundle('transaction', conditional(9)));
    expect(tooMany.status).toBe(400);
    expect(issueText(tooMany.outcome)).toMatch(/strict isolation/);
    expect((await call('POST', '', bundle('transaction', conditional(8)))).status).toBe(200);

    const updates = (): BundleEntry[] =>
      Array.from({ length: 51 }, (_, i) => ({
        request: { method: 'PUT', url: `Patient?identifier=${SYS}|limit-u-${i}` },
        resource: patient('limit-u-' + i),
      }));
    const tooManyUpdates = await call('POST', '', bundle('transaction', updates()));
    expect(tooManyUpdates.status).toBe(400);
    expect(issueText(tooManyUpdates.outcome)).toMatch(/more update operations than allowed/);
    // The same entries as a batch are not limited.
    const asBatch = await call<Bundle>('POST', '', bundle('batch', updates()));
    expect(isOk(asBatch.outcome)).toBe(true);
    expect(asBatch.resource.entry?.every((e) => e.response?.status === '201')).toBe(true);
  });
});
