/** Activity: smoke-test a slot through its direct URIs (liveness, swagger, sample, expected output). */
import * as df from 'durable-functions';
import { asThrowable } from '../shared/batch/activity-io';
import { getAppServices } from '../shared/services/app';
import { smokeTestStep, type DeployServiceInput } from '../shared/services/deploy';
import type { SmokeTestResult } from '../shared/scoring/smoke';
import type { DeployedSlot } from '../shared/seams';

df.app.activity('smokeTest', {
  handler: async (input: { deploy: DeployServiceInput; slot: DeployedSlot }): Promise<SmokeTestResult> => {
    try {
      return await smokeTestStep(getAppServices().deployContext(input.deploy.target), input.deploy, input.slot);
    } catch (e) {
      throw asThrowable(e);
    }
  },
});
