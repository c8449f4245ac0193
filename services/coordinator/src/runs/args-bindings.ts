import { PodflowError, type JsonObject } from '@podflow/protocol';
import { MAX_BINDINGS_PER_NODE } from '@podflow/workflow';

/**
 * The input bindings that make a one-node run's `args` exactly `args` (POST /v1/executions, the
 * agent tools): each top-level key bound to the same run input. Each binding is an expression the
 * definition's check parses, so the keys are counted first: 100,000 of them in a 1.3 MB request
 * held the coordinator's event loop for 19 s (a red-team finding).
 * @throws PodflowError BAD_REQUEST (400) naming the limit when `args` has too many keys.
 */
export function bindingsForArgs(args: JsonObject, what: string): Record<string, string> {
  const keys = Object.keys(args);
  if (keys.length > MAX_BINDINGS_PER_NODE) {
    throw new PodflowError(
      'BAD_REQUEST',
      `${what}: args has ${keys.length} top-level keys; at most ${MAX_BINDINGS_PER_NODE} (each is handed to main as an input binding of its own): nest a larger map under one key`,
    );
  }
  // Object.fromEntries defines each key as an own property: "__proto__" included.
  return Object.fromEntries(keys.map((key) => [key, `$lookup(inputs, ${JSON.stringify(key)})`]));
}
