/**
 * Every server bounds slow and abandoned connections (the standing battery for that class):
 * - a real local deployment of examples/models/diabetes-node, deployed over HTTP (auth off and on): 300 requests
 *   abandoned mid-body leave the service answering normally; slowloris headers get 408; oversize bodies get 413
 *   from the front, declared or chunked;
 * - the scoring runtime and its replica router directly (in-process): the same, plus a slow body (408) and the
 *   connection cap (503);
 * - the local Functions host: abandoned uploads, slowloris, slow body.
 * Small timeouts come from settings/options so the test runs fast; it asserts on statuses and health, never on time.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { startLocalReplicas, type AutoscaleRouter } from '../../runtime/autoscale';
import { storageFromConnectionString } from '../../shared/storage';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const LIMIT = 64 * 1024;
const ROW = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const EXPECTED = 152.538047;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RawAnswer {
  status?: number;
  body?: any;
  /** The server closed the connection. */
  closed: boolean;
}

function parseAnswer(text: string, closed: boolean): RawAnswer {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  const at = text.indexOf('\r\n\r\n');
  let body: unknown;
  if (at >= 0) {
    try {
      body = JSON.parse(text.slice(at + 4));
    } catch {
      body = text.slice(at + 4);
    }
  }
  return { status: m ? Number(m[1]) : undefined, body, closed };
}

/**
 * One raw connection: sends `parts` one after the other (`gapMs` apart) until the server answers or closes, then
 * waits for the server to close; bounded by the number of parts and by `maxWaitMs` after the last one.
 */
function exchange(base: string, parts: string[], gapMs: number, maxWaitMs = 30_000): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let text = '';
    let closed = false;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseAnswer(text, closed));
    };
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (d) => {
      text += d.toString('latin1');
      // A whole answer is enough, unless it announces the close (a 413 keeps the connection open while the rest
      // of the body is dropped; a 408 closes it, which is checked).
      const at = text.indexOf('\r\n\r\n');
      const headers = at >= 0 ? text.slice(0, at) : '';
      const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
      const closing = /\r\nconnection: *close/i.test(headers);
      if (length && !closing && Buffer.byteLength(text.slice(at + 4), 'latin1') >= Number(length[1])) setImmediate(settle);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      settle();
    });
    socket.on('connect', async () => {
      for (const p of parts) {
        if (text || closed) break;
        socket.write(p);
        if (gapMs) await sleep(gapMs);
        else await new Promise((r) => setImmediate(r));
      }
      if (!settled) timer = setTimeout(settle, maxWaitMs);
    });
  });
}

const head = (method: string, headers: Record<string, string | number>) =>
  `${method} /score HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

/** `count` connections that each send their headers and part of a JSON body, then close (`batch` at a time). */
async function abandon(base: string, count: number, extra: Record<string, string> = {}, path = '/score', batch = 50): Promise<void> {
  const url = new URL(base);
  const one = () =>
    new Promise<void>((resolve) => {
      const s = net.connect(Number(url.port), url.hostname);
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.on('connect', () => {
        const request = head('POST', { 'content-type': 'application/json', 'content-length': 4000, ...extra }).replace('/score', path);
        // Closed a moment later, once the server had time to start forwarding it (pacing, not a measurement).
        s.write(`${request}{"data": [[0, 0, 0,`, () => setTimeout(() => s.destroy(), 100));
      });
    });
  for (let done = 0; done < count; done += batch) await Promise.all(Array.from({ length: Math.min(batch, count - done) }, one));
}

/** A handful of ordinary scoring requests, each bounded (a wedged service fails here instead of hanging). */
async function scoresNormally(uri: string, key?: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const res = await fetch(uri, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ data: [ROW] }),
      signal: AbortSignal.timeout(30_000),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as number[])[0]).toBeCloseTo(EXPECTED, 5);
  }
}

/** Slowloris: the request line, then one header line at a time, never the blank line. */
function slowHeaders(base: string): Promise<RawAnswer> {
  return exchange(base, ['POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n', ...Array.from({ length: 150 }, (_, i) => `X-Slow-${i}: 1\r\n`)], 200);
}

/** Complete headers, then a body that trickles in and never completes. */
function slowBody(base: string, extra: Record<string, string> = {}, p = '/score'): Promise<RawAnswer> {
  const h = head('POST', { 'content-type': 'application/json', 'content-length': 10_000, ...extra }).replace('/score', p);
  return exchange(base, [h, ...Array.from({ length: 150 }, () => ' ')], 200);
}

function oversizeDeclared(base: string, extra: Record<string, string> = {}): Promise<RawAnswer> {
  return exchange(base, [head('POST', { 'content-type': 'application/json', 'content-length': LIMIT + 1, ...extra }), '{"data": ['], 0);
}

function oversizeChunked(base: string, extra: Record<string, string> = {}): Promise<RawAnswer> {
  const piece = ' '.repeat(8 * 1024);
  const chunks = Array.from({ length: (2 * LIMIT) / piece.length }, () => `${piece.length.toString(16)}\r\n${piece}\r\n`);
  return exchange(base, [head('POST', { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...extra }), ...chunks, '0\r\n\r\n'], 10);
}

/** What a client library sees for a body well over the limit, sent whole at once: declared, then chunked. */
async function expectTooLarge(uri: string, headers: Record<string, string> = {}): Promise<void> {
  const big = Buffer.alloc(16 * LIMIT, 0x20);
  const declared = await fetch(uri, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: big, signal: AbortSignal.timeout(30_000) });
  expect(declared.status).toBe(413);
  expect(((await declared.json()) as any).error.code).toBe('PayloadTooLarge');
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 16; i++) c.enqueue(big.subarray(i * LIMIT, (i + 1) * LIMIT));
      c.close();
    },
  });
  const chunked = await fetch(uri, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: stream, duplex: 'half', signal: AbortSignal.timeout(30_000) } as RequestInit);
  expect(chunked.status).toBe(413);
  expect(((await chunked.json()) as any).error.code).toBe('PayloadTooLarge');
}

function expectError(a: RawAnswer, status: number, code: string): void {
  expect({ status: a.status, code: a.body?.error?.code }).toEqual({ status, code });
}

describe('a local deployment (front → router → replica) through the local host', () => {
  let env: TestEnvironment;
  let open: string;
  let secured: string;
  let key: string;

  async function deploy(name: string, target: Record<string, unknown>): Promise<string> {
    const files = fs.readdirSync(EXAMPLE);
    const storage = storageFromConnectionString(env.connectionString);
    const staging = await storage.ensureContainer('staging');
    for (const f of files) await staging.getBlockBlobClient(`${name}/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
    const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
    const started = await env.request('POST', `/api/deployments?folder=staging/${name}`, { ...manifest, image: { ...manifest.image, name }, service: { name }, target }, { 'content-type': 'application/json' });
    expect(started.status).toBe(202);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const r = await env.request('GET', `/api/runs/${started.body.runId}`);
      if (r.status === 200 && !['Running', 'Pending'].includes(r.body.state)) {
        expect(r.body).toMatchObject({ state: 'Succeeded' });
        return r.body.result.scoringUri as string;
      }
      if (Date.now() > deadline) throw new Error(`deployment of ${name} still ${JSON.stringify(r.body)}`);
      await sleep(200);
    }
  }

  beforeAll(async () => {
    env = await startTestEnvironment({
    tempWorkDir: 'mdf-conn-',
      settings: {
        SMOKE_TEST_LIVENESS_TIMEOUT_MS: '60000',
        // Short header time so slowloris is cut fast; the body time stays at its default (120 s), so the service
        // staying healthy after abandoned bodies is the abort on close, not a timeout.
        LOCAL_SCORING_HEADERS_TIMEOUT_MS: '1000',
        LOCAL_SCORING_MAX_BODY_BYTES: String(LIMIT),
        LOCAL_HOST_HEADERS_TIMEOUT_MS: '1000',
        LOCAL_HOST_REQUEST_TIMEOUT_MS: '4000',
      },
      pollIntervalMs: 100,
    });
    [open, secured] = await Promise.all([
      deploy('conn-open', { kind: 'local', num_replicas: 1 }),
      deploy('conn-auth', { kind: 'local', num_replicas: 1, auth_enabled: true }),
    ]);
    key = (await env.request('GET', '/api/services/conn-auth/keys')).body.primaryKey;
    expect(key).toBeTruthy();
  }, 240_000);

  afterAll(async () => {
    await env?.stop();
  });

  test('300 requests abandoned mid-body leave the service answering normally (auth off, no key)', async () => {
    await scoresNormally(open);
    await abandon(open, 300);
    await scoresNormally(open);
  }, 120_000);

  test('300 requests abandoned mid-body leave the service answering normally (auth on, with the key)', async () => {
    const auth = { authorization: `Bearer ${key}` };
    expect((await fetch(secured, { method: 'POST', body: '{}' })).status).toBe(401);
    await abandon(secured, 300, auth);
    await scoresNormally(secured, key);
  }, 120_000);

  test('slowloris headers are cut by the front with 408 RequestTimeout; the service keeps answering', async () => {
    const [a, b] = await Promise.all([slowHeaders(open), slowHeaders(secured)]);
    expectError(a, 408, 'RequestTimeout');
    expectError(b, 408, 'RequestTimeout');
    expect(a.closed && b.closed).toBe(true);
    await scoresNormally(open);
    await scoresNormally(secured, key);
  }, 120_000);

  test('an oversize body is 413 PayloadTooLarge from the front, declared or chunked, never 502', async () => {
    const auth = { authorization: `Bearer ${key}` };
    expectError(await oversizeDeclared(open), 413, 'PayloadTooLarge');
    expectError(await oversizeChunked(open), 413, 'PayloadTooLarge');
    expectError(await oversizeDeclared(secured, auth), 413, 'PayloadTooLarge');
    expectError(await oversizeChunked(secured, auth), 413, 'PayloadTooLarge');
    await expectTooLarge(open);
    await expectTooLarge(secured, auth);
    // Just within the limit, a large body still goes through.
    const near = await fetch(open, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [ROW], pad: ' '.repeat(LIMIT - 200) }) });
    expect(near.status).toBe(200);
    await scoresNormally(open);
    await scoresNormally(secured, key);
  }, 120_000);

  test('the local host: abandoned uploads, slowloris and a slow body are cut; the host keeps answering', async () => {
    await abandon(env.baseUrl, 300, {}, '/api/deployments');
    const [h, b] = await Promise.all([slowHeaders(env.baseUrl), slowBody(env.baseUrl, {}, '/api/deployments')]);
    expectError(h, 408, 'RequestTimeout');
    expectError(b, 408, 'RequestTimeout');
    expect((await env.request('GET', '/api/health')).status).toBe(200);
    expect((await env.request('GET', '/api/services/conn-open')).body).toMatchObject({ state: 'Healthy' });
  }, 120_000);
});

describe('the scoring runtime and its replica router, directly', () => {
  const script = { entryScript: path.join(EXAMPLE, 'score.js'), modelDir: EXAMPLE, runtime: 'node' as const, accessLog: false, log: () => undefined, onWorkerOutput: () => undefined };
  /** Default timeouts (so only the abort on close can keep it healthy after abandoned bodies). */
  let router: AutoscaleRouter;
  /** Short header and body times. */
  let strict: AutoscaleRouter;
  const bases = (r: AutoscaleRouter) => [r.url, r.replicaUrls[0]];

  beforeAll(async () => {
    const one = { minReplicas: 1, maxReplicas: 1, autoscale: false };
    [router, strict] = await Promise.all([
      startLocalReplicas({ ...script, maxBodyBytes: LIMIT }, one),
      startLocalReplicas({ ...script, maxBodyBytes: LIMIT, headersTimeoutMs: 1000, requestTimeoutMs: 2000 }, one),
    ]);
  }, 60_000);
  afterAll(() => Promise.all([router?.stop(), strict?.stop()]));

  test('abandoned bodies: router and replica keep answering', async () => {
    for (const base of bases(router)) {
      await abandon(`${base}/score`, 300);
      await scoresNormally(`${base}/score`);
    }
  }, 120_000);

  test('slowloris and slow bodies → 408 RequestTimeout, connection closed', async () => {
    for (const base of bases(strict)) {
      const [h, b] = await Promise.all([slowHeaders(base), slowBody(base)]);
      expectError(h, 408, 'RequestTimeout');
      expectError(b, 408, 'RequestTimeout');
      expect(h.closed && b.closed).toBe(true);
      await scoresNormally(`${base}/score`);
    }
  }, 120_000);

  test('oversize bodies → 413 PayloadTooLarge, declared or chunked', async () => {
    for (const base of bases(router)) {
      expectError(await oversizeDeclared(base), 413, 'PayloadTooLarge');
      expectError(await oversizeChunked(base), 413, 'PayloadTooLarge');
      await expectTooLarge(`${base}/score`);
      await scoresNormally(`${base}/score`);
    }
  }, 120_000);

  test("a replica's early 413 is passed on by a router whose own limit is higher, never 502", async () => {
    const loose = await startLocalReplicas({ ...script, maxBodyBytes: LIMIT }, { minReplicas: 1, maxReplicas: 1, autoscale: false, maxBodyBytes: 64 * LIMIT });
    try {
      // The answer carries the replica's request id: it is the replica's own, passed on.
      const replicaAnswer = (res: Response) => ({ status: res.status, fromReplica: !!res.headers.get('x-ms-request-id') });
      const big = Buffer.alloc(16 * LIMIT, 0x20);
      const declared = await fetch(`${loose.url}/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big, signal: AbortSignal.timeout(30_000) });
      expect(replicaAnswer(declared)).toEqual({ status: 413, fromReplica: true });
      expect(((await declared.json()) as any).error.code).toBe('PayloadTooLarge');
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < 16; i++) c.enqueue(big.subarray(i * LIMIT, (i + 1) * LIMIT));
          c.close();
        },
      });
      const chunked = await fetch(`${loose.url}/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half', signal: AbortSignal.timeout(30_000) } as RequestInit);
      expect(replicaAnswer(chunked)).toEqual({ status: 413, fromReplica: true });
      expect(((await chunked.json()) as any).error.code).toBe('PayloadTooLarge');
      await scoresNormally(`${loose.url}/score`);
    } finally {
      await loose.stop();
    }
  }, 60_000);

  test('connections over the cap → 503 TooManyConnections; the held ones still work once released', async () => {
    const { startScoringServer } = await import('../../runtime/server');
    const capped = await startScoringServer({ entryScript: path.join(EXAMPLE, 'score.js'), modelDir: EXAMPLE, runtime: 'node', port: 0, maxConnections: 5, accessLog: false, log: () => undefined, onWorkerOutput: () => undefined });
    const held: net.Socket[] = [];
    try {
      await capped.initialized;
      const url = new URL(capped.url);
      for (let i = 0; i < 5; i++) {
        const s = net.connect(Number(url.port), url.hostname);
        s.on('error', () => undefined);
        await new Promise((r) => s.once('connect', r));
        held.push(s);
      }
      const over = await exchange(capped.url, [`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`], 0);
      expectError(over, 503, 'TooManyConnections');
      for (const s of held.splice(0)) s.destroy();
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = (await fetch(`${capped.url}/`, { signal: AbortSignal.timeout(10_000) }).catch(() => ({ status: 0 }))).status;
        if (status !== 200) await sleep(50);
      }
      expect(status).toBe(200);
    } finally {
      for (const s of held) s.destroy();
      await capped.stop();
    }
  }, 60_000);
});

test('the local host refuses a bad connection setting, naming it', async () => {
  await expect(startTestEnvironment({ settings: { LOCAL_HOST_HEADERS_TIMEOUT_MS: 'soon' } })).rejects.toThrow(/LOCAL_HOST_HEADERS_TIMEOUT_MS must be a positive integer/);
}, 60_000);
