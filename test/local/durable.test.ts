import * as path from 'path';
import { startTestEnvironment, TestEnvironment } from '../../local/testing';

const appRoot = path.resolve(__dirname, '../fixtures/durable-app');
let env: TestEnvironment;

beforeAll(async () => {
  env = await startTestEnvironment({ appRoot });
});
afterAll(async () => {
  await env?.stop();
});

async function run(name: string, input?: unknown, id?: string) {
  const instanceId = await env.startOrchestration(name, input, id);
  return env.waitFor(instanceId);
}

describe('durable orchestrations on the local host', () => {
  test('callActivity in sequence', async () => {
    const s = await run('Sequence');
    expect(s.runtimeStatus).toBe('Completed');
    expect(s.output).toEqual(['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']);
  });

  test('Task.all fan-out / fan-in', async () => {
    const s = await run('FanOut', { n: 200 });
    expect(s.runtimeStatus).toBe('Completed');
    expect(s.output).toBe((199 * 200) / 2);
  });

  test('sub-orchestrations fan out and report their results', async () => {
    const s = await run('FanOutSub', { n: 130, chunk: 50 });
    expect(s.output).toBe(130);
    const children = await env.request('GET', '/runtime/webhooks/durabletask/instances?runtimeStatus=Completed');
    expect(children.body.filter((c: { name: string }) => c.name === 'FanOutRange').length).toBeGreaterThanOrEqual(3);
  });

  test('callActivityWithRetry honours RetryOptions (succeeds on the 3rd attempt)', async () => {
    const s = await run('Retry', { key: 'r1', failTimes: 2, attempts: 3 });
    expect(s.output).toEqual({ key: 'r1', attempts: 3 });
  });

  test('callActivityWithRetry gives up after maxNumberOfAttempts and delivers the failure', async () => {
    const s = await run('Retry', { key: 'r2', failTimes: 5, attempts: 2 });
    expect(s.runtimeStatus).toBe('Completed');
    expect((s.output as { failed: string }).failed).toMatch(/attempt 2 failed/);
  });

  test('retries interleaved with parallel tasks keep the task ids consistent', async () => {
    const s = await run('RetryParallel');
    expect(s.runtimeStatus).toBe('Completed');
    const out = s.output as { results: unknown[]; after: string };
    expect(out.results[1]).toBe('Hello b!');
    expect((out.results[0] as { attempts: number }).attempts).toBe(3);
    expect((out.results[2] as { attempts: number }).attempts).toBe(2);
    expect(out.after).toBe('Hello after!');
  });

  test('createTimer waits until fireAt', async () => {
    const s = await run('Timer', { seconds: 1 });
    const out = s.output as { firedAfter: string; fireAt: string };
    expect(Date.parse(out.firedAfter)).toBeGreaterThanOrEqual(Date.parse(out.fireAt));
  });

  test('waitForExternalEvent + Task.any + setCustomStatus: the event wins', async () => {
    const id = await env.startOrchestration('Approval', { timeoutSeconds: 60 });
    const waiting = await env.waitFor(id, { until: (s) => (s.customStatus as { waitingFor?: string })?.waitingFor === 'Approve' });
    expect(waiting.runtimeStatus).toBe('Running');
    const r = await env.request('POST', `/runtime/webhooks/durabletask/instances/${id}/raiseEvent/Approve`, { by: 'alice' });
    expect(r.status).toBe(202);
    const s = await env.waitFor(id);
    expect(s.output).toEqual({ approved: true, by: 'alice' });
    expect(s.customStatus).toEqual({ approvedBy: 'alice' });
  });

  test('Task.any: the timer wins when no event comes', async () => {
    const s = await run('Approval', { timeoutSeconds: 0.3 });
    expect(s.output).toEqual({ approved: false });
  });

  test('continueAsNew restarts with the new input', async () => {
    const s = await run('Counter', 0);
    expect(s.runtimeStatus).toBe('Completed');
    expect(s.output).toBe(3);
    expect(s.input).toBe(3);
  });

  test('newGuid and currentUtcDateTime are replay-stable', async () => {
    const s = await run('Deterministic');
    expect((s.output as { same: boolean }).same).toBe(true);
  });

  test('an orchestrator exception ends the instance Failed with the message', async () => {
    const s = await run('Throws');
    expect(s.runtimeStatus).toBe('Failed');
    expect(String(s.output)).toContain('boom in orchestrator');
  });

  test('activity failures are delivered as task failures', async () => {
    const caught = await run('ActivityFailure', { catchIt: true });
    expect((caught.output as { caught: string }).caught).toContain('activity failed: nope');
    const uncaught = await run('ActivityFailure', { catchIt: false });
    expect(uncaught.runtimeStatus).toBe('Failed');
    expect(String(uncaught.output)).toContain('activity failed: nope');
  });

  test('sub-orchestrator results, failures and retries reach the parent', async () => {
    const s = await run('Parent');
    expect(s.runtimeStatus).toBe('Completed');
    const out = s.output as { child: string[]; failure: string; retried: unknown };
    expect(out.child).toEqual(['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']);
    expect(out.failure).toContain('boom in orchestrator');
    expect(out.retried).toEqual({ key: `${s.instanceId}s`, attempts: 2 });
  });

  test('custom status over 16 KB fails the instance with a clear message', async () => {
    const s = await run('BigStatus');
    expect(s.runtimeStatus).toBe('Failed');
    expect(String(s.output)).toMatch(/custom status.*limit is 16384/i);
  });

  test('history is returned with showHistory', async () => {
    const s = await run('Sequence');
    const r = await env.status(s.instanceId, 'showHistory=true&showHistoryOutput=true');
    const types = r!.historyEvents!.map((e) => e.EventType);
    expect(types[0]).toBe('ExecutionStarted');
    expect(types.filter((t) => t === 'TaskCompleted')).toHaveLength(3);
    expect(types[types.length - 1]).toBe('ExecutionCompleted');
  });

  test('a new run that reuses an instance id never receives the previous run\'s results', async () => {
    await env.startOrchestration('OneWork', { key: 'first', ms: 800 }, 'reuse-1');
    await env.waitFor('reuse-1', { until: (x) => x.runtimeStatus === 'Running' });
    await env.request('POST', '/runtime/webhooks/durabletask/instances/reuse-1/terminate?reason=again');
    await env.waitFor('reuse-1');
    await env.startOrchestration('OneWork', { key: 'second', ms: 1500 }, 'reuse-1');
    const s = await env.waitFor('reuse-1', { until: (x) => x.runtimeStatus === 'Completed' && x.input !== null && (x.input as { key: string }).key === 'second' });
    expect(s.output).toBe('second');
  });

  test('status of a failed instance is 200 with the failure (as the extension answers), purge by filter needs a start time', async () => {
    const id = await env.startOrchestration('Throws');
    await env.waitFor(id);
    const r = await env.request('GET', `/runtime/webhooks/durabletask/instances/${id}`);
    expect(r.status).toBe(200);
    expect(r.body.runtimeStatus).toBe('Failed');
    const purge = await env.request('DELETE', '/runtime/webhooks/durabletask/instances?runtimeStatus=Failed');
    expect(purge.status).toBe(400);
    expect(purge.body.error.message).toContain('createdTimeFrom');
  });
});

