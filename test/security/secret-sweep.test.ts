/**
 * Secrets never reach what people read: after a representative chain through the real app on the local host
 * (an HTTP deployment of the node example, scoring with the key, key regeneration, a batch run, a rejected blob
 * manifest that names a SAS URL, a refused HTTP request with one, a dead-lettered training message), this sweeps
 * the host log and the process output, every orchestration instance (status, custom status, input, output,
 * history), every /api answer, every blob name, the error blobs, the dead letters and poison messages, and the
 * slot/batch logs, for the storage account key, every service and batch pool key, and any SAS signature.
 * Self-contained: it runs its own chain (Jest's file order is not relied on).
 */
import * as fs from 'fs';
import * as path from 'path';
import { format } from 'util';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { killPools, prepareFixture, uploadIris, waitUntil } from '../e2e/batch-helpers';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const SAS_SIG = 'sig=SweepPlantedSignature0123456789abcdef%3D';
const SAS = `sv=2022-11-02&ss=b&srt=o&sp=r&se=2099-01-01T00:00:00Z&${SAS_SIG}`;
/** A SAS signature anywhere (query parameter `sig`, possibly URL-encoded). */
const SIG_RE = /(^|[?&;"'\s\\]|%26)sig(=|%3D)[A-Za-z0-9%+/_-]{8,}/i;

let env: TestEnvironment;
let storage: StorageClients;
/** Everything a person could read, by where it came from. */
const corpus: Array<{ where: string; text: string }> = [];
const output: string[] = [];
const restore: Array<() => void> = [];

/** env.request, with every answer kept for the sweep (except the keys endpoints' own, which hand the keys out). */
function headerObject(h: Headers): Record<string, string> {
  const o: Record<string, string> = {};
  h.forEach((v, k) => (o[k] = v));
  return o;
}

async function api(method: string, urlPath: string, body?: unknown, headers?: Record<string, string>) {
  const r = await env.request(method, urlPath, body, headers);
  if (!/^\/api\/services\/[^/]+\/keys(\/regenerate)?$/.test(urlPath)) corpus.push({ where: `${method} ${urlPath} → ${r.status}`, text: `${JSON.stringify(headerObject(r.headers))}\n${r.text}` });
  return r;
}

async function waitRun(runId: string): Promise<any> {
  return waitUntil(async () => {
    const r = await api('GET', `/api/runs/${runId}`);
    return r.status === 200 && !['Running', 'Pending'].includes(r.body.state) ? r.body : undefined;
  }, 120_000, `run ${runId}; host log tail:\n${env.logs.slice(-15).join('\n')}`);
}

beforeAll(async () => {
  // The process output: what the app and the host print (console and direct writes).
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const original = console[method];
    console[method] = (...args: unknown[]) => void output.push(format(...args));
    restore.push(() => (console[method] = original));
  }
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      output.push(Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk));
      return (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
    }) as typeof stream.write;
    restore.push(() => (stream.write = original));
  }
  env = await startTestEnvironment({ tempWorkDir: 'mdf-sweep-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
}, 120_000);

afterAll(async () => {
  if (env) killPools(env.workDir);
  await env?.stop();
  restore.splice(0).reverse().forEach((r) => r());
});

test('no account key, service or pool key, or SAS signature anywhere a person reads', async () => {
  const secrets = new Map<string, string>(); // value → label
  const accountKey = /AccountKey=([^;]+)/.exec(env.connectionString)![1];
  secrets.set(accountKey, 'storage account key');
  const addKeys = (label: string, k: { primaryKey?: string; secondaryKey?: string } | undefined) => {
    if (k?.primaryKey) secrets.set(k.primaryKey, `${label} primary key`);
    if (k?.secondaryKey) secrets.set(k.secondaryKey, `${label} secondary key`);
  };

  // 1. An HTTP deployment of the node example, with key auth.
  const staging = await storage.ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await staging.getBlockBlobClient(`sweep-node/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  const deploy = { ...manifest, service: { name: 'sweep-node' }, target: { ...manifest.target, auth_enabled: true } };
  const started = await api('POST', '/api/deployments?folder=staging/sweep-node', deploy);
  expect(started.status).toBe(202);
  const run = await waitRun(started.body.runId);
  expect(run.state).toBe('Succeeded');

  // 2. Scoring with the key; 3. key regeneration, then scoring with the new key.
  const keys = (await api('GET', '/api/services/sweep-node/keys')).body;
  addKeys('service', keys);
  const score = (key: string) => fetch(run.result.scoringUri, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(manifest.smoke_test.sample),
  });
  expect((await score(keys.primaryKey)).status).toBe(200);
  const regen = await api('POST', '/api/services/sweep-node/keys/regenerate', { keyType: 'Secondary' });
  expect(regen.status).toBe(200);
  addKeys('regenerated service', regen.body);
  expect(regen.body.secondaryKey).not.toBe(keys.secondaryKey);
  expect((await score(regen.body.secondaryKey)).status).toBe(200);
  expect((await score(keys.secondaryKey)).status).toBe(401);
  await api('GET', '/api/services');
  await api('GET', '/api/services/sweep-node');
  expect((await api('GET', '/api/services/sweep-node/metrics')).status).toBe(200); // read with the service's key
  await api('GET', '/api/runs');
  await api('GET', '/api/console');

  // 4. A batch run (its pool's keys are read from the pool record while it lives).
  await prepareFixture(env.connectionString);
  await uploadIris(storage, 'sweep/', 2, 20);
  const batch = await api('POST', '/api/batch-runs', {
    model: 'iris-linear', entry_script: 'iris.js', source_directory: 'code/scripts',
    inputs: { container: 'batch-data', prefix: 'sweep/' }, input_kind: 'tabular', mini_batch_size: '5 rows',
    process_count_per_node: 1, output: { container: 'batch-output', prefix: 'sweep/' },
  });
  expect(batch.status).toBe(202);
  const pools = storage.container('batch-pools');
  const batchView = await waitUntil(async () => {
    if (await pools.exists()) {
      for await (const b of pools.listBlobsFlat()) {
        const record = await pools.getBlobClient(b.name).downloadToBuffer().then((d) => JSON.parse(d.toString('utf8'))).catch(() => undefined);
        addKeys(`batch pool ${b.name}`, record?.keys);
      }
    }
    const v = await api('GET', `/api/batch-runs/${batch.body.id}`);
    return v.status === 200 && ['Succeeded', 'Failed', 'Terminated'].includes(v.body.state) ? v.body : undefined;
  }, 120_000, 'the batch run');
  expect(batchView.state).toBe('Succeeded');
  expect([...secrets.values()].some((l) => l.startsWith('batch pool'))).toBe(true);

  // 5. A rejected blob manifest naming a SAS URL → error blob; the same over HTTP → 400.
  const sasSource = `${storage.blobService.url}/staging/sweep-node/model.json?${SAS}`;
  const withSas = { ...manifest, service: { name: 'sweep-bad' }, model: { ...manifest.model, files: [{ path: 'model.json', source: sasSource }] } };
  const incoming = await storage.ensureContainer('incoming');
  await incoming.getBlockBlobClient('sweep-bad/deploy.json').uploadData(Buffer.from(JSON.stringify(withSas)));
  const errorBlob = incoming.getBlobClient('sweep-bad/deploy.error.json');
  await waitUntil(() => errorBlob.exists(), 60_000, 'the error blob');
  const refused = await api('POST', '/api/deployments?folder=staging/sweep-node', withSas);
  expect(refused.body.error.code).toBe('SasNotAllowed');

  // 6. A training message the trigger cannot take → dead-lettered after its deliveries.
  const training = await storage.ensureQueue('training-completed');
  await training.sendMessage(JSON.stringify({ model_name: 'sweep-dead', artifacts: 'not-a-list' }));
  const deadQueue = storage.queueService.getQueueClient('training-completed-deadletter');
  await waitUntil(async () => (await deadQueue.peekMessages({ numberOfMessages: 32 })).peekedMessageItems.length > 0, 60_000, 'the dead letter');

  // ---------------------------------------------------------------- the sweep
  // Orchestration instances: status, custom status, input, output and history of each.
  const list = await api('GET', '/runtime/webhooks/durabletask/instances?showInput=true');
  expect(list.status).toBe(200);
  expect(list.body.length).toBeGreaterThanOrEqual(3);
  for (const i of list.body as Array<{ instanceId: string }>) {
    const r = await api('GET', `/runtime/webhooks/durabletask/instances/${encodeURIComponent(i.instanceId)}?showHistory=true&showHistoryOutput=true&showInput=true`);
    expect(r.status).toBe(200);
  }
  // Every blob name, and the contents of error blobs.
  const names: string[] = [];
  for await (const c of storage.blobService.listContainers()) {
    const container = storage.container(c.name);
    for await (const b of container.listBlobsFlat()) {
      names.push(`${c.name}/${b.name}`);
      if (/\.error\.json$|(^|\/)error[^/]*\.json$/.test(b.name)) {
        corpus.push({ where: `error blob ${c.name}/${b.name}`, text: (await container.getBlobClient(b.name).downloadToBuffer()).toString('utf8') });
      }
    }
  }
  expect(names).toContain('incoming/sweep-bad/deploy.error.json');
  corpus.push({ where: 'blob names', text: names.join('\n') });
  // Dead letters and poison messages.
  let deadLetters = 0;
  for await (const q of storage.queueService.listQueues()) {
    if (!/-deadletter$|-poison$/.test(q.name)) continue;
    const { peekedMessageItems } = await storage.queueService.getQueueClient(q.name).peekMessages({ numberOfMessages: 32 });
    deadLetters += peekedMessageItems.length;
    for (const m of peekedMessageItems) corpus.push({ where: `queue ${q.name}`, text: `${m.messageText}\n${Buffer.from(m.messageText, 'base64').toString('utf8')}` });
  }
  expect(deadLetters).toBeGreaterThanOrEqual(1);
  // Slot and batch node logs.
  const logs = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? logs(path.join(dir, e.name)) : e.name.endsWith('.log') ? [path.join(dir, e.name)] : []);
  for (const file of logs(env.workDir)) corpus.push({ where: `log file ${path.relative(env.workDir, file)}`, text: fs.readFileSync(file, 'utf8') });
  // The host log and the process output.
  expect(env.logs.length).toBeGreaterThan(0);
  corpus.push({ where: 'host log', text: env.logs.join('\n') });
  corpus.push({ where: 'process output', text: output.join('\n') });
  // The chain did what it should have logged (so the sweep reads real material).
  expect(output.join('\n')).toContain('incoming/sweep-bad/deploy.json rejected: SasNotAllowed');

  expect(secrets.size).toBeGreaterThanOrEqual(6);
  const found: string[] = [];
  for (const { where, text } of corpus) {
    for (const [value, label] of secrets) if (text.includes(value)) found.push(`${label} in ${where}`);
    const m = SIG_RE.exec(text);
    if (m) found.push(`a SAS signature in ${where}: …${text.slice(Math.max(0, m.index - 60), m.index + 20)}…`);
  }
  expect(found).toEqual([]);
}, 400_000);
