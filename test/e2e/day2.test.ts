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
let workDir: string;

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-day2-'));
  env = await startTestEnvironment({ settings: { LOCAL_WORK_DIR: workDir, SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
  const up = await storage.ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await up.getBlockBlobClient(`day2/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
}, 120_000);
afterAll(async () => {
  await env?.stop();
  fs.rmSync(workDir, { recursive: true, force: true });
});

const manifest = (): any => JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));

async function deploy(m: unknown): Promise<any> {
  const r = await env.request('POST', '/api/deployments?folder=staging/day2', m, { 'content-type': 'application/json' });
  expect(r.status).toBe(202);
  const run = await waitRunOf(env, r.body.runId, 90_000);
  expect(run.error).toBeUndefined();
  expect(run.state).toBe('Succeeded');
  return run;
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
