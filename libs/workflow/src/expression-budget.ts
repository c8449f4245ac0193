/** Bounds of one expression evaluation; the coordinator takes them from its configuration. */
export interface ExpressionLimits {
  /**
   * Largest value one expression may build or return, in bytes of (compact) JSON
   * (`EXPRESSION_MAX_BYTES`). Derived from it: sequences hold at most `maxBytes / 8` items, and all
   * the values one evaluation builds add up to at most `BUILT_BYTES_FACTOR × maxBytes`.
   */
  maxBytes: number;
  /** Wall-clock bound, checked by JSONata between evaluation steps (`EXPRESSION_TIMEOUT_MS`). */
  timeoutMs: number;
  /** Deepest evaluation nesting (recursion) JSONata allows. */
  maxDepth: number;
}

/** 8 MiB: the largest node output (the runners' default) passes through a binding whole. */
export const DEFAULT_EXPRESSION_LIMITS: ExpressionLimits = { maxBytes: 8 * 1024 * 1024, timeoutMs: 1_000, maxDepth: 500 };

/** All values built during one evaluation together stay under this many times `maxBytes`. */
export const BUILT_BYTES_FACTOR = 4;

/** Items of one sequence (array): each costs at least 8 bytes of memory, so this keeps arrays within `maxBytes`. */
export function maxItemsOf(limits: ExpressionLimits): number {
  return Math.max(1, Math.floor(limits.maxBytes / 8));
}

/** An expression went past one of its limits; becomes INPUT_BINDING_FAILED naming the limit. */
export class ExpressionLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpressionLimitError';
  }
}

/** Values nested deeper than this are measured as too large (expressions cannot build them; it guards the walk). */
const MEASURE_DEPTH_GUARD = 10_000;

/** Characters of a number as JSON; integers without building a string (arrays of a million are common). */
function digitsOf(value: number): number {
  if (Number.isSafeInteger(value)) {
    const magnitude = Math.abs(value);
    return (value < 0 ? 1 : 0) + (magnitude < 10 ? 1 : Math.floor(Math.log10(magnitude)) + 1);
  }
  return String(value).length;
}

/**
 * The size accounting of one evaluation. Sizes are JSON bytes, with strings counted in UTF-16
 * code units (a lower bound of their UTF-8 size, and O(1) to read: measuring a string never
 * flattens a rope built by concatenation). Containers are measured once and remembered, so a
 * value built from shared parts (`{"a": $x, "b": $x}` repeated) is measured in O(its own keys)
 * and still counts what serialising it would produce.
 */
export class ExpressionBudget {
  private readonly sizes = new WeakMap<object, number>();
  private built = 0;
  readonly maxItems: number;
  /** When the evaluation's EXPRESSION_TIMEOUT_MS runs out (JSONata's own check runs between steps only). */
  private readonly deadline: number;

  constructor(readonly limits: ExpressionLimits) {
    this.maxItems = maxItemsOf(limits);
    this.deadline = Date.now() + limits.timeoutMs;
  }

  /**
   * Ends a loop inside one evaluation step (a regex match by match, a built-in's pass) once the
   * evaluation is past its time limit: JSONata checks its timeout between steps only.
   */
  checkTime(what: string): void {
    if (Date.now() > this.deadline) {
      throw new ExpressionLimitError(`${what} was still running when the expression's time ran out; the limit is EXPRESSION_TIMEOUT_MS=${this.limits.timeoutMs}`);
    }
  }

  /** JSON size of `value`; anything above `maxBytes` reads as `Infinity` and is not remembered. */
  sizeOf(value: unknown): number {
    return this.measure(value, 0);
  }

  /**
   * A value an evaluation step just built (a function result, an operator, a constructor):
   * refused when larger than `maxBytes`, and its new bytes count towards the evaluation total.
   */
  checkBuilt(value: unknown, what: string | (() => string)): void {
    const name = () => (typeof what === 'string' ? what : what());
    if (typeof value === 'string') {
      if (value.length + 2 > this.limits.maxBytes) this.require(value.length + 2, name());
      this.built += value.length;
    } else if (typeof value === 'object' && value !== null && !this.sizes.has(value)) {
      if (this.measure(value, 0, true) === Infinity) this.fail(`${name()} builds a value over ${this.limits.maxBytes} bytes of JSON`);
    } else {
      return;
    }
    const cap = this.limits.maxBytes * BUILT_BYTES_FACTOR;
    if (this.built > cap) {
      throw new ExpressionLimitError(
        `${name()}: the expression built more than ${cap} bytes in total (${BUILT_BYTES_FACTOR} × EXPRESSION_MAX_BYTES); build fewer or smaller intermediate values`,
      );
    }
  }

  /** Refuses, before it is built, a value of `bytes` JSON bytes that would exceed `maxBytes`. */
  require(bytes: number, what: string): void {
    if (bytes > this.limits.maxBytes) {
      const size = Number.isFinite(bytes) ? `${Math.ceil(bytes)} bytes` : `more than ${this.limits.maxBytes} bytes`;
      this.fail(`${what} would build ${size} of JSON`);
    }
  }

  /** Refuses a sequence of more than `maxItems` items before it is built. */
  requireItems(count: number, what: string): void {
    if (count > this.maxItems) {
      throw new ExpressionLimitError(
        `${what} would build ${count} items, over the limit of ${this.maxItems} items (EXPRESSION_MAX_BYTES / 8); work on smaller inputs or pass large data as files`,
      );
    }
  }

  private fail(detail: string): never {
    throw new ExpressionLimitError(
      `${detail}, over the limit of ${this.limits.maxBytes} bytes per expression value (EXPRESSION_MAX_BYTES); work on smaller inputs or pass large data as files`,
    );
  }

  /** @param countNew add the bytes of containers seen for the first time to the built total. */
  private measure(value: unknown, depth: number, countNew = false): number {
    switch (typeof value) {
      case 'string':
        return value.length + 2;
      case 'number':
        return digitsOf(value);
      case 'boolean':
        return value ? 4 : 5;
      case 'object':
        break;
      default:
        return 0; // undefined and functions are not serialised
    }
    if (value === null) return 4;
    // JSONata lambdas and native functions are objects holding their environment: not data.
    if ('_jsonata_lambda' in value || '_jsonata_function' in value) return 0;
    const known = this.sizes.get(value);
    if (known !== undefined) return known;
    if (depth > MEASURE_DEPTH_GUARD) return Infinity;
    const cap = this.limits.maxBytes;
    let size = 2;
    let own = 2;
    const add = (child: unknown, overhead: number): boolean => {
      const childSize = this.measure(child, depth + 1, countNew);
      size += childSize + overhead;
      if (typeof child !== 'object' || child === null) own += childSize + overhead;
      else own += overhead;
      return size <= cap;
    };
    if (Array.isArray(value)) {
      for (const item of value) if (!add(item, 1)) return Infinity;
    } else {
      for (const key of Object.keys(value)) {
        if (!add((value as Record<string, unknown>)[key], key.length + 4)) return Infinity;
      }
    }
    this.sizes.set(value, size);
    if (countNew) this.built += own;
    return size;
  }
}
