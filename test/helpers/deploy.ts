/**
 * Test helper: the deploy steps of shared/deploy/steps.ts run in sequence without the orchestrator, so tests can
 * drive a target and the registries directly. The app never uses this: its workflow is orchestrations/deployModel.ts
 * (which, unlike this helper, retires the previous slot best effort and publishes events).
 */
import { AppError, toErrorInfo } from '../../shared/errors';
import type { DeployServiceInput } from '../../shared/deploy/contract';
import type { SmokeTestResult } from '../../shared/scoring/smoke';
import type { ErrorInfo } from '../../shared/seams';
import { deploySlotStep, prepareDeployment, promoteStep, retirePreviousStep, rollbackStep, smokeTestStep, updateInPlaceStep, type DeployContext } from '../../shared/deploy/steps';
import type { ServiceRecord } from '../../shared/registry/services';

export type DeployOutcome = 'Deployed' | 'Updated' | 'Failed' | 'RolledBack';

export interface DeployServiceResult {
  outcome: DeployOutcome;
  service: ServiceRecord;
  slot: string;
  smokeTest?: SmokeTestResult;
  error?: ErrorInfo;
}

/**
 * All steps in sequence (an in-place update, `input.inPlace`: `updateInPlaceStep` instead of `deploySlotStep`, and
 * nothing retired). Throws only for `DeploymentInProgress`-style refusals (before anything started).
 */
export async function deployService(ctx: DeployContext, input: DeployServiceInput): Promise<DeployServiceResult> {
  const begin = await prepareDeployment(ctx, input);
  const slot = begin.slot;
  let smoke: SmokeTestResult | undefined;
  let failure: ErrorInfo | undefined;
  let tail: string | undefined;
  try {
    const deployed = input.inPlace ? await updateInPlaceStep(ctx, input, slot) : await deploySlotStep(ctx, input, slot);
    if (deployed.state !== 'Healthy') {
      failure = deployed.error ?? { code: 'DeploymentFailed', message: `Slot ${slot} of ${input.serviceName} is ${deployed.state}.` };
    } else {
      smoke = await smokeTestStep(ctx, input, deployed);
      if (!smoke.ok) {
        failure = { code: 'SmokeTestFailed', message: `Smoke test failed: ${smoke.reason}` };
        tail = smoke.logTail;
      }
    }
  } catch (e) {
    failure = toErrorInfo(e, 'DeploymentFailed');
  }
  if (failure) {
    const rb = await rollbackStep(ctx, input, slot, failure, tail);
    if (!rb.service) throw new AppError(rb.error.code, rb.error.message, 409); // deleted meanwhile
    return { outcome: rb.rolledBack ? 'RolledBack' : 'Failed', service: rb.service, slot, ...(smoke ? { smokeTest: smoke } : {}), error: rb.error };
  }
  const service = await promoteStep(ctx, input, slot);
  if (!input.inPlace) await retirePreviousStep(ctx, input, slot, { slot: begin.previousSlot, image: begin.previousImage });
  return { outcome: begin.isUpdate ? 'Updated' : 'Deployed', service, slot, ...(smoke ? { smokeTest: smoke } : {}) };
}
