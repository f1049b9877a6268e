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

/** A partner SFTP server and folder, read from its Endpoint and the bot secrets. */
export interface SftpServer {
  /** The Endpoint's name (its identifier), for ledgers and logs. */
  readonly name: string;
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** Exactly one of password and private key (a PEM or OpenSSH key in the secret). */
  readonly password?: string;
  readonly privateKey?: string;
  readonly hostKeySha256: string;
  /** The folder of the Endpoint's address. */
  readonly folder: string;
}

/** A partner SFTP folder the hub takes files from. */
export interface SftpSource extends SftpServer {
  readonly archive: string;
  readonly error: string;
  readonly pattern: RegExp;
  readonly minAgeMs: number;
  readonly format: FileFormat;
  readonly senderFacility?: string;
}

/**
 * Reads the connection part of an SFTP Endpoint (`address` `sftp://host[:port]/folder`, the
 * login, the pinned host key and the name of the bot secret with the credential). Everything
 * about a partner is data; the credential comes from the secret the Endpoint names, so no secret
 * lives in a resource.
 * @param endpoint - The Endpoint.
 * @param secrets - `event.secrets`.
 * @returns The server, or every problem with its configuration (names, never secret values).
 */
export function readSftpServer(endpoint: Endpoint, secrets: Record<string, ProjectSetting> | undefined): { server: SftpServer } | { problems: string[] } {
  const problems: string[] = [];
  const label = `Endpoint/${endpoint.id}`;
  const ext = (url: string): string | undefined => extensionString(endpoint, url);
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
  if (problems.length || !url) {
    return { problems };
  }
  const isKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(credential as string);
  // A key kept on one line (an environment variable) carries its line breaks as `\n`.
  const privateKey = isKey ? (credential as string).replace(/\\n/g, '\n') : undefined;
  return {
    server: {
      name: endpoint.identifier?.find((i) => i.system === SFTP_SOURCE_SYSTEM)?.value ?? endpoint.id ?? 'unnamed',
      endpoint: label,
      host: url.hostname,
      port: url.port ? Number(url.port) : 22,
      username: username as string,
      ...(privateKey ? { privateKey } : { password: credential }),
      hostKeySha256: hostKeySha256 as string,
      folder: safeDecode(url.pathname) || '/',
    },
  };
}

/**
 * Reads an SFTP source (a folder the hub takes files from): the server, plus the file format,
 * the archive and error folders, the file pattern, the minimum age and the sender.
 * @param endpoint - The Endpoint.
 * @param secrets - `event.secrets`.
 * @returns The source, or every problem with its configuration (names, never secret values).
 */
export function readSftpSource(endpoint: Endpoint, secrets: Record<string, ProjectSetting> | undefined): { source: SftpSource } | { problems: string[] } {
  const label = `Endpoint/${endpoint.id}`;
  const server = readSftpServer(endpoint, secrets);
  const problems = 'problems' in server ? [...server.problems] : [];
  const format = endpoint.payloadType?.flatMap((t) => t.coding ?? []).find((c) => c.system === FILE_FORMAT_SYSTEM)?.code as FileFormat | undefined;
  if (!format || !FORMATS.includes(format)) {
    problems.push(`${label}: payloadType must be one of ${FORMATS.map((f) => `${FILE_FORMAT_SYSTEM}|${f}`).join(', ')}`);
  }
  const archive = extensionString(endpoint, SftpExtension.archiveFolder);
  const error = extensionString(endpoint, SftpExtension.errorFolder);
  if (!archive || !error) {
    problems.push(`${label}: both ${SftpExtension.archiveFolder} and ${SftpExtension.errorFolder} are required`);
  }
  if (problems.length || 'problems' in server) {
    return { problems };
  }
  const minAge = endpoint.extension?.find((e) => e.url === SftpExtension.minAgeSeconds)?.valueInteger ?? 60;
  return {
    source: {
      ...server.server,
      archive: archive as string,
      error: error as string,
      pattern: globToRegExp(extensionString(endpoint, SftpExtension.filePattern) ?? '*'),
      minAgeMs: Math.max(0, minAge) * 1000,
      format: format as FileFormat,
      senderFacility: extensionString(endpoint, SftpExtension.senderFacility),
    },
  };
}

/**
 * @param endpoint - An Endpoint.
 * @param url - An extension URL.
 * @returns The extension's trimmed valueString, or undefined when absent or empty.
 */
export function extensionString(endpoint: Endpoint, url: string): string | undefined {
  return endpoint.extension?.find((e) => e.url === url)?.valueString?.trim() || undefined;
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
