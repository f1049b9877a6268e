import type { Endpoint, ProjectSetting } from '@medplum/fhirtypes';
import { HUB_SID, HUB_URI } from '../constants.ts';

/** `Endpoint.connectionType` of a partner SFTP folder the hub polls. */
export const SFTP_INBOUND_CONNECTION = { system: `${HUB_URI}/CodeSystem/endpoint-connection-type`, code: 'sftp-inbound' } as const;
/** Code system of `Endpoint.payloadType`: what the files hold. */
export const FILE_FORMAT_SYSTEM = `${HUB_URI}/CodeSystem/file-format`;
/** Identifier system naming an SFTP source (the value is used in the file ledger and logs). */
export const SFTP_SOURCE_SYSTEM = `${HUB_SID}/sftp-source`;

/** Extensions of an SFTP source Endpoint. */
export const SftpExtension = {
  username: `${HUB_URI}/StructureDefinition/sftp-username`,
  /** Name of the bot secret holding the password or the private key (never the value). */
  credentialSecret: `${HUB_URI}/StructureDefinition/sftp-credential-secret`,
  /** SHA-256 fingerprint of the server's host key, as `ssh-keygen -l` prints it (`SHA256:…`). */
  hostKey: `${HUB_URI}/StructureDefinition/sftp-host-key-sha256`,
  archiveFolder: `${HUB_URI}/StructureDefinition/sftp-archive-folder`,
  errorFolder: `${HUB_URI}/StructureDefinition/sftp-error-folder`,
  /** Glob of the file names taken (`*` and `?`), e.g. `*.hl7`. */
  filePattern: `${HUB_URI}/StructureDefinition/sftp-file-pattern`,
  /** A file younger than this is still being written: it waits for the next poll. */
  minAgeSeconds: `${HUB_URI}/StructureDefinition/sftp-min-age-seconds`,
  /** For CSV files: the sending facility whose mapping configuration applies (as MSH-4 for HL7). */
  senderFacility: `${HUB_URI}/StructureDefinition/sftp-sender-facility`,
} as const;

/** The formats the hub reads from SFTP. */
export type FileFormat = 'hl7v2-batch' | 'csv-roster';
const FORMATS: readonly FileFormat[] = ['hl7v2-batch', 'csv-roster'];

/** A partner SFTP folder, read from its Endpoint and the bot secrets. */
export interface SftpSource {
  /** The source's name (its identifier), for the ledger and logs. */
  readonly name: string;
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** Exactly one of password and private key (a PEM or OpenSSH key in the secret). */
  readonly password?: string;
  readonly privateKey?: string;
  readonly hostKeySha256: string;
  readonly inbox: string;
  readonly archive: string;
  readonly error: string;
  readonly pattern: RegExp;
  readonly minAgeMs: number;
  readonly format: FileFormat;
  readonly senderFacility?: string;
}

/**
 * Reads an SFTP source from its Endpoint (`address` `sftp://host[:port]/folder`, the extensions
 * above) and the bot secrets. Everything about a partner is data; the credential comes from the
 * secret the Endpoint names, so no secret lives in a resource.
 * @param endpoint - The Endpoint.
 * @param secrets - `event.secrets`.
 * @returns The source, or every problem with its configuration (names, never secret values).
 */
export function readSftpSource(endpoint: Endpoint, secrets: Record<string, ProjectSetting> | undefined): { source: SftpSource } | { problems: string[] } {
  const problems: string[] = [];
  const label = `Endpoint/${endpoint.id}`;
  const ext = (url: string): string | undefined => endpoint.extension?.find((e) => e.url === url)?.valueString?.trim() || undefined;
  const name = endpoint.identifier?.find((i) => i.system === SFTP_SOURCE_SYSTEM)?.value ?? endpoint.id ?? 'unnamed';

  let url: URL | undefined;
  try {
    url = new URL(endpoint.address);
  } catch {
    problems.push(`${label}: address is not a URL (sftp://host[:port]/folder)`);
  }
  if (url && url.protocol !== 'sftp:') {
    problems.push(`${label}: address must be an sftp:// URL`);
  }
  const username = ext(SftpExtension.username);
  if (!username) {
    problems.push(`${label}: no ${SftpExtension.username} extension`);
  }
  const secretName = ext(SftpExtension.credentialSecret);
  const credential = secretName ? secrets?.[secretName]?.valueString : undefined;
  if (!secretName) {
    problems.push(`${label}: no ${SftpExtension.credentialSecret} extension naming the bot secret with the password or key`);
  } else if (!credential) {
    problems.push(`${label}: the bot secret ${secretName} is not set`);
  }
  const hostKeySha256 = ext(SftpExtension.hostKey);
  if (!hostKeySha256 || !/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(hostKeySha256)) {
    problems.push(`${label}: ${SftpExtension.hostKey} must hold the server's host key fingerprint (SHA256:…, from \`ssh-keyscan <host> | ssh-keygen -lf -\`)`);
  }
  const format = endpoint.payloadType?.flatMap((t) => t.coding ?? []).find((c) => c.system === FILE_FORMAT_SYSTEM)?.code as FileFormat | undefined;
  if (!format || !FORMATS.includes(format)) {
    problems.push(`${label}: payloadType must be one of ${FORMATS.map((f) => `${FILE_FORMAT_SYSTEM}|${f}`).join(', ')}`);
  }
  const archive = ext(SftpExtension.archiveFolder);
  const error = ext(SftpExtension.errorFolder);
  if (!archive || !error) {
    problems.push(`${label}: both ${SftpExtension.archiveFolder} and ${SftpExtension.errorFolder} are required`);
  }
  if (problems.length || !url) {
    return { problems };
  }
  const minAge = endpoint.extension?.find((e) => e.url === SftpExtension.minAgeSeconds)?.valueInteger ?? 60;
  const isKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(credential as string);
  // A key kept on one line (an environment variable) carries its line breaks as `\n`.
  const privateKey = isKey ? (credential as string).replace(/\\n/g, '\n') : undefined;
  return {
    source: {
      name,
      endpoint: label,
      host: url.hostname,
      port: url.port ? Number(url.port) : 22,
      username: username as string,
      ...(privateKey ? { privateKey } : { password: credential }),
      hostKeySha256: hostKeySha256 as string,
      inbox: safeDecode(url.pathname) || '/',
      archive: archive as string,
      error: error as string,
      pattern: globToRegExp(ext(SftpExtension.filePattern) ?? '*'),
      minAgeMs: Math.max(0, minAge) * 1000,
      format: format as FileFormat,
      senderFacility: ext(SftpExtension.senderFacility),
    },
  };
}

/**
 * @param glob - A file name pattern with `*` and `?`.
 * @returns The equivalent anchored regular expression.
 */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  // File names from Windows tools vary in case (`X.HL7`, `x.hl7`).
  return new RegExp(`^${body}$`, 'i');
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
