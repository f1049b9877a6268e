import { Hl7Context, Hl7Message, Hl7Segment } from '@medplum/core';
import { stripControlCharacters } from '../fhir/strings.ts';
import { encodeEscapes } from './fields.ts';

/** Why a text could not be read as an HL7 v2 message at all (answered with AR). */
export class Hl7FormatError extends Error {}

/**
 * Reads an HL7 v2 message the way real senders write them, not only the way the standard does:
 * a leading byte-order mark, CR, LF or CRLF segment ends, blank lines and trailing empty segments,
 * non-default delimiters (MSH-1/MSH-2), and an MSH-2 shorter than four characters (a missing
 * subcomponent separator). The result is a `@medplum/core` `Hl7Message` with a correct context.
 * @param input - ER7 text, or an `Hl7Message` (also one from another realm, as bots receive).
 * @returns The message.
 */
export function readHl7Message(input: string | { toString(): string }): Hl7Message {
  let text = typeof input === 'string' ? input : input.toString();
  if (text.charCodeAt(0) === 0xfeff) {
    text = text.slice(1);
  }
  text = text.replace(/^[\s\u0000]+/, '');
  if (!text.startsWith('MSH')) {
    throw new Hl7FormatError('Message does not start with an MSH segment');
  }
  const fieldSeparator = text.charAt(3);
  if (!fieldSeparator || /[\r\n\w]/.test(fieldSeparator)) {
    throw new Hl7FormatError('MSH-1 (field separator) is missing or invalid');
  }
  const encodingEnd = text.indexOf(fieldSeparator, 4);
  const encoding = text.slice(4, encodingEnd < 0 ? undefined : encodingEnd);
  const delimiters = [fieldSeparator, encoding.charAt(0), encoding.charAt(1), encoding.charAt(2) || '\\', encoding.charAt(3) || '&'];
  // Letters or digits as delimiters would split the segment names themselves (MSH-2 "S~\&").
  if (encoding.length < 2 || encoding.length > 5 || delimiters.some((d) => /[\s\w]/.test(d)) || new Set(delimiters).size !== 5) {
    throw new Hl7FormatError('MSH-2 (encoding characters) is missing or invalid');
  }
  const context = new Hl7Context('\r', delimiters[0], delimiters[1], delimiters[2], delimiters[3], delimiters[4]);
  const lines = text
    .split(/\r\n|\r|\n/)
    .map((line) => line.replace(/\s+$/, ''))
    .filter((line) => line.length > 0);
  const segments = lines.map((line, index) => {
    if (index > 0 && !/^[A-Z][A-Z0-9]{2}$/.test(line.slice(0, 3))) {
      throw new Hl7FormatError(`Segment ${index + 1} does not start with a segment name`);
    }
    return Hl7Segment.parse(line, context);
  });
  return new Hl7Message(segments, context);
}

/** The parts of MSH the hub routes and records by. */
export interface MessageHeaderInfo {
  readonly sendingApplication: string;
  readonly sendingFacility: string;
  readonly receivingApplication: string;
  readonly receivingFacility: string;
  /** MSH-7 as sent. */
  readonly dateTime: string;
  /** MSH-9.1, e.g. ADT. */
  readonly messageCode: string;
  /** MSH-9.2, e.g. A01. */
  readonly triggerEvent: string;
  /** MSH-9.3, e.g. ADT_A01 (may be empty in older versions). */
  readonly messageStructure: string;
  /** MSH-10. */
  readonly controlId: string;
  /** MSH-11.1, P, T or D. */
  readonly processingId: string;
  /** MSH-12.1, e.g. 2.5.1. */
  readonly version: string;
  /** MSH-18 (first repetition), e.g. UNICODE UTF-8 or 8859/1. */
  readonly characterSet: string;
}

/**
 * @param message - A message read by {@link readHl7Message}.
 * @returns The MSH fields the hub uses, first components only, unescaped.
 */
export function readMessageHeader(message: Hl7Message): MessageHeaderInfo {
  const msh = message.getSegment('MSH');
  if (!msh) {
    throw new Hl7FormatError('Message does not start with an MSH segment');
  }
  // Header values are recorded in the ledger and logs: no control characters, no edge spaces.
  const c = (field: number, component = 1): string => stripControlCharacters(msh.getComponent(field, component) ?? '').trim();
  return {
    sendingApplication: c(3),
    sendingFacility: c(4),
    receivingApplication: c(5),
    receivingFacility: c(6),
    dateTime: c(7),
    messageCode: c(9, 1).toUpperCase(),
    triggerEvent: c(9, 2).toUpperCase(),
    messageStructure: c(9, 3).toUpperCase(),
    controlId: c(10),
    processingId: c(11),
    version: c(12),
    characterSet: stripControlCharacters((msh.getField(18)?.toString() ?? '').split(message.context.repetitionSeparator)[0]).trim(),
  };
}

/** Longest values the standard allows (HD: 227, MSH-10 ST: 199 from v2.7): longer is not a real header. */
const HEADER_MAX_LENGTHS: readonly (readonly [keyof MessageHeaderInfo, number, number])[] = [
  ['sendingApplication', 3, 227],
  ['sendingFacility', 4, 227],
  ['receivingApplication', 5, 227],
  ['receivingFacility', 6, 227],
  ['controlId', 10, 199],
];

/**
 * @param header - A message's header.
 * @returns The first MSH field longer than the standard allows (such values would also make
 * URLs too long to search the ledger by), or undefined.
 */
export function overlongHeaderField(header: MessageHeaderInfo): { readonly field: number; readonly max: number } | undefined {
  const found = HEADER_MAX_LENGTHS.find(([name, , max]) => header[name].length > max);
  return found ? { field: found[1], max: found[2] } : undefined;
}

const DEFAULT_CONTEXT = new Hl7Context();
/** MSH fields an answer is built from: sender, receiver, time, type, control id, processing id, version. */
const ANSWER_FIELDS = [3, 4, 5, 6, 7, 9, 10, 11, 12];

/**
 * A stand-in to answer a text that could not be read as a message: default delimiters, and the
 * MSH fields an ACK needs, cut from the text's first line with its own field separator (when it
 * has a usable one), so that MSA-2 still echoes the sender's MSH-10.
 * @param text - The text as received.
 * @returns An MSH-only message.
 */
export function standInForUnreadable(text: string): Hl7Message {
  const line = text.replace(/^[\s\u0000\ufeff]+/, '').split(/[\r\n]/)[0];
  const separator = line.charAt(3);
  const usable = line.startsWith('MSH') && separator !== '' && !/[\s\w]/.test(separator);
  // parts[n - 1] is MSH-n (MSH-1 is the separator itself).
  const parts = usable ? line.split(separator) : [];
  const fields = ['MSH', '^~\\&'];
  for (let n = 3; n <= 12; n++) {
    const value = ANSWER_FIELDS.includes(n) ? stripControlCharacters(parts[n - 1] ?? '') : '';
    // MSH-9 keeps '^' as its component separator, by far the most common one.
    const components = n === 9 ? value.split('^') : [value];
    fields.push(components.map((c) => encodeEscapes(c, DEFAULT_CONTEXT)).join('^'));
  }
  return new Hl7Message([new Hl7Segment(fields, DEFAULT_CONTEXT)], DEFAULT_CONTEXT);
}

/** A header with every field empty: a base for records that come from no message (a roster row). */
export const EMPTY_MESSAGE_HEADER: MessageHeaderInfo = {
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
