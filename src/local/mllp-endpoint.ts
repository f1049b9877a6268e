/** The stock agent's default encoding (`@medplum/hl7` DEFAULT_ENCODING). */
export const DEFAULT_MLLP_ENCODING = 'utf-8';

/** `appLevelAck` values: MSH-16 (HL7 table 0155). */
export type AppLevelAckMode = 'AL' | 'ER' | 'NE' | 'SU';
const APP_LEVEL_ACK_MODES: readonly string[] = ['AL', 'ER', 'NE', 'SU'];

/** MSA-1 codes of application-level acknowledgements (commit ACKs CA/CE/CR are not among them). */
export const APP_LEVEL_ACK_CODES: readonly string[] = ['AA', 'AE', 'AR'];

/** The stock agent's enhanced acknowledgement modes (`enhanced=true` and `enhanced=aa`). */
export type EnhancedMode = 'standard' | 'aaMode';

/** The settings the stock agent reads from an `mllp://` Endpoint address. */
export interface ChannelSettings {
  readonly address: string;
  readonly configuredPort: number;
  readonly encoding: string;
  readonly enhancedMode?: EnhancedMode;
  readonly appLevelAck: AppLevelAckMode;
  readonly assignSeqNo: boolean;
  readonly messagesPerMin?: number;
}

/** Result of {@link parseMllpAddress}: settings, or why there are none; warnings for ignored values. */
export interface ParsedMllpAddress {
  readonly settings?: ChannelSettings;
  readonly error?: string;
  readonly warnings: string[];
}

/**
 * Reads what the stock agent reads from
 * `mllp://host:port?encoding=&enhanced=true|aa&appLevelAck=AL|ER|NE|SU&assignSeqNo=true&messagesPerMin=N`:
 * only the port of the authority is used; invalid option values fall back to the stock defaults
 * (no enhanced mode, AL, no throttling) with a warning.
 * @param address - The Endpoint address.
 * @returns The settings or an error, plus warnings.
 */
export function parseMllpAddress(address: string | undefined): ParsedMllpAddress {
  const warnings: string[] = [];
  if (!address) {
    return { error: 'empty address', warnings };
  }
  let url: URL;
  try {
    url = new URL(address);
  } catch (_err) {
    return { error: `address '${address}' is not a URL`, warnings };
  }
  if (url.protocol !== 'mllp:') {
    return { error: `'${url.protocol}//' channels are not supported by the local runtime (only mllp://)`, warnings };
  }
  const configuredPort = Number.parseInt(url.port, 10);
  if (!Number.isInteger(configuredPort)) {
    return { error: 'address has no port', warnings };
  }
  const params = url.searchParams;

  let enhancedMode: EnhancedMode | undefined;
  const enhanced = params.get('enhanced')?.toLowerCase();
  if (enhanced === 'true') {
    enhancedMode = 'standard';
  } else if (enhanced === 'aa') {
    enhancedMode = 'aaMode';
  } else if (enhanced) {
    warnings.push(`invalid enhanced value '${params.get('enhanced')}'; expected 'true' or 'aa'. Enhanced mode disabled`);
  }

  let appLevelAck: AppLevelAckMode = 'AL';
  const appLevelAckRaw = params.get('appLevelAck');
  if (appLevelAckRaw) {
    if (APP_LEVEL_ACK_MODES.includes(appLevelAckRaw.toUpperCase())) {
      appLevelAck = appLevelAckRaw.toUpperCase() as AppLevelAckMode;
    } else {
      warnings.push(`invalid appLevelAck value '${appLevelAckRaw}'; expected one of AL, ER, NE, SU. Using AL`);
    }
  }

  let messagesPerMin: number | undefined;
  const messagesPerMinRaw = params.get('messagesPerMin');
  if (messagesPerMinRaw) {
    messagesPerMin = Number.parseInt(messagesPerMinRaw, 10);
    if (!Number.isInteger(messagesPerMin)) {
      warnings.push(`invalid messagesPerMin '${messagesPerMinRaw}'; must be an integer. Not throttling`);
      messagesPerMin = undefined;
    }
  }

  return {
    settings: {
      address,
      configuredPort,
      encoding: params.get('encoding') ?? DEFAULT_MLLP_ENCODING,
      enhancedMode,
      appLevelAck,
      assignSeqNo: params.get('assignSeqNo')?.toLowerCase() === 'true',
      messagesPerMin,
    },
    warnings,
  };
}

/**
 * The stock agent's `shouldSendAppLevelAck`: whether a bot's AA/AE/AR is forwarded to the sender.
 * @param settings - The channel's enhanced mode and `appLevelAck`.
 * @param settings.enhancedMode - The enhanced mode, if any.
 * @param settings.appLevelAck - The `appLevelAck` mode.
 * @param ackCode - MSA-1 of the bot's answer (AA, AE or AR).
 * @returns True when the ACK is written to the sender.
 */
export function shouldSendAppLevelAck(
  settings: { readonly enhancedMode?: EnhancedMode; readonly appLevelAck: AppLevelAckMode },
  ackCode: string
): boolean {
  if (!settings.enhancedMode) {
    return true;
  }
  // aaMode already answered AA on receipt; a second application ACK would confuse the sender.
  if (settings.enhancedMode === 'aaMode') {
    return false;
  }
  switch (settings.appLevelAck) {
    case 'AL':
      return true;
    case 'NE':
      return false;
    case 'ER':
      return ackCode !== 'AA';
    case 'SU':
      return ackCode === 'AA';
    default:
      return true;
  }
}
