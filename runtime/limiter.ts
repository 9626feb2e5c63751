/**
 * Admission control for work that runs inside the front process (ONNX models): at most `capacity` runs at
 * once; a request that finds every slot taken waits in a FIFO queue at most `maxWaitMs`, then gets 503
 * `ServiceOverloaded` (AKS `max_request_wait_time` semantics, same message as the worker pool).
 */
import { RuntimeError } from './errors';

export interface LimiterOptions {
  capacity: number;
  maxWaitMs: number;
  /** Seconds each admitted request waited (0 when a slot was free). */
  onQueueWait?: (seconds: number) => void;
}

/** Gives a slot back; calling it more than once has no effect. */
export type Release = () => void;

interface Waiter {
  resolve(release: Release): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  enqueuedAt: number;
}

/** The 503 of a request that waited `max_request_wait_time` for a slot. */
export function overloadedError(maxWaitMs: number, why?: string): RuntimeError {
  return new RuntimeError(
    'ServiceOverloaded',
    why === undefined
      ? `Every worker slot stayed busy for max_request_wait_time (${maxWaitMs} ms); retry, or add workers/replicas`
      : `No worker became available within max_request_wait_time (${maxWaitMs} ms): ${why}`,
    503,
  );
}

export class ConcurrencyLimiter {
  private active = 0;
  private readonly queue: Waiter[] = [];
  private closed?: RuntimeError;

  constructor(private readonly opts: LimiterOptions) {
    if (!Number.isInteger(opts.capacity) || opts.capacity < 1) throw new RuntimeError('InvalidOptions', `Limiter capacity must be a positive integer; got ${opts.capacity}`, 400);
  }

  get capacity(): number {
    return this.opts.capacity;
  }

  /** Slots in use. */
  get inflight(): number {
    return this.active;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Resolves with a release function once a slot is free; rejects with 503 after `maxWaitMs` in the queue. */
  acquire(): Promise<Release> {
    if (this.closed) return Promise.reject(this.closed);
    if (this.queue.length === 0 && this.active < this.opts.capacity) {
      this.active++;
      this.opts.onQueueWait?.(0);
      return Promise.resolve(this.releaser());
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        enqueuedAt: Date.now(),
        timer: setTimeout(() => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(overloadedError(this.opts.maxWaitMs));
        }, this.opts.maxWaitMs),
      };
      this.queue.push(waiter);
    });
  }

  /** Rejects every waiting request and every later `acquire()` with `error` (shutdown). */
  close(error: RuntimeError): void {
    this.closed = error;
    for (const waiter of this.queue.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  private releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.drain();
    };
  }

  private drain(): void {
    while (this.queue.length && this.active < this.opts.capacity) {
      const waiter = this.queue.shift()!;
      clearTimeout(waiter.timer);
      this.active++;
      this.opts.onQueueWait?.((Date.now() - waiter.enqueuedAt) / 1000);
      waiter.resolve(this.releaser());
    }
  }
}
