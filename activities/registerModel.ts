/** Activity: register the run's model version (idempotent per event: the same run gets the same version). */
import * as df from 'durable-functions';
import { asThrowable } from '../shared/batch/activity-io';
import { toErrorInfo, isAppError } from '../shared/errors';
import type { DeploymentManifest } from '../shared/manifest/schema';
import type { ModelSource } from '../shared/registry/models';
import { getAppServices } from '../shared/services/app';
import type { RunFiles } from '../shared/services/run';
import type { ErrorInfo } from '../shared/seams';

export interface RegisterModelInput {
  model: DeploymentManifest['model'];
  files: RunFiles['model'];
  source: ModelSource;
}

export type RegisterModelOutput =
  | { ok: true; created: boolean; model: { id: string; name: string; version: number; files: number; bytes: number } }
  | { ok: false; error: ErrorInfo };

df.app.activity('registerModel', {
  handler: async (input: RegisterModelInput): Promise<RegisterModelOutput> => {
    try {
      const { models } = getAppServices();
      const { model, created } = await models.register({
        name: input.model.name,
        files: input.files,
        tags: input.model.tags,
        properties: input.model.properties,
        ...(input.model.description !== undefined ? { description: input.model.description } : {}),
        source: input.source,
      });
      return { ok: true, created, model: { id: model.id, name: model.name, version: model.version, files: model.files.length, bytes: model.files.reduce((s, f) => s + f.size, 0) } };
    } catch (e) {
      if (isAppError(e) && e.httpStatus < 500) return { ok: false, error: toErrorInfo(e) };
      throw asThrowable(e); // transient: retried by the orchestration
    }
  },
});
