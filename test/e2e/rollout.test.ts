/**
 * Progressive delivery through the real app on the local host (Azurite + host + local target + scoring runtime +
 * the service front), with a client keeping load on the service's public URI all along:
 * - canary 10 → 50 → 100 with a healthy new version: promoted, no failed request, each step's share as weighted;
 * - a new version failing 5 % of requests: rolled back at the first gate, only the first step's share reached it;
 * - shadow with a new version disagreeing on 30 % of inputs: stopped by max_disagreement, no client saw its answers;
 * - a pinned request reaches the new version at 0 % of live traffic;
 * - approval: the run waits before the approved step until POST /api/runs/{id}/approve, then promotes; reject (with
 *   a reason) and a timeout roll back;
 * - abort during a long bake: POST /api/runs/{id}/abort rolls back at once;
 * - too little traffic: after max_wait_seconds, the default decision (rollback).
 */
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { waitRollout, waitRun } from '../helpers/runs';
import { canSetCpuPriority } from '../../shared/processes';
import { deployVersion, rolloutUnderLoad, score, stopAfterMore, type RollModel } from './rollout-helpers';

let env: TestEnvironment;
let storage: StorageClients;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-rollout-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

/** v1 of `service` serving under load, v2 rolling out with `rollout` (rollout-helpers.ts). */
const start = (service: string, model: RollModel, rollout: Record<string, unknown>) => rolloutUnderLoad(env, storage, { service, model, rollout });

const shareOf = (step: any) => step.candidate.requests / (step.candidate.requests + step.serving.requests);

test('canary 10 → 50 → 100 under steady load: promoted, 0 failed requests, each step carried its weight', async () => {
  const { uri, load, runId } = await start('roll-canary', { factor: 3 }, { strategy: 'canary', steps: [10, 50, 100], bake_seconds: 2, gates: { max_error_rate: 0.01, min_requests: 5, max_wait_seconds: 20 } });
  const run = await waitRun(env, runId, 180_000);
  // A few more requests after the promotion, then the client stops.
  const answers = await stopAfterMore(load);
  expect(run.error).toBeUndefined();
  expect(run.state).toBe('Succeeded');
  expect(run.result.outcome).toBe('Updated');
  expect(run.steps.map((s: any) => s.name)).toEqual(['register', 'image', 'prepare', 'deploy', 'smokeTest', 'rollout', 'promote', 'retire']);
  const steps = run.result.rollout.completed;
  expect(steps.map((s: any) => [s.weight, s.outcome])).toEqual([
    [10, 'passed'],
    [50, 'passed'],
    [100, 'passed'],
  ]);
  // The front's split is exact up to the requests in flight at the window's two edges (one per client worker at each):
  // within 2 points of each weight, or 4 requests' share of a small window (a loaded machine sends fewer requests).
  for (const s of steps) {
    expect(s.candidate.requests).toBeGreaterThanOrEqual(5);
    const total = s.candidate.requests + s.serving.requests;
    expect(Math.abs(shareOf(s) * 100 - s.weight)).toBeLessThanOrEqual(Math.max(2, (4 * 100) / total));
  }
  // 0 failed requests; answers were v1's or v2's, and v2's only once the rollout began.
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  for (const a of answers) expect([a.x * 2, a.x * 3]).toContain(a.value);
  // Final state as a blue/green promotion: v2 serves everything, one slot left.
  const tail = answers.slice(-10);
  for (const a of tail) expect(a.value).toBe(a.x * 3);
  const svc = await env.request('GET', '/api/services/roll-canary');
  expect(svc.body).toMatchObject({ state: 'Healthy', image: 'roll-canary:2' });
}, 400_000);

test('a new version failing 5 % of requests is rolled back at the first gate; no more than the first step share reached it', async () => {
  const { uri, load, runId } = await start('roll-bad', { factor: 3, fail_every: 20 }, { strategy: 'canary', steps: [10, 50, 100], bake_seconds: 2, gates: { max_error_rate: 0.01, min_requests: 40, max_wait_seconds: 60 } });
  const run = await waitRun(env, runId, 180_000);
  const answers = await load.stop();
  expect(run.state).toBe('RolledBack');
  expect(run.error.code).toBe('RolloutGateFailed');
  expect(run.error.message).toMatch(/at 10 %: max_error_rate/);
  const steps = run.result.rollout.completed;
  expect(steps).toHaveLength(1);
  expect(steps[0]).toMatchObject({ weight: 10, outcome: 'failed' });
  expect(steps[0].candidate.errors).toBeGreaterThan(0);
  // What reached v2 (its answers and its failures) is within the first step's share of the requests served while it
  // was live; every failed request is one of those.
  const v2 = answers.filter((a) => a.value === a.x * 3 || a.status === 500);
  const failed = answers.filter((a) => a.status !== 200);
  expect(failed.every((a) => a.status === 500)).toBe(true);
  expect(v2.length).toBeLessThanOrEqual(Math.ceil(answers.length * 0.1) + 2);
  expect(steps[0].candidate.requests).toBeLessThanOrEqual(Math.ceil((steps[0].candidate.requests + steps[0].serving.requests) * 0.1) + 1);
  // v1 serves everything again; v2's slot is gone.
  expect((await score(uri, [7, 8])).body).toEqual([14, 16]);
  const svc = await env.request('GET', '/api/services/roll-bad');
  expect(svc.body).toMatchObject({ state: 'Healthy', image: 'roll-bad:1' });
}, 400_000);

test('shadow: a new version disagreeing on 30 % of inputs is stopped by max_disagreement; no client ever saw its answers; a pinned request reaches it at 0 %', async () => {
  const { uri, load, runId } = await start('roll-shadow', { factor: 2, wrong_below: 3 }, { strategy: 'canary', steps: [50, 100], bake_seconds: 3, mirror_percent: 100, gates: { max_disagreement: 0.05, min_requests: 30, max_wait_seconds: 60 } });
  // While the shadow phase runs, the new version answers a pinned request (x = 1: it adds 1).
  await waitRollout(env, runId, (r) => r.phase === 'shadow', { failIfEnded: true, timeoutMs: 60_000 });
  // A first deployment takes slot blue, the next one green.
  const during = await score(uri, [1], { 'azureml-model-deployment': 'green' });
  // The new version's log says it runs at idle CPU priority while it only gets copies (or why it could not).
  const logs = await env.request('GET', '/api/services/roll-shadow/logs?slot=green&tail=200');
  expect(logs.body.lines.join('\n')).toMatch((await canSetCpuPriority()) ? /now at idle CPU priority \(shadow phase/ : /stays at normal CPU priority \(this host cannot raise/);
  const run = await waitRun(env, runId, 180_000);
  const answers = await load.stop();
  expect(run.state).toBe('RolledBack');
  expect(run.error.message).toMatch(/shadow phase \(100 % mirrored\): max_disagreement 0\.[23]\d* > 0\.05/);
  const shadow = run.result.rollout.completed[0];
  expect(shadow).toMatchObject({ phase: 'shadow', weight: 0, outcome: 'failed' });
  expect(shadow.shadow.compared).toBeGreaterThanOrEqual(30);
  expect(shadow.shadow.disagreement).toBeGreaterThan(0.2);
  expect(shadow.shadow.disagreement).toBeLessThan(0.4);
  expect(shadow.candidate.requests).toBe(0); // no live traffic reached it
  // Every client answer is the serving version's (x × 2), never the shadow's x × 2 + 1.
  expect(answers.length).toBeGreaterThan(60);
  expect(answers.filter((a) => a.status !== 200 || a.value !== a.x * 2)).toEqual([]);
  expect(during).toEqual({ status: 200, body: [3] });
}, 400_000);

/** Polls the run's status (bounded) until its rollout satisfies `pred`; that status (fails if the run ends first). */
const waitPhase = (runId: string, pred: (rollout: any) => boolean) => waitRollout(env, runId, pred, { failIfEnded: true, timeoutMs: 150_000 });

test('approval under load: the run waits before 100 %, POST /api/runs/{id}/approve lets it promote; who and when are in the result', async () => {
  const { uri, load, runId } = await start('roll-approve', { factor: 3 }, { strategy: 'canary', steps: [50, 100], bake_seconds: 1, gates: { max_error_rate: 0.01, min_requests: 5, max_wait_seconds: 30 }, approval: { before_percent: 100, timeout: '1h' } });
  const waiting = await waitPhase(runId, (r) => r.phase === 'awaitingApproval');
  expect(waiting.rollout).toMatchObject({ weight: 50, approval: { decision: 'pending', beforePercent: 100 } });
  const ok = await env.request('POST', `/api/runs/${runId}/approve`, { by: 'alice', reason: 'dashboards look fine' });
  expect(ok.status).toBe(202);
  const run = await waitRun(env, runId, 180_000);
  const answers = await stopAfterMore(load);
  expect(run.error).toBeUndefined();
  expect(run.state).toBe('Succeeded');
  expect(run.result.rollout.completed.map((s: any) => [s.weight, s.outcome])).toEqual([
    [50, 'passed'],
    [100, 'passed'],
  ]);
  expect(run.result.rollout.approval).toEqual({ decision: 'approved', by: 'alice', reason: 'dashboards look fine', at: ok.body.at, beforePercent: 100 });
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  for (const a of answers.slice(-10)) expect(a.value).toBe(a.x * 3);
}, 400_000);

test('abort under load during a long bake: POST /api/runs/{id}/abort rolls back at once; no failed request; v1 serves again', async () => {
  // A bake far longer than the test's bound: only the abort can end this run in time.
  const { uri, load, runId } = await start('roll-abort', { factor: 3 }, { strategy: 'canary', steps: [10, 100], bake_seconds: 3600, gates: { max_error_rate: 0.01, min_requests: 5 } });
  await waitPhase(runId, (r) => r.phase === 'step' && r.weight === 10 && !!r.bakeUntil);
  const r = await env.request('POST', `/api/runs/${runId}/abort`, { by: 'carol', reason: 'wrong model' });
  expect(r.status).toBe(202);
  const run = await waitRun(env, runId, 180_000);
  const answers = await load.stop();
  expect(run.state).toBe('RolledBack');
  expect(run.error.code).toBe('RolloutAborted');
  // (The deploy saga appends the new slot's last log lines to a rollout's error, an abort's included.)
  expect(run.error.message).toMatch(/^Aborted by carol: wrong model\./);
  expect(run.result.rollout).toMatchObject({ decision: 'aborted', abort: { by: 'carol', reason: 'wrong model' } });
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  // v2 had at most the first step's share while it was live; v1 serves everything again and v2's slot is gone.
  expect(answers.filter((a) => a.value === a.x * 3).length).toBeLessThanOrEqual(Math.ceil(answers.length * 0.1) + 2);
  expect((await score(uri, [7])).body).toEqual([14]);
  const svc = await env.request('GET', '/api/services/roll-abort');
  expect(svc.body).toMatchObject({ state: 'Healthy', image: 'roll-abort:1' });
  expect((await env.request('POST', `/api/runs/${runId}/abort`, {})).status).toBe(409);
}, 400_000);

test('approval under load: POST /api/runs/{id}/reject with a reason rolls back; a later rollout nobody approves times out and rolls back', async () => {
  const rollout = (timeout: string) => ({ strategy: 'canary', steps: [50, 100], bake_seconds: 1, gates: { max_error_rate: 0.01, min_requests: 5, max_wait_seconds: 30 }, approval: { before_percent: 100, timeout } });
  const { uri, load, runId: rejectId } = await start('roll-reject', { factor: 3 }, rollout('1h'));
  await waitPhase(rejectId, (r) => r.phase === 'awaitingApproval');
  expect((await env.request('POST', `/api/runs/${rejectId}/reject`, { by: 'bob' })).body.error?.code).toBe('ReasonRequired');
  expect((await env.request('POST', `/api/runs/${rejectId}/reject`, { by: 'bob', reason: 'p99 too high' })).status).toBe(202);
  const rejected = await waitRun(env, rejectId, 180_000);
  expect(rejected.state).toBe('RolledBack');
  expect(rejected.error.code).toBe('RolloutRejected');
  expect(rejected.error.message).toMatch(/^The step to 100 % was rejected by bob: p99 too high\./);
  expect(rejected.result.rollout.approval).toMatchObject({ decision: 'rejected', by: 'bob', reason: 'p99 too high', beforePercent: 100 });

  const timeoutId = await deployVersion(env, storage, { service: 'roll-reject', folder: 'roll-reject-v3', model: { factor: 3 }, rollout: rollout('2s') });
  const timedOut = await waitRun(env, timeoutId, 180_000);
  const answers = await load.stop();
  expect(timedOut.state).toBe('RolledBack');
  expect(timedOut.error.code).toBe('RolloutApprovalTimedOut');
  expect(timedOut.result.rollout.approval).toMatchObject({ decision: 'timedOut', beforePercent: 100 });
  // No client request failed; v1 serves everything again.
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  expect((await score(uri, [7])).body).toEqual([14]);
  expect((await env.request('GET', '/api/services/roll-reject')).body).toMatchObject({ state: 'Healthy', image: 'roll-reject:1' });
}, 400_000);

test('too little traffic: with a trickle below min_requests, the gate waits max_wait_seconds and then rolls back (the default decision)', async () => {
  // A trickle: one client, a pause between requests; far fewer than min_requests reach the 10 % step in the wait.
  const { load, runId } = await rolloutUnderLoad(env, storage, {
    service: 'roll-quiet',
    model: { factor: 3 },
    rollout: { strategy: 'canary', steps: [10, 100], bake_seconds: 1, gates: { max_error_rate: 0.01, min_requests: 1000, max_wait_seconds: 3 } },
    load: { workers: 1, pauseMs: 200 },
  });
  const run = await waitRun(env, runId, 180_000);
  const answers = await load.stop();
  expect(run.state).toBe('RolledBack');
  expect(run.error.code).toBe('RolloutInsufficientTraffic');
  const steps = run.result.rollout.completed;
  expect(steps).toHaveLength(1);
  expect(steps[0]).toMatchObject({ weight: 10, outcome: 'insufficientTraffic' });
  expect(steps[0].candidate.requests).toBeLessThan(1000);
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  expect((await env.request('GET', '/api/services/roll-quiet')).body).toMatchObject({ state: 'Healthy', image: 'roll-quiet:1' });
}, 400_000);
