import type { ProjectSetting, Reference } from '@medplum/fhirtypes';
import { ContentType, Hl7Message, MedplumClient, normalizeErrorString, normalizeOperationOutcome } from '@medplum/core';
import { createRequire, isBuiltin } from 'node:module';
import vm from 'node:vm';
import { isBotLayerModule } from '../../bots/bot-layer.ts';
import { BotConsole } from './console.ts';

/** The stock `vmcontext` default when `Bot.timeout` is unset (DEFAULT_VM_CONTEXT_TIMEOUT). */
export const DEFAULT_BOT_TIMEOUT_MS = 10_000;

/** What the sandbox passes to the bot wrapper: the stock server's `event` global. */
export interface SandboxEvent {
  readonly bot: Reference;
  readonly baseUrl: string;
  readonly accessToken: string;
  readonly requester?: Reference;
  /** The input; an `Hl7Message` is passed as its ER7 string and re-parsed inside, as on the server. */
  readonly input: unknown;
  readonly contentType: string;
  readonly secrets: Record<string, ProjectSetting>;
  readonly traceId?: string;
  readonly headers?: Record<string, string | string[] | undefined>;
  readonly defaultHeaders?: Record<string, string>;
}

/** Outcome of one run, in the shape of the server's `BotExecutionResult`. */
export interface SandboxResult {
  readonly success: boolean;
  /** Everything the bot wrote with `console.log`, plus the error when it failed. */
  readonly logResult: string;
  readonly returnValue?: unknown;
}

const hostRequire = createRequire(import.meta.url);
// Loaded once: the stock 5.0.x runtime hands bots node-fetch v2 as `fetch`, not the WHATWG global.
const nodeFetch = hostRequire('node-fetch') as typeof fetch;

/**
 * `require` as a vmcontext bot sees it: Node built-ins and the `@medplum/bot-layer` packages.
 * Anything else must have been bundled into the bot.
 * @param specifier - The module to load.
 * @returns The module.
 */
function sandboxRequire(specifier: string): unknown {
  if (isBuiltin(specifier) || isBotLayerModule(specifier)) {
    return hostRequire(specifier);
  }
  throw new Error(
    `Cannot find module '${specifier}': the Medplum bot runtime provides only Node built-ins and @medplum/bot-layer packages; bundle it into the bot`
  );
}

// The wrapper around the bot's code. Same contract as the stock vmcontext runtime: the code is
// CommonJS that assigns `exports.handler`; `module.exports = ...` alone is not seen; HL7 input is
// re-parsed only for the exact HL7 content type and a truthy HL7 result is turned into a string;
// the MedplumClient carries the run's token and trace id; an error is logged and rethrown.
function wrap(code: string): string {
  return `
const exports = {};
const module = { exports };
${code}
;(async () => {
  const { bot, baseUrl, accessToken, requester, contentType, secrets, traceId, headers, defaultHeaders } = event;
  const medplum = new MedplumClient({
    baseUrl,
    defaultHeaders,
    fetch: function (url, options = {}) {
      options.headers ||= {};
      options.headers['X-Trace-Id'] = traceId;
      options.headers['traceparent'] = traceId;
      return fetch(url, options);
    },
  });
  medplum.setAccessToken(accessToken);
  try {
    let input = event.input;
    if (contentType === ContentType.HL7_V2 && input) {
      input = Hl7Message.parse(input);
    }
    let result = await exports.handler(medplum, { bot, requester, input, contentType, secrets, traceId, headers });
    if (contentType === ContentType.HL7_V2 && result) {
      result = result.toString();
    }
    return result;
  } catch (err) {
    if (err instanceof Error) {
      console.log('Unhandled error: ' + err.message + '\\n' + err.stack);
    } else if (typeof err === 'object') {
      console.log('Unhandled error: ' + JSON.stringify(err, undefined, 2));
    } else {
      console.log('Unhandled error: ' + err);
    }
    throw err;
  }
})();
`;
}

/**
 * Runs a bot bundle in a fresh `node:vm` context with exactly the globals of the stock server's
 * vmcontext runtime (Medplum 5.0.x): `console` (log only), `fetch` (node-fetch v2), `require`,
 * `ContentType`, `Hl7Message`, `MedplumClient`, `TextDecoder`, `TextEncoder`, `URL`,
 * `URLSearchParams` and `event`. `Buffer`, `setTimeout`, `process`, `structuredClone`, `atob` and
 * `crypto` are absent there and absent here.
 *
 * `timeoutMs` bounds the synchronous part through `vm`, as on the stock server, and also the whole
 * asynchronous run: the stock runtime lets a hung `await` run forever, the local runtime reports
 * it as a failure instead (as the Lambda runtime does), so a bot that passes here cannot rely on
 * outliving its declared timeout.
 * @param code - The bundle: CommonJS assigning `exports.handler`.
 * @param event - The run's event.
 * @param timeoutMs - The bot's timeout.
 * @returns The run's outcome; never throws.
 */
export async function runBotInSandbox(code: string, event: SandboxEvent, timeoutMs: number): Promise<SandboxResult> {
  const botConsole = new BotConsole();
  const sandbox = {
    console: botConsole,
    fetch: nodeFetch,
    require: sandboxRequire,
    ContentType,
    Hl7Message,
    MedplumClient,
    TextDecoder,
    TextEncoder,
    URL,
    URLSearchParams,
    event: { ...event, input: event.input instanceof Hl7Message ? event.input.toString() : event.input },
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    const running = vm.runInNewContext(wrap(code), sandbox, { timeout: timeoutMs }) as Promise<unknown>;
    // A run abandoned at the deadline may still reject later; that must not surface as unhandled.
    running.catch(() => undefined);
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`Bot execution timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    const returnValue = await Promise.race([running, deadline]);
    return { success: true, logResult: botConsole.toString(), returnValue };
  } catch (err) {
    botConsole.log('Error', normalizeErrorString(err));
    return { success: false, logResult: botConsole.toString(), returnValue: normalizeOperationOutcome(err) };
  } finally {
    clearTimeout(timer);
  }
}
