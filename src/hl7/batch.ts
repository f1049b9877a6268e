/**
 * HL7 v2 batch files (v2.5 chapter 2, batch protocol) as partners drop them on SFTP:
 * `[FHS { BHS { MSH … } BTS } FTS]`, but also bare messages one after another, BHS/BTS without
 * FHS/FTS, CR, LF or CRLF segment ends, MLLP framing bytes left in, blank lines and a BOM.
 * Pure: the caller reads the file and feeds each message to the same pipeline as MLLP messages.
 */
import { stripControlCharacters } from '../fhir/strings.ts';

/** One message of a batch file. */
export interface BatchMessage {
  /** The message text, segments separated by '\r', ready for the same pipeline as MLLP messages. */
  readonly text: string;
  /** 1-based line of its MSH in the file (for error reports). */
  readonly line: number;
  /** 1-based position among the file's messages. */
  readonly index: number;
}

/** A structural problem of a batch file; the text never quotes field values other than counts and header ids. */
export interface BatchProblem {
  readonly line: number;
  readonly message: string;
}

/** FHS/BHS values the ledger records a file by. */
export interface BatchHeader {
  /** FHS-3.1 (BHS-3.1 when there is no FHS). */
  sendingApplication?: string;
  /** FHS-4.1 (BHS-4.1 when there is no FHS). */
  sendingFacility?: string;
  /** FHS-7.1 as sent (BHS-7.1 when there is no FHS). */
  time?: string;
  /** FHS-9.1, the file name/id (BHS-9.1 when there is no FHS). */
  fileId?: string;
  /** BHS-11.1 of the first batch. */
  batchControlId?: string;
}

/** A batch file split into its messages. */
export interface BatchFile {
  readonly messages: BatchMessage[];
  /** FHS/BHS header fields useful for the ledger: FHS-3 sending application, FHS-4 facility, FHS-7 time, FHS-9 file name/id, BHS-11 batch control id (first batch), when present. */
  readonly header?: BatchHeader;
  /** Structural problems: trailer counts that do not match (a truncated or partial file), BTS/FTS missing when BHS/FHS present, segments outside any message (before the first MSH other than FHS/BHS), unknown or misplaced FHS/BHS/BTS/FTS, an empty file. */
  readonly problems: BatchProblem[];
}

/** A non-blank line of the file, cleaned of framing bytes and edge whitespace. */
interface Line {
  /** 1-based line number in the file. */
  readonly number: number;
  readonly text: string;
  /** The segment name, or undefined when the line does not start like a segment. */
  readonly name: string | undefined;
}

/** A batch being read: where its BHS is and how many messages it has held so far. */
interface OpenBatch {
  readonly line: number;
  messages: number;
}

/**
 * Splits a batch file into its messages and checks its structure. Never throws: whatever is
 * wrong is reported in `problems`, and {@link isCompleteBatch} tells whether to import the file.
 * A file whose messages sit directly under FHS (no BHS) is read as one batch without a header,
 * so its FTS-1 may be 1.
 * @param content - The whole file, decoded as text.
 * @returns The messages, the header values and the problems.
 */
export function readBatchFile(content: string): BatchFile {
  const messages: BatchMessage[] = [];
  const problems: BatchProblem[] = [];
  const header: BatchHeader = {};
  const lines = fileLines(content);

  let fileLine: number | undefined; // FHS
  let fileEndLine: number | undefined; // FTS
  let batch: OpenBatch | undefined;
  let batches = 0;
  let firstLooseMessage: number | undefined;
  let current: { line: number; segments: string[] } | undefined;
  // Report one problem per run of stray lines, not one per line of a pasted report.
  let inStrayRun = false;
  let afterEndReported = false;

  const problem = (line: number, message: string): void => {
    problems.push({ line, message });
  };
  const closeMessage = (): void => {
    if (current) {
      messages.push({ text: current.segments.join('\r'), line: current.line, index: messages.length + 1 });
      current = undefined;
    }
  };
  const closeBatchWithoutTrailer = (by: string): void => {
    if (batch) {
      problem(batch.line, `BHS at line ${batch.line} has no BTS (${by})`);
      batch = undefined;
    }
  };

  for (const [position, line] of lines.entries()) {
    const { number, name } = line;
    if (fileEndLine !== undefined && !afterEndReported) {
      afterEndReported = true;
      problem(number, `${name ?? 'Text'} at line ${number} comes after the FTS (line ${fileEndLine})`);
    }
    const structural = name === 'FHS' || name === 'BHS' || name === 'BTS' || name === 'FTS' || name === 'MSH';
    if (structural) {
      closeMessage();
      inStrayRun = false;
    }
    switch (name) {
      case 'FHS':
        if (fileLine !== undefined) {
          problem(number, `FHS at line ${number} is a second file header (the first is at line ${fileLine})`);
          break;
        }
        if (position > 0) {
          problem(number, `FHS at line ${number} is not the first segment of the file`);
        }
        fileLine = number;
        Object.assign(header, headerValues(line.text, { sendingApplication: 3, sendingFacility: 4, time: 7, fileId: 9 }));
        break;
      case 'BHS':
        closeBatchWithoutTrailer(`next BHS at line ${number}`);
        batch = { line: number, messages: 0 };
        batches++;
        if (batches === 1) {
          // BHS carries the same sender fields as FHS: the fallback for files without FHS.
          const values = headerValues(line.text, { sendingApplication: 3, sendingFacility: 4, time: 7, fileId: 9, batchControlId: 11 });
          for (const [key, value] of Object.entries(values) as [keyof BatchHeader, string][]) {
            header[key] ??= value;
          }
        }
        break;
      case 'BTS':
        if (!batch) {
          problem(number, `BTS at line ${number} has no BHS`);
          break;
        }
        checkCount(problems, 'BTS', number, fieldsOf(line.text)[1], batch.messages, ['message', 'messages'], 'batch');
        batch = undefined;
        break;
      case 'FTS':
        closeBatchWithoutTrailer(`FTS at line ${number}`);
        if (fileLine === undefined) {
          problem(number, `FTS at line ${number} has no FHS`);
        } else if (fileEndLine === undefined) {
          const held = batches > 0 ? batches : messages.length > 0 ? 1 : 0;
          checkCount(problems, 'FTS', number, fieldsOf(line.text)[1], held, ['batch', 'batches'], 'file');
          fileEndLine = number;
        } else {
          problem(number, `FTS at line ${number} is a second file trailer (the first is at line ${fileEndLine})`);
        }
        break;
      case 'MSH':
        current = { line: number, segments: [line.text] };
        if (batch) {
          batch.messages++;
        } else {
          firstLooseMessage ??= number;
        }
        break;
      default:
        if (current) {
          // Whether the segment is well formed is the message pipeline's question, not the file's.
          current.segments.push(line.text);
        } else if (!inStrayRun) {
          inStrayRun = true;
          const what = name ? `${name} segment` : 'Text that is not a segment';
          problem(number, `${what} at line ${number} is outside any message`);
        }
    }
  }
  closeMessage();

  const lastLine = lines.length > 0 ? lines[lines.length - 1].number : 1;
  closeBatchWithoutTrailer(`the file ends at line ${lastLine}`);
  if (fileLine !== undefined && fileEndLine === undefined) {
    problem(fileLine, `FHS at line ${fileLine} has no FTS (the file ends at line ${lastLine})`);
  }
  if (batches > 0 && firstLooseMessage !== undefined) {
    problem(firstLooseMessage, `MSH at line ${firstLooseMessage} is outside any batch (the file has BHS batches)`);
  }
  if (lines.length === 0) {
    problem(1, 'The file is empty');
  }
  problems.sort((a, b) => a.line - b.line);
  return { messages, problems, ...(Object.keys(header).length > 0 ? { header } : {}) };
}

/**
 * @param file - A file read by {@link readBatchFile}.
 * @returns True when the structure can be trusted: no problems. Callers refuse the whole file
 * otherwise (a truncated transfer must not be half-imported).
 */
export function isCompleteBatch(file: BatchFile): boolean {
  return file.problems.length === 0;
}

/**
 * @param content - The file.
 * @returns Its non-blank lines with their 1-based numbers in the file.
 */
function fileLines(content: string): Line[] {
  const result: Line[] = [];
  for (const [index, raw] of content.split(/\r\n|\r|\n/).entries()) {
    // MLLP start/end bytes are never HL7 content (MLLP could not carry them); a BOM may start
    // every part of a concatenated file. Neither changes the line count.
    const text = raw
      .replace(/[\u000b\u001c]/g, '')
      .replace(/^[\s\ufeff]+/, '')
      .trimEnd();
    if (text.length > 0) {
      result.push({ number: index + 1, text, name: segmentName(text) });
    }
  }
  return result;
}

/**
 * @param text - A line.
 * @returns Its segment name: three capitals or digits (a capital first) followed by the field
 * separator or the end of the line; undefined for anything else.
 */
function segmentName(text: string): string | undefined {
  const name = text.slice(0, 3);
  const separator = text.charAt(3);
  return /^[A-Z][A-Z0-9]{2}$/.test(name) && !/[\sA-Za-z0-9]/.test(separator) ? name : undefined;
}

/**
 * Splits a segment with its own field separator (the 4th character), so that a file or batch
 * written with another separator than `|` reads the same.
 * @param text - A segment.
 * @returns Its fields, index n holding field n; for FHS/BHS/MSH, field 1 is the separator itself.
 */
function fieldsOf(text: string): string[] {
  const separator = text.charAt(3);
  if (!separator) {
    return [text];
  }
  const parts = text.split(separator);
  return /^(FHS|BHS|MSH)$/.test(parts[0]) ? [parts[0], separator, ...parts.slice(1)] : parts;
}

/**
 * @param text - An FHS or BHS segment.
 * @param wanted - Which field each value comes from.
 * @returns The first components of the wanted fields that are not empty, without control
 * characters or edge spaces (they go to the ledger and logs).
 */
function headerValues(text: string, wanted: { readonly [K in keyof BatchHeader]: number }): BatchHeader {
  const fields = fieldsOf(text);
  // FHS-2/BHS-2 first character, like MSH-2; '^' when the segment leaves it out.
  const componentSeparator = fields[2]?.charAt(0) || '^';
  const values: BatchHeader = {};
  for (const [key, field] of Object.entries(wanted) as [keyof BatchHeader, number][]) {
    const value = stripControlCharacters((fields[field] ?? '').split(componentSeparator)[0]).trim();
    if (value) {
      values[key] = value;
    }
  }
  return values;
}

/**
 * Checks a trailer count (BTS-1, FTS-1). An empty count is not a problem: HL7 makes it optional.
 * @param problems - Where to report.
 * @param segment - BTS or FTS.
 * @param line - The trailer's line.
 * @param raw - The count field as sent.
 * @param held - How many the batch or file holds.
 * @param unit - What is counted, singular and plural.
 * @param container - What holds them.
 */
function checkCount(problems: BatchProblem[], segment: string, line: number, raw: string | undefined, held: number, unit: readonly [string, string], container: string): void {
  const value = (raw ?? '').trim();
  if (value === '') {
    return;
  }
  if (!/^\d+$/.test(value)) {
    // Not quoted: a count that is not a number may be anything, PHI included.
    problems.push({ line, message: `${segment}-1 is not a number (line ${line})` });
    return;
  }
  const count = Number(value);
  if (count !== held) {
    problems.push({ line, message: `${segment}-1 says ${count} ${unit[count === 1 ? 0 : 1]}, the ${container} holds ${held} (line ${line})` });
  }
}
