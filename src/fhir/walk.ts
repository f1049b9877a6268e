/**
 * Copies a JSON value (a resource or part of one), passing every object through `map` after its
 * own members were copied (bottom up), so `map` sees and may replace finished objects such as a
 * Reference or an Attachment. Arrays and primitives are copied or kept as they are.
 * @param value - The value (not modified).
 * @param map - Returns the object to put in its place (it may return its argument).
 * @returns The copy.
 */
export function mapObjects<T>(value: T, map: (object: Record<string, unknown>) => Record<string, unknown>): T {
  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) {
      return node.map(visit);
    }
    if (!node || typeof node !== 'object') {
      return node;
    }
    const copy: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(node)) {
      copy[key] = visit(child);
    }
    return map(copy);
  };
  return visit(value) as T;
}
