import type { WithId } from '@medplum/core';
import type { Task } from '@medplum/fhirtypes';
import { expect, test } from 'vitest';
import { messageHash, messageKey } from '../fhir/ledger.ts';
import { readHl7Message, readMessageHeader } from '../hl7/message.ts';
import { METRIPORT_MESSAGE_ID_SYSTEM, METRIPORT_WEBHOOK_TASK_CODE } from '../metriport/constants.ts';
import { TASK_OUTCOME_SYSTEM } from '../metriport/task-outcome.ts';
import { fileMessagesOf, metriportOf } from './trace.ts';

const ADT = ['MSH|^~\\&|ADT|NSH|HUB|NORTHSIDE|20240315083000||ADT^A01|CTRL1|P|2.5.1', 'EVN|A01|20240315083000', 'PID|1||MRN1^^^NSH^MR||Rivera^Jane'].join('\r');
const ORU = ['MSH|^~\\&|LABSYS|ACMELAB|HUB|NORTHSIDE|20240315143000||ORU^R01|CTRL2|P|2.5.1', 'PID|1||MRN1^^^NSH^MR||Rivera^Jane', 'OBR|1|ORD1'].join('\r');

test('the messages of a batch file carry the key and content hash the ledger records them under', () => {
  const file = ['FHS|^~\\&|SFTP|NSH', 'BHS|^~\\&|SFTP|NSH', ADT, ORU, 'BTS|2', 'FTS|1'].join('\n');
  const expected = [ADT, ORU].map((text) => {
    const message = readHl7Message(text);
    const header = readMessageHeader(message);
    return { key: messageKey(header), hash: messageHash(message.toString()), controlId: header.controlId, type: `${header.messageCode}^${header.triggerEvent}` };
  });
  expect(fileMessagesOf(file)).toEqual(expected);
  expect(expected.map((m) => m.key)).toEqual(['ADT^NSH^CTRL1', 'LABSYS^ACMELAB^CTRL2']);
  // A roster holds no HL7 messages.
  expect(fileMessagesOf('mrn,family,given\nMRN1,Rivera,Jane\n')).toEqual([]);
});

test('a Metriport message: ids, outcome and counts, nothing of the refusal texts', () => {
  const task: WithId<Task> = {
    resourceType: 'Task',
    id: 'w1',
    status: 'failed',
    intent: 'order',
    code: { coding: [{ ...METRIPORT_WEBHOOK_TASK_CODE }] },
    identifier: [{ system: METRIPORT_MESSAGE_ID_SYSTEM, value: 'msg-1' }],
    authoredOn: '2024-03-15T14:00:00.000Z',
    for: { reference: 'Patient/p1' },
    businessStatus: { coding: [{ system: TASK_OUTCOME_SYSTEM, code: 'partially-merged' }], text: 'no Medplum Patient has the externalId MRN1' },
    input: [{ type: { text: 'message type' }, valueString: 'medical.consolidated-data' }],
    output: [
      { type: { text: 'created' }, valueInteger: 3 },
      { type: { text: 'refused' }, valueInteger: 1 },
      { type: { text: 'not imported' }, valueString: 'Observation/x: Rivera' },
    ],
  };
  const traced = metriportOf(task);
  expect(traced).toEqual({
    task: 'Task/w1',
    messageId: 'msg-1',
    type: 'medical.consolidated-data',
    received: '2024-03-15T14:00:00.000Z',
    status: 'failed',
    outcome: 'partially-merged',
    patient: 'Patient/p1',
    counts: { created: 3, refused: 1 },
  });
  expect(JSON.stringify(traced)).not.toMatch(/Rivera|MRN1/);
});
