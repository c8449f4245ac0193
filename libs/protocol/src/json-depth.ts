/**
 * Deepest nesting of objects and arrays accepted in JSON the API takes from users (run inputs,
 * execution args, submissions). Far above what real data needs, and far below what every part
 * of podflow handles: recursive copies in the coordinator, Python's `json` module (recursion limit
 * 1000) and the runners' own output check (512 levels), with room for the envelope around args.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Deepest node output the runners return (their own check, in the sandbox). The coordinator
 * refuses a result nested deeper before it touches it: the runner runs next to user code, so
 * what arrives is checked again where the recursion would happen.
 */
export const MAX_OUTPUT_DEPTH = 512;

/**
 * Where `value` nests deeper than `maxDepth` (a scalar is depth 0, `{}` and `[]` depth 1), as a
 * path like `inputs.a[0].b`, or `undefined` when it does not. Iterative, so it is safe on input
 * nested far deeper than the call stack allows.
 */
export function findTooDeep(value: unknown, maxDepth: number, root = '(root)'): string | undefined {
  interface Frame {
    value: unknown;
    depth: number;
    parent?: Frame;
    key?: string | number;
  }
  // Paths are built only for the answer: building one per value would cost O(size × depth).
  const pathOf = (frame: Frame): string => {
    const parts: string[] = [];
    for (let at: Frame | undefined = frame; at?.key !== undefined; at = at.parent) {
      const key = at.key;
      parts.push(typeof key === 'number' ? `[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`);
    }
    return root + parts.reverse().join('');
  };
  const isContainer = (item: unknown): item is object => typeof item === 'object' && item !== null;
  if (!isContainer(value)) return undefined;
  // Only containers get a frame: a flat array of millions of numbers costs no memory here.
  const stack: Frame[] = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    if (frame.depth > maxDepth) return pathOf(frame);
    const depth = frame.depth + 1;
    if (Array.isArray(frame.value)) {
      frame.value.forEach((item, index) => {
        if (isContainer(item)) stack.push({ value: item, depth, parent: frame, key: index });
      });
    } else {
      for (const key of Object.keys(frame.value as object)) {
        const item: unknown = (frame.value as Record<string, unknown>)[key];
        if (isContainer(item)) stack.push({ value: item, depth, parent: frame, key });
      }
    }
  }
  return undefined;
}
