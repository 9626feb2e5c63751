/**
 * `deployModel`: register → (promotion check) → image → deploy slot → smoke test → promote, or roll back.
 * Started by the blob, HTTP and Service Bus triggers with an instance id derived from the event. Deterministic:
 * no I/O here, times from `currentUtcDateTime`; expected failures come back from activities as values.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { DEPLOY, type DeployRunResult, type DeployServiceInput, type StartBatchAfterDeployInput } from '../shared/deploy/contract';
import type { DeploymentEventType } from '../shared/events';
import { checkPromotion } from '../shared/manifest/training';
import type { ErrorInfo } from '../shared/seams';
import { StepTracker, runErrorOf } from '../shared/deploy/run-status';
import { call, callSub, inputOf, registerOrchestration } from '../shared/workflow';
import { ROLLOUT, rolloutInstanceId } from '../shared/rollout/contract';
import { isProgressive } from '../shared/rollout/spec';

function* deployModel(context: OrchestrationContext): Generator<Task, DeployRunResult, any> {
  const input = inputOf(context, DEPLOY.run);
  const runId = context.df.instanceId;
  const now = () => context.df.currentUtcDateTime;
  const steps = new StepTracker();
  const status = () => context.df.setCustomStatus(steps.status);
  const retry = new df.RetryOptions(1000, 3);
  retry.backoffCoefficient = 2;
  const notes: string[] = [];
  // Events are best effort: a publishing failure is noted in the result, never fails or rolls back the run.
  const publish = function* (type: DeploymentEventType, subject: string, data: Record<string, unknown>): Generator<Task, void, any> {
    try {
      yield* call(context, DEPLOY.publishEvent, { type, subject, runId, time: now().toISOString(), data }, retry);
    } catch (err) {
      notes.push(`event ${type} was not published: ${runErrorOf(err, 'EventPublishFailed').message}`);
    }
  };

  const result: Partial<DeployRunResult> = { ...(input.manifest ? { serviceName: input.manifest.service.name } : {}) };
  const finish = (state: DeployRunResult['state'], error?: ErrorInfo): DeployRunResult => {
    steps.done();
    status();
    return { ...result, state, ...(error ? { error } : {}), ...(notes.length ? { notes: [...notes] } : {}) };
  };
  let held: { deploy: DeployServiceInput; slot: string } | undefined;

  try {
    // 1. Register the model.
    steps.start('register', now());
    status();
    const reg = yield* call(context, DEPLOY.registerModel, { model: input.model, files: input.files.model, source: input.source }, retry);
    if (!reg.ok) {
      steps.end('register', 'Failed', now(), reg.error.message);
      yield* publish('DeploymentFailed', `models/${input.model.name}`, { step: 'register', error: reg.error });
      return finish('Failed', reg.error);
    }
    steps.end('register', 'Succeeded', now(), reg.model.id);
    result.model = reg.model.id;
    yield* publish('ModelRegistered', `models/${reg.model.name}/${reg.model.version}`, { model: reg.model.id, files: reg.model.files, bytes: reg.model.bytes, source: input.source.kind, trainingRunId: input.training?.trainingRunId });

    // 2. Promotion policy (Service Bus): a failing policy registers but does not deploy.
    if (input.training) {
      steps.start('promotionCheck', now());
      const decision = checkPromotion(input.training.promotion, input.training.metrics);
      result.promotion = decision;
      steps.end('promotionCheck', decision.promote ? 'Succeeded' : 'Failed', now(), decision.reasons.join('; '));
      if (!decision.promote) return finish('NotPromoted', { code: 'PromotionPolicyNotMet', message: `Model ${reg.model.id} was registered but not deployed: ${decision.reasons.join('; ')}.` });
    }
    const manifest = input.manifest;
    if (!manifest) return finish('Registered');

    // 3. Build the image.
    steps.start('image', now());
    status();
    const img = yield* call(context, DEPLOY.createImage, { manifest, files: input.files, modelId: reg.model.id, runId }, retry);
    if (img.image) result.image = img.image.id;
    if (!img.ok) {
      steps.end('image', 'Failed', now(), img.error.message);
      yield* publish('DeploymentFailed', img.image ? `images/${img.image.name}/${img.image.version}` : `images/${manifest.image.name}`, { step: 'image', error: img.error, logBlob: img.image?.logBlob });
      return finish('Failed', img.error);
    }
    steps.end('image', 'Succeeded', now(), `${img.image.id} ${img.image.digest ?? ''}`.trim());
    yield* publish('ImageCreated', `images/${img.image.name}/${img.image.version}`, { image: img.image.id, digest: img.image.digest, models: img.image.models, runtime: img.image.runtime });

    // 4. Claim the service (409 when another deployment runs) and start the new slot.
    const deploy: DeployServiceInput = {
      runId,
      serviceName: manifest.service.name,
      target: manifest.target,
      image: img.image,
      config: manifest.deployConfig,
      ...(manifest.smokeTest ? { smokeTest: manifest.smokeTest } : {}),
      ...(manifest.schema ? { schema: manifest.schema } : {}),
      ...(manifest.service.description !== undefined ? { description: manifest.service.description } : {}),
      tags: manifest.service.tags,
    };
    steps.start('prepare', now());
    status();
    const prep = yield* call(context, DEPLOY.prepareDeployment, deploy, retry);
    if (!prep.ok) {
      steps.end('prepare', 'Failed', now(), prep.error.message);
      yield* publish('DeploymentFailed', `services/${deploy.serviceName}`, { step: 'prepare', error: prep.error });
      return finish('Failed', prep.error);
    }
    steps.end('prepare', 'Succeeded', now(), prep.isUpdate ? `update: ${prep.previousImage} → ${img.image.id} in slot ${prep.slot}` : `new service, slot ${prep.slot}`);
    held = { deploy, slot: prep.slot };

    steps.start('deploy', now());
    status();
    const slot = yield* call(context, DEPLOY.deploySlot, { deploy, slot: prep.slot });
    let failure: ErrorInfo | undefined;
    let logTail: string | undefined;
    if (slot.state !== 'Healthy') {
      failure = slot.error ?? { code: 'DeploymentFailed', message: `Slot ${prep.slot} is ${slot.state}.` };
      steps.end('deploy', 'Failed', now(), failure.message);
    } else {
      steps.end('deploy', 'Succeeded', now(), slot.scoringUri);
      // 5. Smoke test the new slot before any traffic reaches it.
      steps.start('smokeTest', now());
      status();
      const smoke = yield* call(context, DEPLOY.smokeTest, { deploy, slot });
      result.smokeTest = { ...(smoke.latencyMs !== undefined ? { latencyMs: smoke.latencyMs } : {}), swagger: smoke.swagger, checks: smoke.checks };
      if (!smoke.ok) {
        // `code`: the test stopped for a reason that is not the slot's (e.g. ServiceDeleted: a forced DELETE meanwhile).
        failure = smoke.code ? { code: smoke.code, message: smoke.reason ?? smoke.code } : { code: 'SmokeTestFailed', message: `Smoke test failed: ${smoke.reason}` };
        logTail = smoke.logTail;
        steps.end('smokeTest', 'Failed', now(), smoke.reason);
      } else steps.end('smokeTest', 'Succeeded', now(), smoke.latencyMs !== undefined ? `${smoke.latencyMs} ms` : 'liveness only');
    }
    // 5b. Progressive delivery (manifest `rollout:`): traffic shifts step by step under live gates; a failed rollout is rolled back below.
    if (!failure && isProgressive(manifest.rollout)) {
      steps.start('rollout', now());
      status();
      const ro = yield* callSub(context, ROLLOUT.run, { runId, serviceName: deploy.serviceName, target: deploy.target, slot: prep.slot, ...(prep.previousSlot ? { previousSlot: prep.previousSlot } : {}), spec: manifest.rollout }, rolloutInstanceId(runId));
      result.rollout = ro;
      steps.end('rollout', ro.promoted ? 'Succeeded' : 'Failed', now(), ro.summary);
      if (!ro.promoted) failure = ro.error ?? { code: 'RolloutFailed', message: ro.summary };
    }

    if (failure) {
      // 6b. Roll back: the previous version (if any) keeps serving.
      steps.start('rollback', now());
      status();
      const rb = yield* call(context, DEPLOY.rollback, { deploy, slot: prep.slot, reason: failure, ...(logTail !== undefined ? { logTail } : {}) }, retry);
      held = undefined;
      steps.end('rollback', 'Succeeded', now(), rb.rolledBack ? `${prep.previousImage} keeps serving` : 'service Failed');
      if (rb.rolledBack) {
        yield* publish('DeploymentRolledBack', `services/${deploy.serviceName}`, { image: img.image.id, servingImage: prep.previousImage, error: rb.error });
        return finish('RolledBack', rb.error);
      }
      yield* publish('DeploymentFailed', `services/${deploy.serviceName}`, { step: 'deploy', image: img.image.id, error: rb.error });
      return finish('Failed', rb.error);
    }

    // 6a. Promote: switch traffic and record the service. From here on the deployment has worked: nothing rolls back.
    steps.start('promote', now());
    status();
    const svc = yield* call(context, DEPLOY.promote, { deploy, slot: prep.slot }, retry);
    held = undefined;
    steps.end('promote', 'Succeeded', now(), svc.scoringUri);

    // Retire the previous slot and free its image (best effort: a failure is a note, the new version serves).
    if (prep.previousSlot || prep.previousImage) {
      steps.start('retire', now());
      status();
      try {
        const retired = yield* call(
          context,
          DEPLOY.retirePrevious,
          {
            deploy,
            slot: prep.slot,
            ...(prep.previousSlot ? { previousSlot: prep.previousSlot } : {}),
            ...(prep.previousImage ? { previousImage: prep.previousImage } : {}),
          },
          retry,
        );
        notes.push(...retired.notes);
        steps.end('retire', 'Succeeded', now(), retired.notes.length ? retired.notes.join('; ') : `slot ${prep.previousSlot ?? '-'} removed`);
      } catch (err) {
        const note = `the previous slot ${prep.previousSlot ?? ''} was not retired: ${runErrorOf(err).message}`;
        notes.push(note);
        steps.end('retire', 'Failed', now(), note);
      }
    }
    result.scoringUri = svc.scoringUri;
    result.swaggerUri = svc.swaggerUri;
    result.outcome = prep.isUpdate ? 'Updated' : 'Deployed';
    yield* publish(prep.isUpdate ? 'ServiceUpdated' : 'ServiceDeployed', `services/${deploy.serviceName}`, {
      image: img.image.id,
      model: reg.model.id,
      scoringUri: svc.scoringUri,
      swaggerUri: svc.swaggerUri,
      ...(prep.previousImage ? { previousImage: prep.previousImage } : {}),
    });

    // 7. Batch scoring the training message asked for, now that the model is deployed.
    if (input.training?.batch) {
      steps.start('batch', now());
      status();
      const batchInput: StartBatchAfterDeployInput = { batch: input.training.batch, trainingRunId: input.training.trainingRunId, model: reg.model.id, eventId: input.source.eventId };
      const b = yield* call(context, DEPLOY.startBatch, batchInput, retry);
      if (b.ok) {
        result.batch = { runId: b.runId, statusUri: `/api/runs/${b.runId}` };
        steps.end('batch', 'Succeeded', now(), `batch run ${b.runId} started`);
      } else {
        result.batch = { error: b.error };
        steps.end('batch', 'Failed', now(), b.error.message);
      }
    }
    return finish('Succeeded');
  } catch (err) {
    // An activity failed after its retries: release the service if this run holds it, then fail the run.
    const error: ErrorInfo = runErrorOf(err);
    if (held) {
      try {
        yield* call(context, DEPLOY.rollback, { deploy: held.deploy, slot: held.slot, reason: error });
      } catch {
        /* best effort */
      }
    }
    try {
      yield* publish('DeploymentFailed', result.serviceName ? `services/${result.serviceName}` : `models/${input.model.name}`, { error });
    } catch {
      /* best effort */
    }
    return finish('Failed', error);
  }
}

registerOrchestration(DEPLOY.run, deployModel);
