/**
 * HL7 orders to labs end to end: a ServiceRequest for the lab fires the `lab-orders` bot, which
 * builds an ORM^O01 and sends it through the Agent (`Agent/$push`) to the lab's MLLP receiver,
 * a real socket on 127.0.0.1. The lab answers AE (a NACK) first: the order stays queued; the
 * cron pass sends it again and the lab accepts (AA). A cancel is sent as ORC-1 CA; a lab that
 * refuses it (AR) dead-letters it.
 */
import type { MedplumClient, WithId } from '@medplum/core';
import type { Agent, Bot, Device, Organization, Patient, ServiceRequest, Subscription, Task } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runPartnersCommand } from '../../src/commands/partners.ts';
import { BOT_NAME_SYSTEM } from '../../src/constants.ts';
import { LAB_ORDER_TASK_CODE, LabExtension } from '../../src/outbound/lab-orders.ts';
import { SYSTEMS } from '../support/hl7-messages.ts';
import { answer, FakeDevice } from '../support/mllp-device.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import { waitFor } from '../support/wait.ts';

let target: E2eTarget;
let client: MedplumClient;
let lab: FakeDevice;
let skip: string | undefined;

beforeAll(async () => {
  target = await startE2eTarget();
  if (target.kind === 'stock') {
    skip = 'stock target: the test lab listens on 127.0.0.1 only; run against the local runtime';
    return;
  }
  client = target.client;
  lab = await new FakeDevice().start();
}, 60_000);

afterAll(async () => {
  await target?.stop();
  await lab?.stop();
});

async function orderTasks(device: Device): Promise<WithId<Task>[]> {
  return client.searchResources('Task', { code: `${LAB_ORDER_TASK_CODE.system}|${LAB_ORDER_TASK_CODE.code}`, owner: `Device/${device.id}`, _sort: 'authored-on', _count: '20' });
}

describe('lab orders', () => {
  test('an order NACKed by the lab stays queued and is sent again until accepted; a refused cancel is dead-lettered', async (ctx) => {
    if (skip) {
      ctx.skip(skip);
    }
    const agent = (await client.searchOne('Agent', {})) as WithId<Agent>;
    const acme = await client.createResource<Organization>({ resourceType: 'Organization', name: 'Acme test lab' });
    const device = await client.createResource<Device>({
      resourceType: 'Device',
      status: 'active',
      url: lab.url,
      extension: [
        { url: LabExtension.agent, valueReference: { reference: `Agent/${agent.id}` } },
        { url: LabExtension.lab, valueReference: { reference: `Organization/${acme.id}` } },
        { url: LabExtension.messageType, valueString: 'ORM^O01' },
        { url: LabExtension.receivingApplication, valueString: 'ACME' },
        { url: LabExtension.receivingFacility, valueString: 'ACME' },
        { url: LabExtension.retryBaseSeconds, valueDecimal: 0 },
        { url: LabExtension.settleSeconds, valueDecimal: 0 },
      ],
    });
    const bot = (await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|lab-orders` })) as WithId<Bot>;
    for (const interaction of ['create', 'update']) {
      await client.createResource<Subscription>({
        resourceType: 'Subscription',
        status: 'active',
        reason: `orders for the test lab (${interaction})`,
        criteria: 'ServiceRequest',
        channel: { type: 'rest-hook', endpoint: `Bot/${bot.id}`, payload: 'application/fhir+json' },
        extension: [
          { url: LabExtension.device, valueReference: { reference: `Device/${device.id}` } },
          { url: 'https://medplum.com/fhir/StructureDefinition/subscription-supported-interaction', valueCode: interaction },
        ],
      });
    }
    const patient = await client.createResource<Patient>({
      resourceType: 'Patient',
      identifier: [{ system: SYSTEMS.mrn, value: `LAB${Date.now()}`, type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] } }],
      name: [{ family: 'Okafor', given: ['Ada'] }],
      birthDate: '1970-01-31',
      gender: 'female',
    });
    const placer = `ORD${Date.now()}`;

    // The lab NACKs the first message.
    let first = true;
    lab.behaviour = (message, connection) => {
      connection.send(message.buildAck({ ackCode: first ? 'AE' : 'AA' }));
      first = false;
    };
    const order = await client.createResource<ServiceRequest>({
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      subject: { reference: `Patient/${patient.id}` },
      performer: [{ reference: `Organization/${acme.id}` }],
      identifier: [{ system: SYSTEMS.placer, value: placer, type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC' }] } }],
      code: { coding: [{ system: 'http://loinc.org', code: '2823-3', display: 'Potassium' }] },
      authoredOn: '2026-11-22T08:00:00Z',
    });
    const [queued] = await waitFor('the order tried and NACKed', async () => {
      const tasks = await orderTasks(device);
      return tasks[0]?.businessStatus?.coding?.[0]?.code === 'retrying' ? tasks : undefined;
    }, 15_000);
    expect(queued.status).toBe('requested');
    expect(queued.businessStatus?.text).toMatch(/the lab answered AE/);

    // The cron pass sends it again; the lab accepts.
    await client.executeBot({ system: BOT_NAME_SYSTEM, value: 'lab-orders' }, bot, 'application/fhir+json');
    expect((await client.readResource('Task', queued.id)).status).toBe('completed');
    expect(lab.received).toHaveLength(2);
    const [sent, resent] = lab.received;
    expect(resent.getSegment('MSH')?.getField(10)?.toString()).toBe(sent.getSegment('MSH')?.getField(10)?.toString());
    expect(sent.getSegment('MSH')?.getField(9)?.toString()).toBe('ORM^O01^ORM_O01');
    expect(sent.getSegment('ORC')?.getField(1)?.toString()).toBe('NW');
    expect(sent.getSegment('ORC')?.getField(2)?.getComponent(1)).toBe(placer);
    expect(sent.getSegment('OBR')?.getField(4)?.getComponent(1)).toBe('2823-3');
    expect(sent.getSegment('PID')?.getField(3)?.toString()).toContain(patient.identifier?.[0].value);

    // An edit of the active order (a note) sends nothing more: one new-order message per order.
    const edited = await client.updateResource<ServiceRequest>({ ...(await client.readResource('ServiceRequest', order.id)), note: [{ text: 'fasting' }] });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await orderTasks(device)).toHaveLength(1);
    expect(lab.received).toHaveLength(2);

    // A cancel: ORC-1 CA; the lab refuses it for good.
    lab.behaviour = answer('AR');
    await client.updateResource<ServiceRequest>({ ...edited, status: 'revoked' });
    const tasks = await waitFor('the cancel refused', async () => {
      const all = await orderTasks(device);
      return all.length === 2 && all[1].status === 'failed' ? all : undefined;
    }, 15_000);
    expect(tasks[1].businessStatus?.coding?.[0]?.code).toBe('dead-letter');
    expect(tasks[1].businessStatus?.text).toMatch(/refused for good/);
    expect(lab.received[2].getSegment('ORC')?.getField(1)?.toString()).toBe('CA');

    // Listed as a dead letter; once the lab takes cancels, a replay sends it again.
    const lines: string[] = [];
    const io = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    const hub = { client, baseUrl: target.baseUrl, projectId: (client.getProject() as { id: string }).id };
    expect(await runPartnersCommand(hub, ['deliveries', '--dead-letter'], io, LAB_ORDER_TASK_CODE)).toBe(0);
    expect(lines.some((l) => l.startsWith(`Task/${tasks[1].id} `))).toBe(true);
    lab.behaviour = answer('AA');
    expect(await runPartnersCommand(hub, ['replay', tasks[1].id], io, LAB_ORDER_TASK_CODE)).toBe(0);
    await client.executeBot({ system: BOT_NAME_SYSTEM, value: 'lab-orders' }, bot, 'application/fhir+json');
    expect((await client.readResource('Task', tasks[1].id)).status).toBe('completed');
  });
});
