/**
 * The real `deployModel` + `rolloutTraffic` orchestrators on the local durable engine, with their activities answered
 * by the test (the deploy steps succeed; the service front is a small model that serves N requests per read, split by
 * the weights it was given, with per-slot error rates and latencies). The decisions are what a user sees through the
 * API: `GET /api/runs/{id}` (state, error, `result.rollout`, live `rollout` status) and
 * `POST /api/runs/{id}/approve | reject | abort`.
 */
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import type { Answer, Scenario } from '../helpers/scenarios';
import { rolloutRunActivities, rolloutSpec, startRolloutRun } from '../helpers/rollout-runs';
import { DEPLOY, type RollbackInput, type RollbackOutput } from '../../shared/deploy/contract';
import { ROLLOUT, ROLLOUT_EVENTS, type RolloutRunInput, type SetWeightsInput } from '../../shared/rollout/contract';
import type { RolloutSpec } from '../../shared/rollout/spec';
import { emptyShadowTraffic, emptySlotTraffic, latencyBucket, type TrafficSnapshot } from '../../shared/rollout/traffic';
import { runIdFor } from '../../shared/deploy/run-status';
import { waitRollout, waitRun } from '../helpers/runs';

const scenarios = new Map<string, Scenario>();
const overrides = rolloutRunActivities(scenarios);

let env: TestEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-rollout-orch-', pollIntervalMs: 100, activityOverrides: overrides });
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

/** A service front: `perRead` live requests between two reads, split by the weights; `green` is the new version. */
class FakeFront {
  epoch = 'e1';
  weights: Record<string, number> = {};
  mirror?: SetWeightsInput['mirror'];
  snap: TrafficSnapshot = { epoch: 'e1', weights: {}, slots: {} };
  weightsSet: Array<Record<string, number>> = [];
  constructor(
    readonly perRead: number,
    readonly green: { errorRate?: number; latencyMs?: number; disagreement?: number } = {},
  ) {}
  snapshot(): TrafficSnapshot {
    return JSON.parse(JSON.stringify({ ...this.snap, epoch: this.epoch, weights: this.weights }));
  }
  set(i: SetWeightsInput): TrafficSnapshot {
    this.weights = i.weights;
    this.mirror = i.mirror;
    this.weightsSet.push(i.weights);
    return this.snapshot();
  }
  serve(): TrafficSnapshot {
    for (const [slot, w] of Object.entries(this.weights)) {
      const n = Math.round((this.perRead * w) / 100);
      if (!n) continue;
      const t = (this.snap.slots[slot] ??= emptySlotTraffic());
      t.requests += n;
      if (slot === 'green') t.errors += Math.round(n * (this.green.errorRate ?? 0));
      const b = String(latencyBucket(slot === 'green' ? (this.green.latencyMs ?? 5) : 5));
      t.latency[b] = (t.latency[b] ?? 0) + n;
    }
    if (this.mirror) {
      const m = Math.round((this.perRead * this.mirror.percent) / 100);
      const s = ((this.snap.shadow ??= {})[this.mirror.slot] ??= emptyShadowTraffic());
      s.mirrored += m;
      s.compared += m;
      s.disagreed += Math.round(m * (this.green.disagreement ?? 0));
    }
    return this.snapshot();
  }
}

function answers(front: FakeFront): Record<string, Answer> {
  return {
    [DEPLOY.registerModel.name]: () => ({ ok: true, created: true, model: { id: 'm:2', name: 'm', version: 2, files: 1, bytes: 10 } }),
    [DEPLOY.createImage.name]: () => ({ ok: true, image: { id: 'img:2', name: 'img', version: 2, state: 'Succeeded', runtime: 'node', models: ['m:2'], imageRef: 'local/img:2', contextBlob: 'images/img/2.tar.gz' } }),
    [DEPLOY.prepareDeployment.name]: () => ({ ok: true, slot: 'green', previousSlot: 'blue', previousImage: 'img:1', isUpdate: true }),
    [DEPLOY.deploySlot.name]: () => ({ serviceName: 'svc-r', slot: 'green', state: 'Healthy', scoringUri: 'http://127.0.0.1:1/score', swaggerUri: '', healthUri: '' }),
    [DEPLOY.smokeTest.name]: () => ({ ok: true, checks: [], latencyMs: 3, swagger: 'absent' }),
    [DEPLOY.promote.name]: () => ({ name: 'svc-r', state: 'Healthy', image: 'img:2', scoringUri: 'http://127.0.0.1:2/score', swaggerUri: '' }),
    [DEPLOY.retirePrevious.name]: () => ({ notes: [] }),
    [DEPLOY.rollback.name]: (i: RollbackInput): RollbackOutput => ({ rolledBack: true, state: 'Healthy', error: i.reason }),
    [DEPLOY.publishEvent.name]: (e: { type: string }) => `event-${e.type}`,
    [ROLLOUT.setWeights.name]: (i: SetWeightsInput) => front.set(i),
    [ROLLOUT.readTraffic.name]: () => front.serve(),
  };
}

const spec = rolloutSpec;
let seq = 0;
const start = (rollout: RolloutSpec, front: FakeFront, extra: Record<string, Answer> = {}) =>
  startRolloutRun(env, scenarios, { rollout, answers: { ...answers(front), ...extra }, service: 'svc-r', image: 'img', target: 'local', authEnabled: false, tag: 'rollout' });

const names = (s: Scenario) => s.calls.map((c) => c.name).filter((n) => n !== DEPLOY.publishEvent.name);
const events = (s: Scenario) => s.calls.filter((c) => c.name === DEPLOY.publishEvent.name).map((c) => c.input.type as string);

test('canary 10 → 50 → 100, healthy: each step passes its gates, then the usual promotion; status and events carry each step', async () => {
  const front = new FakeFront(100);
  const { runId, scenario } = await start(spec({ gates: { maxErrorRate: 0.01, maxP99Ms: 250 } }), front);
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('Succeeded');
  expect(run.result.outcome).toBe('Updated');
  expect(run.steps.map((s: any) => `${s.name}:${s.state}`)).toEqual(['register:Succeeded', 'image:Succeeded', 'prepare:Succeeded', 'deploy:Succeeded', 'smokeTest:Succeeded', 'rollout:Succeeded', 'promote:Succeeded', 'retire:Succeeded']);
  const ro = run.result.rollout;
  expect(ro).toMatchObject({ promoted: true, decision: 'promote', summary: 'canary: 10 % → 50 % → 100 % passed' });
  expect(ro.completed.map((c: any) => [c.weight, c.outcome, c.candidate.requests])).toEqual([
    [10, 'passed', 10],
    [50, 'passed', 50],
    [100, 'passed', 100],
  ]);
  expect(ro.completed[0].verdicts).toEqual([
    { gate: 'min_requests', pass: true, limit: 10, value: 10, detail: 'live requests of the new version' },
    { gate: 'max_error_rate', pass: true, limit: 0.01, value: 0 },
    { gate: 'max_p99_ms', pass: true, limit: 250, value: expect.any(Number) },
  ]);
  expect(front.weightsSet).toEqual([
    { blue: 90, green: 10 },
    { blue: 50, green: 50 },
    { blue: 0, green: 100 },
  ]);
  expect(names(scenario).slice(-2)).toEqual([DEPLOY.promote.name, DEPLOY.retirePrevious.name]);
  expect(events(scenario)).toEqual(['ModelRegistered', 'ImageCreated', 'RolloutStepCompleted', 'RolloutStepCompleted', 'RolloutStepCompleted', 'ServiceUpdated']);
  // One subject per step: event ids (type + subject + run) stay distinct.
  expect(scenario.calls.filter((c) => c.input.type === 'RolloutStepCompleted').map((c) => c.input.subject)).toEqual(['services/svc-r/rollout/step-10', 'services/svc-r/rollout/step-50', 'services/svc-r/rollout/step-100']);
  // The run's view has the rollout's final status too.
  expect(run.rollout).toMatchObject({ phase: 'done', decision: 'promote', weight: 100, completedCount: 3 });
}, 90_000);

test('a new version failing 5 % of requests is rolled back at the first gate: weights back to 0 %, slot removed, never promoted', async () => {
  const front = new FakeFront(200, { errorRate: 0.05 });
  const { runId, scenario } = await start(spec({ gates: { maxErrorRate: 0.01 } }), front);
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('RolledBack');
  expect(run.error.code).toBe('RolloutGateFailed');
  expect(run.error.message).toMatch(/failed its gates at 10 %: max_error_rate 0\.05 > 0\.01/);
  expect(front.weightsSet).toEqual([
    { blue: 90, green: 10 },
    { blue: 100, green: 0 },
  ]);
  expect(names(scenario)).not.toContain(DEPLOY.promote.name);
  expect(scenario.calls.find((c) => c.name === DEPLOY.rollback.name)!.input).toMatchObject({ slot: 'green', reason: { code: 'RolloutGateFailed' } });
  expect(run.result.rollout).toMatchObject({ promoted: false, decision: 'rolledBack' });
  expect(run.result.rollout.completed).toHaveLength(1);
  expect(run.result.rollout.completed[0]).toMatchObject({ weight: 10, outcome: 'failed', candidate: { requests: 20, errors: 1 } });
  expect(events(scenario)).toEqual(['ModelRegistered', 'ImageCreated', 'RolloutRolledBack', 'DeploymentRolledBack']);
}, 90_000);

test('a slow new version (p99 over max_p99_ms) is rolled back at the first gate', async () => {
  const front = new FakeFront(100, { latencyMs: 900 });
  const { runId } = await start(spec({ gates: { maxP99Ms: 250 } }), front);
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('RolledBack');
  expect(run.error.message).toMatch(/at 10 %: max_p99_ms \d+(\.\d+)? > 250/);
}, 90_000);

test('too little traffic: waits up to max_wait_seconds, then on_insufficient_traffic decides (rollback / promote)', async () => {
  const quiet = new FakeFront(20); // 2 requests of the new version per read at 10 %
  const a = await start(spec({ steps: [10, 100], gates: { minRequests: 50, maxWaitSeconds: 2 } }), quiet);
  const rolled = await waitRun(env, a.runId, 60_000);
  expect(rolled.state).toBe('RolledBack');
  expect(rolled.error.code).toBe('RolloutInsufficientTraffic');
  expect(rolled.error.message).toMatch(/Too little traffic at 10 % after waiting 2 s more \(min_requests \d+ < 50\); on_insufficient_traffic is rollback/);
  // The bake, then the wait in rounds of bake_seconds (2 more reads): the window kept counting across all three.
  expect(a.scenario.calls.filter((c) => c.name === ROLLOUT.readTraffic.name)).toHaveLength(3);
  expect(rolled.result.rollout.completed[0]).toMatchObject({ outcome: 'insufficientTraffic', candidate: { requests: 6 } });

  const quiet2 = new FakeFront(20);
  const b = await start(spec({ steps: [10, 100], gates: { minRequests: 50, maxWaitSeconds: 1, onInsufficientTraffic: 'promote', maxErrorRate: 0.5 } }), quiet2);
  const promoted = await waitRun(env, b.runId, 60_000);
  expect(promoted.state).toBe('Succeeded');
  expect(promoted.result.rollout.completed.map((c: any) => c.outcome)).toEqual(['insufficientTraffic', 'insufficientTraffic']);
}, 120_000);

test('shadow: a new version disagreeing on 30 % is stopped by max_disagreement before any live traffic reaches it', async () => {
  const front = new FakeFront(100, { disagreement: 0.3 });
  const { runId } = await start(spec({ mirrorPercent: 50, gates: { maxDisagreement: 0.05 } }), front);
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('RolledBack');
  expect(run.error.message).toMatch(/failed its gates at the shadow phase \(50 % mirrored\): max_disagreement 0\.3 > 0\.05/);
  expect(front.weightsSet).toEqual([
    { blue: 100, green: 0 },
    { blue: 100, green: 0 },
  ]);
  expect(run.result.rollout.completed[0]).toMatchObject({ phase: 'shadow', weight: 0, mirrorPercent: 50, shadow: { compared: 50, disagreed: 15, disagreement: 0.3 } });
}, 90_000);

test('approval: approve (who and when in the result) → continues; reject with a reason → rolled back; no decision → timeout rejects', async () => {
  const approvalSpec = spec({ steps: [10, 100], approval: { beforePercent: 100, timeoutSeconds: 3600 } });
  // Approve.
  const f1 = new FakeFront(100);
  const a = await start(approvalSpec, f1);
  // Too early: the run is not waiting for an approval yet (or has no rollout yet).
  const early = await env.request('POST', `/api/runs/${a.runId}/approve`, {});
  expect(early.status).toBe(409);
  expect(['NotAwaitingApproval', 'NoRolloutInProgress']).toContain(early.body.error.code);
  const waiting = await waitRollout(env, a.runId, (r) => r.phase === 'awaitingApproval', { timeoutMs: 30_000 });
  expect(waiting.rollout).toMatchObject({ weight: 10, approval: { decision: 'pending', beforePercent: 100 } });
  const ok = await env.request('POST', `/api/runs/${a.runId}/approve`, { by: 'alice', reason: 'dashboards look fine' });
  expect(ok.status).toBe(202);
  const approved = await waitRun(env, a.runId, 60_000);
  expect(approved.state).toBe('Succeeded');
  expect(approved.result.rollout.approval).toEqual({ decision: 'approved', by: 'alice', reason: 'dashboards look fine', at: ok.body.at, beforePercent: 100 });

  // Reject: a reason is required.
  const f2 = new FakeFront(100);
  const b = await start(approvalSpec, f2);
  await waitRollout(env, b.runId, (r) => r.phase === 'awaitingApproval', { timeoutMs: 30_000 });
  const noReason = await env.request('POST', `/api/runs/${b.runId}/reject`, { by: 'bob' });
  expect(noReason.status).toBe(400);
  expect(noReason.body.error.code).toBe('ReasonRequired');
  const bad = await env.request('POST', `/api/runs/${b.runId}/reject`, { reason: 'x', extra: 1 });
  expect(bad.status).toBe(400);
  expect(bad.body.error.message).toMatch(/extra: unknown field/);
  expect((await env.request('POST', `/api/runs/${b.runId}/reject`, { by: 'bob', reason: 'p99 too high on the dashboards' })).status).toBe(202);
  const rejected = await waitRun(env, b.runId, 60_000);
  expect(rejected.state).toBe('RolledBack');
  expect(rejected.error).toEqual({ code: 'RolloutRejected', message: 'The step to 100 % was rejected by bob: p99 too high on the dashboards.' });
  expect(rejected.result.rollout.approval).toMatchObject({ decision: 'rejected', by: 'bob' });
  expect(f2.weightsSet[f2.weightsSet.length - 1]).toEqual({ blue: 100, green: 0 });

  // Timeout.
  const f3 = new FakeFront(100);
  const c = await start(spec({ steps: [10, 100], approval: { beforePercent: 100, timeoutSeconds: 2 } }), f3);
  const timedOut = await waitRun(env, c.runId, 60_000);
  expect(timedOut.state).toBe('RolledBack');
  expect(timedOut.error.code).toBe('RolloutApprovalTimedOut');
  expect(timedOut.result.rollout.approval).toMatchObject({ decision: 'timedOut', beforePercent: 100 });
}, 180_000);

test('abort during a bake rolls back at once; controls on unknown runs / ended rollouts are refused', async () => {
  const front = new FakeFront(100);
  const { runId, scenario } = await start(spec({ steps: [10, 100], bakeSeconds: 3600 }), front);
  await waitRollout(env, runId, (r) => r.phase === 'step' && r.weight === 10 && !!r.bakeUntil, { timeoutMs: 30_000 });
  const r = await env.request('POST', `/api/runs/${runId}/abort`, { reason: 'wrong model', by: 'carol' });
  expect(r.status).toBe(202);
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('RolledBack');
  expect(run.error).toEqual({ code: 'RolloutAborted', message: 'Aborted by carol: wrong model.' });
  expect(run.result.rollout).toMatchObject({ decision: 'aborted', abort: { by: 'carol', reason: 'wrong model' } });
  expect(front.weightsSet).toEqual([
    { blue: 90, green: 10 },
    { blue: 100, green: 0 },
  ]);
  expect(scenario.calls.filter((c) => c.name === ROLLOUT.readTraffic.name)).toHaveLength(0);
  const again = await env.request('POST', `/api/runs/${runId}/abort`, {});
  expect(again.status).toBe(409);
  expect(again.body.error.code).toBe('NoRolloutInProgress');
  expect((await env.request('POST', `/api/runs/no-such-run/abort`, {})).status).toBe(404);
  expect((await env.request('POST', `/api/runs/${encodeURIComponent('../x')}/abort`, {})).status).toBe(400);
}, 90_000);

/** An activity answer that waits until the test releases it (`started` resolves when it was called). */
function gate<T>(answer: () => T) {
  let release!: () => void;
  let started!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const called = new Promise<void>((r) => (started = r));
  return { answer: async () => (started(), await released, answer()), called, release };
}

test('an abort raised while an activity runs (after a bake ended on its timer) is not lost: rolled back, never the next step', async () => {
  const front = new FakeFront(100);
  const read = gate(() => front.serve());
  const { runId, scenario } = await start(spec({ steps: [10, 100], bakeSeconds: 1 }), front, { [ROLLOUT.readTraffic.name]: read.answer });
  await read.called;
  // The bake's abort listener ended with its timer; the window read is running.
  const r = await env.request('POST', `/api/runs/${runId}/abort`, { by: 'dave', reason: 'stop now' });
  expect(r.status).toBe(202);
  await new Promise((res) => setTimeout(res, 500));
  read.release();
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('RolledBack');
  expect(run.error).toEqual({ code: 'RolloutAborted', message: 'Aborted by dave: stop now.' });
  expect(front.weightsSet).toEqual([
    { blue: 90, green: 10 },
    { blue: 100, green: 0 },
  ]);
  expect(scenario.calls.filter((c) => c.name === ROLLOUT.readTraffic.name)).toHaveLength(1);
}, 90_000);

test('a decision is final: a second approve or reject while the approved step starts is refused (AlreadyDecided)', async () => {
  const front = new FakeFront(100);
  let sets = 0;
  const step = gate(() => front.set(lastSet!));
  let lastSet: SetWeightsInput | undefined;
  const setWeights = (i: SetWeightsInput) => {
    if (++sets !== 2) return front.set(i);
    lastSet = i;
    return step.answer();
  };
  const { runId } = await start(spec({ steps: [10, 100], approval: { beforePercent: 100, timeoutSeconds: 3600 } }), front, { [ROLLOUT.setWeights.name]: setWeights });
  await waitRollout(env, runId, (r) => r.phase === 'awaitingApproval', { timeoutMs: 30_000 });
  expect((await env.request('POST', `/api/runs/${runId}/approve`, { by: 'erin' })).status).toBe(202);
  await step.called;
  await waitRollout(env, runId, (r) => r.approval?.decision === 'approved', { timeoutMs: 30_000 });
  const again = await env.request('POST', `/api/runs/${runId}/reject`, { by: 'frank', reason: 'changed my mind' });
  expect(again.status).toBe(409);
  expect(again.body.error.code).toBe('AlreadyDecided');
  expect(again.body.error.message).toMatch(/already approved by erin/);
  step.release();
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('Succeeded');
  expect(run.result.rollout.approval).toMatchObject({ decision: 'approved', by: 'erin' });
}, 90_000);

test('the host front restarted during a bake (new epoch): weights set again and the window starts over', async () => {
  const front = new FakeFront(100);
  let reads = 0;
  const { runId } = await start(spec({ steps: [10, 100] }), front, {
    [ROLLOUT.readTraffic.name]: () => {
      if (++reads === 1) {
        front.epoch = 'e2'; // the front restarted: its counters start from zero
        front.snap = { epoch: 'e2', weights: {}, slots: {} };
        front.weights = {};
        return front.snapshot();
      }
      return front.serve();
    },
  });
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('Succeeded');
  expect(run.result.rollout.completed[0]).toMatchObject({ weight: 10, outcome: 'passed', restarts: 1, candidate: { requests: 10 } });
  expect(front.weightsSet.slice(0, 2)).toEqual([
    { blue: 90, green: 10 },
    { blue: 90, green: 10 },
  ]);
}, 90_000);

test('a first deployment (nothing serving) skips the rollout and promotes as blue/green', async () => {
  const front = new FakeFront(100);
  const { runId, scenario } = await start(spec({}), front, {
    [DEPLOY.prepareDeployment.name]: () => ({ ok: true, slot: 'blue', isUpdate: false }),
  });
  const run = await waitRun(env, runId, 60_000);
  expect(run.state).toBe('Succeeded');
  expect(run.result.rollout).toMatchObject({ promoted: true, decision: 'skipped' });
  expect(names(scenario)).not.toContain(ROLLOUT.setWeights.name);
}, 60_000);

test('linear 20 % steps: five steps; the live status keeps the last four records (size-bounded), the result all five', async () => {
  const front = new FakeFront(100);
  const { runId } = await start(spec({ strategy: 'linear', steps: [20, 40, 60, 80, 100] }), front);
  const run = await waitRun(env, runId, 90_000);
  expect(run.state).toBe('Succeeded');
  expect(run.result.rollout.completed.map((c: any) => c.weight)).toEqual([20, 40, 60, 80, 100]);
  expect(run.rollout.completedCount).toBe(5);
  expect(run.rollout.completed.map((c: any) => c.weight)).toEqual([40, 60, 80, 100]);
  expect(run.result.rollout.summary).toBe('linear: 20 % → 40 % → 60 % → 80 % → 100 % passed');
}, 120_000);

test('waits longer than the renewal interval renew the run\'s hold on the service; a lost hold stops the rollout at 0 % (RolloutLeaseLost)', async () => {
  // The sub-orchestration started directly, as deployModel starts it, with a 1 s renewal interval instead of 30 min.
  const run = async (held: (attempt: number) => boolean) => {
    const front = new FakeFront(100);
    const id = runIdFor('http', `lease|${++seq}|${Date.now()}`);
    const scenario: Scenario = { answers: { ...answers(front), [ROLLOUT.renewLease.name]: (_i: unknown, attempt: number) => ({ held: held(attempt) }) }, calls: [] };
    scenarios.set(id, scenario);
    const input: RolloutRunInput = { runId: id, serviceName: 'svc-r', target: 'local', slot: 'green', previousSlot: 'blue', spec: spec({ steps: [50, 100], bakeSeconds: 3 }), leaseRenewSeconds: 1 };
    await env.startOrchestration(ROLLOUT.run.name, input, `${id}:rollout`);
    const done = await env.waitFor(`${id}:rollout`, { timeoutMs: 60_000 });
    const renewals = scenario.calls.filter((c) => c.name === ROLLOUT.renewLease.name);
    return { done, front, renewals };
  };
  const kept = await run(() => true);
  expect(kept.done.runtimeStatus).toBe('Completed');
  expect(kept.done.output).toMatchObject({ promoted: true, decision: 'promote' });
  expect(kept.renewals.length).toBeGreaterThanOrEqual(2);
  expect(kept.renewals[0].input).toEqual({ serviceName: 'svc-r', runId: expect.stringMatching(/^deploy-http-/) });

  const lost = await run((attempt) => attempt < 2);
  expect(lost.done.output).toMatchObject({ promoted: false, decision: 'rolledBack', error: { code: 'RolloutLeaseLost' } });
  expect(lost.front.weightsSet[lost.front.weightsSet.length - 1]).toEqual({ blue: 100, green: 0 });
}, 120_000);

test('an approval raised while the hold on the service is renewed (between two waits) is not lost', async () => {
  const front = new FakeFront(100);
  const id = runIdFor('http', `lease-approval|${++seq}|${Date.now()}`);
  const renewing = gate(() => ({ held: true }));
  // The renewal to hold is one made while the approval is awaited (after an approval wait ended on its timer).
  let armed = false;
  let held = false;
  const scenario: Scenario = {
    answers: { ...answers(front), [ROLLOUT.renewLease.name]: () => (armed && !held ? ((held = true), renewing.answer()) : { held: true }) },
    calls: [],
  };
  scenarios.set(id, scenario);
  const input: RolloutRunInput = { runId: id, serviceName: 'svc-r', target: 'local', slot: 'green', previousSlot: 'blue', spec: spec({ steps: [10, 100], approval: { beforePercent: 100, timeoutSeconds: 8 } }), leaseRenewSeconds: 1 };
  const instance = `${id}:rollout`;
  await env.startOrchestration(ROLLOUT.run.name, input, instance);
  for (let i = 0; i < 300 && ((await env.status(instance))?.customStatus as { phase?: string } | undefined)?.phase !== 'awaitingApproval'; i++) await new Promise((res) => setTimeout(res, 100));
  armed = true;
  await renewing.called;
  const raised = await env.request('POST', `/runtime/webhooks/durabletask/instances/${encodeURIComponent(instance)}/raiseEvent/${ROLLOUT_EVENTS.approval}`, { approved: true, by: 'gina', at: new Date().toISOString() });
  expect(raised.status).toBe(202);
  await new Promise((res) => setTimeout(res, 500));
  renewing.release();
  const done = await env.waitFor(instance, { timeoutMs: 60_000 });
  expect(done.output).toMatchObject({ promoted: true, decision: 'promote', approval: { decision: 'approved', by: 'gina' } });
}, 90_000);
