/** Activity `rolloutReadTraffic`: the service front's cumulative per-slot figures (the end of a step's window). */
import { AppError } from '../shared/errors';
import { ROLLOUT } from '../shared/rollout/contract';
import { getAppServices } from '../shared/services/app';
import { registerActivity } from '../shared/workflow';

registerActivity(ROLLOUT.readTraffic, async (input) => {
  const target = getAppServices().deployContext(input.target).target;
  if (!target.trafficSnapshot) throw new AppError('RolloutNotSupported', `Target ${input.target} does not report per-version traffic.`, 400);
  return await target.trafficSnapshot(input.serviceName);
});
