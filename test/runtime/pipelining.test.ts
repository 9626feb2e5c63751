/**
 * Pipelining of Python workers (runtime/pool.ts): requests queued at a worker behind its run() are answered by their
 * own reply, a queued request whose max_request_wait_time runs out is answered 503 and never runs, and requests
 * queued behind a run() that times out or crashes run once, on the restarted worker.
 * `pipelineMaxRunMs` is set high so that the queueing does not depend on this machine's speed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WorkerPool } from '../../runtime/pool';
import { post, start, tempDir, waitFor, type Started } from './helpers';

const SCRIPT = `
import json, os, time
LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.log")

def init():
    pass

def run(raw_data):
    req = json.loads(raw_data)
    with open(LOG, "a") as f:
        f.write("%s\\n" % req.get("n"))
    if req.get("action") == "sleep":
        time.sleep(req["seconds"])
    if req.get("crash"):
        os._exit(7)
    return {"n": req.get("n"), "pid": os.getpid()}
`;

function script(): { entryScript: string; runs: () => number[] } {
  const dir = tempDir('pipeline');
  fs.writeFileSync(path.join(dir, 'score.py'), SCRIPT);
  const log = path.join(dir, 'runs.log');
  return {
    entryScript: path.join(dir, 'score.py'),
    runs: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map(Number) : []),
  };
}

function workerPool(s: Started): WorkerPool {
  if (!(s.server.pool instanceof WorkerPool)) throw new Error('expected a worker pool');
  return s.server.pool;
}

describe('pipelined Python workers', () => {
  it('answers every request of a burst with its own reply', async () => {
    const sc = script();
    const s = await start({ entryScript: sc.entryScript, python: '/usr/bin/python3', workers: 2, pipelineDepth: 4, pipelineMaxRunMs: 60_000, maxWaitMs: 30_000 });
    try {
      expect((await post(`${s.url}/score`, { n: 0 })).status).toBe(200);
      const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => post(`${s.url}/score`, { n: i + 1 })));
      expect(replies.map((r) => r.status)).toEqual(Array(40).fill(200));
      const bodies = await Promise.all(replies.map((r) => r.json()));
      expect(bodies.map((b) => b.n)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(sc.runs().sort((a, b) => a - b)).toEqual(Array.from({ length: 41 }, (_, i) => i));
    } finally {
      await s.server.stop();
    }
  });

  it('a request queued at a worker past max_request_wait_time gets 503 and is not run', async () => {
    const sc = script();
    const s = await start({ entryScript: sc.entryScript, python: '/usr/bin/python3', workers: 1, pipelineDepth: 4, pipelineMaxRunMs: 60_000, maxWaitMs: 300 });
    try {
      const pool = workerPool(s);
      expect((await post(`${s.url}/score`, { n: 0 })).status).toBe(200);
      const slow = post(`${s.url}/score`, { n: 1, action: 'sleep', seconds: 1.5 });
      await waitFor(() => pool.inflight === 1);
      const queued = [2, 3, 4].map((n) => post(`${s.url}/score`, { n }));
      await waitFor(() => pool.queuedAtWorkers === 3);
      const answers = await Promise.all(queued);
      expect(answers.map((r) => r.status)).toEqual([503, 503, 503]);
      expect((await answers[0].json()).error.code).toBe('ServiceOverloaded');
      expect((await slow).status).toBe(200);
      expect((await post(`${s.url}/score`, { n: 5 })).status).toBe(200);
      expect(sc.runs()).toEqual([0, 1, 5]);
      await waitFor(() => pool.queued === 0 && pool.inflight === 0);
    } finally {
      await s.server.stop();
    }
  });

  it('requests queued behind a run() that times out run once, on the restarted worker', async () => {
    const sc = script();
    const s = await start({ entryScript: sc.entryScript, python: '/usr/bin/python3', workers: 1, pipelineDepth: 4, pipelineMaxRunMs: 60_000, maxWaitMs: 30_000, timeoutMs: 1000 });
    try {
      const pool = workerPool(s);
      const first = await (await post(`${s.url}/score`, { n: 0 })).json();
      const slow = post(`${s.url}/score`, { n: 1, action: 'sleep', seconds: 30 });
      await waitFor(() => pool.inflight === 1);
      const queued = [2, 3].map((n) => post(`${s.url}/score`, { n }));
      await waitFor(() => pool.queuedAtWorkers === 2);
      expect((await slow).status).toBe(504);
      const answers = await Promise.all(queued);
      expect(answers.map((r) => r.status)).toEqual([200, 200]);
      for (const a of answers) expect((await a.json()).pid).not.toBe(first.pid);
      expect(sc.runs()).toEqual([0, 1, 2, 3]);
    } finally {
      await s.server.stop();
    }
  });

  it('requests queued behind a run() that crashes its worker run once; only the crashing one gets 500', async () => {
    const sc = script();
    const s = await start({ entryScript: sc.entryScript, python: '/usr/bin/python3', workers: 1, pipelineDepth: 4, pipelineMaxRunMs: 60_000, maxWaitMs: 30_000, restartInitialMs: 50 });
    try {
      const pool = workerPool(s);
      expect((await post(`${s.url}/score`, { n: 0 })).status).toBe(200);
      const crash = post(`${s.url}/score`, { n: 1, action: 'sleep', seconds: 0.5, crash: true });
      await waitFor(() => pool.inflight === 1);
      const queued = [2, 3].map((n) => post(`${s.url}/score`, { n }));
      await waitFor(() => pool.queuedAtWorkers === 2);
      const died = await crash;
      expect(died.status).toBe(500);
      expect((await died.json()).error.code).toBe('WorkerDied');
      expect((await Promise.all(queued)).map((r) => r.status)).toEqual([200, 200]);
      expect(sc.runs()).toEqual([0, 1, 2, 3]);
    } finally {
      await s.server.stop();
    }
  });

  it('with --pipeline-depth 0 a busy worker gets nothing more: requests wait in the front queue', async () => {
    const sc = script();
    const s = await start({ entryScript: sc.entryScript, python: '/usr/bin/python3', workers: 1, pipelineDepth: 0, maxWaitMs: 30_000 });
    try {
      const pool = workerPool(s);
      expect((await post(`${s.url}/score`, { n: 0 })).status).toBe(200);
      const slow = post(`${s.url}/score`, { n: 1, action: 'sleep', seconds: 0.5 });
      await waitFor(() => pool.inflight === 1);
      const queued = [2, 3].map((n) => post(`${s.url}/score`, { n }));
      await waitFor(() => pool.queued === 2);
      expect(pool.queuedAtWorkers).toBe(0);
      expect((await slow).status).toBe(200);
      expect((await Promise.all(queued)).map((r) => r.status)).toEqual([200, 200]);
    } finally {
      await s.server.stop();
    }
  });
});
