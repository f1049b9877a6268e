import type { DiagnosticReport, Encounter, MessageHeader, Observation, Patient, Practitioner } from '@medplum/fhirtypes';
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { useLocalAdmin } from '../../test/support/local-admin.ts';
import type { MessagePlan, ResourcePlan } from '../mapping/plan.ts';
import { localRef } from '../mapping/plan.ts';
import { commitPlan, IdentityConflictError, MAX_UPDATES_PER_TRANSACTION } from './writer.ts';

const SYS = 'https://northside.example.org/fhir/sid/mrn';
const admin = useLocalAdmin();

function patientPlan(mrn: string, family: string): ResourcePlan<Patient> {
  const id = { system: SYS, value: mrn };
  return { key: 'Patient', resource: { resourceType: 'Patient', identifier: [id], name: [{ family }] }, identifiers: [id], merge: 'overlay' };
}

function encounterPlan(visit: string): ResourcePlan<Encounter> {
  const id = { system: 'urn:visit', value: visit };
  return {
    key: 'Encounter',
    resource: { resourceType: 'Encounter', identifier: [id], status: 'in-progress', class: { code: 'IMP' }, subject: localRef('Patient') },
    identifiers: [id],
    merge: 'overlay',
  };
}

const ledger = (refs: Readonly<Record<string, string>>): MessageHeader => ({
  resourceType: 'MessageHeader',
  eventCoding: { code: 'A01' },
  source: { endpoint: 'urn:test' },
  focus: Object.values(refs).map((reference) => ({ reference })),
});

describe('commitPlan', () => {
  test('creates resources and the ledger entry in one transaction, references resolved', async () => {
    const plan: MessagePlan = { resources: [patientPlan('W1', 'Rivera'), encounterPlan('V1')], warnings: [] };
    const result = await commitPlan(admin.medplum, plan, { ledger, eventTime: '2024-01-01T10:00:00Z' });
    expect(result.created).toEqual(['Patient', 'Encounter']);
    const encounter = await admin.medplum.readReference<Encounter>({ reference: result.references.Encounter });
    expect(encounter.subject?.reference).toBe(result.references.Patient);
    const header = await admin.medplum.readReference<MessageHeader>({ reference: result.ledger as string });
    expect(header.focus?.map((f) => f.reference).sort()).toEqual(Object.values(result.references).sort());
  });

  test('the same plan again changes nothing', async () => {
    const plan: MessagePlan = { resources: [patientPlan('W1', 'Rivera'), encounterPlan('V1')], warnings: [] };
    const before = await admin.medplum.searchOne('Patient', { identifier: `${SYS}|W1` });
    const result = await commitPlan(admin.medplum, plan, { eventTime: '2024-01-01T10:00:00Z' });
    expect(result.unchanged).toEqual(['Patient', 'Encounter']);
    const after = await admin.medplum.searchOne('Patient', { identifier: `${SYS}|W1` });
    expect(after?.meta?.versionId).toBe(before?.meta?.versionId);
  });

  test('updates keep what other feeds wrote', async () => {
    const stored = (await admin.medplum.searchOne('Patient', { identifier: `${SYS}|W1` })) as Patient;
    await admin.medplum.updateResource<Patient>({ ...stored, identifier: [...(stored.identifier ?? []), { system: 'urn:empi', value: 'E1' }], gender: 'female' });
    const result = await commitPlan(admin.medplum, { resources: [patientPlan('W1', 'Rivera-Lopez')], warnings: [] }, { eventTime: '2024-02-01T00:00:00Z' });
    expect(result.updated).toEqual(['Patient']);
    const after = (await admin.medplum.searchOne('Patient', { identifier: `${SYS}|W1` })) as Patient;
    expect(after.name?.[0].family).toBe('Rivera-Lopez');
    expect(after.gender).toBe('female');
    expect(after.identifier).toContainEqual({ system: 'urn:empi', value: 'E1' });
  });

  test('identifiers that point at two different patients are an identity conflict', async () => {
    await commitPlan(admin.medplum, { resources: [patientPlan('W2', 'Other')], warnings: [] });
    const both = { system: SYS, value: 'W1' };
    const other = { system: SYS, value: 'W2' };
    const conflicting: ResourcePlan<Patient> = {
      key: 'Patient',
      resource: { resourceType: 'Patient', identifier: [both, other] },
      identifiers: [both, other],
      merge: 'overlay',
    };
    await expect(commitPlan(admin.medplum, { resources: [conflicting], warnings: [] })).rejects.toBeInstanceOf(IdentityConflictError);
  });

  test('a search that also finds a merged-away patient resolves to the survivor', async () => {
    const [a, b] = [await admin.medplum.searchOne('Patient', { identifier: `${SYS}|W1` }), await admin.medplum.searchOne('Patient', { identifier: `${SYS}|W2` })] as Patient[];
    await admin.medplum.updateResource<Patient>({ ...b, active: false, link: [{ type: 'replaced-by', other: { reference: `Patient/${a.id}` } }] });
    const plan = patientPlan('W1', 'Survivor');
    const result = await commitPlan(admin.medplum, { resources: [{ ...plan, identifiers: [{ system: SYS, value: 'W1' }, { system: SYS, value: 'W2' }] }], warnings: [] });
    expect(result.references.Patient).toBe(`Patient/${a.id}`);
  });

  test('concurrent messages for the same records both commit (version conflicts are retried)', async () => {
    const plans = [0, 1, 2, 3].map((i) => ({ resources: [patientPlan('W3', `Concurrent${i}`), encounterPlan('V3')], warnings: [] }));
    const results = await Promise.all(plans.map((p, i) => commitPlan(admin.medplum, p, { eventTime: `2024-03-0${i + 1}T00:00:00Z` })));
    expect(results).toHaveLength(4);
    const patients = await admin.medplum.searchResources('Patient', { identifier: `${SYS}|W3` });
    expect(patients).toHaveLength(1);
    // Whatever order they committed in, the newest event wins.
    expect(patients[0].name?.[0].family).toBe('Concurrent3');
    expect(await admin.medplum.searchResources('Encounter', { identifier: 'urn:visit|V3' })).toHaveLength(1);
  });

  test('a message that loses a create race deletes only its losing copies: what others merged or referenced survives', async () => {
    // A and C create the same new practitioner at once; Y updates A's new patient meanwhile. The
    // loser of the practitioner race must not take A's patient, Y's update or Y's visit with it.
    const practitioner = (npi: string): ResourcePlan => {
      const id = { system: 'http://hl7.org/fhir/sid/us-npi', value: npi };
      return { key: 'Practitioner', resource: { resourceType: 'Practitioner', identifier: [id] }, identifiers: [id], merge: 'fill' };
    };
    const visit = (value: string, withPractitioner: boolean): ResourcePlan<Encounter> => {
      const plan = encounterPlan(value);
      const participant = withPractitioner ? [{ individual: localRef<Practitioner>('Practitioner') }] : undefined;
      return { ...plan, resource: { ...plan.resource, ...(participant ? { participant } : {}) } };
    };
    const rounds = 30;
    await Promise.all(
      Array.from({ length: rounds }, async (_, r) => {
        await new Promise((resolve) => setTimeout(resolve, r * 15));
        const npi = `77000${r}`;
        await Promise.all([
          commitPlan(admin.medplum, { resources: [patientPlan(`RA${r}`, 'First'), practitioner(npi), visit(`VA${r}`, true)], warnings: [] }, { eventTime: '2024-05-01T00:00:00Z' }),
          commitPlan(admin.medplum, { resources: [patientPlan(`RC${r}`, 'Other'), practitioner(npi), visit(`VC${r}`, true)], warnings: [] }, { eventTime: '2024-05-01T00:00:00Z' }),
          (async () => {
            await new Promise((resolve) => setTimeout(resolve, r % 10));
            await commitPlan(admin.medplum, { resources: [patientPlan(`RA${r}`, 'Updated'), visit(`VY${r}`, false)], warnings: [] }, { eventTime: '2024-05-02T00:00:00Z' });
          })(),
        ]);
      })
    );
    const problems: string[] = [];
    for (let r = 0; r < rounds; r++) {
      const patients = await admin.medplum.searchResources('Patient', { identifier: `${SYS}|RA${r}` });
      if (patients.length !== 1 || patients[0].name?.[0].family !== 'Updated') {
        problems.push(`round ${r}: patients ${JSON.stringify(patients.map((p) => p.name?.[0].family))}`);
      }
      if ((await admin.medplum.searchResources('Practitioner', { identifier: `http://hl7.org/fhir/sid/us-npi|77000${r}` })).length !== 1) {
        problems.push(`round ${r}: practitioner not exactly once`);
      }
      for (const value of [`VA${r}`, `VC${r}`, `VY${r}`]) {
        const encounters = await admin.medplum.searchResources('Encounter', { identifier: `urn:visit|${value}` });
        if (encounters.length !== 1) {
          problems.push(`${value}: ${encounters.length} encounters`);
          continue;
        }
        const refs = [encounters[0].subject, ...(encounters[0].participant ?? []).map((p) => p.individual)].map((ref) => ref?.reference as string);
        for (const ref of refs) {
          await admin.medplum.readReference({ reference: ref }).catch(() => problems.push(`${value} references ${ref}, which is gone`));
        }
        if (value.startsWith('VY') && refs[0] !== `Patient/${patients[0]?.id}`) {
          problems.push(`${value} is not about the surviving patient`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  test('attachment content is stored once as a Binary', async () => {
    const data = Buffer.from('%PDF-1.4 test').toString('base64');
    const hash = createHash('sha1').update(Buffer.from(data, 'base64')).digest('base64');
    const reportPlan = (): ResourcePlan<DiagnosticReport> => ({
      key: 'DiagnosticReport',
      resource: {
        resourceType: 'DiagnosticReport',
        identifier: [{ system: 'urn:report', value: 'R1' }],
        status: 'final',
        code: { text: 'Report' },
        presentedForm: [{ contentType: 'application/pdf', data, hash, title: 'report.pdf' }],
      },
      identifiers: [{ system: 'urn:report', value: 'R1' }],
      merge: 'overlay',
      uploads: [{ path: 'presentedForm.0', contentType: 'application/pdf', data, hash }],
    });
    const first = await commitPlan(admin.medplum, { resources: [reportPlan()], warnings: [] });
    const report = await admin.medplum.readReference<DiagnosticReport>({ reference: first.references.DiagnosticReport });
    const pdf = await (await admin.medplum.download(report.presentedForm?.[0].url as string)).text();
    expect(pdf).toBe('%PDF-1.4 test');
    const again = await commitPlan(admin.medplum, { resources: [reportPlan()], warnings: [] });
    expect(again.unchanged).toEqual(['DiagnosticReport']);
  });

  test(`more than ${MAX_UPDATES_PER_TRANSACTION} updates are split into several transactions`, async () => {
    const observations = (value: number): ResourcePlan<Observation>[] =>
      Array.from({ length: 60 }, (_, i) => {
        const id = { system: 'urn:obs', value: `O${i}` };
        return {
          key: `Observation/${i}`,
          resource: { resourceType: 'Observation', identifier: [id], status: 'final', code: { text: `test ${i}` }, valueQuantity: { value } },
          identifiers: [id],
          merge: 'overlay',
        };
      });
    await commitPlan(admin.medplum, { resources: observations(1), warnings: [] }, { ledger });
    const result = await commitPlan(admin.medplum, { resources: observations(2), warnings: [] }, { ledger });
    expect(result.updated).toHaveLength(60);
    expect(result.ledger).toMatch(/^MessageHeader\//);
    const stored = await admin.medplum.searchResources('Observation', { identifier: 'urn:obs|O59' });
    expect(stored[0].valueQuantity?.value).toBe(2);
  });
});
