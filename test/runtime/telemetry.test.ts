/**
 * OpenTelemetry in the scoring runtime (`enable_app_insights`, runtime/telemetry.ts): one SERVER span per request
 * with route, method, status, model name/version, service, slot and request id, a caller's `traceparent` as its
 * parent, and never a body, a header, a key or a token in any attribute — checked with the in-memory exporter and,
 * at the wire, with Application Insights' exporter sending to a local ingestion endpoint.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { SpanKind } from '@opentelemetry/api';
import { inheritedEnv } from '../../runtime/child-env';
import { waitRuntimeReady } from '../../runtime/ready';
import { exporterFromEnv } from '../../runtime/telemetry';
import { post, ROOT, trivialScriptFixture, withoutStatsbeat, waitFor, type ScriptFixture } from './helpers';

const KEYS = { primaryKey: 'PRIMARY-SECRET-KEY-abc123', secondaryKey: 'SECONDARY-SECRET-KEY-def456' };
const SECRET_BODY = 'BODY-SECRET-VALUE-789';
const TOKEN_HEADER = 'TOKEN-SECRET-xyz';
let fx: ScriptFixture;
let dir: string;
let modelDir: string;

withoutStatsbeat();
beforeAll(() => {
  fx = trivialScriptFixture('otel', 'diabetes', '4');
  ({ dir, modelDir } = fx);
});

afterAll(async () => fx?.close());

/** Every attribute value of every span, as text. */
function attributeText(spans: { attributes: Record<string, unknown>; name: string }[]): string {
  return JSON.stringify(spans.map((s) => [s.name, s.attributes]));
}

test('one span per request with route, status, model version, slot and request id; the caller\'s traceparent is its parent; no secret in any attribute', async () => {
  const exporter = new InMemorySpanExporter();
  const s = await fx.start({ serviceName: 'otel-svc', slot: 'green', keys: KEYS, enableAppInsights: true, spanExporter: exporter });
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parentId = '00f067aa0ba902b7';
  const ok = await post(`${s.url}/score`, { data: [[1], [2]], secret: SECRET_BODY }, {
    authorization: `Bearer ${KEYS.primaryKey}`, traceparent: `00-${traceId}-${parentId}-01`, 'x-ms-client-request-id': 'client-1', 'x-api-token': TOKEN_HEADER,
  });
  expect(ok.status).toBe(200);
  const denied = await post(`${s.url}/score?token=${TOKEN_HEADER}`, { data: [] }, { authorization: `Bearer ${KEYS.secondaryKey}x` });
  expect(denied.status).toBe(401);
  expect((await fetch(`${s.url}/`)).status).toBe(200);
  expect((await fetch(`${s.url}/no/such/${SECRET_BODY}`)).status).toBe(404);
  await waitFor(() => exporter.getFinishedSpans().length >= 4);

  const spans = exporter.getFinishedSpans();
  expect(spans).toHaveLength(4);
  const [scored, refused, health, unknown] = spans;
  expect(scored.name).toBe('POST /score');
  expect(scored.kind).toBe(SpanKind.SERVER);
  expect(scored.attributes).toEqual({
    'http.request.method': 'POST', 'http.route': '/score', 'http.response.status_code': 200,
    'mdf.request_id': ok.headers.get('x-ms-request-id'), 'mdf.client_request_id': 'client-1',
    'mdf.service': 'otel-svc', 'mdf.slot': 'green', 'mdf.model.name': 'diabetes', 'mdf.model.version': '4',
  });
  expect(scored.spanContext().traceId).toBe(traceId);
  expect(scored.parentSpanContext?.spanId).toBe(parentId);
  expect(scored.duration[0] * 1e9 + scored.duration[1]).toBeGreaterThan(0);
  expect(refused.attributes).toMatchObject({ 'http.route': '/score', 'http.response.status_code': 401, 'mdf.request_id': denied.headers.get('x-ms-request-id') });
  expect(refused.spanContext().traceId).not.toBe(traceId);
  expect(health).toMatchObject({ name: 'GET /', attributes: expect.objectContaining({ 'http.response.status_code': 200 }) });
  expect(unknown).toMatchObject({ name: 'GET other', attributes: expect.objectContaining({ 'http.route': 'other', 'http.response.status_code': 404 }) });

  const text = attributeText(spans);
  for (const secret of [KEYS.primaryKey, KEYS.secondaryKey, SECRET_BODY, TOKEN_HEADER, 'Bearer']) expect(text).not.toContain(secret);
}, 60_000);

test('without enable_app_insights no span is made', async () => {
  const exporter = new InMemorySpanExporter();
  const s = await fx.start({ spanExporter: exporter });
  expect((await post(`${s.url}/score`, { data: [[1]] })).status).toBe(200);
  await s.server.stop();
  expect(exporter.getFinishedSpans()).toEqual([]);
}, 60_000);

test('exporter selection: Application Insights connection string, else OTLP endpoint, else none', () => {
  const cs = 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/';
  expect(exporterFromEnv({ APPLICATIONINSIGHTS_CONNECTION_STRING: cs, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).name).toBe('application-insights');
  expect(exporterFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).name).toBe('otlp');
  expect(exporterFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }).name).toBe('otlp');
  expect(exporterFromEnv({})).toEqual({ name: 'none' });
});

test('a connection string the exporter refuses turns tracing off with the reason (no key in it), never an error to the caller', async () => {
  const bad = exporterFromEnv({ APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=sekrit-ai-key-0c3e' });
  expect(bad.exporter).toBeUndefined();
  expect(bad.name).toBe('none');
  expect(bad.problem).toMatch(/^the application-insights exporter was not started: /);
  expect(bad.problem).not.toContain('sekrit-ai-key');
  const { metricExporterFromEnv } = await import('../../runtime/otel-metrics');
  expect(metricExporterFromEnv({ APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=sekrit-ai-key-0c3e' })).toMatchObject({ name: 'none', problem: expect.any(String) });
});

test('Application Insights (the CLI with MDF_* env as on ACI/AKS): spans reach the ingestion endpoint of APPLICATIONINSIGHTS_CONNECTION_STRING, without keys or bodies; the log is JSON lines', async () => {
  // The exporter speaks HTTPS only: a local ingestion endpoint with a throw-away certificate the runtime process trusts.
  const key = path.join(dir, 'ingest.key');
  const cert = path.join(dir, 'ingest.crt');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8', timeout: 60_000 });
  expect(made.status).toBe(0);
  const received: string[] = [];
  const ingestion = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      received.push(`${req.url} ${(req.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(raw) : raw).toString('utf8')}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ itemsReceived: 1, itemsAccepted: 1, errors: [] }));
    });
  });
  await new Promise<void>((r) => ingestion.listen(0, '127.0.0.1', () => r()));
  const port = (ingestion.address() as AddressInfo).port;
  const logPath = path.join(dir, 'cli.log');
  const fd = fs.openSync(logPath, 'w');
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/runtime/cli.js'), '--entry-script', fx.scorePath, '--model-dir', modelDir, '--port', '0'], {
    stdio: ['ignore', fd, fd],
    env: {
      ...inheritedEnv(),
      MDF_ENABLE_APP_INSIGHTS: 'true', MDF_SERVICE_NAME: 'ai-svc', MDF_SLOT: 'blue', MDF_PRIMARY_KEY: KEYS.primaryKey, MDF_SECONDARY_KEY: KEYS.secondaryKey,
      APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=11111111-2222-3333-4444-555555555555;IngestionEndpoint=https://127.0.0.1:${port}/`,
      APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true', APPLICATIONINSIGHTS_SDKSTATS_DISABLED: 'true',
      NODE_EXTRA_CA_CERTS: cert,
    },
  });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const ready = await waitRuntimeReady({ logPath, alive: () => child.exitCode === null, timeoutMs: 60_000 });
    if (!ready.ok) throw new Error(ready.message);
    const res = await post(`http://127.0.0.1:${ready.port}/score`, { data: [[1]], secret: SECRET_BODY }, { authorization: `Bearer ${KEYS.primaryKey}` });
    expect(res.status).toBe(200);
    child.kill('SIGTERM'); // a clean stop flushes the spans
    expect(await exited).toBe(0);
    const all = received.join('\n');
    expect(all).toContain('/v2.1/track');
    expect(all).toContain('POST /score');
    expect(all).toContain(res.headers.get('x-ms-request-id')!);
    for (const secret of [KEYS.primaryKey, KEYS.secondaryKey, SECRET_BODY]) expect(all).not.toContain(secret);
    // Structured log: every line JSON with event first, a level and a time; no key in it.
    const lines = fs.readFileSync(logPath, 'utf8').split('\n').filter(Boolean);
    const records = lines.map((l) => JSON.parse(l));
    expect(lines.every((l) => l.startsWith('{"event":'))).toBe(true);
    expect(records.every((r) => typeof r.level === 'string' && !Number.isNaN(Date.parse(r.time)))).toBe(true);
    expect(records.find((r) => r.event === 'access')).toMatchObject({ level: 'info', requestId: res.headers.get('x-ms-request-id'), status: 200 });
    for (const secret of [KEYS.primaryKey, KEYS.secondaryKey, SECRET_BODY]) expect(lines.join('\n')).not.toContain(secret);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await new Promise<void>((r) => ingestion.close(() => r()));
  }
}, 90_000);

test('OTLP (no Application Insights): spans reach OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces (OTLP over HTTP), without bodies', async () => {
  const received: Array<{ url: string; body: string }> = [];
  const collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      received.push({ url: req.url ?? '', body: (req.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(raw) : raw).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', () => r()));
  const port = (collector.address() as AddressInfo).port;
  const logPath = path.join(dir, 'otlp.log');
  const fd = fs.openSync(logPath, 'w');
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/runtime/cli.js'), '--entry-script', fx.scorePath, '--model-dir', modelDir, '--port', '0', '--enable-app-insights', '--slot', 'green'], {
    stdio: ['ignore', fd, fd],
    env: { ...inheritedEnv(), OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` },
  });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const ready = await waitRuntimeReady({ logPath, alive: () => child.exitCode === null, timeoutMs: 60_000 });
    if (!ready.ok) throw new Error(ready.message);
    const res = await post(`http://127.0.0.1:${ready.port}/score`, { data: [[1]], secret: SECRET_BODY });
    expect(res.status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const traces = received.filter((r) => r.url === '/v1/traces');
    expect(traces.length).toBeGreaterThan(0);
    const all = traces.map((t) => t.body).join('\n');
    expect(all).toContain('POST /score');
    expect(all).toContain(res.headers.get('x-ms-request-id')!);
    expect(all).toContain('green');
    expect(all).not.toContain(SECRET_BODY);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await new Promise<void>((r) => collector.close(() => r()));
  }
}, 90_000);
