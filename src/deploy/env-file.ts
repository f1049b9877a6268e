/**
 * Reading and writing the `.env` file shared by Docker Compose and the hub.
 *
 * The same file is read by docker-compose 1.29 (python-dotenv), Docker Compose v2
 * (compose-go), Node's `--env-file` / `process.loadEnvFile()` and {@link parseEnvFile}.
 * {@link renderEnvFile} therefore writes only forms that all four read the same way:
 *
 * - bare `KEY=value` when the value has only "safe" characters;
 * - `KEY='value'` (literal: no escapes, `$VAR` not expanded) when it has spaces, `#`, `$`
 *   or `"`;
 * - `KEY="line1\nline2"` for multi-line values such as a PEM key (`\n` is the only
 *   escape every reader decodes identically).
 *
 * Values that fit none of these (a backslash, a newline together with `$` or `"`, or
 * `${`, which python-dotenv expands even inside single quotes) are rejected rather than
 * written in a form some reader would misread. Generated secrets are hex and never hit
 * these cases.
 *
 * @module
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The Medplum server URL used when `.env` does not say otherwise. */
const DEFAULT_MEDPLUM_BASE_URL = 'http://localhost:8103/';

/** The variables {@link generateDockerEnv} fills in, in the order they are written. */
export const DOCKER_ENV_KEYS = [
  'POSTGRES_PASSWORD',
  'REDIS_PASSWORD',
  'MEDPLUM_BASE_URL',
  'MEDPLUM_SIGNING_KEY_ID',
  'MEDPLUM_SIGNING_KEY',
  'MEDPLUM_SIGNING_KEY_PASSPHRASE',
  'MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID',
  'MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_SECRET',
  'MEDPLUM_SUPER_ADMIN_CLIENT_ID',
  'MEDPLUM_SUPER_ADMIN_CLIENT_SECRET',
] as const;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ASSIGNMENT_RE = /^([ \t]*(?:export[ \t]+)?)([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=/;
const BARE_VALUE_RE = /^[A-Za-z0-9_.,:/@%+=~-]*$/;

interface Assignment {
  /** Offset of the start of the line holding the key. */
  start: number;
  /** Offset just past the value (closing quote included); a trailing comment is not part of it. */
  end: number;
  /** Leading whitespace and an optional `export ` kept when the value is rewritten. */
  prefix: string;
  key: string;
  value: string;
}

/**
 * Parses the text of a `.env` file.
 *
 * Understands blank lines, `#` comments, an optional `export ` prefix, bare values
 * (a ` #` starts a trailing comment), single-quoted literal values and double-quoted
 * values with `\n`, `\r`, `\t`, `\"`, `\\` and `\$` escapes. Quoted values may span
 * several lines. Lines that are not assignments are ignored. When a key occurs more
 * than once the last occurrence wins. No `${VAR}` interpolation is done.
 * @param text - The file content.
 * @returns The variables, in file order.
 */
export function parseEnvFile(text: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const assignment of scanEnvFile(text)) {
    result.set(assignment.key, assignment.value);
  }
  return result;
}

/**
 * Applies updates to the text of a `.env` file.
 *
 * Every existing assignment of an updated key is rewritten in place; everything else
 * (comments, blank lines, order, other keys, a comment after a value) is kept byte for
 * byte. Keys that do not occur yet are appended at the end, in the order given.
 * @param original - The current file content (may be empty).
 * @param updates - The keys to set and their new values.
 * @returns The new file content; {@link parseEnvFile} reads `updates` back unchanged.
 * @throws RangeError when a key is not a valid variable name or a value cannot be
 *   written in a form that every `.env` reader understands the same way.
 */
export function renderEnvFile(original: string, updates: Record<string, string>): string {
  const encoded = new Map<string, string>();
  for (const [key, value] of Object.entries(updates)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new RangeError(`Invalid environment variable name: ${JSON.stringify(key)}`);
    }
    encoded.set(key, encodeEnvValue(key, value));
  }

  const eol = original.includes('\r\n') ? '\r\n' : '\n';
  let out = '';
  let pos = 0;
  const seen = new Set<string>();
  for (const assignment of scanEnvFile(original)) {
    const value = encoded.get(assignment.key);
    if (value === undefined) {
      continue;
    }
    seen.add(assignment.key);
    out += original.slice(pos, assignment.start) + assignment.prefix + assignment.key + '=' + value;
    // Keep whatever followed the old value (a comment) separated from the new one.
    if (assignment.end < original.length && !/\s/.test(original[assignment.end])) {
      out += ' ';
    }
    pos = assignment.end;
  }
  out += original.slice(pos);

  const appended = [...encoded].filter(([key]) => !seen.has(key));
  if (appended.length > 0) {
    if (out.length > 0 && !out.endsWith('\n')) {
      out += eol;
    }
    for (const [key, value] of appended) {
      out += `${key}=${value}${eol}`;
    }
  }
  return out;
}

/**
 * Returns the secrets and settings a fresh Docker stack needs, keeping every value that
 * is already present (non-empty) in `existing`.
 *
 * Generated: random `POSTGRES_PASSWORD` and `REDIS_PASSWORD`; a UUID
 * `MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID` (the server requires a UUID, it becomes the
 * ClientApplication id) and a random secret, mirrored into
 * `MEDPLUM_SUPER_ADMIN_CLIENT_ID`/`_SECRET` (what `npm run bootstrap` logs in with);
 * `MEDPLUM_BASE_URL` defaulting to {@link DEFAULT_MEDPLUM_BASE_URL}; and an RSA-2048
 * signing key for presigned Binary URLs: `MEDPLUM_SIGNING_KEY` is a PKCS#8 PEM encrypted
 * with aes-256-cbc under the random `MEDPLUM_SIGNING_KEY_PASSPHRASE` (the server loads it
 * with `crypto.createPrivateKey({ key, passphrase })`), `MEDPLUM_SIGNING_KEY_ID` random.
 *
 * All random values are hex, so they need no quoting anywhere (URLs, shell, YAML).
 * @param existing - Variables already in `.env`, if any.
 * @returns A value for each of {@link DOCKER_ENV_KEYS}.
 * @throws Error when the existing values are inconsistent: a signing key without its
 *   passphrase (or the reverse), or a super-admin client id that is not a UUID.
 */
export function generateDockerEnv(existing?: Map<string, string>): Record<string, string> {
  const get = (key: string): string | undefined => {
    const value = existing?.get(key);
    return value !== undefined && value.trim() !== '' ? value : undefined;
  };
  const secret = (): string => randomBytes(32).toString('hex');

  const result: Record<string, string> = {};
  result.POSTGRES_PASSWORD = get('POSTGRES_PASSWORD') ?? secret();
  result.REDIS_PASSWORD = get('REDIS_PASSWORD') ?? secret();
  result.MEDPLUM_BASE_URL = get('MEDPLUM_BASE_URL') ?? DEFAULT_MEDPLUM_BASE_URL;

  const signingKey = get('MEDPLUM_SIGNING_KEY');
  const passphrase = get('MEDPLUM_SIGNING_KEY_PASSPHRASE');
  if ((signingKey === undefined) !== (passphrase === undefined)) {
    throw new Error(
      'MEDPLUM_SIGNING_KEY and MEDPLUM_SIGNING_KEY_PASSPHRASE must be set together; ' +
        'remove both from .env to generate a new pair'
    );
  }
  result.MEDPLUM_SIGNING_KEY_ID = get('MEDPLUM_SIGNING_KEY_ID') ?? `hub-${randomBytes(8).toString('hex')}`;
  if (signingKey !== undefined && passphrase !== undefined) {
    result.MEDPLUM_SIGNING_KEY = signingKey;
    result.MEDPLUM_SIGNING_KEY_PASSPHRASE = passphrase;
  } else {
    const newPassphrase = secret();
    const { privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: newPassphrase },
    });
    result.MEDPLUM_SIGNING_KEY = privateKey.trimEnd();
    result.MEDPLUM_SIGNING_KEY_PASSPHRASE = newPassphrase;
  }

  // The DEFAULT_ pair seeds the server; the plain pair is what bootstrap reads. Either
  // one may be the one already present (for example when .env was written by hand).
  const clientId =
    get('MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID') ?? get('MEDPLUM_SUPER_ADMIN_CLIENT_ID') ?? randomUUID();
  const clientSecret =
    get('MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_SECRET') ?? get('MEDPLUM_SUPER_ADMIN_CLIENT_SECRET') ?? secret();
  if (!UUID_RE.test(clientId)) {
    throw new Error('MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID must be a UUID (it becomes the ClientApplication id)');
  }
  result.MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_ID = clientId;
  result.MEDPLUM_DEFAULT_SUPER_ADMIN_CLIENT_SECRET = clientSecret;
  result.MEDPLUM_SUPER_ADMIN_CLIENT_ID = get('MEDPLUM_SUPER_ADMIN_CLIENT_ID') ?? clientId;
  result.MEDPLUM_SUPER_ADMIN_CLIENT_SECRET = get('MEDPLUM_SUPER_ADMIN_CLIENT_SECRET') ?? clientSecret;

  const ordered: Record<string, string> = {};
  for (const key of DOCKER_ENV_KEYS) {
    ordered[key] = result[key];
  }
  return ordered;
}

/**
 * Creates or completes the `.env` file for the Docker stack.
 *
 * Reads `envPath` if it exists; otherwise starts from `.env.example` in the same
 * directory (so every documented variable and its comment is there), or from nothing.
 * Missing or empty values among {@link DOCKER_ENV_KEYS} are generated with
 * {@link generateDockerEnv}; values already present are never changed. The file is
 * replaced atomically and left with mode 0600. Only variable names are returned, never
 * values, so callers can log the result safely.
 * @param envPath - Path of the `.env` file.
 * @returns The names of the variables written now and of those kept as they were.
 */
export async function initDockerEnv(envPath: string): Promise<{ created: string[]; kept: string[] }> {
  const current = await readIfExists(envPath);
  const template = current ?? (await readIfExists(join(dirname(envPath), '.env.example'))) ?? '';
  const existing = parseEnvFile(template);
  const wanted = generateDockerEnv(existing);

  const created: string[] = [];
  const kept: string[] = [];
  const updates: Record<string, string> = {};
  for (const [key, value] of Object.entries(wanted)) {
    if (existing.get(key) === value) {
      kept.push(key);
    } else {
      created.push(key);
      updates[key] = value;
    }
  }

  if (current === undefined) {
    await writeAtomically(envPath, renderEnvFile(template, updates));
  } else if (created.length > 0) {
    await updateEnvFile(envPath, updates);
  } else {
    await chmod(envPath, 0o600);
  }
  return { created, kept };
}

/**
 * Sets variables in a `.env` file with {@link renderEnvFile} (creating the file when it does not
 * exist), keeping everything else in it. The file is replaced atomically, so a reader (or a crash)
 * never sees it half written, and left with mode 0600: it holds secrets.
 * @param envPath - Path of the `.env` file.
 * @param updates - The keys to set and their new values.
 */
export async function updateEnvFile(envPath: string, updates: Record<string, string>): Promise<void> {
  const original = (await readIfExists(envPath)) ?? '';
  await writeAtomically(envPath, renderEnvFile(original, updates));
}

/** Writes through a temporary file in the same directory, then renames it over `path`. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o600, flag: 'w' });
    // The mode given to writeFile is filtered by the umask and ignored for an existing file.
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw err;
  }
}

function encodeEnvValue(key: string, value: string): string {
  if (value.includes('${')) {
    // python-dotenv (docker-compose 1.29) expands ${VAR} even inside single quotes.
    throw new RangeError(`The value of ${key} contains "\${", which docker-compose 1.29 would expand`);
  }
  if (BARE_VALUE_RE.test(value)) {
    return value;
  }
  if (!/['\\\r\n]/.test(value)) {
    return `'${value}'`;
  }
  if (!/["$\\\r]/.test(value)) {
    return `"${value.replaceAll('\n', '\\n')}"`;
  }
  throw new RangeError(
    `The value of ${key} cannot be written portably to .env ` +
      '(a backslash, or a newline together with a quote or "$")'
  );
}

function decodeDoubleQuoted(raw: string): string {
  const escapes: Record<string, string> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\', $: '$' };
  return raw.replaceAll('\r\n', '\n').replace(/\\([\s\S])/g, (match, ch: string) => escapes[ch] ?? match);
}

function* scanEnvFile(text: string): Generator<Assignment> {
  let lineStart = text.startsWith('\uFEFF') ? 1 : 0;
  while (lineStart < text.length) {
    const nl = text.indexOf('\n', lineStart);
    const lineEnd = nl === -1 ? text.length : nl;
    const line = text.slice(lineStart, lineEnd).replace(/\r$/, '');
    let next = nl === -1 ? text.length : nl + 1;

    const match = ASSIGNMENT_RE.exec(line);
    if (match) {
      const [matched, prefix, key] = match;
      const afterEquals = lineStart + matched.length;
      const rest = line.slice(matched.length);
      const indent = /^[ \t]*/.exec(rest)?.[0].length ?? 0;
      const valueStart = afterEquals + indent;
      const quote = text[valueStart];
      const close = quote === '"' || quote === "'" ? findClosingQuote(text, valueStart + 1, quote) : -1;
      if (close !== -1) {
        const raw = text.slice(valueStart + 1, close);
        const value = quote === '"' ? decodeDoubleQuoted(raw) : raw.replaceAll('\r\n', '\n');
        yield { start: lineStart, end: close + 1, prefix, key, value };
        const after = text.indexOf('\n', close);
        next = after === -1 ? text.length : after + 1;
      } else {
        // Bare value (or an unterminated quote, taken literally up to the end of the line).
        // A `#` starts a comment when whitespace precedes it.
        const bare = rest.slice(indent);
        const comment = indent > 0 ? /(^|[ \t])#/.exec(bare) : /[ \t]#/.exec(bare);
        const value = (comment ? bare.slice(0, comment.index) : bare).trimEnd();
        const end = value === '' ? afterEquals : valueStart + value.length;
        yield { start: lineStart, end, prefix, key, value };
      }
    }
    lineStart = next;
  }
}

function findClosingQuote(text: string, from: number, quote: string): number {
  for (let i = from; i < text.length; i++) {
    const ch = text[i];
    if (quote === '"' && ch === '\\') {
      i++;
    } else if (ch === quote) {
      return i;
    }
  }
  return -1;
}
