/** `batchTeardownPool`: removes a run's pool and its record (absent is not an error). */
import * as df from 'durable-functions';
import { asThrowable, type TeardownPoolInput } from '../shared/batch/activity-io';
import { teardownPool } from '../shared/batch/pools';
import { BATCH_ACTIVITIES } from '../shared/batch/run';
import { getConfig } from '../shared/config';
import { getStorage } from '../shared/storage';

df.app.activity(BATCH_ACTIVITIES.teardownPool, {
  handler: async (input: TeardownPoolInput): Promise<{ poolId: string }> => {
    try {
      await teardownPool(getConfig(), getStorage(), input.poolId, input.kind);
      return { poolId: input.poolId };
    } catch (e) {
      throw asThrowable(e);
    }
  },
});
