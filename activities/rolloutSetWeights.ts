/**
 * Activity `rolloutSetWeights`: splits (and optionally mirrors) a service's live traffic between the serving slot
 * and the new one through the target's `setTrafficWeights` (idempotent; starts the slots again after a host restart).
 * Returns the front's figures right after the change: the start of the step's window.
 */
import { AppError } from '../shared/errors';
import { ROLLOUT } from '../shared/rollout/contract';
import { getAppServices } from '../shared/services/app';
import { registerActivity } from '../shared/workflow';

registerActivity(ROLLOUT.setWeights, async (input) => {
  const target = getAppServices().deployContext(input.target).target;
  if (!target.setTrafficWeights) {
    throw new AppError('RolloutNotSupported', `Target ${input.target} cannot split traffic between two versions of a service; use rollout strategy blue_green.`, 400);
  }
  return await target.setTrafficWeights(input.serviceName, input.weights, input.mirror ? { mirror: input.mirror } : {});
});
