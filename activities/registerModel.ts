/** Activity: register the run's model version (idempotent per event: the same run gets the same version). */
import { DEPLOY, type RegisteredModel } from '../shared/deploy/contract';
import { modelSummary } from '../shared/deploy/registered';
import { getAppServices } from '../shared/services/app';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.registerModel, async (input): Promise<RegisteredModel> => {
  const { models } = getAppServices();
  const { model, created } = await models.register({
    name: input.model.name,
    files: input.files,
    tags: input.model.tags,
    properties: input.model.properties,
    ...(input.model.description !== undefined ? { description: input.model.description } : {}),
    source: input.source,
  });
  return { created, model: modelSummary(model) };
});
