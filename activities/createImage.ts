/** Activity: build the run's image (`name:N`, idempotent per run) with the configured builder. */
import { asThrowable } from '../shared/batch/activity-io';
import { DEPLOY, type CreateImageOutput, type ImageSummary } from '../shared/deploy/contract';
import { isAppError, toErrorInfo } from '../shared/errors';
import { imageRequestFromManifest } from '../shared/images/image-registry';
import { getAppServices } from '../shared/services/app';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.createImage, async (input): Promise<CreateImageOutput> => {
  try {
    const { images } = getAppServices();
    const { image } = await images.create(imageRequestFromManifest(input.manifest, input.files, [input.modelId], `${input.runId}/image`));
    const summary: ImageSummary = {
      id: image.id,
      name: image.name,
      version: image.version,
      state: image.state,
      runtime: image.runtime,
      models: image.models,
      contextBlob: image.contextBlob,
      ...(image.imageRef ? { imageRef: image.imageRef } : {}),
      ...(image.digest ? { digest: image.digest } : {}),
      ...(image.logBlob ? { logBlob: image.logBlob } : {}),
    };
    if (image.state !== 'Succeeded') {
      return { ok: false, image: summary, error: image.error ?? { code: 'ImageBuildFailed', message: `Image ${image.id} is ${image.state}; see ${image.logBlob ?? 'the build log'}.` } };
    }
    return { ok: true, image: summary };
  } catch (e) {
    if (isAppError(e) && e.httpStatus < 500) return { ok: false, error: toErrorInfo(e) };
    throw asThrowable(e);
  }
});
