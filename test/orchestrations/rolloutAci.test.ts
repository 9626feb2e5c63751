/**
 * The real `deployModel` + `rolloutTraffic` orchestrators on the local durable engine driving the ACI target's
 * progressive delivery: the rollout's activities (`rolloutSetWeights`, `rolloutReadTraffic`) and the deploy saga's
 * promotion, retirement and rollback call a real `AciTarget` against the ACI world of test/azure/aci-world.ts (ARM
 * in memory through nock, each slot's /metrics, a real front behind the front's address). Traffic is modelled at
 * each read: `perRead` requests split by the weights the real front holds, the new version failing a given share.
 * Asserted as a user sees it (`GET /api/runs/{id}`) and on the ACI side (ARM requests, the front's state). The
 * shadow comparison itself runs for real in test/runtime/front.test.ts (real runtimes behind a real front).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { scriptedActivities, type Answer, type Scenario } from '../helpers/scenarios';
import { DEPLOY, type DeployRunInput, type RollbackInput, type RollbackOutput } from '../../shared/deploy/contract';
import { ROLLOUT, type SetWeightsInput } from '../../shared/rollout/contract';
import type { RolloutSpec } from '../../shared/rollout/spec';
import { runIdFor } from '../../shared/deploy/run-status';
import type { AciTarget } from '../../shared/azure/aci-target';
import { waitRun } from '../helpers/runs';
import { AciWorld, KEYS } from '../azure/aci-world';
import { nock, setupNock } from '../azure/helpers';

const scenarios = new Map<string, Scenario>();
const ACTIVITIES = [
  DEPLOY.registerModel,
  DEPLOY.createImage,
  DEPLOY.prepareDeployment,
  DEPLOY.deploySlot,
  DEPLOY.smokeTest,
  DEPLOY.rollback,
  DEPLOY.promote,
  DEPLOY.retirePrevious,
  DEPLOY.publishEvent,
  ROLLOUT.setWeights,
  ROLLOUT.readTraffic,
  ROLLOUT.renewLease,
].map((a) => a.name);
const overrides = scriptedActivities(ACTIVITIES, (_input, ctx) => scenarios.get(ctx.instanceId.replace(/:rollout$/, '')));

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

function answers(target: AciTarget, perRead: number, greenFailure: number, weightsSet: Array<Record<string, number>>): Record<string, Answer> {
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
    [ROLLOUT.readTraffic.name]: () => (serve(perRead, greenFailure), target.trafficSnapshot('diabetes')),
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
  const target = w.setup();
  const weightsSet: Array<Record<string, number>> = [];
  const input: unknown = {
    source: { kind: 'http', eventId: `aci-${++seq}` },
    model: { name: 'm', files: [{ path: 'model.json' }], tags: {}, properties: {} },
    files: { model: [{ path: 'model.json', blob: 'staging/m/model.json' }] },
    manifest: { service: { name: 'diabetes', tags: {} }, image: { name: 'diabetesimage' }, target: 'aci', deployConfig: { authEnabled: true }, rollout },
  };
  const runId = runIdFor('http', `rollout-aci-test|${seq}|${Date.now()}`);
  const scenario: Scenario = { answers: answers(target, perRead, greenFailure, weightsSet), calls: [] };
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
