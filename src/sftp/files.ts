/** A file as the SFTP listing shows it. */
export interface ListedFile {
  readonly name: string;
  /** `-` for a regular file, `d` for a directory, `l` for a link (ssh2-sftp-client's `type`). */
  readonly type: string;
  readonly size: number;
  /** Last modification, ms since the epoch. */
  readonly modifyTime: number;
}

/** Names partners' tools give files still being written (and hidden files). */
const TEMPORARY_NAME = /^\.|~$|\.(tmp|temp|part|partial|filepart|crdownload|uploading|writing)$/i;

/**
 * Chooses the files of a listing that are ready: regular files matching the pattern, not named
 * like a file still being transferred, and older than the minimum age (a file still growing
 * keeps a fresh modification time), oldest first so files are processed in the order they
 * arrived.
 * @param files - The listing.
 * @param pattern - File name pattern.
 * @param minAgeMs - Minimum age.
 * @param now - Current time, ms.
 * @returns The ready files, oldest first, and how many were left for later because too young.
 */
export function readyFiles(files: readonly ListedFile[], pattern: RegExp, minAgeMs: number, now: number): { ready: ListedFile[]; tooYoung: number } {
  const candidates = files.filter((f) => f.type === '-' && pattern.test(f.name) && !TEMPORARY_NAME.test(f.name));
  const ready = candidates.filter((f) => now - f.modifyTime >= minAgeMs);
  ready.sort((a, b) => a.modifyTime - b.modifyTime || a.name.localeCompare(b.name));
  return { ready, tooYoung: candidates.length - ready.length };
}
