/** Waiting for a run through the API, as a client polling its `statusUri` does. */
import type { TestEnvironment } from '../../local/testing';

/** Polls `GET /api/runs/{id}` until the run has ended; its view. Fails after `timeoutMs` with the host log's tail. */
export async function waitRun(env: Pick<TestEnvironment, 'request' | 'logs'>, runId: string, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await env.request('GET', `/api/runs/${runId}`);
    if (r.status === 200 && !['Running', 'Pending'].includes(r.body.state)) return r.body;
    if (Date.now() > deadline) throw new Error(`run ${runId} still ${JSON.stringify(r.body)}; host log tail:\n${env.logs.slice(-15).join('\n')}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}
