import type { WithId } from '@medplum/core';
import type { Agent } from '@medplum/fhirtypes';

/**
 * The two halves of an `Agent/$push` as the stock server and agent exchange them over the agent
 * WebSocket (`agent:transmit:request` and `agent:transmit:response` / `agent:error`). In the local
 * runtime both halves live in one process, so these are plain values instead of JSON messages.
 */

/** What the server hands the agent for one push (`agent:transmit:request`). */
export interface AgentTransmitRequest {
  /** The destination: a Device's `url` (`mllp://host:port[?encoding=…]`), or a host for PING. */
  readonly remote: string;
  readonly contentType: string;
  readonly body: string;
}

/**
 * What the agent answers (`agent:transmit:response`, or `agent:error`, which the server treats the
 * same way as a status >= 400).
 */
export interface AgentReply {
  readonly statusCode: number;
  readonly contentType: string;
  readonly body: string;
}

/**
 * The agent's side of a push: resolves with the agent's reply, or with undefined when the agent
 * drops the request without answering (the stock agent only logs), so the caller waits out its
 * `waitTimeout`. `agent` is the Agent as the server read it for the caller.
 */
export type AgentTransmit = (agent: WithId<Agent>, request: AgentTransmitRequest) => Promise<AgentReply | undefined>;
