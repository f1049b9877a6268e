import { ContentType, Hl7Message } from '@medplum/core';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import type { SandboxEvent, SandboxResult } from './sandbox.ts';
import { runBotInSandbox } from './sandbox.ts';

const ADT =
  'MSH|^~\\&|SENDER|FAC|HUB|HUBFAC|202401011200||ADT^A01|MSG00001|P|2.5.1\r' +
  'PID|1||12345^^^HOSP^MR||Doe^Jane||19800101|F';

function event(input: unknown = {}, contentType: string = ContentType.JSON): SandboxEvent {
  return {
    bot: { reference: 'Bot/test-bot' },
    baseUrl: 'http://127.0.0.1:1/',
    accessToken: 'token',
    requester: { reference: 'ClientApplication/caller' },
    input,
    contentType,
    secrets: { API_KEY: { name: 'API_KEY', valueString: 'shh' } },
    traceId: 'trace-1',
    headers: { 'x-test': 'yes' },
  };
}

function run(code: string, ev: SandboxEvent = event(), timeoutMs = 2000): Promise<SandboxResult> {
  return runBotInSandbox(code, ev, timeoutMs);
}

describe('sandbox globals', () => {
  test('exactly the stock vmcontext globals are present', async () => {
    const names = [
      'Buffer',
      'setTimeout',
      'process',
      'structuredClone',
      'atob',
      'crypto',
      'AbortController',
      'fetch',
      'require',
      'ContentType',
      'Hl7Message',
      'MedplumClient',
      'TextEncoder',
      'TextDecoder',
      'URL',
      'URLSearchParams',
      'console',
    ];
    const code = `exports.handler = async () => ({ ${names.map((n) => `${n}: typeof ${n}`).join(', ')} });`;
    const result = await run(code);
    expect(result.success).toBe(true);
    expect(result.returnValue).toEqual({
      Buffer: 'undefined',
      setTimeout: 'undefined',
      process: 'undefined',
      structuredClone: 'undefined',
      atob: 'undefined',
      crypto: 'undefined',
      AbortController: 'undefined',
      fetch: 'function',
      require: 'function',
      ContentType: 'object',
      Hl7Message: 'function',
      MedplumClient: 'function',
      TextEncoder: 'function',
      TextDecoder: 'function',
      URL: 'function',
      URLSearchParams: 'function',
      console: 'object',
    });
  });

  test('the handler gets exactly the stock event keys and a MedplumClient', async () => {
    const result = await run(`exports.handler = async (medplum, event) => ({
      keys: Object.keys(event).sort(),
      client: typeof medplum.searchResources,
      secret: event.secrets.API_KEY.valueString,
      header: event.headers['x-test'],
    });`);
    expect(result.returnValue).toEqual({
      keys: ['bot', 'contentType', 'headers', 'input', 'requester', 'secrets', 'traceId'],
      client: 'function',
      secret: 'shh',
      header: 'yes',
    });
  });
});

describe('sandbox require', () => {
  test('Node built-ins and bot-layer packages resolve', async () => {
    const result = await run(`exports.handler = async () => {
      const { Buffer } = require('node:buffer');
      const core = require('@medplum/core');
      const { setTimeout: sleep } = require('node:timers/promises');
      await sleep(1);
      return { b64: Buffer.from('hi').toString('base64'), parse: typeof core.Hl7Message.parse };
    };`);
    expect(result.success).toBe(true);
    expect(result.returnValue).toEqual({ b64: 'aGk=', parse: 'function' });
  });

  test('packages outside the bot layer fail with a clear message', async () => {
    for (const name of ['left-pad', 'vitest', '@medplum/fhir-router']) {
      const result = await run(`exports.handler = async () => require('${name}');`);
      expect(result.success).toBe(false);
      expect(result.logResult).toContain(`Cannot find module '${name}'`);
      expect(result.logResult).toMatch(/bundle it into the bot/);
    }
  });
});

describe('sandbox console and module format', () => {
  test('console.log output is captured, arguments joined with spaces', async () => {
    const result = await run(`exports.handler = async () => {
      console.log('hello', 42, { a: 1 });
      console.log('second line');
      return 'done';
    };`);
    expect(result.success).toBe(true);
    expect(result.logResult).toBe('hello 42 [object Object]\nsecond line');
    expect(result.returnValue).toBe('done');
  });

  test('console.error is not a function: the run fails', async () => {
    const result = await run(`exports.handler = async () => { console.error('oops'); return 'unreachable'; };`);
    expect(result.success).toBe(false);
    expect(result.logResult).toMatch(/console\.error is not a function/);
  });

  test('module.exports alone is not seen', async () => {
    const result = await run(`module.exports = { handler: async () => 'never' };`);
    expect(result.success).toBe(false);
    expect(result.logResult).toContain('exports.handler is not a function');
  });

  test('the esbuild footer that copies module.exports onto exports works', async () => {
    const result = await run(`module.exports = { handler: async () => 'bundled' };\nObject.assign(exports, module.exports);`);
    expect(result.returnValue).toBe('bundled');
  });

  test('ESM export syntax is a SyntaxError', async () => {
    const result = await run(`export async function handler() { return 1; }`);
    expect(result.success).toBe(false);
    expect(result.logResult).toMatch(/SyntaxError|Unexpected token 'export'/);
  });
});

describe('sandbox HL7', () => {
  const ackBot = `exports.handler = async (medplum, event) => {
    const input = event.input;
    if (typeof input === 'string') {
      return 'STRING:' + input.slice(0, 3);
    }
    console.log('type', input.getSegment('MSH').getField(9).toString());
    return input.buildAck();
  };`;

  test('exact HL7 content type: input is an Hl7Message and an Hl7Message result comes back as ER7', async () => {
    const result = await run(ackBot, event(Hl7Message.parse(ADT), ContentType.HL7_V2));
    expect(result.success).toBe(true);
    expect(result.logResult).toBe('type ADT^A01');
    expect(typeof result.returnValue).toBe('string');
    const ack = Hl7Message.parse(result.returnValue as string);
    expect(ack.getSegment('MSA')?.getField(1)?.toString()).toBe('AA');
    expect(ack.getSegment('MSA')?.getField(2)?.toString()).toBe('MSG00001');
  });

  test('an HL7 string input with the exact content type is parsed too', async () => {
    const result = await run(ackBot, event(ADT, ContentType.HL7_V2));
    expect(Hl7Message.parse(result.returnValue as string).getSegment('MSA')?.getField(1)?.toString()).toBe('AA');
  });

  test('with a charset parameter the input stays a string', async () => {
    const result = await run(ackBot, event(ADT, ContentType.HL7_V2 + '; charset=utf-8'));
    expect(result.returnValue).toBe('STRING:MSH');
  });
});

describe('sandbox failures and timeouts', () => {
  test('a thrown error gives success:false, "Unhandled error" in the log and an OperationOutcome', async () => {
    const result = await run(`exports.handler = async () => { console.log('before'); throw new Error('kaboom'); };`);
    expect(result.success).toBe(false);
    expect(result.logResult).toMatch(/^before\nUnhandled error: kaboom\n/);
    expect(result.logResult).toMatch(/Error kaboom$/);
    const outcome = result.returnValue as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(JSON.stringify(outcome)).toContain('kaboom');
  });

  test('a synchronous infinite loop is stopped by the vm timeout', async () => {
    const started = Date.now();
    const result = await run(`exports.handler = async () => { while (true) {} };`, event(), 200);
    expect(result.success).toBe(false);
    expect(result.logResult).toMatch(/timed out/i);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test('a never-settling await is reported as a timeout failure', async () => {
    const started = Date.now();
    const result = await run(`exports.handler = async () => { await new Promise(() => {}); };`, event(), 200);
    expect(result.success).toBe(false);
    expect(result.logResult).toMatch(/timed out after 200 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
