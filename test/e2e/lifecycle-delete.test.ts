/**
 * A forced `DELETE /api/services/{name}` while a deployment of that service waits for its new slot to start, or
 * while its smoke test waits for liveness (the score script's init() sleeps far longer than the liveness window):
 * the run sees the deletion and ends promptly with `ServiceDeleted`, the service is gone, and no process of its
 * slot is left.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { findProcesses } from '../../shared/processes';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const LIVENESS_MS = 60_000;
let env: TestEnvironment;
let storage: StorageClients;

/** init() sleeps 2 minutes: longer than the liveness window, so only seeing the deletion can end the run early. */
const SLOW_SCORE = `'use strict';
function init() { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000); }
function run(input) { return input; }
module.exports = { init, run };
`;

beforeAll(async () => {
  env = await startTestEnvironment({
    tempWorkDir: 'mdf-lifecycle-',
    settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: String(LIVENESS_MS), LOCAL_START_TIMEOUT_MS: '180000' },
    pollIntervalMs: 100,
  });
  storage = storageFromConnectionString(env.connectionString);
}, 120_000);

afterAll(async () => {
  await env?.stop();
  for (const name of ['slow-init', 'relapse']) for (const p of env ? slotProcesses(name) : []) process.kill(p, 'SIGKILL');
});

/** Processes of a service's slots, by their token: the slot folder their command line names. */
function slotProcesses(service: string): number[] {
  const dir = path.join(env.workDir, 'services', service) + path.sep;
  return findProcesses((argv) => argv.some((a) => a.startsWith(dir))).map((p) => p.pid);
}

async function run(id: string): Promise<any> {
  return (await env.request('GET', `/api/runs/${id}`)).body;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Deploys the diabetes example's model under `name` with `script` as its score.js; returns the run id. */
async function startDeployment(name: string, script: string): Promise<string> {
  const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  manifest.service = { name };
  manifest.image.name = name;
  const c = await storage.ensureContainer('staging');
  for (const f of ['model.json', 'package.json']) await c.getBlockBlobClient(`${name}/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  await c.getBlockBlobClient(`${name}/score.js`).uploadData(Buffer.from(script));
  const started = await env.request('POST', `/api/deployments?folder=staging/${name}`, manifest, { 'content-type': 'application/json' });
  expect(started.status).toBe(202);
  return started.body.runId as string;
}

/** Forced delete, then: the run ends (bounded far below the liveness window) Failed/ServiceDeleted, nothing left. */
async function deleteAndExpectPromptEnd(name: string, runId: string): Promise<void> {
  const deleted = await env.request('DELETE', `/api/services/${name}?force=true`);
  expect(deleted.status).toBe(200);
  expect(deleted.body).toEqual({ deleted: [name] });

  // The run ends well before the liveness window (let alone the 2-minute init) could have ended it: the wait is
  // bounded far below it.
  const final = await until('the run to end', async () => {
    const r = await run(runId);
    return r.state !== 'Running' ? r : undefined;
  }, LIVENESS_MS - 15_000);
  expect(final.state).toBe('Failed');
  expect(final.error.code).toBe('ServiceDeleted');
  expect(final.error.message).toContain(`Service ${name} was deleted`);
  expect(final.steps.map((s: any) => s.name)).toContain('rollback');

  // The service is gone and none of its processes is left.
  expect((await env.request('GET', `/api/services/${name}`)).status).toBe(404);
  await until('the slot processes to exit', async () => slotProcesses(name).length === 0, 15_000);
  expect(fs.existsSync(path.join(env.workDir, 'services', name))).toBe(false);
}

test('forced DELETE while the run waits for the new slot → the run ends promptly with ServiceDeleted; nothing left running', async () => {
  const name = 'slow-init';
  const runId = await startDeployment(name, SLOW_SCORE);

  // The run waits for the slot: its replica runs (sleeping in init()).
  await until('the slot to be starting', async () => ['deploy', 'smokeTest'].includes((await run(runId)).currentStep) && slotProcesses(name).length > 0, 120_000);

  // Without force: refused, nothing changes.
  const refused = await env.request('DELETE', `/api/services/${name}`);
  expect(refused.status).toBe(409);
  expect(refused.body.error.code).toBe('DeploymentInProgress');
  expect((await run(runId)).state).toBe('Running');

  await deleteAndExpectPromptEnd(name, runId);
}, 240_000);

test('forced DELETE while the smoke test waits for liveness → the run ends promptly with ServiceDeleted; nothing left running', async () => {
  const name = 'relapse';
  // The first init() is quick (the slot starts), then the worker dies; its restart's init() sleeps 2 minutes, so
  // GET / answers 503 and the smoke test keeps probing.
  const marker = path.join(env.workDir, 'relapse-marker');
  const script = `'use strict';
const fs = require('fs');
function init() {
  if (fs.existsSync(${JSON.stringify(marker)})) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000); return; }
  fs.writeFileSync(${JSON.stringify(marker)}, 'x');
  setTimeout(() => process.exit(1), 0);
}
function run(input) { return input; }
module.exports = { init, run };
`;
  const runId = await startDeployment(name, script);
  await until('the smoke test to wait', async () => (await run(runId)).currentStep === 'smokeTest', 120_000);
  expect(fs.existsSync(marker)).toBe(true);
  await deleteAndExpectPromptEnd(name, runId);
}, 240_000);
