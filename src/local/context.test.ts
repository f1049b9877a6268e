import { describe, expect, test } from 'vitest';
import { traceIdFromHeaders } from './context.ts';

describe('traceIdFromHeaders', () => {
  const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

  test('x-trace-id when it is a UUID, else a well-formed traceparent', () => {
    expect(traceIdFromHeaders({ 'x-trace-id': uuid, traceparent })).toBe(uuid);
    expect(traceIdFromHeaders({ 'x-trace-id': 'undefined', traceparent })).toBe(traceparent);
    expect(traceIdFromHeaders({ traceparent: [traceparent] })).toBe(traceparent);
  });

  test('anything else gets a new UUID', () => {
    for (const headers of [{}, { 'x-trace-id': 'undefined' }, { 'x-trace-id': '' }, { traceparent: 'undefined' }]) {
      const traceId = traceIdFromHeaders(headers);
      expect(traceId).toMatch(/^[0-9a-f-]{36}$/);
      expect(traceId).not.toBe(traceIdFromHeaders(headers));
    }
  });
});
