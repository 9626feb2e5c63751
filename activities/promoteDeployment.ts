/** Activity: switch traffic to the new slot, record the service, retire the previous slot. */
import * as df from 'durable-functions';
import { getAppServices } from '../shared/services/app';
import { promoteStep, type DeployServiceInput } from '../shared/services/deploy';

df.app.activity('promoteDeployment', {
  handler: async (input: { deploy: DeployServiceInput; slot: string; previousSlot?: string; previousImage?: string }) => {
    const service = await promoteStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot, {
      ...(input.previousSlot ? { slot: input.previousSlot } : {}),
      ...(input.previousImage ? { image: input.previousImage } : {}),
    });
    return { name: service.name, state: service.state, image: service.image, scoringUri: service.scoringUri, swaggerUri: service.swaggerUri };
  },
});
