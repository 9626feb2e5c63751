/**
 * `deployLoneOnnx`: a lone `incoming/<name>/<file>.onnx` deploys with defaults — but only if it is still alone once
 * the folder has settled (LONE_ONNX_SETTLE_SECONDS): a model uploaded before its `deploy.json` (the documented
 * order) must not also get a default deployment. Then the usual `deployModel` run starts as a sub-orchestration,
 * with the run id the event gives it, once its service is claimed (`claimLoneOnnx`: a busy service is refused with a
 * 409 recorded in `deploy.error.json`, as for a blob manifest). Deterministic: the wait is a durable timer, the check an activity.
 */
import type { OrchestrationContext, Task } from 'durable-functions';
import { DEPLOY, type DeployLoneOnnxResult } from '../shared/deploy/contract';
import { call, callSub, inputOf, registerOrchestration } from '../shared/workflow';

registerOrchestration(DEPLOY.loneOnnx, function* (context: OrchestrationContext): Generator<Task, DeployLoneOnnxResult, any> {
  const input = inputOf(context, DEPLOY.loneOnnx);
  context.df.setCustomStatus({ step: 'settling', runId: input.runId });
  if (input.settleSeconds > 0) {
    yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + input.settleSeconds * 1000));
  }
  const check = yield* call(context, DEPLOY.checkLoneOnnx, { folder: input.folder, onnxFile: input.onnxFile, runId: input.runId });
  if (!check.lone) {
    context.df.setCustomStatus({ step: 'skipped', why: check.why });
    return { deployed: false, why: check.why };
  }
  // Claimed at the door like every other start: a busy service refuses here (recorded beside the model), not at prepare.
  const claim = yield* call(context, DEPLOY.claimLoneOnnx, { folder: input.folder, onnxFile: input.onnxFile, runId: input.runId, run: input.run });
  if (!claim.claimed) {
    const why = `${claim.error?.code}: ${claim.error?.message}`;
    context.df.setCustomStatus({ step: 'refused', why });
    return { deployed: false, why, error: claim.error };
  }
  context.df.setCustomStatus({ step: 'deploying', runId: input.runId });
  yield* callSub(context, DEPLOY.run, input.run, input.runId);
  return { deployed: true, runId: input.runId };
});
