import type { Endpoint } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { globToRegExp, readSftpSource, SftpExtension } from './source.ts';

const FINGERPRINT = 'SHA256:' + 'A'.repeat(43);
const example = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'seed', 'sftp-riverside-roster.json'), 'utf8')) as Endpoint;

function endpoint(overrides: Partial<Endpoint> = {}): Endpoint {
  const extension = (example.extension ?? []).map((e) => (e.url === SftpExtension.hostKey ? { ...e, valueString: FINGERPRINT } : e));
  return { ...example, id: 'e1', status: 'active', extension, ...overrides };
}

describe('readSftpSource', () => {
  test('reads the repository example with its secret', () => {
    const result = readSftpSource(endpoint(), { SFTP_RIVERSIDE_CREDENTIAL: { name: 'SFTP_RIVERSIDE_CREDENTIAL', valueString: 'pw' } });
    expect(result).toEqual({
      source: expect.objectContaining({
        name: 'riverside-roster',
        host: 'sftp.riverside.example',
        port: 22,
        username: 'northside-hub',
        password: 'pw',
        folder: '/outgoing/rosters',
        archive: '/outgoing/rosters/archive',
        error: '/outgoing/rosters/error',
        minAgeMs: 120_000,
        format: 'csv-roster',
        senderFacility: 'RIVERSIDE',
      }),
    });
  });

  test('a private key in the secret is used as a key, its escaped line breaks restored', () => {
    const key = '-----BEGIN OPENSSH PRIVATE KEY-----\\nabc\\n-----END OPENSSH PRIVATE KEY-----';
    const result = readSftpSource(endpoint(), { SFTP_RIVERSIDE_CREDENTIAL: { name: 'SFTP_RIVERSIDE_CREDENTIAL', valueString: key } });
    expect('source' in result && result.source.privateKey).toBe('-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----');
    expect('source' in result && result.source.password).toBeUndefined();
  });

  test('lists every configuration problem, naming secrets but never their values', () => {
    const result = readSftpSource(
      endpoint({ address: 'https://x/y', payloadType: [], extension: [{ url: SftpExtension.credentialSecret, valueString: 'MISSING' }] }),
      {}
    );
    expect('problems' in result && result.problems).toEqual([
      'Endpoint/e1: address must be an sftp:// URL',
      'Endpoint/e1: no https://fhir.integration-hub.dev/StructureDefinition/sftp-username extension',
      'Endpoint/e1: the bot secret MISSING is not set',
      expect.stringContaining('sftp-host-key-sha256 must hold'),
      expect.stringContaining('payloadType must be one of'),
      expect.stringContaining('archive-folder and'),
    ]);
  });
});

describe('globToRegExp', () => {
  test('matches * and ? and nothing else specially', () => {
    expect(globToRegExp('*.hl7').test('a.b.hl7')).toBe(true);
    expect(globToRegExp('*.hl7').test('a.hl7.tmp')).toBe(false);
    expect(globToRegExp('roster_????.csv').test('roster_2024.csv')).toBe(true);
    expect(globToRegExp('a+b.csv').test('a+b.csv')).toBe(true);
    expect(globToRegExp('a+b.csv').test('aab.csv')).toBe(false);
  });
});
