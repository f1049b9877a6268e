import type { AckCode, Hl7Message } from '@medplum/core';
import { Hl7Segment } from '@medplum/core';
import { encodeEscapes } from './fields.ts';

/** HL7 table 0357 (message error condition codes) values the hub uses. */
export const Hl7ErrorCode = {
  /** Segment sequence error. */
  SegmentSequence: '100',
  /** Required field missing. */
  RequiredFieldMissing: '101',
  /** Data type error. */
  DataType: '102',
  /** Unsupported message type. */
  UnsupportedMessageType: '200',
  /** Unsupported event code. */
  UnsupportedEventCode: '201',
  /** Duplicate key identifier. */
  DuplicateKey: '205',
  /** Application internal error. */
  ApplicationInternalError: '207',
} as const;

/** Where in the message an error was found (ERR-2, an ERL). */
export interface ErrorLocation {
  readonly segment: string;
  readonly sequence?: number;
  readonly field?: number;
}

/** What went wrong, for an AE or AR answer. */
export interface AckError {
  readonly code: (typeof Hl7ErrorCode)[keyof typeof Hl7ErrorCode];
  /** Short human-readable text, also put in MSA-3 and ERR-8. Never patient data. */
  readonly text: string;
  readonly location?: ErrorLocation;
}

/**
 * Builds an ACK with one ERR segment per issue: errors (severity E) for AE/AR, warnings (severity
 * W) alongside an AA. MSA-3 carries the first error's text, or "OK".
 * @param message - The message being answered (an `Hl7Message`, or a duck-typed one from another realm).
 * @param ackCode - AA, AE or AR.
 * @param issues - Errors and warnings, in order.
 * @returns The ACK message.
 */
export function buildAckWithIssues(
  message: Hl7Message,
  ackCode: AckCode,
  issues: readonly (AckError & { readonly severity?: 'error' | 'warning' })[]
): Hl7Message {
  const ack = message.buildAck({ ackCode });
  for (const issue of issues) {
    ack.segments.push(errSegment(message, issue, issue.severity === 'warning' ? 'W' : 'E'));
  }
  const firstError = issues.find((i) => i.severity !== 'warning');
  if (firstError && ackCode !== 'AA') {
    ack.getSegment('MSA')?.setField(3, escapeText(firstError.text, message));
  }
  return ack;
}

function errSegment(message: Hl7Message, error: AckError, severity: 'E' | 'W'): Hl7Segment {
  const location = error.location
    ? [error.location.segment, String(error.location.sequence ?? 1), error.location.field ? String(error.location.field) : ''].join(
        message.context.componentSeparator
      )
    : '';
  const c = message.context.componentSeparator;
  return new Hl7Segment(
    ['ERR', '', location, `${error.code}${c}${table0357Text(error.code)}${c}HL70357`, severity, '', '', '', escapeText(error.text, message)],
    message.context
  );
}

/** ACK texts may name fields and values from configuration; delimiters in them must be escaped. */
function escapeText(text: string, message: Hl7Message): string {
  return encodeEscapes(text.slice(0, 200), message.context);
}

function table0357Text(code: string): string {
  switch (code) {
    case '100':
      return 'Segment sequence error';
    case '101':
      return 'Required field missing';
    case '102':
      return 'Data type error';
    case '200':
      return 'Unsupported message type';
    case '201':
      return 'Unsupported event code';
    case '205':
      return 'Duplicate key identifier';
    default:
      return 'Application internal error';
  }
}
