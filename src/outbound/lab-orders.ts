import type { MedplumClient, WithId } from '@medplum/core';
import { ContentType, normalizeErrorString } from '@medplum/core';
import type { Device, Encounter, Patient, Practitioner, ServiceRequest, Task } from '@medplum/fhirtypes';
import { createHash } from 'node:crypto';
import { HUB_SID, HUB_URI } from '../constants.ts';
import { LockKind } from '../fhir/lock.ts';
import { loadMappingConfig } from '../inbound/config.ts';
import { buildLabOrder } from '../mapping/outbound/lab-order.ts';
import type { AttemptResult, QueueReport } from './queue.ts';
import { inputOf, processQueue, queuedTaskFields } from './queue.ts';

/** Task code of an order to send to a lab. */
export const LAB_ORDER_TASK_CODE = { system: `${HUB_URI}/CodeSystem/hub-task`, code: 'lab-order' } as const;
/** Task identifier: the order event (ServiceRequest version and order control). */
const LAB_ORDER_EVENT_SYSTEM = `${HUB_SID}/lab-order-event`;

/** Extensions of a lab's order interface Device. */
export const LabExtension = {
  /** The Agent the Device is reached through (valueReference). */
  agent: `${HUB_URI}/StructureDefinition/lab-agent`,
  /** The Organization whose orders go to this Device (`ServiceRequest.performer`; valueReference). */
  lab: `${HUB_URI}/StructureDefinition/lab-organization`,
  /** `ORM^O01` (default) or `OML^O21`. */
  messageType: `${HUB_URI}/StructureDefinition/lab-message-type`,
  receivingApplication: `${HUB_URI}/StructureDefinition/lab-receiving-application`,
  receivingFacility: `${HUB_URI}/StructureDefinition/lab-receiving-facility`,
  /** How long an order is retried before it is dead-lettered (hours, default 72). */
  retryWindowHours: `${HUB_URI}/StructureDefinition/lab-retry-window-hours`,
  /** First retry delay in seconds (default 30). */
  retryBaseSeconds: `${HUB_URI}/StructureDefinition/lab-retry-base-seconds`,
  /** Seconds an order waits before it is sent (default 15): a cancel queued by a faster run must not overtake its order. */
  settleSeconds: `${HUB_URI}/StructureDefinition/lab-settle-seconds`,
  /** On a ServiceRequest Subscription: the lab Device its orders go to (valueReference). */
  device: `${HUB_URI}/StructureDefinition/lab-device`,
} as const;

/** A lab's order interface. */
export interface LabInterface {
  /** `Device/<id>`. */
  readonly device: string;
  /** `Agent/<id>`. */
  readonly agent: string;
  /** `Organization/<id>`. */
  readonly lab: string;
  readonly messageType: 'ORM^O01' | 'OML^O21';
  readonly receiving: { readonly application: string; readonly facility: string };
  readonly retryWindowMs: number;
  readonly retryBaseMs: number;
  readonly settleMs: number;
}

/**
 * Reads a lab's order interface from its Device.
 * @param device - The Device (its `url` is the lab's MLLP address, used by the agent).
 * @returns The interface, or what is missing.
 */
export function readLabInterface(device: WithId<Device>): { lab: LabInterface } | { problems: string[] } {
  const ext = (url: string): { valueString?: string; valueDecimal?: number; valueReference?: { reference?: string } } | undefined =>
    device.extension?.find((e) => e.url === url);
  const problems: string[] = [];
  const agent = ext(LabExtension.agent)?.valueReference?.reference;
  const lab = ext(LabExtension.lab)?.valueReference?.reference;
  if (!agent?.startsWith('Agent/')) {
    problems.push(`Device/${device.id}: no ${LabExtension.agent} extension naming the Agent`);
  }
  if (!lab?.startsWith('Organization/')) {
    problems.push(`Device/${device.id}: no ${LabExtension.lab} extension naming the lab Organization`);
  }
  if (!device.url?.startsWith('mllp://')) {
    problems.push(`Device/${device.id}: url must be the lab's mllp:// address`);
  }
  const messageType = ext(LabExtension.messageType)?.valueString ?? 'ORM^O01';
  if (messageType !== 'ORM^O01' && messageType !== 'OML^O21') {
    problems.push(`Device/${device.id}: ${LabExtension.messageType} must be ORM^O01 or OML^O21`);
  }
  if (problems.length) {
    return { problems };
  }
  return {
    lab: {
      device: `Device/${device.id}`,
      agent: agent as string,
      lab: lab as string,
      messageType: messageType as LabInterface['messageType'],
      receiving: { application: ext(LabExtension.receivingApplication)?.valueString ?? '', facility: ext(LabExtension.receivingFacility)?.valueString ?? '' },
      retryWindowMs: Math.max(0, ext(LabExtension.retryWindowHours)?.valueDecimal ?? 72) * 3600_000,
      retryBaseMs: Math.max(0, ext(LabExtension.retryBaseSeconds)?.valueDecimal ?? 30) * 1000,
      settleMs: Math.max(0, ext(LabExtension.settleSeconds)?.valueDecimal ?? 15) * 1000,
    },
  };
}

/**
 * Queues an order for a lab: a new (`active`) or cancelled (`revoked`) ServiceRequest whose
 * performer is the lab becomes an ORM^O01 or OML^O21 (`buildLabOrder`), kept on a Task until
 * the lab acknowledges it. Each order is queued once as new and once as cancelled. An order that cannot
 * be built (no placer number, no patient identifier...) is recorded as a dead letter with why.
 * @param medplum - The client.
 * @param lab - The lab's interface.
 * @param order - The ServiceRequest.
 * @returns The Task, or why the order is not for this lab.
 */
export async function queueLabOrder(medplum: MedplumClient, lab: LabInterface, order: WithId<ServiceRequest>): Promise<{ task: WithId<Task> } | { skipped: string }> {
  if (!order.performer?.some((p) => p.reference === lab.lab)) {
    return { skipped: `ServiceRequest/${order.id} is not for ${lab.lab}` };
  }
  if (order.status !== 'active' && order.status !== 'revoked') {
    return { skipped: `ServiceRequest/${order.id} is ${order.status}: only active (new) and revoked (cancelled) orders are sent` };
  }
  const focus = `ServiceRequest/${order.id}/_history/${order.meta?.versionId}`;
  // One new-order message and one cancel per order and lab: later edits of an active order
  // (a note, a status write-back) send nothing more.
  const control = order.status === 'active' ? 'NW' : 'CA';
  const key = createHash('sha256').update(`${lab.device}\nServiceRequest/${order.id}\n${control}`).digest('hex');
  const controlId = `HUB${key.slice(0, 17).toUpperCase()}`;
  const eventTime = order.meta?.lastUpdated ?? new Date().toISOString();
  const [patient, encounter, requester, config] = await Promise.all([
    order.subject?.reference?.startsWith('Patient/') ? medplum.readReference<Patient>({ reference: order.subject.reference }) : undefined,
    order.encounter?.reference ? medplum.readReference<Encounter>({ reference: order.encounter.reference }).catch(() => undefined) : undefined,
    order.requester?.reference?.startsWith('Practitioner/') ? medplum.readReference<Practitioner>({ reference: order.requester.reference }).catch(() => undefined) : undefined,
    loadMappingConfig(medplum, lab.receiving.facility),
  ]);
  const built = patient
    ? buildLabOrder({
        serviceRequest: order,
        patient,
        encounter,
        requester,
        messageType: lab.messageType,
        sending: { application: 'HUB', facility: 'HUB' },
        receiving: lab.receiving,
        controlId,
        now: new Date().toISOString(),
        config,
      })
    : { errors: ['ServiceRequest.subject is not a Patient'] };
  const draft: Task = {
    resourceType: 'Task',
    intent: 'order',
    code: { coding: [{ ...LAB_ORDER_TASK_CODE }], text: 'Order to send to a lab' },
    identifier: [{ system: LAB_ORDER_EVENT_SYSTEM, value: key }],
    focus: { reference: focus },
    owner: { reference: lab.device },
    ...queuedTaskFields(eventTime, lab.retryWindowMs),
    input: [
      { type: { text: 'resource' }, valueString: `ServiceRequest/${order.id}` },
      { type: { text: 'message' }, valueString: 'message' in built ? built.message : '' },
    ],
  };
  if ('errors' in built) {
    draft.status = 'failed';
    draft.businessStatus = { text: `not sendable: ${built.errors.join('; ')}` };
  }
  const task = await medplum.createResourceIfNoneExist(draft, `identifier=${encodeURIComponent(`${LAB_ORDER_EVENT_SYSTEM}|${key}`)}`);
  return { task };
}

/**
 * Sends a lab's queued orders through the Agent (`Agent/$push` to the lab Device, waiting for the
 * lab's application ACK), in order per ServiceRequest, with the queue's backoff ({@link
 * processQueue}): `AA` completes an order; `AE` or no answer (the agent offline: `$push` does
 * not queue) retries it; `AR` (or `CR`) dead-letters it at once (the lab refuses it for good).
 * An order younger than the settle time waits, so a cancel never goes before its order.
 * @param medplum - The client.
 * @param lab - The lab's interface.
 * @param now - The current time, ms.
 * @returns Counts.
 */
export async function sendLabOrders(medplum: MedplumClient, lab: LabInterface, now = Date.now()): Promise<QueueReport> {
  return processQueue(
    medplum,
    {
      code: LAB_ORDER_TASK_CODE,
      owner: lab.device,
      lockKind: LockKind.labOrders,
      settleMs: lab.settleMs,
      retryBaseMs: lab.retryBaseMs,
      attempt: (task) => pushOrder(medplum, lab, task),
    },
    now
  );
}

async function pushOrder(medplum: MedplumClient, lab: LabInterface, task: WithId<Task>): Promise<AttemptResult> {
  const message = inputOf(task, 'message') ?? '';
  let answer: unknown;
  try {
    answer = await medplum.pushToAgent({ reference: lab.agent }, { reference: lab.device }, message, ContentType.HL7_V2, true, { waitTimeout: 30_000 });
  } catch (err) {
    return { ok: false, reason: `no acknowledgement (${normalizeErrorString(err).slice(0, 120)})`, unreachable: true };
  }
  const text = typeof answer === 'string' ? answer : String(JSON.stringify(answer ?? ''));
  const msa = text.split(/\r\n|\r|\n/).find((s) => s.startsWith('MSA'));
  const code = msa?.split(msa.charAt(3))[1];
  if (code === 'AA') {
    return { ok: true, text: 'acknowledged AA by the lab' };
  }
  if (code === 'AR' || code === 'CR') {
    return { ok: false, reason: `rejected by the lab (${code})`, final: true };
  }
  return { ok: false, reason: code ? `the lab answered ${code}` : 'the answer is not an HL7 acknowledgement' };
}
