/** Activity: start the new slot on the target (idempotent per service + slot). */
import * as df from 'durable-functions';
import { toErrorInfo } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { deploySlotStep, type DeployServiceInput } from '../shared/services/deploy';
import type { DeployedSlot } from '../shared/seams';

df.app.activity('deploySlot', {
  handler: async (input: { deploy: DeployServiceInput; slot: string }): Promise<DeployedSlot> => {
    try {
      return await deploySlotStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot);
    } catch (e) {
      const error = toErrorInfo(e, 'DeploymentFailed');
      return { serviceName: input.deploy.serviceName, slot: input.slot, scoringUri: '', swaggerUri: '', healthUri: '', state: 'Failed', error };
    }
  },
});
