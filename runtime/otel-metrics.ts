/**
 * OpenTelemetry metrics of the scoring runtime (`enable_app_insights: true`): the same families as `GET /metrics`
 * (metrics.ts), under the same names — counters as observable counters, gauges as observable gauges, histograms as
 * histograms with the same buckets (each observation is recorded as it happens). Labels as on `/metrics` plus the
 * resource (service, slot, model version). Exported every `intervalMs` (default 30 s) and on stop.
 *
 * Exporter: as for traces (telemetry.ts) — `APPLICATIONINSIGHTS_CONNECTION_STRING` → Application Insights
 * (AzureMonitorMetricExporter; `MDF_APPINSIGHTS_AAD=true`: the replica's identity), else
 * `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` → OTLP over HTTP, else none.
 */
import type { Attributes } from '@opentelemetry/api';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { BUCKETS, BATCH_BUCKETS, type Counter, type RuntimeMetrics } from './metrics';
import { appInsightsCredential, buildExporter, type SelectedExporter } from './telemetry';

export interface OtelMetrics {
  readonly exporterName: string;
  shutdown(): Promise<void>;
}

/** The metric exporter the environment selects (see the file comment). */
export function metricExporterFromEnv(env: NodeJS.ProcessEnv): SelectedExporter<PushMetricExporter> {
  const cs = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
  if (cs) {
    return buildExporter<PushMetricExporter>('application-insights', () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { AzureMonitorMetricExporter } = require('@azure/monitor-opentelemetry-exporter') as typeof import('@azure/monitor-opentelemetry-exporter');
      const credential = appInsightsCredential(env);
      return new AzureMonitorMetricExporter({ connectionString: cs, disableOfflineStorage: true, ...(credential ? { credential } : {}) });
    });
  }
  const otlp = (env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT)?.trim();
  if (otlp) {
    return buildExporter<PushMetricExporter>('otlp', () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-http') as typeof import('@opentelemetry/exporter-metrics-otlp-http');
      return new OTLPMetricExporter();
    });
  }
  return { name: 'none' };
}

/** Starts exporting `metrics`; undefined when no exporter applies. */
export function startOtelMetrics(
  metrics: RuntimeMetrics,
  o: { labels: { service: string; slot: string; model: string; modelVersion: string }; exporter?: PushMetricExporter; intervalMs?: number; env?: NodeJS.ProcessEnv },
): OtelMetrics | undefined {
  const selected = o.exporter ? { exporter: o.exporter, name: 'custom' } : metricExporterFromEnv(o.env ?? process.env);
  if (!selected.exporter) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics') as typeof import('@opentelemetry/sdk-metrics');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': o.labels.service, 'service.instance.id': `${o.labels.slot}-${process.pid}`, 'service.version': o.labels.modelVersion }),
    readers: [new PeriodicExportingMetricReader({ exporter: selected.exporter, exportIntervalMillis: o.intervalMs ?? 30_000 })],
  });
  const meter = provider.getMeter('model-deploy-flow-runtime');
  const fixed: Attributes = { 'mdf.service': o.labels.service, 'mdf.slot': o.labels.slot, 'mdf.model.name': o.labels.model, 'mdf.model.version': o.labels.modelVersion };

  const counters: Array<[string, string, Counter]> = [
    ['scoring_requests_total', 'HTTP requests handled, by route and status.', metrics.requests],
    ['scoring_rejected_total', 'Requests refused by a limit (overload 503, timeout 504, too large 413).', metrics.rejected],
    ['scoring_worker_restarts_total', 'Worker processes restarted after a crash or a scoring timeout.', metrics.workerRestarts],
    ['scoring_batch_fallbacks_total', 'ONNX dynamic batching: batched runs that failed and were redone one request at a time.', metrics.batchFallbacks],
  ];
  for (const [name, description, c] of counters) {
    meter.createObservableCounter(name, { description }).addCallback((r) => {
      for (const s of c.series.values()) r.observe(s.value, { ...fixed, ...s.labels });
    });
  }
  const gauges: Array<[string, string, () => number]> = [
    ['scoring_inflight_requests', 'Requests currently being handled by a worker.', () => metrics.inflight],
    ['scoring_queued_requests', 'Requests waiting for their run() to start (in the queue, or queued at a pipelined worker).', () => metrics.gauges().queued],
    ['scoring_workers_ready', 'Worker processes that finished init() and serve requests.', () => metrics.gauges().workersReady],
    ['scoring_workers', 'Worker processes configured.', () => metrics.gauges().workersTotal],
  ];
  for (const [name, description, read] of gauges) meter.createObservableGauge(name, { description }).addCallback((r) => r.observe(read(), fixed));

  const histograms = [
    { name: 'scoring_request_duration_seconds', description: 'Time from request received to response sent.', h: metrics.duration, buckets: BUCKETS, unit: 's' },
    { name: 'scoring_queue_wait_seconds', description: 'Time a request waited for a free worker slot.', h: metrics.queueWait, buckets: BUCKETS, unit: 's' },
    { name: 'scoring_batch_size', description: 'ONNX dynamic batching: /score requests served by one model run.', h: metrics.batchSize, buckets: BATCH_BUCKETS, unit: '1' },
  ];
  for (const { name, description, h, buckets, unit } of histograms) {
    const inst = meter.createHistogram(name, { description, unit, advice: { explicitBucketBoundaries: [...buckets] } });
    h.tap = (labels, value) => inst.record(value, { ...fixed, ...labels });
  }
  return {
    exporterName: selected.name,
    async shutdown() {
      for (const { h } of histograms) h.tap = undefined;
      await provider.forceFlush().catch(() => undefined);
      await provider.shutdown().catch(() => undefined);
    },
  };
}
