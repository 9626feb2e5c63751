/** Prometheus text exposition (format 0.0.4) for the scoring runtime: counters, gauges, histograms. */

/** Seconds. */
export const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Labels = Record<string, string>;

/**
 * What a pinned request carries to its slot (set by the service front, or on AKS by the route's pin rule; taken off
 * every other request): the runtime counts it apart in /metrics (`pinned="true"`), so a test of a version at 0 %
 * never weighs in a rollout's gates.
 */
export const PINNED_HEADER = 'x-mdf-pinned';

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** Requests per model run (dynamic batching). */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export class Histogram {
  /** Told of each observation (OpenTelemetry metrics, otel-metrics.ts). */
  tap?: (labels: Labels, value: number) => void;
  readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(private readonly buckets: readonly number[] = BUCKETS) {}
  observe(labels: Labels, value: number): void {
    this.observeSeries(labelText(labels), labels, value);
  }
  /** `observe` with the series' label text already built (labelText(labels)). */
  observeSeries(key: string, labels: Labels, value: number): void {
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
    this.tap?.(labels, value);
  }
  render(name: string, help: string): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => lines.push(`${name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
      lines.push(`${name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${name}_sum${labelText(s.labels)} ${s.sum}`);
      lines.push(`${name}_count${labelText(s.labels)} ${s.count}`);
    }
    return lines;
  }
}

export class Counter {
  readonly series = new Map<string, { labels: Labels; value: number }>();
  inc(labels: Labels = {}, by = 1): void {
    this.incSeries(labelText(labels), labels, by);
  }
  /** `inc` with the series' label text already built (labelText(labels)). */
  incSeries(key: string, labels: Labels, by = 1): void {
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { labels, value: by });
  }
  get(labels: Labels = {}): number {
    return this.series.get(labelText(labels))?.value ?? 0;
  }
  render(name: string, help: string): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} counter`];
    if (this.series.size === 0) lines.push(`${name} 0`);
    for (const s of this.series.values()) lines.push(`${name}${labelText(s.labels)} ${s.value}`);
    return lines;
  }
}

export class RuntimeMetrics {
  readonly requests = new Counter();
  readonly duration = new Histogram();
  readonly queueWait = new Histogram();
  readonly workerRestarts = new Counter();
  readonly rejected = new Counter();
  /** ONNX dynamic batching: requests per model run (`_count` = runs, `_sum` = requests they served). */
  readonly batchSize = new Histogram(BATCH_BUCKETS);
  readonly batchFallbacks = new Counter();
  inflight = 0;

  constructor(readonly gauges: () => { workersReady: number; workersTotal: number; queued: number }) {}

  /** Label sets of recordRequest by route and status (a closed set: routes are a fixed list, statuses HTTP codes). */
  private readonly requestSeries = new Map<string, { requests: [string, Labels]; duration: [string, Labels] }>();

  /**
   * One request handled. `pinned`: a request a service front or route sent to this version by name (PINNED_HEADER,
   * runtime/front.ts): a test, not live traffic. Its series carry `pinned="true"`, which a rollout's gates leave out.
   */
  recordRequest(route: string, status: number, seconds: number, pinned = false): void {
    const k = `${route} ${status}${pinned ? ' pinned' : ''}`;
    let s = this.requestSeries.get(k);
    if (!s) {
      const requests: Labels = { route, status: String(status), ...(pinned ? { pinned: 'true' } : {}) };
      const duration: Labels = { route, ...(pinned ? { pinned: 'true' } : {}) };
      s = { requests: [labelText(requests), requests], duration: [labelText(duration), duration] };
      this.requestSeries.set(k, s);
    }
    this.requests.incSeries(s.requests[0], s.requests[1]);
    this.duration.observeSeries(s.duration[0], s.duration[1], seconds);
  }

  render(): string {
    const g = this.gauges();
    return [
      ...this.requests.render('scoring_requests_total', 'HTTP requests handled, by route and status.'),
      ...this.duration.render('scoring_request_duration_seconds', 'Time from request received to response sent.'),
      ...this.queueWait.render('scoring_queue_wait_seconds', 'Time a request waited for a free worker slot.'),
      ...this.rejected.render('scoring_rejected_total', 'Requests refused by a limit (overload 503, timeout 504, too large 413).'),
      '# HELP scoring_inflight_requests Requests currently being handled by a worker.',
      '# TYPE scoring_inflight_requests gauge',
      `scoring_inflight_requests ${this.inflight}`,
      '# HELP scoring_queued_requests Requests waiting for their run() to start (in the queue, or queued at a pipelined worker).',
      '# TYPE scoring_queued_requests gauge',
      `scoring_queued_requests ${g.queued}`,
      '# HELP scoring_workers_ready Worker processes that finished init() and serve requests.',
      '# TYPE scoring_workers_ready gauge',
      `scoring_workers_ready ${g.workersReady}`,
      '# HELP scoring_workers Worker processes configured.',
      '# TYPE scoring_workers gauge',
      `scoring_workers ${g.workersTotal}`,
      ...this.workerRestarts.render('scoring_worker_restarts_total', 'Worker processes restarted after a crash or a scoring timeout.'),
      ...this.batchSize.render('scoring_batch_size', 'ONNX dynamic batching: /score requests served by one model run.'),
      ...this.batchFallbacks.render('scoring_batch_fallbacks_total', 'ONNX dynamic batching: batched runs that failed and were redone one request at a time.'),
      '',
    ].join('\n');
  }
}
