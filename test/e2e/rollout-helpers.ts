/**
 * Helpers of the progressive-delivery end-to-end tests: a tiny scoring script whose behaviour is set by its
 * model.json (factor, injected failures, wrong answers on a share of inputs), deploying a version through
 * `POST /api/deployments`, a client keeping a bounded load on a scoring URI, and the cases' common start (v1
 * serving, load on its public URI, v2 rolling out).
 */
import type { StorageClients } from '../../shared/storage';
import { waitRun } from '../helpers/runs';

/** x → x × factor; `fail_every` n: every n-th call throws (a 500); `wrong_below` k: inputs with x mod 10 < k get +1. */
export const ROLL_SCRIPT = `
const fs = require('fs');
const path = require('path');
let m;
let n = 0;
exports.init = () => {
  const dir = process.env.AZUREML_MODEL_DIR;
  m = JSON.parse(fs.readFileSync(fs.statSync(dir).isFile() ? dir : path.join(dir, 'model.json'), 'utf8'));
};
exports.run = (input) => {
  n++;
  if (m.fail_every && n > 5 && n % m.fail_every === 0) throw new Error('injected failure');
  return input.data.map((x) => x * m.factor + (m.wrong_below !== undefined && x % 10 < m.wrong_below ? 1 : 0));
};
`;

export interface RollModel {
  factor: number;
  fail_every?: number;
  wrong_below?: number;
}

/** The app as the tests reach it: its HTTP API (and the host's log, when in-process). */
export interface RollEnv {
  request: (m: string, p: string, b?: unknown, h?: Record<string, string>) => Promise<{ status: number; body: any }>;
  logs?: string[];
}

/** Uploads a version's files to `staging/<folder>/` and starts its deployment; the run id. */
export async function deployVersion(
  env: RollEnv,
  storage: StorageClients,
  opts: { service: string; folder: string; model: RollModel; rollout?: Record<string, unknown> },
): Promise<string> {
  const c = await storage.ensureContainer('staging');
  await c.getBlockBlobClient(`${opts.folder}/model.json`).uploadData(Buffer.from(JSON.stringify(opts.model)));
  await c.getBlockBlobClient(`${opts.folder}/score.js`).uploadData(Buffer.from(ROLL_SCRIPT));
  const manifest = {
    model: { name: opts.service, files: ['model.json'] },
    image: { name: opts.service, runtime: 'node', entry_script: 'score.js' },
    target: { kind: 'local', num_replicas: 1 },
    service: { name: opts.service },
    smoke_test: { sample: { data: [15] }, expected_output: [15 * opts.model.factor] },
    ...(opts.rollout ? { rollout: opts.rollout } : {}),
  };
  const r = await env.request('POST', `/api/deployments?folder=staging/${opts.folder}`, manifest, { 'content-type': 'application/json' });
  if (r.status !== 202) throw new Error(`deployment of ${opts.folder} refused: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.runId as string;
}

export interface Answer {
  x: number;
  status: number;
  value?: number;
  /** ms since the load started. */
  at: number;
}

/**
 * A client keeping load on `url` (`workers` concurrent loops, `pauseMs` between requests) until `stop()`, at most
 * `maxRequests` requests and `maxMs` in all. Inputs cycle through 0..99, so a share of inputs is a share of requests.
 */
export function keepLoad(url: string, opts: { workers?: number; pauseMs?: number; maxRequests?: number; maxMs?: number } = {}) {
  const answers: Answer[] = [];
  const t0 = Date.now();
  let stopped = false;
  let next = 0;
  const max = opts.maxRequests ?? 20_000;
  const deadline = t0 + (opts.maxMs ?? 180_000);
  const worker = async () => {
    while (!stopped && next < max && Date.now() < deadline) {
      const x = next++ % 100;
      try {
        const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [x] }) });
        const body = (await r.json().catch(() => undefined)) as unknown;
        answers.push({ x, status: r.status, ...(r.status === 200 && Array.isArray(body) ? { value: body[0] as number } : {}), at: Date.now() - t0 });
      } catch {
        answers.push({ x, status: 0, at: Date.now() - t0 });
      }
      if (opts.pauseMs) await new Promise((res) => setTimeout(res, opts.pauseMs));
    }
  };
  const running = Promise.all(Array.from({ length: opts.workers ?? 2 }, worker));
  return {
    answers,
    async stop(): Promise<Answer[]> {
      stopped = true;
      await running;
      return answers;
    },
  };
}

/** Deploys v1 (factor 2) of `service` blue/green (folder `<service>-v1`) and waits for it; its public scoring URI. */
export async function firstVersion(env: RollEnv, storage: StorageClients, service: string): Promise<string> {
  const run = await waitRun(env, await deployVersion(env, storage, { service, folder: `${service}-v1`, model: { factor: 2 } }), 120_000);
  expect(run.state).toBe('Succeeded');
  return run.result.scoringUri as string;
}

/**
 * The start of a rollout case: v1 of `service` serving, a client keeping `load` on its public URI (2 workers, 5 ms
 * pauses unless told), then v2 (folder `<service>-v2`, `model`) deploying with `rollout`.
 */
export async function rolloutUnderLoad(
  env: RollEnv,
  storage: StorageClients,
  o: { service: string; model: RollModel; rollout: Record<string, unknown>; load?: Parameters<typeof keepLoad>[1] },
): Promise<{ uri: string; load: ReturnType<typeof keepLoad>; runId: string }> {
  const uri = await firstVersion(env, storage, o.service);
  const load = keepLoad(uri, o.load ?? { workers: 2, pauseMs: 5 });
  const runId = await deployVersion(env, storage, { service: o.service, folder: `${o.service}-v2`, model: o.model, rollout: o.rollout });
  return { uri, load, runId };
}

/** A few more answers (`more`, within 10 s) after the run ended, then the client stops; every answer. */
export async function stopAfterMore(load: ReturnType<typeof keepLoad>, more = 20): Promise<Answer[]> {
  const after = load.answers.length;
  for (let i = 0; i < 200 && load.answers.length < after + more; i++) await new Promise((r) => setTimeout(r, 50));
  return load.stop();
}

/** POSTs `{ data }` to a scoring URI; the status and the parsed answer. */
export async function score(uri: string, data: number[], headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const r = await fetch(uri, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ data }) });
  return { status: r.status, body: await r.json() };
}
