/** `batchResolveImage`: the image a batch run's pool runs (a registered image, or one built from model + script). */
import * as df from 'durable-functions';
import { asActivityResult, type ResolveImageInput } from '../shared/batch/activity-io';
import { BATCH_ACTIVITIES, readRunJob, resolveBatchImage } from '../shared/batch/run';
import { getConfig } from '../shared/config';
import { getStorage } from '../shared/storage';

df.app.activity(BATCH_ACTIVITIES.resolveImage, {
  handler: (input: ResolveImageInput) =>
    asActivityResult(async () => {
      const storage = getStorage();
      return resolveBatchImage(getConfig(), storage, await readRunJob(storage, input.jobBlob));
    }),
});
