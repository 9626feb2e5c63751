import * as fs from 'fs';
import * as path from 'path';
import { LocalDeployTarget } from '../../../shared/targets';
import { deployConfigFor } from '../../../shared/manifest';
import type { DeployRequest } from '../../../shared/seams';
import type { ImageRecord } from '../../../shared/images';
import { startEnv, makeImage, MULTIPLY_JS, isAlive, type Env } from '../fixtures';
import { slotRuntimes } from '../../helpers/replicas';
import { canSetCpuPriority, groupTasks } from '../../../shared/processes';

let env: Env;
let target: LocalDeployTarget;
let img2: ImageRecord;
let img3: ImageRecord;

beforeAll(async () => {
  env = await startEnv();
  target = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  img2 = await makeImage(env, { model: 'mult', files: { 'model.json': '{"factor":2}' }, image: 'mult', runtime: 'node', script: { path: 'score.js', content: MULTIPLY_JS } });
  img3 = await makeImage(env, { model: 'mult', files: { 'model.json': '{"factor":3}' }, image: 'mult', runtime: 'node', script: { path: 'score.js', content: MULTIPLY_JS } });
  expect(img2.state).toBe('Succeeded');
  expect(img3.state).toBe('Succeeded');
});

afterAll(async () => {
  await target?.stopAll();
  await env?.stop();
});

/** Pids the slot's record names. */
function recordedPids(service: string, slot: string): number[] {
  const rec = JSON.parse(fs.readFileSync(path.join(env.workDir, 'services', service, slot, 'slot.json'), 'utf8')) as { replicas: Array<{ pid: number }> };
  return rec.replicas.map((r) => r.pid).sort((a, b) => a - b);
}

/** Live runtime processes serving from the slot's context (by command line, whatever the record says). */
const slotProcesses = (service: string, slot: string) => slotRuntimes(env.workDir, service, slot);

const request = (service: string, slot: string, image: ImageRecord, target: 'local' | 'aks' = 'local', extra: Record<string, unknown> = {}): DeployRequest => ({
  serviceName: service,
  slot,
  image: { name: image.name, version: image.version, imageRef: image.imageRef!, runtime: image.runtime, contextBlob: image.contextBlob },
  config: deployConfigFor({ kind: target, ...extra } as never),
});

async function score(uri: string, data: number[], key?: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(uri, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ data }),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* text */
  }
  return { status: res.status, body };
}

test('deploys a slot, switches traffic, and updates blue/green with no failed request', async () => {
  const blue = await target.deploySlot(request('mult-svc', 'blue', img2));
  expect(blue.state).toBe('Healthy');
  expect(await score(blue.scoringUri, [1, 2])).toEqual({ status: 200, body: [2, 4] });
  // Idempotent per service+slot.
  expect((await target.deploySlot(request('mult-svc', 'blue', img2))).scoringUri).toBe(blue.scoringUri);

  const pub = await target.switchTraffic('mult-svc', 'blue');
  expect(await score(pub.scoringUri, [5])).toEqual({ status: 200, body: [10] });
  const health = await fetch(pub.scoringUri.replace(/score$/, ''));
  expect(health.status).toBe(200);

  // Continuous load through the public URI while green is deployed, switched to, and blue removed.
  let stop = false;
  const results: Array<{ status: number; body: unknown }> = [];
  const load = (async () => {
    while (!stop) results.push(await score(pub.scoringUri, [1]));
  })();
  const parallel: number[] = [];
  const load2 = Promise.all(
    [1, 2, 3].map(async () => {
      while (!stop) parallel.push((await score(pub.scoringUri, [1])).status);
    }),
  );
  const green = await target.deploySlot(request('mult-svc', 'green', img3));
  expect(green.state).toBe('Healthy');
  expect(await score(green.scoringUri, [1])).toEqual({ status: 200, body: [3] });
  const pub2 = await target.switchTraffic('mult-svc', 'green');
  expect(pub2.scoringUri).toBe(pub.scoringUri);
  await target.deleteSlot('mult-svc', 'blue');
  const after = results.length;
  while (results.length < after + 5) await new Promise((r) => setTimeout(r, 20));
  stop = true;
  await Promise.all([load, load2]);
  expect(parallel.length).toBeGreaterThan(0);
  expect(parallel.filter((s) => s !== 200)).toEqual([]);

  expect(results.filter((r) => r.status !== 200)).toEqual([]);
  const values = results.map((r) => (r.body as number[])[0]);
  const firstThree = values.indexOf(3);
  expect(firstThree).toBeGreaterThanOrEqual(0);
  // Once traffic switched, every later answer comes from green.
  expect(values.slice(firstThree).every((v) => v === 3)).toBe(true);
  expect(target.runningSlots('mult-svc')).toEqual(['green']);
  const tail = await target.logTail('mult-svc', 'green', 5);
  expect(tail.split('\n')).toHaveLength(5);
  const fullLog = fs.readFileSync(path.join(env.workDir, 'services', 'mult-svc', 'green', 'replica-0.log'), 'utf8');
  expect(fullLog).toMatch(/"event":"ready"/);
  expect(`[replica 0] ${fullLog}`).toContain(tail.split('\n').pop()!.replace(/^\[replica 0\] /, ''));
});

test('init() that raises → slot Failed with the script error, replica stopped, log tail has it', async () => {
  const bad = await makeImage(env, {
    model: 'boom',
    files: { 'model.json': '{}' },
    image: 'boom',
    runtime: 'node',
    script: { path: 'score.js', content: "exports.init = () => { throw new Error('cannot load weights: file truncated'); };\nexports.run = (x) => x;\n" },
  });
  const slot = await target.deploySlot(request('boom-svc', 'blue', bad));
  expect(slot.state).toBe('Failed');
  expect(slot.error?.code).toBe('InitFailed');
  expect(slot.error?.message).toContain('cannot load weights: file truncated');
  expect(await target.logTail('boom-svc', 'blue', 20)).toContain('cannot load weights');
  // No process of the slot is left (found by command line, not only by record).
  expect(slotProcesses('boom-svc', 'blue')).toEqual([]);
  expect(await target.logTail('boom-svc', 'blue', 20)).toMatch(/\[target\] slot failed: InitFailed/);
  await expect(target.switchTraffic('boom-svc', 'blue')).rejects.toMatchObject({ code: 'SlotNotFound' });
  await target.deleteService('boom-svc');
});

test('key auth on the public URI; regenerated keys apply at once; keys never in the log', async () => {
  const keys = { primaryKey: 'pk-' + 'a'.repeat(30), secondaryKey: 'sk-' + 'b'.repeat(30) };
  const req = { ...request('auth-svc', 'blue', img2, 'aks', { num_replicas: 2 }), keys };
  expect(req.config.authEnabled).toBe(true);
  const slot = await target.deploySlot(req);
  expect(slot.state).toBe('Healthy');
  expect((await score(slot.scoringUri, [1])).status).toBe(401);
  expect((await score(slot.scoringUri, [1], keys.secondaryKey)).status).toBe(200);
  const pub = await target.switchTraffic('auth-svc', 'blue');
  expect((await score(pub.scoringUri, [1])).status).toBe(401);
  expect(await score(pub.scoringUri, [1], keys.primaryKey)).toEqual({ status: 200, body: [2] });
  expect((await fetch(pub.scoringUri.replace(/score$/, ''))).status).toBe(200); // liveness stays open

  const next = { primaryKey: 'pk2-' + 'c'.repeat(30), secondaryKey: keys.secondaryKey };
  await target.updateKeys('auth-svc', next);
  expect((await score(pub.scoringUri, [1], keys.primaryKey)).status).toBe(401);
  expect((await score(pub.scoringUri, [1], next.primaryKey)).status).toBe(200);
  const log = await target.logTail('auth-svc', 'blue', 500);
  expect(log).not.toContain(keys.primaryKey);
  expect(log).not.toContain(next.primaryKey);
  await target.deleteService('auth-svc');
  expect(fs.existsSync(path.join(env.workDir, 'services', 'auth-svc'))).toBe(false);
  await expect(fetch(pub.scoringUri, { method: 'POST', body: '{}' })).rejects.toThrow();
});

test('stopAll stops every replica and front', async () => {
  await target.deploySlot(request('stop-svc', 'a', img2));
  const pub = await target.switchTraffic('stop-svc', 'a');
  const pids = recordedPids('stop-svc', 'a');
  expect(pids.length).toBe(1);
  expect(slotProcesses('stop-svc', 'a')).toEqual(pids);
  expect(isAlive(pids[0])).toBe(true);
  await target.stopAll();
  for (const pid of pids) expect(isAlive(pid)).toBe(false);
  await expect(fetch(pub.scoringUri, { method: 'POST', body: '{}' })).rejects.toThrow();
});

test('reapOrphans stops the replicas of a slot whose host died, never a process that merely reuses a recorded pid', async () => {
  await target.deploySlot(request('ghost', 'blue', img2));
  const [pid] = recordedPids('ghost', 'blue');
  expect(isAlive(pid)).toBe(true);
  // An unrelated process recorded as a replica (what pid reuse after a crash looks like).
  const { spawn } = await import('child_process');
  const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
  const deadHost = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => deadHost.once('exit', r));
  const file = path.join(env.workDir, 'services', 'ghost', 'blue', 'slot.json');
  const rec = JSON.parse(fs.readFileSync(file, 'utf8'));
  rec.hostPid = deadHost.pid;
  rec.replicas.push({ index: 9, pid: stranger.pid, port: 1 });
  fs.writeFileSync(file, JSON.stringify(rec));
  try {
    const fresh = new LocalDeployTarget(env.storage, { workDir: env.workDir });
    expect(await fresh.reapOrphans()).toBe(1);
    expect(isAlive(pid)).toBe(false);
    expect(isAlive(stranger.pid!)).toBe(true);
    expect(slotProcesses('ghost', 'blue')).toEqual([]);
  } finally {
    stranger.kill('SIGKILL');
    await target.deleteService('ghost');
  }
});

test('a host that lost its slots (restart) adopts the running replicas: same processes, no second copy; a dead one is started again', async () => {
  const first = await target.deploySlot(request('adopt-svc', 'blue', img2));
  const pids = recordedPids('adopt-svc', 'blue');
  // What a restarted host sees: a new target on the same work dir, the replicas still running.
  const other = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  const again = await other.ensureSlot('adopt-svc', 'blue');
  expect(again.state).toBe('Healthy');
  expect(recordedPids('adopt-svc', 'blue')).toEqual(pids);
  expect(slotProcesses('adopt-svc', 'blue')).toEqual(pids);
  expect(await score(again.scoringUri, [2])).toEqual({ status: 200, body: [4] });
  // The first target's router still holds the recorded port here, so the second one took another.
  expect(again.scoringUri).not.toBe(first.scoringUri);
  // A replica that died is started again (once) on the next ensure of a host that lost the slot.
  process.kill(-pids[0], 'SIGKILL');
  while (isAlive(pids[0])) await new Promise((r) => setTimeout(r, 20));
  const third = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  const restarted = await third.ensureSlot('adopt-svc', 'blue');
  expect(restarted.state).toBe('Healthy');
  const now = slotProcesses('adopt-svc', 'blue');
  expect(now).toHaveLength(1);
  expect(now).not.toEqual(pids);
  expect(await score(restarted.scoringUri, [2])).toEqual({ status: 200, body: [4] });
  await third.deleteService('adopt-svc');
  expect(slotProcesses('adopt-svc', 'blue')).toEqual([]);
  await other.stopAll();
  await target.deleteService('adopt-svc');
});

test('a deploySlot with another image into a slot that still runs replaces it (never returns the old one)', async () => {
  const a = await target.deploySlot(request('swap-svc', 'blue', img2));
  expect(await score(a.scoringUri, [1])).toEqual({ status: 200, body: [2] });
  const before = recordedPids('swap-svc', 'blue');
  const b = await target.deploySlot(request('swap-svc', 'blue', img3));
  expect(b.state).toBe('Healthy');
  expect(await score(b.scoringUri, [1])).toEqual({ status: 200, body: [3] });
  for (const pid of before) expect(isAlive(pid)).toBe(false);
  expect(slotProcesses('swap-svc', 'blue')).toHaveLength(1);
  await target.deleteService('swap-svc');
});

test('restoreService on a restarted host: the adopted auth slot serves on the public URI with the current (regenerated) keys', async () => {
  const keys = { primaryKey: 'pk-' + 'd'.repeat(30), secondaryKey: 'sk-' + 'e'.repeat(30) };
  const req = { ...request('auth-restore', 'blue', img2, 'aks'), keys };
  expect((await target.deploySlot(req)).state).toBe('Healthy');
  await target.switchTraffic('auth-restore', 'blue');
  const pids = recordedPids('auth-restore', 'blue');
  const regenerated = { primaryKey: 'pk2-' + 'f'.repeat(30), secondaryKey: keys.secondaryKey };
  const fresh = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  const r = await fresh.restoreService('auth-restore', async () => ({ keep: ['blue'], serve: 'blue', keys: regenerated }));
  expect(r.state).toBe('started');
  expect(recordedPids('auth-restore', 'blue')).toEqual(pids);
  const uri = r.uris!.scoringUri;
  expect((await score(uri, [1], keys.primaryKey)).status).toBe(401);
  expect(await score(uri, [1], regenerated.primaryKey)).toEqual({ status: 200, body: [2] });
  // Once serving, a second restore leaves it as it is.
  expect((await fresh.restoreService('auth-restore', async () => ({ keep: ['blue'], serve: 'blue', keys: regenerated }))).state).toBe('running');
  await fresh.deleteService('auth-restore');
  expect(slotProcesses('auth-restore', 'blue')).toEqual([]);
  await target.deleteService('auth-restore');
});

test('while the start-up restore of a service is pending, other operations on it wait for it (the serving slot comes first)', async () => {
  await target.deploySlot(request('gate-svc', 'blue', img2));
  const fresh = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  fresh.beginRestore(); // what the start-up restore does before the host dispatches any work
  const order: string[] = [];
  const deploy = fresh.deploySlot(request('gate-svc', 'green', img3)).then((r) => order.push(`deploy ${r.state}`));
  await new Promise((r) => setTimeout(r, 200)); // the deployment asks first...
  const restore = fresh
    .restoreService('gate-svc', async () => {
      order.push('restore');
      return { keep: ['blue', 'green'], serve: 'blue' };
    })
    .then((r) => order.push(`restored ${r.state}`));
  await Promise.all([deploy, restore]);
  expect(order).toEqual(['restore', 'restored started', 'deploy Healthy']); // ...the restore goes first
  await fresh.deleteService('gate-svc');
  expect(slotProcesses('gate-svc', 'blue')).toEqual([]);
  expect(slotProcesses('gate-svc', 'green')).toEqual([]);
  await target.deleteService('gate-svc');
});

test('a shadow phase runs the new version at idle CPU priority, and it is back at normal once it gets live traffic', async () => {
  await target.deploySlot(request('prio-svc', 'blue', img2));
  await target.deploySlot(request('prio-svc', 'green', img3));
  const pub = await target.switchTraffic('prio-svc', 'blue');
  // Every thread of every process of a slot's replica groups (the runtime and its workers): its scheduling policy.
  const policies = (slot: string) => groupTasks(recordedPids('prio-svc', slot)).map((t) => t.priority);
  const log = () => fs.readFileSync(path.join(env.workDir, 'services', 'prio-svc', 'green', 'slot.log'), 'utf8');
  expect(policies('green').length).toBeGreaterThanOrEqual(2);
  expect(new Set(policies('green'))).toEqual(new Set(['normal']));

  await target.setTrafficWeights('prio-svc', { blue: 100, green: 0 }, { mirror: { slot: 'green', percent: 100, tolerance: 0 } });
  const settable = await canSetCpuPriority();
  if (settable) {
    expect(new Set(policies('green'))).toEqual(new Set(['idle']));
    expect(log()).toMatch(/now at idle CPU priority/);
  } else {
    // A host that could not raise it back leaves it as it is, and says why.
    expect(new Set(policies('green'))).toEqual(new Set(['normal']));
    expect(log()).toMatch(/stays at normal CPU priority \(this host cannot raise/);
  }
  expect(new Set(policies('blue'))).toEqual(new Set(['normal']));
  // A replica added while the slot is a shadow (here a resize; autoscale alike) joins it at idle.
  await target.resizeSlot('prio-svc', 'green', { ...request('prio-svc', 'green', img3).config, numReplicas: 2 });
  expect(recordedPids('prio-svc', 'green')).toHaveLength(2);
  expect(new Set(policies('green'))).toEqual(new Set([settable ? 'idle' : 'normal']));
  // The idle version still scores its copies (this machine has free cores between requests).
  for (let i = 1; i <= 3; i++) expect(await score(pub.scoringUri, [i])).toEqual({ status: 200, body: [2 * i] });
  for (let i = 0; i < 500 && ((await target.trafficSnapshot('prio-svc')).shadow?.green.compared ?? 0) < 3; i++) await new Promise((r) => setTimeout(r, 20));
  expect((await target.trafficSnapshot('prio-svc')).shadow?.green).toMatchObject({ mirrored: 3, compared: 3, disagreed: 3, errors: 0 });

  // The first step: the new version serves live traffic, at normal priority again (and its record says so).
  await target.setTrafficWeights('prio-svc', { blue: 90, green: 10 });
  expect(new Set(policies('green'))).toEqual(new Set(['normal']));
  expect(JSON.parse(fs.readFileSync(path.join(env.workDir, 'services', 'prio-svc', 'green', 'slot.json'), 'utf8')).cpuPriority).toBeUndefined();
  if (settable) expect(log()).toMatch(/now at normal CPU priority/);

  // Shadow again, then a blue/green switch to it: the serving version is never left idle.
  await target.setTrafficWeights('prio-svc', { blue: 100, green: 0 }, { mirror: { slot: 'green', percent: 100, tolerance: 0 } });
  if (settable) expect(new Set(policies('green'))).toEqual(new Set(['idle']));
  await target.switchTraffic('prio-svc', 'green');
  expect(new Set(policies('green'))).toEqual(new Set(['normal']));
  expect(await score(pub.scoringUri, [2])).toEqual({ status: 200, body: [6] });
  await target.deleteService('prio-svc');
});

(process.platform === 'linux' ? test : test.skip)('a front whose shadow thread cannot lower its priority says why in the shadow slot\'s log (`mdf logs`); the copies are still compared', async () => {
  await target.deploySlot(request('nochrt-svc', 'blue', img2));
  await target.deploySlot(request('nochrt-svc', 'green', img2));
  const pub = await target.switchTraffic('nochrt-svc', 'blue');
  await target.setTrafficWeights('nochrt-svc', { blue: 100, green: 0 }, { mirror: { slot: 'green', percent: 100, tolerance: 0 } });
  const log = () => fs.readFileSync(path.join(env.workDir, 'services', 'nochrt-svc', 'green', 'slot.log'), 'utf8');
  // The front's shadow thread starts with the first batch (after the gathering), with this process's PATH: no `chrt`.
  const savedPath = process.env.PATH;
  process.env.PATH = path.join(env.workDir, 'no-such-bin');
  try {
    expect(await score(pub.scoringUri, [1])).toEqual({ status: 200, body: [2] });
    for (let i = 0; i < 250 && !/front: shadow copies/.test(log()); i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    if (savedPath === undefined) delete process.env.PATH;
    else process.env.PATH = savedPath;
  }
  expect(log()).toMatch(/\[target\] front: shadow copies are sent and compared on the front's own event loop from now on.*: chrt: spawnSync chrt ENOENT \(on Linux, util-linux's `chrt` lets the thread lower its own priority\)\n/);
  for (let i = 2; i <= 3; i++) expect(await score(pub.scoringUri, [i])).toEqual({ status: 200, body: [2 * i] });
  for (let i = 0; i < 500 && ((await target.trafficSnapshot('nochrt-svc')).shadow?.green.compared ?? 0) < 3; i++) await new Promise((r) => setTimeout(r, 20));
  expect((await target.trafficSnapshot('nochrt-svc')).shadow?.green).toMatchObject({ mirrored: 3, compared: 3, disagreed: 0, errors: 0 });
  expect(log().match(/front: shadow copies/g)).toHaveLength(1);
  await target.deleteService('nochrt-svc');
});

test('the service front gathers shadow copies (a full batch or 250 ms, as the ACI/AKS fronts): none reaches the new version at once, all are compared', async () => {
  await target.deploySlot(request('gather-svc', 'blue', img2));
  await target.deploySlot(request('gather-svc', 'green', img2));
  const pub = await target.switchTraffic('gather-svc', 'blue');
  await target.setTrafficWeights('gather-svc', { blue: 100, green: 0 }, { mirror: { slot: 'green', percent: 100, tolerance: 0 } });
  // Copies the new version scored (its live `/score` count: copies are not pinned requests).
  const copiesSeen = async () => {
    const text = await (await fetch(pub.scoringUri.replace(/score$/, 'metrics'), { headers: { 'azureml-model-deployment': 'green' } })).text();
    return Number(/^scoring_requests_total\{route="score",status="200"\} (\d+)/m.exec(text)?.[1] ?? 0);
  };
  const first = performance.now();
  for (let i = 0; i < 3; i++) expect(await score(pub.scoringUri, [i])).toEqual({ status: 200, body: [2 * i] });
  // 150 ms after the first request: copies sent at once would all be there by now; gathered ones leave at 250 ms.
  await new Promise((r) => setTimeout(r, Math.max(0, first + 150 - performance.now())));
  const early = await copiesSeen();
  if (performance.now() - first < 240) expect(early).toBe(0);
  for (let i = 0; i < 500 && (await copiesSeen()) < 3; i++) await new Promise((r) => setTimeout(r, 20));
  expect(await copiesSeen()).toBe(3);
  for (let i = 0; i < 500 && ((await target.trafficSnapshot('gather-svc')).shadow?.green.compared ?? 0) < 3; i++) await new Promise((r) => setTimeout(r, 20));
  expect((await target.trafficSnapshot('gather-svc')).shadow?.green).toMatchObject({ mirrored: 3, compared: 3, disagreed: 0, errors: 0 });
  await target.deleteService('gather-svc');
});
