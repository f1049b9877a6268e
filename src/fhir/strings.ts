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

/**
 * Hides the values an error text quotes. The hub's error texts name fields, but some quote the
 * offending value (a date, a code as sent), and server errors may quote what was stored: patient
 * data in either case, so a text bound for a process log or CLI output goes through this first.
 * @param text - An error text.
 * @returns The text with each quoted value replaced by `'…'` (or `"…"`).
 */
export function hideValues(text: string): string {
  // A quote followed by a letter or digit is inside the value (O'Brien), not its end.
  return text.replace(/'(?:[^']|'(?=[\p{L}\p{N}]))*'/gu, "'…'").replace(/"(?:[^"]|"(?=[\p{L}\p{N}]))*"/gu, '"…"');
}

/**
 * @param text - A text.
 * @param max - Its longest shown length, the ellipsis included.
 * @returns The text, cut with `…` when longer.
 */
export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;
