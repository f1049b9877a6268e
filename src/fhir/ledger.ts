import type { MedplumClient, WithId } from '@medplum/core';
import { ContentType } from '@medplum/core';
import type { Attachment, Extension, MessageHeader, Reference } from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { HUB_SID, HUB_URI } from '../constants.ts';
import type { MessageHeaderInfo } from '../hl7/message.ts';
import { slug } from '../mapping/context.ts';
import { tokens } from './writer.ts';
import type { MappingIssue } from '../mapping/plan.ts';

/**
 * The message ledger: one MessageHeader per received message (sender, MSH-10, type, received time)
 * with its outcome, the ACK code, errors and warnings, and `focus` references to what it
 * produced. Messages that were not committed keep their raw text (a Binary) so they can be
 * inspected and replayed: the dead-letter is the set of ledger entries with outcome
 * `dead-letter`. Every reception has exactly one outcome, so received = committed + dead-lettered
 * + rejected + resolved (`resolved`: a dead-lettered or rejected message that was committed later,
 * by a replay or by the sender sending it again).
 */

/** Tag system of a ledger entry's outcome. */
export const MESSAGE_OUTCOME_SYSTEM = `${HUB_URI}/CodeSystem/hl7-message-outcome`;
/** Tag system of a ledger entry's message key: `<MSH-3>^<MSH-4>^<MSH-10>`. */
export const MESSAGE_KEY_SYSTEM = `${HUB_URI}/CodeSystem/hl7-message-key`;
/** Tag system of a ledger entry's content hash (SHA-256 of the message text, hex). */
export const MESSAGE_HASH_SYSTEM = `${HUB_URI}/CodeSystem/hl7-message-sha256`;
/** Tag on ledger entries written by a replay (they are not new receptions). */
export const MESSAGE_REPLAY_TAG = { system: `${HUB_URI}/CodeSystem/hl7-message-origin`, code: 'replay' } as const;

export const LedgerExtension = {
  ackCode: `${HUB_URI}/StructureDefinition/hl7-ack-code`,
  error: `${HUB_URI}/StructureDefinition/hl7-error`,
  warning: `${HUB_URI}/StructureDefinition/hl7-warning`,
  rawMessage: `${HUB_URI}/StructureDefinition/hl7-raw-message`,
  messageTime: `${HUB_URI}/StructureDefinition/hl7-message-time`,
  replayOf: `${HUB_URI}/StructureDefinition/hl7-replay-of`,
  duplicateOf: `${HUB_URI}/StructureDefinition/hl7-duplicate-of`,
  resolvedBy: `${HUB_URI}/StructureDefinition/hl7-resolved-by`,
} as const;

/** The outcome of one received message. */
export type MessageOutcome = 'committed' | 'rejected' | 'dead-letter' | 'resolved';

/** What the ledger records about a message. */
export interface LedgerDetails {
  readonly outcome: MessageOutcome;
  readonly ackCode: 'AA' | 'AE' | 'AR';
  readonly focus?: readonly string[];
  readonly error?: string;
  readonly warnings?: readonly MappingIssue[];
  readonly rawMessage?: Attachment;
  /** FHIR dateTime of MSH-7, when readable. */
  readonly messageTime?: string;
  readonly replayOf?: Reference<MessageHeader>;
  readonly duplicateOf?: Reference<MessageHeader>;
  /** SHA-256 (hex) of the message text: with the key, what makes a re-sent message a duplicate. */
  readonly contentHash?: string;
}

/**
 * @param text - A message's text (as read, segments separated by CR).
 * @returns Its SHA-256, hex.
 */
export function messageHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * @param header - The message's MSH (may be partial for unreadable messages).
 * @returns The message key `<MSH-3>^<MSH-4>^<MSH-10>`: the same message from the same sender.
 */
export function messageKey(header: Pick<MessageHeaderInfo, 'sendingApplication' | 'sendingFacility' | 'controlId'>): string {
  // Parts are cut to a length no real header has (rejected messages can carry anything).
  return [header.sendingApplication, header.sendingFacility, header.controlId].map((p) => p.replace(/\s+/g, '_').slice(0, 256)).join('^');
}

/**
 * Builds a ledger entry (pure).
 * @param header - The message's MSH.
 * @param details - Outcome and links.
 * @returns The MessageHeader to store.
 */
export function buildLedgerEntry(header: MessageHeaderInfo, details: LedgerDetails): MessageHeader {
  const extension: Extension[] = [{ url: LedgerExtension.ackCode, valueCode: details.ackCode }];
  if (details.error) {
    extension.push({ url: LedgerExtension.error, valueString: details.error });
  }
  for (const warning of details.warnings ?? []) {
    extension.push({ url: LedgerExtension.warning, valueString: describeIssue(warning) });
  }
  if (details.rawMessage) {
    extension.push({ url: LedgerExtension.rawMessage, valueAttachment: details.rawMessage });
  }
  if (details.messageTime) {
    extension.push({ url: LedgerExtension.messageTime, valueDateTime: details.messageTime });
  }
  if (details.replayOf) {
    extension.push({ url: LedgerExtension.replayOf, valueReference: details.replayOf });
  }
  if (details.duplicateOf) {
    extension.push({ url: LedgerExtension.duplicateOf, valueReference: details.duplicateOf });
  }
  const tag = [
    { system: MESSAGE_OUTCOME_SYSTEM, code: details.outcome },
    { system: MESSAGE_KEY_SYSTEM, code: messageKey(header) },
  ];
  if (details.contentHash) {
    tag.push({ system: MESSAGE_HASH_SYSTEM, code: details.contentHash });
  }
  if (details.replayOf) {
    tag.push({ ...MESSAGE_REPLAY_TAG });
  }
  const entry: MessageHeader = {
    resourceType: 'MessageHeader',
    meta: { tag },
    extension,
    eventCoding: {
      system: 'http://terminology.hl7.org/CodeSystem/v2-0003',
      // A FHIR code is space-separated words: no tabs, no runs of spaces.
      code: (header.triggerEvent || header.messageCode).replace(/\s+/g, ' ').trim() || 'unknown',
      display: [header.messageCode, header.triggerEvent].filter(Boolean).join('^') || 'unreadable message',
    },
    source: {
      name: header.sendingApplication || undefined,
      endpoint: `${HUB_SID}/hl7/${slug(header.sendingFacility || 'unknown')}/${slug(header.sendingApplication || 'unknown')}`,
    },
    destination: [
      {
        name: header.receivingApplication || undefined,
        endpoint: `${HUB_SID}/hl7/${slug(header.receivingFacility || 'unknown')}/${slug(header.receivingApplication || 'unknown')}`,
      },
    ],
    ...(header.sendingFacility ? { sender: { display: header.sendingFacility } } : {}),
    ...(details.focus?.length ? { focus: details.focus.map((reference) => ({ reference })) } : {}),
  };
  return entry;
}

/**
 * @param issue - A mapping issue.
 * @returns One line for the ledger: `PID-7 (102): <text>`.
 */
export function describeIssue(issue: MappingIssue): string {
  const where = issue.location
    ? `${issue.location.segment}${issue.location.field ? '-' + issue.location.field : ''}${issue.location.sequence && issue.location.sequence > 1 ? ` #${issue.location.sequence}` : ''} `
    : '';
  return `${where}(${issue.code}): ${issue.text}`;
}

/**
 * Finds the earlier receptions of the same message: same sender, same MSH-10 and the same
 * content (senders that reset their control-id counters reuse MSH-10 for new messages, which must
 * not be taken for duplicates).
 * @param medplum - The client.
 * @param header - The message's MSH.
 * @param contentHash - {@link messageHash} of the message text.
 * @returns Their ledger entries.
 */
export async function findEarlierReceptions(
  medplum: MedplumClient,
  header: MessageHeaderInfo,
  contentHash: string
): Promise<WithId<MessageHeader>[]> {
  if (!header.controlId) {
    return [];
  }
  // Two _tag parameters: both tags must be present.
  const params = new URLSearchParams();
  // Escaped: a comma in MSH-10 would otherwise split the value into two alternatives.
  params.append('_tag', tokens([{ system: MESSAGE_KEY_SYSTEM, value: messageKey(header) }]));
  params.append('_tag', `${MESSAGE_HASH_SYSTEM}|${contentHash}`);
  params.append('_count', '100');
  return medplum.searchResources('MessageHeader', params);
}

/**
 * @param entries - Ledger entries of one message.
 * @returns The entry that committed it (committed or resolved), if any.
 */
export function committedEntry(entries: readonly WithId<MessageHeader>[]): WithId<MessageHeader> | undefined {
  return entries.find((e) => {
    const outcome = outcomeOf(e);
    return outcome === 'committed' || outcome === 'resolved';
  });
}

/**
 * @param entry - A ledger entry.
 * @returns Its outcome tag.
 */
export function outcomeOf(entry: MessageHeader): MessageOutcome | undefined {
  return entry.meta?.tag?.find((t) => t.system === MESSAGE_OUTCOME_SYSTEM)?.code as MessageOutcome | undefined;
}

/**
 * Stores a raw message as a Binary (so the ledger entry stays small whatever the message size).
 * @param medplum - The client.
 * @param text - The message as received.
 * @returns The attachment pointing at it.
 */
export async function storeRawMessage(medplum: MedplumClient, text: string): Promise<Attachment> {
  const bytes = Buffer.from(text, 'utf8');
  const binary = await medplum.createBinary({ data: bytes, filename: 'message.hl7', contentType: ContentType.HL7_V2 });
  return {
    contentType: ContentType.HL7_V2,
    url: `Binary/${binary.id}`,
    size: bytes.length,
    hash: createHash('sha1').update(bytes).digest('base64'),
    title: 'message.hl7',
  };
}

/**
 * Reads the raw message of a ledger entry.
 * @param medplum - The client.
 * @param entry - A ledger entry with a raw message.
 * @returns The message text.
 */
export async function readRawMessage(medplum: MedplumClient, entry: MessageHeader): Promise<string> {
  const attachment = entry.extension?.find((e) => e.url === LedgerExtension.rawMessage)?.valueAttachment;
  if (!attachment?.url) {
    throw new Error(`MessageHeader/${entry.id} has no raw message`);
  }
  const url = attachment.url.startsWith('Binary/') ? medplum.fhirUrl('Binary', attachment.url.slice(7)).toString() : attachment.url;
  const blob = await medplum.download(url);
  return new TextDecoder('utf-8').decode(await blob.arrayBuffer());
}

/**
 * Marks a dead letter (or a rejected message) as resolved: the same message was committed later,
 * by a replay or because the sender sent it again. Its outcome becomes `resolved`.
 * @param medplum - The client.
 * @param entry - The dead-letter entry.
 * @param resolvedBy - The replay's ledger entry.
 * @returns The updated entry.
 */
export async function markResolved(
  medplum: MedplumClient,
  entry: WithId<MessageHeader>,
  resolvedBy: Reference<MessageHeader>
): Promise<WithId<MessageHeader>> {
  const tag = (entry.meta?.tag ?? []).map((t) => (t.system === MESSAGE_OUTCOME_SYSTEM ? { ...t, code: 'resolved' } : t));
  const extension = [...(entry.extension ?? []).filter((e) => e.url !== LedgerExtension.resolvedBy), { url: LedgerExtension.resolvedBy, valueReference: resolvedBy }];
  return medplum.updateResource({ ...entry, meta: { ...entry.meta, tag }, extension }, { headers: { 'If-Match': `W/"${entry.meta?.versionId}"` } });
}
