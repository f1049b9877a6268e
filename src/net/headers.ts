/** Request headers as bots get them (`BotEvent.headers`): any case, a value or a list. */
export type HeaderMap = Record<string, string | string[] | undefined> | undefined;

/**
 * Reads a request header whatever the case of its name (Node lowercases names; other callers
 * may not), taking the first value of a repeated header.
 * @param headers - The headers.
 * @param name - The header name, lowercase.
 * @returns The value, or undefined.
 */
export function headerValue(headers: HeaderMap, name: string): string | undefined {
  const entry = Object.entries(headers ?? {}).find(([key]) => key.toLowerCase() === name);
  const value = entry?.[1];
  return Array.isArray(value) ? value[0] : value;
}
