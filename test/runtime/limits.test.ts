/** HTTP contract: auth, request ids, limits (413 / 503 / 504), crashes and restarts, metrics, access log. */
import * as http from 'node:http';
import * as path from 'node:path';
import { EX, post, start, waitFor, type Started } from './helpers';

const faults = path.join(EX, 'python/faults/score.py');
const KEYS = { primaryKey: 'pk-0123456789-secret', secondaryKey: 'sk-9876543210-secret' };

describe('key auth and request ids', () => {
  let s: Started;
  beforeAll(async () => {
    s = await start({ entryScript: path.join(EX, 'node/score.js'), keys: KEYS });
  });
  afterAll(() => s.server.stop());

  it('leaves GET / and the swagger open', async () => {
    expect((await fetch(`${s.url}/`)).status).toBe(200);
    const doc = await (await fetch(`${s.url}/swagger.json`)).json();
    expect(doc.paths['/score'].post.security).toEqual([{ Bearer: [] }]);
  });

  it('requires a Bearer key on /score, /batch and /metrics; accepts primary and secondary', async () => {
    const cases: Array<[Record<string, string>, number]> = [
      [{}, 401],
      [{ authorization: 'Bearer wrong' }, 401],
      [{ authorization: `Basic ${KEYS.primaryKey}` }, 401],
      [{ authorization: `Bearer ${KEYS.primaryKey}x` }, 401],
      [{ authorization: `Bearer ${KEYS.primaryKey}` }, 200],
      [{ authorization: `bearer ${KEYS.secondaryKey}` }, 200],
    ];
    for (const [headers, status] of cases) {
      const res = await post(`${s.url}/score`, { data: [1] }, headers);
      expect(res.status).toBe(status);
      if (status === 401) {
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
        expect((await res.json()).error.code).toBe('Unauthorized');
      }
    }
    expect((await post(`${s.url}/batch`, { mini_batch: [] })).status).toBe(401);
    expect((await fetch(`${s.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${KEYS.secondaryKey}` } })).status).toBe(200);
  });

  it('sets x-ms-request-id on every response and echoes x-ms-client-request-id', async () => {
    const a = await post(`${s.url}/score`, { data: [1] }, { authorization: `Bearer ${KEYS.primaryKey}`, 'x-ms-client-request-id': 'client-42' });
    const b = await fetch(`${s.url}/nothing-here`, { headers: { 'x-ms-client-request-id': 'bad id with spaces' } });
    expect(a.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers.get('x-ms-request-id')).not.toBe(b.headers.get('x-ms-request-id'));
    expect(a.headers.get('x-ms-client-request-id')).toBe('client-42');
    expect(b.headers.get('x-ms-client-request-id')).toBeNull();
    expect(b.status).toBe(404);
    expect((await b.json()).error.code).toBe('NotFound');
  });

  it('logs every request without bodies, keys or auth headers', async () => {
    await post(`${s.url}/score`, { data: [123456789] }, { authorization: `Bearer ${KEYS.primaryKey}`, 'x-ms-client-request-id': 'logged-1' });
    await waitFor(() => s.logs.some((l) => l.clientRequestId === 'logged-1'));
    const rec = s.logs.find((l) => l.clientRequestId === 'logged-1')!;
    expect(rec).toMatchObject({ event: 'access', method: 'POST', path: '/score', status: 200 });
    expect(typeof rec.durationMs).toBe('number');
    expect(rec.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const all = JSON.stringify(s.logs);
    expect(all).not.toContain(KEYS.primaryKey);
    expect(all).not.toContain(KEYS.secondaryKey);
    expect(all).not.toContain('123456789');
    expect(all.toLowerCase()).not.toContain('authorization');
  });
});

describe('body limit', () => {
  let s: Started;
  beforeAll(async () => {
    s = await start({ entryScript: path.join(EX, 'node/score.js'), maxBodyBytes: 1024 });
  });
  afterAll(() => s.server.stop());

  it('413 when Content-Length is over the limit', async () => {
    const res = await post(`${s.url}/score`, JSON.stringify({ data: Array(600).fill(1) }));
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe('PayloadTooLarge');
  });

  it('413 when a chunked body grows over the limit', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${s.url}/score`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write('x'.repeat(800));
      req.end('y'.repeat(800));
    });
    expect(status).toBe(413);
  });

  it('a body under the limit is scored', async () => {
    expect((await post(`${s.url}/score`, { data: [1] })).status).toBe(200);
  });
});

describe('overload, timeout and recycle (Python)', () => {
  let s: Started;
  beforeAll(async () => {
    s = await start({ entryScript: faults, workers: 1, maxConcurrent: 1, maxWaitMs: 100, timeoutMs: 1500 });
  });
  afterAll(() => s.server.stop());

  it('a burst beyond replica_max_concurrent_requests waits max_request_wait_time, then gets 503', async () => {
    const slow = post(`${s.url}/score`, { action: 'sleep', seconds: 1 });
    await waitFor(() => s.server.pool.inflight === 1);
    const burst = await Promise.all(Array.from({ length: 8 }, () => post(`${s.url}/score`, { x: 1 })));
    const statuses = burst.map((r) => r.status);
    expect(statuses).toEqual(Array(8).fill(503));
    const body = await burst[0].json();
    expect(body.error.code).toBe('ServiceOverloaded');
    expect(burst[0].headers.get('retry-after')).toBe('1');
    expect((await slow).status).toBe(200);
    // Once the slot is free, requests go through again.
    expect((await post(`${s.url}/score`, { x: 2 })).status).toBe(200);
  });

  it('a run() over scoring_timeout_ms gets 504 and the worker is recycled', async () => {
    const before = (await (await post(`${s.url}/score`, { x: 1 })).json()).pid;
    const res = await post(`${s.url}/score`, { action: 'sleep', seconds: 30 });
    expect(res.status).toBe(504);
    expect((await res.json()).error.code).toBe('ScoringTimeout');
    await waitFor(() => s.server.pool.readyCount === 1 && !s.server.pool.pids.includes(before));
    const after = (await (await post(`${s.url}/score`, { x: 1 })).json()).pid;
    expect(after).not.toBe(before);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/^scoring_worker_restarts_total 1$/m);
    expect(metrics).toMatch(/^scoring_rejected_total\{status="504"\} 1$/m);
    expect(metrics).toMatch(/^scoring_rejected_total\{status="503"\} 8$/m);
  });
});

describe('worker crash and restart', () => {
  it('Python: the in-flight request gets 500 WorkerDied, the other worker keeps serving, the dead one restarts', async () => {
    const s = await start({ entryScript: faults, workers: 2, maxWaitMs: 2000, restartInitialMs: 1500 });
    try {
      const pids = new Set(s.server.pool.pids);
      expect(pids.size).toBe(2);
      const crash = await post(`${s.url}/score`, { action: 'crash' });
      expect(crash.status).toBe(500);
      const { error } = await crash.json();
      expect(error.code).toBe('WorkerDied');
      expect(error.message).toContain('exit code 7');
      // The surviving worker answers at once, while the other is restarting.
      const ok = await post(`${s.url}/score`, { x: 1 });
      expect(ok.status).toBe(200);
      expect(pids.has((await ok.json()).pid)).toBe(true);
      await waitFor(() => s.server.pool.readyCount === 2);
      expect(s.server.pool.pids.filter((p) => !pids.has(p))).toHaveLength(1);
      expect(s.logs.some((l) => l.event === 'worker_exit')).toBe(true);
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(/^scoring_worker_restarts_total 1$/m);
      expect(metrics).toMatch(/^scoring_workers_ready 2$/m);
      expect(metrics).toMatch(/^scoring_requests_total\{route="score",status="500"\} 1$/m);
      expect(metrics).toMatch(/^scoring_request_duration_seconds_count\{route="score"\} 2$/m);
      expect(metrics).toMatch(/^scoring_queue_wait_seconds_count 2$/m);
    } finally {
      await s.server.stop();
    }
  });

  it('Node: a crashing run() restarts its worker with backoff; GET / is 503 while none is ready', async () => {
    const s = await start({ entryScript: path.join(EX, 'node/score.mjs'), workers: 1, restartInitialMs: 300 });
    try {
      const crash = await post(`${s.url}/score`, { action: 'crash' });
      expect(crash.status).toBe(500);
      expect((await crash.json()).error.message).toContain('exit code 9');
      const health = await fetch(`${s.url}/`);
      expect(health.status).toBe(503);
      expect((await health.json()).error.message).toContain('restarting');
      await waitFor(async () => (await fetch(`${s.url}/`)).status === 200);
      expect(await (await post(`${s.url}/score`, { text: 'up' })).json()).toEqual({ upper: 'UP' });
    } finally {
      await s.server.stop();
    }
  });

  it('Python: concurrent run() calls per worker (threads) with max-concurrent > 1', async () => {
    const s = await start({ entryScript: faults, workers: 1, maxConcurrent: 3, maxWaitMs: 50 });
    try {
      const results = await Promise.all(Array.from({ length: 3 }, () => post(`${s.url}/score`, { action: 'sleep', seconds: 0.3 })));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    } finally {
      await s.server.stop();
    }
  });

  it('Node: concurrent run() calls per worker with max-concurrent > 1', async () => {
    const s = await start({ entryScript: path.join(EX, 'node/score.mjs'), workers: 1, maxConcurrent: 4, maxWaitMs: 50 });
    try {
      const results = await Promise.all(Array.from({ length: 4 }, () => post(`${s.url}/score`, { action: 'sleep', ms: 300 })));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    } finally {
      await s.server.stop();
    }
  });
});
