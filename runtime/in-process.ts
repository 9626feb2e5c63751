/**
 * ONNX models with no entry script, served inside the front process: no worker process, no pipe, no frames.
 *
 * onnxruntime-node (1.30) computes `InferenceSession.run` synchronously on the calling JS thread (its promise
 * only defers the call), so the sessions live in `worker_threads` (`onnx-thread.ts`, one session per thread,
 * `--workers` threads): the event loop stays free for HTTP, `GET /` and timers, and runs go in parallel.
 *
 * Same contract and limits as the worker pool: at most `capacity` (= workers × replica_max_concurrent_requests)
 * requests in run() at once, the others wait at most `maxWaitMs` (→ 503), a run() longer than `timeoutMs` →
 * 504. A run cannot be interrupted (not even by terminating its thread, which waits for the native call), so
 * after a 504 the slot stays taken until the run ends; nothing is recycled.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { RuntimeError } from './errors';
import { handleRequest, type Handler } from './handler';
import { packageRoot } from './launch';
import { ConcurrencyLimiter, overloadedError } from './limiter';
import type { OnnxThreadData, ThreadReplies, ThreadRequest } from './onnx-thread';
import type { PoolPhase, RequestInput, Scorer, WorkerReply } from './pool';
import type { ScriptSchema } from './protocol';

/** Where requests are computed: on the event loop (`directExecutor`) or on worker threads (`startOnnxThreads`). */
export interface Executor {
  readonly schema: ScriptSchema | null;
  run(input: RequestInput, body: Buffer): Promise<WorkerReply>;
  close(): Promise<void>;
}

/** Runs a handler on the event loop (tests, handlers that never block). */
export function directExecutor(handler: Handler, debug = false): Executor {
  return {
    schema: handler.schema,
    run: (input, body) => handleRequest(handler, input, body, debug),
    close: async () => { await handler.close?.(); },
  };
}

interface Thread {
  worker: Worker;
  ready: boolean;
  busy: number;
  pending: Map<number, (reply: WorkerReply) => void>;
  /** Requests not yet posted: those of one event-loop turn go to the thread in one message. */
  outbox: ThreadRequest[];
  transfer: ArrayBuffer[];
}

/** Posts a thread's outbox as one message (one structured clone and one wake-up of the thread for the lot). */
function flush(t: Thread): void {
  const batch = t.outbox;
  const transfer = t.transfer;
  t.outbox = [];
  t.transfer = [];
  if (batch.length) t.worker.postMessage(batch, transfer);
}

export const onnxThreadPath = (): string => path.join(packageRoot(), 'dist', 'runtime', 'onnx-thread.js');

export interface OnnxThreadsOptions {
  count: number;
  /** onnxruntime intra-op threads per run. */
  threads: number;
  debug?: boolean;
  /** Dynamic batching: requests per model run, at most (default 1 = off); see batcher.ts. */
  maxBatchSize?: number;
  /** Dynamic batching: how long a partial batch may wait for more requests (default 0 = never waits). */
  maxBatchDelayMs?: number;
  /** After each batch a thread answered: requests per model run it made, and failed batched runs. */
  onBatch?: (runs: number[], fallbacks: number) => void;
}

/**
 * `count` worker threads, each with its own session of `file` (`threads` intra-op threads per run). Resolves
 * once every thread loaded the model; rejects with the load error. A thread that dies is started again and
 * its requests get 500 `WorkerDied`. Requests that queue up at a busy thread are batched (`maxBatchSize`).
 */
export async function startOnnxThreads(file: string, opts: OnnxThreadsOptions): Promise<Executor> {
  const data: OnnxThreadData = {
    file, threads: opts.threads, debug: opts.debug ?? false, maxBatchSize: opts.maxBatchSize ?? 1, maxBatchDelayMs: opts.maxBatchDelayMs ?? 0,
  };
  const threads: Thread[] = [];
  let schema: ScriptSchema | null = null;
  let closing = false;
  let nextId = 1;

  const spawn = (slot: number): Promise<void> => new Promise<void>((resolve, reject) => {
    const t: Thread = { worker: new Worker(onnxThreadPath(), { workerData: data }), ready: false, busy: 0, pending: new Map(), outbox: [], transfer: [] };
    threads[slot] = t;
    t.worker.on('message', (msg: { t: string; message?: string; schema?: ScriptSchema | null } | ThreadReplies) => {
      if (msg.t === 'replies') {
        const batch = msg as ThreadReplies;
        for (const { id, reply: r } of batch.replies) {
          const done = t.pending.get(id);
          t.pending.delete(id);
          t.busy--;
          done?.({ ...r, body: Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength) });
        }
        opts.onBatch?.(batch.runs, batch.fallbacks);
      } else if (msg.t === 'ready') {
        t.ready = true;
        schema = (msg as { schema?: ScriptSchema | null }).schema ?? null;
        resolve();
      } else if (msg.t === 'init_error') {
        reject(new Error((msg as { message?: string }).message));
      }
    });
    t.worker.on('error', (e) => reject(e));
    t.worker.on('exit', (code) => {
      t.ready = false;
      const died = new RuntimeError('WorkerDied', `The ONNX scoring thread died (exit code ${code}) while handling this request; it is being restarted`, 500);
      for (const done of t.pending.values()) done({ status: 500, contentType: 'application/json', headers: {}, body: Buffer.from(JSON.stringify({ error: died.toInfo() })) });
      t.pending.clear();
      reject(new Error(`The ONNX scoring thread exited (code ${code}) while loading the model`));
      if (!closing && threads[slot] === t) setTimeout(() => { if (!closing) spawn(slot).catch(() => undefined); }, 100);
    });
  });

  const close = async () => {
    closing = true;
    await Promise.all(threads.map((t) => t.worker.terminate()));
  };
  try {
    await Promise.all(Array.from({ length: opts.count }, (_, i) => spawn(i)));
  } catch (e) {
    await close();
    throw e;
  }
  return {
    get schema() { return schema; },
    run(input, body) {
      let best: Thread | undefined;
      for (const t of threads) if (t.ready && (!best || t.busy < best.busy)) best = t;
      if (!best) return Promise.reject(new RuntimeError('WorkerDied', 'Every ONNX scoring thread is restarting; retry shortly', 500));
      const t = best;
      const id = nextId++;
      t.busy++;
      // The body goes over in an ArrayBuffer of its own, transferred: a small Buffer is a view into Node's shared
      // 8 KiB pool, and structured cloning a view copies its whole ArrayBuffer. The model needs no headers.
      const bytes = new Uint8Array(body.byteLength);
      bytes.set(body);
      const request: ThreadRequest = { id, input: { ...input, headers: {} }, body: bytes };
      return new Promise<WorkerReply>((resolve) => {
        t.pending.set(id, resolve);
        // Requests of this event-loop turn (many sockets' data in one poll phase) leave together after it.
        if (t.outbox.length === 0) setImmediate(() => flush(t));
        t.outbox.push(request);
        t.transfer.push(bytes.buffer);
      });
    },
    close,
  };
}

export interface InProcessOptions {
  /** Loads the model (e.g. `startOnnxThreads(file, …)`); a rejection is the init error. */
  load: () => Promise<Executor>;
  /** Concurrent run() calls admitted (workers × max-concurrent). */
  capacity: number;
  maxWaitMs: number;
  timeoutMs: number;
  onEvent?: (event: Record<string, unknown>) => void;
  onQueueWait?: (seconds: number) => void;
}

export class InProcessScorer implements Scorer {
  readonly limiter: ConcurrencyLimiter;
  private executor?: Executor;
  private state: PoolPhase = 'starting';
  private initError?: string;
  private readonly running = new Set<Promise<unknown>>();
  private started?: Promise<void>;

  constructor(private readonly opts: InProcessOptions) {
    this.limiter = new ConcurrencyLimiter({ capacity: opts.capacity, maxWaitMs: opts.maxWaitMs, onQueueWait: opts.onQueueWait });
  }

  get phase(): PoolPhase {
    return this.state;
  }

  get unavailableReason(): string {
    if (this.state === 'failed') return this.initError ?? 'init() failed';
    if (this.state === 'stopped') return 'The scoring service is shutting down';
    return 'The ONNX model is still loading';
  }

  /** The in-process session counts as one worker. */
  get readyCount(): number {
    return this.state === 'ready' ? 1 : 0;
  }

  get size(): number {
    return 1;
  }

  get queued(): number {
    return this.limiter.queued;
  }

  get inflight(): number {
    return this.limiter.inflight;
  }

  get pids(): number[] {
    return [];
  }

  get schema(): ScriptSchema | null {
    return this.executor?.schema ?? null;
  }

  get rawHttp(): boolean {
    return false;
  }

  start(): Promise<void> {
    this.started ??= this.opts.load().then(
      (executor) => {
        if (this.state === 'stopped') {
          void executor.close();
          return;
        }
        this.executor = executor;
        this.state = 'ready';
        this.opts.onEvent?.({ event: 'worker_ready', worker: 1, pid: process.pid, inProcess: true });
      },
      (e: unknown) => {
        this.initError = `init() failed: ${(e as Error)?.message ?? String(e)}`;
        if (this.state !== 'stopped') this.state = 'failed';
        this.opts.onEvent?.({ event: 'worker_init_failed', worker: 1, message: this.initError, inProcess: true });
      },
    );
    return this.started;
  }

  async run(input: RequestInput, body: Buffer): Promise<WorkerReply> {
    if (this.state === 'starting') {
      // Like a pool whose workers are still in init(): wait for the model at most max_request_wait_time.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.start(), new Promise<void>((r) => { timer = setTimeout(r, this.opts.maxWaitMs); })]);
      clearTimeout(timer);
      if (this.state === 'starting') throw overloadedError(this.opts.maxWaitMs, this.unavailableReason);
    }
    if (this.state === 'stopped') throw new RuntimeError('ServiceStopping', 'The scoring service is shutting down', 503);
    if (this.state === 'failed') throw new RuntimeError('InitFailed', this.unavailableReason, 503);
    const release = await this.limiter.acquire();
    const startedAt = Date.now();
    const work = this.executor!.run(input, body);
    const tracked = work.finally(() => {
      this.running.delete(tracked);
      release();
    });
    this.running.add(tracked);
    const timeout = () => new RuntimeError(
      'ScoringTimeout',
      `run() did not finish within scoring_timeout_ms (${this.opts.timeoutMs} ms); the ONNX model runs inside the server process and cannot be interrupted, so its slot stays taken until the run ends`,
      504,
    );
    return new Promise<WorkerReply>((resolve, reject) => {
      const timer = setTimeout(() => reject(timeout()), this.opts.timeoutMs);
      tracked.then((reply) => {
        clearTimeout(timer);
        // A run on the event loop (directExecutor) holds off the timer: check the elapsed time too.
        if (Date.now() - startedAt > this.opts.timeoutMs) reject(timeout());
        else resolve(reply);
      }, (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.limiter.close(new RuntimeError('ServiceStopping', 'The scoring service is shutting down', 503));
    await Promise.allSettled([...this.running]);
    const executor = this.executor;
    this.executor = undefined;
    await executor?.close();
  }
}
