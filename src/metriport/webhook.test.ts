import { describe, expect, test } from 'vitest';
import { METRIPORT_MESSAGE_ID_SYSTEM, METRIPORT_REQUEST_ID_SYSTEM } from './constants.ts';
import { TASK_OUTCOME_SYSTEM } from './task-outcome.ts';
import { buildWebhookTask, WEBHOOK_BODY_INPUT } from './webhook.ts';

const NOW = '2025-06-01T12:00:00.000Z';

describe('buildWebhookTask', () => {
  test('a consolidated-data message is requested for processing, keyed by messageId and requestId, body kept', () => {
    const message = { meta: { messageId: 'm1', requestId: 'r1', when: NOW, type: 'medical.consolidated-data' }, patients: [] };
    const body = JSON.stringify(message);
    const task = buildWebhookTask(message, body, NOW);
    expect(task.status).toBe('requested');
    expect(task.identifier).toEqual([
      { system: METRIPORT_MESSAGE_ID_SYSTEM, value: 'm1' },
      { system: METRIPORT_REQUEST_ID_SYSTEM, value: 'r1' },
    ]);
    expect(task.input?.find((i) => i.type?.text === WEBHOOK_BODY_INPUT.text)?.valueString).toBe(body);
  });

  test('other message types are recorded as not handled, completed', () => {
    const message = { meta: { messageId: 'm2', when: NOW, type: 'patient.admit' }, payload: {} };
    const task = buildWebhookTask(message, JSON.stringify(message), NOW);
    expect(task.status).toBe('completed');
    expect(task.businessStatus?.coding).toEqual([{ system: TASK_OUTCOME_SYSTEM, code: 'not-handled' }]);
    expect(task.identifier).toEqual([{ system: METRIPORT_MESSAGE_ID_SYSTEM, value: 'm2' }]);
  });

  test('a body without meta is recorded as failed, with the body', () => {
    const task = buildWebhookTask({ hello: 1 }, '{"hello":1}', NOW);
    expect(task.status).toBe('failed');
    expect(task.identifier).toBeUndefined();
    expect(task.businessStatus?.coding?.[0].code).toBe('unreadable');
    expect(task.input?.[1].valueString).toBe('{"hello":1}');
  });
});
