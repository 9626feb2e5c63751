/**
 * OpenTelemetry metrics of the scoring runtime (`enable_app_insights`, runtime/otel-metrics.ts): the families of
 * `GET /metrics` under the same names and labels, with the replica's service, slot and model version — checked with
 * the in-memory metric exporter; no key in any attribute. Without enable_app_insights nothing is exported.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AggregationTemporality, InMemoryMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { metricExporterFromEnv } from '../../runtime/otel-metrics';
import { post, trivialScriptFixture, withoutStatsbeat, type ScriptFixture } from './helpers';

const KEYS = { primaryKey: 'PRIMARY-SECRET-KEY-metrics1', secondaryKey: 'SECONDARY-SECRET-KEY-metrics2' };
let fx: ScriptFixture;
let dir: string;
let modelDir: string;

withoutStatsbeat();
beforeAll(() => {
  fx = trivialScriptFixture('otel-metrics', 'diabetes', '7');
  ({ dir, modelDir } = fx);
});

afterAll(async () => fx?.close());

/** The last exported data point set of each metric, by name. */
function lastByName(batches: ResourceMetrics[]): Map<string, { dataPoints: Array<{ attributes: Record<string, unknown>; value: unknown }> }> {
  const out = new Map<string, { dataPoints: Array<{ attributes: Record<string, unknown>; value: unknown }> }>();
  for (const rm of batches) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) out.set(m.descriptor.name, { dataPoints: m.dataPoints as never });
  return out;
}

test('the /metrics families as OpenTelemetry metrics: requests by route and status, durations as a histogram, worker gauges; labelled with service, slot, model version; no key', async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const s = await fx.start({ serviceName: 'metrics-svc', slot: 'blue', keys: KEYS, enableAppInsights: true, metricExporter: exporter, metricIntervalMs: 60_000 });
  for (let i = 0; i < 3; i++) expect((await post(`${s.url}/score`, { data: [[i]] }, { authorization: `Bearer ${KEYS.primaryKey}` })).status).toBe(200);
  expect((await post(`${s.url}/score`, { data: [[1]] }, { authorization: `Bearer ${KEYS.secondaryKey}x` })).status).toBe(401);
  await s.server.stop(); // a clean stop exports what was not yet exported
  const metrics = lastByName(exporter.getMetrics());
  for (const name of ['scoring_requests_total', 'scoring_request_duration_seconds', 'scoring_workers', 'scoring_workers_ready', 'scoring_inflight_requests', 'scoring_queued_requests']) {
    expect(metrics.has(name)).toBe(true);
  }
  const requests = metrics.get('scoring_requests_total')!.dataPoints;
  const ok = requests.find((p) => p.attributes.route === 'score' && p.attributes.status === '200');
  expect(ok?.value).toBe(3);
  expect(ok?.attributes).toMatchObject({ 'mdf.service': 'metrics-svc', 'mdf.slot': 'blue', 'mdf.model.name': 'diabetes', 'mdf.model.version': '7' });
  expect(requests.find((p) => p.attributes.status === '401')?.value).toBe(1);
  const duration = metrics.get('scoring_request_duration_seconds')!.dataPoints.find((p) => p.attributes.route === 'score');
  expect((duration?.value as { count: number }).count).toBe(4);
  expect((metrics.get('scoring_workers')!.dataPoints[0].value as number)).toBeGreaterThanOrEqual(1);
  const text = JSON.stringify(exporter.getMetrics());
  expect(text).not.toContain(KEYS.primaryKey);
  expect(text).not.toContain('SECONDARY-SECRET-KEY');
}, 60_000);

test('without enable_app_insights no metric is exported', async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const s = await fx.start({ metricExporter: exporter });
  expect((await post(`${s.url}/score`, { data: [[1]] })).status).toBe(200);
  await s.server.stop();
  expect(exporter.getMetrics()).toEqual([]);
}, 60_000);

test('metric exporter selection: Application Insights connection string, else OTLP endpoint, else none', () => {
  const cs = 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:1/';
  expect(metricExporterFromEnv({ APPLICATIONINSIGHTS_CONNECTION_STRING: cs, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).name).toBe('application-insights');
  expect(metricExporterFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).name).toBe('otlp');
  expect(metricExporterFromEnv({}).name).toBe('none');
});
