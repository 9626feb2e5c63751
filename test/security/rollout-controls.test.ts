/**
 * Bad input on the progressive-delivery controls (`POST /api/runs/{id}/approve | reject | abort`): bodies are
 * bounded (size, depth), strict and typed, run ids checked before use, and nothing reaches a run when refused.
 * The pin header is covered with the front (test/shared/targets/local-front-split.test.ts: checked after the key,
 * unknown or overlong names answered 404 without reaching a slot).
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';

let env: TestEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-rollout-sec-', pollIntervalMs: 100 });
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const raw = async (urlPath: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
  const r = await fetch(`${env.baseUrl}${urlPath}`, { method: 'POST', headers, body });
  return { status: r.status, body: (await r.json().catch(() => undefined)) as any };
};

test.each(['approve', 'reject', 'abort'])('%s: oversize, deep, malformed, mistyped and unknown-field bodies are 4xx with the reason', async (action) => {
  const url = `/api/runs/some-run/${action}`;
  const big = await raw(url, JSON.stringify({ reason: 'x'.repeat(20_000) }));
  expect([400, 413]).toContain(big.status);
  expect(big.body.error.code).toMatch(/TooLarge/);
  const deep = await raw(url, '{"reason":' + '['.repeat(100) + ']'.repeat(100) + '}');
  expect(deep.status).toBe(400);
  expect(deep.body.error.code).toBe('InputTooDeep');
  const malformed = await raw(url, '{"reason": ');
  expect(malformed.status).toBe(400);
  const mistyped = await raw(url, JSON.stringify({ reason: 5 }));
  expect(mistyped.status).toBe(400);
  expect(mistyped.body.error.message).toMatch(/reason: must be/);
  const long = await raw(url, JSON.stringify({ reason: 'ok', by: 'b'.repeat(200) }));
  expect(long.status).toBe(400);
  expect(long.body.error.message).toMatch(/by: must be at most 128 characters/);
  const unknown = await raw(url, JSON.stringify({ reason: 'ok', approved: true }));
  expect(unknown.status).toBe(400);
  expect(unknown.body.error.message).toMatch(/approved: unknown field/);
  const notObject = await raw(url, '[1,2]');
  expect(notObject.status).toBe(400);
  // A well-formed body on a run that does not exist: 404, nothing raised anywhere.
  const missing = await raw(url, JSON.stringify({ reason: 'r', by: 'me' }));
  expect(missing.status).toBe(404);
  expect(missing.body.error.code).toBe('RunNotFound');
}, 60_000);

test('run ids are checked before use (no path tricks into other durable routes)', async () => {
  for (const id of ['..%2Fx', 'x%2Fy', '%00', 'a'.repeat(300)]) {
    const r = await raw(`/api/runs/${id}/abort`, '{}');
    expect([400, 404]).toContain(r.status);
    if (r.status === 400) expect(r.body.error.code).toBe('InvalidRunId');
  }
});
