/**
 * `batchProvisionPool`: records the pool (so a sweep can find it whatever happens next), then provisions it.
 * Idempotent: provisioning the same pool id again returns the running pool.
 */
import * as df from 'durable-functions';
import { asActivityResult, type ProvisionPoolInput } from '../shared/batch/activity-io';
import { getBatchPoolProvider, getPoolRecord, recordPool } from '../shared/batch/pools';
import { AppError } from '../shared/errors';
import { BATCH_ACTIVITIES } from '../shared/batch/run';
import { getConfig } from '../shared/config';
import { getStorage } from '../shared/storage';

df.app.activity(BATCH_ACTIVITIES.provisionPool, {
  handler: (input: ProvisionPoolInput) =>
    asActivityResult(async () => {
      const storage = getStorage();
      await recordPool(storage, { poolId: input.poolId, runId: input.runId, kind: input.kind, createdAt: new Date().toISOString() });
      const provider = getBatchPoolProvider(input.kind, getConfig(), storage);
      const pool = await provider.provision({
        poolId: input.poolId,
        image: input.image,
        nodeCount: input.nodeCount,
        processCountPerNode: input.processCountPerNode,
        runInvocationTimeoutMs: input.runInvocationTimeoutMs,
      });
      // A terminate (which tears the pool down and forgets it) may have raced with this provisioning: undo it.
      if (!(await getPoolRecord(storage, input.poolId))) {
        await provider.teardown(input.poolId);
        throw new AppError('BatchRunTerminated', `The batch run ${input.runId} was terminated while its pool was being provisioned; the pool was removed.`, 409);
      }
      return pool;
    }),
});
