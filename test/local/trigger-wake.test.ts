/**
 * Trigger polling of the local host: idle back-off, woken by the host process's own writes, and still polling for
 * work that other processes enqueue (local/triggers.ts).
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { startAzurite, AzuriteInstance } from '../../local/azurite';
import { startTestEnvironment, TestEnvironment } from '../../local/testing';

const appRoot = path.resolve(__dirname, '../fixtures/durable-app');
let azurite: AzuriteInstance;
let env: TestEnvironment | undefined;
let countFile: string;

function lines(prefix: string): string[] {
  if (!fs.existsSync(countFile)) return [];
  return fs.readFileSync(countFile, 'utf8').split('\n').filter((l) => l.startsWith(prefix));
}

async function until(cond: () => boolean, what: string, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not seen in time; host log:\n${env?.logs.slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  azurite = await startAzurite();
  countFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-wake-')), 'runs.log');
  process.env.MDF_TEST_COUNT_FILE = countFile;
  process.env.TICK_SCHEDULE = '0 0 0 1 1 *';
});
afterEach(async () => {
  await env?.stop();
  env = undefined;
});
afterAll(async () => {
  await azurite?.stop();
  delete process.env.MDF_TEST_COUNT_FILE;
  delete process.env.TICK_SCHEDULE;
});

test('a blob or message written by the host process itself is picked up at once, not at the next poll', async () => {
  // Polls an hour apart: after the first one, only a wake-up can fire the triggers during this test.
  env = await startTestEnvironment({ appRoot, azurite, pollIntervalMs: 3_600_000 });
  const blobs = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('incoming');
  await blobs.createIfNotExists();
  const text = JSON.stringify({ v: 7 });
  await blobs.getBlockBlobClient('wake-a/deploy.json').upload(text, text.length);
  await until(() => lines('blob:wake-a:').length === 1, 'the blob trigger');
  expect(lines('blob:wake-a:')).toEqual(['blob:wake-a:7']);

  const queue = QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('jobs');
  await queue.createIfNotExists();
  await queue.sendMessage(JSON.stringify({ id: 'wake-1' }));
  await until(() => lines('job:{"id":"wake-1"}').length === 1, 'the queue trigger');
  expect(lines('job:{"id":"wake-1"}')).toEqual(['job:{"id":"wake-1"}:1']);

});

test('work another process enqueues is still polled for while the host is idle', async () => {
  // Idle back-off: 50 ms doubling up to 400 ms. The writes come from a child process (not seen by the wake-up).
  env = await startTestEnvironment({ appRoot, azurite, pollIntervalMs: 50, pollIdleMaxMs: 400 });
  await new Promise((r) => setTimeout(r, 1000)); // idle long enough to reach the longest interval
  const script = `
    const { BlobServiceClient } = require('@azure/storage-blob');
    const { QueueServiceClient } = require('@azure/storage-queue');
    (async () => {
      const c = BlobServiceClient.fromConnectionString(process.env.CS).getContainerClient('incoming');
      await c.createIfNotExists();
      const t = JSON.stringify({ v: 9 });
      await c.getBlockBlobClient('other-b/deploy.json').upload(t, t.length);
      await QueueServiceClient.fromConnectionString(process.env.CS).getQueueClient('jobs').sendMessage(JSON.stringify({ id: 'other-2' }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, ['-e', script], { env: { ...process.env, CS: azurite.connectionString }, cwd: path.resolve(__dirname, '../..') }, (err) => (err ? reject(err) : resolve())),
  );
  await until(() => lines('blob:other-b:').length === 1 && lines('job:{"id":"other-2"}').length === 1, 'both triggers');
  expect(lines('blob:other-b:')).toEqual(['blob:other-b:9']);
  expect(lines('job:{"id":"other-2"}')).toEqual(['job:{"id":"other-2"}:1']);
});
