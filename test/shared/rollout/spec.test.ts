/** The manifest's `rollout:` section: what a user writes, what the run gets, and the 400s that name the field. */
import { parseManifest } from '../../../shared/manifest';
import { parseDurationSeconds } from '../../../shared/rollout/spec';

const base = (rollout: unknown, target: unknown = 'local') => JSON.stringify({ model: { name: 'm', files: ['model.json'] }, image: { runtime: 'node', entry_script: 'score.js' }, target, service: { name: 'svc' }, rollout });
const parse = (rollout: unknown, target?: unknown) => parseManifest(base(rollout, target)).rollout;
const refused = (rollout: unknown, target?: unknown): string => {
  try {
    parseManifest(base(rollout, target));
  } catch (e) {
    expect((e as { code: string }).code).toBe('InvalidManifest');
    expect((e as { httpStatus: number }).httpStatus).toBe(400);
    return (e as Error).message;
  }
  throw new Error('accepted');
};

test('no rollout section: blue/green (no spec); an explicit blue_green is kept', () => {
  expect(parseManifest(base(undefined)).rollout).toBeUndefined();
  expect(parse({ strategy: 'blue_green' })).toMatchObject({ strategy: 'blue_green', steps: [] });
});

test('canary: the issue example, in YAML, with durations and defaults', () => {
  const yaml = `
model: { name: m, files: [model.json] }
image: { runtime: node, entry_script: score.js }
target: local
service: { name: svc }
rollout:
  strategy: canary
  steps: [10, 50, 100]
  bake_seconds: 300
  mirror_percent: 20
  gates: { max_error_rate: 0.01, max_p99_ms: 250, min_requests: 200, max_disagreement: 0.05 }
  approval: { before_percent: 100, timeout: "24h" }
`;
  expect(parseManifest(yaml, { fileName: 'deploy.yaml' }).rollout).toEqual({
    strategy: 'canary',
    steps: [10, 50, 100],
    bakeSeconds: 300,
    mirrorPercent: 20,
    gates: { maxErrorRate: 0.01, maxP99Ms: 250, minRequests: 200, maxWaitSeconds: 300, onInsufficientTraffic: 'rollback', maxDisagreement: 0.05, tolerance: 1e-6 },
    approval: { beforePercent: 100, timeoutSeconds: 86400 },
  });
  expect(parse({ strategy: 'canary' })).toMatchObject({ steps: [10, 100], bakeSeconds: 300, gates: { minRequests: 1 } });
});

test('linear: step_percent + interval make the steps', () => {
  expect(parse({ strategy: 'linear', step_percent: 25, interval: '2m' })).toMatchObject({ steps: [25, 50, 75, 100], bakeSeconds: 120 });
  expect(parse({ strategy: 'linear', step_percent: 30 })).toMatchObject({ steps: [30, 60, 90, 100] });
});

test('bad sections are refused with the field and what to do', () => {
  expect(refused({ strategy: 'rainbow' })).toMatch(/rollout\.strategy: must be one of blue_green, canary, linear/);
  expect(refused({ strategy: 'canary', steps: [50, 10, 100] })).toMatch(/rollout\.steps: must increase \(50 then 10\)/);
  expect(refused({ strategy: 'canary', steps: [10, 50] })).toMatch(/the last step must be 100/);
  expect(refused({ strategy: 'canary', steps: [0, 100] })).toMatch(/rollout\.steps\.0: must be at least 1/);
  expect(refused({ strategy: 'canary', steps: [10.5, 100] })).toMatch(/whole percent/);
  expect(refused({ strategy: 'linear' })).toMatch(/rollout\.step_percent: is required for strategy linear/);
  expect(refused({ strategy: 'linear', step_percent: 1 })).toMatch(/at most 20 steps are allowed|at most 20/);
  expect(refused({ strategy: 'blue_green', steps: [10, 100] })).toMatch(/rollout\.steps: only applies to strategy canary or linear/);
  expect(refused({ strategy: 'canary', bake_seconds: '1 week' })).toMatch(/rollout\.bake_seconds: must be a number of seconds or a duration/);
  expect(refused({ strategy: 'canary', bake_seconds: 0 })).toMatch(/rollout\.bake_seconds: must be between 1 and 604800 seconds/);
  expect(refused({ strategy: 'canary', gates: { max_error_rate: 5 } })).toMatch(/rollout\.gates\.max_error_rate: must be at most 1/);
  expect(refused({ strategy: 'canary', gates: { on_insufficient_traffic: 'maybe' } })).toMatch(/must be promote or rollback/);
  expect(refused({ strategy: 'canary', gates: { max_disagreement: 0.1 } })).toMatch(/max_disagreement: needs mirror_percent/);
  expect(refused({ strategy: 'canary', steps: [10, 100], approval: { before_percent: 50 } })).toMatch(/approval\.before_percent: 50 is not one of the steps \(10, 100\)/);
  expect(refused({ strategy: 'canary', gates: { max_p99: 3 } })).toMatch(/rollout\.gates\.max_p99: unknown field/);
  // ACI splits and mirrors through the service front (shared/azure/aci-front.ts): canary, linear and shadow pass.
  expect(parse({ strategy: 'canary', steps: [10, 50, 100], mirror_percent: 20, gates: { max_disagreement: 0.05 } }, 'aci')).toMatchObject({ strategy: 'canary', steps: [10, 50, 100], mirrorPercent: 20 });
  expect(parse({ strategy: 'blue_green', mirror_percent: 10 }, 'aci')).toMatchObject({ strategy: 'blue_green', steps: [], mirrorPercent: 10 });
  // AKS runs a shadow phase through the service front as a Deployment behind the route (shared/azure/aks-front.ts).
  expect(parse({ strategy: 'canary', steps: [10, 100], mirror_percent: 20, gates: { max_disagreement: 0.05 } }, 'aks')).toMatchObject({ strategy: 'canary', mirrorPercent: 20, gates: { maxDisagreement: 0.05 } });
  expect(parse({ strategy: 'blue_green', mirror_percent: 10 }, 'aks')).toMatchObject({ strategy: 'blue_green', steps: [], mirrorPercent: 10 });
  // AKS splits with a Gateway API HTTPRoute (shared/azure/aks-traffic.ts): canary and linear pass validation.
  expect(parse({ strategy: 'canary', steps: [10, 50, 100] }, 'aks')).toMatchObject({ strategy: 'canary', steps: [10, 50, 100] });
  expect(parse({ strategy: 'linear', step_percent: 50 }, 'aks')).toMatchObject({ strategy: 'linear', steps: [50, 100] });
});

test('settings a rollout would ignore or could not measure are refused; 0 means none in any spelling', () => {
  // blue_green without a shadow phase: nothing bakes, nothing is gated.
  expect(refused({ strategy: 'blue_green', bake_seconds: 60 })).toMatch(/rollout\.bake_seconds: a blue_green switch without mirror_percent has no step to bake or gate/);
  expect(refused({ gates: { max_error_rate: 0.01 } })).toMatch(/rollout\.gates: a blue_green switch without mirror_percent/);
  expect(parse({ strategy: 'blue_green', mirror_percent: 10, bake_seconds: 60, gates: { max_disagreement: 0.1 } })).toMatchObject({ bakeSeconds: 60, mirrorPercent: 10 });
  // A gate over an empty window measured nothing.
  expect(refused({ strategy: 'canary', gates: { min_requests: 0 } })).toMatch(/rollout\.gates\.min_requests: must be at least 1/);
  expect(parse({ strategy: 'canary', gates: { min_requests: 1 } })?.gates.minRequests).toBe(1);
  // No extra wait: 0 as a number or as a duration.
  expect(parse({ strategy: 'canary', gates: { max_wait_seconds: 0 } })?.gates.maxWaitSeconds).toBe(0);
  expect(parse({ strategy: 'canary', gates: { max_wait_seconds: '0s' } })?.gates.maxWaitSeconds).toBe(0);
  expect(parse({ strategy: 'canary', gates: { max_wait_seconds: '10m' } })?.gates.maxWaitSeconds).toBe(600);
  expect(refused({ strategy: 'canary', gates: { max_wait_seconds: -1 } })).toMatch(/max_wait_seconds: must be between 0 and/);
  expect(refused({ strategy: 'canary', bake_seconds: '0s' })).toMatch(/bake_seconds: must be between 1 and/);
});

test('durations', () => {
  expect(parseDurationSeconds('90s')).toBe(90);
  expect(parseDurationSeconds('1.5h')).toBe(5400);
  expect(parseDurationSeconds(12)).toBe(12);
  expect(parseDurationSeconds('12')).toBeUndefined();
  expect(parseDurationSeconds('x'.repeat(100))).toBeUndefined();
});
