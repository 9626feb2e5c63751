/** Activity: claim the service for this run (409 `DeploymentInProgress` when another run holds it) and pick the slot. */
import { DEPLOY, type PreparedSlot } from '../shared/deploy/contract';
import { getAppServices } from '../shared/services/app';
import { prepareDeployment } from '../shared/deploy/steps';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.prepareDeployment, async (input): Promise<PreparedSlot> => {
  const r = await prepareDeployment(getAppServices().deployContext(input.target), input);
  return {
    slot: r.slot,
    isUpdate: r.isUpdate,
    ...(r.previousSlot ? { previousSlot: r.previousSlot } : {}),
    ...(r.previousImage ? { previousImage: r.previousImage } : {}),
  };
});
