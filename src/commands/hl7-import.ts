/**
 * `hub hl7 import <file>`: sends the messages of an HL7 v2 file (a batch file with FHS/BHS
 * headers and trailers, or plain messages one after another) through the inbound bot's
 * `$execute`, the same pipeline as a message received over MLLP, so that each one gets its ledger
 * entry and its ACK exactly as it would have from the device. Output is ids, counts, control ids
 * and HL7 error codes only: never the file's name or content (both may carry patient data).
 */
import type { MedplumClient } from '@medplum/core';
import { ContentType, normalizeErrorString, OperationOutcomeError } from '@medplum/core';
import type { Agent, Endpoint, Identifier, Reference } from '@medplum/fhirtypes';
import { BOT_NAME_SYSTEM } from '../constants.ts';
import { hideValues, stripControlCharacters } from '../fhir/strings.ts';
import type { BatchMessage } from '../hl7/batch.ts';
import { isCompleteBatch, readBatchFile } from '../hl7/batch.ts';
import { DEFAULT_MLLP_ENCODING, parseMllpAddress } from '../local/mllp-endpoint.ts';
import type { Progress } from './progress.ts';

/** The bot the agent channels deliver to, by its managed name; the default import target. */
export const INBOUND_BOT: Identifier = { system: BOT_NAME_SYSTEM, value: 'hl7-inbound' };

/** Where the messages go: the bot to `$execute` and how the file's bytes are decoded. */
export interface ImportTarget {
  /** A Bot id, or the inbound bot's identifier. */
  readonly bot: string | Identifier;
  /** The channel's encoding (`encoding=` of its Endpoint address), UTF-8 by default. */
  readonly encoding: string;
  /** What the output calls it: `channel northside-adt` or `bot hl7-inbound`. */
  readonly label: string;
}

/** The ACK code of one message, or `none` when no ACK came back. */
export type ImportAckCode = 'AA' | 'AE' | 'AR' | 'none';

/** What became of one message of the file. */
export interface ImportResult {
  /** 1-based position in the file, and the line of its MSH. */
  readonly index: number;
  readonly line: number;
  /** MSH-10 as sent (control characters removed, at most 64 characters). */
  readonly controlId: string;
  readonly ackCode: ImportAckCode;
  /** HL7 error codes (ERR-3, table 0357) and locations (ERR-2) of the ACK's errors: `207 at PID-3`. */
  readonly errors: string[];
  /** Why there is no ACK (no PHI: a status or an error kind). */
  readonly failure?: string;
}

/** A file split into its messages, or why it is not imported at all. */
export type SplitFile = { readonly messages: BatchMessage[] } | { readonly problems: string[] };

/**
 * Decodes a file with the channel's encoding and splits it into messages. A file whose
 * structure does not add up (trailer counts that do not match a truncated transfer, stray text,
 * headers without trailers) or that is not valid text in the encoding is refused whole: half an
 * import is worse than none.
 * @param content - The file's bytes.
 * @param encoding - The channel's encoding (a WHATWG label such as `utf-8` or `latin1`).
 * @returns The messages, or the problems (line numbers and counts only).
 */
export function splitImportFile(content: Uint8Array, encoding: string): SplitFile {
  let text: string;
  try {
    // Fatal: replacement characters would write mangled names into the record.
    text = new TextDecoder(encoding, { fatal: true }).decode(content);
  } catch (err) {
    return {
      problems: [
        err instanceof RangeError
          ? `Unknown encoding ${JSON.stringify(encoding)}`
          : `The file is not valid ${encoding} text (use --channel for a sender whose channel has another encoding)`,
      ],
    };
  }
  const file = readBatchFile(text);
  if (!isCompleteBatch(file)) {
    return { problems: file.problems.map((p) => `line ${p.line}: ${p.message}`) };
  }
  return { messages: file.messages };
}

/**
 * Finds where messages of a channel go: its Agent channel's target Bot and its Endpoint's
 * encoding; without a channel, the `hl7-inbound` bot with UTF-8.
 * @param medplum - A client that may read Agents and Endpoints.
 * @param channel - The agent channel's name, if given.
 * @returns The target, or why there is none.
 */
export async function resolveImportTarget(medplum: MedplumClient, channel: string | undefined): Promise<ImportTarget | string> {
  if (channel === undefined) {
    return { bot: INBOUND_BOT, encoding: DEFAULT_MLLP_ENCODING, label: `bot ${INBOUND_BOT.value}` };
  }
  const agents = await medplum.searchResources('Agent', { _count: '100' });
  const found = agents.flatMap((agent: Agent) => (agent.channel ?? []).filter((c) => c.name === channel));
  if (found.length !== 1) {
    const names = [...new Set(agents.flatMap((a: Agent) => (a.channel ?? []).map((c) => c.name)))].sort();
    return found.length === 0
      ? `No agent channel named ${channel} (channels: ${names.join(', ') || 'none'})`
      : `${found.length} agents have a channel named ${channel}`;
  }
  const [definition] = found;
  const botId = definition.targetReference?.reference?.match(/^Bot\/([^/]+)$/)?.[1];
  if (!botId) {
    return `Channel ${channel} does not deliver to a Bot`;
  }
  let encoding = DEFAULT_MLLP_ENCODING;
  if (definition.endpoint?.reference) {
    const endpoint = await medplum.readReference(definition.endpoint as Reference<Endpoint>);
    encoding = parseMllpAddress(endpoint.address).settings?.encoding ?? DEFAULT_MLLP_ENCODING;
  }
  return { bot: botId, encoding, label: `channel ${channel}` };
}

/** Options of {@link importMessages}. */
export interface ImportOptions {
  /** Messages in flight at most; they are started in file order. */
  readonly parallel: number;
  /** Ticked once per message, with its control id as the note. */
  readonly progress?: Progress;
}

/**
 * Sends each message to the target bot's `$execute`, at most `parallel` at a time, started in
 * file order. A message that gets no ACK (the server refused the call) does not stop the others.
 * @param medplum - The client.
 * @param target - Where the messages go.
 * @param messages - The file's messages.
 * @param options - Parallelism and progress.
 * @returns One result per message, in file order.
 */
export async function importMessages(medplum: MedplumClient, target: ImportTarget, messages: readonly BatchMessage[], options: ImportOptions): Promise<ImportResult[]> {
  const results: ImportResult[] = new Array(messages.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < messages.length) {
      const position = next++;
      const message = messages[position];
      results[position] = await importOne(medplum, target, message);
      options.progress?.tick(1, `MSH-10 ${results[position].controlId}`);
    }
  };
  const workers = Math.max(1, Math.min(options.parallel, messages.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return results;
}

async function importOne(medplum: MedplumClient, target: ImportTarget, message: BatchMessage): Promise<ImportResult> {
  const base = { index: message.index, line: message.line, controlId: mshControlId(message.text) };
  let answer: unknown;
  try {
    answer = await medplum.executeBot(target.bot, message.text, ContentType.HL7_V2);
  } catch (err) {
    return { ...base, ackCode: 'none', errors: [], failure: describeCallFailure(err) };
  }
  const ack = readAck(typeof answer === 'string' ? answer : String(answer));
  if (!ack) {
    return { ...base, ackCode: 'none', errors: [], failure: 'the answer is not an HL7 ACK' };
  }
  return { ...base, ackCode: ack.code, errors: ack.errors };
}

/**
 * @param err - Why `$execute` failed.
 * @returns A description without the server's text: an OperationOutcome of a failed bot run
 * carries the run's log, which may quote values of the message.
 */
function describeCallFailure(err: unknown): string {
  if (err instanceof OperationOutcomeError) {
    const codes = [...new Set((err.outcome.issue ?? []).map((i) => i.code))].join(', ');
    return `the server refused the call (${codes || 'no issue code'}); the bot's AuditEvent has the details`;
  }
  // Transport errors (connection refused, timeouts) name no message content.
  return hideValues(normalizeErrorString(err)).slice(0, 200);
}

/**
 * @param text - A message, segments separated by CR.
 * @returns Its MSH-10 (from its own field separator), cleaned for output.
 */
export function mshControlId(text: string): string {
  const msh = text.split('\r')[0];
  const value = msh.split(msh.charAt(3))[9] ?? '';
  return stripControlCharacters(value).trim().slice(0, 64) || '(no MSH-10)';
}

/**
 * Reads what an import reports of an ACK: MSA-1 and each ERR's code and location. MSA-3 and
 * ERR-8 (texts) are left out: some quote the value they are about.
 * @param text - The ACK as ER7.
 * @returns The ACK code and errors, or undefined when it is not an application ACK.
 */
export function readAck(text: string): { code: 'AA' | 'AE' | 'AR'; errors: string[] } | undefined {
  const segments = text.split(/\r\n|\r|\n/).filter(Boolean);
  const msh = segments.find((s) => s.startsWith('MSH'));
  if (!msh) {
    return undefined;
  }
  const separator = msh.charAt(3);
  const component = msh.charAt(4) || '^';
  const field = (segment: string, n: number): string => segment.split(separator)[n] ?? '';
  const msa = segments.find((s) => s.startsWith(`MSA${separator}`));
  const code = msa ? field(msa, 1).trim().toUpperCase() : '';
  if (code !== 'AA' && code !== 'AE' && code !== 'AR') {
    return undefined;
  }
  const errors = segments
    .filter((s) => s.startsWith(`ERR${separator}`) && field(s, 4).trim().toUpperCase() !== 'W')
    .map((s) => {
      const errorCode = field(s, 3).split(component)[0];
      const [segment, sequence, fieldNumber] = field(s, 2).split(component);
      const location = segment && fieldNumber ? ` at ${segment}${sequence && sequence !== '1' ? `[${sequence}]` : ''}-${fieldNumber}` : segment ? ` at ${segment}` : '';
      return stripControlCharacters(`${errorCode || '?'}${location}`).slice(0, 40);
    });
  return { code, errors };
}

/**
 * @param results - The import's results.
 * @returns Counts by ACK code, `none` last.
 */
export function countByAck(results: readonly ImportResult[]): Record<ImportAckCode, number> {
  const counts: Record<ImportAckCode, number> = { AA: 0, AE: 0, AR: 0, none: 0 };
  for (const result of results) {
    counts[result.ackCode]++;
  }
  return counts;
}

/**
 * @param result - A message that was not answered AA.
 * @returns One line: position, MSH line, control id, ACK code and error codes (no PHI).
 */
export function describeFailure(result: ImportResult): string {
  const what = result.ackCode === 'none' ? `no ACK: ${result.failure ?? 'unknown'}` : `${result.ackCode}${result.errors.length ? ` (ERR ${result.errors.join('; ')})` : ''}`;
  return `message ${result.index} (line ${result.line}) MSH-10 ${result.controlId}: ${what}`;
}
