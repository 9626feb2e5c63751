/**
 * The real `deployModel` + `rolloutTraffic` orchestrators on the local durable engine driving the ACI target's
 * progressive delivery: the rollout's activities (`rolloutSetWeights`, `rolloutReadTraffic`) and the deploy saga's
 * promotion, retirement and rollback call a real `AciTarget` against the ACI world of test/azure/aci-world.ts (ARM
 * in memory through nock, each slot's /metrics, a real front behind the front's address). Traffic is modelled at
 * each read: `perRead` requests split by the weights the real front holds, the new version failing a given share.
 * Asserted as a user sees it (`GET /api/runs/{id}`) and on the ACI side (ARM requests, the front's state).
 *
 * The shadow phase runs end to end on loopback (`LoopbackAciWorld`): blue and green are real runtime processes, the
 * front a real `front-cli.js` process started from the front group's PUT, ARM reporting their loopback addresses as
 * the groups' IP and FQDN; a client keeps load on the front while the orchestrators decide from the front's own
 * comparison and the runtimes' own /metrics.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import type { Answer, Scenario } from '../helpers/scenarios';
import { DEPLOY, type DeployRunInput, type RollbackInput, type RollbackOutput } from '../../shared/deploy/contract';
import { ROLLOUT, type SetWeightsInput } from '../../shared/rollout/contract';
import type { RolloutSpec } from '../../shared/rollout/spec';
import { runIdFor } from '../../shared/deploy/run-status';
import type { AciTarget } from '../../shared/azure/aci-target';
import { waitRun } from '../helpers/runs';
import { AciWorld, KEYS, LoopbackAciWorld } from '../azure/aci-world';
import { runtimesUnder } from '../helpers/replicas';
import { nock, setupNock } from '../azure/helpers';
import { rolloutRunActivities } from '../helpers/rollout-runs';

const scenarios = new Map<string, Scenario>();
const overrides = rolloutRunActivities(scenarios);

setupNock();
const w = new AciWorld();
let env: TestEnvironment;
let workDir: string;
beforeAll(async () => {
  // Azurite, the local host and the real front are on loopback; everything else answers through nock.
  nock.enableNetConnect(/127\.0\.0\.1/);
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-rollout-aci-'));
  env = await startTestEnvironment({ settings: { LOCAL_WORK_DIR: workDir }, pollIntervalMs: 100, activityOverrides: overrides });
}, 120_000);
afterAll(async () => {
  await env?.stop();
  w.dispose();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/** Live traffic between two reads: `perRead` requests split by the front's weights (its serving slot alone when none). */
function serve(perRead: number, greenFailure: number): void {
  const st = w.front!.state();
  const weights = Object.keys(st.weights).length ? st.weights : { [st.serving!]: 100 };
  for (const [slot, pct] of Object.entries(weights)) {
    const n = Math.round((perRead * pct) / 100);
    const c = w.counters[`diabetes-${slot}`];
    const failed = slot === 'green' ? Math.round(n * greenFailure) : 0;
    c.ok += n - failed;
    c.failed += failed;
  }
}

/** The activities: the deploy steps answered, the ACI ones (promotion, retirement, rollback, weights, reads) by the real target; `beforeRead` runs before each read. */
function answers(target: AciTarget, beforeRead: () => void | Promise<void>, weightsSet: Array<Record<string, number>>): Record<string, Answer> {
  return {
    [DEPLOY.registerModel.name]: () => ({ ok: true, created: true, model: { id: 'm:2', name: 'm', version: 2, files: 1, bytes: 10 } }),
    [DEPLOY.createImage.name]: () => ({ ok: true, image: { id: 'img:4', name: 'diabetesimage', version: 4, state: 'Succeeded', runtime: 'python', models: ['m:2'], imageRef: 'mdfregistry.azurecr.io/diabetesimage:4', contextBlob: 'images/diabetesimage/4.tar.gz' } }),
    [DEPLOY.prepareDeployment.name]: () => ({ ok: true, slot: 'green', previousSlot: 'blue', previousImage: 'diabetesimage:3', isUpdate: true }),
    [DEPLOY.deploySlot.name]: () => ({ serviceName: 'diabetes', slot: 'green', state: 'Healthy', scoringUri: 'http://diabetes-green-own.westeurope.azurecontainer.io:5001/score', swaggerUri: '', healthUri: '' }),
    [DEPLOY.smokeTest.name]: () => ({ ok: true, checks: [], latencyMs: 3, swagger: 'absent' }),
    [DEPLOY.promote.name]: async () => {
      const uris = await target.switchTraffic('diabetes', 'green', KEYS);
      return { name: 'diabetes', state: 'Healthy', image: 'diabetesimage:4', scoringUri: uris.scoringUri, swaggerUri: uris.swaggerUri };
    },
    [DEPLOY.retirePrevious.name]: async () => (await target.deleteSlot('diabetes', 'blue'), { notes: [] }),
    [DEPLOY.rollback.name]: async (i: RollbackInput): Promise<RollbackOutput> => {
      await target.switchTraffic('diabetes', 'blue');
      await target.deleteSlot('diabetes', i.slot);
      return { rolledBack: true, state: 'Healthy', error: i.reason };
    },
    [DEPLOY.publishEvent.name]: (e: { type: string }) => `event-${e.type}`,
    [ROLLOUT.setWeights.name]: (i: SetWeightsInput) => (weightsSet.push(i.weights), target.setTrafficWeights(i.serviceName, i.weights, i.mirror ? { mirror: i.mirror } : {})),
    [ROLLOUT.readTraffic.name]: async () => (await beforeRead(), target.trafficSnapshot('diabetes')),
    [ROLLOUT.renewLease.name]: () => ({ held: true }),
  };
}

const spec = (s: Partial<Omit<RolloutSpec, 'gates'>> & { gates?: Partial<RolloutSpec['gates']> }): RolloutSpec => ({
  strategy: 'canary',
  steps: [10, 50, 100],
  bakeSeconds: 1,
  ...s,
  gates: { minRequests: 10, maxWaitSeconds: 1, onInsufficientTraffic: 'rollback', tolerance: 1e-6, ...s.gates },
});

let seq = 0;
async function start(rollout: RolloutSpec, perRead: number, greenFailure = 0): Promise<{ runId: string; scenario: Scenario; weightsSet: Array<Record<string, number>> }> {
  return startWith(w.setup(), rollout, () => serve(perRead, greenFailure));
}

async function startWith(target: AciTarget, rollout: RolloutSpec, beforeRead: () => void | Promise<void>): Promise<{ runId: string; scenario: Scenario; weightsSet: Array<Record<string, number>> }> {
  const weightsSet: Array<Record<string, number>> = [];
  const input: unknown = {
    source: { kind: 'http', eventId: `aci-${++seq}` },
    model: { name: 'm', files: [{ path: 'model.json' }], tags: {}, properties: {} },
    files: { model: [{ path: 'model.json', blob: 'staging/m/model.json' }] },
    manifest: { service: { name: 'diabetes', tags: {} }, image: { name: 'diabetesimage' }, target: 'aci', deployConfig: { authEnabled: true }, rollout },
  };
  const runId = runIdFor('http', `rollout-aci-test|${seq}|${Date.now()}`);
  const scenario: Scenario = { answers: answers(target, beforeRead, weightsSet), calls: [] };
  scenarios.set(runId, scenario);
  await env.startOrchestration(DEPLOY.run.name, input as DeployRunInput, runId);
  return { runId, scenario, weightsSet };
}

describe('ACI progressive delivery driven by the orchestrators', () => {
afterEach(() => w.reset());

test('ACI canary 10 → 50 → 100 with a healthy new version: the front is created once, each step sets its weights, gates read /metrics, promotion switches the front, the old slot is retired', async () => {
  const { runId, weightsSet } = await start(spec({ gates: { maxErrorRate: 0.01 } }), 200);
  const run = await waitRun(env, runId, 90_000);
  expect(run.state).toBe('Succeeded');
  const ro = run.result.rollout;
  expect(ro).toMatchObject({ promoted: true, decision: 'promote' });
  expect(ro.completed.map((c: any) => [c.weight, c.outcome, c.candidate.requests, c.candidate.errors])).toEqual([
    [10, 'passed', 20, 0],
    [50, 'passed', 100, 0],
    [100, 'passed', 200, 0],
  ]);
  expect(weightsSet).toEqual([
    { blue: 90, green: 10 },
    { blue: 50, green: 50 },
    { blue: 0, green: 100 },
  ]);
  // ACI: the front created once (the stable name moved to it), no other ARM write until the promotion's tags and the retirement.
  expect(w.arm.log.filter((l) => !l.startsWith('LIST'))).toEqual(['PUT diabetes-blue', 'PUT diabetes-front', expect.stringMatching(/^PATCH diabetes-green /), expect.stringMatching(/^PATCH diabetes-blue /), 'DELETE diabetes-blue']);
  expect(w.front!.state()).toMatchObject({ serving: 'green', weights: {} });
  expect(Object.keys(w.front!.state().slots)).toEqual(['green']);
}, 120_000);

test('ACI: a new version failing 5 % of requests is rolled back at the first gate: the front back on blue alone, the green group deleted', async () => {
  const { runId, weightsSet } = await start(spec({ gates: { maxErrorRate: 0.01 } }), 200, 0.05);
  const run = await waitRun(env, runId, 90_000);
  expect(run.state).toBe('RolledBack');
  expect(run.error.code).toBe('RolloutGateFailed');
  expect(run.error.message).toMatch(/failed its gates at 10 %: max_error_rate 0\.05 > 0\.01/);
  expect(weightsSet).toEqual([
    { blue: 90, green: 10 },
    { blue: 100, green: 0 },
  ]);
  expect(run.result.rollout.completed[0]).toMatchObject({ weight: 10, outcome: 'failed', candidate: { requests: 20, errors: 1 } });
  expect(w.front!.state()).toMatchObject({ serving: 'blue', weights: {} });
  expect(Object.keys(w.front!.state().slots)).toEqual(['blue']);
  expect(w.arm.groups.has('diabetes-green')).toBe(false);
  expect(w.arm.groups.get('diabetes-blue')!.tags['mdf-active']).toBe('true');
}, 120_000);
});

/**
 * A client keeping load on the service: `connections` loops each posting `{data: [x]}` (x = 0, 1, 2, …) with the
 * service key to the front as soon as it exists, every answer kept. Bounded in count and time.
 */
function keepLoad(url: () => string | undefined, connections = 2, maxRequests = 50_000, maxMs = 240_000) {
  const seen = { failed: [] as string[], answers: [] as Array<{ x: number; body: any }> };
  let stopped = false;
  let next = 0;
  const deadline = Date.now() + maxMs;
  const loop = async () => {
    while (!stopped && Date.now() < deadline && next < maxRequests) {
      const base = url();
      if (!base) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const x = next++;
      try {
        const r = await fetch(`${base}/score`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS.primaryKey}` }, body: JSON.stringify({ data: [x] }) });
        const text = await r.text();
        if (r.status === 200) seen.answers.push({ x, body: JSON.parse(text) });
        else seen.failed.push(`${x}: ${r.status} ${text.slice(0, 200)}`);
      } catch (e) {
        seen.failed.push(`${x}: ${(e as Error).message}`);
      }
    }
  };
  const done = Promise.all(Array.from({ length: connections }, loop));
  let paced = 0;
  return {
    seen,
    stop: async () => ((stopped = true), await done, seen),
    /**
     * Before each read of the figures: waits (at most 60 s) until the client got `n` more answers since the last
     * read, so each window holds live traffic however slow the machine is (the durable bake only sets the earliest read).
     */
    pace: (n: number) => async () => {
      const until = Date.now() + 60_000;
      while (seen.answers.length < paced + n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      paced = seen.answers.length;
    },
  };
}

/**
 * The ACI world on loopback: blue and green are real runtime processes, the front a real front-cli process started
 * from the front group's PUT; ARM (nock) reports their loopback addresses. The gates read the runtimes' own /metrics
 * and the front's own shadow comparison; a client keeps load on the front from its creation to the run's end.
 */
describe('ACI shadow phase end to end: real front and runtimes on loopback, ARM mocked', () => {
  let dir: string;
  let lw: LoopbackAciWorld;
  const scripts: Record<string, string> = {};
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-aci-loopback-'));
    const write = (name: string, body: string) => (fs.writeFileSync((scripts[name] = path.join(dir, `${name}.js`)), body), undefined);
    write('blue', 'exports.init = () => {}; exports.run = (i) => ({ result: i.data.map((x) => x * 3) });\n');
    // Disagrees on 30 % of inputs (x·19 mod 100 < 30 covers 30 of every 100 consecutive x, and of every 50 even or odd ones).
    write('green-disagrees', 'exports.init = () => {}; exports.run = (i) => ({ result: i.data.map((x) => ((x * 19) % 100 < 30 ? -1 : x * 3)) });\n');
    write('green-agrees', 'exports.init = () => {}; exports.run = (i) => ({ result: i.data.map((x) => x + x + x) });\n');
  });
  beforeEach(() => {
    lw = new LoopbackAciWorld(fs.mkdtempSync(path.join(dir, 'world-')));
  });
  afterEach(async () => {
    await lw.reset();
    expect(runtimesUnder(lw.dir)).toEqual([]);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const blueAnswered = (a: { x: number; body: any }) => a.body.result.length === 1 && a.body.result[0] === a.x * 3;

  test('shadow: a new version disagreeing on ~30 % of inputs is stopped by max_disagreement and rolled back; the client, loading the front all along, never sees its answers', async () => {
    const target = await lw.setup({ blue: scripts.blue, green: scripts['green-disagrees'] });
    const client = keepLoad(() => lw.frontUrl());
    const { runId, weightsSet } = await startWith(target, spec({ mirrorPercent: 50, gates: { maxDisagreement: 0.05, minRequests: 30, maxWaitSeconds: 60 } }), client.pace(100));
    const run = await waitRun(env, runId, 180_000).finally(() => client.stop());
    const seen = await client.stop();

    expect(run.state).toBe('RolledBack');
    expect(run.error.code).toBe('RolloutGateFailed');
    expect(run.error.message).toMatch(/failed its gates at the shadow phase \(50 % mirrored\): max_disagreement 0\.\d+ > 0\.05/);
    const shadowStep = run.result.rollout.completed[0];
    expect(shadowStep).toMatchObject({ phase: 'shadow', weight: 0, mirrorPercent: 50, outcome: 'failed' });
    // The front's own comparison of real answers (about half of the 100+ requests copied): about 30 % disagreed.
    expect(shadowStep.shadow.compared).toBeGreaterThanOrEqual(30);
    expect(shadowStep.shadow.disagreement).toBeGreaterThan(0.15);
    expect(shadowStep.shadow.disagreement).toBeLessThan(0.45);
    // No live traffic ever went to green: the shadow phase, then back to blue.
    expect(weightsSet).toEqual([
      { blue: 100, green: 0 },
      { blue: 100, green: 0 },
    ]);
    // The client: no failed request, every answer blue's (green's -1 never reached it), though green answered copies.
    expect(seen.failed).toEqual([]);
    expect(seen.answers.length).toBeGreaterThanOrEqual(100);
    expect(seen.answers.filter((a) => !blueAnswered(a))).toEqual([]);
    // ACI: the front created once and back on blue alone, the green group deleted and its runtime gone.
    expect(lw.arm.log.filter((l) => !l.startsWith('LIST'))).toEqual(['PUT diabetes-blue', 'PUT diabetes-front', 'DELETE diabetes-green']);
    expect(lw.arm.groups.has('diabetes-green')).toBe(false);
    expect(runtimesUnder(path.join(lw.dir, 'diabetes-green'))).toEqual([]);
    expect(runtimesUnder(path.join(lw.dir, 'diabetes-blue')).length).toBeGreaterThan(0);
    const after = await target.trafficSnapshot('diabetes');
    expect(after).toMatchObject({ serving: 'blue', weights: {} });
    expect(after.mirror).toBeUndefined();
  }, 240_000);

  test('shadow: a new version that agrees passes the shadow phase, then canary 10 → 50 → 100 on real traffic and promotion; the client never fails', async () => {
    const target = await lw.setup({ blue: scripts.blue, green: scripts['green-agrees'] });
    const rollout = spec({ mirrorPercent: 50, gates: { maxDisagreement: 0.05, maxErrorRate: 0.01, minRequests: 10, maxWaitSeconds: 60 } });
    const client = keepLoad(() => lw.frontUrl());
    const { runId, weightsSet } = await startWith(target, rollout, client.pace(100));
    const run = await waitRun(env, runId, 180_000).finally(() => client.stop());
    const seen = await client.stop();

    expect(run.state).toBe('Succeeded');
    const ro = run.result.rollout;
    expect(ro).toMatchObject({ promoted: true, decision: 'promote' });
    expect(ro.completed.map((c: any) => [c.phase, c.weight, c.outcome])).toEqual([
      ['shadow', 0, 'passed'],
      ['step', 10, 'passed'],
      ['step', 50, 'passed'],
      ['step', 100, 'passed'],
    ]);
    expect(ro.completed[0].shadow).toMatchObject({ disagreed: 0, errors: 0 });
    expect(ro.completed[0].shadow.compared).toBeGreaterThanOrEqual(10);
    // Each step's live share, from the runtimes' own /metrics, is its weight (± 0.06: requests in flight at the reads).
    for (const c of ro.completed.slice(1, 3)) {
      expect(c.candidate.requests).toBeGreaterThanOrEqual(10);
      expect(Math.abs(c.candidate.requests / (c.candidate.requests + c.serving.requests) - c.weight / 100)).toBeLessThanOrEqual(0.06);
    }
    expect(weightsSet).toEqual([
      { blue: 100, green: 0 },
      { blue: 90, green: 10 },
      { blue: 50, green: 50 },
      { blue: 0, green: 100 },
    ]);
    expect(seen.failed).toEqual([]);
    expect(seen.answers.length).toBeGreaterThanOrEqual(400);
    expect(seen.answers.filter((a) => !blueAnswered(a))).toEqual([]);
    // ACI: promoted through the front (no restart of anything), the blue group retired and its runtime gone.
    expect(lw.arm.log.filter((l) => !l.startsWith('LIST'))).toEqual(['PUT diabetes-blue', 'PUT diabetes-front', expect.stringMatching(/^PATCH diabetes-green /), expect.stringMatching(/^PATCH diabetes-blue /), 'DELETE diabetes-blue']);
    expect(runtimesUnder(path.join(lw.dir, 'diabetes-blue'))).toEqual([]);
    expect(await target.trafficSnapshot('diabetes')).toMatchObject({ serving: 'green', weights: {} });
    const r = await fetch(`${lw.frontUrl()}/score`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS.primaryKey}` }, body: JSON.stringify({ data: [4] }) });
    expect(await r.json()).toEqual({ result: [12] });
  }, 240_000);
});
