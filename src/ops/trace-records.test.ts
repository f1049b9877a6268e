import type { WithId } from '@medplum/core';
import type { AuditEvent, MessageHeader, Task } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { LedgerExtension, MESSAGE_KEY_SYSTEM, MESSAGE_OUTCOME_SYSTEM, MESSAGE_REPLAY_TAG } from '../fhir/ledger.ts';
import { DELIVERY_TASK_CODE } from '../outbound/delivery.ts';
import { DELIVERY_STATE_SYSTEM, QueueExtension } from '../outbound/queue.ts';
import type { DeliveryTrace, RunTrace } from './trace-records.ts';
import {
  deliveryOf,
  messageIdentityOf,
  parseSubject,
  receptionOf,
  responseOf,
  runOf,
  TRACING_EXTENSION,
  versionAt,
  versionOfRun,
  writerOf,
  wroteResources,
} from './trace-records.ts';

function ledgerEntry(outcome: string, extra: Partial<MessageHeader> = {}): WithId<MessageHeader> {
  return {
    resourceType: 'MessageHeader',
    id: 'm1',
    meta: {
      lastUpdated: '2024-03-15T14:30:00.000Z',
      tag: [
        { system: MESSAGE_OUTCOME_SYSTEM, code: outcome },
        { system: MESSAGE_KEY_SYSTEM, code: 'LABSYS^ACMELAB^CTRL1' },
      ],
    },
    eventCoding: { system: 'http://terminology.hl7.org/CodeSystem/v2-0003', code: 'R01', display: 'ORU^R01' },
    source: { endpoint: 'https://fhir.integration-hub.dev/sid/hl7/acmelab/labsys' },
    ...extra,
  };
}


// Resource types in run details are recognised with the FHIR definitions.
beforeAll(() => {
  loadFhirDefinitions();
});

describe('parseSubject', () => {
  test('references, with and without a version', () => {
    expect(parseSubject('Observation/abc-1')).toEqual({ kind: 'reference', resourceType: 'Observation', id: 'abc-1' });
    expect(parseSubject(' Task/t1/_history/3 ')).toEqual({ kind: 'reference', resourceType: 'Task', id: 't1', versionId: '3' });
  });

  test('a message key has three parts and a control id; anything else is text', () => {
    expect(parseSubject('LABSYS^ACMELAB^CTRL1')).toEqual({ kind: 'message-key', key: 'LABSYS^ACMELAB^CTRL1' });
    expect(parseSubject('^^CTRL1')).toEqual({ kind: 'message-key', key: '^^CTRL1' });
    expect(parseSubject('LABSYS^ACMELAB^')).toEqual({ kind: 'text', value: 'LABSYS^ACMELAB^' });
    expect(parseSubject('CTRL1')).toEqual({ kind: 'text', value: 'CTRL1' });
    expect(parseSubject('results 2024-03-15.hl7')).toEqual({ kind: 'text', value: 'results 2024-03-15.hl7' });
    expect(parseSubject('observation/abc')).toEqual({ kind: 'text', value: 'observation/abc' });
    expect(parseSubject('   ')).toBeUndefined();
  });
});

describe('ledger entries', () => {
  test('a committed reception: outcome, ACK, what it names', () => {
    const entry = ledgerEntry('committed', {
      extension: [
        { url: LedgerExtension.ackCode, valueCode: 'AA' },
        { url: LedgerExtension.warning, valueString: "PID-7 (102): '19800102' is not a date" },
      ],
      focus: [{ reference: 'Patient/p1' }, { reference: 'Observation/o1' }],
    });
    const reception = receptionOf(entry);
    expect(reception).toEqual({
      ledger: 'MessageHeader/m1',
      recorded: '2024-03-15T14:30:00.000Z',
      outcome: 'committed',
      ackCode: 'AA',
      replay: false,
      replayOf: undefined,
      duplicateOf: undefined,
      resolvedBy: undefined,
      error: undefined,
      warnings: 1,
      focus: ['Patient/p1', 'Observation/o1'],
    });
    expect(wroteResources(reception)).toBe(true);
    expect(messageIdentityOf(entry)).toEqual({ key: 'LABSYS^ACMELAB^CTRL1', sender: 'acmelab/labsys', controlId: 'CTRL1', type: 'ORU^R01' });
  });

  test('a dead letter keeps its error with quoted values hidden; a duplicate and a replay wrote nothing new', () => {
    const dead = receptionOf(
      ledgerEntry('dead-letter', {
        extension: [
          { url: LedgerExtension.ackCode, valueCode: 'AE' },
          { url: LedgerExtension.error, valueString: `PID-7 (102): '19800102X' is not a date; name "Rivera"` },
        ],
      })
    );
    expect(dead.error).toBe(`PID-7 (102): '…' is not a date; name "…"`);
    expect(wroteResources(dead)).toBe(false);
    const duplicate = receptionOf(
      ledgerEntry('committed', { extension: [{ url: LedgerExtension.duplicateOf, valueReference: { reference: 'MessageHeader/m0' } }], focus: [{ reference: 'Patient/p1' }] })
    );
    expect(duplicate.duplicateOf).toBe('MessageHeader/m0');
    expect(wroteResources(duplicate)).toBe(false);
    const replay = ledgerEntry('committed', { extension: [{ url: LedgerExtension.replayOf, valueReference: { reference: 'MessageHeader/m0' } }] });
    replay.meta?.tag?.push({ ...MESSAGE_REPLAY_TAG });
    expect(receptionOf(replay)).toMatchObject({ replay: true, replayOf: 'MessageHeader/m0' });
  });
});

describe('runOf', () => {
  test('a bot run fired by a subscription, with its trace id and the first line it logged', () => {
    const event: WithId<AuditEvent> = {
      resourceType: 'AuditEvent',
      id: 'a1',
      type: { system: 'https://medplum.com/CodeSystem/audit-event', code: 'execute' },
      recorded: '2024-03-15T14:30:02.000Z',
      period: { start: '2024-03-15T14:30:01.000Z' },
      agent: [],
      source: { observer: { reference: 'Bot/b1' } },
      entity: [{ what: { reference: 'Bot/b1' } }, { what: { reference: 'Observation/o1' } }, { what: { reference: 'Subscription/s1' } }],
      outcome: '0',
      outcomeDesc: `\npartner-webhook: queued Task/t1 for Endpoint/e1 ('Rivera')\nsecond line`,
      extension: [{ url: TRACING_EXTENSION, extension: [{ url: 'traceId', valueId: 'trace-1' }] }],
    };
    expect(runOf(event)).toEqual({
      auditEvent: 'AuditEvent/a1',
      started: '2024-03-15T14:30:01.000Z',
      kind: 'bot run',
      observer: 'Bot/b1',
      subscription: 'Subscription/s1',
      outcome: 'success',
      traceId: 'trace-1',
      // Only the bot's prefix and the references: a bot's output may quote what it handled.
      detail: 'partner-webhook: Task/t1 Endpoint/e1',
    });
  });

  test('a failed rest-hook delivery without trace id: free text is not shown; long details are clipped', () => {
    const run = runOf({
      resourceType: 'AuditEvent',
      id: 'a2',
      type: { code: 'transmit' },
      recorded: '2024-03-15T14:30:02.000Z',
      agent: [],
      source: { observer: { reference: 'Subscription/s2' } },
      outcome: '4',
      outcomeDesc: 'Connection refused for Rivera, Jane ' + 'x'.repeat(500),
    });
    expect(run).toMatchObject({ kind: 'rest-hook', started: '2024-03-15T14:30:02.000Z', outcome: 'failure', traceId: undefined, subscription: undefined });
    expect(run.detail).toBeUndefined();
    const many = runOf({
      resourceType: 'AuditEvent',
      id: 'a3',
      type: { code: 'execute' },
      recorded: '2024-03-15T14:30:03.000Z',
      agent: [],
      source: { observer: { reference: 'Bot/b1' } },
      outcome: '0',
      outcomeDesc: 'lab-orders: ' + Array.from({ length: 20 }, (_, i) => `Task/${String(i).padStart(36, '0')}`).join(', '),
    });
    expect(many.detail).toHaveLength(200);
    expect(many.detail?.startsWith('lab-orders: Task/')).toBe(true);
    expect(many.detail?.endsWith('…')).toBe(true);
  });
});

describe('deliveryOf', () => {
  const base: WithId<Task> = {
    resourceType: 'Task',
    id: 't1',
    status: 'requested',
    intent: 'order',
    code: { coding: [{ ...DELIVERY_TASK_CODE }] },
    focus: { reference: 'Observation/o1/_history/v1' },
    owner: { reference: 'Endpoint/e1' },
    extension: [
      { url: QueueExtension.nextAttempt, valueInstant: '2024-03-15T14:31:00.000Z' },
      { url: QueueExtension.attempts, valueInteger: 0 },
    ],
  };

  test('queued and not tried yet: pending', () => {
    expect(deliveryOf(base)).toEqual({
      task: 'Task/t1',
      queue: 'partner-delivery',
      focus: 'Observation/o1/_history/v1',
      destination: 'Endpoint/e1',
      status: 'requested',
      state: 'pending',
      attempts: 0,
      nextAttempt: '2024-03-15T14:31:00.000Z',
    });
  });

  test('retrying, delivered and dead-lettered, with the partner answer', () => {
    const state = (code: string, text: string, status: Task['status'], attempts: number): WithId<Task> => ({
      ...base,
      status,
      businessStatus: { coding: [{ system: DELIVERY_STATE_SYSTEM, code }], text },
      extension: [{ url: QueueExtension.attempts, valueInteger: attempts }, base.extension?.[0] as NonNullable<Task['extension']>[number]],
    });
    expect(deliveryOf(state('retrying', 'attempt 2 failed: HTTP 503', 'requested', 2))).toMatchObject({ state: 'retrying', attempts: 2, response: 'HTTP 503', nextAttempt: '2024-03-15T14:31:00.000Z' });
    const delivered = deliveryOf(state('delivered', 'delivered (HTTP 200) (attempt 3)', 'completed', 3));
    expect(delivered).toMatchObject({ status: 'completed', state: 'delivered', attempts: 3, response: 'HTTP 200', text: 'delivered (HTTP 200) (attempt 3)' });
    expect(delivered.nextAttempt).toBeUndefined();
    expect(deliveryOf(state('dead-letter', 'not delivered within the retry window (4 attempt(s), last: HTTP 500)', 'failed', 4))).toMatchObject({
      status: 'failed',
      state: 'dead-letter',
      response: 'HTTP 500',
    });
  });

  test('a lab order that could not be built is a dead letter without an answer', () => {
    const task: WithId<Task> = { ...base, status: 'failed', code: { coding: [{ system: DELIVERY_TASK_CODE.system, code: 'lab-order' }] }, businessStatus: { text: 'not sendable: no placer number' } };
    const delivery = deliveryOf(task);
    expect(delivery).toMatchObject({ queue: 'lab-order', state: 'dead-letter', text: 'not sendable: no placer number' });
    expect(delivery.response).toBeUndefined();
  });
});

test('responseOf reads the HTTP status or the HL7 acknowledgement from the queue text', () => {
  expect(responseOf('delivered (HTTP 204) (attempt 1)')).toBe('HTTP 204');
  expect(responseOf('acknowledged AA by the lab (attempt 1)')).toBe('ACK AA');
  expect(responseOf('refused for good (1 attempt(s), last: rejected by the lab (AR))')).toBe('ACK AR');
  expect(responseOf('attempt 1 failed: no answer within 10 s')).toBeUndefined();
  expect(responseOf('attempt 1 failed: connection failed (ECONNREFUSED)')).toBeUndefined();
});

describe('attribution by time', () => {
  const ingestion = { ledger: 'MessageHeader/a', time: 10_000 };
  const later = { ledger: 'MessageHeader/b', time: 13_000 };

  test('a version belongs to the nearest ingestion within the window', () => {
    expect(writerOf({ versionId: '1', time: 9_995 }, [ingestion, later], 60_000)).toBe(ingestion);
    expect(writerOf({ versionId: '2', time: 12_990 }, [ingestion, later], 60_000)).toBe(later);
    expect(writerOf({ versionId: '3', time: 200_000 }, [ingestion, later], 60_000)).toBeUndefined();
    // Equally near: the first listed.
    expect(writerOf({ versionId: '4', time: 11_500 }, [ingestion, later], 60_000)).toBe(ingestion);
  });

  test('versionAt is the latest version at or before a time', () => {
    const versions = [
      { versionId: '2', time: 2000 },
      { versionId: '1', time: 1000 },
    ];
    expect(versionAt(versions, 999)).toBeUndefined();
    expect(versionAt(versions, 1500)?.versionId).toBe('1');
    expect(versionAt(versions, 2000)?.versionId).toBe('2');
  });

  test('a run belongs to the version of the delivery it names, else to the version current when it started', () => {
    const versions = [
      { versionId: 'v1', time: 1000 },
      { versionId: 'v2', time: 5000 },
    ];
    const deliveries = [{ task: 'Task/t1', focus: 'Observation/o/_history/v1' }] as DeliveryTrace[];
    const run = (detail: string | undefined, started: number): RunTrace => ({
      auditEvent: 'AuditEvent/a',
      started: new Date(started).toISOString(),
      kind: 'bot run',
      outcome: 'success',
      detail,
    });
    expect(versionOfRun(run('partner-webhook: queued Task/t1 for Endpoint/e', 9000), versions, deliveries, 1000)).toBe('v1');
    expect(versionOfRun(run(undefined, 4500), versions, deliveries, 1000)).toBe('v2');
    expect(versionOfRun(run(undefined, 3000), versions, deliveries, 1000)).toBe('v1');
    expect(versionOfRun(run(undefined, 0), versions, deliveries, 0)).toBeUndefined();
  });
});

