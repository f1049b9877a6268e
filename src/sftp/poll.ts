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
  const connection = await connectSftp(source);
  const files: FileReport[] = [];
  try {
    const listing = await connection.list(source.inbox);
    const { ready, tooYoung } = readyFiles(listing, source.pattern, source.minAgeMs, now());
    for (const file of ready.slice(0, options.maxFiles ?? 100)) {
      if (options.deadline && now() > options.deadline) {
        break;
      }
      const report = await takeFile(medplum, connection, source, file);
      log(`sftp ${source.name}: ${file.name}: ${report.outcome}${report.movedTo ? ` → ${report.movedTo}` : ''}: ${report.text}`);
      files.push(report);
    }
    return { source: source.name, files, waiting: tooYoung };
  } finally {
    await connection.close();
  }
}

async function takeFile(medplum: MedplumClient, connection: SftpConnection, source: SftpSource, file: ListedFile): Promise<FileReport> {
  const path = `${source.inbox.replace(/\/$/, '')}/${file.name}`;
  const content = await connection.read(path);
  const sha256 = createHash('sha256').update(content).digest('hex');
  const draft: Task = {
    resourceType: 'Task',
    status: 'in-progress',
    intent: 'order',
    code: { coding: [{ ...SFTP_FILE_TASK_CODE }], text: 'File from a partner SFTP folder' },
    description: `${source.name}: ${file.name}`,
    authoredOn: new Date().toISOString(),
    lastModified: new Date().toISOString(),
    input: [
      { type: { text: 'source' }, valueString: source.name },
      { type: { text: 'file name' }, valueString: file.name },
      { type: { text: 'sha256' }, valueString: sha256 },
    ],
  };
  const claim = await claimFile(medplum, `${source.name}/${file.name}/${sha256}`, draft);
  if ('busy' in claim) {
    return { name: file.name, outcome: 'busy', task: `Task/${claim.busy.id}`, text: 'another poll is processing it' };
  }
  if ('duplicateOf' in claim) {
    const movedTo = await connection.move(path, source.archive);
    return { name: file.name, outcome: FileOutcome.duplicate, movedTo, task: `Task/${claim.duplicateOf.id}`, text: `the same file was processed before (Task/${claim.duplicateOf.id})` };
  }
  const task = claim.claimed;
  try {
    const raw = await medplum.createBinary({ data: content, contentType: 'application/octet-stream', filename: file.name });
    await recordRawFile(medplum, task, `Binary/${raw.id}`, file.name, content.length);
    const result = await processFile(medplum, source, stripBom(content.toString('utf8')));
    const failed = result.outcome !== FileOutcome.processed;
    const movedTo = await connection.move(path, failed ? source.error : source.archive);
    if (failed) {
      await connection.write(`${movedTo}.reason.txt`, reasonFile(source, file.name, result));
    }
    await finishFile(medplum, task, result.outcome, result.summary, [...result.output, { type: { text: 'moved to' }, valueString: movedTo }]);
    return { name: file.name, outcome: result.outcome, movedTo, task: `Task/${task.id}`, text: result.summary };
  } catch (err) {
    const text = `processing stopped, the file stays for the next poll: ${normalizeErrorString(err)}`;
    await finishFile(medplum, task, FileOutcome.error, text, []).catch(() => undefined);
    return { name: file.name, outcome: FileOutcome.error, task: `Task/${task.id}`, text };
  }
}

/** Keeps the file as received on its Task, for audit and for processing it again by hand. */
async function recordRawFile(medplum: MedplumClient, task: WithId<Task>, url: string, name: string, size: number): Promise<void> {
  const current = await medplum.readResource('Task', task.id);
  const input = [...(current.input ?? []), { type: { text: 'raw file' }, valueAttachment: { url, title: name, size, contentType: 'application/octet-stream' } }];
  await medplum.updateResource<Task>({ ...current, input, lastModified: new Date().toISOString() });
}

function reasonFile(source: SftpSource, name: string, result: FileResult): string {
  return [`File: ${name}`, `Source: ${source.name}`, `Outcome: ${result.outcome}`, `Summary: ${result.summary}`, '', ...result.reasons, ''].join('\n');
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
