/**
 * The real `deployModel` orchestrator on the real local durable engine (Azurite on free ports, the compiled app in the
 * local host), with its activities answered by the test through the host's activity overrides — the way Temporal
 * tests workflows with mocked activities. Assertions are what a user sees: `GET /api/runs/{id}` (state, steps, error,
 * notes) and the events the run published; plus which activities ran, with what, and how often.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { scriptedActivities, type Answer, type Scenario } from '../helpers/scenarios';
import {
  DEPLOY,
  type CreateImageOutput,
  type DeployRunInput,
  type ImageSummary,
  type PrepareDeploymentOutput,
  type PromoteOutput,
  type RegisterModelOutput,
  type RollbackInput,
  type RollbackOutput,
  type StartBatchAfterDeployOutput,
} from '../../shared/deploy/contract';
import type { SmokeTestResult } from '../../shared/scoring/smoke';
import type { DeployedSlot } from '../../shared/seams';
import type { RunView } from '../../shared/deploy/run-status';
import { runIdFor } from '../../shared/deploy/run-status';
import { ActivityFailure } from '../../shared/workflow';

/** One host for the file; each run answers from its own scenario (found by the run's instance id). */
const scenarios = new Map<string, Scenario>();
const ACTIVITIES = [
  DEPLOY.registerModel,
  DEPLOY.createImage,
  DEPLOY.prepareDeployment,
  DEPLOY.deploySlot,
  DEPLOY.updateInPlace,
  DEPLOY.smokeTest,
  DEPLOY.rollback,
  DEPLOY.promote,
  DEPLOY.retirePrevious,
  DEPLOY.publishEvent,
  DEPLOY.startBatch,
].map((a) => a.name);

const overrides = scriptedActivities(ACTIVITIES, (_input, ctx) => scenarios.get(ctx.instanceId));

let env: TestEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-orch-', pollIntervalMs: 100, activityOverrides: overrides });
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const image: ImageSummary = { id: 'img:2', name: 'img', version: 2, state: 'Succeeded', runtime: 'node', models: ['m:2'], imageRef: 'local/img:2', contextBlob: 'images/img/2.tar.gz', digest: 'sha256:abc', logBlob: 'images/img/2.log' };

/** Activities of a successful update of `svc-a` (image img:1 in slot blue → img:2 in slot green). */
function happy(): Record<string, Answer> {
  return {
    [DEPLOY.registerModel.name]: (): RegisterModelOutput => ({ ok: true, value: { created: true, model: { id: 'm:2', name: 'm', version: 2, files: 1, bytes: 10 } } }),
    [DEPLOY.createImage.name]: (): CreateImageOutput => ({ ok: true, value: { image } }),
    [DEPLOY.prepareDeployment.name]: (): PrepareDeploymentOutput => ({ ok: true, value: { slot: 'green', previousSlot: 'blue', previousImage: 'img:1', isUpdate: true } }),
    [DEPLOY.deploySlot.name]: (): DeployedSlot => ({ serviceName: 'svc-a', slot: 'green', state: 'Healthy', scoringUri: 'http://127.0.0.1:1/green/score', swaggerUri: '', healthUri: '' }),
    [DEPLOY.smokeTest.name]: (): SmokeTestResult => ({ ok: true, checks: ['output matches'], latencyMs: 3, swagger: 'absent' }),
    [DEPLOY.promote.name]: (): PromoteOutput => ({ name: 'svc-a', state: 'Healthy', image: 'img:2', scoringUri: 'http://127.0.0.1:2/score', swaggerUri: 'http://127.0.0.1:2/swagger.json' }),
    [DEPLOY.retirePrevious.name]: () => ({ notes: [] }),
    [DEPLOY.publishEvent.name]: (e: { type: string }) => `event-${e.type}`,
  };
}

let seq = 0;
function runInput(extra: Record<string, unknown> = {}): DeployRunInput {
  const input: unknown = {
    source: { kind: 'http', eventId: `e-${++seq}` },
    model: { name: 'm', files: [{ path: 'model.json' }], tags: {}, properties: {} },
    files: { model: [{ path: 'model.json', blob: 'staging/m/model.json' }] },
    manifest: { service: { name: 'svc-a', tags: {} }, image: { name: 'img' }, target: 'local', deployConfig: { authEnabled: false } },
    ...extra,
  };
  return input as DeployRunInput;
}

/** Start the real orchestrator with these activity answers; wait for it to end; return the run as a user sees it. */
async function deploy(answers: Record<string, Answer>, extra: Record<string, unknown> = {}): Promise<{ run: RunView; calls: Scenario['calls']; names: string[]; events: string[] }> {
  const input = runInput(extra);
  const runId = runIdFor('http', `orch-test|${input.source.eventId}|${Date.now()}`);
  const scenario: Scenario = { answers, calls: [] };
  scenarios.set(runId, scenario);
  await env.startOrchestration(DEPLOY.run.name, input, runId);
  await env.waitFor(runId, { timeoutMs: 45_000 });
  const r = await env.request('GET', `/api/runs/${runId}`);
  expect(r.status).toBe(200);
  const names = scenario.calls.map((c) => c.name).filter((n) => n !== DEPLOY.publishEvent.name);
  const events = scenario.calls.filter((c) => c.name === DEPLOY.publishEvent.name).map((c) => c.input.type as string);
  return { run: r.body as RunView, calls: scenario.calls, names, events };
}

const stepStates = (run: RunView) => run.steps.map((s) => `${s.name}:${s.state}`);

test('happy path: register → image → prepare → deploy → smoke test → promote → retire; the run Succeeds as an update', async () => {
  const { run, names, events, calls } = await deploy(happy());
  expect(run.state).toBe('Succeeded');
  expect(run.error).toBeUndefined();
  expect(run.currentStep).toBeUndefined();
  expect(run.result).toMatchObject({ outcome: 'Updated', serviceName: 'svc-a', model: 'm:2', image: 'img:2', scoringUri: 'http://127.0.0.1:2/score', swaggerUri: 'http://127.0.0.1:2/swagger.json', smokeTest: { latencyMs: 3 } });
  expect(run.result?.notes).toBeUndefined();
  expect(names).toEqual([DEPLOY.registerModel, DEPLOY.createImage, DEPLOY.prepareDeployment, DEPLOY.deploySlot, DEPLOY.smokeTest, DEPLOY.promote, DEPLOY.retirePrevious].map((a) => a.name));
  expect(stepStates(run)).toEqual(['register:Succeeded', 'image:Succeeded', 'prepare:Succeeded', 'deploy:Succeeded', 'smokeTest:Succeeded', 'promote:Succeeded', 'retire:Succeeded']);
  expect(events).toEqual(['ModelRegistered', 'ImageCreated', 'ServiceUpdated']);
  // What flows between the steps: the prepared slot is deployed, smoke tested, promoted; the previous one retired.
  expect(calls.find((c) => c.name === DEPLOY.deploySlot.name)!.input).toMatchObject({ slot: 'green', deploy: { serviceName: 'svc-a', target: 'local', image: { id: 'img:2' } } });
  expect(calls.find((c) => c.name === DEPLOY.smokeTest.name)!.input.slot).toMatchObject({ slot: 'green', scoringUri: 'http://127.0.0.1:1/green/score' });
  expect(calls.find((c) => c.name === DEPLOY.promote.name)!.input).toMatchObject({ slot: 'green' });
  expect(calls.find((c) => c.name === DEPLOY.promote.name)!.input.previousSlot).toBeUndefined(); // the old slot goes only after the promotion
  expect(calls.find((c) => c.name === DEPLOY.retirePrevious.name)!.input).toMatchObject({ slot: 'green', previousSlot: 'blue', previousImage: 'img:1' });
}, 60_000);

/** A PATCH of tags (resolved at the door: the serving image, in place): the answers of its activities. */
function inPlace(): Record<string, Answer> {
  return {
    ...happy(),
    [DEPLOY.prepareDeployment.name]: (): PrepareDeploymentOutput => ({ ok: true, value: { slot: 'blue', previousSlot: 'blue', previousImage: 'img:2', isUpdate: true } }),
    [DEPLOY.updateInPlace.name]: (): DeployedSlot => ({ serviceName: 'svc-a', slot: 'blue', state: 'Healthy', scoringUri: 'http://127.0.0.1:1/blue/score', swaggerUri: '', healthUri: '' }),
  };
}
const inPlaceInput = { registered: { model: { id: 'm:2', name: 'm', version: 2, files: 1, bytes: 10 }, image }, update: { mode: 'inPlace', fields: ['description', 'tags'] } };

test('in place (PATCH of tags/description): prepare → inPlace → smoke test → promote on the serving slot; no deploySlot, nothing retired', async () => {
  const { run, names, events, calls } = await deploy(inPlace(), inPlaceInput);
  expect([run.state, run.error]).toEqual(['Succeeded', undefined]);
  expect(run.result).toMatchObject({ outcome: 'Updated', image: 'img:2', update: { mode: 'inPlace', fields: ['description', 'tags'] } });
  expect(names).toEqual([DEPLOY.prepareDeployment, DEPLOY.updateInPlace, DEPLOY.smokeTest, DEPLOY.promote].map((a) => a.name));
  expect(stepStates(run)).toEqual(['register:Succeeded', 'image:Succeeded', 'prepare:Succeeded', 'inPlace:Succeeded', 'smokeTest:Succeeded', 'promote:Succeeded']);
  expect(run.steps.find((s) => s.name === 'prepare')!.detail).toBe('in place: slot blue keeps serving img:2');
  expect(run.steps.find((s) => s.name === 'inPlace')!.detail).toBe('slot blue, no replica restarted (description, tags)');
  expect(calls.find((c) => c.name === DEPLOY.prepareDeployment.name)!.input).toMatchObject({ inPlace: true, image: { id: 'img:2' } });
  expect(calls.find((c) => c.name === DEPLOY.promote.name)!.input).toMatchObject({ slot: 'blue', deploy: { inPlace: true } });
  expect(events).toEqual(['ServiceUpdated']);
}, 60_000);

test('in place, smoke test fails → rollback of the serving slot (the record keeps its values) → RolledBack', async () => {
  const { run, names, calls } = await deploy(
    {
      ...inPlace(),
      [DEPLOY.smokeTest.name]: (): SmokeTestResult => ({ ok: false, reason: 'no answer', checks: [], swagger: 'absent' }),
      [DEPLOY.rollback.name]: (i: RollbackInput): RollbackOutput => ({ rolledBack: true, state: 'Healthy', error: i.reason }),
    },
    inPlaceInput,
  );
  expect(run.state).toBe('RolledBack');
  expect(run.result?.update).toEqual({ mode: 'inPlace', fields: ['description', 'tags'] });
  expect(names).toEqual([DEPLOY.prepareDeployment, DEPLOY.updateInPlace, DEPLOY.smokeTest, DEPLOY.rollback].map((a) => a.name));
  expect(calls.find((c) => c.name === DEPLOY.rollback.name)!.input).toMatchObject({ slot: 'blue', deploy: { inPlace: true }, reason: { code: 'SmokeTestFailed' } });
}, 60_000);

test('a first deployment (nothing to retire) ends Deployed and never calls retire', async () => {
  const { run, names, events } = await deploy({ ...happy(), [DEPLOY.prepareDeployment.name]: (): PrepareDeploymentOutput => ({ ok: true, value: { slot: 'blue', isUpdate: false } }) });
  expect(run.state).toBe('Succeeded');
  expect(run.result?.outcome).toBe('Deployed');
  expect(names).not.toContain(DEPLOY.retirePrevious.name);
  expect(events).toEqual(['ModelRegistered', 'ImageCreated', 'ServiceDeployed']);
}, 60_000);

test('smoke test fails → rollback with the smoke failure as reason; the previous version keeps serving → RolledBack', async () => {
  const rollback = (i: RollbackInput): RollbackOutput => ({ rolledBack: true, state: 'Healthy', error: { code: i.reason.code, message: `${i.reason.message} (img:1 keeps serving)` } });
  const { run, names, events, calls } = await deploy({
    ...happy(),
    [DEPLOY.smokeTest.name]: (): SmokeTestResult => ({ ok: false, reason: 'expected [1] got [2]', checks: ['output differs'], swagger: 'absent', logTail: 'stderr: boom' }),
    [DEPLOY.rollback.name]: rollback,
  });
  expect(run.state).toBe('RolledBack');
  expect(run.error).toEqual({ code: 'SmokeTestFailed', message: 'Smoke test failed: expected [1] got [2] (img:1 keeps serving)' });
  expect(names).toEqual([DEPLOY.registerModel, DEPLOY.createImage, DEPLOY.prepareDeployment, DEPLOY.deploySlot, DEPLOY.smokeTest, DEPLOY.rollback].map((a) => a.name));
  expect(calls.find((c) => c.name === DEPLOY.rollback.name)!.input).toMatchObject({ slot: 'green', reason: { code: 'SmokeTestFailed' }, logTail: 'stderr: boom' });
  expect(stepStates(run)).toEqual(['register:Succeeded', 'image:Succeeded', 'prepare:Succeeded', 'deploy:Succeeded', 'smokeTest:Failed', 'rollback:Succeeded']);
  expect(run.result?.outcome).toBeUndefined();
  expect(events).toEqual(['ModelRegistered', 'ImageCreated', 'DeploymentRolledBack']);
}, 60_000);

test('smoke test fails on a first deployment (nothing to fall back to) → rollback reports not rolled back → Failed', async () => {
  const { run, names, events } = await deploy({
    ...happy(),
    [DEPLOY.prepareDeployment.name]: (): PrepareDeploymentOutput => ({ ok: true, value: { slot: 'blue', isUpdate: false } }),
    [DEPLOY.smokeTest.name]: (): SmokeTestResult => ({ ok: false, reason: 'no answer', checks: [], swagger: 'absent' }),
    [DEPLOY.rollback.name]: (i: RollbackInput): RollbackOutput => ({ rolledBack: false, state: 'Failed', error: i.reason }),
  });
  expect(run.state).toBe('Failed');
  expect(run.error).toEqual({ code: 'SmokeTestFailed', message: 'Smoke test failed: no answer' });
  expect(names).toContain(DEPLOY.rollback.name);
  expect(names).not.toContain(DEPLOY.promote.name);
  expect(events).toEqual(['ModelRegistered', 'ImageCreated', 'DeploymentFailed']);
}, 60_000);

test('retiring the previous slot fails (after its retries) → best effort: the run Succeeds with a note, nothing rolls back', async () => {
  const { run, names, events } = await deploy({
    ...happy(),
    [DEPLOY.retirePrevious.name]: () => {
      throw new ActivityFailure({ code: 'SlotBusy', message: 'cannot stop slot blue' });
    },
  });
  expect(run.state).toBe('Succeeded');
  expect(run.result?.outcome).toBe('Updated');
  expect(run.result?.notes?.join(' ')).toMatch(/previous slot blue was not retired: cannot stop slot blue/);
  expect(names).not.toContain(DEPLOY.rollback.name);
  // Retried per the run's retry options (3 attempts) before it became a note.
  expect(names.filter((n) => n === DEPLOY.retirePrevious.name)).toHaveLength(3);
  expect(stepStates(run)).toEqual(['register:Succeeded', 'image:Succeeded', 'prepare:Succeeded', 'deploy:Succeeded', 'smokeTest:Succeeded', 'promote:Succeeded', 'retire:Failed']);
  expect(events).toEqual(['ModelRegistered', 'ImageCreated', 'ServiceUpdated']);
}, 60_000);

test('an activity that throws once is retried (retry options) and the run goes on to Succeed', async () => {
  const real = happy();
  const { run, names } = await deploy({
    ...real,
    [DEPLOY.createImage.name]: (input, attempt) => {
      if (attempt === 1) throw new ActivityFailure({ code: 'RegistryUnavailable', message: 'the registry did not answer' });
      return real[DEPLOY.createImage.name](input, attempt);
    },
  });
  expect(run.state).toBe('Succeeded');
  expect(names.filter((n) => n === DEPLOY.createImage.name)).toHaveLength(2);
  expect(run.steps.find((s) => s.name === 'image')!.state).toBe('Succeeded');
}, 60_000);

test('promote keeps failing → after its retries the run releases the service (rollback) and Fails with the activity error code', async () => {
  const { run, names, calls, events } = await deploy({
    ...happy(),
    [DEPLOY.promote.name]: () => {
      throw new ActivityFailure({ code: 'TrafficSwitchFailed', message: 'the front did not switch' });
    },
    [DEPLOY.rollback.name]: (i: RollbackInput): RollbackOutput => ({ rolledBack: true, state: 'Healthy', error: i.reason }),
  });
  expect(run.state).toBe('Failed');
  expect(run.error).toEqual({ code: 'TrafficSwitchFailed', message: 'the front did not switch' });
  expect(names.filter((n) => n === DEPLOY.promote.name)).toHaveLength(3);
  expect(names).not.toContain(DEPLOY.retirePrevious.name);
  expect(calls.find((c) => c.name === DEPLOY.rollback.name)!.input).toMatchObject({ slot: 'green', reason: { code: 'TrafficSwitchFailed' } });
  expect(events[events.length - 1]).toBe('DeploymentFailed');
}, 60_000);

test('deploying the slot throws (no retry on that step) → the held service is released and the run Fails', async () => {
  const { run, names } = await deploy({
    ...happy(),
    [DEPLOY.deploySlot.name]: () => {
      throw new ActivityFailure({ code: 'ContainerStartFailed', message: 'the container exited' });
    },
    [DEPLOY.rollback.name]: (i: RollbackInput): RollbackOutput => ({ rolledBack: true, state: 'Healthy', error: i.reason }),
  });
  expect(run.state).toBe('Failed');
  expect(run.error?.code).toBe('ContainerStartFailed');
  expect(names.filter((n) => n === DEPLOY.deploySlot.name)).toHaveLength(1);
  expect(names).toEqual([DEPLOY.registerModel, DEPLOY.createImage, DEPLOY.prepareDeployment, DEPLOY.deploySlot, DEPLOY.rollback].map((a) => a.name));
}, 60_000);

test('a refused registration (a value, not a throw) ends the run Failed at the first step; nothing else runs', async () => {
  const { run, names, events } = await deploy({
    ...happy(),
    [DEPLOY.registerModel.name]: (): RegisterModelOutput => ({ ok: false, error: { code: 'ModelFileMissing', message: 'model.json is not in staging/m' } }),
  });
  expect(run.state).toBe('Failed');
  expect(run.error).toEqual({ code: 'ModelFileMissing', message: 'model.json is not in staging/m' });
  expect(names).toEqual([DEPLOY.registerModel.name]);
  expect(stepStates(run)).toEqual(['register:Failed']);
  expect(events).toEqual(['DeploymentFailed']);
}, 60_000);

test('deploying the slot throws with a secret in its message → the run error keeps the code, never the secret', async () => {
  const sas = 'https://acct.blob.core.windows.net/c/b?sv=2022&sig=SECRETSIG';
  const { run, calls } = await deploy({
    ...happy(),
    [DEPLOY.deploySlot.name]: () => {
      throw new ActivityFailure({ code: 'TargetUnavailable', message: `could not reach ${sas}` });
    },
    [DEPLOY.rollback.name]: (i: RollbackInput): RollbackOutput => ({ rolledBack: true, state: 'Healthy', error: i.reason }),
  });
  expect(run.state).toBe('Failed');
  expect(run.error).toEqual({ code: 'TargetUnavailable', message: expect.stringContaining('could not reach https://acct.blob.core.windows.net/c/b?sv=') });
  expect(JSON.stringify(run)).not.toMatch(/SECRETSIG|\n\s+at /);
  expect(calls.find((c) => c.name === DEPLOY.rollback.name)!.input.reason).toEqual(run.error);
  expect(run.steps.find((s) => s.name === 'deploy')).toMatchObject({ state: 'Failed' });
}, 60_000);

test('event publishing keeps failing → never fails the run: Succeeded with a note per lost event', async () => {
  const { run, names } = await deploy({
    ...happy(),
    [DEPLOY.prepareDeployment.name]: (): PrepareDeploymentOutput => ({ ok: true, value: { slot: 'blue', isUpdate: false } }),
    [DEPLOY.publishEvent.name]: () => {
      throw new ActivityFailure({ code: 'ServiceBusError', message: 'topic unreachable' });
    },
  });
  expect(run.state).toBe('Succeeded');
  expect(names).not.toContain(DEPLOY.rollback.name);
  expect(run.result?.notes).toEqual([
    'event ModelRegistered was not published: topic unreachable',
    'event ImageCreated was not published: topic unreachable',
    'event ServiceDeployed was not published: topic unreachable',
  ]);
}, 90_000);

// ---------------------------------------------------------------- the training-message path (Service Bus)

const training = (extra: Record<string, unknown> = {}) => ({ training: { trainingRunId: 'train-7', metrics: { accuracy: 0.93 }, promotion: { minMetrics: { accuracy: 0.9 }, maxMetrics: {} }, ...extra } });

test('training message below its promotion policy → registered, NotPromoted: nothing is built or deployed', async () => {
  const { run, names, events } = await deploy(happy(), { ...training({ metrics: { accuracy: 0.5 } }), source: { kind: 'servicebus', eventId: `m-${Date.now()}` } });
  expect(run.state).toBe('NotPromoted');
  expect(run.error).toEqual({ code: 'PromotionPolicyNotMet', message: 'Model m:2 was registered but not deployed: metric accuracy = 0.5 is below the minimum 0.9.' });
  expect(run.result?.promotion).toEqual({ promote: false, reasons: ['metric accuracy = 0.5 is below the minimum 0.9'] });
  expect(names).toEqual([DEPLOY.registerModel.name]);
  expect(stepStates(run)).toEqual(['register:Succeeded', 'promotionCheck:Failed']);
  expect(events).toEqual(['ModelRegistered']);
}, 60_000);

test('training message without deploy settings → Registered after the registration step', async () => {
  const { run, names } = await deploy(happy(), { ...training(), manifest: undefined });
  expect(run.state).toBe('Registered');
  expect(run.error).toBeUndefined();
  expect(names).toEqual([DEPLOY.registerModel.name]);
  expect(stepStates(run)).toEqual(['register:Succeeded', 'promotionCheck:Succeeded']);
}, 60_000);

test('training message with a batch section → deployed, then the batch run starts with the registered model', async () => {
  const batch = { inputs: { container: 'in', prefix: 'x/' } };
  const { run, names, calls } = await deploy({ ...happy(), [DEPLOY.startBatch.name]: (): StartBatchAfterDeployOutput => ({ ok: true, value: { runId: 'batch-train-7' } }) }, training({ batch }));
  expect(run.state).toBe('Succeeded');
  expect(names[names.length - 1]).toBe(DEPLOY.startBatch.name);
  expect(calls.find((c) => c.name === DEPLOY.startBatch.name)!.input).toMatchObject({ batch, trainingRunId: 'train-7', model: 'm:2' });
  expect(run.result?.batch).toEqual({ runId: 'batch-train-7', statusUri: '/api/runs/batch-train-7' });
  expect(stepStates(run)).toEqual(['register:Succeeded', 'promotionCheck:Succeeded', 'image:Succeeded', 'prepare:Succeeded', 'deploy:Succeeded', 'smokeTest:Succeeded', 'promote:Succeeded', 'retire:Succeeded', 'batch:Succeeded']);
}, 60_000);

test('training message whose batch section is refused → the deployment stands (Succeeded), the refusal is in the result', async () => {
  const error = { code: 'InvalidJobDefinition', message: 'inputs: container is required' };
  const { run, names } = await deploy({ ...happy(), [DEPLOY.startBatch.name]: (): StartBatchAfterDeployOutput => ({ ok: false, error }) }, training({ batch: { inputs: {} } }));
  expect(run.state).toBe('Succeeded');
  expect(run.result?.batch).toEqual({ error });
  expect(names.filter((n) => n === DEPLOY.startBatch.name)).toHaveLength(1); // a refusal is not retried
  expect(run.steps.find((s) => s.name === 'batch')).toMatchObject({ state: 'Failed', detail: error.message });
}, 60_000);

// ---------------------------------------------------------------- what is registered already (resolved at the door)

const existingModel = { id: 'm:7', name: 'm', version: 7, files: 1, bytes: 10 };

test('an existing model version: the register step shows it, no model is registered, the image embeds it', async () => {
  const { run, names, events, calls } = await deploy(happy(), { registered: { model: existingModel } });
  expect(run.state).toBe('Succeeded');
  expect(names).toEqual([DEPLOY.createImage, DEPLOY.prepareDeployment, DEPLOY.deploySlot, DEPLOY.smokeTest, DEPLOY.promote, DEPLOY.retirePrevious].map((a) => a.name));
  expect(run.steps.find((s) => s.name === 'register')).toMatchObject({ state: 'Succeeded', detail: 'existing m:7' });
  expect(calls.find((c) => c.name === DEPLOY.createImage.name)!.input.modelId).toBe('m:7');
  expect(run.result).toMatchObject({ model: 'm:7', image: 'img:2' });
  expect(events).toEqual(['ImageCreated', 'ServiceUpdated']);
}, 60_000);

test('an existing image: neither register nor build runs; both steps show what is deployed; it goes through prepare → promote', async () => {
  const { run, names, events, calls } = await deploy(happy(), { registered: { model: existingModel, image } });
  expect(run.state).toBe('Succeeded');
  expect(names).toEqual([DEPLOY.prepareDeployment, DEPLOY.deploySlot, DEPLOY.smokeTest, DEPLOY.promote, DEPLOY.retirePrevious].map((a) => a.name));
  expect(stepStates(run)).toEqual(['register:Succeeded', 'image:Succeeded', 'prepare:Succeeded', 'deploy:Succeeded', 'smokeTest:Succeeded', 'promote:Succeeded', 'retire:Succeeded']);
  expect(run.steps.find((s) => s.name === 'image')!.detail).toBe('existing img:2');
  expect(calls.find((c) => c.name === DEPLOY.deploySlot.name)!.input.deploy.image).toMatchObject({ id: 'img:2', imageRef: 'local/img:2' });
  expect(events).toEqual(['ServiceUpdated']);
}, 60_000);

test('an existing image whose smoke test fails rolls back like any deployment (the previous version keeps serving)', async () => {
  const { run, names, events } = await deploy(
    {
      ...happy(),
      [DEPLOY.smokeTest.name]: (): SmokeTestResult => ({ ok: false, reason: 'expected [1] got [2]', checks: [], swagger: 'absent' }),
      [DEPLOY.rollback.name]: (i: RollbackInput): RollbackOutput => ({ rolledBack: true, state: 'Healthy', error: i.reason }),
    },
    { registered: { model: existingModel, image } },
  );
  expect(run.state).toBe('RolledBack');
  expect(run.error?.code).toBe('SmokeTestFailed');
  expect(names).toEqual([DEPLOY.prepareDeployment, DEPLOY.deploySlot, DEPLOY.smokeTest, DEPLOY.rollback].map((a) => a.name));
  expect(events).toEqual(['DeploymentRolledBack']);
}, 60_000);

test('a script without a model: the register step says so, the image is built with no model, the result names none', async () => {
  const { run, names, calls } = await deploy(happy(), { registered: { model: 'none' }, files: { model: [] }, model: { name: 'svc-a', files: [], tags: {}, properties: {}, none: true } });
  expect(run.state).toBe('Succeeded');
  expect(names[0]).toBe(DEPLOY.createImage.name);
  expect(run.steps.find((s) => s.name === 'register')).toMatchObject({ state: 'Succeeded', detail: 'no model (the script needs none)' });
  expect(calls.find((c) => c.name === DEPLOY.createImage.name)!.input.modelId).toBe('');
  expect(run.result?.model).toBeUndefined();
}, 60_000);
