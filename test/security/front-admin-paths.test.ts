/**
 * Spellings of the service front's own prefix (`/.mdf/`, runtime/front-admin.ts) never reach a slot. Before, only a
 * path starting with exactly `/.mdf/` was the front's: `/.MDF/front/state`, `//.mdf/front/state`,
 * `/%2emdf/front/state`, `/%2e%2e/.mdf/…`, `/x/../.mdf/…`, `\.mdf\…`, `/.mdf%2ffront…` or the absolute form were
 * forwarded to the serving slot like any request (and on a front without admin routes, every one of them). Now each is
 * taken by the admin routes (401 unsigned; 404 for a signed one that is not exactly a route) or, on a front without
 * them (the local target's), answered 404 — with the slot never called. A `.mdf` in the query is not a path.
 * Requests are sent raw (http.request), since fetch would normalise dot segments on the client side.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH, ServiceFront, signFrontRequest, startFrontFromEnv, type FrontState, type RunningFront } from '../../runtime';

const ADMIN = 'paths-ADMIN-key-0123456789abcdef';
const SPELLINGS = [
  '/.MDF/front/state',
  '/.Mdf/front/state',
  '//.mdf/front/state',
  '///.mdf/front/state',
  '/%2emdf/front/state',
  '/%2Emdf/front/state',
  '/%252emdf/front/state',
  '/%2e%2e/.mdf/front/state',
  '/x/../.mdf/front/state',
  '/x/%2e%2e/.mdf/front/state',
  '/.mdf%2ffront%2fstate',
  '/%2fmdf/../.mdf/front/state',
  '/\\.mdf\\front\\state',
  '/x%5c.mdf%5cfront',
  '/score/../.mdf/front/state?x=1',
  'http://slot.invalid/.mdf/front/state',
  '/.mdf',
];

let slot: http.Server;
let slotUrl: string;
let hits = 0;
const seen: string[] = [];

beforeAll(async () => {
  slot = http.createServer((req, res) => {
    hits++;
    seen.push(req.url ?? '');
    req.resume();
    res.end('{"from":"slot"}');
  });
  await new Promise<void>((r) => slot.listen(0, '127.0.0.1', () => r()));
  slotUrl = `http://127.0.0.1:${(slot.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => slot.close(r));
});

/** One raw request; its status. */
function raw(base: string, method: string, target: string, headers: Record<string, string> = {}, body = '{}'): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = http.request(`${base}/`, { method, path: target, headers, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer for ${target}`)));
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : body);
  });
}

describe('a front with admin routes (ACI/AKS)', () => {
  let front: RunningFront;
  let base: string;
  const initial = (): FrontState => ({ generation: 1, serving: 'blue', slots: { blue: slotUrl }, weights: {} });
  beforeAll(async () => {
    front = await startFrontFromEnv(
      { MDF_FRONT_SERVICE: 'svc', MDF_PORT: '0', MDF_FRONT_HOST: '127.0.0.1', MDF_FRONT_STATE: JSON.stringify(initial()), MDF_FRONT_ADMIN_KEY: ADMIN },
      () => undefined,
    );
    base = `http://127.0.0.1:${front.port}`;
  });
  afterAll(async () => {
    await front?.close();
  });

  test('every spelling of /.mdf/ is the admin surface: unsigned 401, signed but not a route 404, never forwarded', async () => {
    const before = hits;
    for (const p of SPELLINGS) {
      for (const method of ['GET', 'PUT', 'POST']) expect({ p, method, status: await raw(base, method, p) }).toEqual({ p, method, status: 401 });
      // Signed by the admin key for that very path: still not a route, and not forwarded.
      const body = JSON.stringify({ ...initial(), generation: 9 });
      const sig = signFrontRequest(ADMIN, 'PUT', p.split('?')[0], body);
      expect({ p, status: await raw(base, 'PUT', p, { [FRONT_SIGNATURE_HEADER]: sig }, body) }).toEqual({ p, status: 404 });
    }
    expect(front.state().generation).toBe(1);
    expect({ forwarded: hits - before, seen: seen.slice(before) }).toEqual({ forwarded: 0, seen: [] });
  });

  test('the exact route still works; ordinary paths (a .mdf in the query included) are forwarded', async () => {
    const body = JSON.stringify({ ...initial(), generation: 2 });
    expect(await raw(base, 'PUT', FRONT_STATE_PATH, { [FRONT_SIGNATURE_HEADER]: signFrontRequest(ADMIN, 'PUT', FRONT_STATE_PATH, body) }, body)).toBe(200);
    expect(front.state().generation).toBe(2);
    const before = hits;
    expect(await raw(base, 'POST', '/score?next=/.mdf/front/state')).toBe(200);
    expect(await raw(base, 'POST', '/score')).toBe(200);
    expect(await raw(base, 'POST', '/v2/models/m/infer')).toBe(200);
    expect(hits - before).toBe(3);
  });
});

describe('a front without admin routes (the local target\'s)', () => {
  let front: ServiceFront;
  let base: string;
  beforeAll(async () => {
    front = new ServiceFront('local-svc');
    front.addSlot({ name: 'blue', url: slotUrl });
    front.switchTo('blue');
    base = `http://127.0.0.1:${await front.listen(0, '127.0.0.1')}`;
  });
  afterAll(async () => {
    await front?.close();
  });

  test('/.mdf/ in any spelling is 404 and never forwarded; other paths are', async () => {
    const before = hits;
    for (const p of [FRONT_STATE_PATH, '/.mdf/', ...SPELLINGS]) expect({ p, status: await raw(base, 'POST', p) }).toEqual({ p, status: 404 });
    expect({ forwarded: hits - before, seen: seen.slice(before) }).toEqual({ forwarded: 0, seen: [] });
    expect(await raw(base, 'POST', '/score?q=.mdf')).toBe(200);
    expect(hits - before).toBe(1);
  });
});
