/**
 * Progress output for long CLI commands (deploy, replays, imports): a running count on stderr, so
 * that stdout keeps the command's own lines. On a terminal one line is rewritten in place; in CI
 * logs and pipes a plain line is printed now and then and once at the end, so logs stay short.
 * It prints counts, rates and durations, and the caller's notes, which must be ids (resource
 * ids, control ids, managed names): never message text or resource content.
 */

import { clip } from '../fhir/strings.ts';

/** Where progress goes: `process.stderr` or anything with `write` (tests pass a fake). */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  /** Terminal width; the live line is cut to fit. */
  readonly columns?: number;
}

/** How a command reports progress; every field has a default (stderr, the real clock). */
export interface ProgressSettings {
  /** Default `process.stderr`. */
  readonly stream?: ProgressStream;
  /** Default `stream.isTTY`. */
  readonly isTTY?: boolean;
  /** Clock in ms; default `Date.now`. */
  readonly now?: () => number;
  /** Least time between two plain lines when not on a terminal; default {@link PLAIN_INTERVAL_MS}. */
  readonly intervalMs?: number;
}

/** Options of {@link createProgress}. */
export interface ProgressOptions extends ProgressSettings {
  /** What is counted, e.g. `hl7 import` (no PHI: it is printed as is). */
  readonly label: string;
  /** How many there are, when known (percent and ETA need it). */
  readonly total?: number;
}

/** A running progress report. */
export interface Progress {
  /**
   * Counts `n` more done and shows the count when it is time to.
   * @param n - How many more are done (default 1).
   * @param note - What is being worked on: ids only (shown after the count until the next note).
   */
  tick(n?: number, note?: string): void;
  /** Sets the note without counting (e.g. what is being waited for). */
  note(note: string | undefined): void;
  /**
   * Erases the live line (terminal only) so that the caller can print a line of its own; the
   * next tick draws it again.
   */
  clear(): void;
  /**
   * Prints the final line (count, duration and the summary). Later calls do nothing.
   * @param summary - Counts by outcome, ids; no PHI.
   */
  done(summary?: string): void;
  /** How many are done so far. */
  readonly count: number;
}

/** Least time between two redraws of the live line on a terminal. */
export const TTY_INTERVAL_MS = 100;
/** Default least time between two plain lines when not on a terminal. */
export const PLAIN_INTERVAL_MS = 5000;
/** Notes longer than this are cut: they are ids, and a live line must fit. */
const MAX_NOTE_LENGTH = 80;

/** Erase from the cursor to the end of the line (ANSI EL). */
const CLEAR_TO_END = '\u001b[K';

/**
 * Starts a progress report. Nothing is printed until the first tick (terminal) or until
 * `intervalMs` has passed (plain lines), so a quick command prints only its final line.
 * @param options - Label, total, output and clock.
 * @returns The report.
 */
export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const tty = options.isTTY ?? Boolean(stream.isTTY);
  const now = options.now ?? Date.now;
  const interval = tty ? TTY_INTERVAL_MS : (options.intervalMs ?? PLAIN_INTERVAL_MS);
  const total = options.total !== undefined && Number.isFinite(options.total) && options.total >= 0 ? options.total : undefined;
  const started = now();
  let count = 0;
  let note: string | undefined;
  // On a terminal the first tick draws at once; plain lines wait a full interval.
  let lastShown = tty ? Number.NEGATIVE_INFINITY : started;
  let lineShown = false;
  let finished = false;

  const line = (): string => {
    const elapsed = now() - started;
    return [options.label + ': ' + describeCount(count, total, elapsed), note].filter(Boolean).join('  ');
  };

  const show = (): void => {
    lastShown = now();
    if (tty) {
      stream.write('\r' + fit(line(), stream.columns) + CLEAR_TO_END);
      lineShown = true;
    } else {
      stream.write(line() + '\n');
    }
  };

  const maybeShow = (): void => {
    if (!finished && (now() - lastShown >= interval || (tty && !lineShown))) {
      show();
    }
  };

  return {
    tick(n = 1, next?: string): void {
      count += n;
      if (next !== undefined) {
        note = cleanNote(next);
      }
      maybeShow();
    },
    note(next: string | undefined): void {
      note = next === undefined ? undefined : cleanNote(next);
      maybeShow();
    },
    clear(): void {
      if (tty && lineShown && !finished) {
        stream.write('\r' + CLEAR_TO_END);
        lineShown = false;
      }
    },
    done(summary?: string): void {
      if (finished) {
        return;
      }
      finished = true;
      const elapsed = now() - started;
      const counted = total !== undefined ? `${count}/${total}` : String(count);
      const text = `${options.label}: ${counted} in ${formatDuration(elapsed)}${summary ? `: ${summary}` : ''}`;
      stream.write((tty ? '\r' + text + CLEAR_TO_END : text) + '\n');
    },
    get count(): number {
      return count;
    },
  };
}

/**
 * The command's own output while a count runs: each line (stdout) is printed after the live count
 * (stderr) is erased, so that neither overwrites the other; the next tick draws the count again.
 * @param progress - The running count.
 * @param log - Where the command's lines go.
 * @returns The log to print through while the count runs.
 */
export function logAbove(progress: Progress, log: (line: string) => void): (line: string) => void {
  return (line) => {
    progress.clear();
    log(line);
  };
}

/**
 * @param count - Done so far.
 * @param total - How many there are, if known.
 * @param elapsedMs - Time since the start.
 * @returns `12/40 (30%)  3.1/s  ETA 9s`, or `12  3.1/s` without a total.
 */
export function describeCount(count: number, total: number | undefined, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? (count * 1000) / elapsedMs : 0;
  const parts: string[] = [];
  if (total !== undefined) {
    const percent = total > 0 ? Math.floor((Math.min(count, total) * 100) / total) : 100;
    parts.push(`${count}/${total} (${percent}%)`);
  } else {
    parts.push(String(count));
  }
  if (count > 0 && elapsedMs > 0) {
    parts.push(`${formatRate(rate)}/s`);
    if (total !== undefined && count < total) {
      parts.push(`ETA ${formatDuration(((total - count) / rate) * 1000)}`);
    }
  }
  return parts.join('  ');
}

/**
 * @param ms - A duration.
 * @returns `850ms`, `12s`, `3m05s` or `1h02m`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    return '?';
  }
  if (ms < 1000) {
    return `${Math.round(ms)}ms`;
  }
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) {
    return `${seconds}s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  }
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

function formatRate(rate: number): string {
  return rate >= 10 ? String(Math.round(rate)) : rate.toFixed(1);
}

/**
 * Notes are ids, but a control character in one (a `\r`, an escape sequence) would garble the
 * line, and a long one would wrap it: both are removed.
 */
function cleanNote(note: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  const clean = note.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim();
  if (!clean) {
    return undefined;
  }
  return clip(clean, MAX_NOTE_LENGTH);
}

function fit(text: string, columns: number | undefined): string {
  // One column is left free: a line that fills the terminal exactly wraps on some terminals.
  return columns && columns > 1 ? clip(text, columns - 1) : text;
}
