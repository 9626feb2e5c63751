/** Activity: claim the service for this run (409 `DeploymentInProgress` when another run holds it) and pick the slot. */
import { asThrowable } from '../shared/batch/activity-io';
import { DEPLOY, type PrepareDeploymentOutput } from '../shared/deploy/contract';
import { isAppError, toErrorInfo } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { prepareDeployment } from '../shared/deploy/steps';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.prepareDeployment, async (input): Promise<PrepareDeploymentOutput> => {
  try {
    const r = await prepareDeployment(getAppServices().deployContext(input.target), input);
    return {
      ok: true,
      slot: r.slot,
      isUpdate: r.isUpdate,
      ...(r.previousSlot ? { previousSlot: r.previousSlot } : {}),
      ...(r.previousImage ? { previousImage: r.previousImage } : {}),
    };
  } catch (e) {
    if (isAppError(e) && e.httpStatus < 500) return { ok: false, error: toErrorInfo(e) };
    throw asThrowable(e);
  }
});
