import { describe, expect, test } from 'vitest';
import type { TraceReport } from './trace.ts';
import { formatTrace, renderTree } from './trace-format.ts';

describe('renderTree', () => {
  test('children are drawn under their parent, the last with a corner', () => {
    expect(
      renderTree([
        { label: 'root', children: [{ label: 'a', children: [{ label: 'a1' }, { label: 'a2' }] }, { label: 'b', children: [{ label: 'b1' }] }] },
        { label: 'second root' },
      ])
    ).toEqual(['root', '├─ a', '│  ├─ a1', '│  └─ a2', '└─ b', '   └─ b1', 'second root']);
  });
});

const delivered = {
  task: 'Task/t1',
  queue: 'partner-delivery',
  focus: 'Observation/o1/_history/v1',
  destination: 'Endpoint/e1',
  status: 'completed',
  state: 'delivered',
  attempts: 1,
  response: 'HTTP 200',
  text: 'delivered (HTTP 200) (attempt 1)',
};

const report: TraceReport = {
  subject: 'CTRL1',
  found: true,
  resolvedAs: ['hl7-message'],
  notes: ['only the newest 10 entries were read'],
  files: [],
  metriport: [],
  messages: [
    {
      key: 'LABSYS^ACMELAB^CTRL1',
      sender: 'ACMELAB/LABSYS',
      controlId: 'CTRL1',
      type: 'ORU^R01',
      receptions: [
        {
          ledger: 'MessageHeader/m1',
          recorded: '2024-03-15T14:30:00.000Z',
          outcome: 'committed',
          ackCode: 'AA',
          replay: false,
          warnings: 0,
          focus: ['Patient/p1', 'Observation/o1'],
          files: [{ task: 'Task/f1', source: 'acme-sftp' }],
          written: [
            { reference: 'Patient/p1', versions: [], current: 'v7' },
            {
              reference: 'Observation/o1',
              current: 'v1',
              versions: [
                {
                  versionId: 'v1',
                  lastUpdated: '2024-03-15T14:30:00.001Z',
                  writtenBy: 'MessageHeader/m1',
                  runs: [{ auditEvent: 'AuditEvent/a1', started: '2024-03-15T14:30:00.002Z', kind: 'bot run', observer: 'Bot/b1', subscription: 'Subscription/s1', outcome: 'success', traceId: 'tr1' }],
                  deliveries: [delivered],
                },
              ],
            },
          ],
        },
        {
          ledger: 'MessageHeader/m2',
          recorded: '2024-03-15T15:00:00.000Z',
          outcome: 'committed',
          ackCode: 'AA',
          replay: false,
          duplicateOf: 'MessageHeader/m1',
          warnings: 0,
          focus: ['Patient/p1', 'Observation/o1'],
          files: [],
        },
      ],
    },
  ],
};

describe('formatTrace', () => {
  test('the chain from the message to the partner answer, then the notes', () => {
    expect(formatTrace(report)).toEqual([
      'Trace of CTRL1 (hl7-message)',
      'HL7 message LABSYS^ACMELAB^CTRL1  ORU^R01  from ACMELAB/LABSYS',
      '├─ MessageHeader/m1  2024-03-15T14:30:00.000Z  received  committed  ACK AA',
      '│  ├─ arrived in SFTP file Task/f1  source acme-sftp',
      '│  ├─ Patient/p1  not changed by this message (current v7)',
      '│  └─ Observation/o1  wrote v1  2024-03-15T14:30:00.001Z',
      '│     ├─ bot run AuditEvent/a1  2024-03-15T14:30:00.002Z  Bot/b1  via Subscription/s1  success  trace tr1',
      '│     └─ partner-delivery Task/t1  → Endpoint/e1  completed  delivered  1 attempt(s)  HTTP 200  "delivered (HTTP 200) (attempt 1)"',
      '└─ MessageHeader/m2  2024-03-15T15:00:00.000Z  received  committed  ACK AA  duplicate of MessageHeader/m1 (nothing written)',
      'note: only the newest 10 entries were read',
    ]);
  });

  test('a resource traced on its own, and a subject not found', () => {
    const resource: TraceReport = {
      ...report,
      subject: 'Observation/o1',
      resolvedAs: ['resource'],
      notes: [],
      resource: {
        reference: 'Observation/o1',
        current: 'v2',
        versionsNotShown: 3,
        metriportImport: false,
        versions: [
          { versionId: 'v2', lastUpdated: '2024-03-16T00:00:00.000Z', runs: [], deliveries: [] },
          { versionId: 'v1', lastUpdated: '2024-03-15T14:30:00.001Z', writtenBy: 'MessageHeader/m1', runs: [], deliveries: [{ ...delivered, status: 'failed', state: 'dead-letter', response: 'HTTP 500', text: undefined }] },
        ],
      },
      messages: [{ ...report.messages[0], receptions: [{ ...report.messages[0].receptions[0], written: undefined, files: [] }] }],
    };
    expect(formatTrace(resource)).toEqual([
      'Trace of Observation/o1 (resource)',
      'Observation/o1  current v2',
      '├─ version v2  2024-03-16T00:00:00.000Z  not written by an HL7 message',
      '│  └─ no subscription run or delivery recorded',
      '├─ version v1  2024-03-15T14:30:00.001Z  written by MessageHeader/m1',
      '│  └─ partner-delivery Task/t1  → Endpoint/e1  failed  dead-letter  1 attempt(s)  HTTP 500',
      '└─ … 3 other version(s) not shown (trace Observation/o1/_history/<vid> for one)',
      'written by HL7 message LABSYS^ACMELAB^CTRL1  ORU^R01  from ACMELAB/LABSYS',
      '└─ MessageHeader/m1  2024-03-15T14:30:00.000Z  received  committed  ACK AA',
      '   └─ 2 resource(s) (trace MessageHeader/m1 for what each change fired)',
    ]);
    const missing: TraceReport = { subject: 'Observation/x', found: false, resolvedAs: ['resource'], notes: ['Observation/x: not found'], messages: [], files: [], metriport: [] };
    expect(formatTrace(missing)).toEqual(['Not found: Observation/x', 'note: Observation/x: not found']);
  });

  test('files and Metriport messages', () => {
    const other: TraceReport = {
      subject: 'an SFTP file name',
      found: true,
      resolvedAs: ['sftp-file', 'metriport-message'],
      notes: [],
      messages: [],
      files: [{ task: 'Task/f1', source: 'acme-sftp', received: '2024-03-15T14:00:00.000Z', status: 'completed', outcome: 'processed', format: 'hl7v2-batch', messageCount: 0, messages: [] }],
      metriport: [{ task: 'Task/w1', messageId: 'msg-1', type: 'medical.consolidated-data', status: 'completed', outcome: 'merged', patient: 'Patient/p1', counts: { created: 3, updated: 1 } }],
    };
    expect(formatTrace(other)).toEqual([
      'Trace of an SFTP file name (sftp-file, metriport-message)',
      'SFTP file Task/f1  source acme-sftp  received 2024-03-15T14:00:00.000Z  completed  processed  0 message(s)',
      'Metriport message Task/w1  messageId msg-1  medical.consolidated-data  completed  merged',
      '├─ merged into Patient/p1',
      '└─ created 3, updated 1',
    ]);
  });
});
