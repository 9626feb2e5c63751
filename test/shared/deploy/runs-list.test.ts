/**
 * `listRuns` (GET /api/runs) against a fake durable client holding a task hub's instances: the window is read in
 * time slices, so no single instance query answers more than a bound (the memory bound: the durable client's query
 * has no page size), while every page — walked by continuation token — is exactly what a naive read of the whole
 * window gives (same order, same summaries, same tokens' semantics).
 */
import { BATCH_RUN_ORCHESTRATION } from '../../../shared/batch/contract';
import { listRuns, parseRunsQuery, summarize, type ListedInstance, type RunsClient, type RunSummary } from '../../../shared/deploy/runs-list';
import { DEPLOY_ORCHESTRATION } from '../../../shared/deploy/run-status';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A task hub: dense recent runs (ties on the same millisecond), sparse older ones, an older burst, non-runs. */
function taskHub(NOW: number): ListedInstance[] {
  const out: ListedInstance[] = [];
  let n = 0;
  const states = ['Completed', 'Failed', 'Running', 'Pending', 'Terminated'];
  const add = (t: number, kind: 'deploy' | 'batch' | 'sub') => {
    const i = n++;
    const id = `run-${String(i).padStart(4, '0')}-${(i * 7919) % 1000}`;
    const createdTime = new Date(t).toISOString();
    const rs = states[i % states.length];
    if (kind === 'sub') out.push({ name: 'batchChunk', instanceId: `${id}:chunk`, runtimeStatus: 'Completed', createdTime, lastUpdatedTime: createdTime });
    else if (kind === 'batch')
      out.push({ name: BATCH_RUN_ORCHESTRATION, instanceId: id, runtimeStatus: rs, input: { job: { model: { name: `m${i % 3}`, version: 1 }, image: { name: 'img', version: 2 } } }, createdTime, lastUpdatedTime: createdTime });
    else
      out.push({
        name: DEPLOY_ORCHESTRATION,
        instanceId: id,
        runtimeStatus: rs,
        input: { manifest: { service: { name: `svc-${i % 4}` }, image: { name: 'img' } }, model: { name: `m${i % 3}` } },
        ...(rs === 'Completed' ? { output: { state: i % 2 ? 'Succeeded' : 'RolledBack', serviceName: `svc-${i % 4}` } } : {}),
        createdTime,
        lastUpdatedTime: createdTime,
      });
  };
  // 250 recent runs 10 ms apart, every fifth one sharing its millisecond with the next; sub-orchestrations between.
  for (let k = 0; k < 250; k++) {
    const t = NOW - 3_000 - k * 10 + (k % 5 === 4 ? 10 : 0);
    add(t, k % 3 === 0 ? 'batch' : 'deploy');
    if (k % 10 === 0) add(t + 1, 'sub');
  }
  // A run a moment in the future (another instance's clock).
  add(NOW + 2_000, 'deploy');
  // 60 runs an hour apart, from two days ago.
  for (let k = 0; k < 60; k++) add(NOW - 2 * DAY - k * HOUR, k % 2 ? 'batch' : 'deploy');
  // An older burst: 40 runs 1 ms apart.
  for (let k = 0; k < 40; k++) add(NOW - 8 * DAY - k, 'deploy');
  // Before the default window.
  add(NOW - 40 * DAY, 'deploy');
  return out;
}

/** The durable client's instance query (inclusive bounds), counting what each call answers. */
function fakeClient(hub: ListedInstance[]): RunsClient & { answered: number[]; withInputs: number[]; readById: string[] } {
  const answered: number[] = [];
  const withInputs: number[] = [];
  const readById: string[] = [];
  const strip = (s: ListedInstance, showInput?: boolean) => (showInput ? structuredClone(s) : structuredClone({ ...s, input: undefined }));
  return {
    answered,
    withInputs,
    readById,
    async getStatus(id, options) {
      readById.push(id);
      const s = hub.find((x) => x.instanceId === id);
      if (!s) throw Object.assign(new Error(`instance ${id} not found`), { statusCode: 404 });
      return strip(s, options?.showInput);
    },
    async getStatusBy(f) {
      const hit = hub.filter((s) => {
        const t = new Date(s.createdTime!).getTime();
        if (f.createdTimeFrom && t < f.createdTimeFrom.getTime()) return false;
        if (f.createdTimeTo && t > f.createdTimeTo.getTime()) return false;
        if (f.runtimeStatus && !f.runtimeStatus.map(String).includes(String(s.runtimeStatus))) return false;
        return true;
      });
      answered.push(hit.length);
      if (f.showInput) withInputs.push(hit.length);
      return hit.map((s) => strip(s, f.showInput));
    },
  };
}

/** The former reading: the whole window at once, filtered, sorted newest first. */
function naive(hub: ListedInstance[], q: URLSearchParams, NOW: number): RunSummary[] {
  const f = parseRunsQuery(q, NOW);
  return hub
    .filter((s) => new Date(s.createdTime!).getTime() >= f.since.getTime())
    .map(summarize)
    .filter((r): r is RunSummary => !!r)
    .filter((r) => !f.type || r.type === f.type)
    .filter((r) => !f.state || r.state === f.state)
    .filter((r) => !f.service || r.serviceName === f.service)
    .filter((r) => !f.model || (r.model ?? '').replace(/:\d+$/, '') === f.model)
    .sort((a, b) => (b.createdTime ?? '').localeCompare(a.createdTime ?? '') || b.id.localeCompare(a.id));
}

/**
 * The largest answer of one instance query. At a steady density a slice aims at a page (+1) of instances; the largest
 * answers are the slices that cross an empty stretch into denser runs (widened twofold per empty slice, so at most
 * about twice that stretch: here 3.2 s of the runs 10 ms apart, from the future run's cursor). A whole-window query
 * answers every instance of the hub (over 700) at once.
 */
const MAX_ANSWER = 160;

const cases: Record<string, string>[] = [
  {},
  { top: '1' },
  { top: '7' },
  { top: '100' },
  { type: 'batch', top: '9' },
  { service: 'svc-1', top: '13' },
  { model: 'm2', status: 'Running', top: '5' },
  { since: new Date(Date.now() - 60 * DAY).toISOString().slice(0, 10), top: '20' },
  { since: new Date(Date.now() - 60 * DAY).toISOString().slice(0, 10), status: 'Terminated', top: '3' },
  { service: 'no-such-service' },
];

test.each(cases)('pages of %j equal the naive full read; no instance query answers more than the bound', async (params) => {
  const NOW = Date.now();
  const hub = taskHub(NOW);
  const client = fakeClient(hub);
  const q = new URLSearchParams(params);
  const expected = naive(hub, q, NOW);
  const top = parseRunsQuery(q, NOW).top;
  const seen: RunSummary[] = [];
  let maxAnswered = 0;
  for (let pages = 0; ; pages++) {
    expect(pages).toBeLessThan(1000);
    client.answered.length = 0;
    const page = await listRuns(client, parseRunsQuery(q, NOW));
    expect(page.value).toEqual(expected.slice(seen.length, seen.length + top));
    expect(Math.max(0, ...client.answered)).toBeLessThanOrEqual(MAX_ANSWER);
    maxAnswered = Math.max(maxAnswered, ...client.answered);
    seen.push(...page.value);
    if (!page.continuationToken) break;
    expect(page.value).toHaveLength(top);
    q.set('continuationToken', page.continuationToken);
  }
  expect(seen).toEqual(expected);
  expect(maxAnswered).toBeGreaterThan(0);
  expect(new Set(seen.map((r) => r.id)).size).toBe(seen.length);
  // The hub is larger than the bound: a whole-window query would break it.
  expect(hub.length).toBeGreaterThan(2 * MAX_ANSWER);
});

test('changedSince polls are unchanged: the new runs and those not ended', async () => {
  const NOW = Date.now();
  const hub = taskHub(NOW);
  const client = fakeClient(hub);
  const q = new URLSearchParams({ changedSince: new Date(NOW - 3_500).toISOString(), top: '100' });
  const page = await listRuns(client, parseRunsQuery(q, NOW));
  const notEnded = new Set(hub.filter((s) => ['Running', 'Pending'].includes(String(s.runtimeStatus))).map((s) => s.instanceId));
  const expected = naive(hub, new URLSearchParams({ top: '100' }), NOW).filter((r) => Date.parse(r.createdTime!) >= NOW - 3_500 - 5_000 || notEnded.has(r.id));
  expect(page.value).toEqual(expected.slice(0, 100));
  expect(client.answered).toHaveLength(2);
});

test('changedSince reads the runs not ended without inputs, then only as many inputs by id as a page needs', async () => {
  const NOW = Date.now();
  const hub = taskHub(NOW);
  // A batch run still going, with 300 chunk sub-orchestrations running, each holding its files.
  const t = new Date(NOW - 5 * DAY).toISOString();
  for (let k = 0; k < 300; k++) hub.push({ name: 'batchChunk', instanceId: `big:chunk-${k}`, runtimeStatus: 'Running', input: { files: Array.from({ length: 100 }, (_, f) => `in/${k}/${f}.csv`) }, createdTime: t, lastUpdatedTime: t });
  const notEnded = new Set(hub.filter((s) => ['Running', 'Pending'].includes(String(s.runtimeStatus))).map((s) => s.instanceId));
  const pages: Record<string, string>[] = [{ top: '5' }, { top: '100' }, { service: 'svc-1', top: '3' }, { model: 'm2', top: '4' }, { type: 'batch', top: '2' }];
  for (const params of pages) {
    const client = fakeClient(hub);
    const changedSince = new Date(NOW - 3_500).toISOString();
    const page = await listRuns(client, parseRunsQuery(new URLSearchParams({ ...params, changedSince }), NOW));
    const expected = naive(hub, new URLSearchParams(params), NOW).filter((r) => Date.parse(r.createdTime!) >= NOW - 3_500 - 5_000 || notEnded.has(r.id));
    const top = Number(params.top);
    expect({ params, ids: page.value.map((r) => r.id) }).toEqual({ params, ids: expected.slice(0, top).map((r) => r.id) });
    expect(page.value).toEqual(expected.slice(0, top));
    // One query with inputs (the runs created since), the not-ended one without; no chunk is read by id.
    expect(client.withInputs).toHaveLength(1);
    expect(client.readById.filter((id) => id.includes(':chunk'))).toEqual([]);
    // Inputs read by id: those a page (+1) needed, in groups of 8 — not every run still going.
    expect(client.readById.length).toBeLessThan(notEnded.size / 2);
  }
});

test('changedSince: a run purged between the listing and the read by id is answered from the listing', async () => {
  const NOW = Date.now();
  const t = new Date(NOW - DAY).toISOString();
  const hub: ListedInstance[] = [{ name: DEPLOY_ORCHESTRATION, instanceId: 'gone', runtimeStatus: 'Running', input: { manifest: { service: { name: 's' }, image: { name: 'i' } } }, createdTime: t, lastUpdatedTime: t }];
  const client = fakeClient(hub);
  client.getStatus = async (id) => {
    client.readById.push(id);
    throw Object.assign(new Error('not found'), { statusCode: 404 });
  };
  const page = await listRuns(client, parseRunsQuery(new URLSearchParams({ changedSince: new Date(NOW - 1000).toISOString() }), NOW));
  expect(page.value).toEqual([{ id: 'gone', type: 'deployment', state: 'Running', createdTime: t, lastUpdatedTime: t }]);
  expect(client.readById).toEqual(['gone']);
});

test('a continuation point older than the window answers an empty page without an instance query', async () => {
  const NOW = Date.now();
  const client = fakeClient(taskHub(NOW));
  // The token of a walk with a longer `since`, used with the default 30-day window.
  const token = Buffer.from(JSON.stringify([new Date(NOW - 40 * DAY).toISOString(), 'run-x'])).toString('base64url');
  const page = await listRuns(client, parseRunsQuery(new URLSearchParams({ continuationToken: token }), NOW));
  expect(page.value).toEqual([]);
  expect(page.continuationToken).toBeUndefined();
  expect(client.answered).toEqual([]);
});
