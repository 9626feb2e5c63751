/**
 * The runtime's errors (RuntimeError, runtime/errors.ts) as the app sees them (shared/errors.ts): where the app
 * calls runtime code that rejects a bad value, it gets an AppError with the runtime's code, message and status.
 */
import { RuntimeError } from '../../runtime';
import { initialReplicas } from '../../shared/azure/aks-manifests';
import { AppError, asAppError, errorResponse, fromRuntime, isAppError } from '../../shared/errors';
import type { DeployConfig } from '../../shared/seams';
import { LocalFront } from '../../shared/targets/local-front';

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('did not throw');
}

const config: DeployConfig = {
  cpuCores: 1, memoryGb: 1, authEnabled: false, autoscaleEnabled: true, autoscaleMinReplicas: 1, autoscaleMaxReplicas: 3,
  autoscaleTargetUtilization: 70, autoscaleRefreshSeconds: 1, replicaMaxConcurrentRequests: 1, scoringTimeoutMs: 1000, maxRequestWaitTimeMs: 500,
};

it('a bad connection bound of the local front is an AppError naming it', () => {
  const e = thrown(() => new LocalFront('svc', { headersTimeoutMs: 0 }));
  expect(e).toBeInstanceOf(AppError);
  expect(e).toMatchObject({ code: 'InvalidOptions', httpStatus: 400, message: 'HTTP limit headersTimeoutMs must be a positive integer; got 0' });
});

it('a bad AKS replica plan is an AppError with the runtime code', () => {
  expect(initialReplicas({ ...config, extra: { targetRps: 10, requestSeconds: 0.5 } })).toBeGreaterThanOrEqual(1);
  const e = thrown(() => initialReplicas({ ...config, extra: { targetRps: -1, requestSeconds: 0.5 } }));
  expect(isAppError(e)).toBe(true);
  expect(e).toMatchObject({ code: 'InvalidPlan', httpStatus: 400 });
});

it('fromRuntime maps thrown and rejected RuntimeErrors and leaves other errors alone', async () => {
  const runtime = new RuntimeError('Overloaded', 'busy', 503);
  const sync = thrown(() => fromRuntime(() => { throw runtime; }));
  expect(sync).toBeInstanceOf(AppError);
  expect(errorResponse(sync)).toEqual({ status: 503, jsonBody: { error: { code: 'Overloaded', message: 'busy' } } });
  await expect(fromRuntime(() => Promise.reject(runtime))).rejects.toBeInstanceOf(AppError);
  const other = new Error('plain');
  expect(asAppError(other)).toBe(other);
  const app = new AppError('Same', 'same');
  expect(asAppError(app)).toBe(app);
  // The runtime's own answer shape is the same before mapping.
  expect(errorResponse(runtime)).toEqual({ status: 503, jsonBody: { error: { code: 'Overloaded', message: 'busy' } } });
});
