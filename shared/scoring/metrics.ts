/**
 * A service's live figures for `GET /api/services/{name}/metrics` (and the web console's req/s and latency
 * chart): the scoring runtime's Prometheus `/metrics` of every replica of the serving slot (through the deploy
 * target), or through the service's public endpoint with its key, summed over series and replicas and returned as
 * cumulative counters. Rates are the reader's
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
 * GET `url` (a runtime's `/metrics`) with `key` as a bearer token: its text, bounded in time and size.
 * Errors: 502 `MetricsUnavailable` (no answer in time, or not 200), 502 `MetricsTooLarge`.
 */
export async function fetchMetricsText(url: URL | string, what: string, key?: string, timeoutMs = METRICS_TIMEOUT_MS): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {}, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  } catch (e) {
    throw new AppError('MetricsUnavailable', `${what} did not answer GET /metrics: ${(e as Error).name === 'TimeoutError' ? 'timed out' : (e as Error).message}.`, 502);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new AppError('MetricsUnavailable', `${what} answered GET /metrics with ${res.status}.`, 502);
  }
  return readBounded(res, MAX_METRICS_BYTES);
}

/** What a target can say about its replicas (`DeployTarget.replicaMetrics`). */
export interface ReplicaMetricsSource {
  replicaMetrics?(serviceName: string): Promise<{ slot: string; texts: string[] }>;
}

/**
 * The service's figures: summed over every replica of the serving slot when the target can reach them
 * (`replicaMetrics`), else read through the public endpoint (`scoringUri`, the record's `…/score`) with its key —
 * one replica per read when there are several.
 * Errors: 409 `ServiceNotServing` (no public endpoint / no replica yet), 502 `MetricsUnavailable`, `MetricsTooLarge`.
 */
export async function readServiceMetrics(opts: { service: string; scoringUri?: string; slot?: string; keys?: ServiceKeys; target?: ReplicaMetricsSource; timeoutMs?: number; now?: () => Date }): Promise<ServiceMetrics> {
  const now = opts.now ?? (() => new Date());
  const notServing = () => new AppError('ServiceNotServing', `Service ${opts.service} has no scoring endpoint yet; its metrics are there once a deployment succeeded.`, 409);
  if (!opts.scoringUri) throw notServing();
  if (opts.target?.replicaMetrics) {
    const r = await opts.target.replicaMetrics(opts.service);
    if (!r.texts.length) throw notServing();
    return summarizeMetrics(opts.service, r.texts.flatMap((t) => parsePrometheusText(t)), now(), r.slot);
  }
  const url = new URL(opts.scoringUri);
  url.pathname = url.pathname.replace(/\/score\/?$/, '') + '/metrics';
  url.search = '';
  const text = await fetchMetricsText(url, `Service ${opts.service}`, opts.keys?.primaryKey, opts.timeoutMs);
  return summarizeMetrics(opts.service, parsePrometheusText(text), now(), opts.slot);
}
