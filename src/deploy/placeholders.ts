/**
 * Placeholders in managed-resource files, resolved at deploy time:
 * - `{{<ResourceType>/<name>}}`: the managed resource of that type and name on the target,
 *   written as `<ResourceType>/<id>` (e.g. `"endpoint": "{{Bot/adt-inbound}}"`);
 * - `{{env:<NAME>}}`: the value of an environment variable (secrets and per-site URLs stay out of
 *   the repository).
 */
const PLACEHOLDER = /\{\{\s*([^}]+?)\s*\}\}/g;

/** A reference placeholder found in a template. */
export interface ManagedRef {
  readonly resourceType: string;
  readonly name: string;
}

/**
 * @param key - `Type/name`.
 * @returns The parts.
 */
function parseManagedKey(key: string): ManagedRef | undefined {
  const match = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9][A-Za-z0-9._-]*)$/.exec(key);
  return match ? { resourceType: match[1], name: match[2] } : undefined;
}

/**
 * Lists the placeholders of a template.
 * @param template - Any JSON value.
 * @returns Managed references and environment variable names, deduplicated.
 */
export function findPlaceholders(template: unknown): { refs: ManagedRef[]; env: string[]; invalid: string[] } {
  const refs = new Map<string, ManagedRef>();
  const env = new Set<string>();
  const invalid = new Set<string>();
  visitStrings(template, (text) => {
    for (const match of text.matchAll(PLACEHOLDER)) {
      const body = match[1];
      if (body.startsWith('env:')) {
        const name = body.slice(4);
        if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
          env.add(name);
        } else {
          invalid.add(match[0]);
        }
        continue;
      }
      const ref = parseManagedKey(body);
      if (ref) {
        refs.set(body, ref);
      } else {
        invalid.add(match[0]);
      }
    }
  });
  return { refs: [...refs.values()], env: [...env], invalid: [...invalid] };
}

/** How placeholders are resolved. */
export interface PlaceholderValues {
  /** `Type/name` to the target id; undefined when the resource does not exist yet. */
  readonly idOf: (ref: ManagedRef) => string | undefined;
  /** Environment lookup. */
  readonly env: (name: string) => string | undefined;
}

/**
 * Replaces every placeholder of a template. A reference to a resource that does not exist yet
 * resolves to `Type/<pending:name>` (only a dry run can see that); a missing environment
 * variable is an error.
 * @param template - Any JSON value.
 * @param values - How to resolve.
 * @returns A deep copy with placeholders replaced.
 */
export function resolvePlaceholders<T>(template: T, values: PlaceholderValues): T {
  return mapStrings(template, (text) =>
    text.replace(PLACEHOLDER, (whole, body: string) => {
      if (body.startsWith('env:')) {
        const value = values.env(body.slice(4));
        if (value === undefined || value === '') {
          throw new Error(`Environment variable ${body.slice(4)} is not set (needed by ${whole})`);
        }
        return value;
      }
      const ref = parseManagedKey(body);
      if (!ref) {
        throw new Error(`Invalid placeholder ${whole}`);
      }
      return `${ref.resourceType}/${values.idOf(ref) ?? `<pending:${ref.name}>`}`;
    })
  );
}

function visitStrings(value: unknown, visit: (text: string) => void): void {
  if (typeof value === 'string') {
    visit(value);
  } else if (Array.isArray(value)) {
    value.forEach((v) => visitStrings(v, visit));
  } else if (value && typeof value === 'object') {
    Object.values(value).forEach((v) => visitStrings(v, visit));
  }
}

function mapStrings<T>(value: T, map: (text: string) => string): T {
  if (typeof value === 'string') {
    return map(value) as T;
  }
  if (Array.isArray(value)) {
    return value.map((v) => mapStrings(v, map)) as T;
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, map)])) as T;
  }
  return value;
}
