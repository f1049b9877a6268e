import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
// Imported explicitly: the stock bot sandbox has no global setTimeout.
import { clearTimeout, setTimeout } from 'node:timers';
import SftpClient from 'ssh2-sftp-client';
import type { ListedFile } from './files.ts';
import type { SftpServer } from './source.ts';

/** What the hub does on a partner's SFTP server. */
export interface SftpConnection {
  list(folder: string): Promise<ListedFile[]>;
  /** Size and modification time now (to tell a file still being written). */
  stat(path: string): Promise<{ size: number; modifyTime: number }>;
  read(path: string): Promise<Buffer>;
  /** Writes a file under a temporary name, then renames it: readers never see it half written. */
  write(path: string, content: string | Buffer): Promise<void>;
  /** Moves a file; when the target exists, a timestamped name is used instead. */
  move(from: string, toFolder: string): Promise<string>;
  exists(path: string): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Connects to a partner's SFTP server with its credential, accepting only the host key whose
 * SHA-256 fingerprint the Endpoint pins (a server that presents another key is refused: files
 * carry PHI). Folders for archive and errors are created when missing.
 * @param source - The server.
 * @param timeoutMs - Connection timeout.
 * @returns The connection.
 */
export async function connectSftp(source: SftpServer, timeoutMs = 20_000): Promise<SftpConnection> {
  const client = new SftpClient(`hub-sftp-${source.name}`);
  let presented: string | undefined;
  // ssh2 leaves Nagle's algorithm on, which costs about 40 ms per request; files are many small
  // requests, so the socket is opened here with it off.
  const socket = connect({ host: source.host, port: source.port, noDelay: true });
  try {
    await client.connect({
      host: source.host,
      port: source.port,
      sock: socket,
      username: source.username,
      password: source.password,
      privateKey: source.privateKey,
      readyTimeout: timeoutMs,
      retries: 0,
      // A partner server that stops answering is noticed within 30 s instead of never.
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        presented = hostKeyFingerprint(key);
        return presented === source.hostKeySha256;
      },
    });
  } catch (err) {
    await client.end().catch(() => undefined);
    socket.destroy();
    if (presented && presented !== source.hostKeySha256) {
      throw new Error(`${source.host}:${source.port} presented host key ${presented}, not the pinned ${source.hostKeySha256}: refused`);
    }
    throw new Error(`SFTP connection to ${source.host}:${source.port} as ${source.username} failed: ${(err as Error).message}`);
  }
  const ensured = new Set<string>();
  const ensureFolder = async (folder: string): Promise<void> => {
    if (!ensured.has(folder) && !(await client.exists(folder))) {
      await client.mkdir(folder, true);
    }
    ensured.add(folder);
  };
  // ssh2-sftp-client has no per-request timeout; a stalled server must not hold the bot forever
  // (on the stock server only the synchronous part of a bot run is bounded).
  const bounded = <T>(what: string, operation: Promise<T>): Promise<T> => withTimeout(operation, OPERATION_TIMEOUT_MS, `SFTP ${what} on ${source.host}`, () => socket.destroy());
  return {
    list: async (folder) =>
      (await bounded('list', client.list(folder))).map((f) => ({ name: f.name, type: f.type, size: f.size, modifyTime: f.modifyTime })),
    stat: async (path) => {
      const stats = await bounded('stat', client.stat(path));
      return { size: stats.size, modifyTime: stats.modifyTime };
    },
    read: async (path) => (await bounded('read', client.get(path))) as Buffer,
    write: async (path, content) => {
      const folder = path.slice(0, path.lastIndexOf('/')) || '/';
      await bounded('mkdir', ensureFolder(folder));
      const temporary = `${path}.${Date.now()}.tmp`;
      await bounded('write', client.put(Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8'), temporary));
      await bounded('rename', client.rename(temporary, path));
    },
    move: async (from, toFolder) => {
      await bounded('mkdir', ensureFolder(toFolder));
      const name = from.slice(from.lastIndexOf('/') + 1);
      let target = `${toFolder.replace(/\/$/, '')}/${name}`;
      if (await bounded('exists', client.exists(target))) {
        target = `${target}.${new Date().toISOString().replace(/[:.]/g, '-')}`;
      }
      await bounded('rename', client.rename(from, target));
      return target;
    },
    exists: async (path) => Boolean(await bounded('exists', client.exists(path))),
    close: async () => {
      await withTimeout(client.end(), 5_000, 'SFTP close', () => socket.destroy()).catch(() => socket.destroy());
    },
  };
}

/** The longest one SFTP request may take (a large file read included). */
const OPERATION_TIMEOUT_MS = 120_000;

/**
 * @param operation - A promise.
 * @param ms - Time bound.
 * @param what - For the error.
 * @param onTimeout - Called when the bound is reached (closes the connection).
 * @returns The operation's result, or a rejection after `ms`.
 */
function withTimeout<T>(operation: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`${what} did not finish within ${ms / 1000} s`));
    }, ms);
  });
  return Promise.race([operation, timeout]).finally(() => clearTimeout(timer));
}

/**
 * @param key - A host public key blob as presented in the SSH handshake.
 * @returns Its fingerprint as OpenSSH prints it: `SHA256:` and unpadded base64.
 */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}
