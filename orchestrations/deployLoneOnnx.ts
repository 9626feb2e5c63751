/**
 * `deployLoneOnnx`: a lone `incoming/<name>/<file>.onnx` deploys with defaults — but only if it is still alone once
 * the folder has settled (LONE_ONNX_SETTLE_SECONDS): a model uploaded before its `deploy.json` (the documented
 * order) must not also get a default deployment. Then the usual `deployModel` run starts as a sub-orchestration,
 * with the run id the event gives it, once its service is claimed (`claimLoneOnnx`: a busy service is refused with a
 * 409 recorded in `deploy.error.json`, as for a blob manifest). Deterministic: the wait is a durable timer, the check an activity.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext } from 'durable-functions';
import { DEPLOY_LONE_ONNX_ORCHESTRATION, DEPLOY_ORCHESTRATION, type DeployLoneOnnxInput } from '../shared/services/run';

df.app.orchestration(DEPLOY_LONE_ONNX_ORCHESTRATION, function* (context: OrchestrationContext) {
  const input = context.df.getInput() as DeployLoneOnnxInput;
  context.df.setCustomStatus({ step: 'settling', runId: input.runId });
  if (input.settleSeconds > 0) {
    yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + input.settleSeconds * 1000));
  }
  const check = (yield context.df.callActivity('checkLoneOnnx', { folder: input.folder, onnxFile: input.onnxFile })) as { lone: boolean; why?: string };
  if (!check.lone) {
    context.df.setCustomStatus({ step: 'skipped', why: check.why });
    return { deployed: false, why: check.why };
  }
  // Claimed at the door like every other start: a busy service refuses here (recorded beside the model), not at prepare.
  const claim = (yield context.df.callActivity('claimLoneOnnx', { folder: input.folder, onnxFile: input.onnxFile, runId: input.runId, run: input.run })) as { claimed: boolean; error?: { code: string; message: string } };
  if (!claim.claimed) {
    const why = `${claim.error?.code}: ${claim.error?.message}`;
    context.df.setCustomStatus({ step: 'refused', why });
    return { deployed: false, why, error: claim.error };
  }
  context.df.setCustomStatus({ step: 'deploying', runId: input.runId });
  yield context.df.callSubOrchestrator(DEPLOY_ORCHESTRATION, input.run, input.runId);
  return { deployed: true, runId: input.runId };
});
