/** `batchTeardownPool`: removes a run's pool and its record (absent is not an error). */
import { BATCH } from '../shared/batch/contract';
import { teardownPool } from '../shared/batch/pools';
import { getConfig } from '../shared/config';
import { getStorage } from '../shared/storage';
import { registerActivity } from '../shared/workflow';

registerActivity(BATCH.teardownPool, async (input) => {
  await teardownPool(getConfig(), getStorage(), input.poolId, input.kind);
  return { poolId: input.poolId };
});
