/** Activity: remove the failed slot; the previous version keeps serving (update) or the service is Failed (first deployment). */
import { DEPLOY } from '../shared/deploy/contract';
import { getAppServices } from '../shared/services/app';
import { rollbackStep } from '../shared/deploy/steps';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.rollback, async (input) => {
  const r = await rollbackStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot, input.reason, input.logTail);
  return { rolledBack: r.rolledBack, error: r.error, state: r.service?.state ?? 'Deleted' };
});
