/**
 * Azure Storage becoming unreachable for longer than the storage SDK's own retries must not lose or
 * duplicate a run: a failed episode is dropped from memory, the instance is reloaded from what was
 * persisted (with back-off while storage stays down) and continues.
 * The outage is a TCP proxy in front of Azurite's table endpoint that refuses connections for a while.
 */
import * as net from 'net';
import * as path from 'path';
import { AzuriteInstance, connectionStringFor, startAzurite } from '../../local/azurite';
import { startTestEnvironment, TestEnvironment } from '../../local/testing';

let azurite: AzuriteInstance;
let env: TestEnvironment;
let proxy: net.Server;
let down = false;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  azurite = await startAzurite();
  proxy = net.createServer((client) => {
    if (down) return client.destroy();
    const upstream = net.connect(azurite.tablePort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  const tablePort = (proxy.address() as net.AddressInfo).port;
  const viaProxy: AzuriteInstance = { ...azurite, tablePort, connectionString: connectionStringFor(azurite.blobPort, azurite.queuePort, tablePort) };
  env = await startTestEnvironment({ appRoot: path.resolve(__dirname, '../fixtures/durable-app'), azurite: viaProxy });
});
afterAll(async () => {
  await env?.stopHost();
  for (const s of sockets) s.destroy();
  await new Promise((r) => proxy?.close(r));
  await azurite?.stop();
});

test('a storage outage during a sequence of activities: the run completes once storage is back', async () => {
  const id = await env.startOrchestration('Slow', { n: 8, ms: 150 });
  await env.waitFor(id, { until: (s) => s.runtimeStatus === 'Running' });
  await new Promise((r) => setTimeout(r, 400));
  down = true;
  for (const s of sockets) s.destroy();
  await new Promise((r) => setTimeout(r, 9000)); // longer than the storage SDK's own retries
  down = false;
  const s = await env.waitFor(id, { timeoutMs: 60000 });
  expect(s.runtimeStatus).toBe('Completed');
  expect(s.output).toBe(8);
  const history = await env.status(id, 'showHistory=true');
  expect(history!.historyEvents!.filter((e) => e.EventType === 'TaskCompleted')).toHaveLength(8);
  expect(env.logs.join('\n')).toMatch(/failed, reloading it/);
}, 120000);
