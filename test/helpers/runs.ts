/** Waiting for a run through the API, as a client polling its `statusUri` does. */
import type { TestEnvironment } from '../../local/testing';

/** The app's HTTP API as these helpers use it (a TestEnvironment, or a client of a host in a child process). */
export interface RunsApi {
  request(method: string, urlPath: string): Promise<{ status: number; body: any }>;
}

/** Polls `GET /api/runs/{id}` until the run has ended; its view. Fails after `timeoutMs` with the host log's tail (if known). */
export async function waitRun(env: RunsApi & { logs?: TestEnvironment['logs'] }, runId: string, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await env.request('GET', `/api/runs/${runId}`);
    if (r.status === 200 && !['Running', 'Pending'].includes(r.body.state)) return r.body;
    if (Date.now() > deadline) throw new Error(`run ${runId} still ${JSON.stringify(r.body)}; host log tail:\n${(env.logs ?? []).slice(-15).join('\n')}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

const runEnded = (view: any): boolean => !!view.state && !['Running', 'Pending'].includes(view.state);

/**
 * Polls `GET /api/runs/{id}` (every 100 ms, for at most `timeoutMs`) until `until` holds for the run's view; that view.
 * A failed request is tried again (a host being restarted). With `failIfEnded`, a run that ends first fails at once.
 */
export async function waitRunView(
  env: RunsApi,
  runId: string,
  until: (view: any) => boolean,
  opts: { what: string; timeoutMs?: number; failIfEnded?: boolean },
): Promise<any> {
  const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
  for (;;) {
    const r = await env.request('GET', `/api/runs/${runId}`).catch(() => undefined);
    if (r?.status === 200 && until(r.body)) return r.body;
    if (opts.failIfEnded && r?.status === 200 && runEnded(r.body)) throw new Error(`run ${runId} ended (${r.body.state}) before ${opts.what}: ${JSON.stringify(r.body.error)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what} of run ${runId}: ${JSON.stringify(r?.body).slice(0, 2000)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Polls the run until its rollout status satisfies `until` (see waitRunView); the run's view. */
export function waitRollout(env: RunsApi, runId: string, until: (rollout: any) => boolean, opts: { what?: string; timeoutMs?: number; failIfEnded?: boolean } = {}): Promise<any> {
  return waitRunView(env, runId, (v) => !!v.rollout && until(v.rollout), { what: 'the awaited rollout phase', ...opts });
}
