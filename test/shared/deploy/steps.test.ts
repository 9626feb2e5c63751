import { LocalDeployTarget } from '../../../shared/targets';
import { deployConfigFor } from '../../../shared/manifest';
import { deployService } from '../../helpers/deploy';
import { ServiceRegistry } from '../../../shared/registry/services';
import { deleteService, prepareDeployment, regenerateServiceKey, type DeployContext, type DeployServiceInput } from '../../../shared/deploy/steps';
import { deploySlotStep, promoteStep, rollbackStep, smokeTestStep } from '../../../shared/deploy/steps';
import { TABLES } from '../../../shared/storage';
import type { ImageRecord } from '../../../shared/images';
import { startEnv, makeImage, MULTIPLY_JS, type Env } from '../fixtures';
import { slotRuntimes } from '../../helpers/replicas';

let env: Env;
let target: LocalDeployTarget;
let ctx: DeployContext;
let img2: ImageRecord;
let img3: ImageRecord;

beforeAll(async () => {
  env = await startEnv();
  target = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  ctx = { services: new ServiceRegistry(env.storage), images: env.images, target, livenessTimeoutMs: 20_000 };
  img2 = await makeImage(env, { model: 'mult', files: { 'model.json': '{"factor":2}' }, image: 'mult', runtime: 'node', script: { path: 'score.js', content: MULTIPLY_JS } });
  img3 = await makeImage(env, { model: 'mult', files: { 'model.json': '{"factor":3}' }, image: 'mult', runtime: 'node', script: { path: 'score.js', content: MULTIPLY_JS } });
});
afterAll(async () => {
  await target?.stopAll();
  await env?.stop();
});

const input = (runId: string, image: ImageRecord, expected: number[], extra: Partial<DeployServiceInput> = {}): DeployServiceInput => ({
  runId,
  serviceName: 'mult-svc',
  target: 'local',
  image,
  config: deployConfigFor({ kind: 'local' }),
  smokeTest: { sample: { data: [1, 2] }, expectedOutput: expected },
  ...extra,
});

async function post(uri: string, data: number[], key?: string) {
  const res = await fetch(uri, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify({ data }) });
  return { status: res.status, body: res.status === 200 ? await res.json() : await res.text() };
}

test('first deployment, update, rolled-back update, delete', async () => {
  const first = await deployService(ctx, input('run-1', img2, [2, 4]));
  expect(first.outcome).toBe('Deployed');
  expect(first.service).toMatchObject({ name: 'mult-svc', state: 'Healthy', image: img2.id, activeSlot: 'blue', target: 'local' });
  expect(first.smokeTest?.ok).toBe(true);
  expect(first.smokeTest?.latencyMs).toBeGreaterThan(0);
  const uri = first.service.scoringUri!;
  expect(await post(uri, [4])).toEqual({ status: 200, body: [8] });
  await expect(env.images.delete(img2.name, img2.version)).rejects.toMatchObject({ code: 'ImageInUse' });

  const second = await deployService(ctx, input('run-2', img3, [3, 6]));
  expect(second.outcome).toBe('Updated');
  expect(second.service).toMatchObject({ state: 'Healthy', image: img3.id, activeSlot: 'green', scoringUri: uri });
  expect(await post(uri, [4])).toEqual({ status: 200, body: [12] });
  expect(target.runningSlots('mult-svc')).toEqual(['green']);

  // A failing smoke test on update: rolled back, the old version keeps serving, no request fails.
  let stop = false;
  const statuses: number[] = [];
  const load = (async () => {
    while (!stop) statuses.push((await post(uri, [1])).status);
  })();
  const third = await deployService(ctx, input('run-3', img2, [999]));
  stop = true;
  await load;
  expect(third.outcome).toBe('RolledBack');
  expect(third.error?.code).toBe('SmokeTestFailed');
  expect(third.error?.message).toMatch(/differs from the expected \[999\]/);
  expect(third.error?.message).toMatch(/Last log lines of slot blue/);
  expect(third.service).toMatchObject({ state: 'Healthy', image: img3.id, activeSlot: 'green' });
  expect(third.service.lastError?.code).toBe('SmokeTestFailed');
  expect(statuses.length).toBeGreaterThan(0);
  expect(statuses.filter((s) => s !== 200)).toEqual([]);
  expect(await post(uri, [4])).toEqual({ status: 200, body: [12] });
  expect(target.runningSlots('mult-svc')).toEqual(['green']);

  // The old image is free again, the serving one is not.
  await expect(env.images.delete(img3.name, img3.version)).rejects.toMatchObject({ code: 'ImageInUse' });
  expect((await env.images.usersOf(img2.name, img2.version)).length).toBe(0);

  // Listings never carry keys.
  const listed = JSON.stringify(await ctx.services.list());
  const keys = await ctx.services.ensureKeys('mult-svc');
  expect(listed).not.toContain(keys.primaryKey);

  await deleteService(ctx, 'mult-svc');
  await expect(ctx.services.get('mult-svc')).rejects.toMatchObject({ code: 'ServiceNotFound', httpStatus: 404 });
  await expect(fetch(uri, { method: 'POST', body: '{}' })).rejects.toThrow();
  expect((await env.images.usersOf(img3.name, img3.version)).length).toBe(0);
});

test('a second deployment while one runs → 409 DeploymentInProgress; the same run may resume', async () => {
  await prepareDeployment(ctx, { ...input('run-A', img2, [2, 4]), serviceName: 'busy-svc' });
  await expect(deployService(ctx, { ...input('run-B', img2, [2, 4]), serviceName: 'busy-svc' })).rejects.toMatchObject({ code: 'DeploymentInProgress', httpStatus: 409 });
  const resumed = await deployService(ctx, { ...input('run-A', img2, [2, 4]), serviceName: 'busy-svc' });
  expect(resumed.outcome).toBe('Deployed');
  await deleteService(ctx, 'busy-svc');
});

test('init() that raises on a first deployment → Failed with the script error and log lines', async () => {
  const bad = await makeImage(env, {
    model: 'boom',
    files: { 'model.json': '{}' },
    image: 'boom',
    runtime: 'node',
    script: { path: 'score.js', content: "exports.init = () => { throw new Error('weights missing: model.bin'); };\nexports.run = (x) => x;\n" },
  });
  const r = await deployService(ctx, { ...input('run-boom', bad, [1]), serviceName: 'boom-svc' });
  expect(r.outcome).toBe('Failed');
  expect(r.service.state).toBe('Failed');
  expect(r.service.lastError?.code).toBe('InitFailed');
  expect(r.service.lastError?.message).toContain('weights missing: model.bin');
  expect(r.service.lastError?.message).toMatch(/Last log lines/);
  expect(target.runningSlots('boom-svc')).toEqual([]);
  await deleteService(ctx, 'boom-svc');
});

test('keys: auth-enabled service, get and regenerate keys', async () => {
  const r = await deployService(ctx, { ...input('run-k', img2, [2, 4]), serviceName: 'keyed-svc', config: deployConfigFor({ kind: 'aks', num_replicas: 1 } as never) });
  expect(r.outcome).toBe('Deployed');
  expect(r.service.authEnabled).toBe(true);
  const uri = r.service.scoringUri!;
  const keys = await ctx.services.getKeys('keyed-svc');
  expect((await post(uri, [1])).status).toBe(401);
  expect((await post(uri, [1], keys.primaryKey)).status).toBe(200);
  const next = await regenerateServiceKey(ctx, 'keyed-svc', 'Primary');
  expect(next.secondaryKey).toBe(keys.secondaryKey);
  expect(next.primaryKey).not.toBe(keys.primaryKey);
  expect((await post(uri, [1], keys.primaryKey)).status).toBe(401);
  expect((await post(uri, [1], next.primaryKey)).status).toBe(200);
  expect((await post(uri, [1], next.secondaryKey)).status).toBe(200);
  await expect(ctx.services.regenerateKey('keyed-svc', 'Tertiary' as never)).rejects.toMatchObject({ code: 'InvalidKeyType' });
  await deleteService(ctx, 'keyed-svc');
  await expect(ctx.services.getKeys('keyed-svc')).rejects.toMatchObject({ code: 'ServiceNotFound' });
});

test('getAppServices wires the configured pieces once per process', async () => {
  const { getAppServices, shutdownAppServices } = await import('../../../shared/services/app');
  const { loadConfig } = await import('../../../shared/config');
  const config = loadConfig({ AzureWebJobsStorage: env.azurite.connectionString, LOCAL_WORK_DIR: env.workDir });
  const app = getAppServices(config);
  expect(getAppServices(config)).toBe(app);
  expect(app.builder.kind).toBe('local');
  expect(app.target('local')).toBe(app.target('local'));
  expect(() => app.target('aci')).toThrow(expect.objectContaining({ code: 'TargetUnavailable' }));
  expect(app.events.kind).toBe('log');
  expect((await app.models.list()).length).toBeGreaterThan(0);
  await shutdownAppServices();
});

test('restoreLocalServices restarts Healthy local services on their previous public port', async () => {
  const { restoreLocalServices } = await import('../../../shared/deploy/restore');
  const r = await deployService(ctx, { ...input('run-r', img2, [2, 4]), serviceName: 'restore-svc' });
  const uri = r.service.scoringUri!;
  await target.stopAll(); // what a host restart leaves: records, no processes
  await expect(fetch(uri, { method: 'POST', body: '{}' })).rejects.toThrow();
  const result = await restoreLocalServices(ctx);
  expect(result).toEqual({ restored: ['restore-svc'], failed: [] });
  expect(await post(uri, [5])).toEqual({ status: 200, body: [10] });
  expect((await restoreLocalServices(ctx)).restored).toEqual([]); // already running
  await deleteService(ctx, 'restore-svc');
});

test('retiring the previous slot fails → the update still counts; a stray rollback never removes the serving slot', async () => {
  const name = 'retire-svc';
  const first = await deployService(ctx, { ...input('run-ret-1', img2, [2, 4]), serviceName: name });
  expect(first.service.activeSlot).toBe('blue');
  const flaky: DeployContext = {
    ...ctx,
    target: Object.assign(Object.create(target) as LocalDeployTarget, {
      deleteSlot: async () => {
        throw new Error('the target refused to stop the slot');
      },
    }),
  };
  const upd = await deployService(flaky, { ...input('run-ret-2', img3, [3, 6]), serviceName: name });
  expect(upd.outcome).toBe('Updated');
  expect(upd.service).toMatchObject({ state: 'Healthy', image: img3.id, activeSlot: 'green' });
  expect(await post(upd.service.scoringUri!, [2])).toEqual({ status: 200, body: [6] });

  // The orchestrator's catch after a completed promotion: rollback of the serving slot must leave it alone.
  const rb = await rollbackStep(ctx, { ...input('run-ret-2', img3, [3, 6]), serviceName: name }, 'green', { code: 'RunFailed', message: 'late failure' });
  expect(rb.rolledBack).toBe(false);
  expect(target.runningSlots(name)).toContain('green');
  expect(await ctx.services.get(name)).toMatchObject({ state: 'Healthy', activeSlot: 'green', image: img3.id });
  expect(await post(upd.service.scoringUri!, [2])).toEqual({ status: 200, body: [6] });
  await deleteService(ctx, name);
});

test('a service being deleted blocks deployments (409 ServiceDeleting); deploy steps never recreate a deleted service’s keys', async () => {
  const name = 'deleting-svc';
  const first = await deployService(ctx, { ...input('run-del-1', img2, [2, 4]), serviceName: name });
  expect(first.outcome).toBe('Deployed');
  await ctx.services.beginDelete(name);
  await expect(prepareDeployment(ctx, { ...input('run-del-2', img3, [3, 6]), serviceName: name })).rejects.toMatchObject({ code: 'ServiceDeleting', httpStatus: 409 });
  await deleteService(ctx, name);

  // A run that still believes it deploys the (now force-deleted) service: it is told so (ServiceDeleted), starts
  // no slot, and no keys appear for that name.
  const auth = { ...input('run-del-3', img2, [2, 4]), serviceName: name, config: deployConfigFor({ kind: 'local', auth_enabled: true }) };
  await expect(deploySlotStep(ctx, auth, 'blue')).resolves.toMatchObject({ state: 'Failed', error: { code: 'ServiceDeleted' } });
  await expect(smokeTestStep(ctx, auth, { serviceName: name, slot: 'blue', scoringUri: 'http://127.0.0.1:1/score', swaggerUri: '', healthUri: 'http://127.0.0.1:1/', state: 'Healthy' })).resolves.toMatchObject({ ok: false, code: 'ServiceDeleted' });
  await expect(promoteStep(ctx, auth, 'blue')).rejects.toMatchObject({ code: 'ServiceDeleted' });
  const rb = await rollbackStep(ctx, auth, 'blue', { code: 'ServiceDeleted', message: 'deleted meanwhile' });
  expect(rb).toEqual({ service: undefined, rolledBack: false, error: { code: 'ServiceDeleted', message: 'deleted meanwhile' } });
  expect(target.runningSlots(name)).toEqual([]);
  const keysTable = env.storage.table(TABLES.serviceKeys);
  await expect(keysTable.getEntity('keys', name)).rejects.toMatchObject({ statusCode: 404 });
});

test('restore after a restart: serves the active slot while an update holds the service, keeps the held slot, stops what nothing refers to; the run then resumes on the new host', async () => {
  const { restoreLocalServices } = await import('../../../shared/deploy/restore');
  const fs = await import('fs');
  const path = await import('path');
  const procs = (svc: string, slot: string) => slotRuntimes(env.workDir, svc, slot);
  const name = 'held-svc';
  await deployService(ctx, { ...input('run-held-1', img2, [2, 4]), serviceName: name });
  const upd = { ...input('run-held-2', img3, [3, 6]), serviceName: name };
  const begin = await prepareDeployment(ctx, upd);
  expect(begin.slot).toBe('green');
  expect((await deploySlotStep(ctx, upd, 'green')).state).toBe('Healthy');
  // Processes nothing refers to: a slot of the service no record names, a service with no record.
  const stray = { serviceName: name, slot: 'orange', image: { name: img2.name, version: img2.version, imageRef: img2.imageRef!, runtime: img2.runtime, contextBlob: img2.contextBlob }, config: deployConfigFor({ kind: 'local' }) };
  expect((await target.deploySlot(stray)).state).toBe('Healthy');
  expect((await target.deploySlot({ ...stray, serviceName: 'gone-svc', slot: 'blue' })).state).toBe('Healthy');
  const blue = procs(name, 'blue');
  const green = procs(name, 'green');
  expect(blue).toHaveLength(1);
  expect(procs(name, 'orange')).toHaveLength(1);
  expect((await ctx.services.get(name)).state).toBe('Transitioning');

  // The restarted host (a new target on the same work dir; the processes kept running).
  const fresh = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  const freshCtx = { ...ctx, target: fresh };
  const r = await restoreLocalServices(freshCtx);
  expect(r.failed.filter((f) => f.name === name || f.name === 'gone-svc')).toEqual([]);
  expect(r.restored).toContain(name);
  expect(procs(name, 'blue')).toEqual(blue); // adopted, not started again
  expect(procs(name, 'green')).toEqual(green); // held by the run: kept for it
  expect(procs(name, 'orange')).toEqual([]);
  expect(procs('gone-svc', 'blue')).toEqual([]);
  expect(fs.existsSync(path.join(env.workDir, 'services', 'gone-svc'))).toBe(false);
  const rec = await ctx.services.get(name);
  expect(await post(rec.scoringUri!, [1])).toEqual({ status: 200, body: [2] }); // the serving version, while Transitioning

  // The run resumes on the new host: smoke test and promotion reach the slot the old host started.
  const smoke = await smokeTestStep(freshCtx, upd, { serviceName: name, slot: 'green', scoringUri: 'http://127.0.0.1:9/score', swaggerUri: '', healthUri: 'http://127.0.0.1:9/', state: 'Healthy' });
  expect(smoke.ok).toBe(true);
  const done = await promoteStep(freshCtx, upd, 'green');
  expect(done).toMatchObject({ state: 'Healthy', activeSlot: 'green', scoringUri: rec.scoringUri });
  expect(await post(rec.scoringUri!, [1])).toEqual({ status: 200, body: [3] });
  expect(procs(name, 'green')).toEqual(green);
  await deleteService(freshCtx, name);
  expect(procs(name, 'green')).toEqual([]);
  expect(procs(name, 'blue')).toEqual([]);
  await fresh.stopAll();
});

test('restore with a slot record of the previous format (an upgrade): the slot starts again from the service record’s image', async () => {
  const { restoreLocalServices } = await import('../../../shared/deploy/restore');
  const path = await import('path');
  const fs = await import('fs');
  const name = 'legacy-svc';
  const r = await deployService(ctx, { ...input('run-legacy', img3, [3, 6]), serviceName: name });
  const uri = r.service.scoringUri!;
  await target.stopAll();
  fs.writeFileSync(path.join(env.workDir, 'services', name, 'blue', 'slot.json'), JSON.stringify({ hostPid: 1, pids: [] }));
  const fresh = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  const result = await restoreLocalServices({ ...ctx, target: fresh });
  expect(result.failed.filter((f) => f.name === name)).toEqual([]);
  expect(result.restored).toContain(name);
  expect(await post(uri, [2])).toEqual({ status: 200, body: [6] });
  expect(JSON.parse(fs.readFileSync(path.join(env.workDir, 'services', name, 'blue', 'slot.json'), 'utf8'))).toMatchObject({ version: 2, state: 'ready', image: { version: img3.version } });
  await deleteService({ ...ctx, target: fresh }, name);
  await fresh.stopAll();
});

test('a serving pool an in-place run resized: kept while the run holds the slot (restore), put back to the record’s size at takeover and by the restore once nothing holds it', async () => {
  const { restoreLocalServices } = await import('../../../shared/deploy/restore');
  const { releaseStaleDeployment } = await import('../../../shared/deploy/steps');
  const fs = await import('fs');
  const path = await import('path');
  const name = 'pool-svc';
  const first = await deployService(ctx, { ...input('run-pool-1', img2, [2, 4]), serviceName: name });
  const slot = first.service.activeSlot!;
  const procs = () => slotRuntimes(env.workDir, name, slot);
  /** Polls until the slot runs `n` runtimes (a replica leaving the pool stops once idle). Bounded. */
  const untilProcs = async (n: number) => {
    for (let i = 0; i < 150 && procs().length !== n; i++) await new Promise((r) => setTimeout(r, 200));
    return procs();
  };
  const slotConfig = () => JSON.parse(fs.readFileSync(path.join(env.workDir, 'services', name, slot, 'slot.json'), 'utf8')).config;
  expect(procs()).toHaveLength(1);
  const grown = { ...first.service.config, numReplicas: 3, autoscaleEnabled: false };

  // An in-place run holds the serving slot and has resized it (its inPlace step); then the host stops.
  const upd = { ...input('run-pool-2', img2, [2, 4]), serviceName: name, config: grown, inPlace: true };
  await prepareDeployment(ctx, upd);
  expect((await target.resizeSlot(name, slot, grown)).state).toBe('Healthy');
  expect(await untilProcs(3)).toHaveLength(3);
  await target.stopAll();
  const second = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  const secondCtx = { ...ctx, target: second };
  expect((await restoreLocalServices(secondCtx)).restored).toContain(name);
  expect(await untilProcs(3)).toHaveLength(3); // the run may resume and promote that size
  expect(slotConfig().numReplicas).toBe(3);

  // The run never comes back: the request taking the service over releases its hold; the pool follows the record.
  await releaseStaleDeployment(secondCtx, name, 'run-pool-2', { code: 'DeploymentAbandoned', message: 'gone' });
  // The resize back runs in the background (the takeover does not wait for it): its replicas stop, then its slot
  // record is saved. Bounded wait for both.
  expect(await untilProcs(1)).toHaveLength(1);
  for (let i = 0; i < 150 && slotConfig().numReplicas !== 1; i++) await new Promise((r) => setTimeout(r, 200));
  expect(slotConfig().numReplicas).toBe(1);
  const rec = await ctx.services.get(name);
  expect(rec).toMatchObject({ config: { numReplicas: 1 }, lastError: { code: 'DeploymentAbandoned' } });
  expect(rec.currentDeployment).toBeUndefined();

  // A slot left another size with no run holding it (the host stopped before the takeover's resize): the restore
  // starts it with the record's size.
  expect((await second.resizeSlot(name, slot, grown)).state).toBe('Healthy');
  expect(await untilProcs(3)).toHaveLength(3);
  await second.stopAll();
  const third = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  expect((await restoreLocalServices({ ...ctx, target: third })).restored).toContain(name);
  expect(await untilProcs(1)).toHaveLength(1);
  expect(slotConfig().numReplicas).toBe(1);
  expect(await post((await ctx.services.get(name)).scoringUri!, [4])).toEqual({ status: 200, body: [8] });
  await deleteService({ ...ctx, target: third }, name);
  await third.stopAll();
});
