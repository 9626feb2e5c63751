/**
 * Slow reads of large answers (regression battery): a client that sends a request and then never reads the answer
 * held its connection, and the answer's memory, forever — the servers' silence bound spared every connection with
 * an answer under way. A service capped at N connections was then closed to everyone by N such clients. Now an
 * answer whose bytes wait unread for the headers timeout is cut (runtime/http-limits.ts, shared by the scoring
 * front, the replica router, the local service front and the local Functions host); a client that reads slowly but
 * steadily still gets all of it.
 * Each wait is bounded (a hang fails the test); nothing asserts on time.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { startLocalReplicas, type AutoscaleRouter } from '../../runtime/autoscale';
import { tempDir } from '../runtime/helpers';

const REPLY_CHARS = 16 * 1024 * 1024;
const CAP = 3;
const DEADLINE_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * `p`, or once `ms` have passed, `late()`'s error (without it: undefined). The deadline's timer ends with the race: a
 * timer left running held Jest's process open for up to a minute after the last suite ("did not exit"), and its
 * rejection, made after the test was over, was never handled.
 */
async function within<T>(p: Promise<T>, ms: number, late?: () => Error): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((resolve, reject) => (timer = setTimeout(() => (late ? reject(late()) : resolve(undefined)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

let dir: string;
const routers: AutoscaleRouter[] = [];

beforeAll(() => {
  dir = tempDir('slow-read');
  fs.writeFileSync(path.join(dir, 'score.js'), `exports.init = () => {};\nexports.run = () => 'R'.repeat(${REPLY_CHARS});\n`);
});

afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.stop()));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A router and its one replica, fresh for each case: no case meets another's cut connections or queued answers
 * (the replica's connection cap counts them). A stalled answer is cut after `headersTimeoutMs` plus two checking
 * periods of no progress.
 */
async function startService(headersTimeoutMs: number): Promise<AutoscaleRouter> {
  const router = await startLocalReplicas(
    { entryScript: path.join(dir, 'score.js'), runtime: 'node', accessLog: false, log: () => undefined, onWorkerOutput: () => undefined, headersTimeoutMs, requestTimeoutMs: 2 * headersTimeoutMs, maxConnections: CAP, maxWaitMs: 30_000 },
    { minReplicas: 1, maxReplicas: 1, autoscale: false },
  );
  routers.push(router);
  return router;
}

interface Reader {
  socket: net.Socket;
  bytes: number;
  ended: Promise<void>;
}

/**
 * A client that sends one scoring request and then reads nothing. It asks for `Connection: close`: one whose whole
 * answer got out before the cut reads it all when it resumes, and its connection then ends at once instead of idling
 * for the runtime's keep-alive timeout (65 s by default).
 */
function stalledReader(base: string): Reader {
  const url = new URL(base);
  const socket = net.connect(Number(url.port), url.hostname);
  const r: Reader = { socket, bytes: 0, ended: new Promise((resolve) => socket.once('close', () => resolve())) };
  socket.on('error', () => undefined);
  socket.on('data', (d: Buffer) => (r.bytes += d.length));
  socket.write('POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}');
  socket.pause();
  return r;
}

/** GET / until it is not refused for the connection cap (bounded by DEADLINE_MS). */
async function healthWhenAdmitted(base: string): Promise<number> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const status = await fetch(`${base}/`, { signal: AbortSignal.timeout(DEADLINE_MS) }).then((r) => r.status, () => 0);
    if (status !== 503 && status !== 0) return status;
    if (Date.now() > deadline) throw new Error(`${base} still refuses new clients (${status}): the stalled readers hold every connection`);
    await sleep(200);
  }
}

test.each([['router'], ['replica']])('%s: clients that never read their answers are cut; new clients are served again', async (which) => {
  const router = await startService(1000);
  const base = which === 'router' ? router.url : router.replicaUrls[0];
  const readers = Array.from({ length: CAP }, () => stalledReader(base));
  // While they hold every connection the service refuses others; once they are cut it serves again.
  expect(await healthWhenAdmitted(base)).toBe(200);
  // Their connections end; the ones cut (what let the new client in) got part of their answer only. (One whose
  // whole answer was already buffered ahead of the cut may read it all once it reads again.)
  for (const [i, r] of readers.entries()) {
    r.socket.resume();
    await within(r.ended, DEADLINE_MS, () => new Error(`stalled reader ${i + 1} of ${CAP} was never disconnected (it read ${r.bytes} bytes)`));
  }
  expect(Math.min(...readers.map((r) => r.bytes))).toBeLessThan(REPLY_CHARS);
  for (const r of readers) r.socket.destroy();
}, 150_000);

test('a client that reads slowly but steadily gets the whole answer', async () => {
  // The bound between reads (5 s + two 1 s checks) is ~45 times the reader's 155 ms cycle, so a loaded machine's
  // stalls of the test process (it hosts the router and the reader) do not look like a reader that stopped.
  const router = await startService(5000);
  const url = new URL(router.url);
  const socket = net.connect(Number(url.port), url.hostname);
  let bytes = 0;
  let head = '';
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.on('data', (d: Buffer) => {
    if (!head) head = d.toString('latin1', 0, 15);
    bytes += d.length;
  });
  socket.write('POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}');
  socket.pause();
  // Short reads, well within the bound between them (bounded in count).
  for (let i = 0; i < 2000 && !socket.destroyed && bytes <= REPLY_CHARS; i++) {
    socket.resume();
    await sleep(5);
    socket.pause();
    await sleep(150);
  }
  socket.resume();
  await within(ended, DEADLINE_MS);
  expect(head).toBe('HTTP/1.1 200 OK');
  expect(bytes).toBeGreaterThan(REPLY_CHARS);
}, 600_000);
