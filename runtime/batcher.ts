/**
 * Dynamic batching queue (Triton's dynamic batcher / TorchServe's batch_size + max_batch_delay), one per model
 * instance (an ONNX thread): requests that arrive while the instance is busy wait here and the next run takes
 * up to `maxBatchSize` of them at once (`handleRequests` stacks the `/score` ones along the batch dimension).
 *
 * `maxBatchDelayMs` = 0 (the default) batches only what is already queued: an idle instance starts at once, so
 * no request waits for company and low load gets no extra latency. With a delay > 0, a batch smaller than
 * `maxBatchSize` waits until its oldest request has queued that long (Triton's max_queue_delay).
 */
export interface BatchQueueOptions<T> {
  /** Requests per model run, at most (1 = no batching). */
  maxBatchSize: number;
  maxBatchDelayMs: number;
  /** Handles one batch (the items in arrival order); the next batch starts when it settles. */
  process(items: T[]): Promise<void>;
  /** Whether an item may share a run with others (e.g. `/score`, not `/batch`); default: all. */
  batchable?(item: T): boolean;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class BatchQueue<T> {
  private readonly queue: Array<{ item: T; at: number }> = [];
  private running = false;
  /** Ends the wait of a partial batch early (it became full). */
  private wake?: () => void;

  constructor(private readonly opts: BatchQueueOptions<T>) {}

  get length(): number {
    return this.queue.length;
  }

  push(item: T): void {
    this.queue.push({ item, at: Date.now() });
    if (this.wake && this.batchableCount() >= this.opts.maxBatchSize) this.wake();
    if (!this.running) {
      this.running = true;
      // One turn of the event loop first, so that every message already delivered joins the first batch.
      void nextTurn().then(() => this.loop());
    }
  }

  private async loop(): Promise<void> {
    try {
      while (this.queue.length) {
        const { maxBatchSize, maxBatchDelayMs } = this.opts;
        const headBatchable = this.opts.batchable?.(this.queue[0].item) ?? true;
        if (maxBatchDelayMs > 0 && maxBatchSize > 1 && headBatchable && this.batchableCount() < maxBatchSize) {
          const wait = this.queue[0].at + maxBatchDelayMs - Date.now();
          if (wait > 0) await this.sleep(wait);
        }
        // process() answers every item itself; a throw must not stall the queue.
        await this.opts.process(this.take()).catch(() => undefined);
        // Let the requests that arrived during the run be delivered before the next batch is formed.
        await nextTurn();
      }
    } finally {
      this.running = false;
    }
  }

  /** Waits `ms`, or less when the batch fills up meanwhile. */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.wake?.(), ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private batchableCount(): number {
    const ok = this.opts.batchable;
    return ok ? this.queue.reduce((n, q) => n + (ok(q.item) ? 1 : 0), 0) : this.queue.length;
  }

  /** The head of the queue alone when it cannot be batched, else up to `maxBatchSize` batchable items. */
  private take(): T[] {
    const ok = this.opts.batchable ?? (() => true);
    if (this.opts.maxBatchSize <= 1 || !ok(this.queue[0].item)) return [this.queue.shift()!.item];
    const taken: T[] = [];
    for (let i = 0; i < this.queue.length && taken.length < this.opts.maxBatchSize;) {
      if (ok(this.queue[i].item)) taken.push(this.queue.splice(i, 1)[0].item);
      else i++;
    }
    return taken;
  }
}
