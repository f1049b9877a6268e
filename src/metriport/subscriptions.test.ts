import { resourceMatchesSubscriptionCriteria } from '@medplum/core';
import type { Patient, Resource, Subscription, Task } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { METRIPORT_PATIENT_SYSTEM } from './constants.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** A subscription file as deployed, its bot placeholder resolved. */
function subscription(name: string): Subscription {
  const text = readFileSync(join(ROOT, 'subscriptions', `${name}.json`), 'utf8').replace(/\{\{Bot\/[^}]+\}\}/g, 'Bot/b1');
  return JSON.parse(text) as Subscription;
}

async function fires(sub: Subscription, interaction: 'create' | 'update', current: Resource, previous?: Resource): Promise<boolean> {
  return resourceMatchesSubscriptionCriteria({ resource: current, subscription: sub, context: { interaction }, getPreviousResource: async () => previous });
}

const base: Patient = {
  resourceType: 'Patient',
  id: 'p1',
  name: [{ family: 'Rivera', given: ['Ana'] }],
  birthDate: '1984-02-29',
  gender: 'female',
  address: [{ line: ['12 Elm St'], city: 'Springfield', state: 'IL', postalCode: '62704' }],
  managingOrganization: { reference: 'Organization/o1' },
};
const linked: Patient = { ...base, identifier: [{ system: 'urn:mrn', value: 'M1' }, { system: METRIPORT_PATIENT_SYSTEM, value: 'mp-1' }] };

describe('metriport-patient subscriptions', () => {
  beforeAll(() => loadFhirDefinitions());
  const update = subscription('metriport-patient-update');
  const create = subscription('metriport-patient-create');

  test('fire on create, and on updates of a patient not linked yet', async () => {
    expect(await fires(create, 'create', base)).toBe(true);
    expect(await fires(create, 'update', base, base)).toBe(false);
    expect(await fires(update, 'update', { ...base, active: true }, base)).toBe(true);
  });

  test('the bot storing the Metriport id does not fire it again', async () => {
    expect(await fires(update, 'update', linked, base)).toBe(false);
  });

  test('unrelated edits of a linked patient do not fire it', async () => {
    // A deep copy: equal content in distinct objects, as the server compares two stored versions.
    expect(await fires(update, 'update', { ...structuredClone(linked), active: true, maritalStatus: { text: 'M' } }, linked)).toBe(false);
    expect(await fires(update, 'update', { ...linked, identifier: [...(linked.identifier ?? []), { system: 'urn:x', value: '1' }] }, linked)).toBe(false);
  });

  test('changes Metriport matches on fire it, including an element appearing or disappearing', async () => {
    const changes: Partial<Patient>[] = [
      { name: [{ family: 'Rivera-Lopez', given: ['Ana'] }] },
      { birthDate: '1984-03-01' },
      { gender: 'other' },
      { address: [{ line: ['13 Elm St'], city: 'Springfield', state: 'IL', postalCode: '62704' }] },
      { telecom: [{ system: 'phone', value: '2175550142' }] },
      { managingOrganization: { reference: 'Organization/o2' } },
      { managingOrganization: undefined },
      { identifier: [...(linked.identifier ?? []), { system: 'http://hl7.org/fhir/sid/us-ssn', value: '123456789' }] },
    ];
    for (const change of changes) {
      expect(await fires(update, 'update', { ...linked, ...change }, linked), JSON.stringify(change)).toBe(true);
    }
    const withPhone = { ...linked, telecom: [{ system: 'phone' as const, value: '2175550142' }] };
    expect(await fires(update, 'update', linked, withPhone)).toBe(true);
  });
});

describe('metriport-webhook subscriptions', () => {
  beforeAll(() => loadFhirDefinitions());
  const task: Task = {
    resourceType: 'Task',
    id: 't1',
    status: 'requested',
    intent: 'order',
    code: { coding: [{ system: 'https://fhir.integration-hub.dev/CodeSystem/hub-task', code: 'metriport-webhook' }] },
  };

  test('a recorded message is processed; a re-drive (back to requested) is processed again; the bot\'s own updates are not', async () => {
    const created = subscription('metriport-webhook-task');
    const redrive = subscription('metriport-webhook-redrive');
    expect(await fires(created, 'create', task)).toBe(true);
    expect(await fires(created, 'create', { ...task, status: 'completed' })).toBe(false);
    expect(await fires(redrive, 'update', task, { ...task, status: 'failed' })).toBe(true);
    expect(await fires(redrive, 'update', { ...task, status: 'in-progress' }, task)).toBe(false);
    expect(await fires(redrive, 'update', { ...task, status: 'failed' }, { ...task, status: 'in-progress' })).toBe(false);
    expect(await fires(redrive, 'update', { ...task, description: 'x' }, task)).toBe(false);
  });
});
