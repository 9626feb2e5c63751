/**
 * The real `deployModel` + `rolloutTraffic` orchestrators on the local durable engine driving the AKS target's shadow
 * phase: the rollout's activities (`rolloutSetWeights`, `rolloutReadTraffic`) and the deploy saga's promotion,
 * retirement and rollback call a real `AksTarget` against the AKS world of test/azure/aks-front-world.ts (the API
 * server in memory through nock, a REAL front started from the Deployment the target wrote, behind the mocked service
 * proxy). Live traffic at each read: while the route sends it to the front, real requests through that front (which
 * copies 20 % to green and compares the answers), afterwards `perRead` requests counted on the slots by the route's
 * weights. Asserted as a user sees it (`GET /api/runs/{id}`) and on the cluster (objects, writes, the route).
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
import type { AksTarget } from '../../shared/azure/aks-target';
import { routeWeights } from '../../shared/azure/aks-traffic';
import { waitRun } from '../helpers/runs';
import { AksFrontWorld, type Wire } from '../azure/aks-front-world';
import { nock, setupNock } from '../azure/helpers';
import { rolloutRunActivities } from '../helpers/rollout-runs';

const scenarios = new Map<string, Scenario>();
const overrides = rolloutRunActivities(scenarios);

setupNock();
const w = new AksFrontWorld();
/** Green's answers: wrong for `greenWrong` of every 10 requests it gets (the copies, in the shadow phase). */
let greenWrong = 0;
/** Every answer a client got (through the front), in order: client i sent x = i of its read. */
const seenByClients: unknown[] = [];
let stands: Awaited<ReturnType<AksFrontWorld['standIns']>>;
let env: TestEnvironment;
let workDir: string;
beforeAll(async () => {
  // Azurite, the local host, the real front and the slots' stand-ins are on loopback; the cluster answers through nock.
  stands = await w.standIns((slot, x, n) => ({ y: slot === 'green' && (n - 1) % 10 < greenWrong ? -x - 1 : 2 * x }));
  nock.enableNetConnect((host) => host.startsWith('127.0.0.1') || host.includes('.svc.cluster.local'));
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-rollout-aks-'));
  env = await startTestEnvironment({ settings: { LOCAL_WORK_DIR: workDir }, pollIntervalMs: 100, activityOverrides: overrides });
}, 120_000);
afterAll(async () => {
  await env?.stop();
  await stands?.close();
  w.dispose();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/** Live traffic between two reads: through the real front while the route is on it, else counted by the route's weights. */
async function serve(perRead: number): Promise<void> {
  const route = w.get('httproutes', 'diabetes');
  if (route?.metadata?.annotations?.['model-deploy-flow/front-weights']) {
    seenByClients.push(...(await w.traffic(perRead)));
    return;
  }
  for (const [slot, pct] of Object.entries(routeWeights('diabetes', route as Wire))) w.counters[slot].ok += Math.round((perRead * pct) / 100);
}

function answers(target: AksTarget, perRead: number, weightsSet: Array<Record<string, number> | string>): Record<string, Answer> {
  return {
    [DEPLOY.registerModel.name]: () => ({ ok: true, created: true, model: { id: 'm:2', name: 'm', version: 2, files: 1, bytes: 10 } }),
    [DEPLOY.createImage.name]: () => ({ ok: true, image: { id: 'img:4', name: 'diabetesimage', version: 4, state: 'Succeeded', runtime: 'python', models: ['m:2'], imageRef: 'mdfregistry.azurecr.io/diabetesimage:4', contextBlob: 'images/diabetesimage/4.tar.gz' } }),
    [DEPLOY.prepareDeployment.name]: () => ({ ok: true, slot: 'green', previousSlot: 'blue', previousImage: 'diabetesimage:3', isUpdate: true }),
    [DEPLOY.deploySlot.name]: () => ({ serviceName: 'diabetes', slot: 'green', state: 'Healthy', scoringUri: 'http://20.0.0.2/score', swaggerUri: '', healthUri: '' }),
    [DEPLOY.smokeTest.name]: () => ({ ok: true, checks: [], latencyMs: 3, swagger: 'absent' }),
    [DEPLOY.promote.name]: async () => {
      const uris = await target.switchTraffic('diabetes', 'green');
      return { name: 'diabetes', state: 'Healthy', image: 'diabetesimage:4', scoringUri: uris.scoringUri, swaggerUri: uris.swaggerUri };
    },
    [DEPLOY.retirePrevious.name]: async () => (await target.deleteSlot('diabetes', 'blue'), { notes: [] }),
    [DEPLOY.rollback.name]: async (i: RollbackInput): Promise<RollbackOutput> => {
      await target.switchTraffic('diabetes', 'blue');
      await target.deleteSlot('diabetes', i.slot);
      return { rolledBack: true, state: 'Healthy', error: i.reason };
    },
    [DEPLOY.publishEvent.name]: (e: { type: string }) => `event-${e.type}`,
    [ROLLOUT.setWeights.name]: (i: SetWeightsInput) => (
      weightsSet.push(i.mirror ? `shadow ${i.mirror.percent}% to ${i.mirror.slot}` : i.weights), target.setTrafficWeights(i.serviceName, i.weights, i.mirror ? { mirror: i.mirror } : {})
    ),
    [ROLLOUT.readTraffic.name]: async () => (await serve(perRead), target.trafficSnapshot('diabetes')),
    [ROLLOUT.renewLease.name]: () => ({ held: true }),
  };
}

const spec = (s: Partial<Omit<RolloutSpec, 'gates'>> & { gates?: Partial<RolloutSpec['gates']> }): RolloutSpec => ({
  strategy: 'canary',
  steps: [50, 100],
  bakeSeconds: 1,
  ...s,
  gates: { minRequests: 10, maxWaitSeconds: 1, onInsufficientTraffic: 'rollback', tolerance: 1e-6, ...s.gates },
});

let seq = 0;
async function start(rollout: RolloutSpec, perRead: number): Promise<{ runId: string; weightsSet: Array<Record<string, number> | string> }> {
  const target = w.setup();
  seenByClients.length = 0;
  const weightsSet: Array<Record<string, number> | string> = [];
  const input: unknown = {
    source: { kind: 'http', eventId: `aks-${++seq}` },
    model: { name: 'm', files: [{ path: 'model.json' }], tags: {}, properties: {} },
    files: { model: [{ path: 'model.json', blob: 'staging/m/model.json' }] },
    manifest: { service: { name: 'diabetes', tags: {} }, image: { name: 'diabetesimage' }, target: 'aks', deployConfig: { authEnabled: true }, rollout },
  };
  const runId = runIdFor('http', `rollout-aks-test|${seq}|${Date.now()}`);
  scenarios.set(runId, { answers: answers(target, perRead, weightsSet), calls: [] });
  await env.startOrchestration(DEPLOY.run.name, input as DeployRunInput, runId);
  return { runId, weightsSet };
}

describe('AKS shadow phase driven by the orchestrators', () => {
  afterEach(async () => {
    greenWrong = 0;
    stands.hits.blue.length = 0;
    stands.hits.green.length = 0;
    await w.reset();
  });

  test('a new version that disagrees on 30 % of the copies is stopped by max_disagreement in the shadow phase: no client saw its answers, the route back on blue, the front and green removed', async () => {
    greenWrong = 3;
    const { runId, weightsSet } = await start(spec({ mirrorPercent: 20, gates: { maxDisagreement: 0.05 } }), 100);
    const run = await waitRun(env, runId, 90_000);
    expect(run.state).toBe('RolledBack');
    expect(run.error.code).toBe('RolloutGateFailed');
    expect(run.error.message).toMatch(/failed its gates at the shadow phase \(20 % mirrored\): max_disagreement 0\.3 > 0\.05/);
    expect(weightsSet).toEqual(['shadow 20% to green', { blue: 100, green: 0 }]);
    expect(run.result.rollout.completed[0]).toMatchObject({ phase: 'shadow', outcome: 'failed', shadow: { mirrored: 20, compared: 20, disagreed: 6, disagreement: 0.3 } });
    // Every client got the serving version's answer (green's wrong ones never reached a client); green got only the copies.
    expect(seenByClients).toEqual(Array.from({ length: 100 }, (_v, x) => ({ y: 2 * x })));
    expect(stands.hits.blue).toHaveLength(100);
    expect(stands.hits.green).toHaveLength(20);
    // The cluster: the route on blue alone (written before the front went), no front, no green.
    expect(routeWeights('diabetes', w.get('httproutes', 'diabetes') as Wire)).toEqual({ blue: 100 });
    expect([...w.objects.keys()].filter((k) => /diabetes-(front|green)$/.test(k))).toEqual([]);
    const routeBack = w.changes.indexOf('PUT httproutes diabetes');
    expect(routeBack).toBeGreaterThan(-1);
    expect(routeBack).toBeLessThan(w.changes.indexOf('DELETE deployments diabetes-front'));
  }, 120_000);

  test('a new version that agrees passes the shadow phase, then the canary steps on the route\'s weights, and is promoted: the front removed, blue retired', async () => {
    const { runId, weightsSet } = await start(spec({ mirrorPercent: 20, gates: { maxDisagreement: 0.05, maxErrorRate: 0.01 } }), 100);
    const run = await waitRun(env, runId, 90_000);
    expect(run.state).toBe('Succeeded');
    expect(run.result.rollout).toMatchObject({ promoted: true, decision: 'promote' });
    expect(run.result.rollout.completed.map((c: any) => [c.phase, c.weight, c.outcome])).toEqual([
      ['shadow', 0, 'passed'],
      ['step', 50, 'passed'],
      ['step', 100, 'passed'],
    ]);
    expect(run.result.rollout.completed[0].shadow).toMatchObject({ mirrored: 20, compared: 20, disagreed: 0, disagreement: 0 });
    expect(weightsSet).toEqual(['shadow 20% to green', { blue: 50, green: 50 }, { blue: 0, green: 100 }]);
    expect(seenByClients).toEqual(Array.from({ length: 100 }, (_v, x) => ({ y: 2 * x })));
    // The front was created once and written never (its state at creation was the shadow phase's), then removed at
    // the promotion; blue retired from the route and the cluster.
    expect(w.changes.filter((c) => c.includes('diabetes-front'))).toEqual([
      'POST secrets diabetes-front',
      'POST deployments diabetes-front',
      'POST poddisruptionbudgets diabetes-front',
      'POST services diabetes-front',
      'DELETE services diabetes-front',
      'DELETE deployments diabetes-front',
      'DELETE poddisruptionbudgets diabetes-front',
      'DELETE secrets diabetes-front',
    ]);
    expect(routeWeights('diabetes', w.get('httproutes', 'diabetes') as Wire)).toEqual({ green: 100 });
    expect(w.get('services', 'diabetes')!.spec.selector).toEqual({ 'mdf-service': 'diabetes', 'mdf-slot': 'green' });
    expect([...w.objects.keys()].filter((k) => /diabetes-(front|blue)$/.test(k))).toEqual([]);
  }, 120_000);
});
