/**
 * Model data collection (`collect_model_data`, runtime/collector.ts) through the scoring runtime's HTTP entry point,
 * with the data read back from Azurite: every scored request exactly once under load (front capture and the Node
 * `ModelDataCollector`), the seed-style Python `azureml.monitoring.ModelDataCollector` script, storage stopped
 * mid-run (answers keep coming, drops are counted in /metrics), and retried uploads that never duplicate.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { ModelDataCollector, type CollectorSink } from '../../runtime/collector';
import { countBy, readModelData, runConcurrent } from '../helpers/modeldata';
import { post, start, SYSTEM_PYTHON, tempDir, type Started } from './helpers';

const PY_SEED = `import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("best_model", designation="inputs", feature_names=["feat1", "feat2", "feat3"])
    prediction_dc = ModelDataCollector("best_model", designation="predictions", feature_names=["prediction"])

def run(raw_data):
    data = json.loads(raw_data)["data"]
    correlations = inputs_dc.collect(data)
    result = [sum(row) for row in data]
    prediction_dc.collect(result, correlations)
    return result
`;

const NODE_SCORE = `'use strict';
const { ModelDataCollector } = require('azureml-monitoring');
const inputs = new ModelDataCollector('best_model', { designation: 'inputs', featureNames: ['x'] });
function run(input) {
  const id = inputs.collect(input.data);
  return { sum: input.data.reduce((a, b) => a + b, 0), id };
}
module.exports = { run };
`;

let azurite: AzuriteInstance;
let dir: string;
let modelDir: string;
const servers: Started[] = [];

beforeAll(async () => {
  azurite = await startAzurite();
  dir = tempDir('mdc');
  modelDir = path.join(dir, 'models', 'best_model', '3');
  fs.mkdirSync(modelDir, { recursive: true });
  fs.writeFileSync(path.join(modelDir, 'model.json'), '{}');
  fs.writeFileSync(path.join(dir, 'score.py'), PY_SEED);
  fs.writeFileSync(path.join(dir, 'score.js'), NODE_SCORE);
}, 60_000);

afterAll(async () => {
  for (const s of servers) await s.server.stop().catch(() => undefined);
  await azurite?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function startCollecting(entry: string, serviceName: string, extra: Record<string, unknown> = {}, cs = azurite.connectionString): Promise<Started> {
  const s = await start({
    entryScript: path.join(dir, entry),
    modelDir,
    python: SYSTEM_PYTHON,
    serviceName,
    slot: 'blue',
    collectModelData: true,
    modelDataConnectionString: cs,
    ...extra,
  });
  servers.push(s);
  return s;
}

const today = () => {
  const d = new Date();
  return `${d.getUTCFullYear()}/${String(d.getUTCMonth() + 1).padStart(2, '0')}/${String(d.getUTCDate()).padStart(2, '0')}`;
};

test('the seed-style ModelDataCollector script: inputs, predictions and the request, joined by the correlation id, in AML layout', async () => {
  const s = await startCollecting('score.py', 'seed-svc');
  const res = await post(`${s.url}/score`, { data: [[1, 2, 3], [4, 5, 6]] });
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual([6, 15]);
  const requestId = res.headers.get('x-ms-request-id')!;
  await s.server.stop(); // a clean stop writes what is buffered

  const blobs = await readModelData(azurite.connectionString, 'seed-svc/');
  const day = today();
  const by = (designation: string) => blobs.filter((b) => b.name.startsWith(`seed-svc/best_model/3/${designation}/${day}/`)).flatMap((b) => b.records);
  expect(blobs.every((b) => b.name.endsWith('.jsonl'))).toBe(true);
  expect(by('inputs')).toEqual([expect.objectContaining({
    correlationId: requestId, requestId, service: 'seed-svc', slot: 'blue', model: 'best_model', modelVersion: '3',
    designation: 'inputs', featureNames: ['feat1', 'feat2', 'feat3'], data: [[1, 2, 3], [4, 5, 6]],
  })]);
  expect(by('predictions')).toEqual([expect.objectContaining({ correlationId: requestId, designation: 'predictions', featureNames: ['prediction'], data: [6, 15] })]);
  expect(by('requests')).toEqual([expect.objectContaining({
    correlationId: requestId, requestId, status: 200, input: { data: [[1, 2, 3], [4, 5, 6]] }, output: [6, 15], model: 'best_model', modelVersion: '3',
  })]);
  expect(Date.parse(by('requests')[0].time)).not.toBeNaN();
}, 120_000);

test('under load (2,000 requests at concurrency 16) every request is collected exactly once, by the front and by score.js', async () => {
  const s = await startCollecting('score.js', 'load-svc', { workers: 2, maxConcurrent: 8, maxWaitMs: 60_000, modelDataBatchRecords: 250, modelDataFlushMs: 60_000 });
  const TOTAL = 2000;
  const ids = await runConcurrent(TOTAL, 16, async (i) => {
    const res = await post(`${s.url}/score`, { data: [i, 1] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { sum: number; id: string };
    expect(body.sum).toBe(i + 1);
    const id = res.headers.get('x-ms-request-id')!;
    expect(body.id).toBe(id); // the script's correlation id is the request's id
    return id;
  });
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  expect(metrics).toContain(`scoring_model_data_records_total{outcome="collected"} ${2 * TOTAL}`);
  expect(metrics).toContain('scoring_model_data_records_total{outcome="dropped"} 0');
  await s.server.stop();

  const blobs = await readModelData(azurite.connectionString, 'load-svc/');
  for (const designation of ['requests', 'inputs']) {
    const records = blobs.filter((b) => b.name.startsWith(`load-svc/best_model/3/${designation}/`)).flatMap((b) => b.records);
    expect(records).toHaveLength(TOTAL);
    const counts = countBy(records, 'requestId');
    expect(counts.size).toBe(TOTAL);
    for (const id of ids) expect(counts.get(id)).toBe(1);
  }
  // Batched: far fewer blobs than records.
  expect(blobs.length).toBeLessThan(TOTAL / 10);
}, 300_000);

test('storage stopped mid-run: the service keeps answering, records beyond the bound are dropped and counted in /metrics', async () => {
  const own = await startAzurite();
  try {
    const s = await startCollecting('score.js', 'outage-svc', { workers: 2, maxConcurrent: 8, maxWaitMs: 60_000, modelDataMaxRecords: 50, modelDataBatchRecords: 10, modelDataFlushMs: 50, modelDataCloseTimeoutMs: 500 }, own.connectionString);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await post(`${s.url}/score`, { data: [i] })).status);
    await own.stop(); // storage goes away
    await runConcurrent(400, 8, async (i) => {
      statuses.push((await post(`${s.url}/score`, { data: [i] })).status);
    });
    expect(statuses.filter((x) => x !== 200)).toEqual([]);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const value = (outcome: string) => Number(new RegExp(`scoring_model_data_records_total\\{outcome="${outcome}"\\} (\\d+)`).exec(metrics)![1]);
    expect(value('collected')).toBe(2 * 440);
    expect(value('dropped')).toBeGreaterThan(0);
    expect(Number(/scoring_model_data_buffered_records (\d+)/.exec(metrics)![1])).toBeLessThanOrEqual(50);
    expect(value('written') + value('dropped') + Number(/scoring_model_data_buffered_records (\d+)/.exec(metrics)![1])).toBe(value('collected'));
    await s.server.stop();
    expect(s.logs.some((l) => l.event === 'model_data_dropped')).toBe(true);
  } finally {
    await own.stop().catch(() => undefined);
  }
}, 180_000);

test('a retried batch overwrites its own blobs: an upload that reached storage but reported a failure is not duplicated', async () => {
  const stored = new Map<string, string>();
  let calls = 0;
  const sink: CollectorSink = {
    describe: 'memory',
    async upload(name, data) {
      calls++;
      stored.set(name, data.toString('utf8'));
      if (calls % 2 === 1) throw new Error('connection reset after the write');
    },
  };
  const c = new ModelDataCollector({ sink, service: 's', slot: 'blue', model: 'm', modelVersion: '1', batchRecords: 5, flushMs: 10_000, closeTimeoutMs: 30_000 });
  for (let i = 0; i < 23; i++) c.captureRequest({ requestId: `r${i}`, status: 200, input: Buffer.from(`{"i":${i}}`), output: Buffer.from('1') });
  await c.close();
  const lines = [...stored.values()].flatMap((t) => t.split('\n').filter(Boolean)).map((l) => JSON.parse(l));
  expect(lines.map((l) => l.requestId).sort()).toEqual(Array.from({ length: 23 }, (_, i) => `r${i}`).sort());
  expect(c.stats).toMatchObject({ collected: 23, written: 23, dropped: 0, buffered: 0 });
  expect(c.stats.uploadFailures).toBeGreaterThan(0);
  expect([...stored.keys()].every((k) => /^s\/m\/1\/requests\/\d{4}\/\d{2}\/\d{2}\/[\w-]+-\w+-\d{6}\.jsonl$/.test(k))).toBe(true);
}, 60_000);

test('a batch is at most half the buffer bound (records and bytes): a small bound with the default batch size still writes everything while storage answers', async () => {
  const blobs = new Map<string, string>();
  const sink: CollectorSink = { describe: 'memory', async upload(name, data) { blobs.set(name, data.toString('utf8')); } };
  const s = await startCollecting('score.js', 'small-bound-svc', { workers: 2, maxConcurrent: 8, maxWaitMs: 60_000, modelDataMaxRecords: 40, modelDataFlushMs: 60_000, collectorSink: sink });
  await runConcurrent(300, 4, async (i) => {
    expect((await post(`${s.url}/score`, { data: [i] })).status).toBe(200);
  });
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  expect(metrics).toContain('scoring_model_data_records_total{outcome="dropped"} 0');
  await s.server.stop();
  const requests = [...blobs].filter(([name]) => name.includes('/requests/')).map(([, text]) => text.split('\n').filter(Boolean));
  expect(requests.flat()).toHaveLength(300);
  for (const lines of requests) expect(lines.length).toBeLessThanOrEqual(20);

  // Bytes: a 64 KiB bound cuts batches at 32 KiB.
  const sized = new Map<string, number>();
  const c = new ModelDataCollector({ sink: { describe: 'memory', async upload(name, data) { sized.set(name, data.length); } }, service: 's', slot: 'blue', model: 'm', modelVersion: '1', maxBytes: 64 * 1024, flushMs: 60_000 });
  const input = Buffer.from(JSON.stringify({ data: 'x'.repeat(1000) }));
  for (let i = 0; i < 200; i++) {
    expect(c.captureRequest({ requestId: `r${i}`, status: 200, input, output: Buffer.from('1') })).toBe(true);
    await new Promise((r) => setImmediate(r));
  }
  await c.close();
  expect(c.stats).toMatchObject({ collected: 200, written: 200, dropped: 0 });
  expect(sized.size).toBeGreaterThan(1);
  for (const bytes of sized.values()) expect(bytes).toBeLessThanOrEqual(32 * 1024 + 1200);
}, 120_000);
