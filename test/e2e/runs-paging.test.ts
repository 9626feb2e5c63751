/**
 * `GET /api/runs` pages through many runs on the local host (Azurite + in-process host, the real durable client):
 * the window is read in time slices, and the pages, walked by `nextLink`, hold every run exactly once, newest first,
 * whatever the page size. The runs are created cheaply: deployment runs started with no input end at their first
 * step (Failed), with no activity run. Run `npm run build` first.
 */
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { DEPLOY_ORCHESTRATION } from '../../shared/deploy/run-status';

const RUNS = 250;
let env: TestEnvironment;
const started: string[] = [];

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-runs-paging-', pollIntervalMs: 100 });
  for (let i = 0; i < RUNS; i += 25) {
    const ids = await Promise.all(Array.from({ length: Math.min(25, RUNS - i) }, (_, k) => env.startOrchestration(DEPLOY_ORCHESTRATION, undefined, `paging-${String(i + k).padStart(3, '0')}`)));
    started.push(...ids);
  }
}, 180_000);
afterAll(async () => {
  await env?.stop();
});

async function walk(query: string): Promise<{ pages: any[][]; runs: any[] }> {
  const pages: any[][] = [];
  let next: string | undefined = `/api/runs?${query}`;
  while (next) {
    expect(pages.length).toBeLessThan(RUNS + 2);
    const r = await env.request('GET', next);
    expect(r.status).toBe(200);
    pages.push(r.body.value);
    next = r.body.nextLink;
    expect(Boolean(r.body.continuationToken)).toBe(Boolean(next));
  }
  return { pages, runs: pages.flat() };
}

const newestFirst = (a: any, b: any) => b.createdTime.localeCompare(a.createdTime) || b.id.localeCompare(a.id);

test.each(['7', '50', '100'])('%s runs a page: every run once, newest first, no gap between pages', async (top) => {
  const { pages, runs } = await walk(`type=deployment&since=2020-01-01&top=${top}`);
  const ids = runs.map((r) => r.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect([...ids].sort()).toEqual([...started].sort());
  expect([...runs].sort(newestFirst).map((r) => r.id)).toEqual(ids);
  for (const p of pages.slice(0, -1)) expect(p).toHaveLength(Number(top));
  expect(pages[pages.length - 1].length).toBeGreaterThan(0);
  expect(pages).toHaveLength(Math.ceil(RUNS / Number(top)));
}, 120_000);

test('a page size that divides the runs: the last full page has no continuation; filters page the same way', async () => {
  const { pages } = await walk('top=50');
  expect(pages).toHaveLength(RUNS / 50);
  // Every run here ended Failed at its first step: the state filter pages through all of them, none for another state.
  let failed = await walk('status=Failed&top=100');
  for (let i = 0; i < 240 && failed.runs.length < RUNS; i++) {
    await new Promise((r) => setTimeout(r, 500));
    failed = await walk('status=Failed&top=100');
  }
  expect(failed.runs.map((r) => r.id).sort()).toEqual([...started].sort());
  expect((await walk('status=Succeeded')).runs).toEqual([]);
}, 120_000);
