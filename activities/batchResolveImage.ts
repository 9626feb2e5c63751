/** `batchResolveImage`: the image a batch run's pool runs (a registered image, or one built from model + script). */
import { BATCH } from '../shared/batch/contract';
import { readRunJob, resolveBatchImage } from '../shared/batch/run';
import { getConfig } from '../shared/config';
import { getStorage } from '../shared/storage';
import { registerActivity } from '../shared/workflow';

registerActivity(BATCH.resolveImage, async (input) => {
  const storage = getStorage();
  return resolveBatchImage(getConfig(), storage, await readRunJob(storage, input.jobBlob));
});
