/**
 * Removes the characters a FHIR `string` may not hold: the controls below U+0020 other than tab,
 * CR and LF (and the noncharacters U+FFFE, U+FFFF). HL7 text has no business carrying them, but
 * senders, `\Xhh\` escapes and log lines quoting them do, and one would make a whole resource fail
 * validation.
 * @param text - Text bound for a FHIR string.
 * @returns The text without them.
 */
export function stripControlCharacters(text: string): string {
  return text.replace(CONTROL_CHARACTERS, '');
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;
