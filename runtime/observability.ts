/**
 * What `collect_model_data` and `enable_app_insights` add to a replica's front (server.ts): the model data
 * collector (collector.ts) and the request spans (telemetry.ts), built from the options, with the labels both use
 * (service, slot, model name and version).
 */
import * as path from 'node:path';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { RuntimeMetrics } from './metrics';
import { startOtelMetrics, type OtelMetrics } from './otel-metrics';
import { blobSink, ModelDataCollector, type CollectorSink } from './collector';
import type { LogRecord } from './log';
import type { ServerOptions } from './options';
import type { WorkerMessageHeader } from './protocol';
import { createTelemetry, type RuntimeTelemetry } from './telemetry';

export interface ObservabilityOverrides {
  /** Where collected batches go instead of blob storage (tests, benchmarks). */
  collectorSink?: CollectorSink;
  /** Span exporter instead of the environment's (tests: InMemorySpanExporter); spans are exported as they end. */
  spanExporter?: SpanExporter;
  /** Metric exporter instead of the environment's (tests: InMemoryMetricExporter), and its export interval. */
  metricExporter?: PushMetricExporter;
  metricIntervalMs?: number;
}

export interface Observability {
  collector?: ModelDataCollector;
  telemetry?: RuntimeTelemetry;
  /** A record collected by the entry script (worker protocol). */
  onCollect(record: Extract<WorkerMessageHeader, { t: 'collect' }>, body: Buffer): void;
  /** With `enable_app_insights`: exports the `/metrics` families as OpenTelemetry metrics (otel-metrics.ts). */
  attachMetrics(metrics: RuntimeMetrics): void;
  close(): Promise<void>;
}

/** Model name and version: the options, else `.../models/<name>/<version>` of the model folder (the image layout). */
export function modelLabels(o: Pick<ServerOptions, 'modelName' | 'modelVersion' | 'modelDir'>): { model: string; modelVersion: string } {
  const parts = o.modelDir ? path.resolve(o.modelDir).split(path.sep) : [];
  const n = parts.length;
  const fromDir = n >= 3 && parts[n - 3] === 'models' && /^\d+$/.test(parts[n - 1]) ? { model: parts[n - 2], modelVersion: parts[n - 1] } : undefined;
  return {
    model: o.modelName ?? fromDir?.model ?? (o.modelDir ? path.basename(path.resolve(o.modelDir)) : 'model'),
    modelVersion: o.modelVersion ?? fromDir?.modelVersion ?? '0',
  };
}

export function setupObservability(options: ServerOptions, log: (r: LogRecord) => void, overrides: ObservabilityOverrides = {}): Observability {
  const labels = { service: options.serviceName, slot: options.slot, ...modelLabels(options) };
  let collector: ModelDataCollector | undefined;
  if (options.collectModelData) {
    const sink = overrides.collectorSink ?? blobSink({
      containerUrl: options.modelDataUrl,
      connectionString: options.modelDataConnectionString,
      managedIdentityClientId: process.env.AZURE_CLIENT_ID,
    });
    collector = new ModelDataCollector({
      sink,
      ...labels,
      maxRecords: options.modelDataMaxRecords,
      batchRecords: options.modelDataBatchRecords,
      flushMs: options.modelDataFlushMs,
      closeTimeoutMs: options.modelDataCloseTimeoutMs,
      onLog: (r) => log({ time: new Date().toISOString(), ...r }),
    });
    log({ event: 'model_data_collection', time: new Date().toISOString(), message: `collecting model data to ${sink.describe}`, ...labels });
  }
  const telemetry = options.enableAppInsights
    ? createTelemetry({ ...labels, exporter: overrides.spanExporter, simple: !!overrides.spanExporter, onLog: (r) => log({ time: new Date().toISOString(), ...r }) })
    : undefined;
  let otelMetrics: OtelMetrics | undefined;
  return {
    collector,
    telemetry,
    attachMetrics(metrics) {
      if (!options.enableAppInsights || otelMetrics) return;
      otelMetrics = startOtelMetrics(metrics, { labels, exporter: overrides.metricExporter, intervalMs: overrides.metricIntervalMs });
      if (otelMetrics) log({ event: 'telemetry', time: new Date().toISOString(), message: `metrics exported to ${otelMetrics.exporterName}` });
    },
    onCollect(record, body) {
      if (!collector) return;
      const str = (v: unknown, max: number) => (typeof v === 'string' && v ? v.slice(0, max) : undefined);
      collector.collectScriptRecord({
        designation: str(record.designation, 128) ?? 'default',
        correlationId: str(record.correlationId, 256) ?? '',
        requestId: str(record.requestId, 64),
        model: str(record.model, 255),
        modelVersion: str(record.modelVersion, 64),
        featureNames: Array.isArray(record.featureNames) ? record.featureNames : undefined,
        data: body,
      });
    },
    async close() {
      await Promise.all([collector?.close(), telemetry?.shutdown(), otelMetrics?.shutdown()]);
    },
  };
}
