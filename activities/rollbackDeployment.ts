/** Activity: remove the failed slot; the previous version keeps serving (update) or the service is Failed (first deployment). */
import * as df from 'durable-functions';
import { asThrowable } from '../shared/batch/activity-io';
import { getAppServices } from '../shared/services/app';
import { rollbackStep, type DeployServiceInput } from '../shared/services/deploy';
import type { ErrorInfo } from '../shared/seams';

df.app.activity('rollbackDeployment', {
  handler: async (input: { deploy: DeployServiceInput; slot: string; reason: ErrorInfo; logTail?: string }) => {
    try {
      const r = await rollbackStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot, input.reason, input.logTail);
      return { rolledBack: r.rolledBack, error: r.error, state: r.service?.state ?? 'Deleted' };
    } catch (e) {
      throw asThrowable(e);
    }
  },
});
