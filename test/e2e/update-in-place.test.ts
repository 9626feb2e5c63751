/**
 * `PATCH /api/services/{name}` through the HTTP API on the local host (Azurite + host + local target + runtime):
 * tags, description and the pool's size are applied in place (same slot, the replica processes that run keep
 * running, the run's steps say so), other fields blue/green; both run the deployment's own smoke test (sample +
 * expected output), and a failed in-place run is rolled back (the record keeps its values, the pool its size).
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { isAlive } from '../../shared/processes';
import { storageFromConnectionString } from '../../shared/storage';
import { waitRun } from '../helpers/runs';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
let env: TestEnvironment;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-inplace-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '8000' }, pollIntervalMs: 100 });
  const up = await storageFromConnectionString(env.connectionString).ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await up.getBlockBlobClient(`inp/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  await up.getBlockBlobClient('hold/score.js').uploadData(Buffer.from(HOLD_SCRIPT));
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

/**
 * A model-less script with no samples (so no swagger example: a smoke test without the deployment's sample is
 * liveness only) that echoes its input; a call whose input names a `hold` file waits while that file exists
 * (bounded), so a test can keep a run in its smoke test.
 */
const HOLD_SCRIPT = `const fs = require('fs');
module.exports = {
  init() {},
  async run(input) {
    for (let i = 0; i < 250 && input && input.hold && fs.existsSync(input.hold); i++) await new Promise((r) => setTimeout(r, 200));
    return { echo: input };
  },
};
`;
const holdManifest = (name: string, hold: string): any => ({
  image: { name: 'inp-hold', runtime: 'node', entry_script: 'score.js' },
  target: { kind: 'local', num_replicas: 1 },
  service: { name },
  smoke_test: { sample: { hold }, expected_output: { echo: { hold } } },
});

const manifest = (): any => JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
const patch = (name: string, body: unknown) => env.request('PATCH', `/api/services/${name}`, body, { 'content-type': 'application/json' });
const service = async (name: string) => (await env.request('GET', `/api/services/${name}`)).body;
const stepNames = (run: any) => (run.steps as Array<{ name: string }>).map((s) => s.name);
const step = (run: any, name: string) => (run.steps as Array<{ name: string; detail?: string }>).find((s) => s.name === name);
/** The replica processes of a slot, as the local target records them (`<work dir>/services/<service>/<slot>/slot.json`). */
const replicaPids = (name: string, slot: string): number[] =>
  (JSON.parse(fs.readFileSync(path.join(env.workDir, 'services', name, slot, 'slot.json'), 'utf8')).replicas as Array<{ pid: number }>).map((r) => r.pid).sort();
const score = async (uri: string) => {
  const r = await fetch(uri, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: manifest().smoke_test.sample.data }) });
  return { status: r.status, body: (await r.json()) as unknown };
};

test('tags and description in place: same slot and replica processes, the deployment smoke test, steps that say so; other fields blue/green', async () => {
  const m = manifest();
  m.service = { name: 'inp-a', tags: { team: 'risk' } };
  m.target = { kind: 'local', num_replicas: 2 };
  const d = await env.request('POST', '/api/deployments?folder=staging/inp', m, { 'content-type': 'application/json' });
  expect(d.status).toBe(202);
  const first = await waitRun(env, d.body.runId, 120_000);
  expect([first.state, first.error]).toEqual(['Succeeded', undefined]);
  const before = await service('inp-a');
  expect(before.servingRunId).toBe(d.body.runId);
  const pids = replicaPids('inp-a', before.activeSlot);
  expect(pids).toHaveLength(2);

  // In place: 202 says so; the run claims the serving slot, starts nothing, smoke-tests it with the sample.
  const r = await patch('inp-a', { tags: { team: 'risk', stage: 'prod' }, description: 'Diabetes progression' });
  expect(r.status).toBe(202);
  expect(r.body.update).toEqual({ mode: 'inPlace', fields: ['description', 'tags'] });
  const run = await waitRun(env, r.body.runId, 120_000);
  expect([run.state, run.error]).toEqual(['Succeeded', undefined]);
  expect(run.result).toMatchObject({ outcome: 'Updated', image: first.result.image, scoringUri: before.scoringUri, update: { mode: 'inPlace', fields: ['description', 'tags'] } });
  expect(stepNames(run)).toEqual(['register', 'image', 'prepare', 'inPlace', 'smokeTest', 'promote']);
  expect(step(run, 'prepare')!.detail).toBe(`in place: slot ${before.activeSlot} keeps serving ${first.result.image}`);
  expect(step(run, 'inPlace')!.detail).toBe(`slot ${before.activeSlot}, no replica restarted (description, tags)`);
  // The deployment's smoke test (the sample and expected output of deploy.json), not liveness only.
  expect(step(run, 'smokeTest')!.detail).toMatch(/^[\d.]+ ms$/);
  expect(run.result.smokeTest.checks).toContain('output matches the expected output');
  const after = await service('inp-a');
  expect(after).toMatchObject({ state: 'Healthy', activeSlot: before.activeSlot, scoringUri: before.scoringUri, image: before.image, config: before.config, tags: { team: 'risk', stage: 'prod' }, description: 'Diabetes progression', servingRunId: r.body.runId });
  expect(after.lastError).toBeUndefined();
  expect(replicaPids('inp-a', before.activeSlot)).toEqual(pids);
  expect(pids.every((p) => isAlive(p))).toBe(true);
  expect(fs.existsSync(path.join(env.workDir, 'services', 'inp-a', before.activeSlot === 'blue' ? 'green' : 'blue', 'slot.json'))).toBe(false);
  const scored = await score(after.scoringUri);
  expect([scored.status, (scored.body as number[]).length]).toEqual([200, 2]);

  // Naming the serving image is in place too.
  const same = await patch('inp-a', { image: first.result.image, description: 'v1 model' });
  expect(same.body.update).toEqual({ mode: 'inPlace', fields: ['description', 'image'] });
  expect((await waitRun(env, same.body.runId, 120_000)).state).toBe('Succeeded');

  // The local pool is resized in place: the replicas that run keep running, one more starts.
  const up = await patch('inp-a', { num_replicas: 3 });
  expect(up.body.update).toEqual({ mode: 'inPlace', fields: ['num_replicas'] });
  const upRun = await waitRun(env, up.body.runId, 120_000);
  expect([upRun.state, upRun.error]).toEqual(['Succeeded', undefined]);
  expect(stepNames(upRun)).toEqual(['register', 'image', 'prepare', 'inPlace', 'smokeTest', 'promote']);
  const three = replicaPids('inp-a', before.activeSlot);
  expect(three).toHaveLength(3);
  expect(three).toEqual(expect.arrayContaining(pids));
  expect(three.every((p) => isAlive(p))).toBe(true);
  expect(await service('inp-a')).toMatchObject({ activeSlot: before.activeSlot, config: { numReplicas: 3, autoscaleEnabled: false } });

  // Another field is blue/green: a new slot (with the pool's new size), the same smoke test, the old slot retired.
  const bg = await patch('inp-a', { replica_max_concurrent_requests: 2 });
  expect(bg.body.update).toEqual({ mode: 'blueGreen', fields: ['replica_max_concurrent_requests'] });
  const bgRun = await waitRun(env, bg.body.runId, 120_000);
  expect([bgRun.state, bgRun.error]).toEqual(['Succeeded', undefined]);
  expect(stepNames(bgRun)).toEqual(['register', 'image', 'prepare', 'deploy', 'smokeTest', 'promote', 'retire']);
  expect(bgRun.result.smokeTest.checks).toContain('output matches the expected output');
  expect(bgRun.result.update).toEqual({ mode: 'blueGreen', fields: ['replica_max_concurrent_requests'] });
  const moved = await service('inp-a');
  expect(moved).toMatchObject({ activeSlot: before.activeSlot === 'blue' ? 'green' : 'blue', config: { numReplicas: 3, replicaMaxConcurrentRequests: 2 }, tags: { team: 'risk', stage: 'prod' }, description: 'v1 model', scoringUri: before.scoringUri });
  expect(replicaPids('inp-a', moved.activeSlot)).toHaveLength(3);
  expect(three.some((p) => isAlive(p))).toBe(false);
}, 420_000);

/** Polls the slot record until it names `n` replicas (a replica leaving the pool is stopped once idle). Bounded. */
async function untilReplicas(name: string, slot: string, n: number): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const pids = replicaPids(name, slot);
    if (pids.length === n) return pids;
    await new Promise((r) => setTimeout(r, 200));
  }
  return replicaPids(name, slot);
}

test('the local pool shrinks in place: the extra replicas stop, the record keeps the new size', async () => {
  const m = manifest();
  m.service = { name: 'inp-c' };
  m.target = { kind: 'local', num_replicas: 2 };
  const d = await env.request('POST', '/api/deployments?folder=staging/inp', m, { 'content-type': 'application/json' });
  expect((await waitRun(env, d.body.runId, 120_000)).state).toBe('Succeeded');
  const { activeSlot } = await service('inp-c');
  const two = replicaPids('inp-c', activeSlot);
  const r = await patch('inp-c', { num_replicas: 1 });
  expect(r.body.update).toEqual({ mode: 'inPlace', fields: ['num_replicas'] });
  expect((await waitRun(env, r.body.runId, 120_000)).state).toBe('Succeeded');
  const one = await untilReplicas('inp-c', activeSlot, 1);
  expect(one).toHaveLength(1);
  expect(two).toContain(one[0]);
  expect(JSON.parse(fs.readFileSync(path.join(env.workDir, 'services', 'inp-c', activeSlot, 'slot.json'), 'utf8')).config.numReplicas).toBe(1);
  expect(await service('inp-c')).toMatchObject({ activeSlot, config: { numReplicas: 1 } });
  expect((await score((await service('inp-c')).scoringUri)).status).toBe(200);
}, 240_000);

test('an in-place update whose smoke test fails is rolled back: the record keeps its tags and description, the slot stays', async () => {
  const m = manifest();
  m.service = { name: 'inp-b', description: 'first' };
  const d = await env.request('POST', '/api/deployments?folder=staging/inp', m, { 'content-type': 'application/json' });
  expect((await waitRun(env, d.body.runId, 120_000)).state).toBe('Succeeded');
  const before = await service('inp-b');
  // The serving replica dies (nothing restarts it): the smoke test of the update fails.
  for (const pid of replicaPids('inp-b', before.activeSlot)) process.kill(-pid, 'SIGKILL');
  const r = await patch('inp-b', { description: 'second', tags: { x: '1' }, num_replicas: 2 });
  expect(r.body.update).toEqual({ mode: 'inPlace', fields: ['description', 'num_replicas', 'tags'] });
  const run = await waitRun(env, r.body.runId, 120_000);
  expect(run.state).toBe('RolledBack');
  expect(run.error.code).toBe('SmokeTestFailed');
  expect(stepNames(run)).toEqual(['register', 'image', 'prepare', 'inPlace', 'smokeTest', 'rollback']);
  const after = await service('inp-b');
  expect(after).toMatchObject({ activeSlot: before.activeSlot, description: 'first', tags: {}, config: { numReplicas: 1 }, servingRunId: d.body.runId, lastError: { code: 'SmokeTestFailed' } });
  // The pool went back to the size the record says (the run had started a second replica).
  expect(await untilReplicas('inp-b', before.activeSlot, 1)).toHaveLength(1);
  expect(JSON.parse(fs.readFileSync(path.join(env.workDir, 'services', 'inp-b', before.activeSlot, 'slot.json'), 'utf8')).config.numReplicas).toBe(1);
  expect(after.currentDeployment).toBeUndefined();
  expect(fs.existsSync(path.join(env.workDir, 'services', 'inp-b', before.activeSlot, 'slot.json'))).toBe(true);
  // Not deployed yet: nothing to update in place or otherwise.
  const none = await patch('inp-none', { description: 'x' });
  expect([none.status, none.body.error?.code]).toEqual([404, 'ServiceNotFound']);
}, 300_000);

test('with the run that put the serving version in place purged, an in-place update is smoke-tested for liveness only and succeeds', async () => {
  const hold = path.join(env.workDir, 'hold-e');
  const d = await env.request('POST', '/api/deployments?folder=staging/hold', holdManifest('inp-e', hold), { 'content-type': 'application/json' });
  expect(d.status).toBe(202);
  const first = await waitRun(env, d.body.runId, 120_000);
  expect([first.state, first.error]).toEqual(['Succeeded', undefined]);
  expect(first.result.smokeTest.checks).toContain('output matches the expected output');
  // The durable purge of the local host (the Durable Functions webhook): the run's record is gone.
  const purged = await env.request('DELETE', `/runtime/webhooks/durabletask/instances/${d.body.runId}`);
  expect([purged.status, purged.body]).toEqual([200, { instancesDeleted: 1 }]);
  expect((await env.request('GET', `/api/runs/${d.body.runId}`)).status).toBe(404);
  expect((await service('inp-e')).servingRunId).toBe(d.body.runId);

  const r = await patch('inp-e', { tags: { stage: 'prod' } });
  expect(r.body.update).toEqual({ mode: 'inPlace', fields: ['tags'] });
  const run = await waitRun(env, r.body.runId, 120_000);
  expect([run.state, run.error]).toEqual(['Succeeded', undefined]);
  expect(step(run, 'smokeTest')!.detail).toBe('liveness only');
  expect(run.result.smokeTest.checks).toContain('no test sample, input sample or swagger example: liveness only');
  expect(run.result.smokeTest.checks).not.toContain('output matches the expected output');
  expect(await service('inp-e')).toMatchObject({ state: 'Healthy', tags: { stage: 'prod' }, servingRunId: r.body.runId });
}, 240_000);

test('an in-place run abandoned after resizing the pool: the request that takes the service over puts the pool back to the record', async () => {
  const hold = path.join(env.workDir, 'hold-d');
  const d = await env.request('POST', '/api/deployments?folder=staging/hold', holdManifest('inp-d', hold), { 'content-type': 'application/json' });
  expect((await waitRun(env, d.body.runId, 120_000)).state).toBe('Succeeded');
  const { activeSlot } = await service('inp-d');
  const slotRecord = () => JSON.parse(fs.readFileSync(path.join(env.workDir, 'services', 'inp-d', activeSlot, 'slot.json'), 'utf8'));
  const one = replicaPids('inp-d', activeSlot);
  expect(one).toHaveLength(1);

  // The update's smoke test waits on the hold file: the pool has grown, the run has not promoted yet.
  fs.writeFileSync(hold, '');
  const r = await patch('inp-d', { num_replicas: 3 });
  expect(r.body.update).toEqual({ mode: 'inPlace', fields: ['num_replicas'] });
  const three = await untilReplicas('inp-d', activeSlot, 3);
  expect(three).toHaveLength(3);
  expect(three).toEqual(expect.arrayContaining(one));
  for (let i = 0; i < 100 && step(await env.request('GET', `/api/runs/${r.body.runId}`).then((x) => x.body), 'smokeTest') === undefined; i++) await new Promise((res) => setTimeout(res, 200));
  // The run is abandoned there (terminated through the durable webhook): the record keeps 1 replica, the slot 3.
  expect((await env.request('POST', `/runtime/webhooks/durabletask/instances/${r.body.runId}/terminate?reason=abandoned`)).status).toBe(202);
  fs.rmSync(hold);
  expect((await waitRun(env, r.body.runId, 60_000)).state).not.toBe('Succeeded');
  expect(await service('inp-d')).toMatchObject({ config: { numReplicas: 1 }, currentDeployment: { runId: r.body.runId } });
  expect(slotRecord().config.numReplicas).toBe(3);

  // A later update takes the service over: its answer is not held up, and the pool follows the record again.
  const next = await patch('inp-d', { description: 'after the takeover' });
  expect([next.status, next.body.update]).toEqual([202, { mode: 'inPlace', fields: ['description'] }]);
  const nextRun = await waitRun(env, next.body.runId, 120_000);
  expect([nextRun.state, nextRun.error]).toEqual(['Succeeded', undefined]);
  const left = await untilReplicas('inp-d', activeSlot, 1);
  expect(left).toHaveLength(1);
  expect(three).toContain(left[0]); // one of those that ran: shrunk in place, nothing restarted
  expect(slotRecord().config.numReplicas).toBe(1);
  expect(await service('inp-d')).toMatchObject({ state: 'Healthy', activeSlot, config: { numReplicas: 1 }, description: 'after the takeover' });
  expect((await service('inp-d')).currentDeployment).toBeUndefined();
}, 300_000);
