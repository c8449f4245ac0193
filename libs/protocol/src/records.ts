/**
 * Records keyed by user-chosen strings (node ids, input and output names, args keys).
 *
 * On a plain object `obj["__proto__"] = v` replaces the prototype instead of adding a key, and
 * `obj["constructor"]` or `obj["toString"]` read inherited functions when the key is absent: a
 * node named `__proto__` used to vanish from a run, and one named `constructor` looked present.
 * The rules, followed wherever such keys are written or read:
 * - build with `emptyRecord`/`recordOf` (no prototype: every key is an ordinary own key);
 * - read with `ownValue` (own keys only, whatever the object's prototype);
 * - write into objects of unknown origin with `setOwn`.
 * `JSON.parse`, `structuredClone`, `Object.fromEntries`, `Object.entries` and object spread keep
 * own `__proto__` keys; `Object.assign` and plain assignment do not.
 */

/** An empty record without a prototype. JSON.stringify and spreading treat it like `{}`. */
export function emptyRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** A prototype-free record of `entries`; a later duplicate key wins, as in `Object.fromEntries`. */
export function recordOf<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const record = emptyRecord<T>();
  for (const [key, value] of entries) record[key] = value;
  return record;
}

/** `record[key]` if `key` is the record's own key, else `undefined` (never an inherited member). */
export function ownValue<T>(record: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Sets an own, enumerable `key` on any object, also `__proto__` on one that has a prototype. */
export function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, writable: true, enumerable: true, configurable: true });
}
