/**
 * Activity `retirePreviousSlot`: after a promote, removes the previous slot and frees its image, best effort (it
 * never fails the run, and never triggers a rollback).
 */
import { DEPLOY } from '../shared/deploy/contract';
import { getAppServices } from '../shared/services/app';
import { retirePreviousStep } from '../shared/deploy/steps';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.retirePrevious, async (input) => {
  return await retirePreviousStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot, {
    ...(input.previousSlot ? { slot: input.previousSlot } : {}),
    ...(input.previousImage ? { image: input.previousImage } : {}),
  });
});
