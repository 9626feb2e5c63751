/** Activity: smoke-test a slot through its direct URIs (liveness, swagger, sample, expected output). */
import { DEPLOY } from '../shared/deploy/contract';
import { getAppServices } from '../shared/services/app';
import { smokeTestStep } from '../shared/deploy/steps';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.smokeTest, async (input) => {
  return await smokeTestStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot);
});
