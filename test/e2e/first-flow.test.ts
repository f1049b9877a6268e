import type { Patient, Subscription } from '@medplum/fhirtypes';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ackCode, MllpSender } from '../support/mllp-sender.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';
import { waitFor } from '../support/wait.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

/**
 * The first flow end to end over real sockets: an ADT message sent over MLLP with
 * node-hl7-client reaches the hl7-inbound bot through the agent channel, the bot upserts the
 * Patient and answers AA after the write; a Subscription on Patient delivers a signed webhook to
 * a local HTTP receiver that verifies the signature over the exact body.
 */
describe('first flow: ADT over MLLP -> Patient -> signed webhook', () => {
  // A fresh assigning authority per run keeps the scenario independent of earlier data.
  const authority = 'E2E' + randomBytes(4).toString('hex').toUpperCase();
  const system = `https://fhir.integration-hub.dev/sid/assigning-authority/${authority}`;
  const secret = randomBytes(32).toString('hex');
  const receiver = new WebhookReceiver(secret);
  let target: E2eTarget;
  let sender: MllpSender | undefined;
  let mllpSkip: string | undefined;
  let receiverSkip: string | undefined;
  let subscription: Subscription | undefined;

  const adt = (controlId: string, event: string, mrn: string, family: string): string =>
    [
      `MSH|^~\\&|EPIC|HOSP|HUB|HUB|20240101120000||ADT^${event}^ADT_A01|${controlId}|P|2.5.1`,
      `EVN|${event}|20240101120000`,
      `PID|1||${mrn}^^^${authority}^MR||${family}^Jane^Q||19800102|F`,
      `PV1|1|I`,
    ].join('\r');

  beforeAll(async () => {
    target = await startE2eTarget();
    const mllp = target.mllp('northside-adt');
    if ('skip' in mllp) {
      mllpSkip = mllp.skip;
    } else {
      sender = new MllpSender(mllp.host, mllp.port);
    }
    if (typeof target.receiverHost === 'string') {
      const url = await receiver.start(target.receiverHost);
      subscription = await target.client.createResource<Subscription>({
        resourceType: 'Subscription',
        status: 'active',
        reason: 'e2e: first flow webhook',
        criteria: 'Patient',
        channel: { type: 'rest-hook', endpoint: url, payload: 'application/fhir+json' },
        extension: [
          { url: 'https://www.medplum.com/fhir/StructureDefinition/subscription-secret', valueString: secret },
          {
            url: 'https://medplum.com/fhir/StructureDefinition/fhir-path-criteria-expression',
            valueString: `%current.identifier.where(system = '${system}').exists()`,
          },
        ],
      });
    } else {
      receiverSkip = target.receiverHost.skip;
    }
  });

  afterAll(async () => {
    if (subscription?.id) {
      await target.client.deleteResource('Subscription', subscription.id).catch(() => undefined);
    }
    await sender?.close();
    await receiver.stop();
    await target?.stop();
  });

  const patientsWith = (mrn: string): Promise<Patient[]> =>
    target.client.searchResources('Patient', { identifier: `${system}|${mrn}` });

  test('A01 over MLLP is acknowledged AA only after the Patient is stored', async (ctx) => {
    ctx.skip(!sender, mllpSkip);
    const controlId = 'E2E-' + randomUUID();
    const [ack] = await (sender as MllpSender).send(adt(controlId, 'A01', 'MRN001', 'Rivera'));
    expect(ackCode(ack)).toBe('AA');
    expect(ack).toContain(`MSA|AA|${controlId}`);
    // The ACK came after the commit: the Patient is readable right away.
    const patients = await patientsWith('MRN001');
    expect(patients).toHaveLength(1);
    expect(patients[0].name?.[0]).toMatchObject({ family: 'Rivera', given: ['Jane', 'Q'] });
    expect(patients[0].birthDate).toBe('1980-01-02');
  });

  test('the Subscription delivers a signed webhook that the receiver verifies', async (ctx) => {
    ctx.skip(!sender, mllpSkip);
    ctx.skip(!subscription, receiverSkip);
    const delivery = await waitFor('a signed Patient webhook', () =>
      receiver.received.find((r) => r.rawBody.toString('utf8').includes('MRN001'))
    );
    expect(delivery.signatureValid).toBe(true);
    expect(delivery.headers['x-medplum-subscription']).toBe(subscription?.id);
    expect(delivery.headers['x-medplum-interaction']).toBe('create');
    expect(delivery.headers['content-type']).toContain('application/fhir+json');
    const body = JSON.parse(delivery.rawBody.toString('utf8')) as Patient;
    expect(body.resourceType).toBe('Patient');
    expect(body.identifier).toContainEqual(expect.objectContaining({ system, value: 'MRN001' }));
  });

  test('resending the same message changes nothing; an A08 updates the same Patient', async (ctx) => {
    ctx.skip(!sender, mllpSkip);
    const resend = 'E2E-' + randomUUID();
    const [first] = await (sender as MllpSender).send(adt(resend, 'A01', 'MRN002', 'Okafor'));
    const before = await patientsWith('MRN002');
    const [second] = await (sender as MllpSender).send(adt(resend, 'A01', 'MRN002', 'Okafor'));
    const after = await patientsWith('MRN002');
    expect([ackCode(first), ackCode(second)]).toEqual(['AA', 'AA']);
    expect(after).toHaveLength(1);
    expect(after[0].meta?.versionId).toBe(before[0].meta?.versionId);

    const [update] = await (sender as MllpSender).send(adt('E2E-' + randomUUID(), 'A08', 'MRN002', 'Okafor-Smith'));
    expect(ackCode(update)).toBe('AA');
    const updated = await patientsWith('MRN002');
    expect(updated).toHaveLength(1);
    expect(updated[0].id).toBe(before[0].id);
    expect(updated[0].name?.[0].family).toBe('Okafor-Smith');
  });

  test('an unsupported message type is rejected with AR and an ERR segment', async (ctx) => {
    ctx.skip(!sender, mllpSkip);
    const controlId = 'E2E-' + randomUUID();
    const [ack] = await (sender as MllpSender).send(
      `MSH|^~\\&|LAB|HOSP|HUB|HUB|20240101120000||QRY^A19^QRY_A19|${controlId}|P|2.5.1\rQRD|20240101|R|I|Q1`
    );
    expect(ackCode(ack)).toBe('AR');
    expect(ack).toMatch(/\rERR\|[^\r]*200\^Unsupported message type/);
  });

  test('a message without an identifiable patient gets AE pointing at PID-3', async (ctx) => {
    ctx.skip(!sender, mllpSkip);
    const controlId = 'E2E-' + randomUUID();
    const [ack] = await (sender as MllpSender).send(
      `MSH|^~\\&|EPIC|HOSP|HUB|HUB|20240101120000||ADT^A01^ADT_A01|${controlId}|P|2.5.1\rPID|1||||Doe^John`
    );
    expect(ackCode(ack)).toBe('AE');
    expect(ack).toMatch(/\rERR\|\|PID\^1\^3\|101\^/);
  });
});
