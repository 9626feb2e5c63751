/**
 * Activity `promoteDeployment`: switches traffic to the new slot and records the service (after it returns the
 * deployment has worked). The previous slot is removed by `retirePreviousSlot` (its own file).
 */
import { DEPLOY } from '../shared/deploy/contract';
import { getAppServices } from '../shared/services/app';
import { promoteStep } from '../shared/deploy/steps';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.promote, async (input) => {
  const service = await promoteStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot);
  return { name: service.name, state: service.state, image: service.image, scoringUri: service.scoringUri, swaggerUri: service.swaggerUri };
});
