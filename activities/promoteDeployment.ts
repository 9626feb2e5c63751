/**
 * Activities: `promoteDeployment` switches traffic to the new slot and records the service (after it returns the
 * deployment has worked); `retirePreviousSlot` removes the previous slot and frees its image, best effort (it
 * never fails the run, and never triggers a rollback).
 */
import { asThrowable } from '../shared/batch/activity-io';
import { DEPLOY } from '../shared/deploy/contract';
import { getAppServices } from '../shared/services/app';
import { promoteStep, retirePreviousStep } from '../shared/services/deploy';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.promote, async (input) => {
  try {
    const service = await promoteStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot);
    return { name: service.name, state: service.state, image: service.image, scoringUri: service.scoringUri, swaggerUri: service.swaggerUri };
  } catch (e) {
    throw asThrowable(e);
  }
});

registerActivity(DEPLOY.retirePrevious, async (input) => {
  try {
    return await retirePreviousStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot, {
      ...(input.previousSlot ? { slot: input.previousSlot } : {}),
      ...(input.previousImage ? { image: input.previousImage } : {}),
    });
  } catch (e) {
    throw asThrowable(e);
  }
});
