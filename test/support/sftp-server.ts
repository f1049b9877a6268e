import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { chmod, lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, rmdir, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Attributes, AuthContext, Connection, FileEntry, ParsedKey, SFTPWrapper } from 'ssh2';
// ssh2 is CommonJS and Node only detects its first few named exports: take them from the default.
import ssh2 from 'ssh2';
import { hostKeyFingerprint } from '../../src/sftp/client.ts';

const { Server: SshServer, utils } = ssh2;
const { STATUS_CODE } = utils.sftp;

/** A login the server accepts. */
export interface SftpTestUser {
  readonly username: string;
  readonly password?: string;
  /** OpenSSH public key (`ssh-ed25519 AAAA…`); the private key stays with the test. */
  readonly publicKey?: string;
}

/** Configuration of an {@link SftpTestServer}. */
export interface SftpTestServerOptions {
  /** Accepted logins: password and/or an OpenSSH public key. */
  readonly users: readonly SftpTestUser[];
}

/** One SFTP request the server got, as the tests see it. */
export interface SftpOperation {
  /** The SFTP request: `OPEN`, `READ`, `WRITE`, `CLOSE`, `FSTAT`, `OPENDIR`, `READDIR`, `STAT`, `RENAME`… */
  readonly op: string;
  /** Virtual path (normalized, `/inbox/a.hl7`); as sent when it escapes the root. For handle requests, the path opened. */
  readonly path?: string;
  /** Second path: the target of a `RENAME`. */
  readonly path2?: string;
  /** For `OPEN`: the mode as Node's `fs.open` flags (`r`, `w`, `a`…), to tell reads from writes. */
  readonly flags?: string;
  readonly user: string;
}

/** Open handles one session may hold: a client leaking handles fails instead of exhausting fds. */
const MAX_HANDLES = 64;
/** Largest READ answered; SFTP allows short reads and clients ask again for the rest. */
const MAX_READ = 64 * 1024;
/** Directory entries per READDIR answer, keeping a packet well under the client's limit. */
const READDIR_BATCH = 64;
/** How long `stop()` lets clients hang up after the disconnect message before cutting them. */
const STOP_GRACE_MS = 1_000;

/**
 * A partner's SFTP server for the tests: `ssh2`'s server on 127.0.0.1 with its SFTP subsystem,
 * serving a temporary directory. Virtual absolute paths (`/inbox/a.hl7`) map under `root`; a
 * path that climbs out with `..` is refused. Rename never replaces an existing target, as
 * OpenSSH's plain RENAME (no `posix-rename` extension is advertised). Every request is recorded
 * in `operations` so tests can assert what a bot did (or did not) touch.
 */
export class SftpTestServer {
  readonly host = '127.0.0.1';
  readonly operations: SftpOperation[] = [];
  private readonly users: readonly { readonly username: string; readonly password?: string; readonly key?: ParsedKey }[];
  private failures = 0;
  private listener?: NetServer;
  private rootDir?: string;
  private listenPort?: number;
  private fingerprint?: string;
  private readonly sockets = new Set<Socket>();
  private readonly connections = new Set<Connection>();
  private readonly sessions = new Set<SftpSession>();

  constructor(options: SftpTestServerOptions) {
    this.users = options.users.map((u) => ({ username: u.username, password: u.password, key: u.publicKey ? parsePublicKey(u.publicKey) : undefined }));
  }

  /** Connections that had a login attempt refused (wrong password, unknown key or user). */
  get authFailures(): number {
    return this.failures;
  }

  get port(): number {
    return this.started(this.listenPort);
  }

  /** The served directory on disk. */
  get root(): string {
    return this.started(this.rootDir);
  }

  /** SHA-256 fingerprint of the host key as OpenSSH prints it (`SHA256:…`), for clients that pin it. */
  get hostKeySha256(): string {
    return this.started(this.fingerprint);
  }

  /**
   * Creates the served directory and a fresh host key, and listens on a free port of 127.0.0.1.
   * @returns The server.
   */
  async start(): Promise<this> {
    if (this.listener) {
      throw new Error('SFTP test server already started');
    }
    this.rootDir = await mkdtemp(join(tmpdir(), 'sftp-test-'));
    const hostKey = generateEd25519('sftp-test-host');
    this.fingerprint = hostKeyFingerprint(parsePublicKey(hostKey.publicKey).getPublicSSH());
    const ssh = new SshServer({ hostKeys: [hostKey.privateKey] }, (conn) => this.accept(conn));
    // Our own listener hands sockets to ssh2, so stop() can cut the ones that do not hang up.
    const listener = createServer((socket) => {
      this.sockets.add(socket);
      // Without it each request/response round trip waits on Nagle and delayed ACKs (~40 ms).
      socket.setNoDelay(true);
      socket.once('close', () => this.sockets.delete(socket));
      ssh.injectSocket(socket);
    });
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(0, this.host, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.listenPort = (listener.address() as AddressInfo).port;
    return this;
  }

  /** Disconnects every client, closes the server and its open files, and removes the served directory. */
  async stop(): Promise<void> {
    const listener = this.listener;
    if (!listener) {
      return;
    }
    this.listener = undefined;
    const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const conn of this.connections) {
      conn.end();
    }
    await this.hangUp();
    await closed;
    await Promise.all([...this.sessions].map((s) => s.closeAll()));
    this.sessions.clear();
    if (this.rootDir) {
      await rm(this.rootDir, { recursive: true, force: true });
    }
  }

  /**
   * Creates a file under the root, with its parent folders.
   * @param path - Virtual path, e.g. `/inbox/a.hl7`.
   * @param content - The content.
   * @param options - `mtime`: a modification time to set (e.g. in the past, for an old enough file).
   */
  async put(path: string, content: string | Buffer, options?: { mtime?: Date }): Promise<void> {
    const real = this.local(path);
    await mkdir(dirname(real), { recursive: true });
    await writeFile(real, content);
    if (options?.mtime) {
      await utimes(real, options.mtime, options.mtime);
    }
  }

  /**
   * @param path - Virtual path of a folder.
   * @returns The names of the regular files in it, sorted; [] when the folder does not exist.
   */
  async list(path: string): Promise<string[]> {
    try {
      const entries = await readdir(this.local(path), { withFileTypes: true });
      return entries
        .filter((e) => e.isFile())
        .map((e) => e.name)
        .sort();
    } catch (err) {
      if (isMissing(err)) {
        return [];
      }
      throw err;
    }
  }

  /**
   * @param path - Virtual path of a file.
   * @returns Its content, or undefined when it does not exist.
   */
  async read(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.local(path));
    } catch (err) {
      if (isMissing(err)) {
        return undefined;
      }
      throw err;
    }
  }

  private local(path: string): string {
    const virtual = normalize(path);
    if (virtual === undefined) {
      throw new Error(`${path} escapes the SFTP root`);
    }
    return join(this.root, virtual);
  }

  private started<T>(value: T | undefined): T {
    if (value === undefined) {
      throw new Error('SFTP test server not started');
    }
    return value;
  }

  private accept(conn: Connection): void {
    this.connections.add(conn);
    conn.on('close', () => this.connections.delete(conn));
    // A client dropping the connection is an error for ssh2; for a test server it is just gone.
    conn.on('error', () => undefined);
    let user: string | undefined;
    let failed = false;
    conn.on('authentication', (ctx) => {
      if (this.verify(ctx)) {
        // A public key without signature is only the client asking whether the key would do.
        if (ctx.method !== 'publickey' || ctx.signature) {
          user = ctx.username;
        }
        ctx.accept();
        return;
      }
      // Clients start with `none` to learn the methods: that is not a failed login.
      if (ctx.method !== 'none' && !failed) {
        failed = true;
        this.failures += 1;
      }
      ctx.reject(['password', 'publickey']);
    });
    conn.on('ready', () => {
      conn.on('session', (acceptSession) => {
        acceptSession().on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          const session = new SftpSession(sftp, this.root, user ?? '', this.operations);
          this.sessions.add(session);
          sftp.once('close', () => this.sessions.delete(session));
        });
      });
    });
  }

  private verify(ctx: AuthContext): boolean {
    const candidates = this.users.filter((u) => u.username === ctx.username);
    if (ctx.method === 'password') {
      return candidates.some((u) => u.password !== undefined && u.password === ctx.password);
    }
    if (ctx.method === 'publickey') {
      return candidates.some(
        (u) =>
          u.key !== undefined &&
          u.key.getPublicSSH().equals(ctx.key.data) &&
          (!ctx.signature || (ctx.blob !== undefined && u.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true))
      );
    }
    return false;
  }

  /** Waits a moment for disconnected clients to close their sockets, then destroys what is left. */
  private async hangUp(): Promise<void> {
    const open = [...this.sockets];
    if (open.length === 0) {
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(open.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())))),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, STOP_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    for (const socket of this.sockets) {
      socket.destroy();
    }
  }
}

/**
 * Generates a key pair for a test user.
 * @returns An ed25519 key pair in OpenSSH format: the private key for the client, the public key
 * (`ssh-ed25519 AAAA…`) for {@link SftpTestUser.publicKey}.
 */
export function generateUserKeyPair(): { privateKey: string; publicKey: string } {
  return generateEd25519('sftp-test-user');
}

/**
 * ssh2 1.17's keygen strips leading zero bytes from the ed25519 public key, so about one pair in
 * 256 is malformed and refused by parseKey (mscdex/ssh2#1390): generate until a pair parses.
 * @param comment - Key comment.
 * @returns A valid key pair in OpenSSH format.
 */
function generateEd25519(comment: string): { privateKey: string; publicKey: string } {
  for (let attempt = 0; attempt < 32; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    const publicKey = utils.parseKey(pair.public);
    const privateKey = utils.parseKey(pair.private);
    if (!(publicKey instanceof Error) && !(privateKey instanceof Error) && publicKey.getPublicSSH().equals(privateKey.getPublicSSH())) {
      return { privateKey: pair.private, publicKey: pair.public };
    }
  }
  throw new Error('Could not generate a valid ed25519 key pair');
}

/** An SFTP request refused with a given status. */
class SftpStatusError extends Error {
  readonly code: number;

  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

type OpenHandle = { readonly kind: 'file'; readonly path: string; readonly file: FileHandle } | { readonly kind: 'dir'; readonly path: string; readonly names: string[] };

/** One client's SFTP subsystem: answers its requests from the served directory. */
class SftpSession {
  private readonly sftp: SFTPWrapper;
  private readonly root: string;
  private readonly user: string;
  private readonly operations: SftpOperation[];
  private readonly handles = new Map<number, OpenHandle>();
  private nextHandle = 0;
  private closed = false;

  constructor(sftp: SFTPWrapper, root: string, user: string, operations: SftpOperation[]) {
    this.sftp = sftp;
    this.root = root;
    this.user = user;
    this.operations = operations;
    sftp.on('error', () => undefined);
    sftp.on('close', () => void this.closeAll());
    sftp.on('OPEN', (id, path, flags, attrs) => this.run(id, () => this.open(id, path, flags, attrs)));
    sftp.on('READ', (id, handle, offset, length) => this.run(id, () => this.read(id, handle, offset, length)));
    sftp.on('WRITE', (id, handle, offset, data) => this.run(id, () => this.write(id, handle, offset, data)));
    sftp.on('FSTAT', (id, handle) => this.run(id, () => this.fstat(id, handle)));
    sftp.on('FSETSTAT', (id, handle, attrs) => this.run(id, () => this.fsetstat(id, handle, attrs)));
    sftp.on('CLOSE', (id, handle) => this.run(id, () => this.close(id, handle)));
    sftp.on('OPENDIR', (id, path) => this.run(id, () => this.opendir(id, path)));
    sftp.on('READDIR', (id, handle) => this.run(id, () => this.readdir(id, handle)));
    sftp.on('STAT', (id, path) => this.run(id, () => this.stat(id, 'STAT', path)));
    sftp.on('LSTAT', (id, path) => this.run(id, () => this.stat(id, 'LSTAT', path)));
    sftp.on('SETSTAT', (id, path, attrs) => this.run(id, () => this.setstat(id, path, attrs)));
    sftp.on('REMOVE', (id, path) => this.run(id, () => this.remove(id, 'REMOVE', path)));
    sftp.on('RMDIR', (id, path) => this.run(id, () => this.remove(id, 'RMDIR', path)));
    sftp.on('MKDIR', (id, path, attrs) => this.run(id, () => this.mkdir(id, path, attrs)));
    sftp.on('RENAME', (id, from, to) => this.run(id, () => this.rename(id, from, to)));
    sftp.on('REALPATH', (id, path) => this.run(id, () => this.realpath(id, path)));
  }

  /** Closes the files this session left open. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const files = [...this.handles.values()].filter((h) => h.kind === 'file');
    this.handles.clear();
    await Promise.all(files.map((h) => h.file.close().catch(() => undefined)));
  }

  private run(id: number, handler: () => Promise<void>): void {
    handler().catch((err: unknown) => {
      try {
        this.sftp.status(id, statusOf(err), (err as Error).message);
      } catch {
        // The channel closed while the request ran: nobody is left to answer.
      }
    });
  }

  private record(op: string, path?: string, path2?: string, flags?: string): void {
    this.operations.push({ op, path, path2, flags, user: this.user });
  }

  /** Records a request on paths and resolves them under the root, refusing escapes. */
  private resolve(op: string, ...paths: [string] | [string, string]): { virtual: string; real: string }[] {
    const virtuals = paths.map(normalize);
    this.record(op, virtuals[0] ?? paths[0], paths.length > 1 ? (virtuals[1] ?? paths[1]) : undefined);
    return virtuals.map((virtual) => {
      if (virtual === undefined) {
        throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, 'path escapes the root');
      }
      return { virtual, real: join(this.root, virtual) };
    });
  }

  private handle(op: string, handle: Buffer): OpenHandle {
    const found = handle.length === 4 ? this.handles.get(handle.readUInt32BE(0)) : undefined;
    this.record(op, found?.path);
    if (!found) {
      throw new SftpStatusError(STATUS_CODE.FAILURE, 'invalid handle');
    }
    return found;
  }

  private file(op: string, handle: Buffer): FileHandle {
    const found = this.handle(op, handle);
    if (found.kind !== 'file') {
      throw new SftpStatusError(STATUS_CODE.FAILURE, 'not a file handle');
    }
    return found.file;
  }

  private addHandle(id: number, open: OpenHandle): void {
    const key = this.nextHandle++;
    this.handles.set(key, open);
    const handle = Buffer.alloc(4);
    handle.writeUInt32BE(key, 0);
    this.sftp.handle(id, handle);
  }

  private checkHandleLimit(): void {
    if (this.handles.size >= MAX_HANDLES) {
      throw new SftpStatusError(STATUS_CODE.FAILURE, 'too many open handles');
    }
  }

  private async open(id: number, path: string, flags: number, attrs: Partial<Attributes>): Promise<void> {
    const mode = utils.sftp.flagsToString(flags);
    const virtual = normalize(path);
    this.record('OPEN', virtual ?? path, undefined, mode ?? String(flags));
    if (virtual === undefined) {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, 'path escapes the root');
    }
    if (mode === null) {
      throw new SftpStatusError(STATUS_CODE.OP_UNSUPPORTED, `open flags ${flags}`);
    }
    this.checkHandleLimit();
    const file = await open(join(this.root, virtual), mode, typeof attrs.mode === 'number' ? attrs.mode & 0o7777 : 0o644);
    const isDirectory = (await file.stat()).isDirectory();
    // A session closed while the file was opening would never close it.
    if (isDirectory || this.closed) {
      await file.close();
      throw new SftpStatusError(STATUS_CODE.FAILURE, isDirectory ? 'is a directory' : 'session closed');
    }
    this.addHandle(id, { kind: 'file', path: virtual, file });
  }

  private async read(id: number, handle: Buffer, offset: number, length: number): Promise<void> {
    const file = this.file('READ', handle);
    const buffer = Buffer.alloc(Math.min(length, MAX_READ));
    const { bytesRead } = await file.read(buffer, 0, buffer.length, offset);
    if (bytesRead === 0) {
      this.sftp.status(id, STATUS_CODE.EOF);
    } else {
      this.sftp.data(id, buffer.subarray(0, bytesRead));
    }
  }

  private async write(id: number, handle: Buffer, offset: number, data: Buffer): Promise<void> {
    const file = this.file('WRITE', handle);
    let written = 0;
    while (written < data.length) {
      written += (await file.write(data, written, data.length - written, offset + written)).bytesWritten;
    }
    this.sftp.status(id, STATUS_CODE.OK);
  }

  private async fstat(id: number, handle: Buffer): Promise<void> {
    this.sftp.attrs(id, toAttributes(await this.file('FSTAT', handle).stat()));
  }

  private async fsetstat(id: number, handle: Buffer, attrs: Partial<Attributes>): Promise<void> {
    const file = this.file('FSETSTAT', handle);
    await applyAttributes(attrs, {
      size: (size) => file.truncate(size),
      mode: (mode) => file.chmod(mode),
      times: (atime, mtime) => file.utimes(atime, mtime),
    });
    this.sftp.status(id, STATUS_CODE.OK);
  }

  private async setstat(id: number, path: string, attrs: Partial<Attributes>): Promise<void> {
    const [{ real }] = this.resolve('SETSTAT', path);
    await applyAttributes(attrs, {
      size: (size) => truncate(real, size),
      mode: (mode) => chmod(real, mode),
      times: (atime, mtime) => utimes(real, atime, mtime),
    });
    this.sftp.status(id, STATUS_CODE.OK);
  }

  private async close(id: number, handle: Buffer): Promise<void> {
    const found = this.handle('CLOSE', handle);
    this.handles.delete(handle.readUInt32BE(0));
    if (found.kind === 'file') {
      await found.file.close();
    }
    this.sftp.status(id, STATUS_CODE.OK);
  }

  private async opendir(id: number, path: string): Promise<void> {
    const [{ virtual, real }] = this.resolve('OPENDIR', path);
    this.checkHandleLimit();
    // The listing is taken once, when the folder is opened, as `ls` sees a folder at one moment.
    const names = (await readdir(real)).sort();
    this.addHandle(id, { kind: 'dir', path: virtual, names });
  }

  private async readdir(id: number, handle: Buffer): Promise<void> {
    const found = this.handle('READDIR', handle);
    if (found.kind !== 'dir') {
      throw new SftpStatusError(STATUS_CODE.FAILURE, 'not a directory handle');
    }
    const real = join(this.root, found.path);
    const entries: FileEntry[] = [];
    while (entries.length === 0 && found.names.length > 0) {
      for (const filename of found.names.splice(0, READDIR_BATCH)) {
        // A file removed since the folder was opened is left out, as readdir(3) would.
        const st = await lstat(join(real, filename)).catch(() => undefined);
        if (st) {
          entries.push({ filename, longname: longname(filename, st), attrs: toAttributes(st) });
        }
      }
    }
    if (entries.length === 0) {
      this.sftp.status(id, STATUS_CODE.EOF);
    } else {
      this.sftp.name(id, entries);
    }
  }

  private async stat(id: number, op: 'STAT' | 'LSTAT', path: string): Promise<void> {
    const [{ real }] = this.resolve(op, path);
    this.sftp.attrs(id, toAttributes(op === 'STAT' ? await stat(real) : await lstat(real)));
  }

  private async remove(id: number, op: 'REMOVE' | 'RMDIR', path: string): Promise<void> {
    const [{ virtual, real }] = this.resolve(op, path);
    if (virtual === '/') {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, 'the root cannot be removed');
    }
    await (op === 'REMOVE' ? unlink(real) : rmdir(real));
    this.sftp.status(id, STATUS_CODE.OK);
  }

  private async mkdir(id: number, path: string, attrs: Partial<Attributes>): Promise<void> {
    const [{ real }] = this.resolve('MKDIR', path);
    await mkdir(real, { mode: typeof attrs.mode === 'number' ? attrs.mode & 0o7777 : 0o755 });
    this.sftp.status(id, STATUS_CODE.OK);
  }

  private async rename(id: number, from: string, to: string): Promise<void> {
    const [source, target] = this.resolve('RENAME', from, to);
    if (source.virtual === '/' || target.virtual === '/') {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, 'the root cannot be renamed');
    }
    // OpenSSH's RENAME (without the posix-rename extension) never replaces an existing target.
    if (await lstat(target.real).then(() => true, (err: unknown) => (isMissing(err) ? false : Promise.reject(err)))) {
      throw new SftpStatusError(STATUS_CODE.FAILURE, 'target exists');
    }
    await rename(source.real, target.real);
    this.sftp.status(id, STATUS_CODE.OK);
  }

  private async realpath(id: number, path: string): Promise<void> {
    const [{ virtual, real }] = this.resolve('REALPATH', path);
    // As OpenSSH: the last component may be missing, the folders above it may not.
    await lstat(real).catch((err: unknown) => (isMissing(err) ? stat(dirname(real)) : Promise.reject(err)));
    this.sftp.name(id, [{ filename: virtual, longname: virtual, attrs: {} as Attributes }]);
  }
}

/**
 * Resolves a client path against the virtual root (relative paths start at `/`, the session's
 * working directory).
 * @param path - The path the client sent.
 * @returns The normalized absolute virtual path, or undefined when `..` climbs above the root.
 */
function normalize(path: string): string | undefined {
  const parts: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '..') {
      if (parts.pop() === undefined) {
        return undefined;
      }
    } else if (segment !== '' && segment !== '.') {
      parts.push(segment);
    }
  }
  return `/${parts.join('/')}`;
}

/**
 * @param text - An OpenSSH public key line.
 * @returns The parsed key.
 */
function parsePublicKey(text: string): ParsedKey {
  const key = utils.parseKey(text);
  if (key instanceof Error) {
    throw new Error(`Invalid public key: ${key.message}`);
  }
  return key;
}

/**
 * @param st - File status.
 * @returns SFTP attributes (times in whole seconds, as the protocol carries them).
 */
function toAttributes(st: Stats): Attributes {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    atime: Math.floor(st.atimeMs / 1000),
    mtime: Math.floor(st.mtimeMs / 1000),
  };
}

/**
 * Applies the attributes a SETSTAT or FSETSTAT carries (only those present).
 * @param attrs - The attributes.
 * @param apply - How to change size, permissions and times of the file.
 */
async function applyAttributes(
  attrs: Partial<Attributes>,
  apply: { size(size: number): Promise<void>; mode(mode: number): Promise<void>; times(atime: number, mtime: number): Promise<void> }
): Promise<void> {
  if (typeof attrs.size === 'number') {
    await apply.size(attrs.size);
  }
  if (typeof attrs.mode === 'number') {
    await apply.mode(attrs.mode & 0o7777);
  }
  if (typeof attrs.atime === 'number' && typeof attrs.mtime === 'number') {
    await apply.times(attrs.atime, attrs.mtime);
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const SIX_MONTHS_MS = 182 * 24 * 3600_000;

/**
 * The `ls -l` line OpenSSH sends with each directory entry; ssh2-sftp-client reads the entry's
 * type and permissions from its first ten characters.
 * @param name - Entry name.
 * @param st - Its status (not following links).
 * @returns The line, e.g. `-rw-r--r--   1 1000     1000          42 Mar  5 14:02 a.hl7`.
 */
function longname(name: string, st: Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : '-';
  let permissions = '';
  for (let bit = 8; bit >= 0; bit--) {
    permissions += st.mode & (1 << bit) ? 'rwx'[(8 - bit) % 3] : '-';
  }
  const m = st.mtime;
  const day = `${MONTHS[m.getUTCMonth()]} ${String(m.getUTCDate()).padStart(2)}`;
  // As ls: the time of day for recent files, the year for older ones.
  const when =
    Math.abs(Date.now() - st.mtimeMs) < SIX_MONTHS_MS
      ? `${String(m.getUTCHours()).padStart(2, '0')}:${String(m.getUTCMinutes()).padStart(2, '0')}`
      : ` ${m.getUTCFullYear()}`;
  return `${type}${permissions} ${String(st.nlink).padStart(3)} ${String(st.uid).padEnd(8)} ${String(st.gid).padEnd(8)} ${String(st.size).padStart(8)} ${day} ${when} ${name}`;
}

/**
 * @param err - What a request threw.
 * @returns The SFTP status for it, mapping fs errors as OpenSSH does.
 */
function statusOf(err: unknown): number {
  if (err instanceof SftpStatusError) {
    return err.code;
  }
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ELOOP':
      return STATUS_CODE.NO_SUCH_FILE;
    case 'EACCES':
    case 'EPERM':
      return STATUS_CODE.PERMISSION_DENIED;
    default:
      return STATUS_CODE.FAILURE;
  }
}

/**
 * @param err - An fs error.
 * @returns Whether it says the path does not exist.
 */
function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}
