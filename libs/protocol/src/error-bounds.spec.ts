import { MAX_ERROR_TEXT_CHARS, boundNodeError } from './error-bounds';
import type { NodeError } from './errors';

describe('boundNodeError', () => {
  it('keeps a small error as it is', () => {
    const error: NodeError = { code: 'CODE_EXECUTION_FAILED', message: 'boom', type: 'ValueError', stack: 'line 1', details: { exitCode: 1 } };
    expect(boundNodeError(error)).toBe(error);
  });

  it('cuts a huge message and stack, saying how long they were, and drops huge or deep details', () => {
    const huge = 'x'.repeat(3 * 1024 * 1024);
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) deep = { d: deep };
    const bounded = boundNodeError({ code: 'CODE_EXECUTION_FAILED', message: huge, stack: huge, type: huge, details: { blob: huge } });
    expect(bounded.message).toBe(`${'x'.repeat(MAX_ERROR_TEXT_CHARS)}… [truncated: ${huge.length} characters in all]`);
    expect(bounded.stack).toBe(bounded.message);
    expect(bounded.type!.length).toBeLessThan(300);
    expect(bounded.details).toEqual({ truncated: expect.stringContaining(`were ${huge.length + 11} bytes of JSON`) });
    expect(boundNodeError({ code: 'INTERNAL', message: 'm', details: deep }).details).toEqual({ truncated: expect.stringContaining('deeper than 16 levels') });
    expect(JSON.stringify(bounded).length).toBeLessThan(3 * MAX_ERROR_TEXT_CHARS);
  });
});
