/**
 * The worker pool of one replica: N worker processes (Python or Node), each running the entry script's init()
 * once and then up to `maxConcurrent` run() calls at a time (AKS `replica_max_concurrent_requests`).
 * Requests wait for a free slot at most `maxWaitMs` (→ 503), a run() longer than `timeoutMs` is answered 504
 * and its worker recycled, a worker that dies is restarted with exponential backoff while its in-flight
 * requests get a 500 saying so. A worker whose first init() fails is not restarted: the replica reports the
 * init error on `GET /` until it is redeployed.
 *
 * Pipelining (`pipeline`, Python workers with one run() at a time): a worker whose runs are short may get up to
 * `pipeline` more frames queued behind the run() it is doing, so it goes from one request to the next without
 * sleeping on its pipe, and reads several frames per read (the wake-ups cost more than a short run() on a
 * small machine). The worker is sequential, so the front knows which frame runs: the oldest unanswered one; a
 * queued frame's scoring timeout starts when the run before it is answered, and its max_request_wait_time runs
 * until then (expired: 503 here and a cancel frame, the worker skips it). A frame is only queued at a worker whose
 * current run() started less than `pipelineMaxRunMs` ago and whose recent runs averaged less than that, so a
 * long run() holds no more than it did before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { RuntimeError } from './errors';
import { capText, splitLines } from './lines';
import { overloadedError } from './limiter';
import { encodeFrame, FrameDecoder, type ScriptSchema, type WorkerMessageHeader, type WorkerRequestHeader } from './protocol';

export interface WorkerLaunch {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface PoolOptions {
  launch: WorkerLaunch;
  workers: number;
  maxConcurrent: number;
  maxWaitMs: number;
  timeoutMs: number;
  /** First restart delay; doubles per consecutive crash up to `restartMaxMs`. */
  restartInitialMs?: number;
  restartMaxMs?: number;
  /** The script's own stdout/stderr lines (each at most MAX_LINE_BYTES, lines.ts, plus a truncation marker). */
  onOutput?: (workerId: number, line: string) => void;
  onEvent?: (event: Record<string, unknown>) => void;
  onQueueWait?: (seconds: number) => void;
  onRestart?: () => void;
  /** A worker's dynamic batch (ONNX with --onnx-worker-processes): requests per model run, failed batched runs. */
  onBatch?: (runs: number[], fallbacks: number) => void;
  /** A record the entry script collected (ModelDataCollector); body = its data as JSON. */
  onCollect?: (record: Extract<WorkerMessageHeader, { t: 'collect' }>, body: Buffer) => void;
  /**
   * Frames a worker may hold queued behind its current run() (see the file comment); only for workers that run
   * their frames one at a time, in order (Python with maxConcurrent 1). Default 0: none.
   */
  pipeline?: number;
  /** A worker gets frames queued behind its run() only while its runs take less than this (ms; default 5). */
  pipelineMaxRunMs?: number;
}

export interface WorkerReply {
  status: number;
  contentType: string;
  headers: Record<string, string>;
  body: Buffer;
}

export type RequestInput = Omit<WorkerRequestHeader, 'id'>;

export type PoolPhase = 'starting' | 'ready' | 'failed' | 'stopped';

/**
 * What the HTTP front needs from whatever runs the model: the worker pool (script workers) or the in-process
 * ONNX scorer (in-process.ts).
 */
export interface Scorer {
  readonly phase: PoolPhase;
  /** Why the scorer cannot serve, when it cannot. */
  readonly unavailableReason: string;
  readonly readyCount: number;
  readonly size: number;
  readonly queued: number;
  readonly inflight: number;
  /** Process ids of the live worker processes (none when the model runs in the front process). */
  readonly pids: number[];
  readonly schema: ScriptSchema | null;
  readonly rawHttp: boolean;
  /** Starts the workers / loads the model; resolves once ready or failed (see `phase`). */
  start(): Promise<void>;
  run(input: RequestInput, body: Buffer): Promise<WorkerReply>;
  stop(): Promise<void>;
}

/** One request, from run() until it is answered. */
interface Job {
  input: RequestInput;
  body: Buffer;
  resolve(reply: WorkerReply): void;
  reject(e: Error): void;
  enqueuedAt: number;
  /** Frame id, once sent to a worker. */
  id: number;
  /** The worker it was sent to (unset while it waits in the front's queue). */
  worker?: Worker;
  /** Its run() started (sent to a free slot, or the run before it on a pipelined worker was answered). */
  started: boolean;
  /** Answered 503 while queued at a worker (a cancel frame followed it): its reply, if any, is dropped. */
  abandoned: boolean;
  /** max_request_wait_time, until its run() starts. */
  waitTimer?: NodeJS.Timeout;
  /** scoring_timeout_ms, once its run() started. */
  runTimer?: NodeJS.Timeout;
}

interface Worker {
  id: number;
  child?: ChildProcess;
  state: 'starting' | 'ready' | 'recycling' | 'dead' | 'failed';
  /** Frames sent and not answered, in the order sent. */
  inflight: Map<number, Job>;
  everReady: boolean;
  readyAt: number;
  crashes: number;
  deathReason?: string;
  restartTimer?: NodeJS.Timeout;
  /** Pipelined workers: when the running frame started (performance.now()), and the recent runs' mean (ms). */
  runStartedAt: number;
  meanRunMs: number;
}

export class WorkerPool implements Scorer {
  private readonly workers: Worker[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private stopping = false;
  private initError?: string;
  private readyWaiters: Array<() => void> = [];
  schema: ScriptSchema | null = null;
  rawHttp = false;

  constructor(private readonly opts: PoolOptions) {}

  /** Spawns every worker; resolves once one is ready or every one failed init (see `phase`). */
  start(): Promise<void> {
    for (let i = 0; i < this.opts.workers; i++) {
      const w: Worker = { id: i + 1, state: 'starting', inflight: new Map(), everReady: false, readyAt: 0, crashes: 0, runStartedAt: 0, meanRunMs: Infinity };
      this.workers.push(w);
      this.spawnWorker(w);
    }
    return new Promise((resolve) => {
      if (this.phase !== 'starting') resolve();
      else this.readyWaiters.push(resolve);
    });
  }

  get phase(): PoolPhase {
    if (this.stopping) return 'stopped';
    if (this.workers.some((w) => w.state === 'ready')) return 'ready';
    if (this.workers.length > 0 && this.workers.every((w) => w.state === 'failed')) return 'failed';
    return 'starting';
  }

  /** Why the pool cannot serve, when it cannot. */
  get unavailableReason(): string {
    const phase = this.phase;
    if (phase === 'failed') return this.initError ?? 'init() failed';
    if (this.workers.some((w) => w.everReady)) return 'All scoring workers are restarting; retry shortly';
    return this.initError ?? 'The scoring workers are still running init()';
  }

  get readyCount(): number {
    return this.workers.filter((w) => w.state === 'ready').length;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Requests waiting for their run() to start: in the front's queue, or queued at a pipelined worker. */
  get queued(): number {
    return this.queue.length + this.queuedAtWorkers;
  }

  /** Requests queued at a pipelined worker behind the run() it is doing (part of `queued`). */
  get queuedAtWorkers(): number {
    let n = 0;
    for (const w of this.workers) for (const job of w.inflight.values()) if (!job.started && !job.abandoned) n++;
    return n;
  }

  /** Requests whose run() is under way. */
  get inflight(): number {
    let n = 0;
    for (const w of this.workers) for (const job of w.inflight.values()) if (job.started && !job.abandoned) n++;
    return n;
  }

  /** Process ids of the live workers (RSS accounting, tests). */
  get pids(): number[] {
    return this.workers.filter((w) => w.child?.pid && w.state !== 'dead').map((w) => w.child!.pid!);
  }

  run(input: RequestInput, body: Buffer): Promise<WorkerReply> {
    if (this.stopping) return Promise.reject(new RuntimeError('ServiceStopping', 'The scoring service is shutting down', 503));
    if (this.phase === 'failed') return Promise.reject(new RuntimeError('InitFailed', this.unavailableReason, 503));
    return new Promise<WorkerReply>((resolve, reject) => {
      const job: Job = { input, body, resolve, reject, enqueuedAt: Date.now(), id: 0, started: false, abandoned: false };
      const free = this.queue.length === 0 ? this.freeWorker() : undefined;
      if (free) this.dispatch(free, job);
      else {
        this.armWait(job, this.opts.maxWaitMs);
        this.queue.push(job);
      }
    });
  }

  private get pipelined(): boolean {
    return (this.opts.pipeline ?? 0) > 0 && this.opts.maxConcurrent === 1;
  }

  /** The least busy ready worker with room for one more frame. */
  private freeWorker(): Worker | undefined {
    let best: Worker | undefined;
    let bestLoad = 0;
    let now = -1;
    for (const w of this.workers) {
      if (w.state !== 'ready') continue;
      const load = w.inflight.size;
      if (load >= this.opts.maxConcurrent) {
        // Pipelining: only behind a run that is short so far, on a worker whose runs are short.
        const maxRunMs = this.opts.pipelineMaxRunMs ?? 5;
        if (!this.pipelined || load >= 1 + this.opts.pipeline! || w.meanRunMs >= maxRunMs) continue;
        if (now < 0) now = performance.now();
        if (now - w.runStartedAt >= maxRunMs) continue;
      }
      if (!best || load < bestLoad) {
        best = w;
        bestLoad = load;
      }
    }
    return best;
  }

  /** Sends the job's frame to `w`; its run() starts now, unless it is queued behind another one (pipelining). */
  private dispatch(w: Worker, job: Job): void {
    job.id = this.nextId++;
    job.worker = w;
    w.inflight.set(job.id, job);
    if (w.inflight.size <= this.opts.maxConcurrent) this.begin(w, job);
    else if (!job.waitTimer) this.armWait(job, this.opts.maxWaitMs);
    this.send(w, encodeFrame({ ...job.input, id: job.id }, job.body));
  }

  /** Frames sent to a worker in one callback of the event loop go out in one write (corked until the next tick). */
  private send(w: Worker, frame: Buffer): void {
    const pipe = w.child!.stdio[3] as Writable;
    if (!pipe.writableCorked) {
      pipe.cork();
      process.nextTick(() => pipe.uncork());
    }
    pipe.write(frame);
  }

  private begin(w: Worker, job: Job): void {
    job.started = true;
    if (job.waitTimer) {
      clearTimeout(job.waitTimer);
      job.waitTimer = undefined;
    }
    if (!job.abandoned) this.opts.onQueueWait?.((Date.now() - job.enqueuedAt) / 1000);
    if (this.pipelined) w.runStartedAt = performance.now();
    job.runTimer = setTimeout(() => {
      w.inflight.delete(job.id);
      job.reject(new RuntimeError('ScoringTimeout', `run() did not finish within scoring_timeout_ms (${this.opts.timeoutMs} ms); the worker was recycled`, 504));
      this.recycle(w, `recycled after a run() exceeded scoring_timeout_ms (${this.opts.timeoutMs} ms)`);
    }, this.opts.timeoutMs);
  }

  /** max_request_wait_time for a job whose run() has not started: in the front's queue, or queued at a worker. */
  private armWait(job: Job, ms: number): void {
    job.waitTimer = setTimeout(() => {
      job.waitTimer = undefined;
      const error = overloadedError(this.opts.maxWaitMs, this.phase === 'ready' ? undefined : this.unavailableReason);
      const w = job.worker;
      if (!w) {
        const i = this.queue.indexOf(job);
        if (i >= 0) this.queue.splice(i, 1);
      } else if (!job.started) {
        // Queued behind a run that turned out long: the worker skips it (cancel frame) or, should it have just
        // started it, its reply is dropped.
        job.abandoned = true;
        (w.child?.stdio[3] as Writable | undefined)?.write(encodeFrame({ id: job.id, kind: 'cancel' }));
      } else return;
      job.reject(error);
    }, ms);
  }

  /** Hands free slots to queued requests, oldest first. */
  private drain(): void {
    while (this.queue.length) {
      const w = this.freeWorker();
      if (!w) return;
      this.dispatch(w, this.queue.shift()!);
    }
  }

  private spawnWorker(w: Worker): void {
    const { launch } = this.opts;
    const child = spawn(launch.command, launch.args, {
      cwd: launch.cwd,
      env: launch.env,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
    });
    w.child = child;
    w.state = 'starting';
    w.deathReason = undefined;
    w.meanRunMs = Infinity;
    const decoder = new FrameDecoder<WorkerMessageHeader>();
    (child.stdio[4] as Readable).on('data', (chunk: Buffer) => {
      for (const { header, body } of decoder.push(chunk)) this.onMessage(w, child, header, body);
    });
    (child.stdio[3] as Writable).on('error', () => undefined);
    // Linear, and a line longer than MAX_LINE_BYTES is cut with a marker (a 50 MB print must not stall the front).
    for (const stream of [child.stdout, child.stderr]) if (stream) splitLines(stream, (line) => this.output(w.id, line));
    child.on('error', (e) => {
      this.initError ??= `Could not start the worker (${launch.command}): ${e.message}`;
    });
    // The replies it wrote before exiting are read first (they tell which frame it was running), then the exit is
    // handled; a reply pipe that stays open (a grandchild holding it) delays that at most 200 ms.
    child.on('exit', (code, signal) => {
      const replies = child.stdio[4] as Readable;
      if (replies.readableEnded || replies.destroyed) return this.onExit(w, child, code, signal);
      let handled = false;
      const handle = () => {
        if (handled) return;
        handled = true;
        clearTimeout(timer);
        this.onExit(w, child, code, signal);
      };
      const timer = setTimeout(handle, 200);
      replies.once('end', handle);
      replies.once('close', handle);
    });
  }

  private output(workerId: number, line: string): void {
    if (this.opts.onOutput) this.opts.onOutput(workerId, line);
    else process.stderr.write(`[worker ${workerId}] ${line}\n`);
  }

  private onMessage(w: Worker, child: ChildProcess, header: WorkerMessageHeader, body: Buffer): void {
    if (w.child !== child) return;
    if (header.t === 'ready') {
      w.state = 'ready';
      w.everReady = true;
      w.readyAt = Date.now();
      this.schema = header.schema;
      this.rawHttp = header.rawHttp;
      this.initError = undefined;
      this.opts.onEvent?.({ event: 'worker_ready', worker: w.id, pid: header.pid });
      this.readyWaiters.splice(0).forEach((r) => r());
      this.drain();
    } else if (header.t === 'init_error') {
      // The script's exception text: bounded like an output line (it reaches GET /, the log and the run's error).
      const message = capText(header.message);
      this.initError = message;
      w.deathReason = message;
      this.opts.onEvent?.({ event: 'worker_init_failed', worker: w.id, message });
    } else if (header.t === 'res' || header.t === 'skipped') {
      const job = w.inflight.get(header.id);
      if (!job) return; // already timed out
      w.inflight.delete(header.id);
      clearTimeout(job.runTimer);
      if (header.t === 'res' && !job.abandoned) job.resolve({ status: header.status, contentType: header.contentType, headers: header.headers ?? {}, body });
      if (this.pipelined) {
        if (job.started && header.t === 'res') {
          const ms = performance.now() - w.runStartedAt;
          w.meanRunMs = w.meanRunMs === Infinity ? ms : 0.8 * w.meanRunMs + 0.2 * ms;
        }
        // The next frame queued at this worker runs now.
        const next = w.inflight.values().next();
        if (!next.done && !next.value.started) this.begin(w, next.value);
      }
      this.drain();
    } else if (header.t === 'batch') {
      this.opts.onBatch?.(header.runs, header.fallbacks);
    } else if (header.t === 'collect') {
      this.opts.onCollect?.(header, body);
    }
  }

  private recycle(w: Worker, reason: string): void {
    if (w.state === 'recycling' || w.state === 'dead') return;
    w.state = 'recycling';
    w.deathReason = reason;
    w.child?.kill('SIGKILL');
  }

  private onExit(w: Worker, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.child !== child) return;
    const recycled = w.state === 'recycling';
    const wasReady = w.everReady;
    w.state = 'dead';
    const why = recycled ? w.deathReason! : `the scoring worker died (${signal ? `signal ${signal}` : `exit code ${code}`})`;
    const died = new RuntimeError('WorkerDied', `${why[0].toUpperCase()}${why.slice(1)} while handling this request; it is being restarted`, 500);
    // Frames queued at a pipelined worker behind the one it was running never ran: they go back to the queue.
    // (After a scoring timeout the running one was answered 504 already; after a crash, the first frame not yet
    // skipped may have been running.)
    const requeue: Job[] = [];
    let mayHaveRun = !recycled;
    for (const job of w.inflight.values()) {
      clearTimeout(job.runTimer);
      if (job.abandoned) continue;
      if (this.pipelined && !job.started && !mayHaveRun) {
        if (this.stopping) {
          clearTimeout(job.waitTimer);
          job.reject(new RuntimeError('ServiceStopping', 'The scoring service is shutting down', 503));
        } else {
          job.worker = undefined;
          requeue.push(job);
        }
        continue;
      }
      mayHaveRun = false;
      clearTimeout(job.waitTimer);
      job.reject(died);
    }
    w.inflight.clear();
    if (this.stopping) return;
    this.queue.unshift(...requeue);
    this.drain();
    this.opts.onEvent?.({ event: 'worker_exit', worker: w.id, code, signal, reason: why });
    if (!wasReady) {
      // First init() failed: a script error that a restart will not fix.
      w.state = 'failed';
      this.initError ??= `The worker exited during init() (${signal ? `signal ${signal}` : `exit code ${code}`})`;
      if (this.phase === 'failed') {
        this.readyWaiters.splice(0).forEach((r) => r());
        for (const job of this.queue.splice(0)) {
          clearTimeout(job.waitTimer);
          job.reject(new RuntimeError('InitFailed', this.unavailableReason, 503));
        }
      }
      return;
    }
    if (Date.now() - w.readyAt > 10_000) w.crashes = 0;
    const initial = this.opts.restartInitialMs ?? 100;
    const delay = recycled ? 0 : Math.min(this.opts.restartMaxMs ?? 10_000, initial * 2 ** w.crashes);
    if (!recycled) w.crashes++;
    this.opts.onRestart?.();
    w.restartTimer = setTimeout(() => {
      w.restartTimer = undefined;
      if (!this.stopping) this.spawnWorker(w);
    }, delay);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const job of this.queue.splice(0)) {
      clearTimeout(job.waitTimer);
      job.reject(new RuntimeError('ServiceStopping', 'The scoring service is shutting down', 503));
    }
    this.readyWaiters.splice(0).forEach((r) => r());
    await Promise.all(this.workers.map((w) => {
      if (w.restartTimer) clearTimeout(w.restartTimer);
      const child = w.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
        child.once('exit', () => { clearTimeout(kill); resolve(); });
        (child.stdio[3] as Writable).end();
        child.kill('SIGTERM');
      });
    }));
  }
}
