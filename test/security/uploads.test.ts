/**
 * Uploads through the real local host and app (HTTP streaming on): `POST /api/deployments` multipart is streamed
 * to blob storage with its bounds; malformed, duplicate and misordered parts are clear 400s; oversize parts and
 * bodies are 413s that leave nothing in uploads/; an Idempotency-Key reused for another request is 422; two
 * deployments racing for one new service: one 202, one 409 `ServiceBusy`, and the loser leaves nothing behind.
 * Run `npm run build` first (the host loads the app from dist/).
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { runIdFor } from '../../shared/deploy/run-status';
import { ServiceRegistry } from '../../shared/registry/services';
import { faultsJob, prepareFixture, uploadJsonl, type Fixture } from '../e2e/batch-helpers';
import { waitRun as waitRunOf } from '../helpers/runs';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const MAX_UPLOAD = 400 * 1024;
const MAX_PART = 150 * 1024;
let env: TestEnvironment;
let storage: StorageClients;

beforeAll(async () => {
  env = await startTestEnvironment({
    tempWorkDir: 'mdf-uploads-',
    settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000', MAX_UPLOAD_BYTES: String(MAX_UPLOAD), MAX_UPLOAD_PART_BYTES: String(MAX_PART) },
    pollIntervalMs: 100,
  });
  storage = storageFromConnectionString(env.connectionString);
  // These tests are about the streamed path: the app enables it, the host honours it.
  expect(env.logs.join('\n')).toContain('HTTP streamed to the app');
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const files = Object.fromEntries(fs.readdirSync(EXAMPLE).map((f) => [f, fs.readFileSync(path.join(EXAMPLE, f))]));
/** The example's manifest for `service`; `extraFiles` are more model files (every uploaded part must be a manifest file). */
const manifestFor = (service: string, extraFiles: string[] = []) => {
  const m = { ...JSON.parse(files['deploy.json'].toString()), service: { name: service } };
  if (extraFiles.length) m.model = { ...m.model, files: [...m.model.files, ...extraFiles] };
  return JSON.stringify(m);
};

type Part = { name: string; data: string | Buffer; filename?: string };
const BOUNDARY = 'mdf-test-boundary-7f3a';

/** A multipart/form-data body, written by hand so that tests control duplicates, order and truncation. */
function multipart(parts: Part[]): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\nContent-Type: application/octet-stream\r\n\r\n`));
    chunks.push(Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

const exampleParts = (service: string, extraFiles: string[] = []): Part[] => [
  { name: 'manifest', data: manifestFor(service, extraFiles), filename: 'deploy.json' },
  ...['model.json', 'score.js', 'package.json'].map((f) => ({ name: f, data: files[f], filename: f })),
];

async function post(body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: new Uint8Array(body) as Uint8Array<ArrayBuffer>, headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, ...headers } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function uploadsOf(runId: string): Promise<string[]> {
  const out: string[] = [];
  const c = await storage.ensureContainer('uploads');
  for await (const b of c.listBlobsFlat({ prefix: `${runId}/` })) out.push(b.name);
  return out;
}

const waitRun = (runId: string, timeoutMs = 90_000): Promise<any> => waitRunOf(env, runId, timeoutMs);

test('a streamed multipart deployment of the node example deploys and scores; the same request again → the original 202; another body → 422', async () => {
  const body = multipart(exampleParts('upload-node'));
  const first = await post(body, { 'idempotency-key': 'sec-upload-1' });
  expect(first.status).toBe(202);
  expect(first.body).toMatchObject({ started: true, serviceName: 'upload-node' });
  const runId = first.body.runId as string;
  expect((await uploadsOf(runId)).sort()).toEqual([`${runId}/model.json`, `${runId}/package.json`, `${runId}/score.js`]);
  const stored = await storage.container('uploads').getBlockBlobClient(`${runId}/model.json`).downloadToBuffer();
  expect(stored.equals(files['model.json'])).toBe(true);

  const run = await waitRun(runId);
  expect(run).toMatchObject({ state: 'Succeeded', result: { serviceName: 'upload-node', outcome: 'Deployed' } });
  const scored = await fetch(run.result.scoringUri, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]] }) });
  expect(scored.status).toBe(200);
  expect(((await scored.json()) as number[])[0]).toBeCloseTo(152.538047, 5);

  // The same request (same key, same bytes): the original answer, nothing stored again.
  const again = await post(body, { 'idempotency-key': 'sec-upload-1' });
  expect(again.status).toBe(202);
  expect(again.body).toMatchObject({ runId, started: false, serviceName: 'upload-node' });

  // The same key with another file, or another manifest: refused, the run's files untouched.
  const otherFile = exampleParts('upload-node').map((p) => (p.name === 'model.json' ? { ...p, data: '{"other": true}' } : p));
  const reused = await post(multipart(otherFile), { 'idempotency-key': 'sec-upload-1' });
  expect(reused.status).toBe(422);
  expect(reused.body.error.code).toBe('IdempotencyKeyReused');
  expect(reused.body.error.message).toContain(runId);
  const otherService = await post(multipart(exampleParts('upload-other')), { 'idempotency-key': 'sec-upload-1' });
  expect(otherService.status).toBe(422);
  expect(otherService.body.error.code).toBe('IdempotencyKeyReused');
  expect((await storage.container('uploads').getBlockBlobClient(`${runId}/model.json`).downloadToBuffer()).equals(files['model.json'])).toBe(true);
  expect((await env.request('DELETE', '/api/services/upload-node')).status).toBe(200);
}, 180_000);

test('duplicate parts, a manifest that is not first, malformed bodies → 400 with a code; nothing stored', async () => {
  const cases: Array<{ key: string; body: Buffer; contentType?: string; code: string; message: RegExp }> = [
    { key: 'dup-file', body: multipart([...exampleParts('dup-svc'), { name: 'model.json', data: '{}', filename: 'model.json' }]), code: 'DuplicatePart', message: /more than one "model\.json" part/ },
    { key: 'dup-manifest', body: multipart([...exampleParts('dup-svc'), { name: 'manifest', data: manifestFor('dup-other') }]), code: 'DuplicatePart', message: /more than one "manifest" part/ },
    { key: 'not-first', body: multipart([{ name: 'model.json', data: files['model.json'], filename: 'model.json' }, { name: 'manifest', data: manifestFor('dup-svc') }]), code: 'ManifestNotFirst', message: /"manifest" part must come first/ },
    { key: 'no-manifest', body: multipart([]), code: 'ManifestMissing', message: /no parts/ },
    { key: 'truncated', body: multipart(exampleParts('dup-svc')).subarray(0, 900), code: 'InvalidMultipart', message: /malformed/ },
    { key: 'no-boundary', body: multipart(exampleParts('dup-svc')), contentType: 'multipart/form-data', code: 'InvalidMultipart', message: /boundary/i },
    { key: 'long-name', body: multipart([...exampleParts('dup-svc').slice(0, 1), { name: `${'d/'.repeat(520)}m.json`, data: '{}', filename: 'x' }]), code: 'InvalidPath', message: /is longer than 1024 characters/ },
    { key: 'bad-path', body: multipart([...exampleParts('dup-svc').slice(0, 1), { name: '../escape.json', data: '{}', filename: 'x' }]), code: 'InvalidPath', message: /^multipart part "\.\.\/escape\.json" contains "\.\."/ },
  ];
  for (const c of cases) {
    const r = await post(c.body, { 'idempotency-key': `sec-${c.key}`, ...(c.contentType ? { 'content-type': c.contentType } : {}) });
    expect({ key: c.key, status: r.status, code: r.body?.error?.code }).toEqual({ key: c.key, status: 400, code: c.code });
    expect(r.body.error.message).toMatch(c.message);
    expect(await uploadsOf(runIdFor('http', `sec-${c.key}`))).toEqual([]);
  }
  // Long (200 characters) and non-ASCII part names are kept exactly: the manifest finds the file under that name.
  const longName = `${'sub/'.repeat(48)}modèle.json`;
  const m = JSON.parse(manifestFor('name-svc'));
  m.model.files = [longName];
  const named = await post(multipart([{ name: 'manifest', data: JSON.stringify(m) }, { name: longName, data: files['model.json'], filename: 'modèle.json' }, ...exampleParts('name-svc').slice(2)]), { 'idempotency-key': 'sec-names' });
  expect(named.status).toBe(202);
  expect((await uploadsOf(named.body.runId)).sort()).toEqual([`${named.body.runId}/${longName}`, `${named.body.runId}/package.json`, `${named.body.runId}/score.js`].sort());
  await waitRun(named.body.runId);
  await env.request('DELETE', '/api/services/name-svc');
  // The part name is printed once in a path error.
  const bad = await post(multipart([...exampleParts('dup-svc').slice(0, 1), { name: 'a//b', data: '{}', filename: 'x' }]));
  expect(bad.body.error.message.split('a//b').length).toBe(2);
  expect((await env.request('GET', '/api/services/dup-svc')).status).toBe(404);
}, 60_000);

test('a part over MAX_UPLOAD_PART_BYTES, files over MAX_UPLOAD_BYTES, a manifest part over 1 MB → 413; uploads removed', async () => {
  const base = exampleParts('big-svc', ['big.bin', 'chunk1.bin', 'chunk2.bin', 'chunk3.bin']);
  const cases: Array<{ key: string; parts: Part[]; code: string; message: RegExp }> = [
    { key: 'part', parts: [...base.slice(0, 2), { name: 'big.bin', data: Buffer.alloc(MAX_PART + 1, 7), filename: 'big.bin' }, ...base.slice(2)], code: 'PartTooLarge', message: /Part "big\.bin" is larger than 153600 bytes \(MAX_UPLOAD_PART_BYTES\)/ },
    {
      key: 'total',
      parts: [...base, ...[1, 2, 3].map((i) => ({ name: `chunk${i}.bin`, data: Buffer.alloc(MAX_PART - 10, i), filename: `chunk${i}.bin` }))],
      code: 'PayloadTooLarge',
      message: /exceed 409600 bytes \(MAX_UPLOAD_BYTES\)/,
    },
    { key: 'manifest', parts: [{ name: 'manifest', data: Buffer.alloc(1024 * 1024 + 1, 0x20), filename: 'deploy.json' }], code: 'ManifestTooLarge', message: /larger than 1048576 bytes/ },
  ];
  for (const c of cases) {
    const r = await post(multipart(c.parts), { 'idempotency-key': `sec-big-${c.key}` });
    expect({ key: c.key, status: r.status, code: r.body?.error?.code }).toEqual({ key: c.key, status: 413, code: c.code });
    expect(r.body.error.message).toMatch(c.message);
    expect(await uploadsOf(runIdFor('http', `sec-big-${c.key}`))).toEqual([]);
  }
  // The service was claimed for the refused requests only while they ran: a good request for it is accepted.
  const ok = await post(multipart(exampleParts('big-svc')), { 'idempotency-key': 'sec-big-ok' });
  expect(ok.status).toBe(202);
  await waitRun(ok.body.runId);
  expect((await env.request('DELETE', '/api/services/big-svc')).status).toBe(200);
}, 120_000);

test('two deployments POSTed at once to one new service: one 202, one 409 ServiceBusy; the loser leaves nothing behind', async () => {
  const svc = 'race-svc';
  const parts = exampleParts(svc);
  const [a, b] = await Promise.all([post(multipart(parts), { 'idempotency-key': 'sec-race-a' }), post(multipart(parts), { 'idempotency-key': 'sec-race-b' })]);
  expect([a.status, b.status].sort()).toEqual([202, 409]);
  const [winner, loser, loserKey] = a.status === 202 ? [a, b, 'sec-race-b'] : [b, a, 'sec-race-a'];
  expect(loser.body.error.code).toBe('ServiceBusy');
  expect(loser.body.error.message).toContain(winner.body.runId);
  const loserRun = runIdFor('http', loserKey);
  expect((await env.request('GET', `/api/runs/${loserRun}`)).status).toBe(404);
  expect(await uploadsOf(loserRun)).toEqual([]);

  const run = await waitRun(winner.body.runId);
  expect(run).toMatchObject({ state: 'Succeeded', result: { serviceName: svc, outcome: 'Deployed' } });
  // One model version and one image were made (by the winner), none by the loser.
  const model = JSON.parse(files['deploy.json'].toString()).model.name as string;
  const image = JSON.parse(files['deploy.json'].toString()).image.name as string;
  const models = await env.request('GET', `/api/models/${model}`);
  expect(models.body.value.filter((m: any) => m.source?.eventId === loserRun)).toEqual([]);
  expect(models.body.value.filter((m: any) => m.source?.eventId === winner.body.runId)).toHaveLength(1);
  // Every deployment in this file that got past the door made one model version and one image: as many of each.
  const images = await env.request('GET', `/api/images/${image}`);
  expect(images.body.value).toHaveLength(models.body.value.length);

  // Once the winner has finished, the service takes a new deployment (the door claim is gone).
  const next = await post(multipart(parts), { 'idempotency-key': 'sec-race-c' });
  expect(next.status).toBe(202);
  expect((await waitRun(next.body.runId)).state).toBe('Succeeded');
  expect((await env.request('DELETE', `/api/services/${svc}`)).status).toBe(200);
}, 240_000);

test('a blob manifest for a service another accepted deployment holds → deploy.error.json with ServiceBusy, no run', async () => {
  // The door claim of an accepted request whose run has not started yet (it is still receiving its files).
  await new ServiceRegistry(storage).claim('blob-busy', 'deploy-http-still-uploading', async () => false);
  const incoming = await storage.ensureContainer('incoming');
  for (const f of ['model.json', 'score.js', 'package.json']) await incoming.getBlockBlobClient(`blob-busy/${f}`).uploadData(files[f]);
  const written = await incoming.getBlockBlobClient('blob-busy/deploy.json').uploadData(Buffer.from(manifestFor('blob-busy')));
  const runId = runIdFor('blob', `incoming/blob-busy/deploy.json@${String(written.etag).replace(/"/g, '')}`);
  const report = incoming.getBlockBlobClient('blob-busy/deploy.error.json');
  const deadline = Date.now() + 30_000;
  while (!(await report.exists()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const body = JSON.parse((await report.downloadToBuffer()).toString());
  expect(body.error).toMatchObject({ code: 'ServiceBusy', message: expect.stringContaining('deploy-http-still-uploading') });
  expect((await env.request('GET', `/api/runs/${runId}`)).status).toBe(404);
  expect((await env.request('GET', '/api/services/blob-busy')).status).toBe(404);
}, 60_000);

test('the same request sent twice at once (a client retry): one run, its files intact; the other answer is the same run or 409 RequestInProgress', async () => {
  const body = multipart([...exampleParts('twice-svc', ['weights.bin']), { name: 'weights.bin', data: Buffer.alloc(MAX_PART - 1, 9), filename: 'weights.bin' }]);
  const answers = await Promise.all([post(body, { 'idempotency-key': 'sec-twice' }), post(body, { 'idempotency-key': 'sec-twice' })]);
  const runId = runIdFor('http', 'sec-twice');
  expect(answers.filter((a) => a.status === 202 && a.body.started === true)).toHaveLength(1);
  for (const a of answers) {
    if (a.status === 202) expect(a.body.runId).toBe(runId);
    else expect({ status: a.status, code: a.body.error.code }).toEqual({ status: 409, code: 'RequestInProgress' });
  }
  expect((await uploadsOf(runId)).sort()).toEqual(['model.json', 'package.json', 'score.js', 'weights.bin'].map((f) => `${runId}/${f}`));
  expect((await storage.container('uploads').getBlockBlobClient(`${runId}/weights.bin`).downloadToBuffer()).equals(Buffer.alloc(MAX_PART - 1, 9))).toBe(true);
  expect((await waitRun(runId)).state).toBe('Succeeded');
  expect((await env.request('DELETE', '/api/services/twice-svc')).status).toBe(200);
}, 120_000);

test('a client that goes away mid-upload leaves no uploads and no claim: the service takes the next deployment', async () => {
  const http = await import('http');
  const body = multipart([...exampleParts('gone-svc', ['weights.bin']), { name: 'weights.bin', data: Buffer.alloc(MAX_PART - 1, 3), filename: 'weights.bin' }]);
  await new Promise<void>((resolve) => {
    const req = http.request(`${env.baseUrl}/api/deployments`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': body.length, 'idempotency-key': 'sec-gone' } });
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    // Everything but the last 64 KB (the manifest and the small files are in), then the connection drops.
    req.write(body.subarray(0, body.length - 64 * 1024), () => setTimeout(() => req.destroy(), 300));
  });
  const gone = runIdFor('http', 'sec-gone');
  // The handler notices the broken body and removes what it stored (bounded wait: the cleanup runs after the drop).
  const deadline = Date.now() + 30_000;
  while ((await uploadsOf(gone)).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  expect(await uploadsOf(gone)).toEqual([]);
  expect((await env.request('GET', `/api/runs/${gone}`)).status).toBe(404);
  const next = await post(multipart(exampleParts('gone-svc')), { 'idempotency-key': 'sec-gone-2' });
  expect(next.status).toBe(202);
  expect((await waitRun(next.body.runId)).state).toBe('Succeeded');
  expect((await env.request('DELETE', '/api/services/gone-svc')).status).toBe(200);
}, 120_000);

describe('batch runs', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await prepareFixture(env.connectionString);
  }, 60_000);

  test('the same Idempotency-Key with another job definition → 422 IdempotencyKeyReused; the same one → the original 202', async () => {
    await uploadJsonl(fx.storage, 'sec-idem/', [[{ id: 1 }]]);
    await uploadJsonl(fx.storage, 'sec-idem-2/', [[{ id: 2 }]]);
    const first = await env.request('POST', '/api/batch-runs', faultsJob('sec-idem/', {}), { 'idempotency-key': 'sec-batch-1' });
    expect(first.status).toBe(202);
    const same = await env.request('POST', '/api/batch-runs', faultsJob('sec-idem/', {}), { 'idempotency-key': 'sec-batch-1' });
    expect(same.status).toBe(202);
    expect(same.body).toMatchObject({ id: first.body.id, started: false });
    const other = await env.request('POST', '/api/batch-runs', faultsJob('sec-idem-2/', {}), { 'idempotency-key': 'sec-batch-1' });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('IdempotencyKeyReused');
    expect(other.body.error.message).toContain(first.body.id);
    // A job definition is a document: over its 16 MB bound it is refused like any oversize document.
    const tooBig = await env.request('POST', '/api/batch-runs', JSON.stringify({ pad: 'x'.repeat(17 * 1024 * 1024) }), { 'content-type': 'application/json' });
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.error.code).toBe('InputTooLarge');
  }, 90_000);
});
