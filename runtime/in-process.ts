/**
 * ONNX models with no entry script, served inside the front process: no worker process, no frame round trip.
 *
 * Same contract and limits as the worker pool: at most `capacity` (= workers × replica_max_concurrent_requests)
 * requests in run() at once, the others wait at most `maxWaitMs` (→ 503), a run() longer than `timeoutMs`
 * → 504. Two differences, both from onnxruntime-node (1.30): its `InferenceSession.run` returns a promise but
 * computes synchronously on the JS thread (its intra-op threads help inside one run), so
 * - runs execute one after the other and the event loop waits during each (a model whose single run takes
 *   seconds also delays `GET /`; serve such a model with `--onnx-worker-processes`);
 * - a run cannot be interrupted: the 504 is answered when the timer fires between runs or as soon as the
 *   over-long run returns; its slot stays taken until the run ends, and nothing is recycled.
 */
import { AppError } from '../shared/errors';
import { handleRequest, type Handler } from './handler';
import { ConcurrencyLimiter, overloadedError } from './limiter';
import type { PoolPhase, RequestInput, Scorer, WorkerReply } from './pool';
import type { ScriptSchema } from './protocol';

export interface InProcessOptions {
  /** Loads the model (e.g. `onnxHandler(file, …)`); a rejection is the init error. */
  load: () => Promise<Handler>;
  /** Concurrent run() calls admitted (workers × max-concurrent). */
  capacity: number;
  maxWaitMs: number;
  timeoutMs: number;
  debug?: boolean;
  onEvent?: (event: Record<string, unknown>) => void;
  onQueueWait?: (seconds: number) => void;
}

export class InProcessScorer implements Scorer {
  readonly limiter: ConcurrencyLimiter;
  private handler?: Handler;
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
    return this.handler?.schema ?? null;
  }

  get rawHttp(): boolean {
    return false;
  }

  start(): Promise<void> {
    this.started ??= this.opts.load().then(
      (handler) => {
        if (this.state === 'stopped') {
          void handler.close?.();
          return;
        }
        this.handler = handler;
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
    if (this.state === 'stopped') throw new AppError('ServiceStopping', 'The scoring service is shutting down', 503);
    if (this.state === 'failed') throw new AppError('InitFailed', this.unavailableReason, 503);
    const release = await this.limiter.acquire();
    const handler = this.handler!;
    const startedAt = Date.now();
    const work = handleRequest(handler, input, body, this.opts.debug ?? false);
    const tracked = work.finally(() => {
      this.running.delete(tracked);
      release();
    });
    this.running.add(tracked);
    const timeout = () => new AppError(
      'ScoringTimeout',
      `run() did not finish within scoring_timeout_ms (${this.opts.timeoutMs} ms); the ONNX model runs inside the server process and cannot be interrupted, so its slot stays taken until the run ends`,
      504,
    );
    return new Promise<WorkerReply>((resolve, reject) => {
      const timer = setTimeout(() => reject(timeout()), this.opts.timeoutMs);
      tracked.then((reply) => {
        clearTimeout(timer);
        // The timer cannot fire while a synchronous run holds the event loop: check the elapsed time too.
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
    this.limiter.close(new AppError('ServiceStopping', 'The scoring service is shutting down', 503));
    await Promise.allSettled([...this.running]);
    const handler = this.handler;
    this.handler = undefined;
    await handler?.close?.();
  }
}
