/**
 * The service front run on its own, as on ACI (runtime/front-cli.ts → `node dist/runtime/front-cli.js`), for real:
 * two real scoring runtimes with key auth behind it, controlled the way the ACI target controls it (its signed
 * admin calls, shared/azure/aci-front.ts `callFront`), gate figures read from each runtime's own /metrics with the
 * metrics key (as aci-target.ts does). Checks: the admin routes refuse unsigned, forged, stale and replayed calls and
 * are never forwarded; callers need the service key; weights split live traffic; the shadow phase compares answers
 * and clients only ever see the serving version's; a stale generation is refused; a restarted front serves its last
 * state (saved file), not its creation's; no secret reaches the log. Bad input to the control surface:
 * test/security/front-control.test.ts.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { callFront } from '../../shared/azure/aci-front';
import { slotTrafficFromMetrics } from '../../shared/azure/aks-traffic';
import { FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH, METRICS_KEY_HEADER, metricsHeaderValue, PIN_HEADER, PINNED_HEADER, signFrontRequest, type FrontState } from '../../runtime';
import { post, start, startFrontProcess, tempDir, waitFor, type Started } from './helpers';

const KEYS = { primaryKey: 'front-test-PRIMARY-key-0123456789', secondaryKey: 'front-test-SECONDARY-key-0123456789' };
const ADMIN = 'front-test-ADMIN-key-abcdefghijklmnop';
const auth = { authorization: `Bearer ${KEYS.primaryKey}` };

let dir: string;
let blue: Started;
let green: Started;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = tempDir('front');
  // blue answers x*3; green answers x*3 too, except for inputs ending in 7 (a disagreement on 10 % of 0..99).
  fs.writeFileSync(path.join(dir, 'blue.js'), 'exports.init = () => {}; exports.run = (i) => ({ result: i.data.map((x) => x * 3), version: "v" });\n');
  fs.writeFileSync(path.join(dir, 'green.js'), 'exports.init = () => {}; exports.run = (i) => ({ result: i.data.map((x) => (x % 10 === 7 ? -1 : x * 3)), version: "v" });\n');
  [blue, green] = await Promise.all([start({ entryScript: path.join(dir, 'blue.js'), keys: KEYS }), start({ entryScript: path.join(dir, 'green.js'), keys: KEYS })]);
}, 60_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await Promise.all([blue?.server.stop(), green?.server.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

function frontEnv(stateFile: string, state: FrontState): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    MDF_FRONT_SERVICE: 'svc',
    MDF_PORT: '0',
    MDF_FRONT_HOST: '127.0.0.1',
    MDF_FRONT_STATE: JSON.stringify(state),
    MDF_FRONT_STATE_FILE: stateFile,
    MDF_FRONT_ADMIN_KEY: ADMIN,
    MDF_PRIMARY_KEY: KEYS.primaryKey,
    MDF_SECONDARY_KEY: KEYS.secondaryKey,
  };
}

/** Starts the front process (test/runtime/helpers.ts) and remembers it for the clean-up. */
async function startFront(env: NodeJS.ProcessEnv): Promise<{ url: string; child: ChildProcess; out: string[] }> {
  const f = await startFrontProcess(env);
  children.push(f.child);
  return f;
}

const stopped = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r())));

const slotFigures = async (url: string) => {
  const r = await fetch(`${url}/metrics`, { headers: { [METRICS_KEY_HEADER]: metricsHeaderValue(KEYS)! } });
  expect(r.status).toBe(200);
  return slotTrafficFromMetrics(await r.text());
};

test('front-cli as on ACI: signed control only, key auth, weights, shadow comparison, stale generations, restart from the saved state, no secrets logged', async () => {
  const stateFile = path.join(dir, 'state.json');
  const initial: FrontState = { generation: 1, serving: 'blue', slots: { blue: blue.url }, weights: {} };
  const { url, child, out } = await startFront(frontEnv(stateFile, initial));

  // Callers need the service key; the front forwards with the slot's key.
  expect((await post(`${url}/score`, { data: [1] })).status).toBe(401);
  const first = await post(`${url}/score`, { data: [1] }, auth);
  expect(first.status).toBe(200);
  expect(await first.json()).toEqual({ result: [3], version: 'v' });

  // The admin routes: unsigned, forged, stale or replayed → 401, and never forwarded to a slot.
  const blueBefore = (await slotFigures(blue.url)).requests;
  expect((await fetch(`${url}${FRONT_STATE_PATH}`)).status).toBe(401);
  expect((await fetch(`${url}${FRONT_STATE_PATH}`, { headers: { ...auth } })).status).toBe(401);
  expect((await fetch(`${url}${FRONT_STATE_PATH}`, { headers: { [FRONT_SIGNATURE_HEADER]: signFrontRequest('not-the-admin-key-at-all', 'GET', FRONT_STATE_PATH, '') } })).status).toBe(401);
  expect((await fetch(`${url}${FRONT_STATE_PATH}`, { headers: { [FRONT_SIGNATURE_HEADER]: signFrontRequest(ADMIN, 'GET', FRONT_STATE_PATH, '', Date.now() - 3_600_000) } })).status).toBe(401);
  const once = signFrontRequest(ADMIN, 'GET', FRONT_STATE_PATH, '');
  expect((await fetch(`${url}${FRONT_STATE_PATH}`, { headers: { [FRONT_SIGNATURE_HEADER]: once } })).status).toBe(200);
  expect((await fetch(`${url}${FRONT_STATE_PATH}`, { headers: { [FRONT_SIGNATURE_HEADER]: once } })).status).toBe(401);
  // A signature for GET does not authorise a PUT with a body.
  const forgedPut = await fetch(`${url}${FRONT_STATE_PATH}`, { method: 'PUT', body: JSON.stringify({ ...initial, generation: 9 }), headers: { [FRONT_SIGNATURE_HEADER]: signFrontRequest(ADMIN, 'GET', FRONT_STATE_PATH, '') } });
  expect(forgedPut.status).toBe(401);
  expect((await fetch(`${url}/.mdf/anything`)).status).toBe(401);
  expect((await slotFigures(blue.url)).requests).toBe(blueBefore);

  // A 50/50 split, as the rollout's step sets it: each runtime's /metrics counts its share.
  const start0 = { blue: await slotFigures(blue.url), green: await slotFigures(green.url) };
  let answer = await callFront(url, ADMIN, 'PUT', { generation: 2, serving: 'blue', slots: { blue: blue.url, green: green.url }, weights: { blue: 50, green: 50 } });
  expect(answer.state.weights).toEqual({ blue: 50, green: 50 });
  expect(answer.snapshot.weights).toEqual({ blue: 50, green: 50 });
  for (let i = 0; i < 40; i++) expect((await post(`${url}/score`, { data: [i] }, auth)).status).toBe(200);
  const end0 = { blue: await slotFigures(blue.url), green: await slotFigures(green.url) };
  expect(end0.blue.requests - start0.blue.requests).toBe(20);
  expect(end0.green.requests - start0.green.requests).toBe(20);
  // The front's own counters agree.
  answer = await callFront(url, ADMIN, 'GET');
  expect(answer.snapshot.slots.green.requests).toBe(20);

  // Shadow: all live traffic on blue, every request copied to green and compared; clients see blue's answers only.
  answer = await callFront(url, ADMIN, 'PUT', { generation: 3, serving: 'blue', slots: { blue: blue.url, green: green.url }, weights: { blue: 100, green: 0 }, mirror: { slot: 'green', percent: 100, tolerance: 0 } });
  for (let i = 0; i < 50; i++) {
    const r = await post(`${url}/score`, { data: [i] }, auth);
    expect(await r.json()).toEqual({ result: [i * 3], version: 'v' });
  }
  await waitFor(async () => (await callFront(url, ADMIN, 'GET')).snapshot.shadow?.green?.compared === 50);
  const shadow = (await callFront(url, ADMIN, 'GET')).snapshot.shadow!.green;
  expect(shadow).toMatchObject({ mirrored: 50, compared: 50, disagreed: 5, errors: 0 });

  // A late or retried write of an older generation never undoes a newer one.
  await expect(callFront(url, ADMIN, 'PUT', { generation: 2, serving: 'blue', slots: { blue: blue.url }, weights: {} })).rejects.toMatchObject({ code: 'FrontRefused' });
  // Back to blue alone (a rollback), then a restart: the front comes back with its last state, not MDF_FRONT_STATE's.
  await callFront(url, ADMIN, 'PUT', { generation: 4, serving: 'green', slots: { green: green.url }, weights: {} });
  child.kill('SIGKILL');
  await stopped(child);
  const again = await startFront(frontEnv(stateFile, initial));
  const restored = await callFront(again.url, ADMIN, 'GET');
  expect(restored.state).toEqual({ generation: 4, serving: 'green', slots: { green: green.url }, weights: {} });
  expect(restored.snapshot.epoch).not.toBe(answer.snapshot.epoch);
  expect(await (await post(`${again.url}/score`, { data: [7] }, auth)).json()).toEqual({ result: [-1], version: 'v' });
  again.child.kill('SIGTERM');
  await stopped(again.child);

  const log = [...out, ...again.out].join('');
  expect(log).toContain('"event":"listening"');
  expect(log).toContain('"event":"front_state_restored"');
  for (const secret of [KEYS.primaryKey, KEYS.secondaryKey, ADMIN]) expect(log).not.toContain(secret);
}, 120_000);

(process.platform === 'linux' ? test : test.skip)('a front whose shadow thread cannot lower its priority (no `chrt` on its PATH) logs why, once, as a warning; the copies are still compared', async () => {
  const noChrt = tempDir('no-chrt');
  const initial: FrontState = { generation: 1, serving: 'blue', slots: { blue: blue.url, green: green.url }, weights: { blue: 100, green: 0 }, mirror: { slot: 'green', percent: 100, tolerance: 0 } };
  const { url, child, out } = await startFront({ ...frontEnv(path.join(dir, 'state-no-chrt.json'), initial), PATH: noChrt, MDF_FRONT_MIRROR_GATHER_MS: '0' });
  try {
    for (let i = 0; i < 20; i++) expect(await (await post(`${url}/score`, { data: [i] }, auth)).json()).toEqual({ result: [i * 3], version: 'v' });
    await waitFor(async () => (await callFront(url, ADMIN, 'GET')).snapshot.shadow?.green?.compared === 20);
    expect((await callFront(url, ADMIN, 'GET')).snapshot.shadow!.green).toMatchObject({ mirrored: 20, compared: 20, disagreed: 2, errors: 0 });
  } finally {
    child.kill('SIGTERM');
    await stopped(child);
    fs.rmSync(noChrt, { recursive: true, force: true });
  }
  const notices = out.join('').split('\n').filter((l) => l.includes('"event":"front_notice"')).map((l) => JSON.parse(l));
  expect(notices).toEqual([
    expect.objectContaining({ event: 'front_notice', level: 'warn', code: 'ShadowCopiesOnLoop', slot: 'green', message: expect.stringContaining("chrt: spawnSync chrt ENOENT (on Linux, util-linux's `chrt` lets the thread lower its own priority)") }),
  ]);
  for (const secret of [KEYS.primaryKey, KEYS.secondaryKey, ADMIN]) expect(out.join('')).not.toContain(secret);
}, 60_000);

test('pinned test requests reach their version marked and stay out of its gate figures; a caller cannot mark its own requests', async () => {
  const state: FrontState = { generation: 1, serving: 'blue', slots: { blue: blue.url, green: green.url }, weights: { blue: 100, green: 0 } };
  const { url } = await startFront(frontEnv(path.join(dir, 'state-pinned.json'), state));
  const before = { blue: await slotFigures(blue.url), green: await slotFigures(green.url) };
  const rawBefore = await (await fetch(`${green.url}/metrics`, { headers: { [METRICS_KEY_HEADER]: metricsHeaderValue(KEYS)! } })).text();
  // 5 requests pinned to the 0 % version (as a tester would), 3 live ones that try to pass as pinned.
  for (let i = 0; i < 5; i++) expect((await post(`${url}/score`, { data: [7] }, { ...auth, [PIN_HEADER]: 'green' })).status).toBe(200);
  for (let i = 0; i < 3; i++) expect((await post(`${url}/score`, { data: [1] }, { ...auth, [PINNED_HEADER]: '1' })).status).toBe(200);
  const after = { blue: await slotFigures(blue.url), green: await slotFigures(green.url) };
  // The gates' figures: the live requests count (the caller's mark was taken off), the pinned ones do not.
  expect(after.green.requests - before.green.requests).toBe(0);
  expect(after.blue.requests - before.blue.requests).toBe(3);
  // The runtime still shows the pinned requests, apart.
  const pinnedOf = (text: string) => Number(/scoring_requests_total\{route="score",status="200",pinned="true"\} (\d+)/.exec(text)?.[1] ?? 0);
  const rawAfter = await (await fetch(`${green.url}/metrics`, { headers: { [METRICS_KEY_HEADER]: metricsHeaderValue(KEYS)! } })).text();
  expect(pinnedOf(rawAfter) - pinnedOf(rawBefore)).toBe(5);
});
