/**
 * examples/batch (model, score.py, score.js, job files) and bench/batch-data.ts, end to end through the batch
 * domain: generate data → plan → score each mini-batch on a local node running score.js → merge.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { BlobServiceClient } from '@azure/storage-blob';
import { startAzurite, type AzuriteInstance } from '../../../local/azurite';
import { batchDataFiles, generateBatchData, BATCH_DATA_HEADER } from '../../../bench/batch-data';
import { parseBatchJob, parseBatchJobText } from '../../../shared/batch/job';
import { runLayout } from '../../../shared/batch/layout';
import { readPlanChunk } from '../../../shared/batch/plan';
import { planInputs } from '../../helpers/plan';
import { runMiniBatch, nodeFor } from '../../../shared/batch/score';
import { finalizeRun } from '../../../shared/batch/merge';
import { ThresholdTracker } from '../../../shared/batch/thresholds';

const dir = path.resolve(__dirname, '../../../examples/batch');
const modelDir = path.join(dir, 'model');

// eslint-disable-next-line @typescript-eslint/no-require-imports
const scoreJs = require(path.join(dir, 'score.js')) as { init(): void; run(mb: unknown[]): string[] };

const rows = [
  { id: 1, sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
  { id: 2, sepal_length: 6.0, sepal_width: 2.7, petal_length: 4.5, petal_width: 1.4 },
  { id: 3, sepal_length: 6.9, sepal_width: 3.1, petal_length: 5.8, petal_width: 2.2 },
  { id: 4, sepal_length: 'n/a', sepal_width: 3.0, petal_length: 1.0, petal_width: 0.1 },
];

beforeAll(() => {
  process.env.AZUREML_MODEL_DIR = modelDir;
  scoreJs.init();
});
afterAll(() => {
  delete process.env.AZUREML_MODEL_DIR;
});

describe('examples/batch', () => {
  test('job files validate', () => {
    const tab = parseBatchJobText(fs.readFileSync(path.join(dir, 'batch.json'), 'utf8'));
    expect(tab).toMatchObject({ inputKind: 'tabular', miniBatchSize: { unit: 'rows', rows: 50 }, appendRowFileName: 'predictions.txt', errorThreshold: 10 });
    const files = parseBatchJobText(fs.readFileSync(path.join(dir, 'batch-files.json'), 'utf8'));
    expect(files).toMatchObject({ inputKind: 'files', entryScript: 'score.js', miniBatchSize: { unit: 'files', files: 10 } });
  });

  test('score.js: one element per scorable row, three classes, unscorable rows left out', () => {
    expect(scoreJs.run(rows)).toEqual(['1,setosa', '2,versicolor', '3,virginica']);
  });

  test('score.py gives the same predictions (tabular rows and file paths)', () => {
    const tmp = fs.mkdtempSync(path.join(require('os').tmpdir(), 'batch-ex-'));
    try {
      const csv = path.join(tmp, 'a.csv');
      fs.writeFileSync(csv, `${BATCH_DATA_HEADER}\n1,5.1,3.5,1.4,0.2\n2,6.9,3.1,5.8,2.2\n`);
      const script = [
        'import json, sys',
        `sys.path.insert(0, ${JSON.stringify(dir)})`,
        'import score',
        'score.init()',
        'print(json.dumps([score.run(json.loads(sys.argv[1])), score.run([sys.argv[2]])]))',
      ].join('\n');
      const out = execFileSync('python3', ['-c', script, JSON.stringify(rows), csv], { env: { ...process.env, AZUREML_MODEL_DIR: modelDir }, encoding: 'utf8' });
      const [tab, files] = JSON.parse(out) as [string[], string[]];
      expect(tab).toEqual(scoreJs.run(rows));
      expect(files).toEqual(['a.csv: 2 rows {"setosa": 1, "versicolor": 0, "virginica": 1}']);
      expect(scoreJs.run([csv])).toEqual(['a.csv: 2 rows {"setosa":1,"versicolor":0,"virginica":1}']);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('bench/batch-data.ts', () => {
  test('200 files / 10,000 rows by default, deterministic, rows spread evenly', () => {
    const a = batchDataFiles();
    expect(a.length).toBe(200);
    expect(a.reduce((s, f) => s + f.rows, 0)).toBe(10_000);
    expect(new Set(a.map((f) => f.rows))).toEqual(new Set([50]));
    expect(a[0].name).toBe('iris/part-000.csv');
    expect(a[0].text.split('\n')[0]).toBe(BATCH_DATA_HEADER);
    expect(batchDataFiles()).toEqual(a);
    expect(batchDataFiles({ seed: 2 })[0].text).not.toBe(a[0].text);
    const uneven = batchDataFiles({ files: 3, rows: 10 });
    expect(uneven.map((f) => f.rows)).toEqual([4, 3, 3]);
    // ids are global and consecutive
    const ids = uneven.flatMap((f) => f.text.trim().split('\n').slice(1).map((l) => Number(l.split(',')[0])));
    expect(ids).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  describe('end to end on Azurite with score.js behind a local batch node', () => {
    let azurite: AzuriteInstance;
    let server: http.Server;
    let nodeUri: string;
    beforeAll(async () => {
      azurite = await startAzurite();
      server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          const results = scoreJs.run((JSON.parse(body) as { mini_batch: unknown[] }).mini_batch);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ results, count: results.length }));
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      nodeUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await azurite.stop();
    });

    test('generate → plan (tabular, 7 rows) → score → merge: every row once, in input order', async () => {
      const service = BlobServiceClient.fromConnectionString(azurite.connectionString);
      const gen = await generateBatchData(service.getContainerClient('batch-data'), { files: 12, rows: 300 });
      expect(gen).toMatchObject({ files: 12, rows: 300 });
      const job = parseBatchJob({
        model: 'iris-linear',
        entry_script: 'score.js',
        inputs: { container: 'batch-data', prefix: 'iris/' },
        input_kind: 'tabular',
        mini_batch_size: '7 rows',
        error_threshold: 0,
        output: { container: 'batch-output' },
      });
      const layout = runLayout(job, 'e2e');
      const plan = await planInputs(service, job, layout, { pageSize: 5 });
      expect(plan).toMatchObject({ itemCount: 300, inputFileCount: 12, miniBatchCount: 12 * 4 }); // 25 rows per file → 7+7+7+4
      const out = service.getContainerClient('batch-output');
      const tracker = new ThresholdTracker(job, plan);
      const mbs = await readPlanChunk(out, layout, 0);
      // two "workers", out of order
      await Promise.all(
        [0, 1].map(async (w) => {
          for (let i = mbs.length - 1 - w; i >= 0; i -= 2) {
            const o = await runMiniBatch(service, layout, mbs[i], { nodeUri: nodeFor([nodeUri], i), timeoutMs: 10_000, keepRows: true });
            expect(tracker.record(o)).toBeNull();
          }
        }),
      );
      const s = await finalizeRun(service, layout, { runId: 'e2e', job, plan, status: 'Succeeded', startedAt: '2024-01-01T00:00:00Z', finishedAt: '2024-01-01T00:00:02Z' });
      expect(s.counts.items).toEqual({ total: 300, succeeded: 300, failed: 0, notRun: 0 });
      const lines = (await out.getBlobClient(layout.output).downloadToBuffer()).toString().trim().split('\n');
      expect(lines.map((l) => Number(l.split(',')[0]))).toEqual(Array.from({ length: 300 }, (_, i) => i));
      expect(new Set(lines.map((l) => l.split(',')[1]))).toEqual(new Set(['setosa', 'versicolor', 'virginica']));
    });
  });
});
