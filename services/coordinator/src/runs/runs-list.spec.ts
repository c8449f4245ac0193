import type { RunRecord } from '@podflow/workflow';
import { MAX_RUNS_EXAMINED, RunsService } from './runs.service';

// The paging of GET /v1/runs over a store of plain records (pure logic: the store's order is
// Redis's ZREVRANGEBYSCORE, newest first).
function serviceOver(records: RunRecord[]) {
  const reads: string[] = [];
  const byId = new Map(records.map((record) => [record.id, record]));
  const newestFirst = [...records].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
  const store = {
    listRunIds: async (_tenant: string, atOrBefore: number | undefined, count: number) =>
      newestFirst.filter((r) => atOrBefore === undefined || r.createdAt <= atOrBefore).slice(0, count).map((r) => ({ id: r.id, createdAt: r.createdAt })),
    record: async (id: string) => {
      reads.push(id);
      return byId.get(id);
    },
    forgetRun: async () => undefined,
  };
  const unused = undefined as never;
  const service = new RunsService(unused, store as never, unused, unused, unused, unused, unused, unused, unused, unused, unused, unused);
  return { service, reads };
}

const run = (i: number, workflowId: string): RunRecord => ({ id: `run-${String(i).padStart(5, '0')}`, tenantId: 't', workflowId, status: 'succeeded', createdAt: 1_000_000 + i }) as unknown as RunRecord;

describe('RunsService.list', () => {
  it(`reads at most ${MAX_RUNS_EXAMINED} runs for a page, and a filter that matches few gives a shorter page with a cursor to go on from (a red-team finding: one request read every run kept)`, async () => {
    const records = Array.from({ length: 2_000 }, (_, i) => run(i, i === 100 ? 'rare' : 'common'));
    const { service, reads } = serviceOver(records);
    const first = await service.list('t', { workflowId: 'nothing-like-it', limit: 1 });
    expect(reads).toHaveLength(MAX_RUNS_EXAMINED);
    expect(first).toEqual({ runs: [], nextCursor: `${1_000_000 + 2_000 - MAX_RUNS_EXAMINED}:run-0${2_000 - MAX_RUNS_EXAMINED}` });
    // Going on from cursor to cursor finds the one match, and ends without a cursor.
    const found = [];
    let cursor: string | undefined = first.nextCursor;
    let pages = 1;
    while (cursor) {
      const page = await service.list('t', { workflowId: 'rare', limit: 10, cursor });
      found.push(...page.runs.map((r) => r.id));
      cursor = page.nextCursor;
      pages++;
    }
    // Four pages of 500 reads each, and a fifth, empty, that says there is no more.
    expect({ found, pages, reads: reads.length }).toEqual({ found: ['run-00100'], pages: 5, reads: 2_000 });
  });

  it('fills a page of an unfiltered list with exactly limit runs and a cursor', async () => {
    const { service, reads } = serviceOver(Array.from({ length: 300 }, (_, i) => run(i, 'w')));
    const page = await service.list('t', { limit: 200 });
    expect({ runs: page.runs.length, first: page.runs[0]!.id, nextCursor: page.nextCursor, reads: reads.length }).toEqual({ runs: 200, first: 'run-00299', nextCursor: '1000100:run-00100', reads: 200 });
  });
});
