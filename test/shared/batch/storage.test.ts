/**
 * Batch planning, scoring, merge and summary against Azurite, with a tiny batch node on 127.0.0.1.
 */
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { startAzurite, type AzuriteInstance } from '../../../local/azurite';
import { parseBatchJob, type BatchJob } from '../../../shared/batch/job';
import { runLayout, chunkRanges, parseResultBlobName, resultGroupName, PLAN_CHUNK_SIZE } from '../../../shared/batch/layout';
import { failedResult, writeMiniBatchResult } from '../../../shared/batch/results';
import { planInputs } from '../../helpers/plan';
import { planInputsPage, readMiniBatch, readPlanChunk, readPlanSummary, type MiniBatch } from '../../../shared/batch/plan';
import { MAX_MINI_BATCHES_PER_CALL, miniBatchesPerCall, nodeFor, runMiniBatch, runMiniBatchGroup, scoreMiniBatch } from '../../../shared/batch/score';
import { finalizeRun, readSummary } from '../../../shared/batch/merge';
import { ThresholdTracker } from '../../../shared/batch/thresholds';

type Handler = (miniBatch: unknown[], req: http.IncomingMessage) => Promise<{ status?: number; body: unknown } | 'hang'>;

let azurite: AzuriteInstance;
let service: BlobServiceClient;
let data: ContainerClient;
let server: http.Server;
let nodeUri: string;
let handler: Handler = async (mb) => ({ body: { results: mb, count: mb.length } });
const calls: Array<{ path: string; miniBatch: unknown[]; auth?: string }> = [];

beforeAll(async () => {
  azurite = await startAzurite();
  service = BlobServiceClient.fromConnectionString(azurite.connectionString);
  data = service.getContainerClient('data');
  await data.create();
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      const mb = (JSON.parse(body) as { mini_batch: unknown[] }).mini_batch;
      calls.push({ path: req.url ?? '', miniBatch: mb, auth: req.headers.authorization });
      const r = await handler(mb, req);
      if (r === 'hang') return; // never answers: the client's timeout must fire
      res.writeHead(r.status ?? 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  nodeUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await azurite.stop();
});

beforeEach(() => {
  calls.length = 0;
  handler = async (mb) => ({ body: { results: mb, count: mb.length } });
});

async function put(name: string, text: string, container = data) {
  await container.getBlockBlobClient(name).upload(text, Buffer.byteLength(text));
}

function job(over: Record<string, unknown>): BatchJob {
  return parseBatchJob({ model: 'm:1', entry_script: 'score.py', output: { container: 'out', prefix: 'runs' }, ...over }, { coresPerNode: 2 });
}

async function allMiniBatches(j: BatchJob, runId: string): Promise<MiniBatch[]> {
  const layout = runLayout(j, runId);
  const plan = (await readPlanSummary(service.getContainerClient('out'), layout))!;
  const out: MiniBatch[] = [];
  for (let c = 0; c < plan.chunkCount; c++) out.push(...(await readPlanChunk(service.getContainerClient('out'), layout, c)));
  return out;
}

describe('planning (listing + partitioning)', () => {
  beforeAll(async () => {
    for (let i = 0; i < 23; i++) await put(`files/f${String(i).padStart(2, '0')}.txt`, `file ${i}`);
    await put('files/', ''); // a folder marker is not an input
    await put('other/x.txt', 'not mine');
    await put('markers/only/', '');
  });

  test('files: by count, in name order, across listing pages (carry-over), chunked descriptors', async () => {
    const j = job({ inputs: { container: 'data', prefix: 'files/' }, mini_batch_size: 5 });
    const layout = runLayout(j, 'plan-files');
    const pages: number[] = [];
    let r = await planInputsPage(service, j, layout, undefined, { pageSize: 4 });
    pages.push(r.cursor.nextIndex);
    while (!r.done) {
      // at-least-once: re-running a page with the same cursor must not change the plan
      const again = await planInputsPage(service, j, layout, r.cursor, { pageSize: 4 });
      r = await planInputsPage(service, j, layout, r.cursor, { pageSize: 4 });
      expect(again.cursor).toEqual(r.cursor);
      pages.push(r.cursor.nextIndex);
    }
    expect(r.plan).toEqual({ miniBatchCount: 5, itemCount: 23, bytes: expect.any(Number), inputFileCount: 23, chunkCount: 1, chunkSize: PLAN_CHUNK_SIZE, inputKind: 'files' });
    expect(JSON.stringify(r.cursor).length).toBeLessThan(2000);
    const mbs = await allMiniBatches(j, 'plan-files');
    expect(mbs.map((m) => m.index)).toEqual([0, 1, 2, 3, 4]);
    expect(mbs.map((m) => m.itemCount)).toEqual([5, 5, 5, 5, 3]);
    const names = mbs.flatMap((m) => (m.kind === 'files' ? m.files.map((f) => f.blob) : []));
    expect(names).toEqual(Array.from({ length: 23 }, (_, i) => `files/f${String(i).padStart(2, '0')}.txt`));
    expect(await readMiniBatch(service.getContainerClient('out'), layout, 3)).toEqual(mbs[3]);
    // deterministic: planning again gives the same descriptors
    await planInputs(service, j, runLayout(j, 'plan-files-2'), { pageSize: 7 });
    expect(await allMiniBatches(j, 'plan-files-2')).toEqual(mbs);
  });

  test('tabular: row ranges within one file, by rows and by bytes', async () => {
    await put('tab/a.csv', 'id,v\n' + Array.from({ length: 7 }, (_, i) => `${i},${i * 10}\n`).join(''));
    await put('tab/b.csv', 'id,v\n'); // header only: no rows
    await put('tab/c.jsonl', Array.from({ length: 3 }, (_, i) => JSON.stringify({ id: 100 + i })).join('\n'));
    const j = job({ inputs: { container: 'data', prefix: 'tab/' }, input_kind: 'tabular', mini_batch_size: '3 rows' });
    const plan = await planInputs(service, j, runLayout(j, 'plan-tab'), { pageSize: 2 });
    expect(plan).toMatchObject({ miniBatchCount: 4, itemCount: 10, inputFileCount: 3, inputKind: 'tabular' });
    const mbs = await allMiniBatches(j, 'plan-tab');
    expect(mbs.map((m) => (m.kind === 'tabular' ? [m.file.blob, m.firstRow, m.itemCount, m.format] : null))).toEqual([
      ['tab/a.csv', 0, 3, 'csv'],
      ['tab/a.csv', 3, 3, 'csv'],
      ['tab/a.csv', 6, 1, 'csv'],
      ['tab/c.jsonl', 0, 3, 'jsonl'],
    ]);
    const bytes = job({ inputs: { container: 'data', prefix: 'tab/a' }, input_kind: 'tabular', mini_batch_size: 12 });
    const p2 = await planInputs(service, bytes, runLayout(bytes, 'plan-tab-bytes'));
    expect(p2.itemCount).toBe(7);
    for (const m of await allMiniBatches(bytes, 'plan-tab-bytes')) expect(m.bytes).toBeLessThanOrEqual(12);
  });

  test('missing prefix and missing container are clear errors; empty folder and empty list plan zero', async () => {
    const missing = job({ inputs: { container: 'data', prefix: 'nope/' } });
    await expect(planInputs(service, missing, runLayout(missing, 'p-miss'))).rejects.toMatchObject({
      code: 'InputNotFound',
      message: expect.stringContaining('No blobs under "data/nope/"'),
    });
    const noContainer = job({ inputs: { container: 'nothere', prefix: 'x/' } });
    await expect(planInputs(service, noContainer, runLayout(noContainer, 'p-noc'))).rejects.toMatchObject({
      code: 'InputNotFound',
      message: expect.stringContaining('Input container "nothere" does not exist'),
    });
    const marker = job({ inputs: { container: 'data', prefix: 'markers/only/' } });
    expect(await planInputs(service, marker, runLayout(marker, 'p-marker'))).toMatchObject({ miniBatchCount: 0, itemCount: 0 });
    const none = job({ inputs: { uris: [] } });
    expect(await planInputs(service, none, runLayout(none, 'p-none'))).toMatchObject({ miniBatchCount: 0, itemCount: 0, chunkCount: 0 });
  });

  test('explicit URIs keep their order; a missing one is named', async () => {
    const j = parseBatchJob(
      { image: 'img:1', inputs: { uris: [`${data.url}/other/x.txt`, 'data/files/f01.txt', 'data/files/f00.txt'] }, mini_batch_size: 2, output: { container: 'out' } },
      { accountUrl: service.url },
    );
    await planInputs(service, j, runLayout(j, 'p-uris'), { pageSize: 2 });
    const mbs = await allMiniBatches(j, 'p-uris');
    expect(mbs.flatMap((m) => (m.kind === 'files' ? m.files.map((f) => f.blob) : []))).toEqual(['other/x.txt', 'files/f01.txt', 'files/f00.txt']);
    const bad = job({ inputs: { uris: ['data/files/f00.txt', 'data/files/gone.txt'] } });
    await expect(planInputs(service, bad, runLayout(bad, 'p-bad'))).rejects.toMatchObject({ code: 'InputNotFound', message: expect.stringContaining('"data/files/gone.txt"') });
  });
});

describe('scoring one mini-batch', () => {
  let filesJob: BatchJob;
  let tabJob: BatchJob;
  beforeAll(async () => {
    for (let i = 0; i < 4; i++) await put(`score/files/s${i}.txt`, `content ${i}`);
    await put('score/tab/t.csv', 'id,x\n' + Array.from({ length: 6 }, (_, i) => `${i},${i / 2}\n`).join(''));
    filesJob = job({ inputs: { container: 'data', prefix: 'score/files/' }, mini_batch_size: 2 });
    tabJob = job({ inputs: { container: 'data', prefix: 'score/tab/' }, input_kind: 'tabular', mini_batch_size: '4 rows' });
    await planInputs(service, filesJob, runLayout(filesJob, 's-files'));
    await planInputs(service, tabJob, runLayout(tabJob, 's-tab'));
  });

  test('files as local paths (default): run() can open them; temp files are removed afterwards', async () => {
    const [mb] = await allMiniBatches(filesJob, 's-files');
    let seen: string[] = [];
    handler = async (paths) => {
      seen = paths as string[];
      return { body: { results: (paths as string[]).map((p) => fs.readFileSync(p, 'utf8').toUpperCase()), count: paths.length } };
    };
    const r = await scoreMiniBatch(service, mb, { nodeUri, timeoutMs: 5000, keepRows: true, attempt: 1, headers: { authorization: 'Bearer k' } });
    expect(r).toMatchObject({ index: 0, status: 'succeeded', itemCount: 2, returned: 2, succeeded: 2, failed: 0, rows: ['CONTENT 0', 'CONTENT 1'], attempt: 1, node: nodeUri });
    expect(calls[0]).toMatchObject({ path: '/batch', auth: 'Bearer k' });
    expect(seen.map((p) => p.split('/').pop())).toEqual(['s0.txt', 's1.txt']);
    for (const p of seen) expect(fs.existsSync(p)).toBe(false);
  });

  test('files as content', async () => {
    const [, mb] = await allMiniBatches(filesJob, 's-files');
    const r = await scoreMiniBatch(service, mb, { nodeUri, timeoutMs: 5000, keepRows: true, filesAs: 'content' });
    expect(calls[0].miniBatch).toEqual([
      { name: 'score/files/s2.txt', content_base64: Buffer.from('content 2').toString('base64') },
      { name: 'score/files/s3.txt', content_base64: Buffer.from('content 3').toString('base64') },
    ]);
    expect(r.status).toBe('succeeded');
  });

  test('tabular: the rows of the range, as objects; a bare JSON array reply works too', async () => {
    const mbs = await allMiniBatches(tabJob, 's-tab');
    handler = async (rows) => ({ body: (rows as Array<{ id: number; x: number }>).map((r) => ({ id: r.id, y: r.x * 2 })) });
    const r = await scoreMiniBatch(service, mbs[1], { nodeUri, timeoutMs: 5000, keepRows: true });
    expect(calls[0].miniBatch).toEqual([{ id: 4, x: 2 }, { id: 5, x: 2.5 }]);
    expect(r).toMatchObject({ status: 'succeeded', succeeded: 2, rows: ['{"id":4,"y":4}', '{"id":5,"y":5}'] });
  });

  test('fewer elements than inputs: missing ones are failed inputs (partial)', async () => {
    const [mb] = await allMiniBatches(tabJob, 's-tab');
    handler = async (rows) => ({ body: { results: rows.slice(0, 1) } });
    const r = await scoreMiniBatch(service, mb, { nodeUri, timeoutMs: 5000, keepRows: false });
    expect(r).toMatchObject({
      status: 'partial',
      itemCount: 4,
      returned: 1,
      succeeded: 1,
      failed: 3,
      error: { code: 'MissingResults' },
      failedInputs: ['data/score/tab/t.csv rows 1-4'],
    });
    expect(r.rows).toBeUndefined(); // summary_only keeps no rows
  });

  test('run() errors, timeouts, unreachable nodes and bad replies are failed results, never throws', async () => {
    const [mb] = await allMiniBatches(filesJob, 's-files');
    handler = async () => ({ status: 500, body: { error: { code: 'RunFailed', message: 'ZeroDivisionError: division by zero' } } });
    expect(await scoreMiniBatch(service, mb, { nodeUri, timeoutMs: 5000, keepRows: true })).toMatchObject({
      status: 'failed',
      failed: 2,
      succeeded: 0,
      retryable: true,
      error: { code: 'RunFailed', message: 'ZeroDivisionError: division by zero' },
      failedInputs: ['data/score/files/s0.txt', 'data/score/files/s1.txt'],
    });
    handler = async () => 'hang';
    expect(await scoreMiniBatch(service, mb, { nodeUri, timeoutMs: 300, keepRows: true })).toMatchObject({
      status: 'failed',
      retryable: true,
      error: { code: 'RunInvocationTimeout', message: 'run() did not return within 0.3 s (run_invocation_timeout)' },
    });
    handler = async () => ({ body: { not: 'a list' } });
    expect((await scoreMiniBatch(service, mb, { nodeUri, timeoutMs: 5000, keepRows: true })).error?.code).toBe('InvalidBatchResponse');
    handler = async () => ({ status: 400, body: { error: { code: 'InvalidMiniBatch', message: 'bad' } } });
    expect(await scoreMiniBatch(service, mb, { nodeUri, timeoutMs: 5000, keepRows: true })).toMatchObject({ retryable: false, error: { code: 'InvalidMiniBatch' } });
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadUri = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((r) => closed.close(r));
    expect(await scoreMiniBatch(service, mb, { nodeUri: deadUri, timeoutMs: 5000, keepRows: true })).toMatchObject({ retryable: true, error: { code: 'WorkerUnreachable' } });
  });

  test('an input changed after planning fails the mini-batch as InputChanged (not retryable)', async () => {
    await put('score/changing/a.txt', 'v1');
    const j = job({ inputs: { container: 'data', prefix: 'score/changing/' } });
    await planInputs(service, j, runLayout(j, 's-change'));
    const [mb] = await allMiniBatches(j, 's-change');
    await put('score/changing/a.txt', 'v2');
    const r = await scoreMiniBatch(service, mb, { nodeUri, timeoutMs: 5000, keepRows: true });
    expect(r).toMatchObject({ status: 'failed', retryable: false, error: { code: 'InputChanged' } });
    expect(calls.length).toBe(0);
  });

  test('nodeFor: round-robin', () => {
    expect([0, 1, 2, 3].map((i) => nodeFor(['a', 'b', 'c'], i))).toEqual(['a', 'b', 'c', 'a']);
    expect(() => nodeFor([], 0)).toThrow();
  });

  test('miniBatchesPerCall: a quarter of the window (a refill schedules at least two calls), at most MAX_MINI_BATCHES_PER_CALL', () => {
    expect([1, 4, 7, 8, 16, 32, 64, 500].map(miniBatchesPerCall)).toEqual([1, 1, 1, 2, 4, 8, 8, 8]);
    expect(MAX_MINI_BATCHES_PER_CALL).toBe(8);
  });
});

describe('results, merge and summary', () => {
  test('a run: retries overwrite, merge is in input order with no duplicates, summary has counts and failures', async () => {
    for (let f = 0; f < 3; f++) await put(`merge/m${f}.csv`, 'id\n' + Array.from({ length: 5 }, (_, i) => `${f * 5 + i}\n`).join(''));
    const j = job({ inputs: { container: 'data', prefix: 'merge/' }, input_kind: 'tabular', mini_batch_size: '2 rows', error_threshold: 3, run_max_try: 3 });
    const layout = runLayout(j, 'run-1');
    const plan = await planInputs(service, j, layout);
    expect(plan).toMatchObject({ miniBatchCount: 9, itemCount: 15 });
    const mbs = await allMiniBatches(j, 'run-1');
    const tracker = new ThresholdTracker(j, plan);

    const attempts = new Map<number, number>();
    handler = async (rows) => {
      const ids = (rows as Array<{ id: number }>).map((r) => r.id);
      const mbIndex = mbs.findIndex((m) => m.kind === 'tabular' && m.firstRow + Number(m.file.blob[7]) * 5 === ids[0]);
      const n = (attempts.get(mbIndex) ?? 0) + 1;
      attempts.set(mbIndex, n);
      if (mbIndex === 4 && n <= 2) return { status: 500, body: { error: { code: 'RunFailed', message: `flaky ${n}` } } }; // fails twice, then succeeds
      if (mbIndex === 7) return { body: { results: ids.slice(0, 1).map((id) => `row ${id}`) } }; // one element missing
      return { body: { results: ids.map((id) => `row ${id}`) } };
    };

    // Score in a scrambled order (results arrive out of order), with a retry loop like the orchestrator's.
    const order = [8, 3, 0, 5, 1, 7, 2, 6, 4];
    for (const i of order) {
      for (let attempt = 1; attempt <= j.runMaxTry; attempt++) {
        const o = await runMiniBatch(service, layout, mbs[i], { nodeUri: nodeFor([nodeUri], i), timeoutMs: 5000, keepRows: true, attempt });
        expect(tracker.record(o)).toBeNull();
        if (o.status !== 'failed' || !o.retryable) break;
      }
    }
    // mini-batch 2 runs again (e.g. a host restart re-ran its activity): its blob is overwritten, not appended
    await runMiniBatch(service, layout, mbs[2], { nodeUri, timeoutMs: 5000, keepRows: true });
    expect(attempts.get(4)).toBe(3);
    expect(tracker.markAllScheduled()).toBeNull();
    expect(tracker.counts()).toMatchObject({ miniBatchesDone: 9, miniBatchesFailed: 1, itemsFailed: 1, itemsSucceeded: 14 });

    const s1 = await finalizeRun(service, layout, {
      runId: 'run-1',
      job: j,
      plan,
      status: 'Succeeded',
      startedAt: '2024-01-01T00:00:00.000Z',
      finishedAt: '2024-01-01T00:00:05.000Z',
      concurrency: 4,
    });
    const out = (await service.getContainerClient('out').getBlobClient('runs/run-1/parallel_run_step.txt').downloadToBuffer()).toString();
    const expected = Array.from({ length: 15 }, (_, id) => `row ${id}`).filter((r) => r !== 'row 15' && r !== 'row 13');
    // mini-batch 7 = m2.csv rows 3-4 (ids 12, 13): only "row 12" came back
    expect(out).toBe(expected.join('\n') + '\n');
    expect(s1).toMatchObject({
      runId: 'run-1',
      status: 'Succeeded',
      counts: {
        miniBatches: { total: 9, succeeded: 8, partial: 1, failed: 0, notRun: 0 },
        items: { total: 15, succeeded: 14, failed: 1, notRun: 0 },
        returned: 14,
      },
      failures: [{ miniBatch: 7, status: 'partial', failedItems: 1, inputs: ['data/merge/m2.csv rows 3-4'], error: { code: 'MissingResults' } }],
      failuresOmitted: 0,
      timings: { startedAt: '2024-01-01T00:00:00.000Z', durationMs: 5000, miniBatchMs: expect.any(Object) },
      output: { container: 'out', blob: 'runs/run-1/parallel_run_step.txt', rows: 14 },
      job: { inputKind: 'tabular', errorThreshold: 3 },
    });
    expect(await readSummary(service, layout)).toEqual(s1);

    // finalizing again (the activity ran twice) writes the same output
    await finalizeRun(service, layout, { runId: 'run-1', job: j, plan, status: 'Succeeded', startedAt: s1.timings.startedAt, finishedAt: s1.timings.finishedAt });
    const again = (await service.getContainerClient('out').getBlobClient('runs/run-1/parallel_run_step.txt').downloadToBuffer()).toString();
    expect(again).toBe(out);
  });

  test('grouped results: one blob per call; the merge takes each index\'s latest (attempt, run) — a call run again, a retry grouped out of order — in input order, once', async () => {
    for (let f = 0; f < 3; f++) await put(`group/g${f}.csv`, 'id\n' + Array.from({ length: 5 }, (_, i) => `${f * 5 + i}\n`).join(''));
    const j = job({ inputs: { container: 'data', prefix: 'group/' }, input_kind: 'tabular', mini_batch_size: '2 rows', run_max_try: 2 });
    const layout = runLayout(j, 'run-g');
    const plan = await planInputs(service, j, layout);
    expect(plan).toMatchObject({ miniBatchCount: 9, itemCount: 15 });
    const mbs = await allMiniBatches(j, 'run-g');
    // Each answer says which call of its mini-batch it was (#n), so the output shows which result the merge took.
    const seen = new Map<number, number>();
    handler = async (rows) => {
      const ids = (rows as Array<{ id: number }>).map((r) => r.id);
      const n = (seen.get(ids[0]) ?? 0) + 1;
      seen.set(ids[0], n);
      if (ids[0] === 10 && n === 1) return { status: 500, body: { error: { code: 'RunFailed', message: 'flaky' } } }; // mini-batch 6 (g2.csv rows 1-2)
      return { body: { results: ids.map((id) => `row ${id} #${n}`) } };
    };
    const call = (keys: Array<[number, number, number]>) =>
      runMiniBatchGroup(service, layout, keys.map(([i, attempt, run]) => ({ mb: mbs[i], opts: { nodeUri, timeoutMs: 5000, keepRows: true, attempt }, run })));

    // 0-3: the call ran, then ran again as a whole (its activity failed after the write): run 1 is the newer result.
    expect((await call([[0, 1, 0], [1, 1, 0], [2, 1, 0], [3, 1, 0]])).map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    await call([[0, 1, 1], [1, 1, 1], [2, 1, 1], [3, 1, 1]]);
    // 4-7: mini-batch 6 fails (retryable) and its attempt 2 is grouped with 8, out of order.
    const o = await call([[4, 1, 0], [5, 1, 0], [6, 1, 0], [7, 1, 0]]);
    expect(o.map((x) => [x.index, x.status, x.retryable])).toEqual([[4, 'succeeded', false], [5, 'succeeded', false], [6, 'failed', true], [7, 'succeeded', false]]);
    await call([[6, 2, 0], [8, 1, 0]]);

    const names: string[] = [];
    for await (const b of service.getContainerClient('out').listBlobsFlat({ prefix: layout.resultsPrefix })) names.push(b.name.slice(layout.resultsPrefix.length));
    expect(names.sort()).toEqual(['00000000-00000003a1r0.json', '00000000-00000003a1r1.json', '00000004-00000007a1r0.json', '00000006a2r0_00000008a1r0.json']);

    const s = await finalizeRun(service, layout, { runId: 'run-g', job: j, plan, status: 'Succeeded', startedAt: '2024-01-01T00:00:00.000Z', finishedAt: '2024-01-01T00:00:01.000Z', concurrency: 2 });
    const out = (await service.getContainerClient('out').getBlobClient(layout.output).downloadToBuffer()).toString().trim().split('\n');
    // 2-row ranges of 5-row files: mini-batches 0-3 = ids 0-6 (their second run, #2), 4-5 = ids 7-9, 6 = ids 10-11
    // (attempt 2: #2), 7-8 = ids 12-14.
    expect(out).toEqual([
      ...[0, 1, 2, 3, 4, 5, 6].map((id) => `row ${id} #2`),
      ...[7, 8, 9].map((id) => `row ${id} #1`),
      ...[10, 11].map((id) => `row ${id} #2`),
      ...[12, 13, 14].map((id) => `row ${id} #1`),
    ]);
    expect(s.counts).toEqual({ miniBatches: { total: 9, succeeded: 9, partial: 0, failed: 0, notRun: 0 }, items: { total: 15, succeeded: 15, failed: 0, notRun: 0 }, returned: 15 });
    expect(s.failures).toEqual([]);
  });

  test('result group names: ranges of consecutive indexes with one attempt and run, parsed back; per-index names; anything else ignored', () => {
    const k = (index: number, attempt = 1, run = 0) => ({ index, attempt, run });
    expect(resultGroupName([k(40), k(41), k(42), k(43)])).toBe('00000040-00000043a1r0');
    expect(resultGroupName([k(17, 2), k(40), k(41), k(43, 1, 1)])).toBe('00000017a2r0_00000040-00000041a1r0_00000043a1r1');
    expect(parseResultBlobName('00000017a2r0_00000040-00000041a1r0_00000043a1r1.json')).toEqual([k(17, 2), k(40), k(41), k(43, 1, 1)]);
    expect(parseResultBlobName('00000042.json')).toEqual([{ index: 42, attempt: 0, run: 0 }]);
    for (const bad of ['x.json', '00000042', '00000043-00000040a1r0.json', '00000040a1.json', '00000040a1r0_.json', 'sub/00000040a1r0.json']) expect(parseResultBlobName(bad)).toBeNull();
    expect(() => resultGroupName([])).toThrow();
  });

  test('a stopped run: not-run mini-batches counted, the threshold recorded; summary_only writes no output', async () => {
    for (let i = 0; i < 6; i++) await put(`stop/f${i}.txt`, `x${i}`);
    const j = job({ inputs: { container: 'data', prefix: 'stop/' }, mini_batch_size: 2, output_action: 'summary_only', allowed_failed_count: 0 });
    const layout = runLayout(j, 'run-stop');
    const plan = await planInputs(service, j, layout);
    const mbs = await allMiniBatches(j, 'run-stop');
    const tracker = new ThresholdTracker(j, plan);
    handler = async () => ({ status: 500, body: { error: { code: 'RunFailed', message: 'boom' } } });
    const trip = tracker.record(await runMiniBatch(service, layout, mbs[0], { nodeUri, timeoutMs: 5000, keepRows: false }));
    expect(trip).toMatchObject({ threshold: 'allowed_failed_count', limit: 0, observed: 1 });
    const s = await finalizeRun(service, layout, {
      runId: 'run-stop',
      job: j,
      plan,
      status: 'Failed',
      threshold: trip!,
      startedAt: '2024-01-01T00:00:00.000Z',
      finishedAt: '2024-01-01T00:00:01.000Z',
    });
    expect(s).toMatchObject({
      status: 'Failed',
      threshold: { threshold: 'allowed_failed_count' },
      counts: { miniBatches: { total: 3, failed: 1, notRun: 2 }, items: { total: 6, failed: 2, succeeded: 0, notRun: 4 } },
      failures: [{ miniBatch: 0, status: 'failed', error: { code: 'RunFailed', message: 'boom' }, inputs: ['data/stop/f0.txt', 'data/stop/f1.txt'] }],
      output: null,
    });
    expect(await service.getContainerClient('out').getBlobClient(layout.output).exists()).toBe(false);

    // an activity that failed outright (after its tries) is recorded with failedResult: counted as failed, not "not run"
    const o = await writeMiniBatchResult(
      service.getContainerClient('out'),
      layout,
      failedResult(mbs[1], { code: 'ActivityFailed', message: 'storage unavailable' }, { startedAt: '2024-01-01T00:00:00.000Z', finishedAt: '2024-01-01T00:00:00.250Z', attempt: 3 }),
    );
    expect(o).toMatchObject({ index: 1, status: 'failed', failed: 2, miniBatchFailed: true, durationMs: 250 });
    const s2 = await finalizeRun(service, layout, { runId: 'run-stop', job: j, plan, status: 'Failed', threshold: trip!, startedAt: s.timings.startedAt, finishedAt: s.timings.finishedAt });
    expect(s2.counts.miniBatches).toMatchObject({ failed: 2, notRun: 1 });
    expect(s2.failures.map((f) => [f.miniBatch, f.error.code])).toEqual([[0, 'RunFailed'], [1, 'ActivityFailed']]);
  });

  test('layout: names by run id and index; chunk ranges for sub-orchestrations; bad run ids rejected', () => {
    const j = job({ inputs: { uris: [] } });
    const l = runLayout(j, 'abc');
    expect([l.container, l.root, l.planChunk(2), l.result(42), l.output, l.summary, l.planSummary]).toEqual([
      'out',
      'runs/abc/',
      'runs/abc/plan/000002.json',
      'runs/abc/results/00000042.json',
      'runs/abc/parallel_run_step.txt',
      'runs/abc/summary.json',
      'runs/abc/plan.json',
    ]);
    expect(chunkRanges(0)).toEqual([]);
    expect(chunkRanges(1001)).toEqual([
      { chunk: 0, from: 0, to: 500 },
      { chunk: 1, from: 500, to: 1000 },
      { chunk: 2, from: 1000, to: 1001 },
    ]);
    expect(() => runLayout(j, '../x')).toThrow(expect.objectContaining({ code: 'InvalidRunId' }));
  });

  test('empty input completes with zero and an empty output file', async () => {
    const j = job({ inputs: { uris: [] } });
    const layout = runLayout(j, 'run-empty');
    const plan = await planInputs(service, j, layout);
    const s = await finalizeRun(service, layout, { runId: 'run-empty', job: j, plan, status: 'Succeeded', startedAt: '2024-01-01T00:00:00Z', finishedAt: '2024-01-01T00:00:00Z' });
    expect(s.counts).toEqual({ miniBatches: { total: 0, succeeded: 0, partial: 0, failed: 0, notRun: 0 }, items: { total: 0, succeeded: 0, failed: 0, notRun: 0 }, returned: 0 });
    expect(s.timings.miniBatchMs).toBeNull();
    expect((await service.getContainerClient('out').getBlobClient(layout.output).downloadToBuffer()).length).toBe(0);
  });

  test('failure entries in the summary are capped', async () => {
    const n = 105;
    const uris: string[] = [];
    for (let i = 0; i < n; i++) {
      await put(`cap/f${String(i).padStart(3, '0')}.txt`, 'x');
      uris.push(`data/cap/f${String(i).padStart(3, '0')}.txt`);
    }
    const j = job({ inputs: { container: 'data', prefix: 'cap/' }, mini_batch_size: 1 });
    const layout = runLayout(j, 'run-cap');
    const plan = await planInputs(service, j, layout);
    const mbs = await allMiniBatches(j, 'run-cap');
    handler = async () => ({ status: 500, body: { error: { code: 'RunFailed', message: 'e'.repeat(2000) } } });
    for (const mb of mbs) await runMiniBatch(service, layout, mb, { nodeUri, timeoutMs: 5000, keepRows: true, filesAs: 'content' });
    const s = await finalizeRun(service, layout, { runId: 'run-cap', job: j, plan, status: 'Succeeded', startedAt: '2024-01-01T00:00:00Z', finishedAt: '2024-01-01T00:00:01Z' });
    expect(s.failures.length).toBe(100);
    expect(s.failuresOmitted).toBe(5);
    expect(s.failures[0].error.message.length).toBeLessThanOrEqual(500);
    expect(s.counts.items.failed).toBe(n);
  });
});
