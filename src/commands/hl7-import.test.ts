import type { MedplumClient } from '@medplum/core';
import { OperationOutcomeError } from '@medplum/core';
import type { Agent, Endpoint, Identifier } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { BOT_NAME_SYSTEM } from '../constants.ts';
import type { ImportResult, ImportTarget } from './hl7-import.ts';
import { countByAck, describeFailure, importMessages, mshControlId, readAck, resolveImportTarget, splitImportFile } from './hl7-import.ts';
import { parseHl7Args } from './hl7.ts';
import { createProgress } from './progress.ts';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

function message(controlId: string, family = 'Zyxwvutsrq'): string {
  return [
    `MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|NORTHSIDE|20240315083000||ADT^A01^ADT_A01|${controlId}|P|2.5.1`,
    'EVN|A01|20240315083000',
    `PID|1||MRN123^^^NSH^MR||${family}^Jane||19730419|F`,
  ].join('\r');
}

describe('hub hl7 import arguments', () => {
  test('a file, with the defaults', () => {
    expect(parseHl7Args(['import', 'batch.hl7'])).toEqual({ command: 'import', file: 'batch.hl7', parallel: 1 });
  });

  test('--parallel and --channel, separate or inline', () => {
    expect(parseHl7Args(['import', '--parallel', '4', 'in.hl7', '--channel=acme-lab'])).toEqual({
      command: 'import',
      file: 'in.hl7',
      parallel: 4,
      channel: 'acme-lab',
    });
    // Bounded like replay: a typo must not open a thousand connections.
    expect(parseHl7Args(['import', 'in.hl7', '--parallel', '500'])).toMatchObject({ parallel: 16 });
  });

  test('usage errors', () => {
    expect(parseHl7Args(['import'])).toBe('Give the file to import');
    expect(parseHl7Args(['import', 'a.hl7', 'b.hl7'])).toBe('Give one file to import, not 2');
    expect(parseHl7Args(['import', 'a.hl7', '--parallel', '0'])).toBe('--parallel must be a positive integer');
    expect(parseHl7Args(['import', 'a.hl7', '--parallel', 'x'])).toBe('--parallel must be a positive integer');
    expect(parseHl7Args(['import', 'a.hl7', '--channel'])).toBe('--channel needs a value');
    expect(parseHl7Args(['import', 'a.hl7', '--limit', '3'])).toBe('Unknown option for hl7 import: --limit');
    // --channel belongs to import only.
    expect(parseHl7Args(['dead-letters', '--channel', 'x'])).toBe('Unknown option for hl7 dead-letters: --channel');
  });
});

describe('splitImportFile', () => {
  test('a batch file: FHS/BHS, messages, BTS/FTS with matching counts', () => {
    const file = ['FHS|^~\\&|ADTSYS|NORTHSIDE|||20240315', 'BHS|^~\\&|ADTSYS|NORTHSIDE', message('C1'), message('C2'), 'BTS|2', 'FTS|1', ''].join('\r\n');
    const split = splitImportFile(utf8(file), 'utf-8');
    expect('messages' in split && split.messages.map((m) => [m.index, m.line, mshControlId(m.text)])).toEqual([
      [1, 3, 'C1'],
      [2, 6, 'C2'],
    ]);
    // Segments are CR-separated, ready for the pipeline, whatever the file's line ends.
    expect('messages' in split && split.messages[0].text.split('\r')).toHaveLength(3);
  });

  test('plain messages one after another, LF or MLLP-framed, with a BOM', () => {
    const plain = '\ufeff' + [message('P1'), message('P2'), message('P3')].join('\n').replaceAll('\r', '\n');
    const split = splitImportFile(utf8(plain), 'utf-8');
    expect('messages' in split && split.messages.map((m) => mshControlId(m.text))).toEqual(['P1', 'P2', 'P3']);
    const framed = [message('F1'), message('F2')].map((m) => `\u000b${m}\u001c\r`).join('');
    const fromFramed = splitImportFile(utf8(framed), 'utf-8');
    expect('messages' in fromFramed && fromFramed.messages.map((m) => mshControlId(m.text))).toEqual(['F1', 'F2']);
  });

  test('a truncated batch is refused whole, with problems that quote no content', () => {
    const truncated = ['BHS|^~\\&|ADTSYS|NORTHSIDE', message('T1'), 'BTS|3'].join('\r');
    const split = splitImportFile(utf8(truncated), 'utf-8');
    expect(split).toEqual({ problems: ['line 5: BTS-1 says 3 messages, the batch holds 1 (line 5)'] });
    const cut = ['FHS|^~\\&', 'BHS|^~\\&', message('T2')].join('\r');
    const problems = (splitImportFile(utf8(cut), 'utf-8') as { problems: string[] }).problems;
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('\n')).not.toContain('Zyxwvutsrq');
  });

  test('text outside any message and an empty file are refused', () => {
    expect('problems' in splitImportFile(utf8('Patient Zyxwvutsrq\r' + message('S1')), 'utf-8')).toBe(true);
    expect(splitImportFile(utf8(''), 'utf-8')).toEqual({ problems: ['line 1: The file is empty'] });
  });

  test("decodes with the channel's encoding; bytes that are not valid UTF-8 are refused, not mangled", () => {
    const latin1 = Buffer.from(message('L1', 'Ñandú'), 'latin1');
    expect(splitImportFile(latin1, 'utf-8')).toEqual({
      problems: ['The file is not valid utf-8 text (use --channel for a sender whose channel has another encoding)'],
    });
    const split = splitImportFile(latin1, 'latin1');
    expect('messages' in split && split.messages[0].text).toContain('Ñandú^Jane');
    expect(splitImportFile(latin1, 'no-such-encoding')).toEqual({ problems: ['Unknown encoding "no-such-encoding"'] });
  });
});

describe('readAck and mshControlId', () => {
  test('AA, AE with its errors (codes and locations only), warnings left out', () => {
    const aa = 'MSH|^~\\&|HUB|NORTHSIDE|ADTSYS|NORTHSIDE|20240315||ACK^A01^ACK|A1|P|2.5.1\rMSA|AA|C1\rERR||PID^1^3|102^Data type error^HL70357|W';
    expect(readAck(aa)).toEqual({ code: 'AA', errors: [] });
    const ae =
      "MSH|^~\\&|HUB|NORTHSIDE|ADTSYS|NORTHSIDE|20240315||ACK^A01^ACK|A2|P|2.5.1\rMSA|AE|C2|PID-7 '19730419' is not a date\rERR||PID^1^7|102^Data type error^HL70357|E||||PID-7 '19730419' is not a date\rERR|||207^Application internal error^HL70357|E";
    expect(readAck(ae)).toEqual({ code: 'AE', errors: ['102 at PID-7', '207'] });
    expect(readAck('MSH|^~\\&|X\rMSA|CA|C3')).toBeUndefined();
    expect(readAck('not an ack')).toBeUndefined();
  });

  test('MSH-10 with the message’s own separators, cleaned', () => {
    expect(mshControlId('MSH#^~\\&#A#B#C#D#20240101##ADT^A01#CTRL9#P#2.5')).toBe('CTRL9');
    expect(mshControlId('MSH|^~\\&|A|B')).toBe('(no MSH-10)');
    expect(mshControlId(`MSH|^~\\&|A|B|C|D|2024||ADT|${'X'.repeat(100)}\u0007`)).toHaveLength(64);
  });
});

/** A client whose `$execute` answers from a function, counting calls in flight. */
function fakeClient(answer: (text: string) => Promise<unknown>): { client: MedplumClient; calls: string[]; maxInFlight: () => number; targets: (string | Identifier)[] } {
  const calls: string[] = [];
  const targets: (string | Identifier)[] = [];
  let inFlight = 0;
  let max = 0;
  const client = {
    executeBot: async (bot: string | Identifier, text: string) => {
      calls.push(mshControlId(text));
      targets.push(bot);
      inFlight++;
      max = Math.max(max, inFlight);
      try {
        return await answer(text);
      } finally {
        inFlight--;
      }
    },
  } as unknown as MedplumClient;
  return { client, calls, maxInFlight: () => max, targets };
}

function ackFor(text: string, code: string): string {
  return `MSH|^~\\&|HUB|NORTHSIDE|ADTSYS|NORTHSIDE|20240315||ACK^A01^ACK|ACK1|P|2.5.1\rMSA|${code}|${mshControlId(text)}`;
}

const target: ImportTarget = { bot: { system: BOT_NAME_SYSTEM, value: 'hl7-inbound' }, encoding: 'utf-8', label: 'bot hl7-inbound' };

describe('importMessages', () => {
  const messages = ['M1', 'M2', 'M3', 'M4', 'M5'].map((id, i) => ({ text: message(id), line: i * 3 + 1, index: i + 1 }));

  test('one at a time by default, in file order, one result per message in file order', async () => {
    const fake = fakeClient(async (text) => ackFor(text, text.includes('|M3|') ? 'AE' : 'AA'));
    const results = await importMessages(fake.client, target, messages, { parallel: 1 });
    expect(fake.calls).toEqual(['M1', 'M2', 'M3', 'M4', 'M5']);
    expect(fake.maxInFlight()).toBe(1);
    expect(fake.targets.every((t) => t === target.bot)).toBe(true);
    expect(results.map((r) => [r.controlId, r.ackCode])).toEqual([
      ['M1', 'AA'],
      ['M2', 'AA'],
      ['M3', 'AE'],
      ['M4', 'AA'],
      ['M5', 'AA'],
    ]);
    expect(countByAck(results)).toEqual({ AA: 4, AE: 1, AR: 0, none: 0 });
  });

  test('--parallel bounds the calls in flight; started in file order; results stay in file order', async () => {
    // Later messages answer sooner, so that completion order differs from file order.
    const fake = fakeClient(async (text) => {
      const n = Number(/\|M(\d)\|/.exec(text)?.[1]);
      await new Promise((resolve) => setTimeout(resolve, (6 - n) * 5));
      return ackFor(text, 'AA');
    });
    const writes: string[] = [];
    const progress = createProgress({ label: 'hl7 import', total: 5, stream: { write: (t: string) => writes.push(t) }, isTTY: false, intervalMs: 0 });
    const results = await importMessages(fake.client, target, messages, { parallel: 2, progress });
    expect(fake.maxInFlight()).toBe(2);
    expect(fake.calls).toEqual(['M1', 'M2', 'M3', 'M4', 'M5']);
    expect(results.map((r) => r.controlId)).toEqual(['M1', 'M2', 'M3', 'M4', 'M5']);
    expect(progress.count).toBe(5);
    expect(writes.join('')).toMatch(/hl7 import: 5\/5 \(100%\)/);
  });

  test('a refused call is counted without an ACK and does not stop the others; the server text is not repeated', async () => {
    const fake = fakeClient(async (text) => {
      if (text.includes('|M2|')) {
        throw new OperationOutcomeError({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', details: { text: 'Bot log: Zyxwvutsrq 19730419' } }] });
      }
      return text.includes('|M4|') ? 'not hl7' : ackFor(text, 'AA');
    });
    const results = await importMessages(fake.client, target, messages, { parallel: 1 });
    expect(results.map((r) => r.ackCode)).toEqual(['AA', 'none', 'AA', 'none', 'AA']);
    const lines = results.filter((r) => r.ackCode !== 'AA').map(describeFailure);
    expect(lines).toEqual([
      "message 2 (line 4) MSH-10 M2: no ACK: the server refused the call (invalid); the bot's AuditEvent has the details",
      'message 4 (line 10) MSH-10 M4: no ACK: the answer is not an HL7 ACK',
    ]);
  });

  test('describeFailure names position, control id, ACK code and error codes only', () => {
    const result: ImportResult = { index: 3, line: 9, controlId: 'C3', ackCode: 'AE', errors: ['102 at PID-7'] };
    expect(describeFailure(result)).toBe('message 3 (line 9) MSH-10 C3: AE (ERR 102 at PID-7)');
    expect(describeFailure({ ...result, ackCode: 'AR', errors: [] })).toBe('message 3 (line 9) MSH-10 C3: AR');
  });
});

describe('resolveImportTarget', () => {
  const agent: Agent = {
    resourceType: 'Agent',
    name: 'Hub agent',
    status: 'active',
    channel: [
      { name: 'northside-adt', endpoint: { reference: 'Endpoint/e1' }, targetReference: { reference: 'Bot/b1' } },
      { name: 'state-iis', endpoint: { reference: 'Endpoint/e2' }, targetReference: { reference: 'Bot/b2' } },
    ],
  };
  const endpoints: Record<string, Endpoint> = {
    'Endpoint/e1': { resourceType: 'Endpoint', status: 'active', address: 'mllp://0.0.0.0:2575', connectionType: {}, payloadType: [] } as Endpoint,
    'Endpoint/e2': { resourceType: 'Endpoint', status: 'active', address: 'mllp://0.0.0.0:2579?encoding=latin1', connectionType: {}, payloadType: [] } as Endpoint,
  };
  const client = {
    searchResources: async () => [agent],
    readReference: async (ref: { reference: string }) => endpoints[ref.reference],
  } as unknown as MedplumClient;

  test("without --channel: the hl7-inbound bot, UTF-8", async () => {
    expect(await resolveImportTarget(client, undefined)).toEqual({ bot: { system: BOT_NAME_SYSTEM, value: 'hl7-inbound' }, encoding: 'utf-8', label: 'bot hl7-inbound' });
  });

  test("a channel: its target bot and its Endpoint's encoding", async () => {
    expect(await resolveImportTarget(client, 'state-iis')).toEqual({ bot: 'b2', encoding: 'latin1', label: 'channel state-iis' });
    expect(await resolveImportTarget(client, 'northside-adt')).toEqual({ bot: 'b1', encoding: 'utf-8', label: 'channel northside-adt' });
  });

  test('an unknown channel names the ones there are', async () => {
    expect(await resolveImportTarget(client, 'nope')).toBe('No agent channel named nope (channels: northside-adt, state-iis)');
  });
});
