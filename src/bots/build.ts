import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { BOT_LAYER_PACKAGES } from './bot-layer.ts';

/** One built bot bundle, as listed in `dist/bots/manifest.json`. */
export interface BuiltBot {
  /** The bot's name: its folder under `bots/`. */
  readonly name: string;
  /** Source entry point, relative to the project root. */
  readonly source: string;
  /** Bundle path, relative to the project root. */
  readonly dist: string;
  /** `<package version>+<git revision>.<hash prefix>`. */
  readonly version: string;
  /** SHA-256 (hex) of the bundle code without its version banner: the redeploy key. */
  readonly hash: string;
}

/** The build manifest written next to the bundles. */
export interface BotBuildManifest {
  readonly builtAt: string;
  readonly bots: BuiltBot[];
}

/** First line of every bundle: names the bot, its version and its content hash. */
const BANNER = /^\/\/ hub-bot (\S+) (\S+) sha256:([0-9a-f]{64})\n/;

/**
 * Lists the bots of a project: every folder under `bots/` with an `index.ts`.
 * @param root - Project root.
 * @returns Bot names, sorted.
 */
export async function listBots(root: string): Promise<string[]> {
  const dir = join(root, 'bots');
  if (!existsSync(dir)) {
    return [];
  }
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'index.ts')))
    .map((e) => e.name)
    .sort();
}

/**
 * Bundles one bot for the stock server's `vmcontext` runtime: a single CommonJS file that assigns
 * `exports.handler`, with the `@medplum/bot-layer` packages left as `require` calls and everything
 * else bundled in.
 * @param root - Project root.
 * @param name - Bot folder name.
 * @returns The bundle code, without banner.
 */
async function bundleBot(root: string, name: string): Promise<string> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: [join(root, 'bots', name, 'index.ts')],
    bundle: true,
    write: false,
    format: 'cjs',
    platform: 'node',
    target: 'node22',
    external: [...BOT_LAYER_PACKAGES],
    legalComments: 'none',
    logLevel: 'silent',
    // The vmcontext wrapper reads the `exports` object it created, not `module.exports`, which
    // esbuild's CommonJS output replaces; copy the exports back (medplum-facts 1.3 and 11).
    footer: { js: 'Object.assign(exports, module.exports);' },
  });
  return result.outputFiles[0].text;
}

/**
 * @param code - Bundle code without banner.
 * @returns Its SHA-256, hex.
 */
function hashBundle(code: string): string {
  return createHash('sha256').update(code, 'utf8').digest('hex');
}

/**
 * Prefixes a bundle with its version banner.
 * @param name - Bot name.
 * @param version - Version string.
 * @param hash - Content hash of `code`.
 * @param code - Bundle code.
 * @returns The stamped bundle.
 */
function stampBundle(name: string, version: string, hash: string, code: string): string {
  return `// hub-bot ${name} ${version} sha256:${hash}\n${code}`;
}

/**
 * Reads the banner of a stamped bundle, e.g. code downloaded from a server's Bot Binary.
 * @param code - Bundle code.
 * @returns Name, version and hash, or undefined when the code has no banner.
 */
export function readBundleStamp(code: string): { name: string; version: string; hash: string } | undefined {
  const match = BANNER.exec(code);
  return match ? { name: match[1], version: match[2], hash: match[3] } : undefined;
}

/**
 * @param root - Project root.
 * @returns The short git revision of HEAD, suffixed `-dirty` when the tree has uncommitted
 * changes, or `nogit` outside a repository.
 */
function gitRevision(root: string): string {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short=10', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    return dirty ? rev + '-dirty' : rev;
  } catch (_err) {
    return 'nogit';
  }
}

/**
 * Builds every bot into `dist/bots/<name>.js` and writes `dist/bots/manifest.json`.
 * @param root - Project root.
 * @returns The manifest.
 */
export async function buildBots(root: string): Promise<BotBuildManifest> {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  const revision = gitRevision(root);
  const outDir = join(root, 'dist', 'bots');
  await mkdir(outDir, { recursive: true });
  const bots: BuiltBot[] = [];
  for (const name of await listBots(root)) {
    const code = await bundleBot(root, name);
    const hash = hashBundle(code);
    const version = `${pkg.version}+${revision}.${hash.slice(0, 12)}`;
    const file = join(outDir, name + '.js');
    await writeFile(file, stampBundle(name, version, hash, code));
    bots.push({
      name,
      source: relative(root, join(root, 'bots', name, 'index.ts')),
      dist: relative(root, file),
      version,
      hash,
    });
  }
  const manifest: BotBuildManifest = { builtAt: new Date().toISOString(), bots };
  await writeFile(join(outDir, 'manifest.json'), JSON.stringify(manifest, undefined, 2) + '\n');
  return manifest;
}

/**
 * Reads `dist/bots/manifest.json`.
 * @param root - Project root.
 * @returns The manifest, or undefined when the bots were never built.
 */
export async function readBuildManifest(root: string): Promise<BotBuildManifest | undefined> {
  const file = join(root, 'dist', 'bots', 'manifest.json');
  if (!existsSync(file)) {
    return undefined;
  }
  return JSON.parse(await readFile(file, 'utf8')) as BotBuildManifest;
}
