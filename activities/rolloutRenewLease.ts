/**
 * Activity `rolloutRenewLease`: a rollout that runs longer than the deployment lease (2 h: long bakes, approval
 * waits) renews its run's hold on the service, so no other deployment takes the service over meanwhile.
 */
import { ROLLOUT } from '../shared/rollout/contract';
import { getAppServices } from '../shared/services/app';
import { registerActivity } from '../shared/workflow';

registerActivity(ROLLOUT.renewLease, async (input) => {
  return { held: await getAppServices().services.renewDeployment(input.serviceName, input.runId) };
});
