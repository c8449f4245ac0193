import { MAX_JSON_DEPTH, PodflowError, findTooDeep } from '@podflow/protocol';

/** Characters of an over-deep path shown in the message (the path is MAX_JSON_DEPTH segments long). */
const SHOWN_PATH = 80;

/**
 * Refuses, before any route sees it, a parsed body whose values nest deeper than MAX_JSON_DEPTH
 * (the body itself is the outer level: `inputs`, `args`, a definition's fields may each nest
 * MAX_JSON_DEPTH levels). Deeper data would reach code that recurses (copies, validation, the
 * runners' JSON parsers) and end in a 500 or a crashed runner; here it is a 400 naming the field.
 */
export function jsonDepthGuard(maxDepth = MAX_JSON_DEPTH) {
  return (request: { body?: unknown }, _response: unknown, next: (error?: unknown) => void): void => {
    const body = request.body;
    if (typeof body !== 'object' || body === null) return next();
    const at = findTooDeep(body, maxDepth + 1, '');
    if (at === undefined) return next();
    const path = at.replace(/^\./, '');
    const shown = path.length > SHOWN_PATH ? `${path.slice(0, SHOWN_PATH)}…` : path;
    const field = /^[^.[]+/.exec(path)?.[0] ?? 'the body';
    next(
      new PodflowError(
        'BAD_REQUEST',
        `request body field "${field}" nests deeper than ${maxDepth} levels of objects and arrays (at ${shown}); JSON inputs and args may nest at most ${maxDepth} levels: flatten the data, or pass it as a string or a file`,
        { field, maxDepth },
      ),
    );
  };
}
