/**
 * A host that is starting (port bound, app not loaded yet) answers every request 503 `Starting` with Retry-After,
 * never a "No function serves" 404 (a client polling its run would think the run is gone).
 */
import type { ChildProcess } from 'child_process';
import { freePort, startAzurite, type AzuriteInstance } from '../../local/azurite';
import { kill9, startHostProcess } from '../../local/testing';

let azurite: AzuriteInstance;
let proc: ChildProcess | undefined;

beforeAll(async () => {
  azurite = await startAzurite();
}, 60_000);

afterAll(async () => {
  if (proc) await kill9(proc);
  await azurite?.stop();
});

interface Answer {
  status: number;
  retryAfter: string | null;
  code?: string;
}

test('requests during host start get 503 Starting + Retry-After, then the app answers; never a 404 from the host', async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let ready = false;
  const started = startHostProcess({ connectionString: azurite.connectionString, port }).then((h) => {
    proc = h.proc;
    ready = true;
    return h;
  });
  started.catch(() => undefined);

  // Poll from the first moment the port listens until the host said it is ready, then once more (bounded).
  const answers: Answer[] = [];
  const poll = async (): Promise<Answer | undefined> => {
    try {
      const res = await fetch(`${url}/api/runs/x`, { signal: AbortSignal.timeout(10_000) });
      const body = (await res.json().catch(() => undefined)) as { error?: { code?: string } } | undefined;
      return { status: res.status, retryAfter: res.headers.get('retry-after'), code: body?.error?.code };
    } catch {
      return undefined; // not listening yet
    }
  };
  for (let i = 0; i < 20_000 && !ready; i++) {
    const a = await poll();
    if (a) answers.push(a);
    else await new Promise((r) => setTimeout(r, 5));
  }
  await started;
  const after = await poll();
  expect(after).toEqual({ status: 404, retryAfter: null, code: 'RunNotFound' }); // the app's own answer: no such run

  const starting = answers.filter((a) => a.status === 503);
  expect(starting.length).toBeGreaterThan(0); // the window between listen and ready was seen
  for (const a of starting) expect(a).toEqual({ status: 503, retryAfter: '1', code: 'Starting' });
  // Every other answer is the app's (RunNotFound), never the host's "No function serves" NotFound.
  for (const a of answers.filter((x) => x.status !== 503)) expect(a).toEqual({ status: 404, retryAfter: null, code: 'RunNotFound' });
  // Once the app answered, the host never went back to "Starting".
  const firstApp = answers.findIndex((a) => a.status !== 503);
  if (firstApp >= 0) expect(answers.slice(firstApp).every((a) => a.status !== 503)).toBe(true);
}, 90_000);
