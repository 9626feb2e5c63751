/**
 * kill -9 of the host (a child process running the real app) in the middle of deployments and updates on the
 * local target (and, in the randomised loop, batch runs alongside them), then a new host on the same storage and
 * work dir: every run ends as it would have without the kill, the serving version keeps serving (it answers again
 * after the restart, on the same URI), the replicas a killed host left running are adopted (never a second copy),
 * a batch run's output has every row once, in order, and no process outlives its slot or pool record.
 * MDF_CRASH_ROUNDS (default 6, at most 20) and MDF_CRASH_SEED pick other rounds; MDF_TEST_TIMINGS=1 prints each
 * round's time to serve again after the restart and a summary (figures in docs/benchmarks.md, "Crash loop").
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ChildProcess } from 'child_process';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { kill9, startHostProcess } from '../../local/testing';
import { terminateGroups } from '../../shared/processes';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { faultsJob, isAlive, killPools, poolDirs, poolPids, prepareFixture, readText, uploadJsonl } from './batch-helpers';
import { runtimesUnder, slotRuntimes } from '../helpers/replicas';

/** factor × x for each x; `delay_ms` in the body makes the call slow (a window to kill the host in the smoke test). */
const SCRIPT = `
const fs = require('fs');
const path = require('path');
let factor;
exports.init = () => {
  factor = JSON.parse(fs.readFileSync(path.join(process.env.AZUREML_MODEL_DIR, 'model.json'), 'utf8')).factor;
};
exports.run = async (input) => {
  if (input.delay_ms) await new Promise((r) => setTimeout(r, input.delay_ms));
  return input.data.map((x) => x * factor);
};
`;

let azurite: AzuriteInstance;
let storage: StorageClients;
let workDir: string;
let host: { url: string; proc: ChildProcess } | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil<T>(fn: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function startHost(): Promise<void> {
  host = await startHostProcess({
    connectionString: azurite.connectionString,
    env: { LOCAL_WORK_DIR: workDir, SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' },
    pollMs: 100,
  });
}

async function restartHost(): Promise<void> {
  await kill9(host!.proc);
  await startHost();
}

/** Every runtime process serving from somewhere under the work dir. */
const allReplicas = () => runtimesUnder(workDir);

beforeAll(async () => {
  azurite = await startAzurite();
  storage = storageFromConnectionString(azurite.connectionString);
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-deploy-crash-'));
  await prepareFixture(azurite.connectionString); // the batch runs' model and entry scripts
  await startHost();
}, 60_000);

afterAll(async () => {
  if (host) await kill9(host.proc);
  if (workDir) await terminateGroups(allReplicas(), 0);
  if (workDir) killPools(workDir);
  await azurite?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

async function api(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${host!.url}${urlPath}`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* text */
  }
  return { status: res.status, body: parsed };
}

/** Starts a deployment of `service` whose model multiplies by `factor`; its smoke test takes `delayMs`. */
async function submit(service: string, factor: number, delayMs: number, expected: number[] = [factor, 2 * factor]): Promise<string> {
  const folder = `${service}-${factor}-${expected.join('_')}`;
  const c = await storage.ensureContainer('staging');
  await c.getBlockBlobClient(`${folder}/model.json`).uploadData(Buffer.from(JSON.stringify({ factor })));
  await c.getBlockBlobClient(`${folder}/score.js`).uploadData(Buffer.from(SCRIPT));
  const manifest = {
    model: { name: `${service}-model`, files: ['model.json'] },
    image: { name: `${service}-image`, runtime: 'node', entry_script: 'score.js' },
    target: { kind: 'local', num_replicas: 1 },
    service: { name: service },
    smoke_test: { sample: { data: [1, 2], delay_ms: delayMs }, expected_output: expected },
  };
  const r = await api('POST', `/api/deployments?folder=staging/${folder}`, manifest);
  expect(r.status).toBe(202);
  return r.body.runId as string;
}

async function run(runId: string): Promise<any> {
  const r = await api('GET', `/api/runs/${runId}`);
  return r.status === 200 ? r.body : undefined;
}

async function waitStep(runId: string, step: string): Promise<void> {
  await waitUntil(async () => {
    const v = await run(runId);
    if (v && !['Running', 'Pending'].includes(v.state)) throw new Error(`run ${runId} ended (${v.state}) before step ${step}: ${JSON.stringify(v.error)}`);
    return v?.steps?.some((s: any) => s.name === step && s.state === 'Running');
  }, 120_000, `step ${step} of ${runId}`);
}

async function waitRun(runId: string): Promise<any> {
  return waitUntil(async () => {
    const v = await run(runId);
    return v && !['Running', 'Pending'].includes(v.state) ? v : undefined;
  }, 180_000, `run ${runId} to end`);
}

/** POST {data:[1]} to a scoring URI: the factor of the version that answers, or the HTTP status when not 200. */
async function scoreOnce(uri: string): Promise<{ status: number; factor?: number }> {
  const res = await fetch(uri, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [1] }), signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) {
    await res.arrayBuffer();
    return { status: res.status };
  }
  return { status: 200, factor: ((await res.json()) as number[])[0] };
}

/** The first answer of the URI (bounded wait: the restore runs in the background of the new host). */
async function firstAnswer(uri: string): Promise<number> {
  const r = await waitUntil(async () => {
    const a = await scoreOnce(uri);
    return a.status === 200 ? a : undefined;
  }, 60_000, `${uri} to answer`);
  return r.factor!;
}

const slotProcesses = (service: string, slot: string) => slotRuntimes(workDir, service, slot);

/**
 * No process outlives its record, no second copy: for every slot folder, the runtimes serving from it are exactly
 * the record's replicas (one each here), and a slot without a record has none. Returns the slots with a record.
 */
function checkProcessesMatchRecords(): string[] {
  const withRecord: string[] = [];
  const services = path.join(workDir, 'services');
  for (const svc of fs.existsSync(services) ? fs.readdirSync(services) : []) {
    const dir = path.join(services, svc);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const slot of fs.readdirSync(dir)) {
      if (!fs.statSync(path.join(dir, slot)).isDirectory()) continue;
      const file = path.join(dir, slot, 'slot.json');
      const procs = slotProcesses(svc, slot);
      if (!fs.existsSync(file)) {
        expect({ slot: `${svc}/${slot}`, procs }).toEqual({ slot: `${svc}/${slot}`, procs: [] });
        continue;
      }
      const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as { replicas: Array<{ pid: number }> };
      expect({ slot: `${svc}/${slot}`, procs }).toEqual({ slot: `${svc}/${slot}`, procs: rec.replicas.map((r) => r.pid).sort((a, b) => a - b) });
      expect(procs).toHaveLength(1);
      withRecord.push(`${svc}/${slot}`);
    }
  }
  return withRecord.sort();
}

async function service(name: string): Promise<any> {
  return (await api('GET', `/api/services/${name}`)).body;
}

test('kill -9 during the smoke test of a first deployment: the run resumes with the same replica and ends Deployed', async () => {
  const runId = await submit('crash-a', 2, 3000);
  await waitStep(runId, 'smokeTest');
  await sleep(500);
  const before = slotProcesses('crash-a', 'blue');
  expect(before).toHaveLength(1);
  await restartHost();
  const done = await waitRun(runId);
  expect(done.error).toBeUndefined();
  expect(done).toMatchObject({ state: 'Succeeded', result: { outcome: 'Deployed', serviceName: 'crash-a' } });
  // The replica the killed host started was adopted: the same process, no second copy.
  expect(slotProcesses('crash-a', 'blue')).toEqual(before);
  expect(await scoreOnce(done.result.scoringUri)).toEqual({ status: 200, factor: 2 });
  expect(await service('crash-a')).toMatchObject({ state: 'Healthy', activeSlot: 'blue' });
  expect(checkProcessesMatchRecords()).toEqual(['crash-a/blue']);
}, 240_000);

test('kill -9 during an update whose smoke test fails: the old version serves again after the restart, the run ends RolledBack', async () => {
  const uri = (await service('crash-a')).scoringUri as string;
  const blue = slotProcesses('crash-a', 'blue');
  const runId = await submit('crash-a', 3, 3000, [99, 99]);
  await waitStep(runId, 'smokeTest');
  await sleep(500);
  expect(slotProcesses('crash-a', 'green')).toHaveLength(1);
  await restartHost();
  // The serving version answers on the same URI while the update resumes.
  expect(await firstAnswer(uri)).toBe(2);
  const done = await waitRun(runId);
  expect(done.state).toBe('RolledBack');
  expect(done.error.code).toBe('SmokeTestFailed');
  expect(done.error.message).not.toMatch(/did not answer GET/); // the smoke test reached the slot
  expect(await scoreOnce(uri)).toEqual({ status: 200, factor: 2 });
  const svc = await service('crash-a');
  expect(svc).toMatchObject({ state: 'Healthy', activeSlot: 'blue', scoringUri: uri });
  expect(svc.lastError.code).toBe('SmokeTestFailed');
  expect(slotProcesses('crash-a', 'blue')).toEqual(blue);
  expect(slotProcesses('crash-a', 'green')).toEqual([]);
  expect(checkProcessesMatchRecords()).toEqual(['crash-a/blue']);
}, 240_000);

test('kill -9 during an update: the old version answers after the restart, the run ends Updated, the old slot is gone', async () => {
  const uri = (await service('crash-a')).scoringUri as string;
  const runId = await submit('crash-a', 4, 3000);
  await waitStep(runId, 'smokeTest');
  await sleep(500);
  const green = slotProcesses('crash-a', 'green');
  expect(green).toHaveLength(1);
  await restartHost();
  // Whichever version answers first (the update may already have switched), the service answers on its URI.
  expect([2, 4]).toContain(await firstAnswer(uri));
  const done = await waitRun(runId);
  expect(done.error).toBeUndefined();
  expect(done).toMatchObject({ state: 'Succeeded', result: { outcome: 'Updated', scoringUri: uri } });
  expect(await scoreOnce(uri)).toEqual({ status: 200, factor: 4 });
  expect(await service('crash-a')).toMatchObject({ state: 'Healthy', activeSlot: 'green', scoringUri: uri });
  expect(slotProcesses('crash-a', 'green')).toEqual(green);
  expect(slotProcesses('crash-a', 'blue')).toEqual([]);
  expect(checkProcessesMatchRecords()).toEqual(['crash-a/green']);
}, 240_000);

test('kill -9 as soon as the smoke test passed (promote, retire): the run ends Updated, the new version serves', async () => {
  const uri = (await service('crash-a')).scoringUri as string;
  const runId = await submit('crash-a', 5, 0);
  await waitUntil(async () => {
    const v = await run(runId);
    if (v && !['Running', 'Pending'].includes(v.state)) return true; // too late: still a valid round
    return v?.steps?.some((s: any) => s.name === 'smokeTest' && s.state === 'Succeeded');
  }, 120_000, 'the smoke test to pass');
  const blue = slotProcesses('crash-a', 'blue');
  await restartHost();
  expect([4, 5]).toContain(await firstAnswer(uri));
  const done = await waitRun(runId);
  expect(done.error).toBeUndefined();
  expect(done).toMatchObject({ state: 'Succeeded', result: { outcome: 'Updated', scoringUri: uri } });
  expect(done.steps.map((s: any) => `${s.name}:${s.state}`)).toContain('promote:Succeeded');
  expect(await scoreOnce(uri)).toEqual({ status: 200, factor: 5 });
  expect(await service('crash-a')).toMatchObject({ state: 'Healthy', activeSlot: 'blue', scoringUri: uri });
  if (blue.length) expect(slotProcesses('crash-a', 'blue')).toEqual(blue);
  expect(slotProcesses('crash-a', 'green')).toEqual([]);
  expect(checkProcessesMatchRecords()).toEqual(['crash-a/blue']);
}, 240_000);

/** Starts a batch run over `rows` JSONL rows (two files) that lasts a few seconds; its output must list them in order. */
async function submitBatch(prefix: string, rows: number): Promise<string> {
  const all = Array.from({ length: rows }, (_, i) => ({ id: i, sleep_ms: 100 }));
  await uploadJsonl(storage, prefix, [all.slice(0, Math.ceil(rows / 2)), all.slice(Math.ceil(rows / 2))]);
  const r = await api('POST', '/api/batch-runs', faultsJob(prefix, { process_count_per_node: 2, error_threshold: 0 }));
  expect(r.status).toBe(202);
  return r.body.id as string;
}

async function waitBatch(id: string): Promise<any> {
  return waitUntil(async () => {
    const v = (await api('GET', `/api/batch-runs/${id}`)).body;
    return v && ['Succeeded', 'Failed', 'Terminated'].includes(v.state) ? v : undefined;
  }, 180_000, `batch run ${id} to end`);
}

test('kill -9 at random moments of mixed deployments, updates and batch runs (bounded): every run ends as without the kill', async () => {
  // A small deterministic PRNG: the same rounds on every run of the test (MDF_CRASH_SEED / MDF_CRASH_ROUNDS explore others).
  let seed = Number(process.env.MDF_CRASH_SEED ?? 5);
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const services = ['rnd-a', 'rnd-b'];
  const serving = new Map<string, { uri: string; factor: number }>();
  const rounds = Math.min(20, Number(process.env.MDF_CRASH_ROUNDS ?? 6));
  const outcomes: Record<string, number> = {};
  let maxServeMs = 0;
  let maxKillToServeMs = 0;
  let batches = 0;
  const started = Date.now();
  for (let round = 0; round < rounds && Date.now() - started < 90_000 * rounds; round++) {
    const name = services[Math.floor(random() * services.length)];
    const factor = 10 + round;
    const isUpdate = serving.has(name);
    // About every other round a batch run goes alongside the deployment (always in the second round).
    const withBatch = round === 1 || random() < 0.5;
    const batchRows = 12;
    const runId = await submit(name, factor, 1000);
    const batchId = withBatch ? await submitBatch(`rnd-${round}/`, batchRows) : undefined;
    await sleep(Math.floor(random() * 4000)); // a run takes about 3-5 s here
    const view = await run(runId);
    const at = view?.state === 'Running' ? (view.steps?.find((st: any) => st.state === 'Running')?.name ?? 'between steps') : `a ${view?.state ?? 'new'} run`;
    const batchAt = batchId ? ((await api('GET', `/api/batch-runs/${batchId}`)).body?.phase ?? 'not started') : undefined;
    const killed = Date.now();
    await restartHost();
    const t0 = Date.now();
    // Every service that served before the round serves again, on the same URI (its old or, if this round's
    // update already switched, its new version).
    for (const [svc, s] of serving) {
      const f = await firstAnswer(s.uri);
      expect(svc === name ? [s.factor, factor] : [s.factor]).toContain(f);
    }
    const serveMs = Date.now() - t0;
    if (serving.size) {
      maxServeMs = Math.max(maxServeMs, serveMs);
      maxKillToServeMs = Math.max(maxKillToServeMs, Date.now() - killed);
    }
    if (process.env.MDF_TEST_TIMINGS) process.stdout.write(`round ${round} (${name}, killed in ${at}${batchId ? `, batch in ${batchAt}` : ''}): serving again ${serving.size ? `${serveMs} ms` : '(nothing served yet)'} after the host was ready\n`);
    const done = await waitRun(runId);
    expect({ round, name, state: done.state, outcome: done.result?.outcome, error: done.error }).toEqual({
      round,
      name,
      state: 'Succeeded',
      outcome: isUpdate ? 'Updated' : 'Deployed',
      error: undefined,
    });
    outcomes[done.result.outcome] = (outcomes[done.result.outcome] ?? 0) + 1;
    if (isUpdate) expect(done.result.scoringUri).toBe(serving.get(name)!.uri);
    serving.set(name, { uri: done.result.scoringUri, factor });
    if (batchId) {
      // The batch run ends as without the kill: every row scored once, in order, no duplicates.
      const b = await waitBatch(batchId);
      expect({ round, state: b.state, items: b.counts?.items }).toEqual({ round, state: 'Succeeded', items: { total: batchRows, succeeded: batchRows, failed: 0, notRun: 0 } });
      expect((await readText(storage, b.output)).trim().split('\n')).toEqual(Array.from({ length: batchRows }, (_, i) => `row-${i}`));
      outcomes[`batch ${b.state}`] = (outcomes[`batch ${b.state}`] ?? 0) + 1;
      batches++;
      // Its pool (nodes survive the host) is torn down once it ended: no node outlives the pool record.
      const pids = poolPids(workDir);
      await waitUntil(async () => poolDirs(workDir).length === 0 && pids.every((p) => !isAlive(p)), 60_000, `round ${round}: the batch pool to be torn down`);
    }
    for (const [svc, s] of serving) {
      expect({ svc, answer: await scoreOnce(s.uri) }).toEqual({ svc, answer: { status: 200, factor: s.factor } });
      expect((await service(svc)).state).toBe('Healthy');
    }
    checkProcessesMatchRecords();
  }
  expect(batches).toBeGreaterThan(0);
  if (process.env.MDF_TEST_TIMINGS) process.stdout.write(`crash loop: ${rounds} rounds (seed ${process.env.MDF_CRASH_SEED ?? 5}) in ${Math.round((Date.now() - started) / 1000)} s; runs per outcome ${JSON.stringify(outcomes)}; max time to serve again after the restart ${maxServeMs} ms (${maxKillToServeMs} ms from the kill)\n`);
  // Deleting the services leaves no process behind.
  for (const svc of serving.keys()) expect((await api('DELETE', `/api/services/${svc}`)).status).toBe(200);
  expect([200, 404]).toContain((await api('DELETE', '/api/services/crash-a')).status); // absent when this test runs alone
  expect(allReplicas()).toEqual([]);
}, 120_000 + 120_000 * Math.min(20, Number(process.env.MDF_CRASH_ROUNDS ?? 6)));
