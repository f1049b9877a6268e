import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateUserKeyPair, SftpTestServer } from './sftp-server.ts';

const bobKeys = generateUserKeyPair();
const server = new SftpTestServer({
  users: [
    { username: 'alice', password: 'alice-secret' },
    { username: 'bob', publicKey: bobKeys.publicKey },
    { username: 'carol', password: 'carol-secret' },
  ],
});

/** A client with ssh2-sftp-client's global listeners silenced (they log every end and close). */
function newClient(): SftpClient {
  const quiet = (): void => undefined;
  return new SftpClient('test', { error: quiet, end: quiet, close: quiet });
}

/**
 * Connects to a server.
 * @param client - The client.
 * @param target - The server.
 * @param login - Username and password or private key, and other ssh2 options.
 */
async function connectTo(client: SftpClient, target: SftpTestServer, login: SftpClient.ConnectOptions): Promise<void> {
  // ssh2 leaves Nagle on: each request would then wait ~40 ms for a delayed ACK on loopback.
  const sock = connect({ host: target.host, port: target.port, noDelay: true });
  await client.connect({ sock, readyTimeout: 3_000, ...login });
}

/**
 * Connects, runs the body and always disconnects.
 * @param login - Username and password or private key, and other ssh2 options.
 * @param body - What to do on the connection.
 * @returns What the body returns.
 */
async function withClient<T>(login: SftpClient.ConnectOptions, body: (client: SftpClient) => Promise<T>): Promise<T> {
  const client = newClient();
  await connectTo(client, server, login);
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

const alice = { username: 'alice', password: 'alice-secret' };

describe('SftpTestServer', { timeout: 5_000 }, () => {
  beforeAll(async () => {
    await server.start();
  });

  afterAll(async () => {
    await server.stop();
  });

  it('accepts a password login and presents a stable host key', async () => {
    let presented: string | undefined;
    const cwd = await withClient(
      {
        ...alice,
        hostVerifier: (key: Buffer) => {
          presented = `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
          return true;
        },
      },
      (client) => client.cwd()
    );
    expect(cwd).toBe('/');
    expect(presented).toBe(server.hostKeySha256);
  });

  it('accepts a public key login', async () => {
    expect(bobKeys.publicKey).toMatch(/^ssh-ed25519 /);
    const listing = await withClient({ username: 'bob', privateKey: bobKeys.privateKey }, (client) => client.list('/'));
    expect(Array.isArray(listing)).toBe(true);
  });

  it('refuses a wrong password, an unknown key and an unknown user, and counts them', async () => {
    const before = server.authFailures;
    await expect(withClient({ username: 'alice', password: 'wrong' }, async () => undefined)).rejects.toThrow(/authentication/i);
    await expect(withClient({ username: 'bob', privateKey: generateUserKeyPair().privateKey }, async () => undefined)).rejects.toThrow(/authentication/i);
    await expect(withClient({ username: 'mallory', password: 'alice-secret' }, async () => undefined)).rejects.toThrow(/authentication/i);
    expect(server.authFailures).toBe(before + 3);
  });

  it('lists names, types, sizes and modification times', async () => {
    const old = new Date('2020-01-02T03:04:05Z');
    await server.put('/list/old.hl7', 'MSH|old', { mtime: old });
    await server.put('/list/new.hl7', 'MSH|newer');
    await server.put('/list/sub/inner.txt', 'x');
    const listing = await withClient(alice, (client) => client.list('/list'));
    const byName = new Map(listing.map((f) => [f.name, f]));
    expect([...byName.keys()].sort()).toEqual(['new.hl7', 'old.hl7', 'sub']);
    expect(byName.get('old.hl7')).toMatchObject({ type: '-', size: 7, modifyTime: old.getTime() });
    expect((byName.get('old.hl7') as { longname?: string } | undefined)?.longname).toMatch(/^-rw.* Jan  2  2020 old\.hl7$/);
    expect(byName.get('new.hl7')).toMatchObject({ type: '-', size: 9 });
    expect(Math.abs((byName.get('new.hl7')?.modifyTime ?? 0) - Date.now())).toBeLessThan(60_000);
    expect(byName.get('sub')?.type).toBe('d');
    expect(byName.get('old.hl7')?.rights.user).toContain('r');
    expect(await server.list('/list')).toEqual(['new.hl7', 'old.hl7']);
    expect(await server.list('/absent')).toEqual([]);
  });

  it('stats files and tells whether they exist', async () => {
    await server.put('/stat/a.hl7', 'abc', { mtime: new Date('2021-06-01T00:00:00Z') });
    await withClient(alice, async (client) => {
      expect(await client.exists('/stat/a.hl7')).toBe('-');
      expect(await client.exists('/stat')).toBe('d');
      expect(await client.exists('/stat/missing.hl7')).toBe(false);
      const attrs = await client.stat('/stat/a.hl7');
      expect(attrs).toMatchObject({ size: 3, isFile: true, modifyTime: Date.parse('2021-06-01T00:00:00Z') });
    });
  });

  it('returns file content, small and large', async () => {
    const large = Buffer.alloc(300_000);
    for (let i = 0; i < large.length; i++) {
      large[i] = (i * 31) % 251;
    }
    await server.put('/get/small.hl7', 'MSH|^~\\&|LAB');
    await server.put('/get/large.bin', large);
    const local = await mkdtemp(join(tmpdir(), 'sftp-get-'));
    try {
      await withClient(alice, async (client) => {
        expect((await client.get('/get/small.hl7')) as Buffer).toEqual(Buffer.from('MSH|^~\\&|LAB'));
        expect(((await client.get('/get/large.bin')) as Buffer).equals(large)).toBe(true);
        await client.fastGet('/get/large.bin', join(local, 'large.bin'));
        await expect(client.get('/get/missing.hl7')).rejects.toThrow(/No such file/i);
      });
      expect((await readFile(join(local, 'large.bin'))).equals(large)).toBe(true);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  it('takes an upload and renames it into another folder', async () => {
    await withClient(alice, async (client) => {
      await client.mkdir('/outbox', true);
      await client.mkdir('/archive', true);
      await client.put(Buffer.from('MSH|upload'), '/outbox/upload.hl7.tmp');
      await client.put(Buffer.from('MSH|replaced'), '/outbox/upload.hl7.tmp');
      await client.rename('/outbox/upload.hl7.tmp', '/archive/upload.hl7');
    });
    expect(await server.list('/outbox')).toEqual([]);
    expect((await server.read('/archive/upload.hl7'))?.toString()).toBe('MSH|replaced');
  });

  it('refuses to rename onto an existing file', async () => {
    await server.put('/clash/a.hl7', 'A');
    await server.put('/clash/b.hl7', 'B');
    await withClient(alice, async (client) => {
      await expect(client.rename('/clash/a.hl7', '/clash/b.hl7')).rejects.toMatchObject({ code: 4 });
    });
    expect((await server.read('/clash/a.hl7'))?.toString()).toBe('A');
    expect((await server.read('/clash/b.hl7'))?.toString()).toBe('B');
  });

  it('deletes files', async () => {
    await server.put('/delete/a.hl7', 'A');
    await withClient(alice, async (client) => {
      await client.delete('/delete/a.hl7');
      await expect(client.delete('/delete/a.hl7')).rejects.toMatchObject({ code: 2 });
      await client.delete('/delete/a.hl7', true);
    });
    expect(await server.read('/delete/a.hl7')).toBeUndefined();
  });

  it('creates folders recursively and removes them', async () => {
    await withClient(alice, async (client) => {
      await client.mkdir('/deep/er/still', true);
      expect((await stat(join(server.root, 'deep/er/still'))).isDirectory()).toBe(true);
      await expect(client.mkdir('/nowhere/x')).rejects.toThrow(/Bad path/);
      await client.put(Buffer.from('x'), '/deep/er/file.txt');
      await client.rmdir('/deep/er/still');
      await client.rmdir('/deep', true);
    });
    await expect(stat(join(server.root, 'deep'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses paths that escape the root', async () => {
    const outside = join(dirname(server.root), 'escaped.txt');
    await server.put('/inside.txt', 'in');
    await withClient(alice, async (client) => {
      await expect(client.list('/..')).rejects.toMatchObject({ code: 3 });
      await expect(client.get('/../../etc/passwd')).rejects.toMatchObject({ code: 3 });
      await expect(client.put(Buffer.from('x'), '/../escaped.txt')).rejects.toMatchObject({ code: 3 });
      await expect(client.rename('/inside.txt', '/a/../../escaped.txt')).rejects.toMatchObject({ code: 3 });
      // `..` that stays inside is fine.
      expect(((await client.get('/list/../inside.txt')) as Buffer).toString()).toBe('in');
    });
    await expect(stat(outside)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(server.put('/../x', 'x')).rejects.toThrow(/escapes/);
  });

  it('records the operations served, by user', async () => {
    await server.put('/ops/a.hl7', 'A');
    await withClient({ username: 'carol', password: 'carol-secret' }, (client) => client.list('/ops'));
    const listed = server.operations.filter((o) => o.user === 'carol');
    expect(listed.map((o) => o.op)).toEqual(['OPENDIR', 'READDIR', 'READDIR', 'CLOSE']);
    expect(listed[0]).toMatchObject({ path: '/ops' });
    // Listing alone read nothing.
    expect(listed.some((o) => o.op === 'OPEN' || o.op === 'READ')).toBe(false);

    await withClient({ username: 'carol', password: 'carol-secret' }, async (client) => {
      await client.get('/ops/a.hl7');
      await client.rename('/ops/a.hl7', '/ops/b.hl7');
    });
    const ops = server.operations.filter((o) => o.user === 'carol');
    expect(ops).toContainEqual(expect.objectContaining({ op: 'OPEN', path: '/ops/a.hl7', flags: 'r' }));
    expect(ops).toContainEqual(expect.objectContaining({ op: 'READ', path: '/ops/a.hl7' }));
    expect(ops).toContainEqual(expect.objectContaining({ op: 'RENAME', path: '/ops/a.hl7', path2: '/ops/b.hl7' }));
  });

  it('disconnects clients and removes its directory on stop', async () => {
    const own = await new SftpTestServer({ users: [alice] }).start();
    const root = own.root;
    await own.put('/a.txt', 'a');
    const client = newClient();
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    await connectTo(client, own, alice);
    // A handle left open: stop() must still finish (the stream then fails, as the connection is gone).
    const stream = client.createReadStream('/a.txt');
    stream.on('error', () => undefined);
    await new Promise((resolve) => stream.once('open', resolve));
    await own.stop();
    await closed;
    await expect(stat(root)).rejects.toMatchObject({ code: 'ENOENT' });
    await client.end();
  });
});
