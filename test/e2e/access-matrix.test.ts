import type { WithId } from '@medplum/core';
import { getStatus, MedplumClient, normalizeOperationOutcome } from '@medplum/core';
import type {
  AccessPolicy,
  Binary,
  DocumentReference,
  Bundle,
  ClientApplication,
  Observation,
  Organization,
  Patient,
  ProjectMembership,
  ProjectMembershipAccess,
  Resource,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BOT_NAME_SYSTEM, HL7_SENDER_SYSTEM } from '../../src/constants.ts';
import { findManaged } from '../../src/deploy/managed.ts';
import { OWNER_ORGANIZATION_SYSTEM } from '../../src/fhir/owner.ts';
import { buildReplayTask } from '../../src/inbound/replay.ts';
import { DELIVERY_TASK_CODE } from '../../src/outbound/delivery.ts';
import type { TestPatient } from '../support/hl7-messages.ts';
import { adtA01, oruR01, testPatient } from '../support/hl7-messages.ts';
import { ackCode, MllpSender } from '../support/mllp-sender.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';

/**
 * The policy matrix: each kind of caller (access-policies/) × resource type × interaction, with
 * resources in and out of its scope, run over HTTP against the target. On the local runtime this
 * proves that the runtime enforces the policies as the stock server does; on a stock target
 * (MEDPLUM_BASE_URL...) it proves the policies themselves.
 *
 * Data: patient N is admitted by Northside's ADT feed (tagged with the Northside sender
 * Organization), patient L only has results from the Acme lab feed (tagged Acme), patient B is
 * admitted at Northside and has results from Acme (tagged with both). Test-only callers
 * (clinicians, a patient login) are ClientApplications whose memberships carry the shipped
 * policies with parameters, exactly as an invited user's membership would.
 */

/** What a caller may do to a resource: the HTTP status the interaction must answer. */
type Expected = 200 | 201 | 403 | 404;

interface Row {
  readonly caller: CallerName;
  readonly type: string;
  readonly interaction: string;
  readonly scope: 'in' | 'out' | 'out (deleted)' | '-';
  readonly expected: Expected;
  readonly run: (client: MedplumClient) => Promise<unknown>;
}

type CallerName =
  | 'clinician@northside'
  | 'clinician@northside (SMART system/Patient.rs)'
  | 'patient app (patient L)'
  | 'agent'
  | 'metriport webhook'
  | 'partner acme-analytics'
  | 'ops';

describe('access policy matrix', () => {
  let target: E2eTarget;
  let projectId: string;
  const callers = new Map<CallerName, MedplumClient>();
  const data = {} as {
    northPatient: WithId<Patient>;
    labPatient: WithId<Patient>;
    labResult: WithId<Observation>;
    northOrg: WithId<Organization>;
    acmeOrg: WithId<Organization>;
    /** A Patient of the lab's organization, deleted. */
    deleted: string;
    /** A failed partner delivery Task. */
    delivery: WithId<Task>;
    /** A ledger entry to replay. */
    deadLetter: string;
  };
  let patientN: TestPatient;
  let patientL: TestPatient;
  let patientB: TestPatient;

  beforeAll(async () => {
    target = await startE2eTarget();
    const me = await target.client.get('auth/me');
    projectId = (me as { project: { id: string } }).project.id;

    // Ingest through the real feeds: ADT for N on the Northside channel, results for L from Acme.
    patientN = testPatient('Northley', 'Nina');
    patientL = testPatient('Labson', 'Leo');
    await sendOn('northside-adt', adtA01(patientN));
    await sendOn('acme-lab', oruR01(patientL));
    // B is a Northside patient whose results come from the Acme lab.
    patientB = testPatient('Bothwell', 'Bea');
    await sendOn('northside-adt', adtA01(patientB));
    await sendOn('acme-lab', oruR01(patientB));

    const admin = target.client;
    data.northOrg = await findSender(admin, 'NORTHSIDE');
    data.acmeOrg = await findSender(admin, 'ACMELAB');
    data.northPatient = await findPatient(admin, patientN);
    data.labPatient = await findPatient(admin, patientL);
    const results = await admin.searchResources('Observation', { subject: 'Patient/' + data.labPatient.id });
    // The result that carries the lab's comment (NTE): the partner's policy hides notes.
    data.labResult = results.find((o) => o.status === 'final' && o.note?.length) as WithId<Observation>;
    expect(data.labResult).toBeDefined();
    const gone = await admin.createResource<Patient>({ resourceType: 'Patient', meta: { tag: [{ system: OWNER_ORGANIZATION_SYSTEM, code: data.acmeOrg.id }] } });
    await admin.deleteResource('Patient', gone.id);
    data.deleted = gone.id;
    data.delivery = await admin.createResource<Task>({ ...deliveryTask(), status: 'failed' });
    const [ledgerEntry] = await admin.searchResources('MessageHeader', { _count: '1' });
    data.deadLetter = ledgerEntry.id;

    const policies = {
      clinician: await managedPolicy(admin, 'clinician'),
      patientApp: await managedPolicy(admin, 'patient-app'),
    };
    const north = { name: 'organization', valueReference: { reference: 'Organization/' + data.northOrg.id } };
    callers.set('clinician@northside', await testCaller('clinician-northside', [{ policy: policies.clinician, parameter: [north] }]));
    callers.set(
      'clinician@northside (SMART system/Patient.rs)',
      await testCaller('clinician-northside-scoped', [{ policy: policies.clinician, parameter: [north] }], 'openid system/Patient.rs')
    );
    callers.set(
      'patient app (patient L)',
      await testCaller('patient-l', [
        { policy: policies.patientApp, parameter: [{ name: 'patient', valueReference: { reference: 'Patient/' + data.labPatient.id } }] },
      ])
    );
    callers.set('agent', await managedCaller('client-agent'));
    callers.set('metriport webhook', await managedCaller('metriport-webhook'));
    callers.set('partner acme-analytics', await managedCaller('partner-acme-analytics'));
    callers.set('ops', await managedCaller('ops'));
  });

  afterAll(async () => {
    await target?.stop();
  });

  /** Sends a message over MLLP, or, where the channel cannot be reached, to the inbound bot. */
  async function sendOn(channel: string, er7: string): Promise<void> {
    const address = target.mllp(channel);
    if ('skip' in address) {
      const ack = await target.client.post(target.client.fhirUrl('Bot', await botId('hl7-inbound'), '$execute'), er7, 'x-application/hl7-v2+er7');
      expect(ackCode(typeof ack === 'string' ? ack : String(ack))).toBe('AA');
      return;
    }
    const sender = new MllpSender(address.host, address.port);
    try {
      const [ack] = await sender.send(er7);
      expect(ackCode(ack)).toBe('AA');
    } finally {
      await sender.close();
    }
  }

  async function findSender(admin: MedplumClient, facility: string): Promise<WithId<Organization>> {
    const org = await admin.searchOne('Organization', { identifier: `${HL7_SENDER_SYSTEM}|${facility}` });
    if (!org) {
      throw new Error('No sender Organization ' + facility);
    }
    return org;
  }

  async function findPatient(admin: MedplumClient, p: TestPatient): Promise<WithId<Patient>> {
    const patient = await admin.searchOne('Patient', { identifier: p.mrn });
    if (!patient) {
      throw new Error('Patient not written');
    }
    return patient;
  }

  async function managedPolicy(admin: MedplumClient, name: string): Promise<{ reference: string }> {
    const [policy] = await findManaged(admin, 'AccessPolicy', name);
    return { reference: 'AccessPolicy/' + (policy as WithId<AccessPolicy>).id };
  }

  async function login(clientId: string, secret: string, scope?: string): Promise<MedplumClient> {
    const client = new MedplumClient({ baseUrl: target.baseUrl, clientId, cacheTime: 0 });
    if (scope) {
      // MedplumClient's client login sends no scope: the token request is made by hand.
      const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope });
      const response = await fetch(new URL('oauth2/token', target.baseUrl), { method: 'POST', body });
      const tokens = (await response.json()) as { access_token: string; scope: string };
      expect(tokens.scope).toBe(scope);
      await client.setActiveLogin({ accessToken: tokens.access_token, refreshToken: '', project: { reference: 'Project/' + projectId }, profile: { reference: 'ClientApplication/' + clientId } });
      return client;
    }
    await client.startClientLogin(clientId, secret);
    return client;
  }

  async function managedCaller(name: string): Promise<MedplumClient> {
    const [client] = await findManaged(target.client, 'ClientApplication', name);
    const app = client as WithId<ClientApplication>;
    return login(app.id, app.secret as string);
  }

  /** A ClientApplication standing in for a user: its membership gets the policies and parameters. */
  async function testCaller(name: string, access: ProjectMembershipAccess[], scope?: string): Promise<MedplumClient> {
    const admin = target.client;
    const app = (await admin.post(`admin/projects/${projectId}/client`, { name: `matrix ${name}` })) as WithId<ClientApplication>;
    const membership = await admin.searchOne('ProjectMembership', { profile: 'ClientApplication/' + app.id });
    await admin.post(`admin/projects/${projectId}/members/${(membership as WithId<ProjectMembership>).id}`, { ...membership, access });
    return login(app.id, app.secret as string, scope);
  }

  /** Runs an interaction and returns its HTTP status (200 or 201 on success). */
  async function statusOf(run: () => Promise<unknown>, created = false): Promise<number> {
    try {
      await run();
      return created ? 201 : 200;
    } catch (err) {
      return getStatus(normalizeOperationOutcome(err));
    }
  }

  const read = (type: string, id: () => string) => (c: MedplumClient) => c.readResource(type as 'Patient', id());
  const ids = {
    north: () => data.northPatient.id,
    lab: () => data.labPatient.id,
    result: () => data.labResult.id,
    deleted: () => data.deleted,
  };
  const newObservation = (patient: () => string) => (c: MedplumClient) =>
    c.createResource<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'matrix' }, subject: { reference: 'Patient/' + patient() } });

  const rows: Row[] = [
    // Clinicians: their organization's patients and data only.
    { caller: 'clinician@northside', type: 'Patient', interaction: 'read', scope: 'in', expected: 200, run: read('Patient', ids.north) },
    { caller: 'clinician@northside', type: 'Patient', interaction: 'read', scope: 'out', expected: 404, run: read('Patient', ids.lab) },
    { caller: 'clinician@northside', type: 'Patient', interaction: 'update', scope: 'in', expected: 200, run: async (c) => c.updateResource({ ...(await c.readResource('Patient', ids.north())), active: true }) },
    { caller: 'clinician@northside', type: 'Patient', interaction: 'update', scope: 'out', expected: 404, run: (c) => c.updateResource({ ...data.labPatient, active: true }) },
    { caller: 'clinician@northside', type: 'Patient', interaction: 'create', scope: '-', expected: 403, run: (c) => c.createResource<Patient>({ resourceType: 'Patient' }) },
    { caller: 'clinician@northside', type: 'Observation', interaction: 'read', scope: 'out', expected: 404, run: read('Observation', ids.result) },
    { caller: 'clinician@northside', type: 'Observation', interaction: 'create', scope: 'in', expected: 403, run: newObservation(ids.north) },
    // Orders come from the EHR feed: clinicians read them.
    {
      caller: 'clinician@northside',
      type: 'ServiceRequest',
      interaction: 'create',
      scope: 'in',
      expected: 403,
      run: (c) =>
        c.createResource<ServiceRequest>({
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          subject: { reference: 'Patient/' + ids.north() },
          meta: { tag: [{ system: OWNER_ORGANIZATION_SYSTEM, code: data.northOrg.id }] },
        }),
    },
    { caller: 'clinician@northside', type: 'Patient', interaction: 'history', scope: 'in', expected: 200, run: (c) => c.readHistory('Patient', ids.north()) },
    { caller: 'clinician@northside', type: 'Patient', interaction: 'history', scope: 'out', expected: 404, run: (c) => c.readHistory('Patient', ids.lab()) },
    { caller: 'clinician@northside', type: 'Patient', interaction: 'vread', scope: 'out', expected: 404, run: (c) => c.readVersion('Patient', ids.lab(), data.labPatient.meta?.versionId as string) },
    { caller: 'clinician@northside', type: 'Patient', interaction: 'history', scope: 'out (deleted)', expected: 404, run: (c) => c.readHistory('Patient', ids.deleted()) },
    { caller: 'clinician@northside', type: 'MessageHeader', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('MessageHeader') },
    { caller: 'clinician@northside', type: 'AuditEvent', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('AuditEvent') },
    { caller: 'clinician@northside', type: 'ProjectMembership', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('ProjectMembership') },
    // SMART scopes narrow the same membership further.
    { caller: 'clinician@northside (SMART system/Patient.rs)', type: 'Patient', interaction: 'read', scope: 'in', expected: 200, run: read('Patient', ids.north) },
    // A read scope does not narrow an entry that lists its interactions (the stock rule), so
    // the clinician's Patient update is not removed by `.rs`; other types are.
    { caller: 'clinician@northside (SMART system/Patient.rs)', type: 'Observation', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('Observation') },
    { caller: 'clinician@northside (SMART system/Patient.rs)', type: 'Encounter', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('Encounter') },
    // A patient's own login: its own compartment, read only.
    { caller: 'patient app (patient L)', type: 'Patient', interaction: 'read', scope: 'in', expected: 200, run: read('Patient', ids.lab) },
    { caller: 'patient app (patient L)', type: 'Patient', interaction: 'read', scope: 'out', expected: 404, run: read('Patient', ids.north) },
    { caller: 'patient app (patient L)', type: 'Observation', interaction: 'read', scope: 'in', expected: 200, run: read('Observation', ids.result) },
    { caller: 'patient app (patient L)', type: 'Patient', interaction: 'update', scope: 'in', expected: 403, run: (c) => c.updateResource({ ...data.labPatient, active: false }) },
    { caller: 'patient app (patient L)', type: 'Observation', interaction: 'create', scope: 'in', expected: 403, run: newObservation(ids.lab) },
    { caller: 'patient app (patient L)', type: 'Task', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('Task') },
    // The agent: exactly what inbound bots write.
    { caller: 'agent', type: 'Patient', interaction: 'read', scope: 'in', expected: 200, run: read('Patient', ids.north) },
    { caller: 'agent', type: 'Observation', interaction: 'create', scope: 'in', expected: 201, run: newObservation(ids.north) },
    { caller: 'agent', type: 'Task', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('Task') },
    { caller: 'agent', type: 'Subscription', interaction: 'create', scope: '-', expected: 403, run: (c) => c.createResource({ resourceType: 'Subscription', status: 'active', reason: 'x', criteria: 'Patient', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/' } }) },
    { caller: 'agent', type: 'AccessPolicy', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('AccessPolicy') },
    // The Metriport webhook: may only find and execute its receiver bot.
    { caller: 'metriport webhook', type: 'Bot', interaction: 'search', scope: 'in', expected: 200, run: async (c) => expectOne(await c.searchResources('Bot', { identifier: `${BOT_NAME_SYSTEM}|metriport-webhook` })) },
    { caller: 'metriport webhook', type: 'Bot', interaction: 'search', scope: 'out', expected: 200, run: async (c) => expectNone(await c.searchResources('Bot', { identifier: `${BOT_NAME_SYSTEM}|hl7-inbound` })) },
    { caller: 'metriport webhook', type: 'Bot', interaction: 'execute', scope: 'out', expected: 404, run: async (c) => c.post(c.fhirUrl('Bot', await botId('hl7-inbound'), '$execute'), 'MSH|^~\\&|', 'x-application/hl7-v2+er7') },
    { caller: 'metriport webhook', type: 'Patient', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('Patient') },
    // A partner: only what it is subscribed to, without the hidden fields.
    { caller: 'partner acme-analytics', type: 'Observation', interaction: 'read', scope: 'in', expected: 200, run: read('Observation', ids.result) },
    { caller: 'partner acme-analytics', type: 'Observation', interaction: 'create', scope: '-', expected: 403, run: newObservation(ids.lab) },
    { caller: 'partner acme-analytics', type: 'Patient', interaction: 'read', scope: '-', expected: 403, run: read('Patient', ids.lab) },
    { caller: 'partner acme-analytics', type: 'Subscription', interaction: 'create', scope: '-', expected: 403, run: (c) => c.createResource({ resourceType: 'Subscription', status: 'active', reason: 'x', criteria: 'Observation', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/' } }) },
    // Ops: ledgers, dead letters, AuditEvents, replay Tasks; no clinical data.
    { caller: 'ops', type: 'MessageHeader', interaction: 'search', scope: 'in', expected: 200, run: (c) => c.search('MessageHeader') },
    { caller: 'ops', type: 'AuditEvent', interaction: 'search', scope: 'in', expected: 200, run: (c) => c.search('AuditEvent') },
    { caller: 'ops', type: 'Task', interaction: 'search', scope: 'in', expected: 200, run: (c) => c.search('Task') },
    { caller: 'ops', type: 'Patient', interaction: 'read', scope: '-', expected: 403, run: read('Patient', ids.north) },
    { caller: 'ops', type: 'Observation', interaction: 'search', scope: '-', expected: 403, run: (c) => c.search('Observation') },
    { caller: 'ops', type: 'Observation', interaction: 'update', scope: '-', expected: 403, run: (c) => c.updateResource({ ...data.labResult, status: 'cancelled' }) },
    { caller: 'ops', type: 'Task', interaction: 'create', scope: 'in', expected: 201, run: (c) => c.createResource(buildReplayTask({ reference: 'MessageHeader/' + data.deadLetter })) },
    { caller: 'ops', type: 'Task', interaction: 'create', scope: 'out', expected: 403, run: (c) => c.createResource({ ...deliveryTask(), status: 'requested' }) },
    { caller: 'ops', type: 'Task', interaction: 'update', scope: 'in', expected: 200, run: async (c) => c.updateResource({ ...(await c.readResource('Task', data.delivery.id)), status: 'requested' }) },
    { caller: 'ops', type: 'Task', interaction: 'update', scope: 'out', expected: 403, run: async (c) => c.updateResource({ ...(await c.readResource('Task', data.delivery.id)), input: [{ type: { text: 'payload' }, valueString: '{"forged":true}' }] }) },
    { caller: 'ops', type: 'Bot', interaction: 'execute', scope: '-', expected: 403, run: async (c) => c.post(c.fhirUrl('Bot', await botId('hl7-inbound'), '$execute'), 'MSH|^~\\&|', 'x-application/hl7-v2+er7') },
  ];

  /** A partner delivery as the queue writes one (src/outbound/delivery.ts). */
  function deliveryTask(): Task {
    return {
      resourceType: 'Task',
      status: 'failed',
      intent: 'order',
      code: { coding: [{ ...DELIVERY_TASK_CODE }] },
      focus: { reference: `Observation/${data.labResult.id}/_history/${data.labResult.meta?.versionId}` },
      input: [{ type: { text: 'payload' }, valueString: '{}' }],
    };
  }

  function expectOne<T>(found: readonly T[]): T {
    expect(found).toHaveLength(1);
    return found[0];
  }

  function expectNone<T>(found: readonly T[]): void {
    expect(found).toHaveLength(0);
  }

  async function botId(name: string): Promise<string> {
    const bot = await target.client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|${name}` });
    return (bot as WithId<Resource>).id;
  }

  test.each(rows)('$caller × $type × $interaction ($scope of scope) → $expected', async (row) => {
    const client = callers.get(row.caller) as MedplumClient;
    expect(await statusOf(() => row.run(client), row.expected === 201)).toBe(row.expected);
  });

  test('search results hold only what is in scope: clinician, patient app and partner', async () => {
    const clinician = callers.get('clinician@northside') as MedplumClient;
    const patients = await clinician.searchResources('Patient', { _count: '1000' });
    expect(patients.map((p) => p.id)).toContain(data.northPatient.id);
    expect(patients.map((p) => p.id)).not.toContain(data.labPatient.id);
    expect(patients.every((p) => p.meta?.tag?.some((t) => t.system === OWNER_ORGANIZATION_SYSTEM && t.code === data.northOrg.id))).toBe(true);
    expect(await clinician.searchResources('Observation', { subject: 'Patient/' + data.labPatient.id })).toHaveLength(0);

    const patientApp = callers.get('patient app (patient L)') as MedplumClient;
    expect((await patientApp.searchResources('Patient', {})).map((p) => p.id)).toEqual([data.labPatient.id]);
    const own = await patientApp.searchResources('Observation', { _count: '1000' });
    expect(own.length).toBeGreaterThan(0);
    expect(own.every((o) => o.subject?.reference === 'Patient/' + data.labPatient.id)).toBe(true);

    const partner = callers.get('partner acme-analytics') as MedplumClient;
    const shared = await partner.searchResources('Observation', { _count: '1000' });
    expect(shared.map((o) => o.id)).toContain(data.labResult.id);
    expect(shared.every((o) => ['final', 'amended', 'corrected'].includes(o.status))).toBe(true);
    // The partner's policy hides notes: the stored result has one (NTE), the partner never sees it.
    const stored = await target.client.readResource('Observation', data.labResult.id);
    const seen = await partner.readResource('Observation', data.labResult.id);
    expect(stored.note?.length ?? 0).toBeGreaterThan(0);
    expect(seen.note).toBeUndefined();
  });

  test('a lab’s results for a Northside patient are Northside’s data too', async () => {
    const b = await findPatient(target.client, patientB);
    const clinician = callers.get('clinician@northside') as MedplumClient;
    const results = await clinician.searchResources('Observation', { subject: 'Patient/' + b.id });
    expect(results.length).toBeGreaterThanOrEqual(4);
    expect(results.every((o) => o.meta?.tag?.some((t) => t.code === data.acmeOrg.id))).toBe(true);
  });

  test('messages racing to create the same resources all commit under the agent’s policy', async () => {
    // Four admissions to a ward and payor no message named before, sent at once on four
    // connections: the writer resolves its lost creates by reading history, which the inbound
    // policies must allow.
    const ward = 'W' + Date.now().toString(36).toUpperCase();
    const messages = [1, 2, 3, 4].map((i) =>
      adtA01(testPatient('Racer' + i, 'Rae')).replace('4W^401^A^NSH', `${ward}^401^A^NSH`).replace('|BCBSIL|', `|${ward}PAY|`)
    );
    await Promise.all(messages.map((m) => sendOn('northside-adt', m)));
    const wards = await target.client.searchResources('Location', { _count: '1000' });
    const raced = wards.filter((l) => JSON.stringify(l.identifier ?? []).includes(ward));
    expect(raced).toHaveLength(1);
  });

  test('a clinician’s update changes demographics, never identifiers or organization tags', async () => {
    const clinician = callers.get('clinician@northside') as MedplumClient;
    const current = await clinician.readResource('Patient', data.northPatient.id);
    const updated = await clinician.updateResource<Patient>({
      ...current,
      telecom: [{ system: 'phone', value: '555-0100' }],
      identifier: [...(current.identifier ?? []), { system: 'urn:forged', value: 'x' }],
      meta: { ...current.meta, tag: [...(current.meta?.tag ?? []), { system: OWNER_ORGANIZATION_SYSTEM, code: data.acmeOrg.id }] },
    });
    expect(updated.telecom).toEqual([{ system: 'phone', value: '555-0100' }]);
    expect(updated.identifier).toEqual(current.identifier);
    expect(updated.meta?.tag).toEqual(current.meta?.tag);
  });

  test('attachment links are signed only for a caller that may read the Binary', async () => {
    const admin = target.client;
    const binary = await admin.createResource<Binary>({ resourceType: 'Binary', contentType: 'text/plain', data: 'bm90ZQ==' });
    const document = await admin.createResource<DocumentReference>({
      resourceType: 'DocumentReference',
      status: 'current',
      subject: { reference: 'Patient/' + data.northPatient.id },
      content: [{ attachment: { contentType: 'text/plain', url: 'Binary/' + binary.id } }],
      meta: { tag: [{ system: OWNER_ORGANIZATION_SYSTEM, code: data.northOrg.id }] },
    });
    const asAdmin = await admin.readResource('DocumentReference', document.id);
    // A presigned download URL for the admin (its form is the server's own).
    expect(asAdmin.content[0].attachment.url).toMatch(/^https?:\/\//);
    const clinician = callers.get('clinician@northside') as MedplumClient;
    const asClinician = await clinician.readResource('DocumentReference', document.id);
    expect(asClinician.content[0].attachment.url).toBe('Binary/' + binary.id);
  });

  test('batch entries are checked one by one', async () => {
    const clinician = callers.get('clinician@northside') as MedplumClient;
    const response = (await clinician.executeBatch({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: 'Patient/' + data.northPatient.id } },
        { request: { method: 'GET', url: 'Patient/' + data.labPatient.id } },
        { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } },
      ],
    })) as Bundle;
    expect(response.entry?.map((e) => e.response?.status?.slice(0, 3))).toEqual(['200', '404', '403']);
  });

  test('a policy change applies to the next request', async () => {
    const app = (await target.client.post(`admin/projects/${projectId}/client`, { name: 'matrix policy change' })) as WithId<ClientApplication>;
    const client = await login(app.id, app.secret as string);
    const membership = (await target.client.searchOne('ProjectMembership', { profile: 'ClientApplication/' + app.id })) as WithId<ProjectMembership>;
    // No policy: the legacy full access of a plain membership.
    expect(await statusOf(() => client.readResource('Patient', data.northPatient.id))).toBe(200);
    await target.client.post(`admin/projects/${projectId}/members/${membership.id}`, {
      ...membership,
      accessPolicy: await managedPolicy(target.client, 'ops'),
    });
    expect(await statusOf(() => client.readResource('Patient', data.northPatient.id))).toBe(403);
  });
});
