/**
 * Deployment runs with a progressive rollout, their activities scripted (test/orchestrations/rolloutTraffic.test.ts,
 * and any other test driving the real `deployModel` + `rolloutTraffic` orchestrators): the activities such a run
 * calls, their host overrides answering from the run's scenario, a rollout spec with the tests' defaults, and the
 * start of a run.
 */
import type { TestEnvironment } from '../../local/testing';
import { DEPLOY, type DeployRunInput } from '../../shared/deploy/contract';
import { runIdFor } from '../../shared/deploy/run-status';
import { ROLLOUT } from '../../shared/rollout/contract';
import type { RolloutSpec } from '../../shared/rollout/spec';
import { scriptedActivities, type Answer, type Scenario } from './scenarios';

/** The activities of a deployment run with a rollout: the deploy saga's and its rollout sub-orchestration's. */
export const ROLLOUT_RUN_ACTIVITIES = [
  DEPLOY.registerModel,
  DEPLOY.createImage,
  DEPLOY.prepareDeployment,
  DEPLOY.deploySlot,
  DEPLOY.smokeTest,
  DEPLOY.rollback,
  DEPLOY.promote,
  DEPLOY.retirePrevious,
  DEPLOY.publishEvent,
  ROLLOUT.setWeights,
  ROLLOUT.readTraffic,
  ROLLOUT.renewLease,
].map((a) => a.name);

/**
 * Host activity overrides for rollout runs, each answering from its run's scenario in `scenarios` (by run id). The
 * rollout's activities run in its sub-orchestration (`<runId>:rollout`): same scenario as the run.
 */
export function rolloutRunActivities(scenarios: Map<string, Scenario>) {
  return scriptedActivities(ROLLOUT_RUN_ACTIVITIES, (_input, ctx) => scenarios.get(ctx.instanceId.replace(/:rollout$/, '')));
}

/** A rollout spec: canary 10 → 50 → 100, 1 s bakes, gates of 10 requests within 1 s (rollback when short), then `s`. */
export const rolloutSpec = (s: Partial<Omit<RolloutSpec, 'gates'>> & { gates?: Partial<RolloutSpec['gates']> }): RolloutSpec => ({
  strategy: 'canary',
  steps: [10, 50, 100],
  bakeSeconds: 1,
  ...s,
  gates: { minRequests: 10, maxWaitSeconds: 1, onInsufficientTraffic: 'rollback', tolerance: 1e-6, ...s.gates },
});

let seq = 0;

/**
 * Starts a deployment run (model `m`, image `image` of service `service` on `target`) with `rollout`, answered by
 * `answers`; its run id and its scenario (the calls it made, in order).
 */
export async function startRolloutRun(
  env: Pick<TestEnvironment, 'startOrchestration'>,
  scenarios: Map<string, Scenario>,
  o: { rollout: RolloutSpec; answers: Record<string, Answer>; service: string; image: string; target: string; authEnabled: boolean; tag: string },
): Promise<{ runId: string; scenario: Scenario }> {
  const input: unknown = {
    source: { kind: 'http', eventId: `${o.tag}-${++seq}` },
    model: { name: 'm', files: [{ path: 'model.json' }], tags: {}, properties: {} },
    files: { model: [{ path: 'model.json', blob: 'staging/m/model.json' }] },
    manifest: { service: { name: o.service, tags: {} }, image: { name: o.image }, target: o.target, deployConfig: { authEnabled: o.authEnabled }, rollout: o.rollout },
  };
  const runId = runIdFor('http', `${o.tag}-test|${seq}|${Date.now()}`);
  const scenario: Scenario = { answers: o.answers, calls: [] };
  scenarios.set(runId, scenario);
  await env.startOrchestration(DEPLOY.run.name, input as DeployRunInput, runId);
  return { runId, scenario };
}
