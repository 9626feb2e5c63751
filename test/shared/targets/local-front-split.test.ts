/**
 * The local front's progressive-delivery routing, through HTTP: weighted split (exact shares, smooth round-robin),
 * the pin header (after the key), per-slot figures of a window, and shadow copies (the client always gets the
 * serving slot's answer; agreement and latency recorded). Slots are small loopback HTTP servers.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import type { AddressInfo } from 'net';
import { LocalFront, MAX_SHADOW_INFLIGHT, MAX_SHADOW_SOCKETS, PIN_HEADER } from '../../../shared/targets/local-front';
import { shadowWindowOf, windowOf } from '../../../shared/rollout/traffic';
import { answerMirrorBatch, MAX_BATCH_ITEMS, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE } from '../../../runtime/mirror-batch';
import { MIRROR_HEAVY_CONCURRENCY, MIRROR_LINGER_MS, type FrontNotice } from '../../../runtime/front';
import { processTasks } from '../../../shared/processes';

interface FakeSlot {
  url: string;
  /** Scoring requests answered (each copy of a batch counts as one). */
  hits: number;
  /** Batches of shadow copies received (`POST /.mdf/mirror`). */
  batches: number[];
  server: http.Server;
}

/**
 * How a fake slot treats `POST /.mdf/mirror`: `older` answers 404 as a replica of a runtime without the batch path
 * (the front then sends copies one by one, which the held-slot tests below count), `batch` answers each copy of the
 * batch as the runtime does, `fails` answers 500, `small` answers 413 (a replica whose body limit is under a batch's size),
 * `refuses` answers 400 (the frame refused: `BadMirrorBatch`).
 */
type MirrorMode = 'older' | 'batch' | 'fails' | 'small' | 'refuses';
let mirrorMode: MirrorMode = 'older';

/** A slot that answers `answer(body, n)` (status, JSON body) to every request. */
async function fakeSlot(answer: (body: string, n: number) => { status: number; body: unknown }): Promise<FakeSlot> {
  const slot: FakeSlot = { url: '', hits: 0, batches: [], server: http.createServer() };
  const mode = mirrorMode;
  slot.server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.url === MIRROR_BATCH_PATH && mode !== 'batch') {
        res.writeHead({ older: 404, small: 413, refuses: 400, fails: 500 }[mode], { 'content-type': 'application/json' });
        res.end('{"error":{"code":"NotFound","message":"no such route"}}');
        return;
      }
      if (req.url === MIRROR_BATCH_PATH) {
        let copies = 0;
        const frame = answerMirrorBatch(Buffer.concat(chunks), (body) => {
          copies++;
          const a = answer(body.toString(), ++slot.hits);
          return { status: a.status, body: Buffer.from(JSON.stringify(a.body)) };
        });
        slot.batches.push(copies);
        res.writeHead(200, { 'content-type': MIRROR_BATCH_TYPE, 'content-length': frame.length });
        res.end(frame);
        return;
      }
      const a = answer(Buffer.concat(chunks).toString(), ++slot.hits);
      const text = JSON.stringify(a.body);
      res.writeHead(a.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((r) => slot.server.listen(0, '127.0.0.1', () => r()));
  slot.url = `http://127.0.0.1:${(slot.server.address() as AddressInfo).port}`;
  return slot;
}

const fronts: LocalFront[] = [];
const servers: http.Server[] = [];
afterEach(async () => {
  for (const f of fronts.splice(0)) await f.close();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A listening front (closed after the test) with the slots `blue` and `green` at these URLs. */
async function frontWith(blueUrl: string, greenUrl: string, mirrorBounds: ConstructorParameters<typeof LocalFront>[2] = {}) {
  const front = new LocalFront('svc', {}, mirrorBounds);
  fronts.push(front);
  await front.listen(0);
  front.addSlot({ name: 'blue', url: blueUrl });
  front.addSlot({ name: 'green', url: greenUrl });
  return front;
}

async function setup(blueAnswer: Parameters<typeof fakeSlot>[0], greenAnswer: Parameters<typeof fakeSlot>[0], mirrorBounds: ConstructorParameters<typeof LocalFront>[2] = {}) {
  const blue = await fakeSlot(blueAnswer);
  const green = await fakeSlot(greenAnswer);
  servers.push(blue.server, green.server);
  const front = await frontWith(blue.url, green.url, mirrorBounds);
  front.switchTo('blue');
  return { blue, green, front };
}

const score = async (front: LocalFront, body: unknown = { data: [1] }, headers: Record<string, string> = {}) => {
  const r = await fetch(`${front.url}/score`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};

test('a 90/10 split sends exactly 10 of every 100 live requests to the new slot; pinned requests go where they say and are not live traffic', async () => {
  const { blue, green, front } = await setup(() => ({ status: 200, body: 'blue' }), () => ({ status: 200, body: 'green' }));
  const before = front.snapshot();
  front.setWeights({ blue: 90, green: 10 });
  expect(front.weights).toEqual({ blue: 90, green: 10 });
  const seen: string[] = [];
  for (let i = 0; i < 100; i++) seen.push((await score(front)).body);
  expect(seen.filter((s) => s === 'green')).toHaveLength(10);
  expect(green.hits).toBe(10);
  expect(blue.hits).toBe(90);
  // Pinned: to the 0 % slot too (after a switch back), and never counted as live traffic.
  front.setWeights({ blue: 100, green: 0 });
  expect((await score(front, {}, { [PIN_HEADER]: 'green' })).body).toBe('green');
  expect((await score(front, {}, { [PIN_HEADER]: ' GREEN ' })).body).toBe('green');
  expect((await score(front)).body).toBe('blue');
  const unknown = await score(front, {}, { [PIN_HEADER]: 'purple' });
  expect(unknown.status).toBe(404);
  expect(unknown.body.error).toMatchObject({ code: 'DeploymentNotFound' });
  expect(unknown.body.error.message).toMatch(/has: blue, green/);
  const after = front.snapshot();
  expect(windowOf(before, after, 'green')).toMatchObject({ requests: 10, errors: 0, errorRate: 0 });
  expect(windowOf(before, after, 'blue').requests).toBe(91);
  expect(windowOf(before, after, 'green').p99Ms).toBeGreaterThan(0);
});

test('5xx answers of a slot are counted in its window; switching clears the split', async () => {
  const { front } = await setup(() => ({ status: 200, body: 1 }), (_b, n) => (n % 2 ? { status: 500, body: { error: 'boom' } } : { status: 200, body: 1 }));
  front.setWeights({ blue: 50, green: 50 });
  const start = front.snapshot();
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) statuses.push((await score(front)).status);
  const w = windowOf(start, front.snapshot(), 'green');
  expect(w).toMatchObject({ requests: 10, errors: 5, errorRate: 0.5 });
  expect(statuses.filter((s) => s === 500)).toHaveLength(5);
  front.switchTo('blue');
  expect(front.weights).toEqual({});
  for (let i = 0; i < 5; i++) expect((await score(front)).status).toBe(200);
});

test('auth is checked before the pin: a pinned request without the key is 401 and reaches no slot', async () => {
  const { green, front } = await setup(() => ({ status: 200, body: 'blue' }), () => ({ status: 200, body: 'green' }));
  front.setAuth({ mode: 'keys', keys: { primaryKey: 'k1', secondaryKey: 'k2' } });
  expect((await score(front, {}, { [PIN_HEADER]: 'green' })).status).toBe(401);
  expect(green.hits).toBe(0);
  expect((await score(front, {}, { [PIN_HEADER]: 'green', authorization: 'Bearer k1' })).body).toBe('green');
});

describe.each([
  ['older', 'has no batch path (one request per copy)'],
  ['batch', 'takes copies in batches'],
] as const)('shadow copies, to a replica that %s: %s', (mode, _what) => {
  beforeEach(() => {
    mirrorMode = mode;
  });
  afterEach(() => {
    mirrorMode = 'older';
  });

  test(`${mode}: 30 % disagreement is measured, the client only ever sees the serving answers, 5xx of the shadow never reach it`, async () => {
    // blue doubles; green doubles except every 3rd request (wrong) and every 10th (500).
    const { green, front } = await setup(
      (b) => ({ status: 200, body: JSON.parse(b).data.map((x: number) => x * 2) }),
      (b, n) => (n % 10 === 0 ? { status: 500, body: 'x' } : { status: 200, body: JSON.parse(b).data.map((x: number) => x * 2 + (n % 3 === 0 ? 1 : 1e-9)) }),
    );
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 1e-6 });
    const start = front.snapshot();
    for (let i = 0; i < 60; i++) {
      const r = await score(front, { data: [i] });
      expect(r).toEqual({ status: 200, body: [i * 2] });
    }
    // Copies complete after the client's answer: wait (bounded) until all 60 are settled.
    for (let i = 0; i < 200 && (front.snapshot().shadow?.green.compared ?? 0) + (front.snapshot().shadow?.green.errors ?? 0) < 60; i++) await new Promise((r) => setTimeout(r, 20));
    const w = shadowWindowOf(start, front.snapshot(), 'green');
    expect(green.hits).toBe(60);
    expect(w).toMatchObject({ mirrored: 60, errors: 6, compared: 54, skipped: 0 });
    // n%3==0 among n=1..60 without n%10==0: 20 - 2 (30, 60) = 18 of 54 compared
    expect(w.disagreed).toBe(18);
    expect(w.disagreement).toBeCloseTo(18 / 54);
    expect(w.shadowP99Ms).toBeGreaterThan(0);
    expect(w.servingP99Ms).toBeGreaterThan(0);
    // Live figures of the shadow slot stay empty: copies are not live traffic.
    expect(windowOf(start, front.snapshot(), 'green').requests).toBe(0);
    // One client at a time: the first copy finds out that the replica takes batches (a batch of one). Later ones go
    // as plain copies when they leave alone, or together when they were ready while two batches were out.
    if (mode === 'batch') expect(green.batches[0]).toBe(1);
    else expect(green.batches).toEqual([]);
  });

  test(`${mode}: on the front's own loop (\`thread: false\`), one client at a time: after the first, each copy leaves alone, as a plain copy`, async () => {
    const { green, front } = await setup(
      (b) => ({ status: 200, body: JSON.parse(b).data }),
      (b) => ({ status: 200, body: JSON.parse(b).data }),
      { thread: false },
    );
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    for (let i = 0; i < 20; i++) expect(await score(front, { data: [i] })).toEqual({ status: 200, body: [i] });
    for (let i = 0; i < 200 && (front.snapshot().shadow?.green.compared ?? 0) < 20; i++) await new Promise((r) => setTimeout(r, 20));
    expect(front.shadowPath).toBe('loop');
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 20, compared: 20, disagreed: 0, errors: 0 });
    expect(green.batches).toEqual(mode === 'batch' ? [1] : []);
  });

  test(`${mode}: a 20 % mirror copies exactly one request in five`, async () => {
    const { green, front } = await setup(() => ({ status: 200, body: 1 }), () => ({ status: 200, body: 1 }));
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 0 });
    for (let i = 0; i < 50; i++) await score(front);
    for (let i = 0; i < 200 && (front.snapshot().shadow?.green.compared ?? 0) < 10; i++) await new Promise((r) => setTimeout(r, 20));
    expect(green.hits).toBe(10);
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 10, compared: 10, disagreed: 0 });
  });
});

describe('shadow copies in batches (POST /.mdf/mirror)', () => {
  beforeEach(() => {
    mirrorMode = 'batch';
  });
  afterEach(() => {
    mirrorMode = 'older';
  });

  test(`copies of concurrent requests travel together, at most ${MAX_BATCH_ITEMS} per batch; each is compared`, async () => {
    const { green, front } = await setup((b) => ({ status: 200, body: JSON.parse(b).data }), (b, n) => ({ status: 200, body: n % 4 ? JSON.parse(b).data : [-1] }));
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    const n = 2 * MAX_BATCH_ITEMS + 5;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => score(front, { data: [i] })));
    expect(answers.map((a) => a.body)).toEqual(Array.from({ length: n }, (_, i) => [i]));
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: n, compared: n, disagreed: Math.floor(n / 4), errors: 0, skipped: 0 });
    expect(green.hits).toBe(n);
    // Batches (and plain copies, for a copy alone when it was ready): fewer requests than copies.
    const batched = green.batches.reduce((t, k) => t + k, 0);
    expect(Math.max(...green.batches)).toBeLessThanOrEqual(MAX_BATCH_ITEMS);
    expect(green.batches.length + (n - batched)).toBeLessThan(n);
    const latency = front.snapshot().shadow!.green.latency;
    expect(Object.values(latency).reduce((t, k) => t + k, 0)).toBe(n);
  });

  test('no clock: a copy leaves at once while fewer than 2 batches are out; the copies ready meanwhile leave together when one comes back', async () => {
    const blue = await fakeSlot(() => ({ status: 200, body: [1] }));
    servers.push(blue.server);
    // A replica that holds each batch until released, then answers every copy of it.
    const held: Array<() => void> = [];
    const sizes: number[] = [];
    const green = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        let copies = 0;
        const frame = answerMirrorBatch(Buffer.concat(chunks), () => (copies++, { status: 200, body: Buffer.from('[1]') }));
        sizes.push(copies);
        held.push(() => {
          res.writeHead(200, { 'content-type': MIRROR_BATCH_TYPE });
          res.end(frame);
        });
      });
    });
    await new Promise<void>((r) => green.listen(0, '127.0.0.1', () => r()));
    servers.push(green);
    const front = new LocalFront('svc');
    fronts.push(front);
    await front.listen(0);
    front.addSlot({ name: 'blue', url: blue.url });
    front.addSlot({ name: 'green', url: `http://127.0.0.1:${(green.address() as AddressInfo).port}` });
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    };
    // One client request at a time: the first two copies leave at once, each alone.
    for (let i = 0; i < 2; i++) {
      expect((await score(front)).status).toBe(200);
      await until(() => sizes.length === i + 1);
    }
    expect(sizes).toEqual([1, 1]);
    // Two batches out: the next 10 copies wait (the clients do not).
    for (let i = 0; i < 10; i++) expect((await score(front)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    expect(sizes).toEqual([1, 1]);
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 12, compared: 0 });
    // One comes back: the 10 leave together.
    held.shift()!();
    await until(() => sizes.length === 3);
    expect(sizes).toEqual([1, 1, 10]);
    while (held.length || sizes.length < 3) {
      await until(() => held.length > 0);
      held.shift()!();
    }
    await until(() => (front.snapshot().shadow?.green.compared ?? 0) === 12);
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 12, compared: 12, disagreed: 0, errors: 0, skipped: 0 });
  });

  test('while clients are in flight, copies wait for a lull or the linger and leave together', async () => {
    const { blue, green, front } = await heldServingFront();
    const answers = Array.from({ length: 5 }, () => score(front));
    for (let i = 0; i < 500 && blue.held.length < 5; i++) await new Promise((r) => setTimeout(r, 10));
    // 3 clients answered while 2 are still in flight: their copies wait, then leave in one batch (the linger).
    for (const res of blue.held.splice(0, 3)) res.end('[1]');
    for (let i = 0; i < 500 && green.hits < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(green.batches).toEqual([3]);
    // The last 2 answered: the front is idle, their copies leave at once.
    blue.release();
    expect((await Promise.all(answers)).every((a) => a.status === 200)).toBe(true);
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < 5; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 5, compared: 5, errors: 0, skipped: 0 });
    expect(green.hits).toBe(5);
  });

  test(`after heavy traffic (${MIRROR_HEAVY_CONCURRENCY}+ clients in flight on average) a moment without one is no lull: a copy waits for a full batch or the linger`, async () => {
    const { blue, green, front } = await heldServingFront();
    const n = MAX_BATCH_ITEMS - 4;
    const answers = Array.from({ length: n }, () => score(front));
    for (let i = 0; i < 500 && blue.held.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    blue.release();
    expect((await Promise.all(answers)).every((a) => a.status === 200)).toBe(true);
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(green.hits).toBe(n);
    // One more request, alone: the front is idle before and after it, but its recent concurrency is still high, so
    // the copy waits for the linger rather than leaving at once (as it would on a front with light traffic).
    const one = score(front);
    for (let i = 0; i < 500 && blue.held.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    blue.release();
    expect((await one).status).toBe(200);
    const answered = performance.now();
    for (let i = 0; i < 2000 && green.hits < n + 1; i++) await new Promise((r) => setTimeout(r, 1));
    expect(performance.now() - answered).toBeGreaterThanOrEqual(MIRROR_LINGER_MS - 5);
    expect(green.hits).toBe(n + 1);
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < n + 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: n + 1, compared: n + 1, errors: 0, skipped: 0 });
  });

  test('gathering (`gatherMs`, the ACI/AKS front process): copies wait for a full batch or the gather time, even on an idle front', async () => {
    const gatherMs = 1500;
    const { green, front } = await setup((b) => ({ status: 200, body: JSON.parse(b).data }), (b) => ({ status: 200, body: JSON.parse(b).data }), { gatherMs });
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    // One client at a time: the front is idle between them, yet no copy leaves before the first has waited gatherMs.
    const first = performance.now();
    for (let i = 0; i < 5; i++) expect((await score(front, { data: [i] })).body).toEqual([i]);
    await new Promise((r) => setTimeout(r, 100));
    const early = performance.now() - first < gatherMs - 200;
    if (early) expect(green.batches).toEqual([]);
    for (let i = 0; i < 500 && green.hits < 5; i++) await new Promise((r) => setTimeout(r, 10));
    expect(performance.now() - first).toBeGreaterThanOrEqual(gatherMs - 5);
    expect(green.batches).toEqual([5]);
    // A full batch leaves as soon as it is full, long before the gather time.
    const burst = performance.now();
    const answers = await Promise.all(Array.from({ length: MAX_BATCH_ITEMS }, (_, i) => score(front, { data: [i] })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    for (let i = 0; i < 500 && green.hits < 5 + MAX_BATCH_ITEMS; i++) await new Promise((r) => setTimeout(r, 5));
    expect(green.batches).toEqual([5, MAX_BATCH_ITEMS]);
    expect(performance.now() - burst).toBeLessThan(gatherMs);
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < 5 + MAX_BATCH_ITEMS; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 5 + MAX_BATCH_ITEMS, compared: 5 + MAX_BATCH_ITEMS, disagreed: 0, errors: 0, skipped: 0 });
  });

  test('a closed front sends nothing more: the copies still waiting for a slot removed before the close are dropped', async () => {
    const gatherMs = 300;
    const { green, front } = await setup(() => ({ status: 200, body: 1 }), () => ({ status: 200, body: 1 }), { gatherMs });
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    expect((await score(front)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50)); // the copy waits for its batch (gatherMs)
    await front.removeSlot('green');
    await front.close();
    await new Promise((r) => setTimeout(r, gatherMs + 700));
    expect(green.batches).toEqual([]);
    expect(green.hits).toBe(0);
  });

  test('gathering: the copies left over after a full batch wait for their own gather time, not following it as a small batch', async () => {
    const gatherMs = 1500;
    const { blue, green, front } = await heldServingFront({ gatherMs });
    const more = 3;
    const n = MAX_BATCH_ITEMS + more;
    const answers = Array.from({ length: n }, (_, i) => score(front, { data: [i] }));
    for (let i = 0; i < 500 && blue.held.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    // All answered at once: every copy is gathered before the full batch leaves.
    const released = performance.now();
    blue.release();
    expect((await Promise.all(answers)).every((a) => a.status === 200)).toBe(true);
    for (let i = 0; i < 500 && green.batches.length < 1; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 100));
    if (performance.now() - released < gatherMs - 200) expect(green.batches).toEqual([MAX_BATCH_ITEMS]);
    for (let i = 0; i < 500 && green.batches.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(green.batches).toEqual([MAX_BATCH_ITEMS, more]);
    expect(performance.now() - released).toBeGreaterThanOrEqual(gatherMs - 5);
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: n, compared: n, disagreed: 0, errors: 0, skipped: 0 });
  });

  test.each([
    ['fails', '500: its replica failed'],
    ['refuses', '400: the frame itself was refused, not a copy'],
  ] as const)('a batch the shadow %s (%s) counts each of its copies as a shadow error, never a disagreement; clients never see it', async (mode, _why) => {
    mirrorMode = mode;
    const { green, front } = await setup(() => ({ status: 200, body: 1 }), () => ({ status: 200, body: 1 }));
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    const answers = await Promise.all(Array.from({ length: 10 }, () => score(front)));
    expect(answers.every((a) => a.status === 200 && a.body === 1)).toBe(true);
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.errors ?? 0) < 10; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 10, errors: 10, compared: 0, disagreed: 0 });
    expect(green.hits).toBe(0);
  });

  test('a batch the shadow finds too large (413: its body limit is lower) goes again one copy at a time; all are compared', async () => {
    mirrorMode = 'small';
    const { green, front } = await setup(() => ({ status: 200, body: 1 }), () => ({ status: 200, body: 1 }));
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    const answers = await Promise.all(Array.from({ length: 10 }, () => score(front)));
    expect(answers.every((a) => a.status === 200 && a.body === 1)).toBe(true);
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < 10; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 10, compared: 10, disagreed: 0, errors: 0 });
    expect(green.hits).toBe(10);
  });

  test('copies of other routes (Open Inference Protocol) go one by one, batching or not', async () => {
    const { green, front } = await setup(() => ({ status: 200, body: 1 }), () => ({ status: 200, body: 1 }));
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${front.url}/v2/models/m/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"inputs":[]}' });
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 3, compared: 3 });
    expect(green.hits).toBe(3);
    expect(green.batches).toEqual([]);
  });
});

/** A slot that holds every request until `release()` answers the held ones; counts the most it held at once. */
async function heldSlot() {
  const held: http.ServerResponse[] = [];
  const slot = { url: '', hits: 0, most: 0, server: http.createServer(), held, release: () => {
    for (const res of held.splice(0)) res.end(JSON.stringify([1]));
  } };
  slot.server.on('request', (req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === MIRROR_BATCH_PATH) {
        // A replica of a runtime without the batch path: the front falls back to one request per copy.
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{}');
        return;
      }
      slot.hits++;
      res.writeHead(200, { 'content-type': 'application/json' });
      held.push(res);
      slot.most = Math.max(slot.most, held.length);
    });
  });
  await new Promise<void>((r) => slot.server.listen(0, '127.0.0.1', () => r()));
  slot.url = `http://127.0.0.1:${(slot.server.address() as AddressInfo).port}`;
  servers.push(slot.server);
  return slot;
}

/** A front whose serving slot `blue` holds every request until released, copying all of them to `green` (answers at once). */
async function heldServingFront(mirrorBounds: ConstructorParameters<typeof LocalFront>[2] = {}) {
  const blue = await heldSlot();
  const green = await fakeSlot(() => ({ status: 200, body: [1] }));
  servers.push(green.server);
  const front = await frontWith(blue.url, green.url, mirrorBounds);
  front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
  return { blue, green, front };
}

test('a copy is sent only once the client has its answer (never alongside the serving request)', async () => {
  const { blue, green, front } = await heldServingFront();
  const answered = score(front);
  for (let i = 0; i < 500 && blue.hits < 1; i++) await new Promise((r) => setTimeout(r, 10));
  expect(blue.hits).toBe(1);
  expect(green.hits).toBe(0); // the serving slot has the request, the copy waits for its answer
  blue.release();
  expect(await answered).toEqual({ status: 200, body: [1] });
  for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < 1; i++) await new Promise((r) => setTimeout(r, 10));
  expect(green.hits).toBe(1);
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 1, compared: 1, disagreed: 0 });
});

/** A front serving `blue` (answers at once) with a `green` slot that holds every request until released. */
async function heldShadowFront(mirrorBounds: ConstructorParameters<typeof LocalFront>[2] = {}) {
  const blue = await fakeSlot(() => ({ status: 200, body: [1] }));
  servers.push(blue.server);
  const green = await heldSlot();
  const front = await frontWith(blue.url, green.url, mirrorBounds);
  return { green, front };
}

test(`copies reach the shadow slot over at most ${MAX_SHADOW_SOCKETS} connections at once; the clients never wait for them`, async () => {
  const { green, front } = await heldShadowFront();
  front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
  const n = 3 * MAX_SHADOW_SOCKETS;
  // Every client is answered while the shadow slot holds every copy it got.
  const answers = await Promise.all(Array.from({ length: n }, () => score(front)));
  expect(answers.every((a) => a.status === 200)).toBe(true);
  for (let i = 0; i < 500 && green.held.length < MAX_SHADOW_SOCKETS; i++) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 1000 && green.hits < n; i++) {
    await new Promise((r) => setTimeout(r, 10));
    green.release();
  }
  expect(green.hits).toBe(n);
  expect(green.most).toBe(MAX_SHADOW_SOCKETS);
  for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 10));
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: n, compared: n, skipped: 0 });
});

test(`copies still out when the mirror is set again (a new rollout step) count against the cap of ${MAX_SHADOW_INFLIGHT} until answered, then free it`, async () => {
  const { green, front } = await heldShadowFront();
  const mirror = { slot: 'green', percent: 100, tolerance: 0 };
  front.setWeights({ blue: 100, green: 0 }, mirror);
  for (let i = 0; i < 5; i++) expect((await score(front)).status).toBe(200);
  for (let i = 0; i < 500 && green.held.length < 5; i++) await new Promise((r) => setTimeout(r, 10));
  expect(green.held.length).toBe(5);
  // The same mirror again while 5 copies are out; then they are answered.
  front.setWeights({ blue: 100, green: 0 }, mirror);
  green.release();
  for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < 5; i++) await new Promise((r) => setTimeout(r, 10));
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 5, compared: 5, skipped: 0 });
  // The whole cap is free again: as many copies as it allows are all sent while the shadow slot holds them.
  const answers = await Promise.all(Array.from({ length: MAX_SHADOW_INFLIGHT }, () => score(front)));
  expect(answers.every((a) => a.status === 200)).toBe(true);
  for (let i = 0; i < 1000 && green.hits < 5 + MAX_SHADOW_INFLIGHT; i++) {
    await new Promise((r) => setTimeout(r, 10));
    green.release();
  }
  for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < 5 + MAX_SHADOW_INFLIGHT; i++) await new Promise((r) => setTimeout(r, 10));
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 5 + MAX_SHADOW_INFLIGHT, compared: 5 + MAX_SHADOW_INFLIGHT, skipped: 0 });
});

test('the bytes held for copies not yet compared are bounded: a copy over the bound is released at once (mirrored, not compared)', async () => {
  const { green, front } = await heldShadowFront({ heldBytes: 10_000 });
  front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
  const big = { data: Array.from({ length: 1500 }, () => 1) }; // ≈ 3 KB: three fit, the fourth and fifth do not
  for (let i = 0; i < 5; i++) expect((await score(front, big)).status).toBe(200);
  for (let i = 0; i < 1000 && (front.snapshot().shadow?.green.compared ?? 0) < 3; i++) {
    await new Promise((r) => setTimeout(r, 10));
    green.release();
  }
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 5, compared: 3, errors: 0, skipped: 0 });
  expect(green.hits).toBe(3);
  // Compared copies give their bytes back: the next copy is held and compared again.
  expect((await score(front, big)).status).toBe(200);
  for (let i = 0; i < 1000 && (front.snapshot().shadow?.green.compared ?? 0) < 4; i++) {
    await new Promise((r) => setTimeout(r, 10));
    green.release();
  }
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 6, compared: 4 });
});

test('removing the new slot (rollback) sends everything to the other one', async () => {
  const { front } = await setup(() => ({ status: 200, body: 'blue' }), () => ({ status: 200, body: 'green' }));
  front.setWeights({ blue: 50, green: 50 });
  await front.removeSlot('green');
  for (let i = 0; i < 4; i++) expect((await score(front)).body).toBe('blue');
  expect(() => front.setWeights({ blue: 50, green: 50 })).toThrow(/not registered/);
  expect(() => front.setWeights({ blue: 60 })).toThrow(/sum to 100/);
});

/** Threads of this process at SCHED_IDLE. */
const idleThreads = () => processTasks(process.pid).filter((t) => t.priority === 'idle').length;

const linux = process.platform === 'linux';
(linux ? test : test.skip)('under light traffic copies travel, and are judged, on a thread of the front at idle CPU priority; the front loop only counts', async () => {
  const before = idleThreads();
  mirrorMode = 'batch';
  const { green, front } = await setup(
    (b) => ({ status: 200, body: JSON.parse(b).data }),
    (b, n) => ({ status: 200, body: n % 4 === 0 ? [-1] : JSON.parse(b).data }),
  );
  front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
  // Light traffic (one client at a time): the copies go through the thread.
  for (let i = 0; i < 40; i++) expect((await score(front, { data: [i] })).body).toEqual([i]);
  for (let i = 0; i < 300 && (front.snapshot().shadow?.green.compared ?? 0) < 40; i++) await new Promise((r) => setTimeout(r, 20));
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 40, compared: 40, disagreed: 10, errors: 0, skipped: 0 });
  expect(green.hits).toBe(40);
  expect(front.shadowPath).toBe('thread-idle');
  // One more thread of this process runs at SCHED_IDLE: the front's shadow thread.
  expect(idleThreads()).toBe(before + 1);
  await front.close();
  for (let i = 0; i < 100 && idleThreads() > before; i++) await new Promise((r) => setTimeout(r, 20));
  expect(idleThreads()).toBe(before);
});

(linux ? test : test.skip)('a shadow thread that dies loses the copies it held (skipped: never errors or disagreements of the new version); the next copies start another', async () => {
  // A shadow slot that takes batches and holds them until released.
  const held: Array<() => void> = [];
  const slot = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      held.push(() => {
        const frame = answerMirrorBatch(Buffer.concat(chunks), () => ({ status: 200, body: Buffer.from('[1]') }));
        res.writeHead(200, { 'content-type': MIRROR_BATCH_TYPE, 'content-length': frame.length });
        res.end(frame);
      }),
    );
  });
  servers.push(slot);
  await new Promise<void>((r) => slot.listen(0, '127.0.0.1', () => r()));
  const blue = await fakeSlot(() => ({ status: 200, body: [1] }));
  servers.push(blue.server);
  const front = await frontWith(blue.url, `http://127.0.0.1:${(slot.address() as AddressInfo).port}`);
  front.switchTo('blue');
  front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
  // Two copies, one client at a time: two batches of one, both held by the slot.
  for (let i = 0; i < 2; i++) expect((await score(front)).status).toBe(200);
  for (let i = 0; i < 500 && held.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  expect(held.length).toBe(2);
  expect(front.shadowPath).toBe('thread-idle');
  // The thread goes away with both copies out (as if it crashed).
  await (front as unknown as { shadowThread: { worker: { terminate(): Promise<number> } } }).shadowThread.worker.terminate();
  for (let i = 0; i < 200 && (front.snapshot().shadow?.green.skipped ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 10));
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 2, skipped: 2, errors: 0, compared: 0, disagreed: 0 });
  expect(front.pendingCopies).toBe(0);
  for (const r of held.splice(0)) r();
  // The next copy starts another thread, and is compared.
  expect((await score(front)).status).toBe(200);
  for (let i = 0; i < 500 && held.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
  for (const r of held.splice(0)) r();
  for (let i = 0; i < 200 && (front.snapshot().shadow?.green.compared ?? 0) < 1; i++) await new Promise((r) => setTimeout(r, 10));
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 3, skipped: 2, errors: 0, compared: 1, disagreed: 0 });
});

(linux ? test : test.skip)('a shadow thread that cannot lower its priority (no `chrt`) is named once, with why; later copies go on the front loop and are still judged', async () => {
  mirrorMode = 'batch';
  const { green, front } = await setup(
    (b) => ({ status: 200, body: JSON.parse(b).data }),
    (b, n) => ({ status: 200, body: n % 2 === 0 ? [-1] : JSON.parse(b).data }),
  );
  const notices: FrontNotice[] = [];
  front.onNotice = (n) => notices.push(n);
  front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
  // The thread starts with the first copy, with this process's PATH: one without `chrt`.
  const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'no-chrt-'));
  const savedPath = process.env.PATH;
  process.env.PATH = emptyDir;
  try {
    expect((await score(front, { data: [0] })).body).toEqual([0]);
    for (let i = 0; i < 300 && !notices.length; i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    if (savedPath === undefined) delete process.env.PATH;
    else process.env.PATH = savedPath;
    fs.rmSync(emptyDir, { recursive: true, force: true });
  }
  expect(notices).toEqual([
    { code: 'ShadowCopiesOnLoop', slot: 'green', message: expect.stringMatching(/on the front's own event loop .*: chrt: spawnSync chrt ENOENT \(on Linux, util-linux's `chrt` lets the thread lower its own priority\)$/) },
  ]);
  expect(front.shadowPath).toBe('loop');
  for (let i = 1; i < 10; i++) expect((await score(front, { data: [i] })).body).toEqual([i]);
  for (let i = 0; i < 300 && (front.snapshot().shadow?.green.compared ?? 0) < 10; i++) await new Promise((r) => setTimeout(r, 20));
  expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: 10, compared: 10, disagreed: 5, errors: 0, skipped: 0 });
  expect(green.hits).toBe(10);
  // Said once, not per batch, nor for the same shadow slot again.
  front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 50, tolerance: 0 });
  expect((await score(front, { data: [10] })).body).toEqual([10]);
  expect(notices).toHaveLength(1);
  // A later mirror to another slot (the next rollout's new version) is told too, naming that slot.
  front.switchTo('green');
  front.setWeights({ blue: 0, green: 100 }, { slot: 'blue', percent: 100, tolerance: 0 });
  expect(notices).toHaveLength(2);
  expect(notices[1]).toEqual({ code: 'ShadowCopiesOnLoop', slot: 'blue', message: notices[0].message });
});
