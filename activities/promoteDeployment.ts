/**
 * Activities: `promoteDeployment` switches traffic to the new slot and records the service (after it returns the
 * deployment has worked); `retirePreviousSlot` removes the previous slot and frees its image, best effort (it
 * never fails the run, and never triggers a rollback).
 */
import * as df from 'durable-functions';
import { asThrowable } from '../shared/batch/activity-io';
import { getAppServices } from '../shared/services/app';
import { promoteStep, retirePreviousStep, type DeployServiceInput } from '../shared/services/deploy';

df.app.activity('promoteDeployment', {
  handler: async (input: { deploy: DeployServiceInput; slot: string }) => {
    try {
      const service = await promoteStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot);
      return { name: service.name, state: service.state, image: service.image, scoringUri: service.scoringUri, swaggerUri: service.swaggerUri };
    } catch (e) {
      throw asThrowable(e);
    }
  },
});

df.app.activity('retirePreviousSlot', {
  handler: async (input: { deploy: DeployServiceInput; slot: string; previousSlot?: string; previousImage?: string }) => {
    try {
      return await retirePreviousStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot, {
        ...(input.previousSlot ? { slot: input.previousSlot } : {}),
        ...(input.previousImage ? { image: input.previousImage } : {}),
      });
    } catch (e) {
      throw asThrowable(e);
    }
  },
});
