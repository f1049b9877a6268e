import type { Hl7Message, MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Attachment, MessageHeader, Reference } from '@medplum/fhirtypes';
import { senderOrganizationId } from '../fhir/owner.ts';
import { CommitError, IdentityConflictError, commitPlan } from '../fhir/writer.ts';
import type { LedgerDetails, MessageOutcome } from '../fhir/ledger.ts';
import { buildLedgerEntry, committedEntry, describeIssue, findEarlierReceptions, markResolved, messageHash, outcomeOf, storeRawMessage } from '../fhir/ledger.ts';
import type { AckError } from '../hl7/ack.ts';
import { buildAckWithIssues, Hl7ErrorCode } from '../hl7/ack.ts';
import { val } from '../hl7/fields.ts';
import type { MessageHeaderInfo } from '../hl7/message.ts';
import { EMPTY_MESSAGE_HEADER, Hl7FormatError, overlongHeaderField, readHl7Message, readMessageHeader, standInForUnreadable } from '../hl7/message.ts';
import { MappingContext } from '../mapping/context.ts';
import { findMessageMapper } from '../mapping/messages/registry.ts';
import type { MessageMapper } from '../mapping/messages/types.ts';
import type { MappingIssue, MessagePlan } from '../mapping/plan.ts';
import { assertFindableIdentities, MappingError } from '../mapping/plan.ts';
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
    const standIn = standInForUnreadable(raw);
    return answerFailure(medplum, 'rejected', standIn, raw, readMessageHeader(standIn), { code: Hl7ErrorCode.SegmentSequence, text }, options);
  }
  const header = readMessageHeader(message);

  const overlong = overlongHeaderField(header);
  if (overlong) {
    const issue = { code: Hl7ErrorCode.DataType, text: `MSH-${overlong.field} is longer than ${overlong.max} characters`, location: { segment: 'MSH', field: overlong.field } };
    return answerFailure(medplum, 'rejected', message, raw, header, issue, options);
  }
  if (!header.controlId) {
    return answerFailure(medplum, 'rejected', message, raw, header, { code: Hl7ErrorCode.RequiredFieldMissing, text: 'MSH-10 (message control id) is missing', location: { segment: 'MSH', field: 10 } }, options);
  }
  const mapper = findMessageMapper(header);
  if (!mapper) {
    return answerFailure(
      medplum,
      'rejected',
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
    const plan = mapMessage(mapper, message, ctx);
    const eventTime = ctx.instant(val(message.getSegment('EVN'), 2), { segment: 'EVN', field: 2 }) ?? ctx.instant(header.dateTime, { segment: 'MSH', field: 7 });
    const messageTime = ctx.dateTime(header.dateTime, { segment: 'MSH', field: 7 });
    const warnings = plan.warnings;
    const rawMessage = warnings.length ? await storeRawMessage(medplum, raw) : undefined;
    const result = await commitPlan(medplum, plan, {
      eventTime,
      ownerOrganization: senderOrganizationId(config.senders, header.sendingFacility),
      ledger: (refs) =>
        buildLedgerEntry(header, {
          outcome: 'committed',
          ackCode: 'AA',
          focus: Object.values(refs),
          warnings,
          rawMessage,
          messageTime,
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
    return answerFailure(medplum, 'dead-letter', message, raw, header, errorIssue(err), options);
  }
}

/**
 * Runs a message's map and checks that it describes each resource once. A map that fails other than with a MappingError has a defect: the message
 * is dead-lettered saying so (replayable once the map is fixed), not labelled a write failure.
 */
function mapMessage(mapper: MessageMapper, message: Hl7Message, ctx: MappingContext): MessagePlan {
  try {
    const plan = mapper(message, ctx);
    assertFindableIdentities(plan);
    return plan;
  } catch (err) {
    if (err instanceof MappingError) {
      throw err;
    }
    throw new MappingError({ code: Hl7ErrorCode.ApplicationInternalError, text: 'Mapping failed: ' + normalizeErrorString(err) });
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

/**
 * Answers a message that is not committed, AE (dead-letter: fixable, replayable) or AR (rejected:
 * unreadable or unsupported), after recording it with its raw text.
 */
async function answerFailure(
  medplum: MedplumClient,
  outcome: 'dead-letter' | 'rejected',
  message: Hl7Message,
  raw: string,
  header: MessageHeaderInfo,
  issue: AckError,
  options: InboundOptions
): Promise<InboundResult> {
  const ackCode = outcome === 'dead-letter' ? 'AE' : 'AR';
  const verb = outcome === 'dead-letter' ? 'not committed' : 'rejected';
  options.log?.(`${header.messageCode}^${header.triggerEvent} ${header.controlId}: ${verb}: ${issue.text}`);
  // Tagged with the content hash too: when the same message later commits (sent again after a
  // fix), its earlier failures are found by key and hash and marked resolved.
  const ledger = await recordFailure(medplum, header, raw, { outcome, ackCode, error: describeIssue({ ...issue, severity: 'error' }), contentHash: messageHash(message.toString()) }, options);
  return { ack: buildAckWithIssues(message, ackCode, [{ ...issue, severity: 'error' }]), ackCode, outcome, duplicate: false, ledger };
}

/**
 * Records a message that was not committed, with its raw text. Should the entry be refused (a
 * header value the server will not store), a bare entry with the raw text and the error is
 * written instead, so that no reception goes unrecorded; a failure of that too is logged.
 */
async function recordFailure(
  medplum: MedplumClient,
  header: MessageHeaderInfo,
  raw: string,
  failure: Pick<LedgerDetails, 'outcome' | 'ackCode' | 'error' | 'contentHash'>,
  options: InboundOptions
): Promise<string | undefined> {
  try {
    const rawMessage: Attachment = options.rawMessage ?? (await storeRawMessage(medplum, raw));
    const details: LedgerDetails = { ...failure, rawMessage, replayOf: options.replayOf };
    const created = await medplum
      .createResource(buildLedgerEntry(header, details))
      .catch(() => medplum.createResource(buildLedgerEntry({ ...EMPTY_MESSAGE_HEADER, controlId: header.controlId.replace(/[^\w.-]/g, '') }, details)));
    return `MessageHeader/${created.id}`;
  } catch (err) {
    options.log?.(`ledger write failed for ${header.controlId}: ${normalizeErrorString(err)}`);
    return undefined;
  }
}


function toAckIssue(issue: MappingIssue): AckError & { severity: 'warning' } {
  return { code: issue.code, text: issue.text, location: issue.location, severity: 'warning' };
}
