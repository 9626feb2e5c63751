/**
 * `deployModel`, the deployment workflow, as a saga:
 *
 *   register → (promotion check) → image → prepare (claim the service, pick a slot) → deploy slot → smoke test → promote
 *
 * An in-place update (`PATCH /api/services/{name}` of fields no replica reads: `input.update.mode` `inPlace`)
 * claims the serving slot itself and runs `inPlace` (check the serving slot, start nothing) instead of `deploy`;
 * the smoke test, promote (which records the change, no traffic switch) and rollback are the same, and nothing is
 * retired.
 *
 * `step()` tracks each step in the custom status (Running, then Succeeded or Failed). `prepare` claims the service
 * and starts a slot, so it pushes a compensation (release the slot); when a later step fails — a refusal that comes
 * back as data, an unhealthy slot, a failed smoke test, or an activity that still throws after its retries — the
 * compensations run in reverse and the run ends Failed or RolledBack. Promote is the pivot: after it the deployment
 * has worked and nothing is compensated (retiring the previous slot and the events are best effort: notes).
 *
 * Started by the blob, HTTP and Service Bus triggers with an instance id derived from the event. Deterministic: no
 * I/O here, times from `currentUtcDateTime`. The activities it calls (names, order, inputs, retry options) are the
 * ones recorded in existing histories.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { DEPLOY, type DeployRunResult, type DeployServiceInput, type ImageSummary, type PreparedSlot } from '../shared/deploy/contract';
import type { DeploymentEventType } from '../shared/events';
import { checkPromotion } from '../shared/manifest/training';
import type { DeployedSlot, ErrorInfo } from '../shared/seams';
import { deployServiceInput, StepTracker, type StepName } from '../shared/deploy/run-status';
import { call, callSub, failureOf, inputOf, registerOrchestration, type ActivityResult } from '../shared/workflow';
import { ROLLOUT, rolloutInstanceId } from '../shared/rollout/contract';
import { isProgressive } from '../shared/rollout/spec';

type Gen<T> = Generator<Task, T, any>;

interface RunEvent {
  type: DeploymentEventType;
  subject: string;
  data: Record<string, unknown>;
}

/** Why the run stops. */
interface Failure {
  error: ErrorInfo;
  /** An activity threw after its retries (rather than a value the workflow judged). */
  thrown: boolean;
  /** The failed slot's log tail, for the rollback record. */
  logTail?: string;
  /** How the failure is told when no compensation decides otherwise (default: `DeploymentFailed` with the error). */
  event?: RunEvent;
}

/** How the run ends once compensated. */
interface Ending {
  state: 'Failed' | 'RolledBack';
  error: ErrorInfo;
  event: RunEvent;
}

/** Undoes a step; may decide how the run ends. Given a thrown failure it must not throw (best effort). */
type Compensation = (failure: Failure) => Gen<Ending | undefined>;

/** A step failed in a way the workflow judged (not a throw): unwinds the saga. */
class StepFailed extends Error {
  constructor(readonly failure: Failure) {
    super(failure.error.message);
  }
}

/** What `step()` records for a finished call: failed or not, and a detail for the status. */
type Verdict = { failed?: boolean; detail?: string };

/** The verdict on an `ActivityResult`: Failed with the refusal's message, or Succeeded with `detail(value)`. */
const judged =
  <T, D>(detail: (value: T) => string | undefined) =>
  (r: ActivityResult<T, D>): Verdict =>
    r.ok ? { detail: detail(r.value) } : { failed: true, detail: r.error.message };

function* deployModel(context: OrchestrationContext): Gen<DeployRunResult> {
  const input = inputOf(context, DEPLOY.run);
  const runId = context.df.instanceId;
  const now = () => context.df.currentUtcDateTime;
  const retry = new df.RetryOptions(1000, 3);
  retry.backoffCoefficient = 2;
  const steps = new StepTracker();
  const status = () => context.df.setCustomStatus(steps.status);
  const notes: string[] = [];
  const result: Partial<DeployRunResult> = { ...(input.manifest ? { serviceName: input.manifest.service.name } : {}), ...(input.update ? { update: input.update } : {}) };
  const compensations: Compensation[] = [];

  /** Runs one step: Running, then the verdict on its output, or Failed with the error it threw after its retries. */
  function* step<T>(name: StepName, work: Gen<T>, verdict: (out: T) => Verdict, thrownDetail = (err: unknown) => failureOf(err, 'RunFailed').message): Gen<T> {
    steps.start(name, now());
    status();
    let out: T;
    try {
      out = yield* work;
    } catch (err) {
      steps.end(name, 'Failed', now(), thrownDetail(err));
      throw err;
    }
    const v = verdict(out);
    steps.end(name, v.failed ? 'Failed' : 'Succeeded', now(), v.detail);
    return out;
  }

  /** A result activity's value; a refusal stops the run, told by `event`. */
  const valueOf = <T, D>(r: ActivityResult<T, D>, event: (error: ErrorInfo, detail?: D) => RunEvent): T => {
    if (!r.ok) throw new StepFailed({ error: r.error, thrown: false, event: event(r.error, r.detail) });
    return r.value;
  };

  // Events are best effort: a publishing failure is noted in the result, never fails or rolls back the run.
  function* publish({ type, subject, data }: RunEvent): Gen<void> {
    try {
      yield* call(context, DEPLOY.publishEvent, { type, subject, runId, time: now().toISOString(), data }, retry);
    } catch (err) {
      notes.push(`event ${type} was not published: ${failureOf(err, 'EventPublishFailed').message}`);
    }
  }

  const finish = (state: DeployRunResult['state'], error?: ErrorInfo): DeployRunResult => {
    steps.done();
    status();
    return { ...result, state, ...(error ? { error } : {}), ...(notes.length ? { notes: [...notes] } : {}) };
  };

  /** Runs the compensations in reverse. One that throws is run again for that new failure (a thrown one: best effort). */
  function* unwind(first: Failure): Gen<DeployRunResult> {
    let failure = first;
    let ending: Ending | undefined;
    while (compensations.length > 0) {
      try {
        ending = (yield* compensations[compensations.length - 1](failure)) ?? ending;
        compensations.pop();
      } catch (err) {
        failure = { error: failureOf(err, 'RunFailed'), thrown: true };
        ending = undefined;
      }
    }
    const subject = result.serviceName ? `services/${result.serviceName}` : `models/${input.model.name}`;
    const end = ending ?? { state: 'Failed', error: failure.error, event: failure.event ?? { type: 'DeploymentFailed', subject, data: { error: failure.error } } };
    yield* publish(end.event);
    return finish(end.state, end.error);
  }

  try {
    // 1. Register the model — or use the registered version the manifest names, or none (resolved at the door).
    const known = input.registered;
    let modelId: string | undefined;
    if (known?.model) {
      const m = known.model;
      yield* step('register', resolved(m), (v) => ({ detail: v === 'none' ? 'no model (the script needs none)' : `existing ${v.id}` }));
      if (m !== 'none') modelId = result.model = m.id;
    } else {
      const reg = valueOf(
        yield* step('register', call(context, DEPLOY.registerModel, { model: input.model, files: input.files.model, source: input.source }, retry), judged((v) => v.model.id)),
        (error) => ({ type: 'DeploymentFailed', subject: `models/${input.model.name}`, data: { step: 'register', error } }),
      );
      modelId = result.model = reg.model.id;
      yield* publish({ type: 'ModelRegistered', subject: `models/${reg.model.name}/${reg.model.version}`, data: { model: reg.model.id, files: reg.model.files, bytes: reg.model.bytes, source: input.source.kind, trainingRunId: input.training?.trainingRunId } });
    }

    // 2. Promotion policy (Service Bus): a failing policy registers but does not deploy.
    if (input.training) {
      const { promotion, metrics } = input.training;
      const decision = yield* step('promotionCheck', (function* (): Gen<ReturnType<typeof checkPromotion>> { return checkPromotion(promotion, metrics); })(), (d) => ({ failed: !d.promote, detail: d.reasons.join('; ') }));
      result.promotion = decision;
      if (!decision.promote) return finish('NotPromoted', { code: 'PromotionPolicyNotMet', message: `Model ${modelId ?? input.model.name} was registered but not deployed: ${decision.reasons.join('; ')}.` });
    }
    const manifest = input.manifest;
    if (!manifest) return finish('Registered');

    // 3. Build the image (a failed build comes back with its record: the run shows the image and its log) — or use
    // the built image the manifest names.
    let image: ImageSummary;
    if (known?.image) {
      image = yield* step('image', resolved(known.image), (v) => ({ detail: `existing ${v.id}` }));
    } else {
      const built = yield* step('image', call(context, DEPLOY.createImage, { manifest, files: input.files, modelId: modelId ?? '', runId }, retry), judged((v) => `${v.image.id} ${v.image.digest ?? ''}`.trim()));
      image = valueOf(built, (error, detail) => {
        const failed = detail?.image;
        if (failed) result.image = failed.id;
        return { type: 'DeploymentFailed', subject: failed ? `images/${failed.name}/${failed.version}` : `images/${manifest.image.name}`, data: { step: 'image', error, logBlob: failed?.logBlob } };
      }).image;
      yield* publish({ type: 'ImageCreated', subject: `images/${image.name}/${image.version}`, data: { image: image.id, digest: image.digest, models: image.models, runtime: image.runtime } });
    }
    result.image = image.id;

    // 4. Claim the service (409 when another deployment runs) and pick the slot; from here a failure releases it.
    const deploy = deployServiceInput(runId, manifest, image, input.update?.mode === 'inPlace');
    const service = `services/${deploy.serviceName}`;
    const prepared = (p: PreparedSlot) =>
      deploy.inPlace ? `in place: slot ${p.slot} keeps serving ${image.id}` : p.isUpdate ? `update: ${p.previousImage} → ${image.id} in slot ${p.slot}` : `new service, slot ${p.slot}`;
    const prep = valueOf(yield* step('prepare', call(context, DEPLOY.prepareDeployment, deploy, retry), judged(prepared)), (error) => ({
      type: 'DeploymentFailed',
      subject: service,
      data: { step: 'prepare', error },
    }));
    compensations.push(releaseSlot(deploy, prep));

    // 5. Start the new slot (in place: check the serving one, start nothing), then smoke test it before any traffic
    // reaches it (in place: the serving slot, with the change that touches no replica).
    const slotVerdict = (s: DeployedSlot): Verdict =>
      s.state === 'Healthy' ? { detail: deploy.inPlace ? `slot ${s.slot}, no replica restarted (${input.update?.fields.join(', ')})` : s.scoringUri } : { failed: true, detail: (s.error ?? slotFailure(prep.slot, s.state)).message };
    const slot = deploy.inPlace
      ? yield* step('inPlace', call(context, DEPLOY.updateInPlace, { deploy, slot: prep.slot }), slotVerdict)
      : yield* step('deploy', call(context, DEPLOY.deploySlot, { deploy, slot: prep.slot }), slotVerdict);
    if (slot.state !== 'Healthy') throw new StepFailed({ error: slot.error ?? slotFailure(prep.slot, slot.state), thrown: false });

    const smoke = yield* step('smokeTest', call(context, DEPLOY.smokeTest, { deploy, slot }), (s) =>
      s.ok ? { detail: s.latencyMs !== undefined ? `${s.latencyMs} ms` : 'liveness only' } : { failed: true, detail: s.reason },
    );
    result.smokeTest = { ...(smoke.latencyMs !== undefined ? { latencyMs: smoke.latencyMs } : {}), swagger: smoke.swagger, checks: smoke.checks };
    if (!smoke.ok) {
      // `code`: the test stopped for a reason that is not the slot's (e.g. ServiceDeleted: a forced DELETE meanwhile).
      const error = smoke.code ? { code: smoke.code, message: smoke.reason ?? smoke.code } : { code: 'SmokeTestFailed', message: `Smoke test failed: ${smoke.reason}` };
      throw new StepFailed({ error, thrown: false, ...(smoke.logTail !== undefined ? { logTail: smoke.logTail } : {}) });
    }
    // 5b. Progressive delivery (manifest `rollout:`): traffic shifts step by step under live gates; a rollout that is
    // not promoted is a judged failure: the new slot is rolled back and the previous version keeps serving.
    if (isProgressive(manifest.rollout)) {
      const rolloutInput = { runId, serviceName: deploy.serviceName, target: deploy.target, slot: prep.slot, ...(prep.previousSlot ? { previousSlot: prep.previousSlot } : {}), spec: manifest.rollout };
      const ro = yield* step('rollout', callSub(context, ROLLOUT.run, rolloutInput, rolloutInstanceId(runId)), (r) => ({ failed: !r.promoted, detail: r.summary }));
      result.rollout = ro;
      if (!ro.promoted) throw new StepFailed({ error: ro.error ?? { code: 'RolloutFailed', message: ro.summary }, thrown: false });
    }

    // 6. Promote: switch traffic and record the service. The pivot: from here on the deployment has worked.
    const svc = yield* step('promote', call(context, DEPLOY.promote, { deploy, slot: prep.slot }, retry), (s) => ({ detail: s.scoringUri }));
    compensations.length = 0;

    // Retire the previous slot and free its image (best effort: a failure is a note, the new version serves).
    if (!deploy.inPlace && (prep.previousSlot || prep.previousImage)) {
      const notRetired = (err: unknown) => `the previous slot ${prep.previousSlot ?? ''} was not retired: ${failureOf(err, 'RunFailed').message}`;
      try {
        const retire = call(
          context,
          DEPLOY.retirePrevious,
          { deploy, slot: prep.slot, ...(prep.previousSlot ? { previousSlot: prep.previousSlot } : {}), ...(prep.previousImage ? { previousImage: prep.previousImage } : {}) },
          retry,
        );
        const retired = yield* step('retire', retire, (r) => ({ detail: r.notes.length ? r.notes.join('; ') : `slot ${prep.previousSlot ?? '-'} removed` }), notRetired);
        notes.push(...retired.notes);
      } catch (err) {
        notes.push(notRetired(err));
      }
    }
    result.scoringUri = svc.scoringUri;
    result.swaggerUri = svc.swaggerUri;
    result.outcome = prep.isUpdate ? 'Updated' : 'Deployed';
    yield* publish({
      type: prep.isUpdate ? 'ServiceUpdated' : 'ServiceDeployed',
      subject: service,
      data: { image: image.id, model: modelId, scoringUri: svc.scoringUri, swaggerUri: svc.swaggerUri, ...(prep.previousImage ? { previousImage: prep.previousImage } : {}) },
    });

    // 7. Batch scoring the training message asked for, now that the model is deployed (a refusal is reported, not fatal).
    if (input.training?.batch && modelId) {
      const batchInput = { batch: input.training.batch, trainingRunId: input.training.trainingRunId, model: modelId, eventId: input.source.eventId, runId };
      const b = yield* step('batch', call(context, DEPLOY.startBatch, batchInput, retry), judged((v) => `batch run ${v.runId} started`));
      result.batch = b.ok ? { runId: b.value.runId, statusUri: `/api/runs/${b.value.runId}` } : { error: b.error };
    }
    return finish('Succeeded');
  } catch (err) {
    return yield* unwind(err instanceof StepFailed ? err.failure : { error: failureOf(err, 'RunFailed'), thrown: true });
  }

  /**
   * Compensation of `prepare` (+ `deploy`): remove the new slot and release the service. After a judged failure it
   * is the `rollback` step (with retries) and decides the ending: RolledBack when the previous version keeps
   * serving, else Failed. After a thrown failure: one try, best effort; the run fails with the error that stopped it.
   */
  function releaseSlot(deploy: DeployServiceInput, prep: PreparedSlot): Compensation {
    const subject = `services/${deploy.serviceName}`;
    return function* (f) {
      if (f.thrown) {
        try {
          yield* call(context, DEPLOY.rollback, { deploy, slot: prep.slot, reason: f.error });
        } catch {
          /* best effort */
        }
        return undefined;
      }
      const rollback = call(context, DEPLOY.rollback, { deploy, slot: prep.slot, reason: f.error, ...(f.logTail !== undefined ? { logTail: f.logTail } : {}) }, retry);
      const rb = yield* step('rollback', rollback, (r) => ({ detail: r.rolledBack ? `${prep.previousImage} keeps serving` : 'service Failed' }));
      return rb.rolledBack
        ? { state: 'RolledBack', error: rb.error, event: { type: 'DeploymentRolledBack', subject, data: { image: deploy.image.id, servingImage: prep.previousImage, error: rb.error } } }
        : { state: 'Failed', error: rb.error, event: { type: 'DeploymentFailed', subject, data: { step: 'deploy', image: deploy.image.id, error: rb.error } } };
    };
  }
}

/** A step whose value is already known (resolved at the door): no activity, shown in the status like the others. */
function* resolved<T>(value: T): Gen<T> {
  return value;
}

/** A slot that did not come up healthy and said nothing more. */
function slotFailure(slot: string, state: string): ErrorInfo {
  return { code: 'DeploymentFailed', message: `Slot ${slot} is ${state}.` };
}

registerOrchestration(DEPLOY.run, deployModel);
