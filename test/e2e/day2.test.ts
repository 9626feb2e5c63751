/**
 * Day-2 operations through the HTTP API on the local host (Azurite + host + local target + runtime): service logs,
 * image build log, key rotation on the running service, token auth.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { waitRun as waitRunOf } from '../helpers/runs';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const ROW = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
let env: TestEnvironment;
let storage: StorageClients;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-day2-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
  const up = await storage.ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await up.getBlockBlobClient(`day2/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const manifest = (): any => JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));

async function deploy(m: unknown): Promise<any> {
  const r = await env.request('POST', '/api/deployments?folder=staging/day2', m, { 'content-type': 'application/json' });
  expect(r.status).toBe(202);
  const run = await waitRunOf(env, r.body.runId, 90_000);
  expect(run.error).toBeUndefined();
  expect(run.state).toBe('Succeeded');
  return { ...run, runId: r.body.runId };
}

const score = (uri: string, auth?: string) =>
  fetch(uri, { method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify({ data: [ROW] }) });

test('logs: the replicas output of the serving slot, bounded tail, slot choice, bad input; image build log', async () => {
  const m = manifest();
  m.service = { name: 'day2-logs' };
  const run = await deploy(m);
  expect((await score(run.result.scoringUri)).status).toBe(200);

  const logs = await env.request('GET', '/api/services/day2-logs/logs?tail=50');
  expect(logs.status).toBe(200);
  expect(logs.body).toMatchObject({ service: 'day2-logs', slot: 'blue', tail: 50 });
  expect(logs.body.lines.length).toBeGreaterThan(0);
  expect(logs.body.lines.length).toBeLessThanOrEqual(50);
  expect(logs.body.lines.join('\n')).toContain('[replica 0]');
  expect(logs.body.lines.join('\n')).toMatch(/"event":"ready"/);
  const two = await env.request('GET', '/api/services/day2-logs/logs?tail=2');
  expect(two.body.lines).toHaveLength(2);
  const def = await env.request('GET', '/api/services/day2-logs/logs?slot=BLUE');
  expect(def.body).toMatchObject({ slot: 'blue', tail: 100 });
  // The other slot has never run: no lines, not an error.
  expect((await env.request('GET', '/api/services/day2-logs/logs?slot=green')).body).toMatchObject({ slot: 'green', lines: [] });

  for (const [q, code] of [
    ['tail=0', 'InvalidTail'],
    ['tail=1001', 'InvalidTail'],
    ['tail=abc', 'InvalidTail'],
    ['tail=99999999999', 'InvalidTail'],
    ['slot=purple', 'InvalidSlot'],
    ['slot=../blue', 'InvalidSlot'],
  ]) {
    const r = await env.request('GET', `/api/services/day2-logs/logs?${q}`);
    expect([q, r.status, r.body.error?.code]).toEqual([q, 400, code]);
  }
  expect((await env.request('GET', '/api/services/nope-nope/logs')).body.error.code).toBe('ServiceNotFound');
  expect((await env.request('GET', '/api/services/Bad_Name/logs')).body.error.code).toBe('InvalidServiceName');

  // The build log of the image (local validation output).
  const image = run.result.image as string; // name:version
  const [iname, iversion] = image.split(':');
  const log = await env.request('GET', `/api/images/${iname}/${iversion}/log`);
  expect(log.status).toBe(200);
  expect(log.headers.get('content-type')).toMatch(/^text\/plain/);
  expect(log.headers.get('cache-control')).toBe('no-store'); // a build log is no cache's to keep
  expect(log.text).toContain(`build ${image}`);
  expect(log.text).toContain('Succeeded');
  expect((await env.request('GET', `/api/images/${iname}/999/log`)).body.error.code).toBe('ImageNotFound');
  expect((await env.request('GET', `/api/images/${iname}/x1/log`)).status).toBe(400);
  expect((await env.request('GET', `/api/images/BAD..NAME/1/log`)).status).toBe(400);
}, 180_000);

test('keys really rotate on the local target: after regenerate the old key is refused and the new one accepted at once', async () => {
  const m = manifest();
  m.service = { name: 'day2-keys' };
  m.target = { ...m.target, auth_enabled: true };
  const run = await deploy(m);
  const uri = run.result.scoringUri as string;
  const keys = (await env.request('GET', '/api/services/day2-keys/keys')).body;
  expect((await score(uri)).status).toBe(401);
  expect((await score(uri, `Bearer ${keys.primaryKey}`)).status).toBe(200);
  expect((await score(uri, `Bearer ${keys.secondaryKey}`)).status).toBe(200);

  const regen = await env.request('POST', '/api/services/day2-keys/keys/regenerate', { keyType: 'Primary' });
  expect(regen.status).toBe(200);
  expect(regen.body.primaryKey).not.toBe(keys.primaryKey);
  expect(regen.body.secondaryKey).toBe(keys.secondaryKey);
  // The regenerate call returns once the endpoint uses the new keys (local: at once).
  expect((await score(uri, `Bearer ${keys.primaryKey}`)).status).toBe(401);
  expect((await score(uri, `Bearer ${regen.body.primaryKey}`)).status).toBe(200);
  expect((await score(uri, `Bearer ${keys.secondaryKey}`)).status).toBe(200);

  const again = await env.request('POST', '/api/services/day2-keys/keys/regenerate', { keyType: 'Secondary' });
  expect((await score(uri, `Bearer ${keys.secondaryKey}`)).status).toBe(401);
  expect((await score(uri, `Bearer ${again.body.secondaryKey}`)).status).toBe(200);
  // Keys appear only in the keys routes, never in the service record or its logs.
  const svc = await env.request('GET', '/api/services/day2-keys');
  const logs = await env.request('GET', '/api/services/day2-keys/logs?tail=1000');
  for (const k of [keys.primaryKey, regen.body.primaryKey, again.body.secondaryKey]) {
    expect(svc.text).not.toContain(k);
    expect(logs.text).not.toContain(k);
  }
}, 180_000);

test('token auth: GET /token, the endpoint accepts a valid token and refuses forged, expired and key values; exclusivity', async () => {
  const { issueToken } = await import('../../runtime/auth-token');
  const { ServiceRegistry } = await import('../../shared/registry/services');
  const m = manifest();
  m.service = { name: 'day2-token' };
  m.target = { ...m.target, token_auth_enabled: true };
  const run = await deploy(m);
  const uri = run.result.scoringUri as string;

  const t = await env.request('GET', '/api/services/day2-token/token');
  expect(t.status).toBe(200);
  expect(t.headers.get('cache-control')).toBe('no-store');
  expect(t.body).toMatchObject({ tokenType: 'Bearer', accessToken: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/) });
  const now = Date.now() / 1000;
  expect(t.body.expiryOn).toBeGreaterThan(now + 3000);
  expect(t.body.refreshAfter).toBeGreaterThan(now);
  expect(t.body.refreshAfter).toBeLessThan(t.body.expiryOn);

  expect((await score(uri, `Bearer ${t.body.accessToken}`)).status).toBe(200);
  const noAuth = await score(uri);
  expect(noAuth.status).toBe(401);
  expect(noAuth.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  const keys = (await env.request('GET', '/api/services/day2-token/keys')).body;
  expect((await score(uri, `Bearer ${keys.primaryKey}`)).status).toBe(401); // keys and tokens are exclusive
  const secret = await new ServiceRegistry(storage).ensureTokenSecret('day2-token');
  expect((await score(uri, `Bearer ${(await issueToken('day2-token', 'forged-secret-0123456789abcdef')).accessToken}`)).status).toBe(401);
  expect((await score(uri, `Bearer ${(await issueToken('day2-token', secret, Math.floor(now) - 7200)).accessToken}`)).status).toBe(401);
  expect((await score(uri, `Bearer ${(await issueToken('day2-logs', secret)).accessToken}`)).status).toBe(401);
  // A second token works too; the service record and the run never show the secret.
  const t2 = await env.request('GET', '/api/services/day2-token/token');
  expect((await score(uri, `Bearer ${t2.body.accessToken}`)).status).toBe(200);
  expect((await env.request('GET', '/api/services/day2-token')).text).not.toContain(secret);
  expect((await env.request('GET', `/api/runs/${run.runId}`)).text).not.toContain(secret);

  expect((await env.request('GET', '/api/services/day2-logs/token')).body.error.code).toBe('TokenAuthNotEnabled');
  expect((await env.request('GET', '/api/services/nope-nope/token')).body.error.code).toBe('ServiceNotFound');
  const send = (target: unknown) => env.request('POST', '/api/deployments?folder=staging/day2', { ...manifest(), service: { name: 'day2-bad' }, target }, { 'content-type': 'application/json' });
  const both = await send({ kind: 'local', auth_enabled: true, token_auth_enabled: true });
  expect([both.status, both.body.error.code]).toEqual([400, 'AuthModesExclusive']);
  const aks = await send({ kind: 'aks', auth_enabled: true, token_auth_enabled: true });
  expect(aks.body.error.code).toBe('AuthModesExclusive');
  const aci = await send({ kind: 'aci', token_auth_enabled: true });
  expect([aci.status, aci.body.error.code]).toEqual([400, 'TokenAuthNotSupported']);
  const keysAndToken = await send({ kind: 'local', token_auth_enabled: true, primary_key: 'a-user-primary-key-0123456789' });
  expect(keysAndToken.body.error.code).toBe('AuthModesExclusive');
}, 180_000);

test('user-supplied primary_key/secondary_key: accepted, used by the endpoint, only ever returned by /keys', async () => {
  const PRIMARY = 'user-primary-key-0123456789-abcdef';
  const SECONDARY = 'user-secondary-key-0123456789-abcdef';
  const m = manifest();
  m.service = { name: 'day2-userkeys' };
  m.target = { ...m.target, auth_enabled: true, primary_key: PRIMARY, secondary_key: SECONDARY };
  const post = await env.request('POST', '/api/deployments?folder=staging/day2', m, { 'content-type': 'application/json' });
  expect(post.status).toBe(202);
  expect(post.text).not.toContain(PRIMARY);
  const run = await waitRunOf(env, post.body.runId, 90_000);
  expect(run.state).toBe('Succeeded');
  const uri = run.result.scoringUri as string;
  expect((await score(uri, `Bearer ${PRIMARY}`)).status).toBe(200);
  expect((await score(uri, `Bearer ${SECONDARY}`)).status).toBe(200);
  expect((await env.request('GET', '/api/services/day2-userkeys/keys')).body).toEqual({ primaryKey: PRIMARY, secondaryKey: SECONDARY });
  for (const route of [`/api/runs/${post.body.runId}`, '/api/services/day2-userkeys', '/api/services', '/api/services/day2-userkeys/logs?tail=1000']) {
    const r = await env.request('GET', route);
    expect([route, r.text.includes(PRIMARY) || r.text.includes(SECONDARY)]).toEqual([route, false]);
  }
  // Bad user keys: refused without echoing the value.
  const bad = await env.request('POST', '/api/deployments?folder=staging/day2', { ...m, target: { kind: 'local', auth_enabled: true, primary_key: 'short key' } }, { 'content-type': 'application/json' });
  expect(bad.status).toBe(400);
  expect(bad.body.error.code).toBe('InvalidManifest');
  expect(bad.text).not.toContain('short key');
}, 180_000);

test('GET /api/runs: newest first, filters, pages with a continuation token, bad input', async () => {
  const all = await env.request('GET', '/api/runs?type=deployment&top=100');
  expect(all.status).toBe(200);
  const runs = all.body.value as any[];
  expect(runs.length).toBeGreaterThanOrEqual(4);
  for (let i = 1; i < runs.length; i++) expect(runs[i - 1].createdTime >= runs[i].createdTime).toBe(true);
  expect(runs.every((r) => r.type === 'deployment')).toBe(true);
  expect(runs.map((r) => r.serviceName)).toEqual(expect.arrayContaining(['day2-logs', 'day2-keys', 'day2-token', 'day2-userkeys']));

  const keys = await env.request('GET', '/api/runs?service=day2-keys');
  expect(keys.body.value).toHaveLength(1);
  expect(keys.body.value[0]).toMatchObject({ type: 'deployment', state: 'Succeeded', serviceName: 'day2-keys', model: expect.stringMatching(/^diabetes-linear:\d+$/) });
  const run = await env.request('GET', `/api/runs/${keys.body.value[0].id}`);
  expect(run.body.result.serviceName).toBe('day2-keys');
  expect((await env.request('GET', '/api/runs?service=day2-keys&status=failed')).body.value).toEqual([]);
  expect((await env.request('GET', '/api/runs?model=diabetes-linear&type=deployment&status=Succeeded&top=100')).body.value.length).toBe(runs.filter((r) => r.state === 'Succeeded').length);
  expect((await env.request('GET', '/api/runs?type=batch')).body.value).toEqual([]);

  // Pages of 2 give the same runs in the same order.
  const paged: any[] = [];
  let url: string | undefined = '/api/runs?type=deployment&top=2';
  for (let i = 0; url && i < 50; i++) {
    const p: any = await env.request('GET', url);
    expect(p.status).toBe(200);
    expect(p.body.value.length).toBeLessThanOrEqual(2);
    paged.push(...p.body.value);
    url = p.body.nextLink;
    if (url) expect(p.body.continuationToken).toBeTruthy();
  }
  expect(paged.map((r) => r.id)).toEqual(runs.map((r) => r.id));

  for (const [q, code] of [
    ['type=training', 'InvalidRunType'],
    ['status=Exploded', 'InvalidRunStatus'],
    ['service=Bad_Name', 'InvalidServiceName'],
    ['model=../x', 'InvalidModelName'],
    ['top=0', 'InvalidTop'],
    ['top=101', 'InvalidTop'],
    ['since=yesterday', 'InvalidSince'],
    ['continuationToken=not*a*token', 'InvalidContinuationToken'],
    [`continuationToken=${Buffer.from('["x","y"]').toString('base64url')}`, 'InvalidContinuationToken'],
    [`continuationToken=${'A'.repeat(600)}`, 'InvalidContinuationToken'],
  ]) {
    const r = await env.request('GET', `/api/runs?${q}`);
    expect([q, r.status, r.body.error?.code]).toEqual([q, 400, code]);
  }
  expect((await env.request('GET', '/api/runs?since=2999-01-01')).body.value).toEqual([]);
}, 120_000);

test('blob drop: deploy.status.json beside the manifest (run id + status URI); a stale deploy.error.json is removed once a valid manifest is accepted', async () => {
  const incoming = await storage.ensureContainer('incoming');
  const waitBlob = async (name: string, present: boolean) => {
    const b = incoming.getBlockBlobClient(name);
    for (let i = 0; i < 300 && (await b.exists()) !== present; i++) await new Promise((r) => setTimeout(r, 200));
    expect([name, await b.exists()]).toEqual([name, present]);
    return b;
  };
  await incoming.getBlockBlobClient('day2-drop/deploy.json').uploadData(Buffer.from('{"model": {"files": ["m.json"]}, "colour": 1}'));
  const error = await waitBlob('day2-drop/deploy.error.json', true);
  expect(JSON.parse((await error.downloadToBuffer()).toString()).error.code).toBe('InvalidManifest');

  for (const f of fs.readdirSync(EXAMPLE)) if (f !== 'deploy.json') await incoming.getBlockBlobClient(`day2-drop/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  const m = manifest();
  m.service = { name: 'day2-drop' };
  const up = await incoming.getBlockBlobClient('day2-drop/deploy.json').uploadData(Buffer.from(JSON.stringify(m)));
  await waitBlob('day2-drop/deploy.error.json', false);
  const status = JSON.parse((await (await waitBlob('day2-drop/deploy.status.json', true)).downloadToBuffer()).toString());
  expect(status).toMatchObject({ runId: expect.stringMatching(/^deploy-blob-/), manifest: 'incoming/day2-drop/deploy.json', etag: String(up.etag).replace(/"/g, ''), started: true });
  expect(status.statusUri).toBe(`${env.baseUrl}/api/runs/${status.runId}`);
  const run = await waitRunOf(env, status.runId, 90_000);
  expect(run).toMatchObject({ state: 'Succeeded', result: { serviceName: 'day2-drop' } });
  const viaUri = await fetch(status.statusUri);
  expect(((await viaUri.json()) as any).id).toBe(status.runId);
  // The run is also found by listing.
  expect((await env.request('GET', '/api/runs?service=day2-drop')).body.value.map((r: any) => r.id)).toEqual([status.runId]);
}, 180_000);

test('registry: model download as tar.gz, description update, list by property; image tags update; bad input', async () => {
  const { listTarGz, extractTarGz } = await import('../../shared/images/archive');
  const models = (await env.request('GET', '/api/models/diabetes-linear')).body.value as any[];
  const v = models[models.length - 1].version;
  const res = await fetch(`${env.baseUrl}/api/models/diabetes-linear/${v}/download`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/gzip');
  expect(res.headers.get('content-disposition')).toBe(`attachment; filename="diabetes-linear-${v}.tar.gz"`);
  const archive = Buffer.from(await res.arrayBuffer());
  expect(await listTarGz(archive)).toEqual(['model.json']);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-dl-'));
  try {
    await extractTarGz(archive, out);
    expect(fs.readFileSync(path.join(out, 'model.json'))).toEqual(fs.readFileSync(path.join(EXAMPLE, 'model.json')));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  expect((await env.request('GET', '/api/models/diabetes-linear/999/download')).body.error.code).toBe('ModelNotFound');
  expect((await env.request('GET', '/api/models/bad%2F..%2Fname/1/download')).status).toBeGreaterThanOrEqual(400);

  const d = await env.request('PATCH', `/api/models/diabetes-linear/${v}`, { description: 'retrained on day 2' });
  expect(d.status).toBe(200);
  expect(d.body.description).toBe('retrained on day 2');
  expect((await env.request('GET', `/api/models/diabetes-linear/${v}`)).body.description).toBe('retrained on day 2');
  expect((await env.request('PATCH', `/api/models/diabetes-linear/${v}`, { description: 'x'.repeat(9000) })).body.error.code).toBe('InvalidModelUpdate');

  await env.request('PATCH', `/api/models/diabetes-linear/${v}`, { properties: { day2: 'yes' } });
  const byProp = await env.request('GET', '/api/models?property=day2=yes');
  expect(byProp.body.value.map((m: any) => m.id)).toEqual([`diabetes-linear:${v}`]);
  expect((await env.request('GET', '/api/models?property=day2')).body.value.map((m: any) => m.id)).toEqual([`diabetes-linear:${v}`]);
  expect((await env.request('GET', '/api/models?property=day2=no')).body.value).toEqual([]);
  expect((await env.request('GET', '/api/models?property=r2=0.332233&latest=true')).body.value.length).toBe(1);
  expect((await env.request('GET', '/api/models?run_id=no-such-run')).body.value).toEqual([]);
  expect((await env.request('GET', `/api/models?run_id=${'x'.repeat(300)}`)).body.error.code).toBe('InvalidRunId');

  const img = (await env.request('GET', '/api/images/diabetes-node')).body.latest;
  const t = await env.request('PATCH', `/api/images/diabetes-node/${img.version}`, { tags: { stage: 'prod', owner: 'day2' } });
  expect(t.status).toBe(200);
  expect(t.body.tags).toMatchObject({ stage: 'prod', owner: 'day2' });
  const t2 = await env.request('PATCH', `/api/images/diabetes-node/${img.version}`, { tags: { stage: 'canary' }, remove_tags: ['owner'] });
  expect(t2.body.tags.stage).toBe('canary');
  expect(t2.body.tags.owner).toBeUndefined();
  expect((await env.request('GET', `/api/images/diabetes-node/${img.version}`)).body.tags.stage).toBe('canary');
  expect((await env.request('PATCH', `/api/images/diabetes-node/${img.version}`, { colour: 'red' })).body.error.code).toBe('InvalidImageUpdate');
  expect((await env.request('PATCH', `/api/images/diabetes-node/${img.version}`, {})).body.error.code).toBe('InvalidImageUpdate');
  expect((await env.request('PATCH', '/api/images/diabetes-node/999', { tags: { a: 'b' } })).body.error.code).toBe('ImageNotFound');
}, 120_000);

test('POST /api/models registers without deploying (blob references), idempotent per key; run_id filter; bad input', async () => {
  const body = { name: 'day2-registered', folder: 'staging/day2', files: ['model.json'], description: 'no deployment', tags: { a: '1' }, properties: { p: '2' }, training_run_id: 'train-42' };
  const r = await env.request('POST', '/api/models', body, { 'content-type': 'application/json', 'idempotency-key': 'reg-1' });
  expect(r.status).toBe(201);
  expect(r.body).toMatchObject({ id: 'day2-registered:1', description: 'no deployment', tags: { a: '1' }, properties: { p: '2' }, source: { kind: 'api', trainingRunId: 'train-42' } });
  const again = await env.request('POST', '/api/models', body, { 'content-type': 'application/json', 'idempotency-key': 'reg-1' });
  expect([again.status, again.body.id]).toEqual([200, 'day2-registered:1']);
  const ref = await env.request('POST', '/api/models', { name: 'day2-registered', files: [{ path: 'weights/m.json', source: 'staging/day2/model.json' }] }, { 'content-type': 'application/json' });
  expect([ref.status, ref.body.id, ref.body.files[0].path]).toEqual([201, 'day2-registered:2', 'weights/m.json']);
  expect((await env.request('GET', '/api/models?run_id=train-42')).body.value.map((m: any) => m.id)).toEqual(['day2-registered:1']);
  expect((await env.request('GET', '/api/services')).body.value.map((s: any) => s.name)).not.toContain('day2-registered');

  for (const [b, code] of [
    [{ name: 'x1', files: [] }, 'InvalidModelRegistration'],
    [{ name: 'x1', files: ['a'], colour: 1 }, 'InvalidModelRegistration'],
    [{ name: 'x1', files: ['model.json'] }, 'FileSourceMissing'],
    [{ name: '../x', folder: 'staging/day2', files: ['model.json'] }, 'InvalidModelName'],
    [{ name: 'x1', folder: 'staging/day2', files: ['../secret'] }, 'InvalidPath'],
    [{ name: 'x1', folder: 'azure-webjobs-secrets', files: ['host.json'] }, 'ContainerNotAllowed'],
    [{ name: 'x1', files: [{ path: 'm', source: 'https://other.blob.core.windows.net/c/m' }] }, 'ForeignStorageAccount'],
  ] as Array<[unknown, string]>) {
    const res = await env.request('POST', '/api/models', b, { 'content-type': 'application/json' });
    expect([JSON.stringify(b), res.status, res.body.error?.code]).toEqual([JSON.stringify(b), 400, code]);
  }
  const missing = await env.request('POST', '/api/models', { name: 'x1', folder: 'staging/day2', files: ['nope.json'] }, { 'content-type': 'application/json' });
  expect([missing.status, missing.body.error.code]).toEqual([404, 'ModelFileNotFound']);
  expect((await env.request('GET', '/api/models/x1')).status).toBe(404); // bad input consumed no version
  expect((await env.request('POST', '/api/models', '{"name": ', { 'content-type': 'application/json' })).body.error.code).toBe('InvalidJson');
}, 120_000);

test('multipart: a part whose name matches no manifest file is refused, naming it and the expected parts', async () => {
  const m = manifest();
  m.service = { name: 'day2-multipart' };
  const form = new FormData();
  form.append('manifest', JSON.stringify(m));
  form.append('model.json', new Blob([fs.readFileSync(path.join(EXAMPLE, 'model.json'))]), 'model.json');
  form.append('modle.json', new Blob(['{}']), 'modle.json');
  const res = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: form });
  const body = (await res.json()) as any;
  expect(res.status).toBe(400);
  expect(body.error.code).toBe('UnexpectedPart');
  expect(body.error.message).toContain('"modle.json"');
  expect(body.error.message).toContain('"model.json", "score.js", "package.json"');
  // Nothing of the refused request stays in uploads/.
  const left: string[] = [];
  for await (const b of storage.container('uploads').listBlobsFlat()) if (b.name.includes('modle')) left.push(b.name);
  expect(left).toEqual([]);
  expect((await env.request('GET', '/api/services/day2-multipart')).status).toBe(404);
}, 60_000);

test('smoke test of a raw (@rawhttp) service: bytes compared with a base64 expected_output, text with a text one', async () => {
  const up = await storage.ensureContainer('staging');
  const script = `exports.raw = true;
exports.init = () => {};
exports.run = (req) => req.headers['content-type'] === 'text/plain'
  ? { status: 200, body: 'hello ' + Buffer.from(req.body).toString('utf8'), headers: { 'content-type': 'text/plain' } }
  : { status: 200, body: Buffer.from(req.body).reverse(), headers: { 'content-type': 'application/octet-stream' } };
`;
  await up.getBlockBlobClient('day2-raw/raw.js').uploadData(Buffer.from(script));
  await up.getBlockBlobClient('day2-raw/model.json').uploadData(fs.readFileSync(path.join(EXAMPLE, 'model.json')));
  const m = (smoke_test: unknown, name: string) => ({
    model: { name: 'day2-raw', files: ['model.json'] },
    image: { name: 'day2-raw', runtime: 'node', entry_script: 'raw.js' },
    target: { kind: 'local', num_replicas: 1 },
    service: { name },
    smoke_test,
  });
  const send = async (body: unknown) => {
    const r = await env.request('POST', '/api/deployments?folder=staging/day2-raw', body, { 'content-type': 'application/json' });
    expect(r.status).toBe(202);
    return waitRunOf(env, r.body.runId, 90_000);
  };
  const bytes = await send(m({ sample_base64: Buffer.from([1, 2, 3, 250]).toString('base64'), expected_output: Buffer.from([250, 3, 2, 1]).toString('base64'), expected_output_format: 'base64' }, 'day2-raw'));
  expect(bytes.error).toBeUndefined();
  expect(bytes.state).toBe('Succeeded');
  expect(bytes.result.smokeTest.checks).toContain('output matches the expected base64 output');
  const text = await send(m({ sample: 'day two', expected_output: 'hello day two', expected_output_format: 'text' }, 'day2-raw-text'));
  expect(text.state).toBe('Succeeded');
  const wrong = await send(m({ sample: 'day two', expected_output: 'bye', expected_output_format: 'text' }, 'day2-raw-bad'));
  expect(wrong.state).toBe('Failed');
  expect(wrong.error.message).toContain('The text output "hello day two" differs from the expected text output');
}, 240_000);

test('POST /api/models as multipart: metadata part first, files streamed and registered; staging removed; bad input', async () => {
  const post = (form: FormData, headers: Record<string, string> = {}) => fetch(`${env.baseUrl}/api/models`, { method: 'POST', body: form, headers }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const form = new FormData();
  form.append('model', JSON.stringify({ name: 'day2-upload', description: 'uploaded', training_run_id: 'train-up' }));
  form.append('model.json', new Blob([fs.readFileSync(path.join(EXAMPLE, 'model.json'))]), 'model.json');
  form.append('extra/notes.txt', new Blob(['hello']), 'notes.txt');
  const r = await post(form, { 'idempotency-key': 'up-1' });
  expect(r.status).toBe(201);
  expect(r.body).toMatchObject({ id: 'day2-upload:1', description: 'uploaded', source: { kind: 'api', trainingRunId: 'train-up' } });
  expect(r.body.files.map((f: any) => f.path).sort()).toEqual(['extra/notes.txt', 'model.json']);
  const dl = Buffer.from(await (await fetch(`${env.baseUrl}/api/models/day2-upload/1/download`)).arrayBuffer());
  const { listTarGz } = await import('../../shared/images/archive');
  expect((await listTarGz(dl)).sort()).toEqual(['extra/notes.txt', 'model.json']);
  const staged: string[] = [];
  for await (const b of storage.container('uploads').listBlobsFlat({ prefix: 'model-' })) staged.push(b.name);
  expect(staged).toEqual([]);

  const noMeta = new FormData();
  noMeta.append('model.json', new Blob(['{}']), 'model.json');
  expect((await post(noMeta)).body.error.code).toBe('ModelPartNotFirst');
  const badMeta = new FormData();
  badMeta.append('model', JSON.stringify({ name: 'x1', files: ['a'] }));
  expect((await post(badMeta)).body.error.code).toBe('InvalidModelRegistration');
  const noFiles = new FormData();
  noFiles.append('model', JSON.stringify({ name: 'x1' }));
  expect((await post(noFiles)).body.error.code).toBe('ModelFilesMissing');
  const trav = new FormData();
  trav.append('model', JSON.stringify({ name: 'x1' }));
  trav.append('../evil', new Blob(['x']), 'evil');
  expect((await post(trav)).body.error.code).toBe('InvalidPath');
  const dup = new FormData();
  dup.append('model', JSON.stringify({ name: 'x1' }));
  dup.append('a.bin', new Blob(['x']), 'a.bin');
  dup.append('a.bin', new Blob(['y']), 'a.bin');
  expect((await post(dup)).body.error.code).toBe('DuplicatePart');
  expect((await env.request('GET', '/api/models/x1')).status).toBe(404);
}, 120_000);
