import type { MedplumClient } from '@medplum/core';
import type { TaskOutput } from '@medplum/fhirtypes';
import { isCompleteBatch, readBatchFile } from '../hl7/batch.ts';
import { processInboundMessage } from '../inbound/pipeline.ts';
import type { FileOutcomeCode } from './ledger.ts';
import { FileOutcome } from './ledger.ts';
import { processRosterFile } from './roster-file.ts';
import type { SftpSource } from './source.ts';

/** What processing a file's content gave. */
export interface FileResult {
  readonly outcome: FileOutcomeCode;
  /** One line for the Task and the log (counts; no PHI). */
  readonly summary: string;
  /** Lines for the reason file: what failed, where (line numbers, ledger ids; no PHI). */
  readonly reasons: string[];
  readonly output: TaskOutput[];
}

/**
 * Processes a file's content by the source's format.
 * @param medplum - The client.
 * @param source - The source (format, sender).
 * @param text - The content (UTF-8, BOM removed).
 * @returns The result.
 */
export async function processFile(medplum: MedplumClient, source: SftpSource, text: string): Promise<FileResult> {
  return source.format === 'hl7v2-batch' ? processHl7BatchFile(medplum, text) : processRosterFile(medplum, source, text);
}

/**
 * An HL7 v2 batch file: its structure is checked first (FHS/BHS headers and trailers, message
 * counts), and a file that does not add up, such as a truncated transfer, is rejected whole
 * rather than half imported. Then each message goes through the same pipeline as a message
 * received over MLLP: committed, or dead-lettered (AE) or rejected (AR) on its own, with its raw
 * text in the HL7 ledger, without failing the others.
 * @param medplum - The client.
 * @param text - The file content.
 * @returns The result.
 */
export async function processHl7BatchFile(medplum: MedplumClient, text: string): Promise<FileResult> {
  const file = readBatchFile(text);
  if (!isCompleteBatch(file)) {
    const reasons = file.problems.map((p) => `line ${p.line}: ${p.message}`);
    return {
      outcome: FileOutcome.rejected,
      summary: `not an intact HL7 batch (${file.problems.length} problem(s)); nothing was imported`,
      reasons,
      output: [{ type: { text: 'messages' }, valueInteger: file.messages.length }, ...reasons.map((r) => ({ type: { text: 'problem' }, valueString: r }))],
    };
  }
  const counts = { committed: 0, duplicate: 0, 'dead-letter': 0, rejected: 0 };
  const reasons: string[] = [];
  for (const message of file.messages) {
    const result = await processInboundMessage(medplum, message.text);
    if (!result.ledger) {
      // Not even recorded (the server failed): the file stays, and the next poll sends the batch
      // again (messages already committed are duplicates and change nothing).
      throw new Error(`message ${message.index} (line ${message.line}) could not be recorded in the HL7 ledger`);
    }
    if (result.outcome === 'committed' || result.outcome === 'resolved') {
      counts[result.duplicate ? 'duplicate' : 'committed']++;
    } else {
      counts[result.outcome === 'rejected' ? 'rejected' : 'dead-letter']++;
      reasons.push(`message ${message.index} (line ${message.line}): ${result.ackCode}, ${result.outcome} (${result.ledger})`);
    }
  }
  const failed = counts['dead-letter'] + counts.rejected;
  return {
    // Messages that failed are each in the dead-letter list with their raw text: the file itself is done.
    outcome: FileOutcome.processed,
    summary: `${file.messages.length} message(s): ${counts.committed} committed, ${counts.duplicate} already committed, ${counts['dead-letter']} dead-lettered, ${counts.rejected} rejected${failed ? ' (see hub hl7 dead-letters)' : ''}`,
    reasons,
    output: [
      { type: { text: 'messages' }, valueInteger: file.messages.length },
      ...Object.entries(counts).map(([text, value]) => ({ type: { text }, valueInteger: value })),
      ...reasons.map((r) => ({ type: { text: 'not committed' }, valueString: r })),
    ],
  };
}
