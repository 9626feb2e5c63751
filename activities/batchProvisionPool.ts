/**
 * `batchProvisionPool`: records the pool (so a sweep can find it whatever happens next) with its keys, then
 * provisions it behind those keys. The keys are generated here and stay in the pool record (a secret: never in the
 * activity's input or output, so never in history or status). Idempotent: provisioning the same pool id again
 * reuses the recorded keys and returns the running pool.
 */
import { BATCH } from '../shared/batch/contract';
import { generatePoolKeys, getBatchPoolProvider, getPoolRecord, recordPool } from '../shared/batch/pools';
import { AppError } from '../shared/errors';
import { getConfig } from '../shared/config';
import { getStorage } from '../shared/storage';
import { registerActivity } from '../shared/workflow';

registerActivity(BATCH.provisionPool, async (input) => {
  const storage = getStorage();
  const recorded = await getPoolRecord(storage, input.poolId);
  const keys = recorded?.keys ?? generatePoolKeys();
  await recordPool(storage, { poolId: input.poolId, runId: input.runId, kind: input.kind, createdAt: recorded?.createdAt ?? new Date().toISOString(), keys });
  const provider = getBatchPoolProvider(input.kind, getConfig(), storage);
  const pool = await provider.provision({
    poolId: input.poolId,
    image: input.image,
    nodeCount: input.nodeCount,
    processCountPerNode: input.processCountPerNode,
    runInvocationTimeoutMs: input.runInvocationTimeoutMs,
    keys,
  });
  // A terminate (which tears the pool down and forgets it) may have raced with this provisioning: undo it.
  if (!(await getPoolRecord(storage, input.poolId))) {
    await provider.teardown(input.poolId);
    throw new AppError('BatchRunTerminated', `The batch run ${input.runId} was terminated while its pool was being provisioned; the pool was removed.`, 409);
  }
  return { poolId: pool.poolId, nodeUris: pool.nodeUris, filesAs: provider.filesAs }; // exactly what the orchestration may see
});
