/**
 * kill -9 of the host (a child process running the real app) in the middle of a canary step's bake, then a new host
 * on the same storage and work dir: the rollout resumes (its durable timer fires), sees that the front restarted
 * (new epoch: its counters and weights were lost), sets the weights again, bakes a fresh window and ends right — the
 * new version promoted, serving on the same public URI, one slot left.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ChildProcess } from 'child_process';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { kill9, startHostProcess } from '../../local/testing';
import { terminateGroups } from '../../shared/processes';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { rolloutUnderLoad, stopAfterMore } from './rollout-helpers';
import { waitRunView } from '../helpers/runs';
import { runtimesUnder } from '../helpers/replicas';

let azurite: AzuriteInstance;
let storage: StorageClients;
let workDir: string;
let host: { url: string; proc: ChildProcess } | undefined;

const startHost = async () => {
  host = await startHostProcess({ connectionString: azurite.connectionString, env: { LOCAL_WORK_DIR: workDir, SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollMs: 100 });
};

const allReplicas = () => runtimesUnder(workDir);

beforeAll(async () => {
  azurite = await startAzurite();
  storage = storageFromConnectionString(azurite.connectionString);
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-rollout-crash-'));
  await startHost();
}, 60_000);

afterAll(async () => {
  if (host) await kill9(host.proc);
  if (workDir) await terminateGroups(allReplicas(), 0);
  await azurite?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

async function request(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${host!.url}${urlPath}`, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
  const text = await res.text();
  try {
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  } catch {
    return { status: res.status, body: text };
  }
}

/** Polls the run (bounded, through host restarts) until `until` holds for its view. */
const waitView = (runId: string, until: (v: any) => boolean, what: string) => waitRunView({ request }, runId, until, { what });
const ended = (v: any) => !['Running', 'Pending'].includes(v.state);

test('kill -9 of the host mid-bake: the rollout resumes, bakes a fresh window and promotes the new version', async () => {
  const { uri, load, runId } = await rolloutUnderLoad({ request }, storage, {
    service: 'roll-crash',
    model: { factor: 3 },
    rollout: { strategy: 'canary', steps: [20, 100], bake_seconds: 6, gates: { max_error_rate: 0.01, min_requests: 3, max_wait_seconds: 30 } },
    load: { workers: 2, pauseMs: 20, maxRequests: 20_000, maxMs: 240_000 },
  });
  // Mid-bake of the 20 % step: the new version already takes its share.
  await waitView(runId, (v) => v.rollout?.phase === 'step' && v.rollout.weight === 20 && !!v.rollout.bakeUntil, 'the 20 % bake');
  for (let i = 0; i < 100 && !load.answers.some((a) => a.value === a.x * 3); i++) await new Promise((r) => setTimeout(r, 50));
  expect(load.answers.some((a) => a.value === a.x * 3)).toBe(true);
  await kill9(host!.proc);
  await startHost();

  const run = await waitView(runId, ended, 'the rollout to end');
  const answers = await stopAfterMore(load);
  expect(run.error).toBeUndefined();
  expect(run.state).toBe('Succeeded');
  const steps = run.result.rollout.completed;
  expect(steps.map((s: any) => [s.weight, s.outcome])).toEqual([
    [20, 'passed'],
    [100, 'passed'],
  ]);
  // The 20 % window was started again after the restart (its counters were lost with the old host) and had traffic.
  expect(steps[0].restarts).toBe(1);
  expect(steps[0].candidate.requests).toBeGreaterThanOrEqual(3);
  // Same public URI, the new version serves, one slot's replicas left.
  const tail = answers.slice(-10);
  for (const a of tail) expect(a).toMatchObject({ status: 200, value: a.x * 3 });
  const svc = await request('GET', '/api/services/roll-crash');
  expect(svc.body).toMatchObject({ state: 'Healthy', image: 'roll-crash:2', scoringUri: uri });
  expect(allReplicas()).toHaveLength(1);
}, 400_000);
