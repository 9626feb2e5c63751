/**
 * The real `batchRun` orchestrator (and its real `batchChunk` sub-orchestrations) on the real local durable engine
 * (Azurite on free ports, the compiled app in the local host), with the batch activities answered by the test
 * through the host's activity overrides. Assertions are what a user sees in the run's durable status (runtime status,
 * output, custom status) plus which activities ran, with what.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type OrchestrationStatus, type TestEnvironment } from '../../local/testing';
import { scriptedActivities, type Answer, type Scenario } from '../helpers/scenarios';
import { BATCH, type ActivityResult, type BatchChunkInput, type BatchChunkResult, type BatchImage, type BatchRunInput, type FinalizeActivityInput, type FinalizeOutput, type PlanPageOutput, type ProvisionPoolOutput, type ScoreMiniBatchesInput, type ScoreMiniBatchGroupInput, type ScoreMiniBatchInput } from '../../shared/batch/contract';
import type { PlanCursor } from '../../shared/batch/plan';
import type { MiniBatchOutcome } from '../../shared/batch/results';
import type { BatchRunCustomStatus } from '../../shared/batch/run';
import { ActivityFailure } from '../../shared/workflow';

const scenarios = new Map<string, Scenario>();
/** The activities a run calls, in order (mini-batches are scored several per call: `batchScoreMiniBatchGroup`). */
const CALLED = [BATCH.resolveImage, BATCH.provisionPool, BATCH.planPage, BATCH.scoreMiniBatchGroup, BATCH.finalize, BATCH.teardownPool].map((a) => a.name);
/** Older chunks' scoring activities (histories started before grouped calls / grouped results). */
const ACTIVITIES = [...CALLED, BATCH.scoreMiniBatch.name, BATCH.scoreMiniBatches.name];

/** Scenario of an activity call: the run's own id is in every batch activity input (the teardown has its pool id). */
const overrides = scriptedActivities(ACTIVITIES, (input) => {
  const i = input as { runId?: string; poolId?: string };
  const runId = i.runId ?? [...scenarios.keys()].find((id) => i.poolId === `pool-${id}`);
  return runId ? scenarios.get(runId) : undefined;
});

let env: TestEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-orch-batch-', pollIntervalMs: 100, activityOverrides: overrides });
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const MINI_BATCHES = 4;
const image: BatchImage = { name: 'img', version: 1, imageRef: 'local/img:1', runtime: 'node', contextBlob: 'images/img/1.tar.gz' };

const cursor = (pages: number): PlanCursor => ({ pages, nextIndex: pages === 1 ? 2 : MINI_BATCHES, pendingFiles: [], itemCount: pages * 4, bytes: pages * 40, inputFileCount: pages * 4 });

function happy(): Record<string, Answer> {
  return {
    [BATCH.resolveImage.name]: (): ActivityResult<BatchImage> => ({ ok: true, value: image }),
    [BATCH.provisionPool.name]: (i: { poolId: string }): ActivityResult<ProvisionPoolOutput> => ({ ok: true, value: { poolId: i.poolId, nodeUris: ['http://127.0.0.1:9/node0'], filesAs: 'paths' } }),
    [BATCH.planPage.name]: (i: { cursor?: unknown }): ActivityResult<PlanPageOutput> =>
      i.cursor
        ? { ok: true, value: { done: true, cursor: cursor(2), plan: { miniBatchCount: MINI_BATCHES, itemCount: 8, bytes: 80, inputFileCount: 8, chunkCount: 1, chunkSize: 500, inputKind: 'files' } } }
        : { ok: true, value: { done: false, cursor: cursor(1) } },
    [BATCH.scoreMiniBatch.name]: (i: ScoreMiniBatchInput): MiniBatchOutcome => ({ index: i.index, status: 'succeeded', itemCount: 2, succeeded: 2, failed: 0, miniBatchFailed: false, retryable: false, durationMs: 1 }),
    [BATCH.finalize.name]: (i: FinalizeActivityInput): ActivityResult<FinalizeOutput> => ({
      ok: true,
      value: {
        counts: { miniBatches: { total: MINI_BATCHES, succeeded: i.status === 'Succeeded' ? MINI_BATCHES : 0, partial: 0, failed: i.status === 'Succeeded' ? 0 : 1, notRun: 0 }, items: { total: 8, succeeded: 8, failed: 0, notRun: 0 }, returned: 8 },
        output: { container: 'out', blob: `${i.runId}/parallel_run_step.txt`, rows: 8, bytes: 64 },
        summary: `out/${i.runId}/summary.json`,
      },
    }),
    [BATCH.teardownPool.name]: (i: { poolId: string }) => ({ poolId: i.poolId }),
  };
}

let seq = 0;
function runInput(runId: string, limits: Partial<{ errorThreshold: number; allowedFailedCount: number; runMaxTry: number }> = {}): BatchRunInput {
  const input: unknown = {
    runId,
    jobBlob: `batch/${runId}/job.json`,
    poolKind: 'local',
    poolId: `pool-${runId}`,
    source: { kind: 'http', eventId: runId },
    job: {
      inputKind: 'files',
      inputs: { kind: 'prefix', container: 'in', prefix: 'data/' },
      miniBatchSize: 2,
      nodeCount: 1,
      processCountPerNode: 1,
      outputAction: 'append_row',
      appendRowFileName: 'parallel_run_step.txt',
      output: { container: 'out', prefix: `${runId}/` },
      runInvocationTimeoutSeconds: 30,
      runMaxTry: limits.runMaxTry ?? 1,
      errorThreshold: limits.errorThreshold ?? -1,
      allowedFailedCount: limits.allowedFailedCount ?? -1,
      allowedFailedPercent: 100,
    },
  };
  return input as BatchRunInput;
}

async function runBatch(answers: Record<string, Answer>, limits?: Parameters<typeof runInput>[1]): Promise<{ status: OrchestrationStatus; custom: BatchRunCustomStatus; calls: Scenario['calls']; names: string[] }> {
  const runId = `batch-orch-test-${++seq}-${Date.now()}`;
  // A scenario answers per mini-batch (scoreMiniBatch); a grouped call is answered item by item from that.
  const perItem = answers[BATCH.scoreMiniBatch.name];
  const grouped: Answer | undefined = perItem
    ? (i: ScoreMiniBatchGroupInput, n: number) => i.items.map((item) => perItem({ ...i, items: undefined, ...item }, n))
    : undefined;
  const scenario: Scenario = { answers: { ...(grouped ? { [BATCH.scoreMiniBatchGroup.name]: grouped } : {}), ...answers }, calls: [] };
  scenarios.set(runId, scenario);
  await env.startOrchestration(BATCH.run.name, runInput(runId, limits), runId);
  const status = await env.waitFor(runId, { timeoutMs: 45_000 });
  return { status, custom: status.customStatus as BatchRunCustomStatus, calls: scenario.calls, names: [...new Set(scenario.calls.map((c) => c.name))] };
}

test('happy path: image → pool → plan (two pages) → every mini-batch scored once → finalize → teardown; Completed', async () => {
  const { status, custom, calls, names } = await runBatch(happy());
  expect(status.runtimeStatus).toBe('Completed');
  const out = status.output as { runId: string; status: string; counts: { miniBatches: { succeeded: number } }; summary: unknown };
  expect(out.status).toBe('Succeeded');
  expect(out.counts.miniBatches.succeeded).toBe(MINI_BATCHES);
  expect(out.summary).toEqual({ container: 'out', blob: expect.stringMatching(/summary\.json$/) });
  expect(custom.phase).toBe('completed');
  expect(names).toEqual(CALLED);
  expect(calls.filter((c) => c.name === BATCH.planPage.name)).toHaveLength(2);
  const scored = calls
    .filter((c) => c.name === BATCH.scoreMiniBatchGroup.name)
    .flatMap((c) => (c.input as ScoreMiniBatchGroupInput).items.map((item) => ({ ...(c.input as ScoreMiniBatchGroupInput), ...item })));
  expect(scored.map((s) => s.index).sort()).toEqual([0, 1, 2, 3]);
  expect(scored.every((s) => s.nodeUri === 'http://127.0.0.1:9/node0' && s.filesAs === 'paths' && s.attempt === 1 && s.run === 0)).toBe(true);
  expect(calls.find((c) => c.name === BATCH.finalize.name)!.input).toMatchObject({ status: 'Succeeded', plan: { miniBatchCount: MINI_BATCHES } });
  expect(calls.filter((c) => c.name === BATCH.teardownPool.name)).toHaveLength(1);
}, 60_000);

test('a mini-batch fails past error_threshold → the run Fails with BatchThresholdExceeded; finalize records it; the pool is torn down', async () => {
  const real = happy();
  const { status, custom, calls } = await runBatch(
    {
      ...real,
      [BATCH.scoreMiniBatch.name]: (i: ScoreMiniBatchInput, n: number) =>
        i.index === 1 ? { index: 1, status: 'failed', itemCount: 2, succeeded: 0, failed: 2, miniBatchFailed: true, retryable: false, durationMs: 1, error: { code: 'RunRaised', message: 'boom' } } : real[BATCH.scoreMiniBatch.name](i, n),
    },
    { errorThreshold: 0 },
  );
  expect(status.runtimeStatus).toBe('Failed');
  expect(String(status.output)).toMatch(/BatchThresholdExceeded/);
  expect(custom.phase).toBe('failed');
  expect(custom.error?.code).toBe('BatchThresholdExceeded');
  expect(calls.find((c) => c.name === BATCH.finalize.name)!.input).toMatchObject({ status: 'Failed', threshold: { threshold: 'error_threshold' } });
  expect(calls.filter((c) => c.name === BATCH.teardownPool.name)).toHaveLength(1);
}, 60_000);

test('the image cannot be resolved (a value) → Failed with its code; no pool was provisioned, none torn down; finalize still runs', async () => {
  const { status, custom, names, calls } = await runBatch({
    ...happy(),
    [BATCH.resolveImage.name]: (): ActivityResult<BatchImage> => ({ ok: false, error: { code: 'ImageNotFound', message: 'Image img:9 does not exist.' } }),
  });
  expect(status.runtimeStatus).toBe('Failed');
  expect(String(status.output)).toMatch(/ImageNotFound.*Image img:9 does not exist/);
  expect(custom.error).toEqual({ code: 'ImageNotFound', message: 'Image img:9 does not exist.' });
  expect(names).toEqual([BATCH.resolveImage.name, BATCH.finalize.name]);
  expect(calls.find((c) => c.name === BATCH.finalize.name)!.input).toMatchObject({ status: 'Failed', plan: null, error: { code: 'ImageNotFound' } });
}, 60_000);

test('provisioning throws once → retried, the run Completes; teardown keeps failing → best effort: still Completed, noted in the status', async () => {
  const real = happy();
  const { status, custom, calls } = await runBatch({
    ...real,
    [BATCH.provisionPool.name]: (i, n) => {
      if (n === 1) throw new ActivityFailure({ code: 'PoolStartFailed', message: 'the node did not start' });
      return real[BATCH.provisionPool.name](i, n);
    },
    [BATCH.teardownPool.name]: () => {
      throw new ActivityFailure({ code: 'PoolBusy', message: 'cannot remove the pool' });
    },
  });
  expect(status.runtimeStatus).toBe('Completed');
  expect((status.output as { status: string }).status).toBe('Succeeded');
  expect(calls.filter((c) => c.name === BATCH.provisionPool.name)).toHaveLength(2);
  expect(calls.filter((c) => c.name === BATCH.teardownPool.name)).toHaveLength(3);
  expect(custom.error?.code).toBe('BatchPoolTeardownFailed');
  expect(custom.error?.message).toMatch(/cannot remove the pool/);
}, 60_000);

/** A one-chunk input of 5 mini-batches (10 items) on one node, no failure limits; `window` mini-batches in flight. */
function chunkOf(runId: string, window: number): BatchChunkInput {
  return {
    runId,
    chunk: 0,
    from: 0,
    to: 5,
    isLast: true,
    totals: { miniBatchCount: 5, itemCount: 10 },
    limits: { errorThreshold: -1, allowedFailedCount: -1, allowedFailedPercent: 100 },
    baseline: { miniBatchesDone: 0, miniBatchesFailed: 0, itemsSucceeded: 0, itemsFailed: 0 },
    nodeUris: ['http://127.0.0.1:9/node0'],
    window,
    runMaxTry: 1,
    scoringStartedAt: new Date().toISOString(),
    score: { poolId: `pool-${runId}`, output: { container: 'out', prefix: `${runId}/` }, appendRowFileName: 'p.txt', timeoutMs: 30_000, requestTimeoutMs: 60_000, keepRows: true, filesAs: 'paths' },
  };
}

test('a chunk started before grouped scoring calls (no perCall in its input) scores one batchScoreMiniBatch per mini-batch, as then', async () => {
  const runId = `batch-orch-test-${++seq}-${Date.now()}`;
  const scenario: Scenario = { answers: happy(), calls: [] };
  scenarios.set(runId, scenario);
  const chunkInput = chunkOf(runId, 2);
  await env.startOrchestration(BATCH.chunk.name, chunkInput, runId);
  const status = await env.waitFor(runId, { timeoutMs: 45_000 });
  expect(status.runtimeStatus).toBe('Completed');
  expect((status.output as BatchChunkResult).counts).toMatchObject({ miniBatchesDone: 5, itemsSucceeded: 10 });
  expect([...new Set(scenario.calls.map((c) => c.name))]).toEqual([BATCH.scoreMiniBatch.name]);
  expect(scenario.calls.map((c) => (c.input as ScoreMiniBatchInput).index)).toEqual([0, 1, 2, 3, 4]);
}, 60_000);

test('a chunk started before grouped results (perCall, no groupedResults in its input) scores with batchScoreMiniBatches, as then', async () => {
  const runId = `batch-orch-test-${++seq}-${Date.now()}`;
  const perItem = happy()[BATCH.scoreMiniBatch.name];
  const scenario: Scenario = {
    answers: { ...happy(), [BATCH.scoreMiniBatches.name]: (i: ScoreMiniBatchesInput, n: number) => i.items.map((item) => perItem({ ...i, items: undefined, ...item }, n)) },
    calls: [],
  };
  scenarios.set(runId, scenario);
  const chunkInput: BatchChunkInput = {
    ...chunkOf(runId, 4),
    perCall: 2,
  };
  await env.startOrchestration(BATCH.chunk.name, chunkInput, runId);
  const status = await env.waitFor(runId, { timeoutMs: 45_000 });
  expect(status.runtimeStatus).toBe('Completed');
  expect((status.output as BatchChunkResult).counts).toMatchObject({ miniBatchesDone: 5, itemsSucceeded: 10 });
  expect([...new Set(scenario.calls.map((c) => c.name))]).toEqual([BATCH.scoreMiniBatches.name]);
  expect(scenario.calls.flatMap((c) => (c.input as ScoreMiniBatchesInput).items.map((x) => x.index)).sort()).toEqual([0, 1, 2, 3, 4]);
}, 60_000);

test('a grouped call that throws is run again as a whole, with the next run number (a newer result blob)', async () => {
  const real = happy();
  let thrown = 0;
  const { status, calls } = await runBatch({
    ...real,
    [BATCH.scoreMiniBatchGroup.name]: (i: ScoreMiniBatchGroupInput, n: number) => {
      if (i.items.some((x) => x.index === 1) && thrown++ === 0) throw new ActivityFailure({ code: 'StorageUnavailable', message: 'storage is down' });
      return i.items.map((item) => real[BATCH.scoreMiniBatch.name]({ ...i, items: undefined, ...item }, n));
    },
  });
  expect(status.runtimeStatus).toBe('Completed');
  expect((status.output as { status: string }).status).toBe('Succeeded');
  const items = calls.filter((c) => c.name === BATCH.scoreMiniBatchGroup.name).flatMap((c) => (c.input as ScoreMiniBatchGroupInput).items);
  // Mini-batch 1's call ran twice: run 0, then run 1 (with whatever shared its call); no (index, run) twice.
  expect(items.filter((x) => x.index === 1).map((x) => x.run)).toEqual([0, 1]);
  expect(new Set(items.map((x) => `${x.index}:${x.run}`)).size).toBe(items.length);
  expect([...new Set(items.map((x) => x.index))].sort()).toEqual([0, 1, 2, 3]);
  expect(items.every((x) => x.attempt === 1)).toBe(true);
}, 60_000);
