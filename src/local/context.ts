import { isUUID } from '@medplum/core';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { AuthState } from './auth.ts';

/** What the runtime knows about the request (or background job) that is running. */
export interface RequestContext {
  readonly requestId: string;
  /** The trace id carried to bots, subscription deliveries and AuditEvents. */
  readonly traceId: string;
  readonly auth?: AuthState;
}

const storage = new AsyncLocalStorage<RequestContext>();

/**
 * Runs `fn` with a request context, so that writes it makes can be traced to it.
 * @param context - The context.
 * @param fn - The work.
 * @returns What `fn` returns.
 */
export function runInRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** @returns The current request context, if any. */
export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}

/**
 * Picks the trace id of an incoming request as the stock server does: `x-trace-id` when it is a
 * UUID, else a well-formed W3C `traceparent`, else a new one. Anything else a client sends (an
 * empty or `undefined` header) is not a trace id and would break the chain a trace follows.
 * @param headers - The request headers.
 * @returns The trace id.
 */
export function traceIdFromHeaders(headers: Record<string, string | string[] | undefined>): string {
  const header = (name: string): string | undefined => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const traceId = header('x-trace-id');
  if (traceId && isUUID(traceId)) {
    return traceId;
  }
  const traceparent = header('traceparent');
  if (traceparent && isTraceparent(traceparent)) {
    return traceparent;
  }
  return randomUUID();
}

/**
 * @param value - A candidate `traceparent` value.
 * @returns True when it has the W3C trace-context shape.
 */
export function isTraceparent(value: string): boolean {
  return /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(value);
}
