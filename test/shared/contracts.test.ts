/**
 * The workflow contracts (shared/deploy/contract.ts, shared/batch/contract.ts, shared/rollout/contract.ts) against what durable histories and
 * the compiled app hold: the names are the ones every existing history records (a rename would leave running and
 * finished instances unable to replay), and the app registers exactly the activities and orchestrations the
 * contracts name, each with the right trigger. Loads the compiled app (run `npm run build` first).
 */
import { BATCH } from '../../shared/batch/contract';
import { DEPLOY } from '../../shared/deploy/contract';
import { ROLLOUT } from '../../shared/rollout/contract';
import { loadRegistrations } from '../azure/app-bindings';

const named = (defs: Record<string, { kind: string; name: string }>) => Object.fromEntries(Object.entries(defs).map(([k, d]) => [k, `${d.kind}:${d.name}`]));

test('activity and orchestration names are the ones existing histories use', () => {
  expect(named(DEPLOY)).toEqual({
    run: 'orchestration:deployModel',
    loneOnnx: 'orchestration:deployLoneOnnx',
    registerModel: 'activity:registerModel',
    createImage: 'activity:createImage',
    prepareDeployment: 'activity:prepareDeployment',
    deploySlot: 'activity:deploySlot',
    updateInPlace: 'activity:updateServiceInPlace',
    smokeTest: 'activity:smokeTest',
    rollback: 'activity:rollbackDeployment',
    promote: 'activity:promoteDeployment',
    retirePrevious: 'activity:retirePreviousSlot',
    publishEvent: 'activity:publishDeploymentEvent',
    startBatch: 'activity:startBatchAfterDeploy',
    checkLoneOnnx: 'activity:checkLoneOnnx',
    claimLoneOnnx: 'activity:claimLoneOnnx',
  });
  expect(named(BATCH)).toEqual({
    run: 'orchestration:batchRun',
    chunk: 'orchestration:batchChunk',
    resolveImage: 'activity:batchResolveImage',
    provisionPool: 'activity:batchProvisionPool',
    planPage: 'activity:batchPlanPage',
    scoreMiniBatch: 'activity:batchScoreMiniBatch',
    scoreMiniBatches: 'activity:batchScoreMiniBatches',
    scoreMiniBatchGroup: 'activity:batchScoreMiniBatchGroup',
    finalize: 'activity:batchFinalize',
    teardownPool: 'activity:batchTeardownPool',
  });
  expect(named(ROLLOUT)).toEqual({
    run: 'orchestration:rolloutTraffic',
    setWeights: 'activity:rolloutSetWeights',
    readTraffic: 'activity:rolloutReadTraffic',
    renewLease: 'activity:rolloutRenewLease',
  });
});

test('the compiled app registers every contract activity and orchestration, and nothing the contracts do not name', () => {
  const registered = loadRegistrations()
    .map((r) => ({ name: r.name, trigger: r.bindings.find((b) => b.type === 'activityTrigger' || b.type === 'orchestrationTrigger')?.type }))
    .filter((r) => r.trigger !== undefined)
    .map((r) => `${r.trigger === 'activityTrigger' ? 'activity' : 'orchestration'}:${r.name}`)
    .sort();
  const declared = [...Object.values(DEPLOY), ...Object.values(BATCH), ...Object.values(ROLLOUT)].map((d) => `${d.kind}:${d.name}`).sort();
  expect(registered).toEqual(declared);
});
