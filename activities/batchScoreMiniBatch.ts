/**
 * `batchScoreMiniBatch` / `batchScoreMiniBatches`: scores one mini-batch (or several, concurrently) on a pool node and writes `results/<index>.json` (a re-run overwrites
 * it). `batchScoreMiniBatchGroup`: several, concurrently, their results written as one blob (`RunLayout.resultGroup`). The call carries the pool's key (`Authorization: Bearer`), read from the pool record by pool id — the
 * orchestration never sees it. Scoring failures come back as a `failed` outcome (the orchestrator decides about another try); only storage
 * failures throw (durable retries).
 */
import type { BlobServiceClient } from '@azure/storage-blob';
import { BATCH, type ScoreMiniBatchInput } from '../shared/batch/contract';
import { chunkOf, PLAN_CHUNK_SIZE, runLayout, type RunLayout } from '../shared/batch/layout';
import { readPlanChunk, type MiniBatch } from '../shared/batch/plan';
import type { MiniBatchOutcome } from '../shared/batch/results';
import { forgetPoolKeys, poolKeys } from '../shared/batch/pools';
import { runMiniBatch, runMiniBatchGroup, type ScoreOptions } from '../shared/batch/score';
import { getStorage } from '../shared/storage';
import { registerActivity } from '../shared/workflow';

/** Plan chunks are immutable once planning is done: keep a few per process (one read per chunk, not per mini-batch). */
const chunkCache = new Map<string, Promise<MiniBatch[]>>();

function descriptor(layout: RunLayout, index: number): Promise<MiniBatch> {
  const storage = getStorage();
  const chunk = chunkOf(index);
  const key = `${layout.container}/${layout.planChunk(chunk)}`;
  let p = chunkCache.get(key);
  if (!p) {
    if (chunkCache.size >= 16) chunkCache.delete(chunkCache.keys().next().value as string);
    p = readPlanChunk(storage.container(layout.container), layout, chunk);
    p.catch(() => chunkCache.delete(key));
    chunkCache.set(key, p);
  }
  return p.then((mbs) => {
    const mb = mbs[index - chunk * PLAN_CHUNK_SIZE];
    if (!mb || mb.index !== index) throw new Error(`mini-batch ${index} is not in plan chunk ${chunk}`);
    return mb;
  });
}

/** Container clients from the storage's cache (one per container, not one per mini-batch). */
function containers(): Pick<BlobServiceClient, 'getContainerClient'> {
  const storage = getStorage();
  return { getContainerClient: (name) => storage.container(name) };
}

function scoreOptions(input: Omit<ScoreMiniBatchInput, 'runId' | 'index' | 'output' | 'appendRowFileName' | 'poolId'>, keys: { primaryKey: string } | null): ScoreOptions {
  return {
    nodeUri: input.nodeUri,
    timeoutMs: input.timeoutMs,
    requestTimeoutMs: input.requestTimeoutMs,
    keepRows: input.keepRows,
    attempt: input.attempt,
    filesAs: input.filesAs,
    ...(keys ? { headers: { authorization: `Bearer ${keys.primaryKey}` } } : {}),
  };
}

/** A pool's keys do not change while it lives, but a 401 must not stick to this process: read them again. */
function forgetKeysOn401(poolId: string | undefined, outcomes: readonly MiniBatchOutcome[]): void {
  if (poolId && outcomes.some((o) => o.error?.code === 'Unauthorized')) forgetPoolKeys(poolId);
}

async function scoreOne(input: ScoreMiniBatchInput): Promise<MiniBatchOutcome> {
  const layout = runLayout({ output: input.output, appendRowFileName: input.appendRowFileName }, input.runId);
  const storage = getStorage();
  const [mb, keys] = await Promise.all([descriptor(layout, input.index), input.poolId ? poolKeys(storage, input.poolId) : null]);
  const outcome = await runMiniBatch(containers(), layout, mb, scoreOptions(input, keys));
  forgetKeysOn401(input.poolId, [outcome]);
  return outcome;
}

registerActivity(BATCH.scoreMiniBatch, scoreOne);

/**
 * Several mini-batches in one call, scored concurrently (each queued on its node); outcomes in input order. A storage
 * failure of any of them fails the call once all have settled (none still writing its result when the orchestrator
 * runs the call again).
 */
registerActivity(BATCH.scoreMiniBatches, async ({ items, ...common }): Promise<MiniBatchOutcome[]> => {
  const settled = await Promise.allSettled(items.map((item) => scoreOne({ ...common, ...item })));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<MiniBatchOutcome>).value);
});

/**
 * Several mini-batches in one call, scored concurrently (each queued on its node), their results written as one blob;
 * outcomes in input order. Reading a descriptor or the pool's keys, or the write, failing fails the call (the
 * orchestrator runs it again with the next run number: a newer blob).
 */
registerActivity(BATCH.scoreMiniBatchGroup, async ({ items, ...common }): Promise<MiniBatchOutcome[]> => {
  const layout = runLayout({ output: common.output, appendRowFileName: common.appendRowFileName }, common.runId);
  const storage = getStorage();
  const [mbs, keys] = await Promise.all([Promise.all(items.map((x) => descriptor(layout, x.index))), common.poolId ? poolKeys(storage, common.poolId) : null]);
  const outcomes = await runMiniBatchGroup(
    containers(),
    layout,
    items.map((x, i) => ({ mb: mbs[i], opts: scoreOptions({ ...common, ...x }, keys), run: x.run })),
  );
  forgetKeysOn401(common.poolId, outcomes);
  return outcomes;
});
