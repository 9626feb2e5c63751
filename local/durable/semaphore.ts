/** A counting semaphore: the host.json concurrency limits (activities, orchestrator episodes) of the local engine. */
export class Semaphore {
  private queue: (() => void)[] = [];
  private active = 0;
  /** Highest number of holders seen at once. */
  peak = 0;
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    // A released slot is handed straight to the next waiter (it is never free in between).
    if (this.active >= this.limit) await new Promise<void>((r) => this.queue.push(r));
    else this.active++;
    this.peak = Math.max(this.peak, this.active);
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }
}
