/**
 * The worker pool of one replica: N worker processes (Python or Node), each running the entry script's init()
 * once and then up to `maxConcurrent` run() calls at a time (AKS `replica_max_concurrent_requests`).
 * Requests wait for a free slot at most `maxWaitMs` (→ 503), a run() longer than `timeoutMs` is answered 504
 * and its worker recycled, a worker that dies is restarted with exponential backoff while its in-flight
 * requests get a 500 saying so. A worker whose first init() fails is not restarted: the replica reports the
 * init error on `GET /` until it is redeployed.
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

interface Pending {
  resolve(reply: WorkerReply): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

interface Waiter {
  resolve(w: Worker): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  enqueuedAt: number;
}

interface Worker {
  id: number;
  child?: ChildProcess;
  state: 'starting' | 'ready' | 'recycling' | 'dead' | 'failed';
  inflight: Map<number, Pending>;
  /** Slots handed out by acquire() whose run() has not registered yet. */
  reserved: number;
  everReady: boolean;
  readyAt: number;
  crashes: number;
  deathReason?: string;
  restartTimer?: NodeJS.Timeout;
}

export class WorkerPool implements Scorer {
  private readonly workers: Worker[] = [];
  private readonly queue: Waiter[] = [];
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
      const w: Worker = { id: i + 1, state: 'starting', inflight: new Map(), reserved: 0, everReady: false, readyAt: 0, crashes: 0 };
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

  get queued(): number {
    return this.queue.length;
  }

  get inflight(): number {
    return this.workers.reduce((n, w) => n + w.inflight.size, 0);
  }

  /** Process ids of the live workers (RSS accounting, tests). */
  get pids(): number[] {
    return this.workers.filter((w) => w.child?.pid && w.state !== 'dead').map((w) => w.child!.pid!);
  }

  async run(input: RequestInput, body: Buffer): Promise<WorkerReply> {
    const worker = await this.acquire();
    worker.reserved = Math.max(0, worker.reserved - 1);
    if (worker.state !== 'ready') {
      throw new RuntimeError('WorkerDied', 'The scoring worker picked for this request died before it started; retry', 500);
    }
    const id = this.nextId++;
    return new Promise<WorkerReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        worker.inflight.delete(id);
        reject(new RuntimeError('ScoringTimeout', `run() did not finish within scoring_timeout_ms (${this.opts.timeoutMs} ms); the worker was recycled`, 504));
        this.recycle(worker, `recycled after a run() exceeded scoring_timeout_ms (${this.opts.timeoutMs} ms)`);
      }, this.opts.timeoutMs);
      worker.inflight.set(id, { resolve, reject, timer });
      const stdin = worker.child!.stdio[3] as Writable;
      // Frames sent in one turn of the event loop go to the worker in one write (one wake-up of the worker, not one
      // per request): the pipe is corked until the loop's check phase.
      if (!stdin.writableCorked) {
        stdin.cork();
        setImmediate(() => stdin.uncork());
      }
      stdin.write(encodeFrame({ ...input, id }, body));
    });
  }

  private freeWorker(): Worker | undefined {
    let best: Worker | undefined;
    for (const w of this.workers) {
      const load = w.inflight.size + w.reserved;
      if (w.state !== 'ready' || load >= this.opts.maxConcurrent) continue;
      if (!best || load < best.inflight.size + best.reserved) best = w;
    }
    return best;
  }

  private acquire(): Promise<Worker> {
    if (this.stopping) return Promise.reject(new RuntimeError('ServiceStopping', 'The scoring service is shutting down', 503));
    if (this.phase === 'failed') return Promise.reject(new RuntimeError('InitFailed', this.unavailableReason, 503));
    const free = this.queue.length === 0 ? this.freeWorker() : undefined;
    if (free) {
      free.reserved++;
      this.opts.onQueueWait?.(0);
      return Promise.resolve(free);
    }
    return new Promise<Worker>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        enqueuedAt: Date.now(),
        timer: setTimeout(() => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(overloadedError(this.opts.maxWaitMs, this.phase === 'ready' ? undefined : this.unavailableReason));
        }, this.opts.maxWaitMs),
      };
      this.queue.push(waiter);
    });
  }

  /** Hands free slots to queued requests, oldest first. */
  private drain(): void {
    while (this.queue.length) {
      const w = this.freeWorker();
      if (!w) return;
      const waiter = this.queue.shift()!;
      clearTimeout(waiter.timer);
      this.opts.onQueueWait?.((Date.now() - waiter.enqueuedAt) / 1000);
      w.reserved++; // run() turns the reservation into an in-flight entry when it resumes
      waiter.resolve(w);
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
    w.reserved = 0;
    w.deathReason = undefined;
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
    child.on('exit', (code, signal) => this.onExit(w, child, code, signal));
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
    } else if (header.t === 'res') {
      const p = w.inflight.get(header.id);
      if (!p) return; // already timed out
      w.inflight.delete(header.id);
      clearTimeout(p.timer);
      p.resolve({ status: header.status, contentType: header.contentType, headers: header.headers ?? {}, body });
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
    for (const [, p] of w.inflight) {
      clearTimeout(p.timer);
      p.reject(new RuntimeError('WorkerDied', `${why[0].toUpperCase()}${why.slice(1)} while handling this request; it is being restarted`, 500));
    }
    w.inflight.clear();
    if (this.stopping) return;
    this.opts.onEvent?.({ event: 'worker_exit', worker: w.id, code, signal, reason: why });
    if (!wasReady) {
      // First init() failed: a script error that a restart will not fix.
      w.state = 'failed';
      this.initError ??= `The worker exited during init() (${signal ? `signal ${signal}` : `exit code ${code}`})`;
      if (this.phase === 'failed') {
        this.readyWaiters.splice(0).forEach((r) => r());
        for (const waiter of this.queue.splice(0)) {
          clearTimeout(waiter.timer);
          waiter.reject(new RuntimeError('InitFailed', this.unavailableReason, 503));
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
    for (const waiter of this.queue.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new RuntimeError('ServiceStopping', 'The scoring service is shutting down', 503));
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
