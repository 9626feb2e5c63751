/** Activity: start the new slot on the target (idempotent per service + slot). */
import { DEPLOY } from '../shared/deploy/contract';
import type { DeployedSlot } from '../shared/seams';
import { toErrorInfo } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { deploySlotStep } from '../shared/deploy/steps';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.deploySlot, async (input): Promise<DeployedSlot> => {
  try {
    return await deploySlotStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot);
  } catch (e) {
    const error = toErrorInfo(e, 'DeploymentFailed');
    return { serviceName: input.deploy.serviceName, slot: input.slot, scoringUri: '', swaggerUri: '', healthUri: '', state: 'Failed', error };
  }
});
