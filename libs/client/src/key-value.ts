import type { JsonObject, JsonValue } from '@podflow/protocol';

/** `k=v` pairs from the command line; a value that parses as JSON is taken as JSON, else as text. */
export function parseKeyValue(pairs: string[]): JsonObject {
  // Keys are the user's: without a prototype, `--input __proto__=x` is a key like any other.
  const result: JsonObject = Object.create(null) as JsonObject;
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`"${pair}" is not key=value (for example --input name=Ada or --input count=3)`);
    const raw = pair.slice(at + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(raw) as JsonValue;
    } catch {
      value = raw;
    }
    result[pair.slice(0, at)] = value;
  }
  return result;
}
