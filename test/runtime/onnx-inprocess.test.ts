/**
 * ONNX models served inside the front process: the concurrency limiter (503), the in-process scorer's timeout
 * (504, including a run that holds the event loop like onnxruntime-node's synchronous run), init failure,
 * shutdown, and the HTTP contract on a real model (burst → 503, timeout → 504, 401, 413, request ids,
 * metrics), plus `--onnx-worker-processes`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mlpOnnx, writeLinearOnnx } from '../../examples/runtime/onnx-model';
import { AppError } from '../../shared/errors';
import type { Handler } from '../../runtime/handler';
import { directExecutor, InProcessScorer, type Executor } from '../../runtime/in-process';
import { ConcurrencyLimiter, type Release } from '../../runtime/limiter';
import type { RequestInput } from '../../runtime/pool';
import { post, start, tempDir, waitFor, type Started } from './helpers';

const SCORE: RequestInput = { kind: 'score', method: 'POST', path: '/score', query: '', headers: {} };

/** A promise the test settles by hand. */
function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

/** Settled state of a promise without waiting for it. */
async function state(p: Promise<unknown>): Promise<'pending' | 'fulfilled' | 'rejected'> {
  const marker = Symbol('pending');
  try {
    const v = await Promise.race([p, new Promise((r) => setImmediate(() => r(marker)))]);
    return v === marker ? 'pending' : 'fulfilled';
  } catch {
    return 'rejected';
  }
}

describe('ConcurrencyLimiter', () => {
  afterEach(() => jest.useRealTimers());

  it('admits `capacity` at once, queues the rest FIFO and hands slots over on release', async () => {
    const waits: number[] = [];
    const limiter = new ConcurrencyLimiter({ capacity: 2, maxWaitMs: 60_000, onQueueWait: (s) => waits.push(s) });
    const a = await limiter.acquire();
    const b = await limiter.acquire();
    const c = limiter.acquire();
    const d = limiter.acquire();
    expect(limiter.inflight).toBe(2);
    expect(limiter.queued).toBe(2);
    expect(await state(c)).toBe('pending');
    a();
    a(); // a second release of the same slot does nothing
    expect(await state(c)).toBe('fulfilled');
    expect(await state(d)).toBe('pending');
    expect(limiter.inflight).toBe(2);
    b();
    const releases = [await c, await d];
    expect(limiter.queued).toBe(0);
    releases.forEach((r) => r());
    expect(limiter.inflight).toBe(0);
    expect(waits).toHaveLength(4);
    expect(waits.slice(0, 2)).toEqual([0, 0]);
  });

  it('rejects with 503 ServiceOverloaded after max_request_wait_time in the queue', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const limiter = new ConcurrencyLimiter({ capacity: 1, maxWaitMs: 500 });
    const held = await limiter.acquire();
    const waiting = limiter.acquire();
    jest.advanceTimersByTime(499);
    expect(await state(waiting)).toBe('pending');
    jest.advanceTimersByTime(1);
    await expect(waiting).rejects.toMatchObject({ code: 'ServiceOverloaded', httpStatus: 503 });
    expect(limiter.queued).toBe(0);
    // The timed-out waiter does not take the slot when it frees up.
    held();
    expect(limiter.inflight).toBe(0);
    (await limiter.acquire())();
  });

  it('close() rejects the queue and later acquires', async () => {
    const limiter = new ConcurrencyLimiter({ capacity: 1, maxWaitMs: 60_000 });
    await limiter.acquire();
    const waiting = limiter.acquire();
    limiter.close(new AppError('ServiceStopping', 'stopping', 503));
    await expect(waiting).rejects.toMatchObject({ code: 'ServiceStopping' });
    await expect(limiter.acquire()).rejects.toMatchObject({ code: 'ServiceStopping' });
  });

  it('refuses a capacity below 1', () => {
    expect(() => new ConcurrencyLimiter({ capacity: 0, maxWaitMs: 1 })).toThrow(expect.objectContaining({ code: 'InvalidOptions' }));
  });
});

describe('InProcessScorer (injected handler)', () => {
  /** A handler whose score() calls wait for the test, plus bookkeeping. */
  function controlled() {
    const pending: Array<{ resolve(v: unknown): void }> = [];
    let closed = false;
    const handler: Handler = {
      rawHttp: false,
      schema: null,
      score: () => {
        const d = deferred<unknown>();
        pending.push(d);
        return d.promise;
      },
      batch: async (rows) => rows.map((r) => ({ echo: r })),
      close: async () => { closed = true; },
    };
    return { handler, pending, isClosed: () => closed };
  }

  it('runs at most workers × max-concurrent at once; the next one waits, then gets 503', async () => {
    const c = controlled();
    const scorer = new InProcessScorer({ load: async () => directExecutor(c.handler), capacity: 2, maxWaitMs: 50, timeoutMs: 60_000 });
    await scorer.start();
    const first = scorer.run(SCORE, Buffer.from('{}'));
    const second = scorer.run(SCORE, Buffer.from('{}'));
    await waitFor(() => c.pending.length === 2);
    expect(scorer.inflight).toBe(2);
    await expect(scorer.run(SCORE, Buffer.from('{}'))).rejects.toMatchObject({ code: 'ServiceOverloaded', httpStatus: 503 });
    c.pending.forEach((p) => p.resolve({ ok: true }));
    const replies = await Promise.all([first, second]);
    expect(replies.map((r) => [r.status, JSON.parse(r.body.toString())])).toEqual([[200, { ok: true }], [200, { ok: true }]]);
    expect(scorer.inflight).toBe(0);
    await scorer.stop();
    expect(c.isClosed()).toBe(true);
  });

  it('answers 504 when the timer fires; the slot stays taken until the run really ends', async () => {
    const c = controlled();
    const scorer = new InProcessScorer({ load: async () => directExecutor(c.handler), capacity: 1, maxWaitMs: 0, timeoutMs: 30 });
    await scorer.start();
    await expect(scorer.run(SCORE, Buffer.from('{}'))).rejects.toMatchObject({ code: 'ScoringTimeout', httpStatus: 504 });
    expect(scorer.inflight).toBe(1);
    await expect(scorer.run(SCORE, Buffer.from('{}'))).rejects.toMatchObject({ code: 'ServiceOverloaded' });
    c.pending[0].resolve('late');
    await waitFor(() => scorer.inflight === 0);
    await scorer.stop();
  });

  it('answers 504 for a run that holds the event loop past the timeout (as onnxruntime-node does)', async () => {
    const blocking: Handler = {
      rawHttp: false,
      schema: null,
      score: async () => {
        const end = Date.now() + 40;
        while (Date.now() < end) { /* a synchronous run: no timer can fire meanwhile */ }
        return 1;
      },
      batch: async () => [],
    };
    const scorer = new InProcessScorer({ load: async () => directExecutor(blocking), capacity: 1, maxWaitMs: 0, timeoutMs: 10 });
    await scorer.start();
    await expect(scorer.run(SCORE, Buffer.from('{}'))).rejects.toMatchObject({ code: 'ScoringTimeout', httpStatus: 504 });
    expect(scorer.inflight).toBe(0);
    await scorer.stop();
  });

  it('turns handler errors and batches into the same replies as a worker', async () => {
    const handler: Handler = {
      rawHttp: false,
      schema: null,
      score: async () => { throw new Error('boom'); },
      batch: async (rows) => rows.length,
    };
    const scorer = new InProcessScorer({ load: async () => directExecutor(handler), capacity: 1, maxWaitMs: 0, timeoutMs: 1000 });
    await scorer.start();
    const failed = await scorer.run(SCORE, Buffer.from('{}'));
    expect(failed.status).toBe(500);
    expect(JSON.parse(failed.body.toString())).toEqual({ error: { code: 'RunFailed', message: 'Error: boom' } });
    const batch = await scorer.run({ ...SCORE, kind: 'batch', path: '/batch' }, Buffer.from('{"mini_batch":[1,2,3]}'));
    expect(JSON.parse(batch.body.toString())).toEqual({ results: [3], count: 1 });
    const bad = await scorer.run({ ...SCORE, kind: 'batch', path: '/batch' }, Buffer.from('{"mini_batch":1}'));
    expect([bad.status, JSON.parse(bad.body.toString()).error.code]).toEqual([400, 'InvalidMiniBatch']);
    await scorer.stop();
  });

  it('reports a failed load as InitFailed; waits max_request_wait_time while the model loads', async () => {
    const failing = new InProcessScorer({ load: async () => { throw new Error('bad model file'); }, capacity: 1, maxWaitMs: 0, timeoutMs: 1000 });
    await failing.start();
    expect(failing.phase).toBe('failed');
    expect(failing.unavailableReason).toBe('init() failed: bad model file');
    await expect(failing.run(SCORE, Buffer.from('{}'))).rejects.toMatchObject({ code: 'InitFailed', httpStatus: 503 });

    const gate = deferred<Executor>();
    const loading = new InProcessScorer({ load: () => gate.promise, capacity: 1, maxWaitMs: 20, timeoutMs: 1000 });
    const started = loading.start();
    expect(loading.phase).toBe('starting');
    await expect(loading.run(SCORE, Buffer.from('{}'))).rejects.toMatchObject({ code: 'ServiceOverloaded', message: expect.stringContaining('still loading') });
    const early = loading.run(SCORE, Buffer.from('{}'));
    const c = controlled();
    gate.resolve(directExecutor(c.handler));
    await started;
    expect(loading.phase).toBe('ready');
    await waitFor(() => loading.inflight === 1);
    c.pending[0].resolve('loaded');
    expect(JSON.parse((await early).body.toString())).toBe('loaded');
    await loading.stop();
  });

  it('stop() rejects queued requests and waits for the running ones', async () => {
    const c = controlled();
    const scorer = new InProcessScorer({ load: async () => directExecutor(c.handler), capacity: 1, maxWaitMs: 60_000, timeoutMs: 60_000 });
    await scorer.start();
    const running = scorer.run(SCORE, Buffer.from('{}'));
    const queued = scorer.run(SCORE, Buffer.from('{}'));
    await waitFor(() => scorer.queued === 1);
    const stopped = scorer.stop();
    await expect(queued).rejects.toMatchObject({ code: 'ServiceStopping' });
    expect(await state(stopped)).toBe('pending');
    expect(c.isClosed()).toBe(false);
    c.pending[0].resolve(1);
    await stopped;
    expect((await running).status).toBe(200);
    expect(c.isClosed()).toBe(true);
    await expect(scorer.run(SCORE, Buffer.from('{}'))).rejects.toMatchObject({ code: 'ServiceStopping' });
  });
});

describe('in-process ONNX over HTTP', () => {
  const KEYS = { primaryKey: 'onnx-primary-key-0123', secondaryKey: 'onnx-secondary-key-0123' };
  const auth = { authorization: `Bearer ${KEYS.primaryKey}` };
  let dir: string;
  let s: Started;
  beforeAll(async () => {
    dir = tempDir('onnx-inproc');
    writeLinearOnnx(path.join(dir, 'model.onnx'));
    s = await start({ modelDir: dir, workers: 2, maxConcurrent: 2, maxWaitMs: 100, keys: KEYS, maxBodyBytes: 4096 });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs in the server process: no worker processes, one ready "worker"', async () => {
    expect(s.server.kind).toBe('onnx');
    expect(s.server.pool).toBeInstanceOf(InProcessScorer);
    expect(s.server.pool.pids).toEqual([]);
    expect((await fetch(`${s.url}/`)).status).toBe(200);
    const res = await post(`${s.url}/score`, { data: [[0, 0, 0, 0]] }, { ...auth, 'x-ms-client-request-id': 'onnx-1' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('x-ms-client-request-id')).toBe('onnx-1');
    expect((await res.json()).output[0][2]).toBeCloseTo(0.3, 5);
    expect(s.logs.some((l) => l.event === 'worker_ready' && l.inProcess === true)).toBe(true);
  });

  it('keeps auth (401) and the body limit (413)', async () => {
    expect((await post(`${s.url}/score`, { data: [[0, 0, 0, 0]] })).status).toBe(401);
    const big = await post(`${s.url}/score`, { data: Array.from({ length: 1000 }, () => [1, 2, 3, 4]) }, auth);
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('PayloadTooLarge');
  });

  it('a burst while every slot (workers × max-concurrent) is busy gets 503 with Retry-After, then serves again', async () => {
    const scorer = s.server.pool as InProcessScorer;
    const held: Release[] = [];
    for (let i = 0; i < 4; i++) held.push(await scorer.limiter.acquire());
    try {
      const burst = await Promise.all(Array.from({ length: 6 }, () => post(`${s.url}/score`, { data: [[1, 1, 1, 1]] }, auth)));
      expect(burst.map((r) => r.status)).toEqual(Array(6).fill(503));
      expect(burst[0].headers.get('retry-after')).toBe('1');
      expect((await burst[0].json()).error.code).toBe('ServiceOverloaded');
    } finally {
      held.forEach((r) => r());
    }
    expect((await post(`${s.url}/score`, { data: [[1, 1, 1, 1]] }, auth)).status).toBe(200);
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: auth })).text();
    expect(metrics).toMatch(/^scoring_rejected_total\{status="503"\} 6$/m);
    expect(metrics).toMatch(/^scoring_workers_ready 1$/m);
    expect(metrics).toMatch(/^scoring_inflight_requests 0$/m);
  });
});

describe('in-process ONNX timeout and worker processes', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('onnx-mlp');
    fs.writeFileSync(path.join(dir, 'model.onnx'), mlpOnnx([64, 1024, 1024, 10]));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  // 256 rows through a 1.1 M-parameter MLP: far more than 1 ms of parsing and compute on any machine.
  const rows = Array.from({ length: 256 }, (_, r) => Array.from({ length: 64 }, (_, i) => Math.sin(r + i)));

  it('a run over scoring_timeout_ms gets 504 and the server keeps serving', async () => {
    const s = await start({ modelDir: dir, timeoutMs: 1 });
    try {
      const res = await post(`${s.url}/score`, { data: rows });
      expect(res.status).toBe(504);
      expect((await res.json()).error).toMatchObject({ code: 'ScoringTimeout', message: expect.stringContaining('scoring_timeout_ms (1 ms)') });
      await waitFor(() => s.server.pool.inflight === 0);
      expect((await fetch(`${s.url}/`)).status).toBe(200);
      expect(await (await fetch(`${s.url}/metrics`)).text()).toMatch(/^scoring_rejected_total\{status="504"\} 1$/m);
    } finally {
      await s.server.stop();
    }
  });

  it('--onnx-worker-processes serves the same answers from worker processes', async () => {
    const inProc = await start({ modelDir: dir });
    const procs = await start({ modelDir: dir, workers: 2, onnxWorkerProcesses: true });
    try {
      expect(procs.server.pool.pids).toHaveLength(2);
      const body = { data: rows.slice(0, 3) };
      const [a, b] = await Promise.all([post(`${inProc.url}/score`, body), post(`${procs.url}/score`, body)]);
      expect(a.status).toBe(200);
      expect(await b.json()).toEqual(await a.json());
    } finally {
      await inProc.server.stop();
      await procs.server.stop();
    }
  });
});
