/**
 * The `console` a bot sees in the stock server's `vmcontext` runtime (Medplum 5.0.x): only `log`,
 * whose arguments are joined with spaces (objects print as `[object Object]`). `console.error`,
 * `warn`, `info` and `debug` do not exist there, so a bot calling them throws a TypeError and
 * fails; this console reproduces that on purpose.
 */
export class BotConsole {
  readonly messages: string[] = [];

  log(...params: unknown[]): void {
    this.messages.push(params.join(' '));
  }

  /** @returns The captured output, one line per `log` call. */
  toString(): string {
    return this.messages.join('\n');
  }
}
