/**
 * Batch scoring end to end through the real entry points (HTTP, blob trigger) on the local host with fresh Azurite:
 * the real orchestrations, activities, image registry and local batch pools (runtime processes).
 * Run `npm run build` first (the host loads the app from dist/).
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import {
  faultsJob,
  isAlive,
  killPools,
  poolDirs,
  poolPids,
  prepareFixture,
  readJson,
  readResult,
  readText,
  root,
  uploadIris,
  uploadJsonl,
  waitUntil,
  type Fixture,
} from './batch-helpers';

let env: TestEnvironment;
let fx: Fixture;
let workDir: string;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-batch-e2e-' });
  workDir = env.workDir;
  fx = await prepareFixture(env.connectionString);
}, 60_000);

afterAll(async () => {
  if (workDir) killPools(workDir);
  await env?.stop();
});

async function submit(job: unknown): Promise<string> {
  const r = await env.request('POST', '/api/batch-runs', job);
  if (r.status !== 202) throw new Error(`submit failed: ${r.status} ${r.text}`);
  expect(r.headers.get('location')).toContain(`/api/batch-runs/${r.body.id}`);
  return r.body.id as string;
}

async function finished(id: string, timeoutMs = 60_000): Promise<any> {
  return waitUntil(
    async () => {
      const r = await env.request('GET', `/api/batch-runs/${id}`);
      return r.status === 200 && ['Succeeded', 'Failed', 'Terminated'].includes(r.body.state) ? r.body : undefined;
    },
    timeoutMs,
    `batch run ${id}; host log tail:\n${env.logs.slice(-15).join('\n')}`,
  );
}

/** The pool of a finished run is gone: no folder, no process. */
async function expectPoolGone(pidsSeen: number[]): Promise<void> {
  await waitUntil(async () => poolDirs(workDir).length === 0 && pidsSeen.every((p) => !isAlive(p)), 15_000, 'pool teardown');
}

/** Collects pool pids while a run is going (the folder disappears at teardown). */
function watchPids(): { pids: Set<number>; stop: () => void } {
  const pids = new Set<number>();
  const t = setInterval(() => poolPids(workDir).forEach((p) => pids.add(p)), 50);
  return { pids, stop: () => clearInterval(t) };
}

test('happy path, tabular CSV: every row once, in input order; summary; pool torn down', async () => {
  await uploadIris(fx.storage, 'happy-tab/', 6, 90); // 15 rows per file
  const w = watchPids();
  const runs = () => env.host.durable.activityRuns.get('batchScoreMiniBatchGroup') ?? 0;
  const runsBefore = runs();
  const id = await submit({
    name: 'happy-tabular',
    model: 'iris-linear',
    entry_script: 'iris.js',
    source_directory: 'code/scripts',
    inputs: { container: 'batch-data', prefix: 'happy-tab/' },
    input_kind: 'tabular',
    mini_batch_size: '4 rows', // 4+4+4+3 per file → 24 mini-batches
    process_count_per_node: 2,
    error_threshold: 0,
    output: { container: 'batch-output', prefix: 'happy-tab/' },
    append_row_file_name: 'predictions.txt',
  });
  const view = await finished(id);
  w.stop();
  expect(view).toMatchObject({ id, kind: 'batch', state: 'Succeeded', runtimeStatus: 'Completed', phase: 'completed' });
  expect(view.counts.items).toEqual({ total: 90, succeeded: 90, failed: 0, notRun: 0 });
  expect(view.counts.miniBatches).toMatchObject({ total: 24, succeeded: 24, failed: 0, partial: 0, notRun: 0 });
  // The sliding window (2 workers → 32 in flight, refilled 16 at a time, 8 per scoring call) scheduled each
  // mini-batch exactly once, and each scheduled call ran once.
  const { chunkInstanceId } = await import('../../shared/batch/run');
  const scheduled = (await env.host.durable.getHistory(chunkInstanceId(id, 0))).filter((e) => e.EventType === 4 && e.Name === 'batchScoreMiniBatchGroup');
  const indices = scheduled.flatMap((e) => (JSON.parse(String(e.Input)) as { items: { index: number }[] }).items.map((x) => x.index));
  expect(indices.sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i));
  expect(scheduled.length).toBeLessThan(24);
  expect(runs() - runsBefore).toBe(scheduled.length);
  expect(view.progress).toMatchObject({ miniBatches: { total: 24, done: 24, failed: 0 }, items: { total: 90, done: 90 } });
  expect(view.output).toBe(`batch-output/happy-tab/${id}/predictions.txt`);
  const lines = (await readText(fx.storage, view.output)).trim().split('\n');
  expect(lines.map((l) => Number(l.split(',')[0]))).toEqual(Array.from({ length: 90 }, (_, i) => i));
  const summary = await readJson(fx.storage, view.summary);
  expect(summary).toMatchObject({ runId: id, status: 'Succeeded', output: { rows: 90 }, plan: { miniBatchCount: 24, itemCount: 90 } });
  expect(summary.job.name).toBe('happy-tabular');
  expect(w.pids.size).toBe(1);
  await expectPoolGone([...w.pids]);
}, 90_000);

test('happy path, files (YAML body): one line per file, in file order', async () => {
  await uploadIris(fx.storage, 'happy-files/', 7, 70);
  const yaml = [
    'model: iris-linear',
    'entry_script: iris.js',
    'source_directory: code/scripts',
    'inputs: { container: batch-data, prefix: happy-files/ }',
    'input_kind: files',
    'mini_batch_size: 3',
    'process_count_per_node: 1',
    'output: { container: batch-output, prefix: happy-files/ }',
  ].join('\n');
  const r = await env.request('POST', '/api/batch-runs', yaml, { 'content-type': 'application/yaml' });
  expect(r.status).toBe(202);
  const view = await finished(r.body.id);
  expect(view.state).toBe('Succeeded');
  expect(view.counts.items).toEqual({ total: 7, succeeded: 7, failed: 0, notRun: 0 });
  expect(view.counts.miniBatches.total).toBe(3);
  const lines = (await readText(fx.storage, view.output)).trim().split('\n');
  expect(lines).toHaveLength(7);
  expect(lines.map((l) => l.split(':')[0])).toEqual(Array.from({ length: 7 }, (_, i) => `part-${String(i).padStart(3, '0')}.csv`));
  expect(lines.every((l) => / 10 rows /.test(l))).toBe(true);
  await expectPoolGone([]);
}, 60_000);

test('run() returning fewer elements: missing ones are failed inputs; error_threshold -1 never aborts', async () => {
  const rows = Array.from({ length: 10 }, (_, i) => ({ id: i, ...(i % 3 === 0 ? { drop: true } : {}), ...(i === 5 ? { fail: true } : {}) }));
  await uploadJsonl(fx.storage, 'fewer/', [rows]);
  const id = await submit(faultsJob('fewer/', { mini_batch_size: '2 rows', error_threshold: -1, allowed_failed_count: -1, run_max_try: 1 }));
  const view = await finished(id);
  expect(view.state).toBe('Succeeded');
  // ids 0,3,6,9 dropped (4 inputs); mini-batch [4,5] failed outright (2 inputs) → 6 failed, 4 succeeded
  expect(view.counts.items).toEqual({ total: 10, succeeded: 4, failed: 6, notRun: 0 });
  expect(view.counts.miniBatches).toMatchObject({ total: 5, succeeded: 0, partial: 4, failed: 1 });
  const lines = (await readText(fx.storage, view.output)).trim().split('\n');
  expect(lines).toEqual(['row-1', 'row-2', 'row-7', 'row-8']);
  const summary = await readJson(fx.storage, view.summary);
  expect(summary.failures.map((f: any) => [f.miniBatch, f.status, f.error.code])).toEqual([
    [0, 'partial', 'MissingResults'],
    [1, 'partial', 'MissingResults'],
    [2, 'failed', 'RunFailed'],
    [3, 'partial', 'MissingResults'],
    [4, 'partial', 'MissingResults'],
  ]);
}, 60_000);

test('a mini-batch that fails twice then succeeds (run_max_try 3): the run succeeds, its rows once', async () => {
  const state = path.join(workDir, 'flaky-state');
  await uploadJsonl(fx.storage, 'flaky/', [[{ id: 0 }, { id: 1, fail_times: 2, state }, { id: 2 }]]);
  const id = await submit(faultsJob('flaky/', { allowed_failed_count: 0, run_max_try: 3 }));
  const view = await finished(id);
  expect(view.state).toBe('Succeeded');
  expect(view.counts.items).toEqual({ total: 3, succeeded: 3, failed: 0, notRun: 0 });
  expect(fs.readFileSync(state, 'utf8')).toBe('3');
  expect((await readText(fx.storage, view.output)).trim().split('\n')).toEqual(['row-0', 'row-1', 'row-2']);
  // Each attempt wrote its own result blob; the latest (attempt 3) is the one read.
  const result = await readResult(fx.storage, { container: 'batch-output', prefix: 'out/flaky/' }, id, 1, 3);
  expect(result).toMatchObject({ index: 1, status: 'succeeded', attempt: 3 });
}, 60_000);

test('pool nodes require the pool key: 401 without it, the run succeeds, the key is in no history, status or log', async () => {
  const rows = Array.from({ length: 8 }, (_, i) => ({ id: i, sleep_ms: 150 }));
  await uploadJsonl(fx.storage, 'keys/', [rows]);
  const id = await submit(faultsJob('keys/', { process_count_per_node: 1, error_threshold: 0 }));

  // The pool while it runs: its node and its recorded keys (the record is the only place the keys are kept).
  const pool = await waitUntil(async () => {
    for (const poolId of poolDirs(workDir)) {
      try {
        const state = JSON.parse(fs.readFileSync(path.join(workDir, 'batch-pools', poolId, 'pool.json'), 'utf8'));
        if (state.state === 'ready') return { poolId, nodeUri: state.nodeUris[0] as string, pid: state.nodes[0].pid as number };
      } catch {
        /* not written yet */
      }
    }
    return undefined;
  }, 30_000, 'the pool to be ready');
  const record = await readJson(fx.storage, `batch-pools/${pool.poolId}.json`);
  const keys = record.keys as { primaryKey: string; secondaryKey: string };
  expect(keys.primaryKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(keys.secondaryKey).not.toBe(keys.primaryKey);
  // Not on the node's command line (visible to every user) nor in the pool's state file.
  const local = [fs.readFileSync(`/proc/${pool.pid}/cmdline`, 'utf8'), fs.readFileSync(path.join(workDir, 'batch-pools', pool.poolId, 'pool.json'), 'utf8')];
  for (const text of local) expect(text).not.toContain(keys.primaryKey);

  const post = (headers: Record<string, string>) =>
    fetch(`${pool.nodeUri}/batch`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ mini_batch: [{ id: 99 }] }) });
  const anonymous = await post({});
  expect(anonymous.status).toBe(401);
  expect(((await anonymous.json()) as any).error.code).toBe('Unauthorized');
  expect((await post({ authorization: 'Bearer not-the-key' })).status).toBe(401);
  expect((await post({ authorization: `Bearer ${keys.secondaryKey}` })).status).toBe(200);

  const view = await finished(id);
  expect(view.state).toBe('Succeeded');
  expect(view.counts.items).toEqual({ total: 8, succeeded: 8, failed: 0, notRun: 0 });
  expect((await readText(fx.storage, view.output)).trim().split('\n')).toEqual(rows.map((r) => `row-${r.id}`));

  // Nowhere the orchestrations or the host expose: history (inputs and outputs), custom status, the run view, logs.
  const { chunkInstanceId } = await import('../../shared/batch/run');
  const exposed = [
    JSON.stringify(await env.status(id, 'showHistory=true&showHistoryOutput=true&showInput=true')),
    JSON.stringify(await env.status(chunkInstanceId(id, 0), 'showHistory=true&showHistoryOutput=true&showInput=true')),
    JSON.stringify(view),
    env.logs.join('\n'),
    // The raw stored history (activity inputs included) and instance records (custom status, engine state).
    ...(await Promise.all([id, chunkInstanceId(id, 0)].flatMap((i) => [env.host.durable.getHistory(i), env.host.durable.getMeta(i)]))).map((x) => JSON.stringify(x)),
  ];
  expect(exposed[0]).toContain('batchProvisionPool'); // the history is really there
  expect(exposed[1]).toContain('batchScoreMiniBatch');
  for (const text of exposed) {
    expect(text).not.toContain(keys.primaryKey);
    expect(text).not.toContain(keys.secondaryKey);
  }
  await expectPoolGone([]);
  expect(await fx.storage.container('batch-pools').getBlobClient(`${pool.poolId}.json`).exists()).toBe(false); // keys gone with the pool
}, 90_000);

test('POST /api/batch-runs with an Idempotency-Key: a retried request finds the same run', async () => {
  await uploadJsonl(fx.storage, 'idem/', [[{ id: 1 }, { id: 2 }]]);
  const job = faultsJob('idem/', {});
  const first = await env.request('POST', '/api/batch-runs', job, { 'idempotency-key': 'nightly-2026-11-24' });
  const again = await env.request('POST', '/api/batch-runs', job, { 'idempotency-key': 'nightly-2026-11-24' });
  expect(first.status).toBe(202);
  expect(again.status).toBe(202);
  expect(again.body.id).toBe(first.body.id);
  expect(first.body.started).toBe(true);
  expect(again.body.started).toBe(false);
  expect((await finished(first.body.id)).state).toBe('Succeeded');
}, 60_000);

describe('a scoring activity that throws (storage unreachable) is run again, at most 3 times', () => {
  // The host runs the app from dist/ in this process: wrap the scoring step the activity calls.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const score = require(path.join(root, 'dist/shared/batch/score.js')) as { runMiniBatchGroup: (...a: any[]) => Promise<unknown> };
  const original = score.runMiniBatchGroup;
  const calls = new Map<string, number>();
  /** Mini-batch 1 of runs writing under `out/<prefix>` throws its first `times` calls. */
  const failFirst = (prefix: string, times: number, delayMs = 0) => {
    score.runMiniBatchGroup = async (service: unknown, layout: { root: string }, items: Array<{ mb: { index: number } }>) => {
      if (layout.root.startsWith(`out/${prefix}`) && items.some((x) => x.mb.index === 1)) {
        const n = (calls.get(prefix) ?? 0) + 1;
        calls.set(prefix, n);
        if (delayMs && n <= times) await new Promise((r) => setTimeout(r, delayMs));
        if (n <= times) throw Object.assign(new Error('storage is down'), { code: 'StorageUnavailable' });
      }
      return original(service, layout, items);
    };
  };
  afterEach(() => {
    score.runMiniBatchGroup = original;
  });
  const rows = Array.from({ length: 4 }, (_, i) => ({ id: i }));

  test('two throws, then it succeeds: every row once, the throws are not scoring attempts', async () => {
    await uploadJsonl(fx.storage, 'act-flaky/', [rows]);
    failFirst('act-flaky/', 2);
    const view = await finished(await submit(faultsJob('act-flaky/', { allowed_failed_count: 0, run_max_try: 1 })));
    expect(calls.get('act-flaky/')).toBe(3);
    expect(view.state).toBe('Succeeded');
    expect((await readText(fx.storage, view.output)).trim().split('\n')).toEqual(['row-0', 'row-1', 'row-2', 'row-3']);
  }, 60_000);

  test('a late throw of the oldest mini-batch (the one the chunk waits on alone) is run again, not fatal', async () => {
    await uploadJsonl(fx.storage, 'act-late/', [rows]);
    failFirst('act-late/', 1, 1500);
    const view = await finished(await submit(faultsJob('act-late/', { allowed_failed_count: 0, run_max_try: 1 })));
    expect(calls.get('act-late/')).toBe(2);
    expect(view.state).toBe('Succeeded');
    expect((await readText(fx.storage, view.output)).trim().split('\n')).toEqual(['row-0', 'row-1', 'row-2', 'row-3']);
  }, 60_000);

  test('three throws: the run fails with MiniBatchNotRecorded and its pool is torn down', async () => {
    await uploadJsonl(fx.storage, 'act-down/', [rows]);
    failFirst('act-down/', 99);
    const view = await finished(await submit(faultsJob('act-down/', { error_threshold: -1 })));
    expect(calls.get('act-down/')).toBe(3);
    expect(view).toMatchObject({ state: 'Failed', error: { code: 'MiniBatchNotRecorded' } });
    expect(view.error.message).toContain('storage is down');
    await expectPoolGone([]);
  }, 60_000);
});

describe('thresholds trip exactly at the documented boundary', () => {
  // 10 one-row mini-batches; rows 2, 5, 8 fail (run() raises): 3 failed mini-batches = 3 failed inputs.
  const rows = Array.from({ length: 10 }, (_, i) => ({ id: i, ...([2, 5, 8].includes(i) ? { fail: true } : {}) }));
  beforeAll(() => uploadJsonl(fx.storage, 'thr/', [rows]));
  const base = { run_max_try: 1, process_count_per_node: 1 };

  test.each([
    ['error_threshold', { error_threshold: 3 }, { error_threshold: 2 }, 3],
    ['allowed_failed_count', { allowed_failed_count: 3 }, { allowed_failed_count: 2 }, 3],
    ['allowed_failed_percent', { allowed_failed_percent: 30 }, { allowed_failed_percent: 29.99 }, 30],
  ])('%s: at the limit succeeds, just under it fails', async (name, atLimit, under, observed) => {
    const okId = await submit(faultsJob('thr/', { ...base, ...atLimit, output: { container: 'batch-output', prefix: `thr-ok-${name}/` } }));
    const badId = await submit(faultsJob('thr/', { ...base, ...under, output: { container: 'batch-output', prefix: `thr-bad-${name}/` } }));
    const ok = await finished(okId);
    expect(ok.state).toBe('Succeeded');
    expect(ok.counts.miniBatches.failed).toBe(3);
    const bad = await finished(badId);
    expect(bad).toMatchObject({ state: 'Failed', runtimeStatus: 'Failed', error: { code: 'BatchThresholdExceeded' } });
    expect(bad.threshold).toMatchObject({ threshold: name, observed });
    expect(bad.threshold.limit).toBe(Object.values(under)[0]);
    const summary = await readJson(fx.storage, bad.summary);
    expect(summary.status).toBe('Failed');
    expect(summary.threshold.threshold).toBe(name);
    expect(summary.threshold.counts.miniBatchesFailed).toBe(3);
    await expectPoolGone([]);
  }, 90_000);
});

test('empty input completes with zero', async () => {
  const c = await fx.storage.ensureContainer('batch-data');
  await c.getBlockBlobClient('empty/only.csv').upload('id,sepal_length,sepal_width,petal_length,petal_width\n', 51);
  const id = await submit({
    model: 'iris-linear',
    entry_script: 'iris.js',
    source_directory: 'code/scripts',
    inputs: { container: 'batch-data', prefix: 'empty/' },
    input_kind: 'tabular',
    output: { container: 'batch-output', prefix: 'empty/' },
  });
  const view = await finished(id);
  expect(view.state).toBe('Succeeded');
  expect(view.counts.items).toEqual({ total: 0, succeeded: 0, failed: 0, notRun: 0 });
  expect(view.counts.miniBatches.total).toBe(0);
  expect(await readText(fx.storage, view.output)).toBe('');
}, 60_000);

test('missing prefix: a clear 400 at submission', async () => {
  await fx.storage.ensureContainer('batch-data');
  const r = await env.request('POST', '/api/batch-runs', faultsJob('no-such-prefix/'));
  expect(r.status).toBe(400);
  expect(r.body.error.code).toBe('InputNotFound');
  expect(r.body.error.message).toContain('No blobs under "batch-data/no-such-prefix/"');
  const bad = await env.request('POST', '/api/batch-runs', { model: 'iris-linear', inputs: { container: 'batch-data', prefix: 'x/' }, node_cout: 2 });
  expect(bad.status).toBe(400);
  expect(bad.body.error.code).toBe('InvalidJobDefinition');
  expect(bad.body.error.message).toMatch(/node_cout/);
  const noSource = await env.request('POST', '/api/batch-runs', { ...faultsJob('thr/'), source_directory: undefined });
  expect(noSource.status).toBe(400);
  expect(noSource.body.error.message).toMatch(/source_directory/);
  expect((await env.request('GET', '/api/batch-runs/batch-nope')).status).toBe(404);
});

test('batch.json dropped in incoming/batch/<name>/: starts one run per blob version, script beside it', async () => {
  await uploadIris(fx.storage, 'dropped/', 3, 30);
  const incoming = await fx.storage.ensureContainer('incoming');
  const script = fs.readFileSync(path.join(__dirname, '../../examples/batch/score.js'));
  await incoming.getBlockBlobClient('batch/iris-drop/score.js').upload(script, script.length);
  const job = JSON.stringify({
    model: 'iris-linear',
    entry_script: 'score.js',
    inputs: { container: 'batch-data', prefix: 'dropped/' },
    input_kind: 'tabular',
    process_count_per_node: 1,
    output: { container: 'batch-output', prefix: 'dropped/' },
  });
  const up = await incoming.getBlockBlobClient('batch/iris-drop/batch.json').upload(job, job.length);
  const { runIds } = await import('../../shared/batch/run');
  const id = runIds.blob('incoming/batch/iris-drop/batch.json', up.etag!);
  const view = await waitUntil(
    async () => {
      const r = await env.request('GET', `/api/batch-runs/${id}`);
      return r.status === 200 && ['Succeeded', 'Failed'].includes(r.body.state) ? r.body : undefined;
    },
    60_000,
    'the dropped job',
  );
  expect(view).toMatchObject({ state: 'Succeeded', source: { kind: 'blob', location: 'incoming/batch/iris-drop/batch.json' } });
  expect(view.counts.items.succeeded).toBe(30);
}, 90_000);

test('terminate: the run stops and its pool is torn down', async () => {
  await uploadJsonl(fx.storage, 'slow/', [Array.from({ length: 20 }, (_, i) => ({ id: i, sleep_ms: 300 }))]);
  const w = watchPids();
  const id = await submit(faultsJob('slow/', { process_count_per_node: 1 }));
  await waitUntil(async () => (await env.request('GET', `/api/batch-runs/${id}`)).body?.progress?.miniBatches?.done >= 2, 30_000, 'scoring under way');
  expect(w.pids.size).toBe(1);
  const r = await env.request('POST', `/api/batch-runs/${id}/terminate`, 'test says stop');
  expect(r.status).toBe(202);
  expect(poolDirs(workDir)).toEqual([]);
  const view = await finished(id);
  w.stop();
  expect(view.state).toBe('Terminated');
  await expectPoolGone([...w.pids]);
}, 60_000);

test('terminate through the Durable API (no teardown step runs): the pool sweep removes the pool', async () => {
  const w = watchPids();
  const id = await submit(faultsJob('slow/', { process_count_per_node: 1, output: { container: 'batch-output', prefix: 'slow2/' } }));
  await waitUntil(async () => (await env.request('GET', `/api/batch-runs/${id}`)).body?.progress?.miniBatches?.done >= 1, 30_000, 'scoring under way');
  const r = await env.request('POST', `/runtime/webhooks/durabletask/instances/${id}/terminate?reason=test`);
  expect(r.status).toBe(202);
  await waitUntil(async () => (await env.status(id))?.runtimeStatus === 'Terminated', 10_000, 'terminated');
  expect(w.pids.size).toBe(1);
  expect([...w.pids].every(isAlive)).toBe(true); // nothing ran the teardown yet
  const view = await finished(id); // GET of a terminal run sweeps its pool
  w.stop();
  expect(view.state).toBe('Terminated');
  await expectPoolGone([...w.pids]);
}, 60_000);
