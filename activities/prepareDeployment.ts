/** Activity: claim the service for this run (409 `DeploymentInProgress` when another run holds it) and pick the slot. */
import * as df from 'durable-functions';
import { asThrowable } from '../shared/batch/activity-io';
import { isAppError, toErrorInfo } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { prepareDeployment, type DeployServiceInput } from '../shared/services/deploy';
import type { ErrorInfo } from '../shared/seams';

export type PrepareDeploymentOutput =
  | { ok: true; slot: string; previousSlot?: string; previousImage?: string; isUpdate: boolean }
  | { ok: false; error: ErrorInfo };

df.app.activity('prepareDeployment', {
  handler: async (input: DeployServiceInput): Promise<PrepareDeploymentOutput> => {
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
  },
});
