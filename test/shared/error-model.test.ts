/**
 * The error model (shared/errors.ts, shared/workflow.ts): retryable or not, one "not found", failure details as data
 * (the durable SDK's exception properties), and recorded deploy results of the older flat shape.
 */
import { RuntimeError } from '../../runtime';
import { AppError, badRequest, conflict, isNotFound, isRetryable, notFound, statusOf } from '../../shared/errors';
import { ActivityFailure, failureOf, resultOf } from '../../shared/workflow';

/** What the SDK's activity wrapper (`df.app.activity`) serializes for a thrown error: not in its typings. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { buildTaskFailureDetailsJson } = require('durable-functions/lib/src/error/ExceptionPropertiesProvider') as { buildTaskFailureDetailsJson(e: unknown): string | undefined };

describe('isRetryable', () => {
  test("the user's errors are not retried, server-side and unknown ones are", () => {
    expect(isRetryable(badRequest('InvalidManifest', 'x'))).toBe(false);
    expect(isRetryable(conflict('DeploymentInProgress', 'x'))).toBe(false);
    expect(isRetryable(new AppError('TargetUnavailable', 'x', 503))).toBe(true);
    expect(isRetryable(new RuntimeError('InvalidInput', 'x', 400))).toBe(false);
    expect(isRetryable(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(true);
  });
  test('an error can say otherwise than its status', () => {
    expect(isRetryable(new AppError('Throttled', 'x', 429, { retryable: true }))).toBe(true);
    expect(isRetryable(new AppError('QuotaExceeded', 'x', 500, { retryable: false }))).toBe(false);
  });
});

describe('isNotFound', () => {
  test.each([
    ['a storage RestError 404', Object.assign(new Error('The specified blob does not exist.'), { statusCode: 404, code: 'BlobNotFound' })],
    ['a Kubernetes ApiException 404', Object.assign(new Error('HTTP-Code: 404'), { code: 404 })],
    ["the app's own 404", notFound('ModelNotFound', 'Model m does not exist.')],
    ['the durable client on an unknown instance', new Error('DurableClient error: Durable Functions extension replied with HTTP 404 response.')],
    ['a missing file', Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' })],
  ])('%s is not found', (_what, e) => expect(isNotFound(e)).toBe(true));
  test.each([
    ['a 412', Object.assign(new Error('condition'), { statusCode: 412 })],
    ['a 400 AppError', badRequest('InvalidBlobPath', 'x')],
    ['a message that merely mentions 404', new Error('model 404 is not ready')],
    ['not an error', 'not found'],
  ])('%s is not', (_what, e) => expect(isNotFound(e)).toBe(false));
  test('statusOf reads RestError and Kubernetes statuses only', () => {
    expect(statusOf({ statusCode: 409 })).toBe(409);
    expect(statusOf({ code: 404 })).toBe(404);
    expect(statusOf({ code: 'BlobNotFound' })).toBeUndefined();
  });
});

describe('failure details as data', () => {
  test("a thrown ActivityFailure's code and message travel in the SDK's failure details and come back out (secrets removed)", () => {
    const thrown = new ActivityFailure({ code: 'TargetUnavailable', message: 'could not reach https://a.blob.core.windows.net/c?sv=1&sig=TOPSECRET' });
    const payload = JSON.parse(buildTaskFailureDetailsJson(thrown) ?? 'null');
    expect(payload).toMatchObject({ errorType: 'ActivityFailure', properties: { code: 'TargetUnavailable' } });
    expect(JSON.stringify(payload.properties)).not.toContain('TOPSECRET');
    const taskFailed = Object.assign(new Error('ActivityFailure: …'), { failureDetails: { errorType: payload.errorType, errorMessage: payload.errorMessage, properties: payload.properties } });
    expect(failureOf(taskFailed, 'RunFailed')).toEqual({ code: 'TargetUnavailable', message: 'could not reach https://a.blob.core.windows.net/c?sv=***&sig=***' });
  });
  test('a host that passes the SDK payload on as reason text (not lifted into the details): read the same way, no stack', () => {
    const payload = buildTaskFailureDetailsJson(new ActivityFailure({ code: 'TrafficSwitchFailed', message: 'the front did not switch' }));
    const e = new Error(`Activity function 'promoteDeployment' failed: ${payload} \n Error: x\n    at a (/b.js:1:1)`);
    expect(failureOf(e, 'RunFailed')).toEqual({ code: 'TrafficSwitchFailed', message: 'the front did not switch' });
  });
  test('other errors get no properties: the host records them as they are', () => {
    expect(buildTaskFailureDetailsJson(new Error('plain'))).toBeUndefined();
    expect(failureOf(new Error('plain'), 'RunFailed')).toEqual({ code: 'RunFailed', message: 'plain' });
  });
});

describe('resultOf (histories recorded before deploy activities returned ActivityResult)', () => {
  test('a flat success reads as { ok, value }', () => {
    expect(resultOf({ ok: true, slot: 'green', isUpdate: true })).toEqual({ ok: true, value: { slot: 'green', isUpdate: true } });
  });
  test('a flat failure keeps its error, its other fields become the detail', () => {
    const error = { code: 'ImageBuildFailed', message: 'pip failed' };
    expect(resultOf({ ok: false, error, image: { id: 'img:3' } })).toEqual({ ok: false, error, detail: { image: { id: 'img:3' } } });
    expect(resultOf({ ok: false, error })).toEqual({ ok: false, error });
  });
  test('results of the current shape pass unchanged', () => {
    const r = { ok: true, value: { runId: 'b' } };
    expect(resultOf(r)).toBe(r);
    const f = { ok: false, error: { code: 'X', message: 'y' }, detail: {} };
    expect(resultOf(f)).toBe(f);
  });
});
