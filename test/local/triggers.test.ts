import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { startAzurite, AzuriteInstance } from '../../local/azurite';
import { startTestEnvironment, TestEnvironment } from '../../local/testing';

const appRoot = path.resolve(__dirname, '../fixtures/durable-app');
let azurite: AzuriteInstance;
let env: TestEnvironment;
let countFile: string;

function lines(prefix: string): string[] {
  if (!fs.existsSync(countFile)) return [];
  return fs.readFileSync(countFile, 'utf8').split('\n').filter((l) => l.startsWith(prefix));
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not met in time; host log:\n${env.logs.slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function upload(container: string, name: string, text: string) {
  const c = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(container);
  await c.createIfNotExists();
  await c.getBlockBlobClient(name).upload(text, Buffer.byteLength(text));
}

beforeAll(async () => {
  azurite = await startAzurite();
  countFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-trig-')), 'runs.log');
  process.env.MDF_TEST_COUNT_FILE = countFile;
  process.env.TICK_SCHEDULE = '*/1 * * * * *';
  env = await startTestEnvironment({ appRoot, azurite, pollIntervalMs: 100 });
});
afterAll(async () => {
  await env?.stop();
  await azurite?.stop();
  delete process.env.MDF_TEST_COUNT_FILE;
});

describe('blob trigger', () => {
  test('fires once per blob version with path parameters and metadata, also across a host restart', async () => {
    await upload('incoming', 'model-a/deploy.json', JSON.stringify({ v: 1 }));
    await upload('incoming', 'model-a/other.txt', 'not matched');
    await until(() => lines('blob:model-a:').length === 1);
    const processed = await BlobServiceClient.fromConnectionString(azurite.connectionString)
      .getContainerClient('processed')
      .getBlobClient('model-a.json')
      .downloadToBuffer();
    const info = JSON.parse(processed.toString());
    expect(info.name).toBe('model-a');
    expect(info.blobTrigger).toBe('incoming/model-a/deploy.json');
    expect(info.uri).toContain('/incoming/model-a/deploy.json');
    expect(info.length).toBe(JSON.stringify({ v: 1 }).length);
    expect(info.content).toEqual({ v: 1 });

    // Several more polls: still once.
    await env.host.pollBlobs();
    await env.host.pollBlobs();
    expect(lines('blob:model-a:')).toEqual(['blob:model-a:1']);

    // Restart the host on the same storage: receipts persist, nothing fires again.
    await env.stopHost();
    env = await startTestEnvironment({ appRoot, azurite, pollIntervalMs: 100 });
    await env.host.pollBlobs();
    expect(lines('blob:model-a:')).toEqual(['blob:model-a:1']);

    // A new version of the blob fires again.
    await upload('incoming', 'model-a/deploy.json', JSON.stringify({ v: 2 }));
    await until(() => lines('blob:model-a:').length === 2);
    expect(lines('blob:model-a:')).toEqual(['blob:model-a:1', 'blob:model-a:2']);
  });

  test('after 5 failures the blob goes to webjobs-blobtrigger-poison', async () => {
    await upload('poison-in', 'bad.bin', 'x');
    const poison = QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('webjobs-blobtrigger-poison');
    let message: Record<string, string> | undefined;
    await until(async () => {
      const r = await poison.peekMessages({ numberOfMessages: 5 });
      if (!r.peekedMessageItems.length) return false;
      message = JSON.parse(Buffer.from(r.peekedMessageItems[0].messageText, 'base64').toString());
      return true;
    });
    expect(message).toMatchObject({ Type: 'BlobTrigger', FunctionId: 'AlwaysFails', ContainerName: 'poison-in', BlobName: 'bad.bin' });
    expect(lines('poison-try:bad.bin')).toHaveLength(5);
    await env.host.pollBlobs();
    expect(lines('poison-try:bad.bin')).toHaveLength(5);
  });
});

describe('Service Bus queue trigger bound to a Storage queue', () => {
  test('delivers the message with its delivery count', async () => {
    const q = QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('jobs');
    await q.createIfNotExists();
    await q.sendMessage(JSON.stringify({ id: 'j1', model: 'diabetes' }));
    await until(() => lines('job:').length === 1);
    expect(lines('job:')[0]).toBe('job:{"id":"j1","model":"diabetes"}:1');
  });

  test('after 10 failed deliveries the message moves to <queue>-deadletter with the reason', async () => {
    const svc = QueueServiceClient.fromConnectionString(azurite.connectionString);
    await svc.getQueueClient('bad-jobs').sendMessage('{"id":"b1"}');
    const dead = svc.getQueueClient('bad-jobs-deadletter');
    let letter: Record<string, unknown> | undefined;
    await until(async () => {
      const r = await dead.peekMessages();
      if (!r.peekedMessageItems.length) return false;
      letter = JSON.parse(r.peekedMessageItems[0].messageText);
      return true;
    }, 30000);
    expect(letter).toMatchObject({ deadLetterReason: 'MaxDeliveryCountExceeded', deliveryCount: 10, body: '{"id":"b1"}' });
    expect(String(letter!.deadLetterErrorDescription)).toContain('this message can never be processed');
    expect(lines('badjob:').map((l) => l.split(':')[1])).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect((await svc.getQueueClient('bad-jobs').peekMessages()).peekedMessageItems).toHaveLength(0);
  });
});

describe('the durable client binding in non-HTTP triggers', () => {
  test('a blob trigger and a Service Bus trigger start orchestrations through df.getClient', async () => {
    await upload('start-in', 'abc.json', JSON.stringify({ from: 'blob' }));
    await QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('start-jobs').sendMessage(JSON.stringify({ id: 'q7' }));
    const fromBlob = await env.waitFor('blob-abc', { until: (s) => s?.runtimeStatus === 'Completed' });
    expect(fromBlob.input).toEqual({ from: 'blob' });
    const fromQueue = await env.waitFor('queue-q7', { until: (s) => s?.runtimeStatus === 'Completed' });
    expect(fromQueue.output).toEqual(['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']);
  });
});

describe('timer trigger', () => {
  test('NCRONTAB schedule from an app setting fires with the timer object', async () => {
    await until(() => lines('tick:').length >= 2, 10000);
    expect(lines('tick:')[0]).toBe('tick:false:string');
  });

  test('schedules: six-field NCRONTAB, TimeSpan, and a clear error for five fields', () => {
    const { TimerTriggerScheduler } = require('../../local/triggers');
    const t0 = new Date('2026-01-01T00:00:07.000Z');
    expect(TimerTriggerScheduler.nextOccurrence('0 */5 * * * *', t0).toISOString()).toBe('2026-01-01T00:05:00.000Z');
    expect(TimerTriggerScheduler.nextOccurrence('00:00:30', t0).toISOString()).toBe('2026-01-01T00:00:37.000Z');
    expect(() => TimerTriggerScheduler.nextOccurrence('*/5 * * * *', t0)).toThrow(/six fields/);
  });
});
