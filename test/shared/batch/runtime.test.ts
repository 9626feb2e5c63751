/**
 * The scoring step against the real scoring runtime (runtime/, batch mode) running examples/batch/score.py:
 * the request and reply shapes of POST /batch, key auth, tabular rows and file paths.
 */
import * as path from 'path';
import { BlobServiceClient } from '@azure/storage-blob';
import { startAzurite, type AzuriteInstance } from '../../../local/azurite';
import { startScoringServer, type ScoringServer } from '../../../runtime';
import { parseBatchJob } from '../../../shared/batch/job';
import { runLayout } from '../../../shared/batch/layout';
import { readPlanChunk } from '../../../shared/batch/plan';
import { planInputs } from '../../helpers/plan';
import { scoreMiniBatch } from '../../../shared/batch/score';

const dir = path.resolve(__dirname, '../../../examples/batch');
const keys = { primaryKey: 'pk-batch-test', secondaryKey: 'sk-batch-test' };

let azurite: AzuriteInstance;
let runtime: ScoringServer;
let service: BlobServiceClient;

beforeAll(async () => {
  azurite = await startAzurite();
  service = BlobServiceClient.fromConnectionString(azurite.connectionString);
  runtime = await startScoringServer({
    entryScript: path.join(dir, 'score.py'),
    modelDir: path.join(dir, 'model'),
    mode: 'batch',
    port: 0,
    workers: 1,
    keys,
    accessLog: false,
    log: () => undefined,
  });
  const data = service.getContainerClient('batch-data');
  await data.create();
  const csv = 'id,sepal_length,sepal_width,petal_length,petal_width\n1,5.1,3.5,1.4,0.2\n2,6.0,2.7,4.5,1.4\n3,oops,3.1,5.8,2.2\n4,6.9,3.1,5.8,2.2\n';
  await data.getBlockBlobClient('rt/a.csv').upload(csv, csv.length);
}, 60_000);

afterAll(async () => {
  await runtime?.stop();
  await azurite?.stop();
});

test('tabular rows: one element per scorable row; the unscorable row is a failed input', async () => {
  const job = parseBatchJob({ model: 'iris-linear', entry_script: 'score.py', inputs: { container: 'batch-data', prefix: 'rt/' }, input_kind: 'tabular', output: { container: 'out' } });
  const layout = runLayout(job, 'rt-tab');
  await planInputs(service, job, layout);
  const [mb] = await readPlanChunk(service.getContainerClient('out'), layout, 0);
  const r = await scoreMiniBatch(service, mb, { nodeUri: runtime.url, timeoutMs: 30_000, keepRows: true, headers: { authorization: `Bearer ${keys.secondaryKey}` } });
  expect(r).toMatchObject({ status: 'partial', itemCount: 4, returned: 3, succeeded: 3, failed: 1, rows: ['1,setosa', '2,versicolor', '4,virginica'] });
});

test('files: run() receives local paths it can open', async () => {
  const job = parseBatchJob({ model: 'iris-linear', entry_script: 'score.py', inputs: { container: 'batch-data', prefix: 'rt/' }, output: { container: 'out' } });
  const layout = runLayout(job, 'rt-files');
  await planInputs(service, job, layout);
  const [mb] = await readPlanChunk(service.getContainerClient('out'), layout, 0);
  const r = await scoreMiniBatch(service, mb, { nodeUri: runtime.url, timeoutMs: 30_000, keepRows: true, headers: { authorization: `Bearer ${keys.primaryKey}` } });
  expect(r).toMatchObject({ status: 'succeeded', succeeded: 1, rows: ['a.csv: 4 rows {"setosa": 1, "versicolor": 1, "virginica": 1}'] });
});

test('without the key the node answers 401: a failed, non-retryable result naming the code', async () => {
  const job = parseBatchJob({ model: 'iris-linear', entry_script: 'score.py', inputs: { container: 'batch-data', prefix: 'rt/' }, output: { container: 'out' } });
  const layout = runLayout(job, 'rt-auth');
  await planInputs(service, job, layout);
  const [mb] = await readPlanChunk(service.getContainerClient('out'), layout, 0);
  const r = await scoreMiniBatch(service, mb, { nodeUri: runtime.url, timeoutMs: 30_000, keepRows: true });
  expect(r).toMatchObject({ status: 'failed', retryable: false, error: { code: 'Unauthorized' } });
});
