import type { AckCode, Hl7Message } from '@medplum/core';
import { Hl7Segment } from '@medplum/core';

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
 * Builds the answer to a message: `@medplum/core`'s ACK (swapped sender/receiver, MSA-2 = the
 * original MSH-10), with MSA-3 carrying the error text and an ERR segment (ERR-2 location, ERR-3
 * table 0357 code, ERR-4 severity, ERR-8 user message) when there is an error.
 * @param message - The message being answered (an `Hl7Message`, or a duck-typed one from another realm).
 * @param ackCode - AA, AE or AR.
 * @param error - The error, for AE and AR.
 * @returns The ACK message.
 */
export function buildAnswer(message: Hl7Message, ackCode: AckCode, error?: AckError): Hl7Message {
  if (!error) {
    return message.buildAck({ ackCode });
  }
  const location = error.location
    ? [error.location.segment, String(error.location.sequence ?? 1), error.location.field ? String(error.location.field) : ''].join('^')
    : '';
  const severity = ackCode === 'AA' ? 'W' : 'E';
  const err = new Hl7Segment(
    ['ERR', '', location, `${error.code}^${table0357Text(error.code)}^HL70357`, severity, '', '', '', error.text],
    message.context
  );
  const ack = message.buildAck({ ackCode, errSegment: err });
  ack.getSegment('MSA')?.setField(3, error.text);
  return ack;
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
    default:
      return 'Application internal error';
  }
}
