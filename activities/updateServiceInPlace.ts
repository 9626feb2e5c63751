/** Activity: an in-place update (PATCH of fields no replica reads) — checks the serving slot, starts nothing. */
import { DEPLOY } from '../shared/deploy/contract';
import type { DeployedSlot } from '../shared/seams';
import { toErrorInfo } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { updateInPlaceStep } from '../shared/deploy/steps';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.updateInPlace, async (input): Promise<DeployedSlot> => {
  try {
    return await updateInPlaceStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot);
  } catch (e) {
    const error = toErrorInfo(e, 'DeploymentFailed');
    return { serviceName: input.deploy.serviceName, slot: input.slot, scoringUri: '', swaggerUri: '', healthUri: '', state: 'Failed', error };
  }
});
