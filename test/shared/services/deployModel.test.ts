/**
 * The `deployModel` orchestrator's decisions, driven step by step with a fake durable context (activities answer
 * from a table; a thrown answer is a failed task as durable-functions delivers it).
 */
import type { DeployRunResult } from '../../../shared/services/run';

let handler: (ctx: unknown) => Generator<unknown, DeployRunResult, unknown>;
jest.mock('durable-functions', () => {
  const actual = jest.requireActual('durable-functions');
  return { ...actual, app: { ...actual.app, orchestration: (_name: string, fn: typeof handler) => (handler = fn) } };
});
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('../../../orchestrations/deployModel');

/** A durable-functions TaskFailedError as the replay engine builds it for a thrown `ActivityFailure` (code and message in the properties). */
function taskFailed(code: string, message: string): Error {
  const e = new Error(`ActivityFailure: ${message}`);
  e.name = 'TaskFailedError';
  (e as unknown as { failureDetails: unknown }).failureDetails = {
    errorType: 'ActivityFailure',
    errorMessage: message,
    stackTrace: `ActivityFailure: ${message}\n    at promoteStep (/app/dist/shared/services/deploy.js:1:1)`,
    properties: { code, message },
  };
  return e;
}

type Answer = unknown | ((input: any) => unknown);
function run(answers: Record<string, Answer>) {
  const calls: Array<{ name: string; input: any }> = [];
  const ctx = {
    df: {
      instanceId: 'deploy-test-1',
      currentUtcDateTime: new Date('2024-01-01T00:00:00Z'),
      getInput: () => ({
        source: { kind: 'http', eventId: 'e1' },
        model: { name: 'm', files: [{ path: 'model.json' }], tags: {}, properties: {} },
        files: { model: [{ path: 'model.json', blob: 'staging/m/model.json' }] },
        manifest: { service: { name: 'svc-a', tags: {} }, image: { name: 'img' }, target: 'local', deployConfig: { authEnabled: false } },
      }),
      setCustomStatus: () => undefined,
      callActivity: (name: string, input: unknown) => ({ name, input }),
      callActivityWithRetry: (name: string, _retry: unknown, input: unknown) => ({ name, input }),
    },
  };
  const gen = handler(ctx);
  let step = gen.next();
  while (!step.done) {
    const { name, input } = step.value as { name: string; input: any };
    calls.push({ name, input });
    let a = answers[name];
    if (typeof a === 'function') a = (a as (i: unknown) => unknown)(input);
    step = a instanceof Error ? gen.throw(a) : gen.next(a);
  }
  return { result: step.value, calls, names: calls.map((c) => c.name) };
}

const image = { id: 'img:2', name: 'img', version: 2, state: 'Succeeded', runtime: 'node', models: ['m:2'], imageRef: 'x', contextBlob: 'images/img/2.tar.gz' };
const happy: Record<string, Answer> = {
  registerModel: { ok: true, created: true, model: { id: 'm:2', name: 'm', version: 2, files: 1, bytes: 10 } },
  createImage: { ok: true, image },
  prepareDeployment: { ok: true, slot: 'green', previousSlot: 'blue', previousImage: 'img:1', isUpdate: true },
  deploySlot: { serviceName: 'svc-a', slot: 'green', state: 'Healthy', scoringUri: 'http://127.0.0.1:1/score', swaggerUri: '', healthUri: '' },
  smokeTest: { ok: true, checks: [], latencyMs: 3 },
  promoteDeployment: { scoringUri: 'http://127.0.0.1:2/score', swaggerUri: 'http://127.0.0.1:2/swagger.json' },
  retirePreviousSlot: { notes: [] },
  rollbackDeployment: { rolledBack: true, error: { code: 'X', message: 'x' } },
  publishDeploymentEvent: 'event-id',
};

test('retiring the previous slot fails after the promotion → the run Succeeds, nothing is rolled back', () => {
  const { result, names } = run({ ...happy, retirePreviousSlot: taskFailed('SlotBusy', 'cannot stop slot blue') });
  expect(result.state).toBe('Succeeded');
  expect(result.outcome).toBe('Updated');
  expect(names).not.toContain('rollbackDeployment');
  expect(names.indexOf('retirePreviousSlot')).toBeGreaterThan(names.indexOf('promoteDeployment'));
  expect(result.notes?.join(' ')).toMatch(/previous slot blue was not retired: cannot stop slot blue/);
});

test('the promote activity gets no previous slot to delete; retire gets it', () => {
  const { calls } = run(happy);
  expect(calls.find((c) => c.name === 'promoteDeployment')!.input.previousSlot).toBeUndefined();
  expect(calls.find((c) => c.name === 'retirePreviousSlot')!.input).toMatchObject({ slot: 'green', previousSlot: 'blue', previousImage: 'img:1' });
});

test('event publishing failures never fail the run: Succeeded with a note per lost event', () => {
  const { result, names } = run({ ...happy, publishDeploymentEvent: taskFailed('ServiceBusError', 'topic unreachable') });
  expect(result.state).toBe('Succeeded');
  expect(names).not.toContain('rollbackDeployment');
  expect(result.notes).toEqual(expect.arrayContaining([expect.stringMatching(/event ModelRegistered was not published: topic unreachable/), expect.stringMatching(/event ServiceUpdated was not published/)]));
});

test('a failed promotion rolls back (the hold is still this run) with a clean, redacted error', () => {
  const sas = 'https://acct.blob.core.windows.net/c/b?sv=2022&sig=SECRETSIG';
  const { result, names, calls } = run({ ...happy, promoteDeployment: taskFailed('TargetUnavailable', `could not reach ${sas}`) });
  expect(result.state).toBe('Failed');
  expect(result.error).toEqual({ code: 'TargetUnavailable', message: expect.stringContaining('could not reach') });
  expect(JSON.stringify(result.error)).not.toMatch(/SECRETSIG|\n\s+at /);
  expect(names).toContain('rollbackDeployment');
  expect(calls.find((c) => c.name === 'rollbackDeployment')!.input.reason).toEqual(result.error);
});
