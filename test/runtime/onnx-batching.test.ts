/**
 * Dynamic batching of ONNX models: the batch queue (what forms a batch, the optional delay), the model's
 * stacked runs (same answers as one request at a time, per-request errors, fallback when a batched run fails,
 * fixed batch dimensions never stacked) and the HTTP contract under a burst (one 400 among 200s, metrics).
 * The model-level tests run sessions in the Jest process, hence the environment:
 * @jest-environment ./test/runtime/onnx-environment.js
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tensor } from 'onnxruntime-node';
import { linearOnnx, linearPredict, mlpOnnx } from '../../examples/runtime/onnx-model';
import { BatchQueue } from '../../runtime/batcher';
import { OnnxModel, settle, type Settled } from '../../runtime/onnx';
import { post, start, tempDir, waitFor } from './helpers';

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

const turns = async (n = 3) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

/**
 * The 4 → 3 linear model with a fixed first dimension of 2 (input float[2, 4], output float[2, 3]): the
 * example writer always declares 'N', so its dim_param 'N' is swapped in place for dim_value 2, written as a
 * 3-byte varint (0x82 0x00, valid protobuf) so that no enclosing length changes.
 */
function fixedBatchLinearOnnx(): Buffer {
  const model = linearOnnx();
  const symbolic = Buffer.from([0x0a, 0x03, 0x12, 0x01, 0x4e]); // Dimension { dim_param: "N" }
  const fixed = Buffer.from([0x0a, 0x03, 0x08, 0x82, 0x00]); // Dimension { dim_value: 2 }
  let count = 0;
  for (let i = model.indexOf(symbolic); i >= 0; i = model.indexOf(symbolic, i + symbolic.length)) {
    fixed.copy(model, i);
    count++;
  }
  if (count !== 2) throw new Error(`expected the input and output dim_param 'N', found ${count}`);
  return model;
}

/** Deterministic input rows for the 64-input MLP. */
const mlpRows = (n: number, seed: number) => Array.from({ length: n }, (_, r) => Array.from({ length: 64 }, (_, i) => Math.round(Math.sin(seed * 97 + r * 64 + i) * 1000) / 1000));

function expectClose(actual: unknown, expected: unknown): void {
  const a = (actual as number[][]).flat();
  const e = (expected as number[][]).flat();
  expect(a).toHaveLength(e.length);
  a.forEach((v, i) => expect(v).toBeCloseTo(e[i], 4));
}

describe('BatchQueue', () => {
  afterEach(() => jest.useRealTimers());

  /** A queue whose process() records each batch and waits for the test to finish it. */
  function recorder(opts: { maxBatchSize: number; maxBatchDelayMs?: number; batchable?: (n: number) => boolean; fail?: boolean }) {
    const batches: number[][] = [];
    const gates: Array<ReturnType<typeof deferred>> = [];
    const queue = new BatchQueue<number>({
      maxBatchSize: opts.maxBatchSize,
      maxBatchDelayMs: opts.maxBatchDelayMs ?? 0,
      batchable: opts.batchable,
      process: async (items) => {
        batches.push(items);
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
        if (opts.fail) throw new Error('process failed');
      },
    });
    return { queue, batches, gates };
  }

  it('batches what is already queued, up to maxBatchSize; what arrives during a run forms the next batch', async () => {
    const r = recorder({ maxBatchSize: 3 });
    for (const n of [1, 2, 3, 4, 5]) r.queue.push(n);
    await waitFor(() => r.batches.length === 1);
    expect(r.batches[0]).toEqual([1, 2, 3]);
    r.queue.push(6);
    r.queue.push(7);
    r.gates[0].resolve();
    await waitFor(() => r.batches.length === 2);
    expect(r.batches[1]).toEqual([4, 5, 6]);
    r.gates[1].resolve();
    await waitFor(() => r.batches.length === 3);
    expect(r.batches[2]).toEqual([7]);
    r.gates[2].resolve();
    await waitFor(() => r.queue.length === 0);
  });

  it('runs an item that cannot be batched alone, keeps maxBatchSize 1 to one item, and survives a failing process()', async () => {
    const r = recorder({ maxBatchSize: 4, batchable: (n) => n !== 0, fail: true });
    for (const n of [0, 1, 2, 0, 3]) r.queue.push(n);
    for (let b = 0; b < 3; b++) {
      await waitFor(() => r.batches.length === b + 1);
      r.gates[b].resolve();
    }
    expect(r.batches).toEqual([[0], [1, 2, 3], [0]]);

    const single = recorder({ maxBatchSize: 1 });
    for (const n of [1, 2]) single.queue.push(n);
    await waitFor(() => single.batches.length === 1);
    single.gates[0].resolve();
    await waitFor(() => single.batches.length === 2);
    single.gates[1].resolve();
    expect(single.batches).toEqual([[1], [2]]);
  });

  it('with a delay, a partial batch waits until its oldest item has queued that long, or until it is full', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const r = recorder({ maxBatchSize: 3, maxBatchDelayMs: 1000 });
    r.queue.push(1);
    await turns();
    jest.advanceTimersByTime(600);
    r.queue.push(2);
    await turns();
    jest.advanceTimersByTime(399);
    await turns();
    expect(r.batches).toEqual([]);
    jest.advanceTimersByTime(1);
    await turns();
    expect(r.batches).toEqual([[1, 2]]);
    for (const n of [3, 4, 5]) r.queue.push(n);
    r.gates[0].resolve();
    await turns(6);
    expect(r.batches).toEqual([[1, 2], [3, 4, 5]]);
    r.gates[1].resolve();
    r.queue.push(6);
    await turns();
    r.queue.push(7);
    r.queue.push(8);
    await turns();
    expect(r.batches).toEqual([[1, 2], [3, 4, 5], [6, 7, 8]]);
    r.gates[2].resolve();
  });

  it('with a delay, an item that cannot be batched does not wait', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const r = recorder({ maxBatchSize: 3, maxBatchDelayMs: 1000, batchable: (n) => n !== 0 });
    r.queue.push(0);
    await turns();
    expect(r.batches).toEqual([[0]]);
    r.gates[0].resolve();
  });
});

describe('OnnxModel.runFeedsMany', () => {
  let dir: string;
  let mlp: OnnxModel;
  beforeAll(async () => {
    dir = tempDir('onnx-batch');
    fs.writeFileSync(path.join(dir, 'mlp.onnx'), mlpOnnx([64, 256, 10]));
    fs.writeFileSync(path.join(dir, 'fixed.onnx'), fixedBatchLinearOnnx());
    mlp = await OnnxModel.load(path.join(dir, 'mlp.onnx'));
  });
  afterAll(async () => {
    await mlp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const feedsOf = (model: OnnxModel, payloads: unknown[]) => payloads.map((p) => settle(() => model.feeds(p)));

  it('stacks requests of different row counts into one run whose rows split back to the unbatched answers', async () => {
    const payloads = [{ data: mlpRows(1, 1) }, { data: mlpRows(3, 2) }, { input: mlpRows(2, 3) }];
    const alone = await Promise.all(payloads.map((p) => mlp.run(p)));
    const many = await mlp.runFeedsMany(feedsOf(mlp, payloads));
    expect(mlp.batchable).toBe(true);
    expect(many.runs).toEqual([3]);
    expect(many.fallbacks).toBe(0);
    many.results.forEach((r, i) => {
      expect(r.error).toBeUndefined();
      const p = payloads[i] as { data?: unknown[]; input?: unknown[] };
      expect((r.value!.output as unknown[]).length).toBe((p.data ?? p.input)!.length);
      expectClose(r.value!.output, alone[i].output);
    });
  });

  it('keeps a malformed request its own error and runs the others together', async () => {
    const payloads: unknown[] = [{ data: mlpRows(1, 4) }, { data: [[1, 2, 3]] }, { data: mlpRows(1, 5) }, { nope: 1 }];
    const many = await mlp.runFeedsMany(feedsOf(mlp, payloads));
    expect(many.runs).toEqual([2]);
    expect(many.results.map((r) => (r.error === undefined ? 'ok' : (r.error as { code: string; httpStatus: number }).httpStatus))).toEqual(['ok', 400, 'ok', 400]);
    expect((many.results[1].error as Error).message).toMatch(/size 64 on dimension 1; got 3/);
    expectClose(many.results[2].value!.output, (await mlp.run(payloads[2])).output);
  });

  it('redoes a failed batched run one request at a time, so an error lands on its own request', async () => {
    const model = await OnnxModel.load(path.join(dir, 'mlp.onnx'));
    try {
      const session = (model as unknown as { session: { run(feeds: Record<string, Tensor>): Promise<unknown> } }).session;
      const real = session.run.bind(session);
      const seen: number[] = [];
      // Runs of more than 3 rows fail (the batched one), and so does the 2-row request on its own.
      session.run = (feeds) => {
        const rows = feeds.input.dims[0];
        seen.push(rows);
        return rows > 3 || rows === 2 ? Promise.reject(new Error(`cannot run ${rows} rows`)) : real(feeds);
      };
      const payloads = [{ data: mlpRows(1, 6) }, { data: mlpRows(2, 7) }, { data: mlpRows(1, 8) }];
      const many = await model.runFeedsMany(feedsOf(model, payloads));
      expect(seen).toEqual([4, 1, 2, 1]);
      expect(many.fallbacks).toBe(1);
      expect(many.runs).toEqual([1, 1, 1]);
      expect(many.results.map((r) => r.error === undefined)).toEqual([true, false, true]);
      expect((many.results[1].error as Error).message).toBe('cannot run 2 rows');
      expectClose(many.results[0].value!.output, (await mlp.run(payloads[0])).output);
    } finally {
      await model.close();
    }
  });

  it('never stacks a model whose first dimension is fixed', async () => {
    const fixed = await OnnxModel.load(path.join(dir, 'fixed.onnx'));
    try {
      expect(fixed.batchable).toBe(false);
      const x = [[[1, 2, 3, 4], [0, 0, 0, 0]], [[5, 6, 7, 8], [1, 1, 1, 1]]];
      const many = await fixed.runFeedsMany(x.map((d) => settle(() => fixed.feeds({ data: d }))) as Settled<Record<string, Tensor>>[]);
      expect(many.runs).toEqual([1, 1]);
      many.results.forEach((r, i) => expectClose(r.value!.output, linearPredict(x[i])));
    } finally {
      await fixed.close();
    }
  });
});

/** Histogram series `scoring_batch_size` of a /metrics text: runs, requests, runs of one request. */
function batchMetrics(text: string): { runs: number; requests: number; single: number; fallbacks: number } {
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    runs: num(/^scoring_batch_size_count (\S+)$/m),
    requests: num(/^scoring_batch_size_sum (\S+)$/m),
    single: num(/^scoring_batch_size_bucket\{le="1"\} (\S+)$/m),
    fallbacks: num(/^scoring_batch_fallbacks_total (\S+)$/m),
  };
}

describe('dynamic batching over HTTP', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('onnx-batch-http');
    fs.mkdirSync(path.join(dir, 'mlp'));
    fs.writeFileSync(path.join(dir, 'mlp', 'model.onnx'), mlpOnnx([64, 256, 10]));
    fs.mkdirSync(path.join(dir, 'fixed'));
    fs.writeFileSync(path.join(dir, 'fixed', 'model.onnx'), fixedBatchLinearOnnx());
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const metricsOf = async (url: string) => batchMetrics(await (await fetch(`${url}/metrics`)).text());
  // A long --max-batch-delay-ms makes batches deterministic: a batch starts only once --max-batch-size requests
  // are queued (bursts here are whole multiples of it), so no assertion depends on timing.
  const WAIT_FOR_FULL = 60_000;

  it('a burst is batched: same answers as unbatched, the malformed requests alone get 400, metrics count the batches', async () => {
    const s = await start({ modelDir: path.join(dir, 'mlp'), workers: 1, maxConcurrent: 32, maxWaitMs: 60_000, maxBatchSize: 16, maxBatchDelayMs: WAIT_FOR_FULL });
    const unbatched = await start({ modelDir: path.join(dir, 'mlp'), workers: 1, maxBatchSize: 1 });
    try {
      const bodies: unknown[] = Array.from({ length: 32 }, (_, i) => ({ data: mlpRows(1 + (i % 3), i) }));
      bodies[7] = { data: [[1, 2]] };
      bodies[20] = '{"data": [[1, 2, 3],';
      const bad = new Set([7, 20]);
      const answers = await Promise.all(bodies.map((b) => post(`${s.url}/score`, b, { 'x-ms-client-request-id': 'burst-1' })));
      expect(answers.map((r) => r.status)).toEqual(bodies.map((_, i) => (bad.has(i) ? 400 : 200)));
      const json = await Promise.all(answers.map((r) => r.json()));
      expect(json[7].error).toMatchObject({ code: 'InvalidInput', message: expect.stringContaining('size 64 on dimension 1; got 2') });
      expect(json[20].error).toMatchObject({ code: 'InvalidInput', message: expect.stringContaining('not valid JSON') });
      for (const [i, b] of bodies.entries()) {
        if (bad.has(i)) continue;
        const alone = await post(`${unbatched.url}/score`, b);
        expect(alone.status).toBe(200);
        expectClose(json[i].output, (await alone.json()).output);
      }
      answers.forEach((r) => {
        expect(r.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
        expect(r.headers.get('x-ms-client-request-id')).toBe('burst-1');
      });
      // Two batches of 16 requests, one malformed in each: two runs of 15.
      expect(await metricsOf(s.url)).toEqual({ runs: 2, requests: 30, single: 0, fallbacks: 0 });
      expect(await metricsOf(unbatched.url)).toEqual({ runs: 30, requests: 30, single: 30, fallbacks: 0 });
    } finally {
      await s.server.stop();
      await unbatched.server.stop();
    }
  });

  it('never batches a model with a fixed batch dimension (and never waits for a batch there)', async () => {
    const fixed = await start({ modelDir: path.join(dir, 'fixed'), workers: 1, maxConcurrent: 8, maxWaitMs: 60_000, maxBatchSize: 4, maxBatchDelayMs: WAIT_FOR_FULL });
    try {
      const x = Array.from({ length: 6 }, (_, i) => [[i, 1, 2, 3], [3, 2, 1, i]]);
      const answers = await Promise.all(x.map((d) => post(`${fixed.url}/score`, { data: d })));
      expect(answers.map((r) => r.status)).toEqual(Array(6).fill(200));
      (await Promise.all(answers.map((r) => r.json()))).forEach((j, i) => expectClose(j.output, linearPredict(x[i])));
      expect(await metricsOf(fixed.url)).toEqual({ runs: 6, requests: 6, single: 6, fallbacks: 0 });
      const bad = await post(`${fixed.url}/score`, { data: [[1, 2, 3, 4]] });
      expect(bad.status).toBe(400);
      expect((await bad.json()).error.message).toMatch(/size 2 on dimension 0; got 1/);
    } finally {
      await fixed.server.stop();
    }
  });

  it('--onnx-worker-processes batches too and reports the runs in /metrics', async () => {
    const s = await start({ modelDir: path.join(dir, 'mlp'), workers: 1, maxConcurrent: 16, maxWaitMs: 60_000, onnxWorkerProcesses: true, maxBatchSize: 8, maxBatchDelayMs: WAIT_FOR_FULL });
    const unbatched = await start({ modelDir: path.join(dir, 'mlp'), workers: 1, maxBatchSize: 1 });
    try {
      const bodies = Array.from({ length: 16 }, (_, i) => ({ data: mlpRows(2, 100 + i) }));
      const answers = await Promise.all(bodies.map((b) => post(`${s.url}/score`, b)));
      expect(answers.map((r) => r.status)).toEqual(Array(16).fill(200));
      const json = await Promise.all(answers.map((r) => r.json()));
      for (const [i, b] of bodies.entries()) expectClose(json[i].output, (await (await post(`${unbatched.url}/score`, b)).json()).output);
      await waitFor(async () => (await metricsOf(s.url)).requests === 16);
      expect(await metricsOf(s.url)).toEqual({ runs: 2, requests: 16, single: 0, fallbacks: 0 });
    } finally {
      await s.server.stop();
      await unbatched.server.stop();
    }
  });
});
