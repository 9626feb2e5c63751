/**
 * Paced uploads of model data (runtime/collector.ts): a batch's body goes to storage in pieces, a short wait apart
 * while the next batch is under half full. Through the scoring runtime's HTTP entry point and Azurite: batches of
 * several pieces arrive whole, every request exactly once; an upload cut in the middle of its body leaves no blob behind and its retry writes each record once; the waits stop
 * as soon as the next batch is half full or the collector closes, so pacing never holds records back.
 */
import { BlobServiceClient } from '@azure/storage-blob';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { blobSink, ModelDataCollector, PIECE_BYTES, type CollectorSink } from '../../runtime/collector';
import { countBy, readModelData, runConcurrent } from '../helpers/modeldata';
import { post, trivialScriptFixture, waitFor, type ScriptFixture } from './helpers';

let azurite: AzuriteInstance;
let fixture: ScriptFixture;

beforeAll(async () => {
  azurite = await startAzurite();
  fixture = trivialScriptFixture('mdc-paced', 'paced_model', '2');
}, 60_000);

afterAll(async () => {
  await fixture?.close();
  await azurite?.stop();
});

const container = () => BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('modeldata');

test('batches of several pieces are written whole, every request exactly once', async () => {
  const s = await fixture.start({ serviceName: 'paced-svc', slot: 'blue', collectModelData: true, modelDataConnectionString: azurite.connectionString, workers: 2, maxConcurrent: 8, maxWaitMs: 60_000, modelDataBatchRecords: 100, modelDataFlushMs: 60_000 });
  const TOTAL = 600;
  const pad = 'x'.repeat(2000);
  const ids = await runConcurrent(TOTAL, 8, async (i) => {
    const res = await post(`${s.url}/score`, { data: [i], pad });
    expect(res.status).toBe(200);
    return res.headers.get('x-ms-request-id')!;
  });
  await s.server.stop();
  const blobs = await readModelData(azurite.connectionString, 'paced-svc/');
  const records = blobs.flatMap((b) => b.records);
  expect(records).toHaveLength(TOTAL);
  const counts = countBy(records, 'requestId');
  for (const id of ids) expect(counts.get(id)).toBe(1);
  for (const r of records) expect(r.input).toEqual({ data: [expect.any(Number)], pad });
  // The bodies went in pieces: a batch of 100 records of ~2 KiB is several pieces long.
  const sizes = await Promise.all(blobs.map(async (b) => (await container().getBlockBlobClient(b.name).getProperties()).contentLength ?? 0));
  expect(Math.max(...sizes)).toBeGreaterThan(3 * PIECE_BYTES);
}, 240_000);

test('an upload cut in the middle of its body leaves no blob; the retry writes each record once', async () => {
  await container().createIfNotExists();
  const real = blobSink({ connectionString: azurite.connectionString, container: 'modeldata' });
  let tries = 0;
  let visibleAfterCut: boolean | undefined;
  let piecesBeforeCut = 0;
  const sink: CollectorSink = {
    describe: 'azurite, first try cut',
    async upload(name, data, signal, pace) {
      tries++;
      if (tries > 1) return real.upload(name, data, signal, pace);
      // The first try is aborted after two pieces went out.
      const ac = new AbortController();
      signal.addEventListener('abort', () => ac.abort());
      let pieces = 0;
      const cutting = () => {
        pieces++;
        if (pieces === 2) {
          piecesBeforeCut = pieces;
          ac.abort();
        }
        return pace?.() ?? Promise.resolve();
      };
      try {
        await real.upload(name, data, ac.signal, cutting);
      } finally {
        visibleAfterCut = await container().getBlockBlobClient(name).exists();
      }
    },
  };
  const c = new ModelDataCollector({ sink, service: 'cut-svc', slot: 'blue', model: 'm', modelVersion: '1', batchRecords: 200, flushMs: 60_000, closeTimeoutMs: 60_000 });
  const input = Buffer.from(JSON.stringify({ data: 'y'.repeat(1500) }));
  for (let i = 0; i < 200; i++) expect(c.captureRequest({ requestId: `r${i}`, status: 200, input, inputType: 'application/json', output: Buffer.from('1') })).toBe(true);
  await c.close();
  expect(piecesBeforeCut).toBe(2);
  expect(visibleAfterCut).toBe(false);
  expect(tries).toBe(2);
  expect(c.stats).toMatchObject({ collected: 200, written: 200, dropped: 0, uploadFailures: 1, buffered: 0 });
  const blobs = await readModelData(azurite.connectionString, 'cut-svc/');
  expect(blobs).toHaveLength(1);
  const counts = countBy(blobs[0].records, 'requestId');
  expect(counts.size).toBe(200);
  for (const n of counts.values()) expect(n).toBe(1);
}, 120_000);

test('the waits between pieces stop once the next batch is half full, and while closing', async () => {
  const seen: string[] = [];
  let c!: ModelDataCollector;
  let first = true;
  const sink: CollectorSink = {
    describe: 'memory',
    async upload(_name, _data, _signal, pace) {
      if (!pace) throw new Error('no pace given');
      if (first) {
        first = false;
        // The next batch is empty: wait.
        seen.push(pace() ? 'wait' : 'go');
        // A quarter of the next batch: still wait.
        for (let i = 0; i < 2; i++) c.captureRequest({ requestId: `n${i}`, status: 200, input: Buffer.from('{}'), output: Buffer.from('1') });
        seen.push(pace() ? 'wait' : 'go');
        // Half of it: no more waits, the upload keeps up with the records coming in.
        for (let i = 2; i < 4; i++) c.captureRequest({ requestId: `n${i}`, status: 200, input: Buffer.from('{}'), output: Buffer.from('1') });
        seen.push(pace() ? 'wait' : 'go');
        return;
      }
      // Closing: no waits.
      seen.push(pace() ? 'wait' : 'go');
    },
  };
  c = new ModelDataCollector({ sink, service: 's', slot: 'blue', model: 'm', modelVersion: '1', batchRecords: 8, flushMs: 60_000 });
  for (let i = 0; i < 8; i++) c.captureRequest({ requestId: `r${i}`, status: 200, input: Buffer.from('{}'), output: Buffer.from('1') });
  await waitFor(() => seen.length === 3, 15_000, 10);
  expect(seen).toEqual(['wait', 'wait', 'go']);
  await c.close();
  expect(seen).toEqual(['wait', 'wait', 'go', 'go']);
  expect(c.stats).toMatchObject({ collected: 12, written: 12, dropped: 0 });
}, 60_000);
