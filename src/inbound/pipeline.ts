import type { Hl7Message, MedplumClient, WithId } from '@medplum/core';
import { Hl7Message as CoreHl7Message, normalizeErrorString } from '@medplum/core';
import type { Attachment, MessageHeader, Reference } from '@medplum/fhirtypes';
import { CommitError, IdentityConflictError, commitPlan } from '../fhir/writer.ts';
import type { MessageOutcome } from '../fhir/ledger.ts';
import { buildLedgerEntry, committedEntry, describeIssue, findEarlierReceptions, markResolved, messageHash, outcomeOf, storeRawMessage } from '../fhir/ledger.ts';
import type { AckError } from '../hl7/ack.ts';
import { buildAckWithIssues, Hl7ErrorCode } from '../hl7/ack.ts';
import { val } from '../hl7/fields.ts';
import type { MessageHeaderInfo } from '../hl7/message.ts';
import { Hl7FormatError, readHl7Message, readMessageHeader } from '../hl7/message.ts';
import { MappingContext } from '../mapping/context.ts';
import { findMessageMapper } from '../mapping/messages/registry.ts';
import type { MappingIssue } from '../mapping/plan.ts';
import { MappingError } from '../mapping/plan.ts';
import { loadMappingConfig } from './config.ts';

/**
 * Options of {@link processInboundMessage}. The `log` receives a line only when something is not
 * normal (a message not committed, a ledger write that failed): with the bot's AuditEvent trigger
 * `on-output`, exactly those runs leave an AuditEvent.
 */
export interface InboundOptions {
  /** Set when replaying a dead letter: the ledger entry being replayed. */
  readonly replayOf?: Reference<MessageHeader>;
  /** The stored raw message of the entry being replayed: a failed replay points at it, no new copy. */
  readonly rawMessage?: Attachment;
  /** Operational log (no PHI): the bot passes `console.log`. */
  readonly log?: (line: string) => void;
}

/** What happened to a message. */
export interface InboundResult {
  /** The answer to send back: AA, AE or AR. */
  readonly ack: Hl7Message;
  readonly ackCode: 'AA' | 'AE' | 'AR';
  readonly outcome: MessageOutcome;
  /** True when the message had been committed before (same sender and MSH-10). */
  readonly duplicate: boolean;
  /** The ledger entry, `MessageHeader/id` (absent only if even the ledger could not be written). */
  readonly ledger?: string;
}

/**
 * The inbound pipeline every HL7 bot shares: read, route, map (pure), write (one transaction with
 * the ledger entry), answer. AA only after the commit; AE with ERR for data errors and failed
 * writes (dead-lettered with the raw message for replay); AR for unreadable or unsupported
 * messages (recorded as rejected, raw message kept). Never throws.
 * @param medplum - The client the bot runs with.
 * @param input - The message: an `Hl7Message` from the agent or `$execute`, or ER7 text.
 * @param options - Replay and logging.
 * @returns The ACK and what was recorded.
 */
export async function processInboundMessage(
  medplum: MedplumClient,
  input: Hl7Message | string,
  options: InboundOptions = {}
): Promise<InboundResult> {
  const raw = typeof input === 'string' ? input : input.toString();
  const log = options.log ?? ((): void => undefined);

  let message: Hl7Message;
  try {
    message = readHl7Message(raw);
  } catch (err) {
    const text = err instanceof Hl7FormatError ? err.message : 'Message could not be read';
    const fallback = answerable(input);
    return reject(medplum, fallback, raw, partialHeader(fallback), { code: Hl7ErrorCode.SegmentSequence, text }, options);
  }
  const header = readMessageHeader(message);
  const id = `${header.messageCode}^${header.triggerEvent} ${header.controlId}`;

  if (!header.controlId) {
    return reject(medplum, message, raw, header, { code: Hl7ErrorCode.RequiredFieldMissing, text: 'MSH-10 (message control id) is missing', location: { segment: 'MSH', field: 10 } }, options);
  }
  const mapper = findMessageMapper(header);
  if (!mapper) {
    return reject(
      medplum,
      message,
      raw,
      header,
      {
        code: Hl7ErrorCode.UnsupportedMessageType,
        text: `Unsupported message type ${[header.messageCode, header.triggerEvent].filter(Boolean).join('^') || '(none)'}`,
        location: { segment: 'MSH', field: 9 },
      },
      options
    );
  }

  const contentHash = messageHash(message.toString());
  try {
    const receptions = await findEarlierReceptions(medplum, header, contentHash);
    const earlier = committedEntry(receptions);
    if (earlier) {
      const entry = buildLedgerEntry(header, {
        outcome: 'committed',
        ackCode: 'AA',
        focus: earlier.focus?.map((f) => f.reference as string),
        duplicateOf: { reference: `MessageHeader/${earlier.id}` },
        replayOf: options.replayOf,
        contentHash,
      });
      const ledger = await medplum.createResource(entry);
      return { ack: buildAckWithIssues(message, 'AA', []), ackCode: 'AA', outcome: 'committed', duplicate: true, ledger: `MessageHeader/${ledger.id}` };
    }

    if (raw.includes('\ufffd')) {
      throw new MappingError({
        code: Hl7ErrorCode.DataType,
        text: `Message contains characters that could not be decoded (MSH-18 is '${header.characterSet || 'not set'}'); set the encoding of the sender's Endpoint`,
        location: { segment: 'MSH', field: 18 },
      });
    }

    const config = await loadMappingConfig(medplum, header.sendingFacility);
    const ctx = new MappingContext(header, config);
    const plan = mapper(message, ctx);
    const eventTime = ctx.instant(val(message.getSegment('EVN'), 2), { segment: 'EVN', field: 2 }) ?? ctx.instant(header.dateTime, { segment: 'MSH', field: 7 });
    const warnings = plan.warnings;
    const rawMessage = warnings.length ? await storeRawMessage(medplum, raw) : undefined;
    const result = await commitPlan(medplum, plan, {
      eventTime,
      ledger: (refs) =>
        buildLedgerEntry(header, {
          outcome: 'committed',
          ackCode: 'AA',
          focus: Object.values(refs),
          warnings,
          rawMessage,
          messageTime: ctx.dateTime(header.dateTime, { segment: 'MSH', field: 7 }),
          replayOf: options.replayOf,
          contentHash,
        }),
    });
    if (result.ledger) {
      await resolveEarlierFailures(medplum, receptions, result.ledger, options.replayOf, log);
    }
    return {
      ack: buildAckWithIssues(message, 'AA', warnings.map(toAckIssue)),
      ackCode: 'AA',
      outcome: 'committed',
      duplicate: false,
      ledger: result.ledger,
    };
  } catch (err) {
    const issue = errorIssue(err);
    log(`${id}: not committed: ${issue.text}`);
    return deadLetter(medplum, message, raw, header, issue, options);
  }
}

function errorIssue(err: unknown): AckError {
  if (err instanceof MappingError) {
    return err.issue;
  }
  if (err instanceof IdentityConflictError) {
    return { code: Hl7ErrorCode.ApplicationInternalError, text: err.message };
  }
  if (err instanceof CommitError) {
    return { code: Hl7ErrorCode.ApplicationInternalError, text: 'Write failed: ' + err.message };
  }
  return { code: Hl7ErrorCode.ApplicationInternalError, text: 'Write failed: ' + normalizeErrorString(err) };
}

/**
 * The same message failed earlier (the sender sent it again after a fix): its dead-letter or
 * rejected entries are now resolved by this commit. A replay resolves its own entry itself.
 */
async function resolveEarlierFailures(
  medplum: MedplumClient,
  receptions: readonly WithId<MessageHeader>[],
  ledger: string,
  replayOf: Reference<MessageHeader> | undefined,
  log: (line: string) => void
): Promise<void> {
  for (const entry of receptions) {
    const outcome = outcomeOf(entry);
    if ((outcome === 'dead-letter' || outcome === 'rejected') && `MessageHeader/${entry.id}` !== replayOf?.reference) {
      await markResolved(medplum, entry, { reference: ledger }).catch((err: unknown) =>
        log(`MessageHeader/${entry.id} could not be marked resolved: ${normalizeErrorString(err)}`)
      );
    }
  }
}

async function deadLetter(
  medplum: MedplumClient,
  message: Hl7Message,
  raw: string,
  header: MessageHeaderInfo,
  issue: AckError,
  options: InboundOptions
): Promise<InboundResult> {
  const ledger = await recordFailure(medplum, header, raw, 'dead-letter', 'AE', issue, options);
  return { ack: buildAckWithIssues(message, 'AE', [{ ...issue, severity: 'error' }]), ackCode: 'AE', outcome: 'dead-letter', duplicate: false, ledger };
}

async function reject(
  medplum: MedplumClient,
  message: Hl7Message,
  raw: string,
  header: MessageHeaderInfo,
  issue: AckError,
  options: InboundOptions
): Promise<InboundResult> {
  (options.log ?? ((): void => undefined))(`${header.messageCode}^${header.triggerEvent} ${header.controlId}: rejected: ${issue.text}`);
  const ledger = await recordFailure(medplum, header, raw, 'rejected', 'AR', issue, options);
  return { ack: buildAckWithIssues(message, 'AR', [{ ...issue, severity: 'error' }]), ackCode: 'AR', outcome: 'rejected', duplicate: false, ledger };
}

/** Records a message that was not committed, with its raw text; a failure here is only logged. */
async function recordFailure(
  medplum: MedplumClient,
  header: MessageHeaderInfo,
  raw: string,
  outcome: MessageOutcome,
  ackCode: 'AE' | 'AR',
  issue: AckError,
  options: InboundOptions
): Promise<string | undefined> {
  try {
    const rawMessage: Attachment = options.rawMessage ?? (await storeRawMessage(medplum, raw));
    const entry = buildLedgerEntry(header, {
      outcome,
      ackCode,
      error: describeIssue({ ...issue, severity: 'error' }),
      rawMessage,
      replayOf: options.replayOf,
    });
    const created = await medplum.createResource(entry);
    return `MessageHeader/${created.id}`;
  } catch (err) {
    (options.log ?? ((): void => undefined))(`ledger write failed for ${header.controlId}: ${normalizeErrorString(err)}`);
    return undefined;
  }
}

function toAckIssue(issue: MappingIssue): AckError & { severity: 'warning' } {
  return { code: issue.code, text: issue.text, location: issue.location, severity: 'warning' };
}

/**
 * A message object an ACK can be built from even when the text could not be read strictly: the
 * agent hands bots an already parsed message; a string gets a synthetic MSH.
 */
function answerable(input: Hl7Message | string): Hl7Message {
  if (typeof input !== 'string' && typeof input.buildAck === 'function') {
    return input;
  }
  const text = typeof input === 'string' ? input : '';
  try {
    return CoreHl7Message.parse(text.startsWith('MSH') ? text : 'MSH|^~\\&|||||||ACK||P|2.5.1');
  } catch (_err) {
    return CoreHl7Message.parse('MSH|^~\\&|||||||ACK||P|2.5.1');
  }
}

function partialHeader(message: Hl7Message): MessageHeaderInfo {
  try {
    return readMessageHeader(message);
  } catch (_err) {
    return {
      sendingApplication: '',
      sendingFacility: '',
      receivingApplication: '',
      receivingFacility: '',
      dateTime: '',
      messageCode: '',
      triggerEvent: '',
      messageStructure: '',
      controlId: '',
      processingId: '',
      version: '',
      characterSet: '',
    };
  }
}
