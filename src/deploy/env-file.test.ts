import { createPrivateKey, createPublicKey, createSign, createVerify } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { describe, expect, test } from 'vitest';
import { DOCKER_ENV_KEYS, generateDockerEnv, initDockerEnv, parseEnvFile, renderEnvFile } from './env-file.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('parseEnvFile', () => {
  test('reads bare, quoted, exported and commented forms', () => {
    const text = [
      '# comment',
      '',
      'A=plain',
      'B = spaced # trailing comment',
      'export C=exported',
      "D='single $NOT_EXPANDED # not a comment'",
      'E="double\\nline \\"quoted\\" \\\\ back"',
      'F="real',
      'newline"',
      'G=',
      'H=a#b',
      'not an assignment',
      'A=last wins',
    ].join('\n');
    const env = parseEnvFile(text);
    expect(Object.fromEntries(env)).toEqual({
      A: 'last wins',
      B: 'spaced',
      C: 'exported',
      D: 'single $NOT_EXPANDED # not a comment',
      E: 'double\nline "quoted" \\ back',
      F: 'real\nnewline',
      G: '',
      H: 'a#b',
    });
  });

  test('handles CRLF line endings and a BOM', () => {
    const env = parseEnvFile('\uFEFFA=1\r\nB="x\\ny"\r\n# c\r\nC=3\r\n');
    expect(Object.fromEntries(env)).toEqual({ A: '1', B: 'x\ny', C: '3' });
  });
});

describe('renderEnvFile', () => {
  test('round-trips multi-line values as one double-quoted line', () => {
    const pem = '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIabc+/=\nxyz\n-----END ENCRYPTED PRIVATE KEY-----';
    const text = renderEnvFile('', { KEY: pem });
    expect(text).toBe('KEY="-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIabc+/=\\nxyz\\n-----END ENCRYPTED PRIVATE KEY-----"\n');
    expect(text.split('\n')).toHaveLength(2);
    expect(parseEnvFile(text).get('KEY')).toBe(pem);
    expect(parseEnv(text).KEY).toBe(pem);
  });

  test('round-trips values that need quoting', () => {
    const values: Record<string, string> = {
      EMPTY: '',
      URL: 'http://localhost:8103/',
      B64: 'abc+/def==',
      SPACES: 'two words',
      HASH: 'a #b',
      DOLLAR: 'pa$$word$X',
      DQUOTE: 'say "hi"',
      SQUOTE_NL: "it's\nmulti",
    };
    const text = renderEnvFile('', values);
    expect(Object.fromEntries(parseEnvFile(text))).toEqual(values);
    expect(text).toContain("DOLLAR='pa$$word$X'");
    // Node's own .env parser (node --env-file, process.loadEnvFile) reads the same values.
    expect(parseEnv(text)).toEqual(values);
    expect(text).toContain('URL=http://localhost:8103/\n');
  });

  test('rejects values no .env reader would read back the same way', () => {
    expect(() => renderEnvFile('', { X: 'back\\slash' })).toThrow(RangeError);
    expect(() => renderEnvFile('', { X: "it's $HOME\nx" })).toThrow(RangeError);
    expect(() => renderEnvFile('', { X: 'a ${HOME} b' })).toThrow(RangeError);
    expect(() => renderEnvFile('', { 'BAD-NAME': 'x' })).toThrow(RangeError);
  });

  test('updates in place, keeps comments and order, appends new keys', () => {
    const original = [
      '# Database',
      'POSTGRES_PASSWORD=   # generated',
      '',
      '# Signing key',
      'MEDPLUM_SIGNING_KEY="old',
      'multi-line"',
      'KEEP=me # note',
      'export TOKEN=old',
      '# end',
    ].join('\n');
    const text = renderEnvFile(original, {
      POSTGRES_PASSWORD: 'secret1',
      MEDPLUM_SIGNING_KEY: 'new\nkey',
      TOKEN: 'new',
      ADDED: 'value',
    });
    expect(text).toBe(
      [
        '# Database',
        'POSTGRES_PASSWORD=secret1   # generated',
        '',
        '# Signing key',
        'MEDPLUM_SIGNING_KEY="new\\nkey"',
        'KEEP=me # note',
        'export TOKEN=new',
        '# end',
        'ADDED=value',
        '',
      ].join('\n')
    );
    expect(Object.fromEntries(parseEnvFile(text))).toEqual({
      POSTGRES_PASSWORD: 'secret1',
      MEDPLUM_SIGNING_KEY: 'new\nkey',
      KEEP: 'me',
      TOKEN: 'new',
      ADDED: 'value',
    });
  });

  test('leaves the text unchanged when there is nothing to update', () => {
    const original = '# c\nA=1\nB="x\\ny" # note\n';
    expect(renderEnvFile(original, {})).toBe(original);
    expect(renderEnvFile(original, { A: '1' })).toBe(original);
  });
});

describe('generateDockerEnv', () => {
  test('creates every secret a fresh stack needs', () => {
    const env = generateDockerEnv();
    expect(Object.keys(env)).toEqual([...DOCKER_ENV_KEYS]);
    expect(env.POSTGRES_PASSWORD).toMatch(/^[0-9a-f]{64}$/);
    expect(env.REDIS_PASSWORD).toMatch(/^[0-9a-f]{64}$/);
    expect(env.POSTGRES_PASSWORD).not.toBe(env.REDIS_PASSWORD);
    expect(env.MEDPLUM_BASE_URL).toBe('http://localhost:8103/');
    expect(env.MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID).toMatch(UUID_RE);
    expect(env.MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(env.MEDPLUM_SUPER_ADMIN_CLIENT_ID).toBe(env.MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID);
    expect(env.MEDPLUM_SUPER_ADMIN_CLIENT_SECRET).toBe(env.MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_SECRET);
    expect(env.MEDPLUM_SIGNING_KEY_ID).toMatch(/^hub-[0-9a-f]{16}$/);
    expect(env.MEDPLUM_SIGNING_KEY).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----\n[\s\S]+\n-----END ENCRYPTED PRIVATE KEY-----$/);
  });

  test('the signing key decrypts with the passphrase, as the Medplum server loads it', () => {
    const env = generateDockerEnv();
    // Read back through the file format, exactly as the value travels via .env.
    const roundTripped = parseEnvFile(renderEnvFile('', env));
    const key = roundTripped.get('MEDPLUM_SIGNING_KEY') as string;
    const passphrase = roundTripped.get('MEDPLUM_SIGNING_KEY_PASSPHRASE') as string;

    const privateKey = createPrivateKey({ key, format: 'pem', passphrase });
    expect(privateKey.asymmetricKeyType).toBe('rsa');
    expect(privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(() => createPrivateKey({ key, format: 'pem', passphrase: 'wrong' })).toThrow();
    expect(() => createPrivateKey({ key, format: 'pem' })).toThrow();

    // Sign and verify a URL the way the server's presign and storage routes do.
    const url = 'http://localhost:8103/storage/123/456?Expires=1';
    const signature = createSign('sha256').update(url).sign({ key, passphrase }, 'base64');
    const verified = createVerify('sha256').update(url).verify(createPublicKey(privateKey), signature, 'base64');
    expect(verified).toBe(true);
  });

  test('keeps values already present and fills only the missing ones', () => {
    const first = generateDockerEnv();
    const existing = new Map(Object.entries(first));
    existing.set('POSTGRES_PASSWORD', '');
    existing.delete('REDIS_PASSWORD');
    existing.set('MEDPLUM_BASE_URL', 'https://fhir.example.org/');
    const second = generateDockerEnv(existing);
    expect(second.POSTGRES_PASSWORD).toMatch(/^[0-9a-f]{64}$/);
    expect(second.POSTGRES_PASSWORD).not.toBe(first.POSTGRES_PASSWORD);
    expect(second.REDIS_PASSWORD).not.toBe(first.REDIS_PASSWORD);
    expect(second.MEDPLUM_BASE_URL).toBe('https://fhir.example.org/');
    for (const key of DOCKER_ENV_KEYS) {
      if (!['POSTGRES_PASSWORD', 'REDIS_PASSWORD', 'MEDPLUM_BASE_URL'].includes(key)) {
        expect(second[key], key).toBe(first[key]);
      }
    }
  });

  test('mirrors the super-admin client from whichever pair is present', () => {
    const id = '2f1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
    const fromDefault = generateDockerEnv(
      new Map([
        ['MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID', id],
        ['MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_SECRET', 's1'],
      ])
    );
    expect(fromDefault.MEDPLUM_SUPER_ADMIN_CLIENT_ID).toBe(id);
    expect(fromDefault.MEDPLUM_SUPER_ADMIN_CLIENT_SECRET).toBe('s1');
    const fromPlain = generateDockerEnv(
      new Map([
        ['MEDPLUM_SUPER_ADMIN_CLIENT_ID', id],
        ['MEDPLUM_SUPER_ADMIN_CLIENT_SECRET', 's2'],
      ])
    );
    expect(fromPlain.MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID).toBe(id);
    expect(fromPlain.MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_SECRET).toBe('s2');
  });

  test('rejects inconsistent existing values', () => {
    expect(() => generateDockerEnv(new Map([['MEDPLUM_SIGNING_KEY', 'pem']]))).toThrow(/set together/);
    expect(() => generateDockerEnv(new Map([['MEDPLUM_SIGNING_KEY_PASSPHRASE', 'p']]))).toThrow(/set together/);
    expect(() => generateDockerEnv(new Map([['MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID', 'not-a-uuid']]))).toThrow(
      /UUID/
    );
  });
});

describe('initDockerEnv', () => {
  async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'hub-env-'));
    try {
      await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  test('creates .env from .env.example with mode 0600', async () => {
    await withTempDir(async (dir) => {
      await writeFile(
        join(dir, '.env.example'),
        '# Postgres password\nPOSTGRES_PASSWORD=\n# Base URL\nMEDPLUM_BASE_URL=http://localhost:8103/\n# Agent\nMEDPLUM_AGENT_ID=\n'
      );
      const envPath = join(dir, '.env');
      const result = await initDockerEnv(envPath);
      expect(result.kept).toEqual(['MEDPLUM_BASE_URL']);
      expect([...result.created].sort()).toEqual(DOCKER_ENV_KEYS.filter((k) => k !== 'MEDPLUM_BASE_URL').sort());

      const text = await readFile(envPath, 'utf8');
      expect(text.startsWith('# Postgres password\nPOSTGRES_PASSWORD=')).toBe(true);
      expect(text).toContain('# Agent\nMEDPLUM_AGENT_ID=\n');
      const env = parseEnvFile(text);
      expect(env.get('POSTGRES_PASSWORD')).toMatch(/^[0-9a-f]{64}$/);
      expect(env.get('MEDPLUM_AGENT_ID')).toBe('');
      expect((await stat(envPath)).mode & 0o777).toBe(0o600);
    });
  });

  test('keeps existing values and comments, fills only what is missing, returns names only', async () => {
    await withTempDir(async (dir) => {
      const envPath = join(dir, '.env');
      await writeFile(envPath, '# mine\nPOSTGRES_PASSWORD=keepme\nMEDPLUM_CLIENT_ID=abc\n', { mode: 0o644 });
      const result = await initDockerEnv(envPath);
      expect(result.kept).toEqual(['POSTGRES_PASSWORD']);
      expect(result.created).toContain('REDIS_PASSWORD');
      expect(JSON.stringify(result)).not.toMatch(/[0-9a-f]{64}/);

      const text = await readFile(envPath, 'utf8');
      expect(text.startsWith('# mine\nPOSTGRES_PASSWORD=keepme\nMEDPLUM_CLIENT_ID=abc\n')).toBe(true);
      expect((await stat(envPath)).mode & 0o777).toBe(0o600);

      // A second run changes nothing.
      const again = await initDockerEnv(envPath);
      expect(again.created).toEqual([]);
      expect(await readFile(envPath, 'utf8')).toBe(text);
    });
  });
});
