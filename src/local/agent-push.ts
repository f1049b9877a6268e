import type { WithId } from '@medplum/core';
import {
  allOk,
  badRequest,
  ContentType,
  getStatus,
  isValidHostname,
  normalizeErrorString,
  Operator,
  parseSearchRequest,
} from '@medplum/core';
import type { Agent, Device, OperationOutcome, Parameters } from '@medplum/fhirtypes';
import { isIPv4 } from 'node:net';
import type { AgentReply, AgentTransmit } from './agent-messages.ts';
import type { HubRepository } from './repo.ts';

/** The stock `$push` wait when `waitTimeout` is not given (ms). */
export const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
/** The largest `waitTimeout` the stock server accepts (ms). */
export const MAX_WAIT_TIMEOUT_MS = 55_000;

/** The `$push` parameters, as loosely typed as the stock server takes them from the body. */
export interface AgentPushParameters {
  readonly destination?: unknown;
  readonly contentType?: unknown;
  readonly body?: unknown;
  readonly waitForResponse?: unknown;
  readonly waitTimeout?: unknown;
}

/** An incoming `Agent/$push`, already authenticated and parsed. */
export interface AgentPushCall {
  /** From `Agent/:id/$push`; without it the Agent is searched by the `identifier` query. */
  readonly agentId?: string;
  readonly query: Record<string, string | string[]>;
  /** The parsed request body. */
  readonly body: unknown;
}

/** The HTTP answer of `$push`. */
export interface AgentPushResponse {
  readonly status: number;
  readonly contentType: string;
  /** A string (the agent's reply) is sent as is; an OperationOutcome as FHIR JSON. */
  readonly body: string | OperationOutcome;
}

/** Dependencies of {@link agentPushOperation}. */
export interface AgentPushDeps {
  /** The caller's repository: reading the Agent and the Device checks access. */
  readonly repo: HubRepository;
  /** The agent's side. */
  readonly transmit: AgentTransmit;
  /** Aborted when the runtime stops: waiting calls end as timeouts instead of holding timers. */
  readonly signal?: AbortSignal;
  readonly log?: (message: string) => void;
}

/**
 * `Agent/:id/$push` and `Agent/$push?identifier=…` as on the stock server
 * (`fhir/operations/agentpush.ts`): the Agent is read as the caller; an Agent with status 'off'
 * refuses everything but PING; `body`, `contentType` and `destination` are required and
 * `waitTimeout` must be 0..55000 ms; the destination is `Device/<id>`, `Device?<search>` or, for
 * PING only, a host, and a Device needs a `url`. Without `waitForResponse` the push is handed to
 * the agent and the call answers `allOk` at once; with it, the agent's reply comes back raw with
 * its content type, an agent error as a 400 OperationOutcome with its text, and no reply within
 * `waitTimeout` as 400 "Timeout". `Prefer: respond-async` is not honoured (the call stays synchronous).
 * @param deps - Repository and agent.
 * @param call - The call.
 * @returns The response.
 */
export async function agentPushOperation(deps: AgentPushDeps, call: AgentPushCall): Promise<AgentPushResponse> {
  const agent = await findAgent(deps.repo, call);
  if (!agent) {
    return outcomeResponse(badRequest('Must specify agent ID or identifier'));
  }
  const params = parsePushParameters(call.body);
  if (agent.status === 'off' && params.contentType !== ContentType.PING) {
    return outcomeResponse(badRequest("Agent is currently disabled. Agent.status is 'off'"));
  }
  if (!params.body) {
    return outcomeResponse(badRequest('Missing body parameter'));
  }
  if (!params.contentType) {
    return outcomeResponse(badRequest('Missing contentType parameter'));
  }
  if (!params.destination) {
    return outcomeResponse(badRequest('Missing destination parameter'));
  }
  // Compared as the stock server does (a numeric string passes, and so does a non-number).
  const waitTimeout = (params.waitTimeout ?? DEFAULT_WAIT_TIMEOUT_MS) as number;
  if (waitTimeout < 0 || waitTimeout > MAX_WAIT_TIMEOUT_MS) {
    return outcomeResponse(badRequest('Invalid wait timeout'));
  }
  const contentType = String(params.contentType);
  const device = await findDevice(deps.repo, String(params.destination), contentType);
  if (!device) {
    return outcomeResponse(badRequest('Destination device not found'));
  }
  if (!device.url) {
    return outcomeResponse(badRequest('Destination device missing url'));
  }

  const request = {
    remote: device.url,
    contentType,
    body: typeof params.body === 'string' ? params.body : JSON.stringify(params.body),
  };
  const reply = deps.transmit(agent, request);
  if (!params.waitForResponse) {
    // Fire and forget: the stock server publishes and answers; the agent's reply goes nowhere.
    reply.catch((err: unknown) => deps.log?.(`[push] Agent/${agent.id}: ${normalizeErrorString(err)}`));
    return outcomeResponse(allOk);
  }

  const answer = await waitForReply(reply, timerDelay(waitTimeout), deps.signal);
  if (!answer) {
    return outcomeResponse(badRequest('Timeout'));
  }
  if (answer.statusCode >= 400) {
    return outcomeResponse(badRequest(answer.body));
  }
  return { status: answer.statusCode, contentType: answer.contentType, body: answer.body };
}

/**
 * The stock `parseParameters`: a `Parameters` body becomes `{ name: valueString }` (only
 * `valueString` is read, so `valueBoolean`/`valueInteger` parameters count as absent and a
 * `waitForResponse` of `'false'` is truthy); any other object is taken as is.
 * @param input - The request body.
 * @returns The parameters.
 */
export function parsePushParameters(input: unknown): AgentPushParameters {
  if (!input || typeof input !== 'object') {
    return {};
  }
  if ((input as { resourceType?: unknown }).resourceType === 'Parameters') {
    const parameters = (input as Parameters).parameter ?? [];
    return Object.fromEntries(parameters.map((p) => [p.name, p.valueString])) as AgentPushParameters;
  }
  return input as AgentPushParameters;
}

async function findAgent(repo: HubRepository, call: AgentPushCall): Promise<WithId<Agent> | undefined> {
  if (call.agentId) {
    return repo.readResource<Agent>('Agent', call.agentId);
  }
  const identifier = call.query.identifier;
  if (typeof identifier === 'string' && identifier) {
    return repo.searchOne<Agent>({
      resourceType: 'Agent',
      filters: [{ code: 'identifier', operator: Operator.EQUALS, value: identifier }],
    });
  }
  return undefined;
}

/** The stock `getDevice`: a Device read or searched as the caller, or a bare host for PING. */
async function findDevice(repo: HubRepository, destination: string, contentType: string): Promise<Device | undefined> {
  if (destination.startsWith('Device/')) {
    try {
      return await repo.readReference<Device>({ reference: destination });
    } catch (_err) {
      return undefined;
    }
  }
  if (destination.startsWith('Device?')) {
    return repo.searchOne<Device>(parseSearchRequest<Device>(destination));
  }
  if (contentType === ContentType.PING && (isIPv4(destination) || isValidHostname(destination))) {
    return { resourceType: 'Device', url: destination };
  }
  return undefined;
}

/**
 * @param waitTimeout - The validated `waitTimeout`, possibly a numeric string.
 * @returns The delay Node's `setTimeout` would use for it on the stock server (1 ms for non-numbers).
 */
function timerDelay(waitTimeout: unknown): number {
  const ms = Number(waitTimeout);
  return Number.isFinite(ms) && ms >= 1 ? ms : 1;
}

/**
 * Waits for the agent's reply until the deadline. A dropped push (undefined) is no answer: the
 * stock caller cannot tell it from a slow device and waits out its timeout.
 * @param reply - The agent's reply.
 * @param ms - The wait.
 * @param signal - Ends the wait early (runtime stop).
 * @returns The reply, or undefined on timeout.
 */
async function waitForReply(reply: Promise<AgentReply | undefined>, ms: number, signal?: AbortSignal): Promise<AgentReply | undefined> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    onAbort = () => resolve(undefined);
    if (signal?.aborted) {
      resolve(undefined);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  const answered = reply.then(
    (value) => value ?? deadline,
    (err: unknown): AgentReply => ({ statusCode: 400, contentType: ContentType.TEXT, body: normalizeErrorString(err) })
  );
  try {
    return await Promise.race([answered, deadline]);
  } finally {
    clearTimeout(timer);
    if (onAbort) {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

function outcomeResponse(outcome: OperationOutcome): AgentPushResponse {
  return { status: getStatus(outcome), contentType: ContentType.FHIR_JSON, body: outcome };
}
