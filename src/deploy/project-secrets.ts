/**
 * Project secrets (`Project.secret`, what bots read as `event.secrets`) deployed from the
 * environment.
 *
 * The repository only declares which names exist (`project-secrets.json` at the project root);
 * the values come from the environment deploy runs in (`.env` or the process environment), so no
 * secret is ever committed. Every function here handles names only in what it returns for
 * reporting or logging: values exist only in the array sent to the server.
 *
 * @module
 */
import type { ProjectSetting } from '@medplum/fhirtypes';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Target } from './target.ts';

/** The declaration file, relative to the project root. */
export const PROJECT_SECRETS_FILE = 'project-secrets.json';

/** Upper-case environment-variable style, so that the secret and its variable share one name. */
const SECRET_NAME_RE = /^[A-Z][A-Z0-9_]*$/;

/** One declared secret: a name that deploy copies from the environment into `Project.secret`. */
export interface SecretDeclaration {
  /** Name of both the environment variable and the project secret. */
  readonly name: string;
  /** What the secret is for (documentation only). */
  readonly description: string;
}

/**
 * What deploy does (or would do) to one declared secret:
 * - `set`: absent on the project, added from the environment;
 * - `changed`: present with another value, replaced by the environment's;
 * - `unchanged`: present with the environment's value;
 * - `not-in-environment`: the variable is unset or empty; the project's value, if any, is kept.
 */
export type SecretAction = 'set' | 'changed' | 'unchanged' | 'not-in-environment';

/** One line of the secrets report: a name and an action, never a value. */
export interface SecretReportEntry {
  readonly name: string;
  readonly action: SecretAction;
}

/** The planner's answer. */
export interface SecretsPlan {
  /** The new `Project.secret` array. It holds values: send it, never log it. */
  readonly secrets: ProjectSetting[];
  /** One entry per declared secret, in declaration order. */
  readonly entries: SecretReportEntry[];
  /** Whether `secrets` differs from the project's current array. */
  readonly changed: boolean;
}

/** Result of {@link applyProjectSecrets}: safe to log or keep (names only). */
export interface ProjectSecretsReport {
  readonly dryRun: boolean;
  /** One entry per declared secret, in declaration order. */
  readonly entries: SecretReportEntry[];
  /** Whether `Project.secret` was (or, in a dry run, would be) replaced. */
  readonly changed: boolean;
}

/** Options of {@link applyProjectSecrets}. */
export interface ApplyProjectSecretsOptions {
  readonly dryRun?: boolean;
  /** Where the values come from. */
  readonly env: NodeJS.ProcessEnv;
  /** Progress lines (names only). */
  readonly log?: (line: string) => void;
}

/**
 * Reads and validates `project-secrets.json`. A project without the file declares no secrets.
 * @param root - Project root.
 * @returns The declarations, in file order.
 * @throws Error when the file is not valid JSON or not a valid declaration.
 */
export async function loadSecretDeclarations(root: string): Promise<SecretDeclaration[]> {
  let text: string;
  try {
    text = await readFile(join(root, PROJECT_SECRETS_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return [];
    }
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${PROJECT_SECRETS_FILE}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return parseSecretDeclarations(json);
}

/**
 * Validates the content of `project-secrets.json`: `{ "secrets": [{ "name", "description" }] }`
 * with names matching `^[A-Z][A-Z0-9_]*$`, each declared once. Unknown keys are rejected so that a
 * misspelt key fails here instead of being silently ignored.
 * @param json - The parsed file.
 * @returns The declarations, in file order.
 * @throws Error naming every problem found.
 */
export function parseSecretDeclarations(json: unknown): SecretDeclaration[] {
  if (!isObject(json) || !Array.isArray(json.secrets)) {
    throw new Error(`${PROJECT_SECRETS_FILE}: expected an object { "secrets": [...] }`);
  }
  const problems: string[] = [];
  for (const key of Object.keys(json).filter((k) => k !== 'secrets')) {
    problems.push(`unknown key ${JSON.stringify(key)}`);
  }
  const declarations: SecretDeclaration[] = [];
  const seen = new Set<string>();
  for (const [i, entry] of (json.secrets as unknown[]).entries()) {
    const where = `secrets[${i}]`;
    if (!isObject(entry)) {
      problems.push(`${where}: expected an object { "name", "description" }`);
      continue;
    }
    for (const key of Object.keys(entry).filter((k) => k !== 'name' && k !== 'description')) {
      problems.push(`${where}: unknown key ${JSON.stringify(key)}`);
    }
    const { name, description } = entry;
    if (typeof name !== 'string' || !SECRET_NAME_RE.test(name)) {
      problems.push(`${where}: name must match ${SECRET_NAME_RE.source}, got ${JSON.stringify(name)}`);
      continue;
    }
    if (typeof description !== 'string' || description.trim() === '') {
      problems.push(`${where} (${name}): description must be a non-empty string`);
    }
    if (seen.has(name)) {
      problems.push(`${where}: ${name} is declared more than once`);
    }
    seen.add(name);
    declarations.push({ name, description: typeof description === 'string' ? description : '' });
  }
  if (problems.length) {
    throw new Error(`${PROJECT_SECRETS_FILE}: ${problems.join('; ')}`);
  }
  return declarations;
}

/**
 * Plans the new `Project.secret` array. Pure: no I/O.
 *
 * A declared secret whose variable is set (non-empty) in `env` gets that value as `valueString`;
 * one whose variable is unset or empty is left as it is, so a deploy from a shell that lacks a
 * value never wipes it. Secrets that are not declared are kept untouched, in their order. A
 * replaced secret keeps its position; a new one is appended, in declaration order.
 * @param current - The project's current `secret` array (`undefined` when it has none).
 * @param declarations - The declared secrets.
 * @param env - Where the values come from.
 * @returns The new array, one report entry per declaration, and whether anything changed.
 */
export function planProjectSecrets(
  current: readonly ProjectSetting[] | undefined,
  declarations: readonly SecretDeclaration[],
  env: NodeJS.ProcessEnv
): SecretsPlan {
  const secrets = [...(current ?? [])];
  const entries: SecretReportEntry[] = [];
  for (const { name } of declarations) {
    const value = env[name];
    if (value === undefined || value === '') {
      entries.push({ name, action: 'not-in-environment' });
      continue;
    }
    // Bots see the last entry of a name (later entries override earlier ones), so that is the
    // current value; a replacement leaves exactly one entry, at the first one's position.
    const first = secrets.findIndex((s) => s.name === name);
    const effective = secrets.findLast((s) => s.name === name);
    if (effective && isStringValue(effective, value)) {
      entries.push({ name, action: 'unchanged' });
      continue;
    }
    const replacement: ProjectSetting = { name, valueString: value };
    if (first === -1) {
      secrets.push(replacement);
      entries.push({ name, action: 'set' });
    } else {
      secrets[first] = replacement;
      for (let i = secrets.length - 1; i > first; i--) {
        if (secrets[i].name === name) {
          secrets.splice(i, 1);
        }
      }
      entries.push({ name, action: 'changed' });
    }
  }
  const changed = entries.some((e) => e.action === 'set' || e.action === 'changed');
  return { secrets, entries, changed };
}

/**
 * Brings the target project's secrets in line with the declarations and the environment, or, with
 * `dryRun`, reports what it would do. Reads the project with `GET admin/projects/:id` and, only
 * when something changed, replaces the whole array with `POST admin/projects/:id/secrets` (the
 * stock route has no per-secret update). Applying twice changes nothing. Logs one line per set or
 * changed name and a summary; never a value.
 * @param target - The logged-in target; its client must be a project admin.
 * @param declarations - The declared secrets (nothing is read or written when there are none).
 * @param options - Environment, dry run, progress.
 * @returns The report (names and actions only).
 */
export async function applyProjectSecrets(
  target: Target,
  declarations: readonly SecretDeclaration[],
  options: ApplyProjectSecretsOptions
): Promise<ProjectSecretsReport> {
  const dryRun = Boolean(options.dryRun);
  const log = options.log ?? ((): void => undefined);
  if (declarations.length === 0) {
    return { dryRun, entries: [], changed: false };
  }
  const { client, projectId } = target;
  const projectUrl = `admin/projects/${projectId}`;
  // A client built with a cache time would answer from its cache: read what the server holds now.
  client.invalidateUrl(projectUrl);
  const answer = (await client.get(projectUrl)) as AdminProjectResponse;
  const plan = planProjectSecrets(answer.project?.secret, declarations, options.env);
  // The route replaces the whole array: secrets someone set between this read and this write
  // would be lost. Deploys are run by one operator at a time, which makes that window acceptable.
  if (plan.changed && !dryRun) {
    await client.post(`${projectUrl}/secrets`, plan.secrets);
  }
  const report: ProjectSecretsReport = { dryRun, entries: plan.entries, changed: plan.changed };
  for (const entry of report.entries) {
    const line = describeSecretChange(entry, dryRun);
    if (line) {
      log(line);
    }
  }
  log(summarizeSecrets(report));
  return report;
}

/**
 * @param entry - A report entry.
 * @param dryRun - Whether nothing is applied.
 * @returns The progress line for a set or changed secret, or `undefined` for the others.
 */
function describeSecretChange(entry: SecretReportEntry, dryRun: boolean): string | undefined {
  switch (entry.action) {
    case 'set':
      return `${dryRun ? 'would set' : 'set'} ${entry.name} (project secret)`;
    case 'changed':
      return `${dryRun ? 'would change' : 'changed'} ${entry.name} (project secret)`;
    default:
      return undefined;
  }
}

/**
 * @param report - A secrets report.
 * @returns One summary line, naming the secrets the environment did not provide.
 */
export function summarizeSecrets(report: ProjectSecretsReport): string {
  const count = (action: SecretAction): number => report.entries.filter((e) => e.action === action).length;
  const missing = report.entries.filter((e) => e.action === 'not-in-environment').map((e) => e.name);
  const counts = report.dryRun
    ? `would set ${count('set')}, change ${count('changed')}, leave ${count('unchanged')} unchanged`
    : `set ${count('set')}, changed ${count('changed')}, ${count('unchanged')} unchanged`;
  return `Project secrets: ${counts}${missing.length ? `; not in the environment: ${missing.join(', ')}` : ''}.`;
}

/** The part of the `GET admin/projects/:id` answer read here. */
interface AdminProjectResponse {
  readonly project?: { readonly secret?: ProjectSetting[] };
}

/** Whether a secret holds exactly this string (another value type counts as a different value). */
function isStringValue(secret: ProjectSetting, value: string): boolean {
  return (
    secret.valueString === value &&
    secret.valueBoolean === undefined &&
    secret.valueDecimal === undefined &&
    secret.valueInteger === undefined
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
