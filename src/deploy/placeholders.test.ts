import { describe, expect, test } from 'vitest';
import { findPlaceholders, resolvePlaceholders } from './placeholders.ts';

describe('placeholders', () => {
  const template = {
    resourceType: 'Subscription',
    channel: { endpoint: '{{Bot/adt-inbound}}', header: ['Authorization: Bearer {{env:PARTNER_TOKEN}}'] },
    extension: [{ valueReference: { reference: '{{ AccessPolicy/agent }}' } }],
  };

  test('finds managed references and environment variables', () => {
    const found = findPlaceholders(template);
    expect(found.refs).toEqual([
      { resourceType: 'Bot', name: 'adt-inbound' },
      { resourceType: 'AccessPolicy', name: 'agent' },
    ]);
    expect(found.env).toEqual(['PARTNER_TOKEN']);
    expect(found.invalid).toEqual([]);
  });

  test('reports malformed placeholders', () => {
    expect(findPlaceholders({ a: '{{bot/lowercase}}', b: '{{env:1BAD}}' }).invalid).toEqual([
      '{{bot/lowercase}}',
      '{{env:1BAD}}',
    ]);
  });

  test('resolves to target ids and environment values without touching the template', () => {
    const resolved = resolvePlaceholders(template, {
      idOf: (ref) => (ref.resourceType === 'Bot' ? 'b-1' : 'p-2'),
      env: (name) => (name === 'PARTNER_TOKEN' ? 's3cret' : undefined),
    });
    expect(resolved.channel.endpoint).toBe('Bot/b-1');
    expect(resolved.channel.header[0]).toBe('Authorization: Bearer s3cret');
    expect(resolved.extension[0].valueReference.reference).toBe('AccessPolicy/p-2');
    expect(template.channel.endpoint).toBe('{{Bot/adt-inbound}}');
  });

  test('marks references to resources not created yet, and refuses missing environment values', () => {
    expect(resolvePlaceholders('{{Bot/new-one}}', { idOf: () => undefined, env: () => undefined })).toBe(
      'Bot/<pending:new-one>'
    );
    expect(() => resolvePlaceholders('{{env:MISSING}}', { idOf: () => undefined, env: () => undefined })).toThrow(
      /MISSING is not set/
    );
  });
});
