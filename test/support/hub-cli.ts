import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { E2eTarget } from './target.ts';

const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli.ts');

/** What a `hub` command printed and how it exited. */
export interface HubCliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * @param target - The e2e target.
 * @returns Its project admin client's id and secret: the local runtime's admin client, or the
 * stock target's `MEDPLUM_CLIENT_ID` / `MEDPLUM_CLIENT_SECRET`.
 */
export function adminCredentials(target: E2eTarget): { clientId: string; clientSecret: string } {
  return (
    target.runtime?.adminCredentials ?? {
      clientId: process.env.MEDPLUM_CLIENT_ID as string,
      clientSecret: process.env.MEDPLUM_CLIENT_SECRET as string,
    }
  );
}

/**
 * The environment that points the `hub` CLI at a target as its project admin ({@link adminCredentials}).
 * @param target - The e2e target.
 * @returns The child process environment.
 */
export function hubCliEnv(target: E2eTarget): NodeJS.ProcessEnv {
  const credentials = adminCredentials(target);
  return { ...process.env, MEDPLUM_BASE_URL: target.baseUrl, MEDPLUM_CLIENT_ID: credentials.clientId, MEDPLUM_CLIENT_SECRET: credentials.clientSecret };
}

/**
 * Runs `hub <args>` as a child process (the real CLI, its own process and output), bounded.
 * @param args - The arguments after `hub`.
 * @param env - Its environment ({@link hubCliEnv}).
 * @param timeoutMs - Killed after this long.
 * @returns Exit code and output.
 */
export function runHubCli(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<HubCliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: tmpdir(), env, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
