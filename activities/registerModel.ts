/** Activity: register the run's model version (idempotent per event: the same run gets the same version). */
import { asThrowable } from '../shared/batch/activity-io';
import { DEPLOY, type RegisterModelOutput } from '../shared/deploy/contract';
import { toErrorInfo, isAppError } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.registerModel, async (input): Promise<RegisterModelOutput> => {
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
});
