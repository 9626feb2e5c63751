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

describe('HTTP triggers', () => {
  test('route templates with constraints, query and params', async () => {
    const r = await env.request('GET', '/api/items/42?q=hello');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ id: 42, q: 'hello' });
    expect((await env.request('GET', '/api/items/abc')).status).toBe(404);
  });

  test('catch-all parameters and optional ones', async () => {
    expect((await env.request('GET', '/api/files/a/b/c.txt')).body).toEqual({ path: 'a/b/c.txt' });
    expect((await env.request('GET', '/api/files')).body).toEqual({ path: null });
  });

  test('methods are honoured; status, headers and body come back', async () => {
    const r = await env.request('POST', '/api/echo', 'ping');
    expect(r.status).toBe(201);
    expect(r.headers.get('x-echo')).toBe('yes');
    expect(r.text).toBe('ping');
    const wrong = await env.request('GET', '/api/echo');
    expect(wrong.status).toBe(405);
    expect(wrong.body.error.code).toBe('MethodNotAllowed');
  });

  test('cookies set by a function reach the client as Set-Cookie headers', async () => {
    const r = await fetch(`${env.baseUrl}/api/cookies`);
    expect(r.headers.getSetCookie()).toEqual(['session=abc; Path=/; Max-Age=60; Secure; HttpOnly; SameSite=Strict', 'plain=x']);
  });

  test('unknown route → 404 JSON', async () => {
    const r = await env.request('GET', '/api/nothing/here');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('NotFound');
  });

  test('a throwing handler → 500 JSON with the invocation id and no internals', async () => {
    const r = await env.request('GET', '/api/boom');
    expect(r.status).toBe(500);
    expect(r.body.error.code).toBe('FunctionFailed');
    expect(r.body.invocationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.text).not.toContain('secret internal detail');
    expect(env.logs.join('\n')).toContain('secret internal detail');
  });
});

describe('durable client binding (df.getClient) against the local host', () => {
  test('startNew with an id + createCheckStatusResponse gives working management URLs', async () => {
    const r = await env.request('POST', '/api/orchestrators/Sequence/my-seq-1');
    expect(r.status).toBe(202);
    expect(r.body.id).toBe('my-seq-1');
    expect(r.headers.get('location')).toBe(r.body.statusQueryGetUri);
    expect(r.body.statusQueryGetUri.startsWith(env.baseUrl)).toBe(true);
    await env.waitFor('my-seq-1');
    const status = await fetch(r.body.statusQueryGetUri);
    expect(status.status).toBe(200);
    expect((await status.json()).output).toEqual(['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']);
  });

  test('startNew without an id generates one', async () => {
    const r = await env.request('POST', '/api/orchestrators/Sequence');
    expect(r.body.id).toMatch(/^[0-9a-f]{32}$/);
    await env.waitFor(r.body.id);
  });

  test('startNew on a running instance id → 409; on a finished one it starts again', async () => {
    await env.request('POST', '/api/orchestrators/Approval/dup-1', { timeoutSeconds: 60 });
    const again = await env.request('POST', '/runtime/webhooks/durabletask/orchestrators/Approval/dup-1', { timeoutSeconds: 60 });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('InstanceExists');
    await env.request('POST', '/api/client/terminate/dup-1');
    await env.waitFor('dup-1');
    const restarted = await env.request('POST', '/runtime/webhooks/durabletask/orchestrators/Sequence/dup-1');
    expect(restarted.status).toBe(202);
    expect((await env.waitFor('dup-1')).name).toBe('Sequence');
  });

  test('getStatus with history and input', async () => {
    const id = await env.startOrchestration('Sequence', { note: 'in' });
    await env.waitFor(id);
    const r = await env.request('GET', `/api/client/status/${id}`);
    expect(r.body.runtimeStatus).toBe('Completed');
    expect(r.body.input).toEqual({ note: 'in' });
    expect(r.body.history.filter((e: { EventType: string }) => e.EventType === 'TaskCompleted').map((e: { Result: string }) => e.Result)).toEqual([
      'Hello Tokyo!',
      'Hello Seattle!',
      'Hello London!',
    ]);
  });

  test('raiseEvent, getStatusBy and terminate through the client', async () => {
    const a = await env.startOrchestration('Approval', { timeoutSeconds: 60 }, 'appr-a');
    const b = await env.startOrchestration('Approval', { timeoutSeconds: 60 }, 'appr-b');
    await env.waitFor(a, { until: (s) => s.runtimeStatus === 'Running' && s.customStatus !== null });
    await env.waitFor(b, { until: (s) => s.runtimeStatus === 'Running' && s.customStatus !== null });
    const running = await env.request('GET', '/api/client/by?status=Running');
    const ids = running.body.map((s: { instanceId: string }) => s.instanceId);
    expect(ids).toEqual(expect.arrayContaining(['appr-a', 'appr-b']));
    expect((await env.request('POST', `/api/client/raise/${a}?event=Approve`, { by: 'bob' })).status).toBe(202);
    expect((await env.waitFor(a)).output).toEqual({ approved: true, by: 'bob' });
    expect((await env.request('POST', `/api/client/terminate/${b}`)).status).toBe(202);
    const t = await env.waitFor(b);
    expect(t.runtimeStatus).toBe('Terminated');
    expect(t.output).toBe('stopped by test');
    // Raising an event on a finished instance: 410 from the API.
    const gone = await env.request('POST', `/runtime/webhooks/durabletask/instances/${b}/raiseEvent/Approve`, {});
    expect(gone.status).toBe(410);
  });

  test('purgeInstanceHistory removes a finished instance', async () => {
    const id = await env.startOrchestration('Sequence');
    await env.waitFor(id);
    const r = await env.request('DELETE', `/api/client/purge/${id}`);
    expect(r.body).toEqual({ instancesDeleted: 1 });
    expect(await env.status(id)).toBeUndefined();
  });

  test('waitForCompletionOrCreateCheckStatusResponse returns the output when done in time', async () => {
    const r = await env.request('GET', '/api/client/start-wait');
    expect(r.status).toBe(200);
    expect(r.body).toEqual(['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']);
  });

  test('waitForCompletionOrCreateCheckStatusResponse times out into a 202 check-status response', async () => {
    const id = await env.startOrchestration('Approval', { timeoutSeconds: 60 });
    const r = await env.request('GET', `/api/client/wait/${id}`);
    expect(r.status).toBe(202);
    expect(r.body.id).toBe(id);
    await env.request('POST', `/runtime/webhooks/durabletask/instances/${id}/terminate?reason=done`);
  });
});

describe('bad input to the Durable HTTP API', () => {
  test('malformed JSON body → 400', async () => {
    const r = await env.request('POST', '/runtime/webhooks/durabletask/orchestrators/Sequence', '{not json', { 'content-type': 'application/json' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('InvalidJson');
  });

  test.each([
    ['a'.repeat(257), 'InvalidInstanceId'],
    ['@entity', 'InvalidInstanceId'],
    ['has%23hash', 'InvalidInstanceId'],
    ['has%3Fquery', 'InvalidInstanceId'],
    ['has%5Cbackslash', 'InvalidInstanceId'],
    ['ctl%01char', 'InvalidInstanceId'],
  ])('invalid instance id %s → 400', async (id, code) => {
    const r = await env.request('POST', `/runtime/webhooks/durabletask/orchestrators/Sequence/${id}`);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe(code);
  });

  test('an instance id with a slash → 400 naming the rule', async () => {
    const r = await env.request('POST', '/runtime/webhooks/durabletask/orchestrators/Sequence/a/b');
    expect(r.status).toBe(400);
  });

  test('unknown orchestrator → 404 with a clear message', async () => {
    const r = await env.request('POST', '/runtime/webhooks/durabletask/orchestrators/NoSuchThing');
    expect(r.status).toBe(404);
    expect(r.body.error.message).toContain("No orchestrator function named 'NoSuchThing'");
  });

  test('unknown instance → 404; unknown runtimeStatus filter → 400', async () => {
    expect((await env.request('GET', '/runtime/webhooks/durabletask/instances/nope')).status).toBe(404);
    const r = await env.request('GET', '/runtime/webhooks/durabletask/instances?runtimeStatus=Sleeping');
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('InvalidRuntimeStatus');
  });

  test('the host keeps serving after bad input', async () => {
    const s = await env.waitFor(await env.startOrchestration('Sequence'));
    expect(s.runtimeStatus).toBe('Completed');
  });
});
