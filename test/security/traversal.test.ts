/**
 * Standing battery: traversal and encoding tricks on every path or URL a user can give — deployment manifests over
 * HTTP (file sources, file paths, `?folder=`), blob-triggered manifests, training messages' artifacts (through the
 * storage-queue stand-in for Service Bus) and batch job inputs/outputs/script folders (POST /api/batch-runs).
 * Each must be refused with a clear 400 (or a dead-letter / error report naming the reason) and nothing may ever
 * read the `azure-webjobs-secrets` container: a fake secret is seeded there and searched for in every answer,
 * report and blob the app wrote.
 */
import * as fs from 'fs';
import * as path from 'path';
import { randomUUID } from 'crypto';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const SECRET = `TOPSECRET-${randomUUID()}`;
const SECRETS = 'azure-webjobs-secrets';

let env: TestEnvironment;
let storage: StorageClients;
let account: string;
/** Every answer and report the tests saw, searched for the secret at the end. */
const seen: string[] = [];

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-sec-trav-', settings: { LONE_ONNX_SETTLE_SECONDS: '1' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
  account = storage.blobService.url.replace(/\/+$/, '');
  const secrets = await storage.ensureContainer(SECRETS);
  await secrets.getBlockBlobClient('host.json').uploadData(Buffer.from(SECRET));
  await secrets.getBlockBlobClient('node/model.json').uploadData(Buffer.from(SECRET));
  const staging = await storage.ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await staging.getBlockBlobClient(`node/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  await (await storage.ensureContainer('batch-data')).getBlockBlobClient('rows/a.csv').uploadData(Buffer.from('a,b\n1,2\n'));
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

const manifest = () => JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
const withSource = (source: string) => {
  const m = manifest();
  return { ...m, model: { ...m.model, files: [{ path: 'model.json', source }] } };
};

/** Blob references that try to leave their container (or name a system one), each as a user would write it. */
function escapingSources(): string[] {
  return [
    `${account}/staging/node%2F..%2F..%2F${SECRETS}%2Fhost.json`,
    `${account}/staging/node%2f..%2f..%2f${SECRETS}%2fhost.json`,
    `${account}/staging/node%5C..%5C..%5C${SECRETS}%5Chost.json`,
    `${account}/staging/node/%2e%2e/%2e%2e/${SECRETS}/host.json`,
    `${account}/staging/node/%2E%2E/%2E%2E/${SECRETS}/host.json`,
    `${account}/staging/node/../../${SECRETS}/host.json`,
    `${account}/staging/./../${SECRETS}/host.json`,
    `${account}/staging/node/%252e%252e/%252e%252e/${SECRETS}/host.json`,
    `${account}/staging//../${SECRETS}/host.json`,
    `${account}/staging\\..\\${SECRETS}\\host.json`,
    `${account}/${SECRETS}/host.json`,
    `${account}/Azure-WebJobs-Secrets/host.json`,
    `staging/../${SECRETS}/host.json`,
    `staging/node/../../${SECRETS}/host.json`,
    `staging/node%2F..%2F..%2F${SECRETS}%2Fhost.json`,
    `staging\\..\\${SECRETS}\\host.json`,
    `staging/node/\u0000/../${SECRETS}/host.json`,
    `/${SECRETS}/host.json`,
    `${SECRETS}/host.json`,
    `AZURE-WEBJOBS-SECRETS/host.json`,
    `file:///etc/passwd`,
    `ftp://127.0.0.1/${SECRETS}/host.json`,
  ];
}

const REFUSALS = ['InvalidPath', 'InvalidBlobReference', 'ContainerNotAllowed', 'ForeignStorageAccount'];

function record(text: string): string {
  seen.push(text);
  return text;
}

test('HTTP manifests: escaping file sources, file paths and ?folder= answer 400 naming the field', async () => {
  const send = (body: unknown, q = '') => env.request('POST', `/api/deployments${q}`, body, { 'content-type': 'application/json' });
  for (const source of escapingSources()) {
    const r = await send(withSource(source));
    record(r.text);
    expect({ source, status: r.status }).toEqual({ source, status: 400 });
    expect(REFUSALS).toContain(r.body.error.code);
    expect(r.body.error.message).toContain('model.files[0].source');
  }
  // The same sources as the entry script and the environment file.
  for (const field of ['entry_script', 'environment_file'] as const) {
    const m = manifest();
    const file = field === 'entry_script' ? 'score.js' : 'package.json';
    const r = await send({ ...m, image: { ...m.image, [field]: { path: file, source: `${account}/staging/node%2F..%2F..%2F${SECRETS}%2Fhost.json` } } });
    record(r.text);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'InvalidPath', message: expect.stringContaining(`image.${field}.source`) });
  }
  // Relative file paths under a folder: encoded separators and traversal.
  for (const p of [`..%2F..%2F${SECRETS}%2Fhost.json`, `../../${SECRETS}/host.json`, `%2e%2e/%2e%2e/${SECRETS}/host.json`, `a\\..\\..\\x`, `./model.json`]) {
    const m = manifest();
    const r = await send({ ...m, model: { ...m.model, files: [p] } }, '?folder=staging/node');
    record(r.text);
    expect({ p, status: r.status, code: r.body.error.code }).toEqual({ p, status: 400, code: 'InvalidPath' });
  }
  // ?folder= (the query is decoded once by the host; the value must then be a plain blob folder).
  for (const folder of [`staging/../${SECRETS}`, `staging/node/../../${SECRETS}`, `staging%2F..%2F${SECRETS}`, `staging/%2e%2e/${SECRETS}`, `staging\\..\\${SECRETS}`, SECRETS, `${SECRETS}/node`, `/${SECRETS}`, `file:///etc`]) {
    const r = await send(manifest(), `?folder=${encodeURIComponent(folder)}`);
    record(r.text);
    expect({ folder, status: r.status }).toEqual({ folder, status: 400 });
    expect(REFUSALS).toContain(r.body.error.code);
    expect(r.body.error.message).toContain('folder');
  }
  // Control: clean references pass the checks and are looked up by exactly the name given (no run is started).
  const ok = await send(manifest(), '?folder=staging/nothing-here');
  record(ok.text);
  expect(ok.status).toBe(404);
  expect(ok.body.error).toMatchObject({ code: 'ManifestFileMissing', message: expect.stringContaining('staging/nothing-here/model.json') });
  const okUrl = await send(withSource(`${account}/staging/node/a%20missing%20model.json`), '?folder=staging/nothing-here');
  record(okUrl.text);
  expect(okUrl.status).toBe(404);
  expect(okUrl.body.error.message).toContain('staging/node/a missing model.json');
});

test('blob-triggered manifests with escaping sources are reported beside the manifest, never read', async () => {
  const incoming = await storage.ensureContainer('incoming');
  const sources = [`${account}/staging/node%2F..%2F..%2F${SECRETS}%2Fhost.json`, `staging/../${SECRETS}/host.json`, `${account}/staging/node/%2e%2e/%2e%2e/${SECRETS}/host.json`];
  const files = fs.readdirSync(EXAMPLE).filter((f) => f !== 'deploy.json');
  for (const [i, source] of sources.entries()) {
    for (const f of files) await incoming.getBlockBlobClient(`trav-${i}/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
    await incoming.getBlockBlobClient(`trav-${i}/deploy.json`).uploadData(Buffer.from(JSON.stringify(withSource(source))));
  }
  // A file path with encoded separators relative to the folder.
  const m = manifest();
  await incoming.getBlockBlobClient('trav-path/deploy.json').uploadData(Buffer.from(JSON.stringify({ ...m, model: { ...m.model, files: [`..%2F..%2F..%2F${SECRETS}%2Fhost.json`] } })));
  for (const name of [...sources.map((_, i) => `trav-${i}`), 'trav-path']) {
    const report = incoming.getBlockBlobClient(`${name}/deploy.error.json`);
    const until = Date.now() + 60_000;
    while (!(await report.exists()) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    const body = JSON.parse(record((await report.downloadToBuffer()).toString()));
    expect(REFUSALS).toContain(body.error.code);
    expect(body.error.message).toMatch(/model\.files\[0\]/);
  }
  // Folder names that encode a path: the event is ignored (logged), nothing is read or written beside them.
  const encoded = [`enc%2F..%2F..%2F${SECRETS}%2Fz/deploy.json`, `enc2/%2e%2e/%2e%2e/${SECRETS}/deploy.json`, `batch/enc%2F..%2F..%2F${SECRETS}/batch.json`];
  // (Were they handled, the relative files would be missing and an error report would be written beside them.)
  for (const name of encoded) await incoming.getBlockBlobClient(name).uploadData(Buffer.from(name.endsWith('batch.json') ? '{}' : JSON.stringify(manifest())));
  // The host records each handled event in a receipt (status "done": handled, not failing and retried).
  const receipts = storage.container('azure-webjobs-hosts'); // the local host's blob receipts (as the Functions host's)
  const handled = async () => {
    const done = new Set<string>();
    for await (const b of receipts.listBlobsFlat({ includeMetadata: true })) {
      const hit = encoded.find((n) => b.name.endsWith(`/incoming/${n}`));
      if (hit && b.metadata?.status === 'done') done.add(hit);
    }
    return done.size;
  };
  const until = Date.now() + 60_000;
  while ((await handled()) < encoded.length && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  expect(await handled()).toBe(encoded.length);
  const written: string[] = [];
  for await (const b of incoming.listBlobsFlat({ prefix: 'enc' })) written.push(b.name);
  for await (const b of incoming.listBlobsFlat({ prefix: 'batch/enc' })) written.push(b.name);
  expect(written.sort()).toEqual([...encoded].sort());
  for await (const b of storage.container(SECRETS).listBlobsFlat()) expect(['host.json', 'node/model.json']).toContain(b.name);
}, 120_000);

test('training messages with escaping artifacts are dead-lettered with the reason; no model is registered', async () => {
  const q = await storage.ensureQueue('training-completed');
  const artifacts = [
    `${account}/staging/node%2F..%2F..%2F${SECRETS}%2Fhost.json`,
    `${account}/staging/node/%2e%2e/%2e%2e/${SECRETS}/node/model.json`,
    `staging/../${SECRETS}/host.json`,
    { path: 'model.json', uri: `${account}/staging/node%2F..%2F..%2F${SECRETS}%2Fnode%2Fmodel.json?sv=1` },
    { path: '../model.json', uri: 'staging/node/model.json' },
  ];
  const names = artifacts.map((_, i) => `trav-msg-${i}`);
  for (const [i, a] of artifacts.entries()) {
    await q.sendMessage(JSON.stringify({ model_name: names[i], training_run_id: `r-${i}`, artifacts: [a], deploy: { image: { runtime: 'node', entry_script: { path: 'score.js', source: 'staging/node/score.js' } }, target: 'local' } }));
  }
  const dead = await storage.ensureQueue('training-completed-deadletter');
  const reasons = new Map<string, string>();
  const until = Date.now() + 90_000;
  while (reasons.size < names.length && Date.now() < until) {
    const { receivedMessageItems } = await dead.receiveMessages({ numberOfMessages: 32 });
    for (const msg of receivedMessageItems) {
      const d = JSON.parse(msg.messageText);
      const name = names.find((n) => String(d.body).includes(`"${n}"`));
      if (name) reasons.set(name, record(String(d.deadLetterErrorDescription)));
      await dead.deleteMessage(msg.messageId, msg.popReceipt);
    }
    if (reasons.size < names.length) await new Promise((r) => setTimeout(r, 300));
  }
  expect([...reasons.keys()].sort()).toEqual([...names].sort());
  for (const [name, reason] of reasons) {
    expect({ name, reason }).toEqual({ name, reason: expect.stringMatching(/artifacts\[0\]\.(uri|path)/) });
    expect(reason).toMatch(/traversal|path separator|ContainerNotAllowed|container "azure-webjobs-secrets"/);
    expect((await env.request('GET', `/api/models/${name}`)).status).toBe(404);
  }
}, 150_000);

test('batch runs: escaping inputs, outputs and script folders answer 400 InvalidJobDefinition', async () => {
  const job = { model: 'iris:1', entry_script: 'score.js', source_directory: 'staging/node' };
  const submit = (j: unknown) => env.request('POST', '/api/batch-runs', j, { 'content-type': 'application/json' });
  const uris = [
    `batch-data/../${SECRETS}/host.json`,
    'batch-data/../../etc/passwd',
    `batch-data/rows%2F..%2F..%2F${SECRETS}%2Fhost.json`,
    `${account}/batch-data/rows%2F..%2F..%2F${SECRETS}%2Fhost.json`,
    `${account}/batch-data/rows/%2e%2e/%2e%2e/${SECRETS}/host.json`,
    `${account}/batch-data/%252e%252e/${SECRETS}/host.json`,
    `${SECRETS}/host.json`,
    `${account}/${SECRETS}/host.json`,
    `batch-data\\..\\${SECRETS}\\host.json`,
    'file:///etc/passwd',
  ];
  for (const uri of uris) {
    const r = await submit({ ...job, inputs: { uris: [uri] } });
    record(r.text);
    expect({ uri, status: r.status }).toEqual({ uri, status: 400 });
    expect(r.body.error).toMatchObject({ code: 'InvalidJobDefinition', message: expect.stringContaining('inputs.uris.0') });
    expect(r.body.error.message.length).toBeGreaterThan(40);
  }
  const bad: Array<[string, Record<string, unknown>]> = [
    ['inputs.prefix', { inputs: { container: 'batch-data', prefix: `../${SECRETS}/` } }],
    ['inputs.prefix', { inputs: { container: 'batch-data', prefix: `rows/%2e%2e/` } }],
    ['output.prefix', { inputs: { container: 'batch-data', prefix: 'rows/' }, output: { container: 'batch-out', prefix: `../${SECRETS}/` } }],
    ['output.prefix', { inputs: { container: 'batch-data', prefix: 'rows/' }, output: { container: 'batch-out', prefix: 'a/./b/' } }],
    ['output.container', { inputs: { container: 'batch-data', prefix: 'rows/' }, output: { container: SECRETS, prefix: '' } }],
    ['inputs.container', { inputs: { container: SECRETS, prefix: '' } }],
    ['source_directory', { inputs: { container: 'batch-data', prefix: 'rows/' }, source_directory: `staging/../${SECRETS}` }],
    ['source_directory', { inputs: { container: 'batch-data', prefix: 'rows/' }, source_directory: `staging%2F..%2F${SECRETS}` }],
    ['source_directory', { inputs: { container: 'batch-data', prefix: 'rows/' }, source_directory: SECRETS }],
    ['entry_script', { inputs: { container: 'batch-data', prefix: 'rows/' }, entry_script: `..%2F${SECRETS}%2Fscore.js` }],
  ];
  for (const [field, over] of bad) {
    const r = await submit({ ...job, ...over });
    record(r.text);
    expect({ field, status: r.status }).toEqual({ field, status: 400 });
    expect(r.body.error).toMatchObject({ code: 'InvalidJobDefinition', message: expect.stringContaining(field) });
  }
  // Control: a clean folder passes the checks and fails only on what is really missing.
  const ok = await submit({ ...job, inputs: { container: 'batch-data', prefix: 'nothing-here/' } });
  record(ok.text);
  expect(ok.status).toBe(400);
  expect(ok.body.error).toMatchObject({ code: 'InputNotFound', message: expect.stringContaining('batch-data/nothing-here/') });
});

test('the secret never reached an answer, a report, a dead letter or any blob outside its container', async () => {
  expect(seen.length).toBeGreaterThan(50);
  for (const text of seen) expect(text).not.toContain(SECRET);
  for await (const c of storage.blobService.listContainers()) {
    if (c.name === SECRETS) continue;
    for await (const b of storage.container(c.name).listBlobsFlat()) {
      if ((b.properties.contentLength ?? 0) > 5_000_000) continue;
      const data = await storage.container(c.name).getBlobClient(b.name).downloadToBuffer();
      expect({ blob: `${c.name}/${b.name}`, leaked: data.includes(SECRET) }).toEqual({ blob: `${c.name}/${b.name}`, leaked: false });
    }
  }
});
