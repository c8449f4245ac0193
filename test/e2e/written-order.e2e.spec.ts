import { runToEnd, startStack, type Stack } from '../support/stack';
import { WRITTEN_ORDER, writtenOrderOf, writtenOrderWorkflow } from '../support/written-order';

// Issue 15: a node's files come back in the order they were written, on the process driver (the
// Kubernetes worker suite runs the same workflow on pods). Several rounds: an order that only
// holds when writes happen to fall on different clock ticks would not hold every time.
describe('files in written order (issue 15), process driver', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1 });
  });
  afterAll(() => stack?.stop());

  it.each([1, 2, 3])('Python, JavaScript and TypeScript nodes list z1, m1, a1, sub/b, 0 as written (round %i)', async () => {
    const run = await runToEnd(stack, writtenOrderWorkflow);
    expect({ status: run.status, error: run.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(writtenOrderOf(run)).toEqual({ py: WRITTEN_ORDER, js: WRITTEN_ORDER, ts: WRITTEN_ORDER });
  });
});
