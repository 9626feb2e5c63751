/** Activity: build the run's image (`name:N`, idempotent per run) with the configured builder. */
import { DEPLOY, type BuiltImage } from '../shared/deploy/contract';
import { imageSummary } from '../shared/deploy/registered';
import { imageRequestFromManifest } from '../shared/images/image-registry';
import { getAppServices } from '../shared/services/app';
import { Refusal, registerActivity } from '../shared/workflow';

/** A failed build is the user's to fix (see its log): it comes back as data, with the image record as `detail`. */
registerActivity(DEPLOY.createImage, async (input): Promise<BuiltImage> => {
  const { images } = getAppServices();
  const { image } = await images.create(imageRequestFromManifest(input.manifest, input.files, input.modelId ? [input.modelId] : [], `${input.runId}/image`));
  const summary = imageSummary(image);
  if (image.state !== 'Succeeded') {
    throw new Refusal(image.error ?? { code: 'ImageBuildFailed', message: `Image ${image.id} is ${image.state}; see ${image.logBlob ?? 'the build log'}.` }, { image: summary });
  }
  return { image: summary };
});
