/**
 * Bad input to the service front's control surface (runtime/front-admin.ts; the ACI front, docs/azure.md
 * "Progressive delivery on ACI"): unsigned, forged, stale, replayed, cross-method and oversized calls, paths that
 * try to reach a slot through the admin prefix, states that would point the front somewhere else (credentials in
 * URLs, other schemes, paths), unknown slots, bad weights, unknown fields, deep JSON — each refused with nothing
 * changed and nothing forwarded, and bad settings refused at start.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH, signFrontRequest, startFrontFromEnv, type FrontState, type RunningFront } from '../../runtime';

const ADMIN = 'security-ADMIN-key-0123456789abcdef';
let slot: http.Server;
let slotUrl: string;
let hits = 0;
let front: RunningFront;
let url: string;

const initial = (): FrontState => ({ generation: 1, serving: 'blue', slots: { blue: slotUrl }, weights: {} });
const env = (): NodeJS.ProcessEnv => ({
  MDF_FRONT_SERVICE: 'svc',
  MDF_PORT: '0',
  MDF_FRONT_HOST: '127.0.0.1',
  MDF_FRONT_STATE: JSON.stringify(initial()),
  MDF_FRONT_STATE_FILE: path.join(os.tmpdir(), `mdf-front-sec-${process.pid}.json`),
  MDF_FRONT_ADMIN_KEY: ADMIN,
});

beforeAll(async () => {
  slot = http.createServer((req, res) => {
    hits++;
    req.resume();
    res.end('{"from":"slot"}');
  });
  await new Promise<void>((r) => slot.listen(0, '127.0.0.1', () => r()));
  slotUrl = `http://127.0.0.1:${(slot.address() as AddressInfo).port}`;
  front = await startFrontFromEnv(env(), () => undefined);
  url = `http://127.0.0.1:${front.port}`;
});
afterAll(async () => {
  await front?.close();
  await new Promise((r) => slot.close(r));
});

const put = (body: string, sig = signFrontRequest(ADMIN, 'PUT', FRONT_STATE_PATH, body)) =>
  fetch(`${url}${FRONT_STATE_PATH}`, { method: 'PUT', body, headers: { [FRONT_SIGNATURE_HEADER]: sig } });

test('unsigned, forged, stale, replayed and cross-method calls are 401 and never reach a slot', async () => {
  const before = hits;
  const body = JSON.stringify({ ...initial(), generation: 5 });
  expect((await put(body, '')).status).toBe(401);
  expect((await put(body, 'garbage')).status).toBe(401);
  expect((await put(body, signFrontRequest('some-other-key-0123456789', 'PUT', FRONT_STATE_PATH, body))).status).toBe(401);
  expect((await put(body, signFrontRequest(ADMIN, 'PUT', FRONT_STATE_PATH, body, Date.now() - 10 * 60_000))).status).toBe(401);
  expect((await put(body, signFrontRequest(ADMIN, 'PUT', FRONT_STATE_PATH, body, Date.now() + 10 * 60_000))).status).toBe(401);
  // Signed for another body, method or path.
  expect((await put(body, signFrontRequest(ADMIN, 'PUT', FRONT_STATE_PATH, '{}'))).status).toBe(401);
  expect((await put(body, signFrontRequest(ADMIN, 'GET', FRONT_STATE_PATH, body))).status).toBe(401);
  expect((await put(body, signFrontRequest(ADMIN, 'PUT', '/.mdf/front/other', body))).status).toBe(401);
  expect((await put(body, `${signFrontRequest(ADMIN, 'PUT', FRONT_STATE_PATH, body)}${'x'.repeat(600)}`)).status).toBe(401);
  // A replay of a valid call.
  const sig = signFrontRequest(ADMIN, 'PUT', FRONT_STATE_PATH, body);
  expect((await put(body, sig)).status).toBe(200);
  expect((await put(body, sig)).status).toBe(401);
  expect(front.state().generation).toBe(5);
  // The admin prefix is the front's own: dot segments and other paths under it are never forwarded.
  // (sent raw: fetch would normalise the dot segments away on the client side)
  const raw = (p: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request(`${url}/`, { method: 'POST', path: p }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('{}');
    });
  for (const p of ['/.mdf/front/../../score', '/.mdf/', '/.mdf/front/state/../../../score?x=1']) expect(await raw(p)).toBe(401);
  expect(hits).toBe(before);
});

test('states that are malformed, point elsewhere or are too large are refused, nothing changes', async () => {
  const gen = front.state().generation;
  const bad = async (state: unknown, re: RegExp) => {
    const r = await put(typeof state === 'string' ? state : JSON.stringify(state));
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'InvalidFrontState', message: expect.stringMatching(re) });
  };
  const g = gen + 1;
  await bad({ generation: g, serving: 'blue', slots: { blue: 'http://user:pw@example.com' }, weights: {} }, /no path, query or credentials/);
  await bad({ generation: g, serving: 'blue', slots: { blue: 'file:///etc/passwd' }, weights: {} }, /http\(s\)/);
  await bad({ generation: g, serving: 'blue', slots: { blue: `${slotUrl}/admin` }, weights: {} }, /no path/);
  await bad({ generation: g, serving: 'red', slots: { blue: slotUrl }, weights: {} }, /slot red is not in slots/);
  await bad({ generation: g, slots: { blue: slotUrl, green: slotUrl }, weights: { blue: 60, green: 60 } }, /sum to 100/);
  await bad({ generation: g, slots: { 'Bad Name': slotUrl }, weights: {}, serving: 'blue' }, /Invalid key|lower-case/);
  await bad({ generation: g, serving: 'blue', slots: { blue: slotUrl }, weights: {}, extra: 1 }, /unrecognized|extra/i);
  await bad({ generation: -1, serving: 'blue', slots: { blue: slotUrl }, weights: {} }, /generation/);
  await bad('{"generation":2,"slots":{"a":[[[[[[1]]]]]]},"weights":{}}', /nested too deeply/);
  await bad('not json', /not JSON/);
  expect((await put('x'.repeat(70 * 1024))).status).toBe(413);
  // An older generation is 409 and changes nothing.
  const stale = await put(JSON.stringify({ ...initial(), generation: gen - 1 }));
  expect(stale.status).toBe(409);
  expect(front.state().generation).toBe(gen);
});

test('bad settings are refused at start (no open control surface, no half-configured keys)', async () => {
  await expect(startFrontFromEnv({ ...env(), MDF_FRONT_ADMIN_KEY: '' }, () => undefined)).rejects.toThrow(/MDF_FRONT_ADMIN_KEY is required/);
  await expect(startFrontFromEnv({ ...env(), MDF_FRONT_ADMIN_KEY: 'short' }, () => undefined)).rejects.toThrow(/at least 16/);
  await expect(startFrontFromEnv({ ...env(), MDF_FRONT_STATE: '{"generation":1}' }, () => undefined)).rejects.toThrow(/MDF_FRONT_STATE/);
  await expect(startFrontFromEnv({ ...env(), MDF_PRIMARY_KEY: 'only-one-key-0123456789' }, () => undefined)).rejects.toThrow(/both/);
  await expect(startFrontFromEnv({ ...env(), MDF_PORT: '99999' }, () => undefined)).rejects.toThrow(/port/);
});
