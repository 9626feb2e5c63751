/**
 * One trace per run (shared/telemetry.ts), through the local host: the app's spans go to an in-memory exporter, the
 * replicas' to a local OTLP receiver (`OTEL_EXPORTER_OTLP_ENDPOINT`, which the host passes on to replicas with
 * `enable_app_insights`; in Azure it would be Application Insights). A deployment's trigger
 * records the root span, each activity execution a step span (child of the root) with its outcome, and the smoke
 * test's scoring call carries the step's `traceparent`, so the replica's request span (runtime/telemetry.ts, same
 * receiver) is in the same trace. A batch run likewise — every activity of a run, the pool teardown, a lone model's
 * folder check and claim and the batch start after a training deployment included. The caller's W3C `traceparent`
 * (HTTP header; Service Bus message property `Diagnostic-Id`, through the local host's stand-in for message properties)
 * is a span link of the run's root span; a malformed one is ignored. No key, SAS or account key in any span.
 */
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import * as zlib from 'zlib';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { serviceBusEnvelope } from '../../local/triggers';
import { runIdFor } from '../../shared/deploy/run-status';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { waitRun } from '../helpers/runs';
import { killPools, prepareFixture, uploadIris, waitUntil } from './batch-helpers';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: Record<string, unknown>;
  status?: { code?: number };
  links?: Array<{ traceId: string; spanId: string }>;
}

let env: TestEnvironment;
let storage: StorageClients;
let workDir: string;
let receiver: http.Server;
const bodies: string[] = [];
const memory = new InMemorySpanExporter();
/** The app's telemetry module as the host loaded it (from dist/, like the rest of the app). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const appTelemetry = require('../../dist/shared/telemetry') as typeof import('../../shared/telemetry');
const saved: Record<string, string | undefined> = {};

/** The replicas' spans (OTLP/HTTP JSON: resourceSpans → scopeSpans → spans). */
function replicaSpans(): OtlpSpan[] {
  const out: OtlpSpan[] = [];
  for (const b of bodies) {
    const doc = JSON.parse(b) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: any[] }> }> };
    for (const rs of doc.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          const attributes: Record<string, unknown> = {};
          for (const a of s.attributes ?? []) attributes[a.key] = Object.values(a.value ?? {})[0];
          out.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, attributes, status: s.status });
        }
      }
    }
  }
  return out;
}

/** The app's spans (the in-memory exporter) and the replicas', in one shape. */
function spans(): OtlpSpan[] {
  const app = memory.getFinishedSpans().map((s) => ({
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId,
    name: s.name,
    attributes: { ...s.attributes },
    status: { code: s.status.code },
    links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId })),
  }));
  return [...app, ...replicaSpans()];
}

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      if (req.url === '/v1/traces') bodies.push((req.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(raw) : raw).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  // The host runs in this process and reads its telemetry settings from the environment (as the Function App does);
  // replicas with enable_app_insights inherit them.
  for (const k of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'APPLICATIONINSIGHTS_CONNECTION_STRING']) saved[k] = process.env[k];
  delete process.env.APPLICATIONINSIGHTS_CONNECTION_STRING;
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  await appTelemetry.useAppSpanExporter(memory);
  env = await startTestEnvironment({ tempWorkDir: 'mdf-batch-e2e-', settings: { LONE_ONNX_SETTLE_SECONDS: '1' }, pollIntervalMs: 100 });
  workDir = env.workDir;
  storage = storageFromConnectionString(env.connectionString);
}, 120_000);

afterAll(async () => {
  if (workDir) killPools(workDir);
  await env?.stop();
  await appTelemetry.useAppSpanExporter(undefined);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await new Promise<void>((r) => receiver?.close(() => r()));
});

/** No key, SAS signature or storage account key anywhere in what was exported (names, attributes, statuses). */
function expectNoSecrets(secrets: string[]): void {
  const all = JSON.stringify(spans()) + bodies.join('\n');
  for (const s of [...secrets, AZURITE_KEY]) expect(all).not.toContain(s);
  expect(all).not.toMatch(/sig=|AccountKey=|SharedAccessSignature/i);
}

test('a deployment is one trace: root span from the trigger, a step span per activity with its outcome, the smoke test request span of the replica inside it', async () => {
  const NAME = 'traced';
  const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  manifest.service = { name: NAME };
  manifest.image.name = NAME;
  manifest.target = { kind: 'local', num_replicas: 1, enable_app_insights: true, auth_enabled: true };
  const c = await storage.ensureContainer('staging');
  for (const f of ['model.json', 'package.json', 'score.js']) await c.getBlockBlobClient(`${NAME}/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  // The caller's trace context (upper case: normalised, as W3C parsers do).
  const caller = { traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8) };
  const started = await env.request('POST', `/api/deployments?folder=staging/${NAME}`, manifest, { 'content-type': 'application/json', traceparent: `00-${caller.traceId.toUpperCase()}-${caller.spanId}-01` });
  expect(started.status).toBe(202);
  const runId: string = started.body.runId;
  const run = await waitRun(env, runId, 180_000);
  expect(run.state).toBe('Succeeded');

  const steps = ['registerModel', 'createImage', 'prepareDeployment', 'deploySlot', 'smokeTest', 'promoteDeployment'];
  // Spans are exported in batches (every second or so): wait, bounded, until the run's are all there.
  const found = await waitUntil(
    async () => {
      const all = spans();
      const root = all.find((s) => s.name === 'deployment run' && s.attributes['mdf.run.id'] === runId);
      if (!root) return undefined;
      const inTrace = all.filter((s) => s.traceId === root.traceId);
      const smoke = inTrace.find((s) => s.name === 'smokeTest');
      const request = smoke && inTrace.find((s) => s.name === 'POST /score' && s.parentSpanId === smoke.spanId);
      return steps.every((n) => inTrace.some((s) => s.name === n)) && request ? { root, inTrace, smoke, request } : undefined;
    },
    60_000,
    `the spans of run ${runId}`,
  );
  const { root, inTrace, request } = found;
  expect(root.parentSpanId).toBeUndefined();
  expect(root.attributes).toMatchObject({ 'mdf.run.kind': 'deployment', 'mdf.event.kind': 'http', 'mdf.service': NAME, 'mdf.model.name': 'diabetes-linear' });
  // The run has its own trace (derived from its id); the caller's span is linked, not the parent.
  expect(root.links).toEqual([caller]);
  expect(root.traceId).not.toBe(caller.traceId);
  for (const name of steps) {
    const s = inTrace.filter((x) => x.name === name);
    expect(s.length).toBeGreaterThanOrEqual(1);
    for (const x of s) {
      expect(x.parentSpanId).toBe(root.spanId);
      expect(x.attributes).toMatchObject({ 'mdf.step': name, 'mdf.run.id': runId, 'mdf.outcome': 'Succeeded' });
    }
  }
  // The replica's request span: the runtime's own attributes, in the run's trace.
  expect(request.attributes).toMatchObject({ 'mdf.service': NAME, 'http.route': '/score' });
  expect(Number(request.attributes['http.response.status_code'])).toBe(200);
  // Every span with a run id belongs to this run's trace (nothing of this run went elsewhere).
  expect(spans().filter((s) => s.attributes['mdf.run.id'] === runId).every((s) => s.traceId === root.traceId)).toBe(true);

  const keys = (await env.request('GET', `/api/services/${NAME}/keys`)).body;
  expect(typeof keys.primaryKey).toBe('string');
  expectNoSecrets([keys.primaryKey, keys.secondaryKey]);
}, 300_000);

test('a failed smoke test is a Failed step span (status ERROR); the rollback is in the same trace, under the root', async () => {
  const NAME = 'traced-bad';
  const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  manifest.service = { name: NAME };
  manifest.image.name = NAME;
  manifest.target = { kind: 'local', num_replicas: 1 };
  manifest.smoke_test.expected_output = [1, 2];
  const c = await storage.ensureContainer('staging');
  for (const f of ['model.json', 'package.json', 'score.js']) await c.getBlockBlobClient(`${NAME}/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  // A malformed traceparent (an all-zero trace id) is ignored: the run starts, its root span links nothing.
  const started = await env.request('POST', `/api/deployments?folder=staging/${NAME}`, manifest, { 'content-type': 'application/json', traceparent: `00-${'0'.repeat(32)}-${'cd'.repeat(8)}-01` });
  expect(started.status).toBe(202);
  const runId: string = started.body.runId;
  const run = await waitRun(env, runId, 180_000);
  expect(run.state).not.toBe('Succeeded');
  const { smoke, rollback, root } = await waitUntil(
    async () => {
      const all = spans().filter((s) => s.attributes['mdf.run.id'] === runId);
      const r = all.find((s) => s.name === 'deployment run');
      const sm = all.find((s) => s.name === 'smokeTest');
      const rb = all.find((s) => s.name === 'rollbackDeployment');
      return r && sm && rb ? { root: r, smoke: sm, rollback: rb } : undefined;
    },
    60_000,
    `the spans of run ${runId}`,
  );
  expect(root.links).toEqual([]);
  expect(smoke.attributes['mdf.outcome']).toBe('Failed');
  expect(smoke.status?.code).toBe(2); // ERROR
  expect([smoke.traceId, rollback.traceId]).toEqual([root.traceId, root.traceId]);
  expect(rollback.parentSpanId).toBe(root.spanId);
}, 300_000);

test('a batch run is one trace: root span, then each step (image, pool, plan, mini-batches, finalize, pool teardown) as its child; the caller traceparent is linked', async () => {
  const fx = await prepareFixture(env.connectionString);
  await uploadIris(fx.storage, 'traced/', 2, 8);
  const r = await env.request('POST', '/api/batch-runs', {
    name: 'traced',
    model: 'iris-linear',
    entry_script: 'iris.js',
    source_directory: 'code/scripts',
    inputs: { container: 'batch-data', prefix: 'traced/' },
    input_kind: 'tabular',
    mini_batch_size: '2 rows',
    process_count_per_node: 1,
    output: { container: 'batch-output', prefix: 'traced/' },
  }, { traceparent: `00-${'12'.repeat(16)}-${'34'.repeat(8)}-00` });
  expect(r.status).toBe(202);
  const id: string = r.body.id;
  await waitUntil(
    async () => {
      const v = await env.request('GET', `/api/batch-runs/${id}`);
      return v.status === 200 && ['Succeeded', 'Failed'].includes(v.body.state) ? v.body : undefined;
    },
    120_000,
    `batch run ${id}`,
  );
  const steps = ['batchResolveImage', 'batchProvisionPool', 'batchPlanPage', 'batchScoreMiniBatchGroup', 'batchFinalize', 'batchTeardownPool'];
  const { root, mine } = await waitUntil(
    async () => {
      const all = spans();
      const root = all.find((s) => s.name === 'batch run' && s.attributes['mdf.run.id'] === id);
      const mine = root ? all.filter((s) => s.traceId === root.traceId) : [];
      return root && steps.every((n) => mine.some((s) => s.name === n)) ? { root, mine } : undefined;
    },
    60_000,
    `the spans of batch run ${id}`,
  );
  expect(root.attributes).toMatchObject({ 'mdf.run.kind': 'batch', 'mdf.event.kind': 'http' });
  expect(root.links).toEqual([{ traceId: '12'.repeat(16), spanId: '34'.repeat(8) }]);
  for (const s of mine.filter((x) => x !== root)) {
    expect(s.parentSpanId).toBe(root.spanId);
    expect(s.attributes['mdf.run.id']).toBe(id);
  }
  // 2 files of 4 rows in 2-row mini-batches, scored several per call: one span per scoring call, each Succeeded.
  const scored = mine.filter((s) => s.name === 'batchScoreMiniBatchGroup');
  expect(scored.length).toBeGreaterThanOrEqual(1);
  expect(scored.every((s) => s.attributes['mdf.outcome'] === 'Succeeded')).toBe(true);
  expectNoSecrets([]);
}, 300_000);

test('a lone .onnx: the folder check, the claim and every step of the deployment it starts are one trace, under a root span recorded at the claim (a blob trigger: no link)', async () => {
  const incoming = await storage.ensureContainer('incoming');
  const written = await incoming.getBlockBlobClient('traced-onnx/model.onnx').uploadData(fs.readFileSync(path.join(__dirname, '../../examples/models/diabetes-onnx/model.onnx')));
  const runId = runIdFor('blob', `incoming/traced-onnx/model.onnx@${String(written.etag).replace(/"/g, '')}`);
  const steps = ['checkLoneOnnx', 'claimLoneOnnx', 'registerModel', 'createImage', 'prepareDeployment', 'deploySlot', 'smokeTest', 'promoteDeployment'];
  const { root, mine } = await waitUntil(
    async () => {
      const all = spans();
      const root = all.find((s) => s.name === 'deployment run' && s.attributes['mdf.run.id'] === runId);
      const mine = root ? all.filter((s) => s.traceId === root.traceId) : [];
      return root && steps.every((n) => mine.some((s) => s.name === n)) ? { root, mine } : undefined;
    },
    240_000,
    `the spans of lone-model run ${runId}`,
  );
  expect(root.attributes).toMatchObject({ 'mdf.run.kind': 'deployment', 'mdf.event.kind': 'blob', 'mdf.service': 'traced-onnx' });
  expect(root.links).toEqual([]);
  for (const s of mine.filter((x) => x !== root && x.attributes['mdf.step'])) {
    expect(s.parentSpanId).toBe(root.spanId);
    expect(s.attributes['mdf.run.id']).toBe(runId);
  }
  expect(mine.find((s) => s.name === 'checkLoneOnnx')!.attributes['mdf.outcome']).toBe('Succeeded');
  expect((await waitRun(env, runId, 120_000)).state).toBe('Succeeded');
}, 300_000);

test('Service Bus: the message\'s Diagnostic-Id is linked from the deployment run\'s root; the batch start is a step of that run, and the batch run it starts links to that step', async () => {
  const EX = EXAMPLE;
  await (await storage.ensureContainer('outputs')).getBlockBlobClient('traced-run/model.json').uploadData(fs.readFileSync(path.join(EX, 'model.json')));
  const staging = await storage.ensureContainer('staging');
  await staging.getBlockBlobClient('traced-sb/score.js').uploadData(fs.readFileSync(path.join(EX, 'score.js')));
  await staging.getBlockBlobClient('traced-sb-batch/batch_score.js').uploadData(Buffer.from("'use strict';\nmodule.exports = { init() {}, run(rows) { return rows.map((r) => JSON.stringify({ id: r.id })); } };\n"));
  await (await storage.ensureContainer('traced-sb-in')).getBlockBlobClient('rows/part-0.jsonl').uploadData(Buffer.from(Array.from({ length: 4 }, (_, i) => JSON.stringify({ id: i })).join('\n') + '\n'));
  const msg = {
    model_name: 'traced-sb',
    training_run_id: 'traced-run',
    artifacts: ['outputs/traced-run/model.json'],
    deploy: { image: { runtime: 'node', entry_script: { path: 'score.js', source: 'staging/traced-sb/score.js' } }, target: 'local', service: { name: 'traced-sb' } },
    batch: {
      entry_script: 'batch_score.js', source_directory: 'staging/traced-sb-batch', runtime: 'node', inputs: { container: 'traced-sb-in', prefix: 'rows/' },
      input_kind: 'tabular', mini_batch_size: '2 rows', node_count: 1, process_count_per_node: 1, output: { container: 'traced-sb-out', prefix: 'scores/' },
    },
  };
  const sender = { traceId: '5e'.repeat(16), spanId: '6f'.repeat(8) };
  // Key case as the Azure SDK sends it; the Functions library camel-cases metadata keys.
  await (await storage.ensureQueue('training-completed')).sendMessage(serviceBusEnvelope(JSON.stringify(msg), { 'Diagnostic-Id': `00-${sender.traceId}-${sender.spanId}-01`, other: 'x' }));
  const runId = runIdFor('servicebus', 'training:traced-sb:traced-run');
  const run = await waitRun(env, runId, 180_000);
  expect(run.state).toBe('Succeeded');
  const batchId: string = run.result.batch.runId;
  const found = await waitUntil(
    async () => {
      const all = spans();
      const root = all.find((s) => s.name === 'deployment run' && s.attributes['mdf.run.id'] === runId);
      const start = root && all.find((s) => s.name === 'startBatchAfterDeploy' && s.traceId === root.traceId);
      const batchRoot = all.find((s) => s.name === 'batch run' && s.attributes['mdf.run.id'] === batchId);
      return root && start && batchRoot ? { root, start, batchRoot } : undefined;
    },
    120_000,
    `the spans of runs ${runId} and ${batchId}`,
  );
  expect(found.root.attributes).toMatchObject({ 'mdf.event.kind': 'servicebus' });
  expect(found.root.links).toEqual([sender]);
  expect(found.start.parentSpanId).toBe(found.root.spanId);
  expect(found.start.attributes).toMatchObject({ 'mdf.run.id': runId, 'mdf.outcome': 'Succeeded' });
  // The batch run is its own trace, linked to the step that started it.
  expect(found.batchRoot.traceId).not.toBe(found.root.traceId);
  expect(found.batchRoot.links).toEqual([{ traceId: found.start.traceId, spanId: found.start.spanId }]);
  expectNoSecrets([]);
}, 300_000);
