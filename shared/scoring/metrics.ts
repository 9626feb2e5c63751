/**
 * A service's live figures for `GET /api/services/{name}/metrics` (and the web console's req/s and latency
 * chart): the scoring runtime's Prometheus `/metrics`, read through the service's public endpoint with its key
 * (so the same on every target), summed over series and returned as cumulative counters. Rates are the reader's
 * business: two samples' difference over their `sampledTime`s.
 */
import { AppError } from '../errors';
import type { ServiceKeys } from '../seams';

/** A `/metrics` answer larger than this is refused before it is parsed (the runtime's is a few KiB). */
export const MAX_METRICS_BYTES = 1024 * 1024;
/** Lines read at most. */
export const MAX_METRICS_LINES = 20_000;
/** Time to wait for the runtime's answer. */
export const METRICS_TIMEOUT_MS = 5_000;

export interface ServiceMetrics {
  service: string;
  /** The slot serving the public endpoint when read (absent when the target does not say). */
  slot?: string;
  sampledTime: string;
  /** `POST /score` requests answered since the replica started, and how many of them were 5xx / 4xx. */
  score: { requests: number; serverErrors: number; clientErrors: number; durationSecondsSum: number; durationCount: number };
  /** Every route's requests (health probes and metrics reads included). */
  requestsTotal: number;
  inflight: number;
  queued: number;
  workersReady: number;
  workers: number;
  workerRestarts: number;
  rejected: number;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition → samples (bounded; comment and malformed lines are skipped). */
export function parsePrometheusText(text: string): Sample[] {
  if (Buffer.byteLength(text) > MAX_METRICS_BYTES) throw new AppError('MetricsTooLarge', `The runtime's /metrics answer is over ${MAX_METRICS_BYTES} bytes.`, 502);
  const out: Sample[] = [];
  let lines = 0;
  for (const raw of text.split('\n')) {
    if (++lines > MAX_METRICS_LINES) throw new AppError('MetricsTooLarge', `The runtime's /metrics answer has over ${MAX_METRICS_LINES} lines.`, 502);
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const value = Number(m[4]);
    if (Number.isFinite(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

/** The samples the console needs, summed over their series. */
export function summarizeMetrics(service: string, samples: Sample[], sampledTime: Date, slot?: string): ServiceMetrics {
  const sum = (name: string, f: (l: Record<string, string>) => boolean = () => true) => samples.filter((s) => s.name === name && f(s.labels)).reduce((a, s) => a + s.value, 0);
  const score = (l: Record<string, string>) => l.route === 'score';
  return {
    service,
    ...(slot ? { slot } : {}),
    sampledTime: sampledTime.toISOString(),
    score: {
      requests: sum('scoring_requests_total', score),
      serverErrors: sum('scoring_requests_total', (l) => score(l) && /^5/.test(l.status ?? '')),
      clientErrors: sum('scoring_requests_total', (l) => score(l) && /^4/.test(l.status ?? '')),
      durationSecondsSum: sum('scoring_request_duration_seconds_sum', score),
      durationCount: sum('scoring_request_duration_seconds_count', score),
    },
    requestsTotal: sum('scoring_requests_total'),
    inflight: sum('scoring_inflight_requests'),
    queued: sum('scoring_queued_requests'),
    workersReady: sum('scoring_workers_ready'),
    workers: sum('scoring_workers'),
    workerRestarts: sum('scoring_worker_restarts_total'),
    rejected: sum('scoring_rejected_total'),
  };
}

/** Reads at most `limit` bytes of a response body; more is `MetricsTooLarge` (the rest is not read). */
async function readBounded(res: Response, limit: number): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw new AppError('MetricsTooLarge', `The runtime's /metrics answer is over ${limit} bytes.`, 502);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * GET `<service base>/metrics` with the service's key. `scoringUri` is the public `…/score` URI of the record.
 * Errors: 409 `ServiceNotServing` (no public endpoint yet), 502 `MetricsUnavailable` (no answer, or not 200).
 */
export async function readServiceMetrics(opts: { service: string; scoringUri?: string; slot?: string; keys?: ServiceKeys; timeoutMs?: number; now?: () => Date }): Promise<ServiceMetrics> {
  if (!opts.scoringUri) throw new AppError('ServiceNotServing', `Service ${opts.service} has no scoring endpoint yet; its metrics are there once a deployment succeeded.`, 409);
  const url = new URL(opts.scoringUri);
  url.pathname = url.pathname.replace(/\/score\/?$/, '') + '/metrics';
  url.search = '';
  let res: Response;
  try {
    res = await fetch(url, { headers: opts.keys ? { authorization: `Bearer ${opts.keys.primaryKey}` } : {}, signal: AbortSignal.timeout(opts.timeoutMs ?? METRICS_TIMEOUT_MS), redirect: 'error' });
  } catch (e) {
    throw new AppError('MetricsUnavailable', `Service ${opts.service} did not answer GET /metrics: ${(e as Error).name === 'TimeoutError' ? 'timed out' : (e as Error).message}.`, 502);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new AppError('MetricsUnavailable', `Service ${opts.service} answered GET /metrics with ${res.status}.`, 502);
  }
  const text = await readBounded(res, MAX_METRICS_BYTES);
  return summarizeMetrics(opts.service, parsePrometheusText(text), (opts.now ?? (() => new Date()))(), opts.slot);
}
