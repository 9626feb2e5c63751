/** Activity: build the run's image (`name:N`, idempotent per run) with the configured builder. */
import * as df from 'durable-functions';
import { asThrowable } from '../shared/batch/activity-io';
import { isAppError, toErrorInfo } from '../shared/errors';
import { imageRequestFromManifest, type ImageRecord } from '../shared/images/registry';
import type { DeploymentManifest } from '../shared/manifest/schema';
import { getAppServices } from '../shared/services/app';
import type { RunFiles } from '../shared/services/run';
import type { ErrorInfo } from '../shared/seams';

export interface CreateImageInput {
  manifest: DeploymentManifest;
  files: RunFiles;
  modelId: string;
  runId: string;
}

export type ImageSummary = Pick<ImageRecord, 'id' | 'name' | 'version' | 'state' | 'runtime' | 'models' | 'imageRef' | 'contextBlob' | 'digest' | 'logBlob'>;
export type CreateImageOutput = { ok: true; image: ImageSummary } | { ok: false; error: ErrorInfo; image?: ImageSummary };

df.app.activity('createImage', {
  handler: async (input: CreateImageInput): Promise<CreateImageOutput> => {
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
  },
});
