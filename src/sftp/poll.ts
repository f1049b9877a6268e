import type { MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Task } from '@medplum/fhirtypes';
import { createHash } from 'node:crypto';
import type { SftpConnection } from './client.ts';
import { connectSftp } from './client.ts';
import type { ListedFile } from './files.ts';
import { readyFiles } from './files.ts';
import type { FileResult } from './formats.ts';
import { processFile } from './formats.ts';
import { acquireLock, LockKind, releaseLock } from '../fhir/lock.ts';
import type { FileOutcomeCode } from './ledger.ts';
import { claimFile, FileOutcome, finishFile, SFTP_FILE_TASK_CODE } from './ledger.ts';
import type { SftpSource } from './source.ts';

/** What one poll of a source did with one file. */
export interface FileReport {
  readonly name: string;
  readonly outcome: FileOutcomeCode | 'busy';
  /** Where the file went (archive or error folder); absent when it stays for the next poll. */
  readonly movedTo?: string;
  readonly task?: string;
  readonly text: string;
}

/** What one poll of a source did. */
export interface PollReport {
  readonly source: string;
  readonly files: FileReport[];
  /** Files matching the pattern but too young (possibly still being written): left for the next poll. */
  readonly waiting: number;
  /** Why the source was not polled this time. */
  readonly skipped?: string;
}

/** Options of {@link pollSource}. */
export interface PollOptions {
  /** Files taken per poll at most (the rest waits for the next one). */
  readonly maxFiles?: number;
  /** No new file is started after this time (ms since the epoch): the next cron run continues. */
  readonly deadline?: number;
  readonly now?: () => number;
  readonly log?: (line: string) => void;
}

/**
 * Polls one partner SFTP folder: lists it, takes the complete files (matching the pattern, not
 * named like a transfer in progress, older than the minimum age), oldest first, and for each:
 * claims it in the file ledger (a Task keyed by source, name and content hash, so each file is
 * processed once however many polls see it), stores the raw file as a Binary, processes it by
 * format, and moves it to the archive folder, or to the error folder with a `<name>.reason.txt`
 * beside it. A file whose processing throws stays in place for the next poll (its Task says why).
 * @param medplum - The client (the cron bot's identity).
 * @param source - The source.
 * @param options - Limits and logging.
 * @returns What was done.
 */
export async function pollSource(medplum: MedplumClient, source: SftpSource, options: PollOptions = {}): Promise<PollReport> {
  const now = options.now ?? Date.now;
  const log = options.log ?? ((line: string): void => console.log(line));
  // One run per source at a time: a long file must not let the next cron run take the files
  // after it out of order.
  const lease = await acquireLock(medplum, LockKind.sftpSource, source.name, 'Bot/sftp-inbound');
  if (!lease) {
    return { source: source.name, files: [], waiting: 0, skipped: 'another run is polling this source' };
  }
  try {
    const connection = await connectSftp(source);
    const files: FileReport[] = [];
    try {
      const listing = await connection.list(source.folder);
      const { ready, tooYoung } = readyFiles(listing, source.pattern, source.minAgeMs, now());
      for (const file of ready.slice(0, options.maxFiles ?? 100)) {
        if (options.deadline && now() > options.deadline) {
          break;
        }
        let report: FileReport;
        try {
          report = await takeFile(medplum, connection, source, file);
        } catch (err) {
          // One file that cannot be read or claimed does not stop the files after it.
          report = { name: file.name, outcome: FileOutcome.error, text: `left for the next poll: ${normalizeErrorString(err)}` };
        }
        // File names can carry patient names or MRNs: the log names the Task, not the file.
        log(`sftp ${source.name}: ${report.task ?? '(no Task)'}: ${report.outcome}${report.movedTo ? ` → ${folderOf(report.movedTo)}` : ''}: ${report.text}`);
        files.push(report);
      }
      return { source: source.name, files, waiting: tooYoung };
    } finally {
      await connection.close();
    }
  } finally {
    await releaseLock(medplum, lease);
  }
}

async function takeFile(medplum: MedplumClient, connection: SftpConnection, source: SftpSource, file: ListedFile): Promise<FileReport> {
  const path = `${source.folder.replace(/\/$/, '')}/${file.name}`;
  const content = await connection.read(path);
  // A file that changed since the listing is still being written (or rewritten): not this poll.
  const after = await connection.stat(path);
  if (after.size !== file.size || after.modifyTime !== file.modifyTime || content.length !== file.size) {
    return { name: file.name, outcome: 'busy', text: 'the file changed while it was read; it waits for the next poll' };
  }
  const sha256 = createHash('sha256').update(content).digest('hex');
  const now = new Date().toISOString();
  const draft: Task = {
    resourceType: 'Task',
    status: 'in-progress',
    intent: 'order',
    code: { coding: [{ ...SFTP_FILE_TASK_CODE }], text: 'File from a partner SFTP folder' },
    description: `${source.name}: ${file.name}`,
    authoredOn: now,
    lastModified: now,
    input: [
      { type: { text: 'source' }, valueString: source.name },
      { type: { text: 'file name' }, valueString: file.name },
      { type: { text: 'sha256' }, valueString: sha256 },
    ],
  };
  const claim = await claimFile(medplum, { source: source.name, name: file.name, sha256 }, draft);
  if ('busy' in claim) {
    return { name: file.name, outcome: 'busy', task: `Task/${claim.busy.id}`, text: 'another poll is processing it' };
  }
  if ('duplicateOf' in claim) {
    const movedTo = await connection.move(path, source.archive);
    return { name: file.name, outcome: FileOutcome.duplicate, movedTo, task: `Task/${claim.duplicateOf.id}`, text: `the same file was processed before (Task/${claim.duplicateOf.id})` };
  }
  if ('alreadyFailed' in claim) {
    // Processed before, but the move to the error folder did not happen: finish the move only.
    const task = claim.alreadyFailed;
    const movedTo = await moveToError(connection, source, path, file.name, task.businessStatus?.coding?.[0]?.code ?? FileOutcome.rejected, task.businessStatus?.text ?? '', reasonsOf(task));
    return { name: file.name, outcome: FileOutcome.duplicate, movedTo, task: `Task/${task.id}`, text: `processed before with errors (Task/${task.id}); moved to the error folder` };
  }

  // Only this run writes the claimed Task: each write starts from the version the previous one returned.
  let task = claim.claimed;
  let result: FileResult;
  try {
    const raw = await medplum.createBinary({ data: content, contentType: 'application/octet-stream', filename: file.name });
    task = await recordRawFile(medplum, task, `Binary/${raw.id}`, file.name, content.length);
    const text = decodeUtf8(content);
    result = text === undefined ? notUtf8() : await processFile(medplum, source, text);
  } catch (err) {
    const text = `processing stopped, the file stays for the next poll: ${normalizeErrorString(err)}`;
    await finishFile(medplum, task, FileOutcome.error, text, []).catch(() => undefined);
    return { name: file.name, outcome: FileOutcome.error, task: `Task/${task.id}`, text };
  }
  // The outcome is recorded before the file moves: a move that fails leaves a Task that says
  // where the file belongs, and the next poll only moves it (it does not process it again).
  const failed = result.outcome !== FileOutcome.processed;
  const finished = await finishFile(medplum, task, result.outcome, result.summary, result.output);
  const movedTo = failed
    ? await moveToError(connection, source, path, file.name, result.outcome, result.summary, result.reasons)
    : await connection.move(path, source.archive);
  await recordMove(medplum, finished, movedTo).catch(() => undefined);
  return { name: file.name, outcome: result.outcome, movedTo, task: `Task/${task.id}`, text: result.summary };
}

/**
 * Moves a file to the error folder and writes `<name>.reason.txt` beside it. The reason file is
 * best effort: the Task holds the same reasons.
 */
async function moveToError(connection: SftpConnection, source: SftpSource, path: string, name: string, outcome: string, summary: string, reasons: readonly string[]): Promise<string> {
  const movedTo = await connection.move(path, source.error);
  const text = [`File: ${name}`, `Source: ${source.name}`, `Outcome: ${outcome}`, `Summary: ${summary}`, '', ...reasons, ''].join('\n');
  await connection.write(`${movedTo}.reason.txt`, text).catch(() => undefined);
  return movedTo;
}

function reasonsOf(task: Task): string[] {
  return (task.output ?? []).map((o) => o.valueString).filter((v): v is string => Boolean(v));
}

async function recordMove(medplum: MedplumClient, task: WithId<Task>, movedTo: string): Promise<void> {
  await medplum.updateResource<Task>({ ...task, output: [...(task.output ?? []), { type: { text: 'moved to' }, valueString: movedTo }] });
}

/**
 * @param content - The file's bytes.
 * @returns The text (BOM removed), or undefined when the bytes are not UTF-8: decoding with
 * replacement characters would write mangled names into the record.
 */
function decodeUtf8(content: Uint8Array): string | undefined {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(content);
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  } catch {
    return undefined;
  }
}

function notUtf8(): FileResult {
  return {
    outcome: FileOutcome.rejected,
    summary: 'the file is not UTF-8 text; nothing was imported',
    reasons: ['The hub reads files as UTF-8. Send the file in UTF-8 (for example, save the CSV as "CSV UTF-8").'],
    output: [],
  };
}

function folderOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

/** Keeps the file as received on its Task, for audit and for processing it again by hand. */
async function recordRawFile(medplum: MedplumClient, task: WithId<Task>, url: string, name: string, size: number): Promise<WithId<Task>> {
  const input = [...(task.input ?? []), { type: { text: 'raw file' }, valueAttachment: { url, title: name, size, contentType: 'application/octet-stream' } }];
  return medplum.updateResource<Task>({ ...task, input, lastModified: new Date().toISOString() });
}


