import type { BotEvent, MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Bot, Device, ServiceRequest } from '@medplum/fhirtypes';
import type { LabInterface } from '../../src/outbound/lab-orders.ts';
import { LabExtension, queueLabOrder, readLabInterface, sendLabOrders } from '../../src/outbound/lab-orders.ts';
import type { QueueReport } from '../../src/outbound/queue.ts';
import { retryTransient } from '../../src/fhir/failures.ts';
import { headerValue } from '../../src/net/headers.ts';

/**
 * HL7 orders to labs. Fired two ways:
 * - by a lab's ServiceRequest Subscription (the extension `lab-device` names the lab's Device):
 *   a new or cancelled order for that lab is queued as ORM^O01/OML^O21 and sent at once through
 *   the Agent (`Agent/$push`), waiting for the lab's ACK;
 * - by cron (every minute; the input is the Bot): every lab's queued orders that are due are sent
 *   again. `$push` drops messages while the agent is offline, so an order stays queued until the
 *   lab answers AA; AE retries with backoff; AR dead-letters it.
 * @param medplum - Client with the bot's identity.
 * @param event - The ServiceRequest (subscription) or the Bot (cron).
 * @returns What was done.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<ServiceRequest | Bot>): Promise<unknown> {
  if (event.input.resourceType === 'Bot') {
    const reports: Record<string, QueueReport | { error: string }> = {};
    for (const device of await medplum.searchResources('Device', { status: 'active', _count: '100' })) {
      const read = readLabInterface(device);
      if ('lab' in read) {
        reports[read.lab.device] = await sendLabOrders(medplum, read.lab).catch((err: unknown) => ({ error: normalizeErrorString(err) }));
      }
    }
    return reports;
  }
  const order = event.input as WithId<ServiceRequest>;
  const subscriptionId = headerValue(event.headers, 'x-medplum-subscription');
  if (!subscriptionId || !order.id) {
    return { queued: false, reason: 'not a subscription event' };
  }
  const subscription = await medplum.readResource('Subscription', subscriptionId);
  const deviceRef = subscription.extension?.find((e) => e.url === LabExtension.device)?.valueReference?.reference;
  if (!deviceRef?.startsWith('Device/')) {
    console.log(`lab-orders: Subscription/${subscriptionId} names no lab Device (${LabExtension.device})`);
    return { queued: false };
  }
  const read = readLabInterface(await medplum.readReference<Device>({ reference: deviceRef }));
  if ('problems' in read) {
    console.log(`lab-orders: ${read.problems.join('; ')}`);
    return { queued: false };
  }
  const lab: LabInterface = read.lab;
  // The stock subscription worker does not retry a bot that fails: queuing retries itself.
  const queued = await retryTransient(() => queueLabOrder(medplum, lab, order));
  if ('skipped' in queued) {
    return { queued: false, reason: queued.skipped };
  }
  return { queued: true, task: `Task/${queued.task.id}`, report: await sendLabOrders(medplum, lab) };
}
