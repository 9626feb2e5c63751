/**
 * The service front started from a keys file (`MDF_KEYS_FILE`, runtime/front-cli.ts): the AKS front mounts the
 * service's keys Secret as the slots do. Key auth: callers need one of the keys, the slot gets the primary key; a
 * regenerated file applies at once (old key refused, slots get the new primary); an unusable file at start is refused
 * (never an open front), later it keeps the last good keys. Token auth: the caller's token is checked and passed on.
 * The admin answer says what the front checks (`auth`), which the AKS target checks before sending it traffic.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { answerMirrorBatch, DEFAULT_FRONT_GATHER_MS, FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE, signFrontRequest, startFrontFromEnv, type RunningFront } from '../../runtime';
import { issueToken } from '../../runtime/auth-token';
import { tempDir, waitFor, writeAtomically } from './helpers';

const ADMIN = 'keys-file-ADMIN-key-0123456789abcdef';
const K1 = { primaryKey: 'primary-one-0123456789', secondaryKey: 'secondary-one-0123456789' };
const K2 = { primaryKey: 'primary-two-0123456789', secondaryKey: 'secondary-one-0123456789' };
let slot: http.Server;
let slotUrl: string;
const seen: Array<string | undefined> = [];
const dir = tempDir('front-keys');
const keysFile = path.join(dir, 'keys.json');
const running: RunningFront[] = [];

const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  MDF_FRONT_SERVICE: 'diabetes',
  MDF_PORT: '0',
  MDF_FRONT_HOST: '127.0.0.1',
  MDF_FRONT_STATE: JSON.stringify({ generation: 1, serving: 'blue', slots: { blue: slotUrl }, weights: {} }),
  MDF_FRONT_ADMIN_KEY: ADMIN,
  MDF_KEYS_FILE: keysFile,
  MDF_FRONT_KEYS_RELOAD_MS: '50',
  ...extra,
});

async function start(extra: NodeJS.ProcessEnv = {}): Promise<{ front: RunningFront; score: (auth?: string) => Promise<number> }> {
  const front = await startFrontFromEnv(env(extra), () => undefined);
  running.push(front);
  const score = async (auth?: string) => (await fetch(`http://127.0.0.1:${front.port}/score`, { method: 'POST', body: '{"data":[1]}', headers: auth ? { authorization: auth } : {} })).status;
  return { front, score };
}

beforeAll(async () => {
  slot = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    req.resume();
    res.end('{"ok":true}');
  });
  await new Promise<void>((r) => slot.listen(0, '127.0.0.1', () => r()));
  slotUrl = `http://127.0.0.1:${(slot.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const f of running) await f.close();
  await new Promise((r) => slot.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('key auth from the file: callers need a key, the slot gets the primary; regenerated keys apply at once; a broken file keeps the last keys', async () => {
  writeAtomically(keysFile, JSON.stringify(K1));
  const { front, score } = await start();
  const body = '';
  const answer = await fetch(`http://127.0.0.1:${front.port}${FRONT_STATE_PATH}`, { headers: { [FRONT_SIGNATURE_HEADER]: signFrontRequest(ADMIN, 'GET', FRONT_STATE_PATH, body) } });
  expect(((await answer.json()) as { auth: string }).auth).toBe('keys');

  seen.length = 0;
  expect(await score()).toBe(401);
  expect(await score('Bearer wrong-key-0123456789')).toBe(401);
  expect(seen).toEqual([]);
  expect(await score(`Bearer ${K1.secondaryKey}`)).toBe(200);
  expect(seen).toEqual([`Bearer ${K1.primaryKey}`]);

  // The kubelet replaces the mounted file: the old primary is refused, the slot gets the new primary.
  writeAtomically(keysFile, JSON.stringify(K2));
  await waitFor(async () => (await score(`Bearer ${K1.primaryKey}`)) === 401);
  seen.length = 0;
  expect(await score(`Bearer ${K2.primaryKey}`)).toBe(200);
  expect(seen).toEqual([`Bearer ${K2.primaryKey}`]);

  // An unusable file later: the last good keys stay (never open).
  writeAtomically(keysFile, '{not json');
  await new Promise((r) => setTimeout(r, 200));
  expect(await score()).toBe(401);
  expect(await score(`Bearer ${K2.primaryKey}`)).toBe(200);
});

test('token auth from the file: a token of the service passes and reaches the slot as given; others are 401', async () => {
  const secret = 'token-secret-of-diabetes-0123456789';
  writeAtomically(keysFile, JSON.stringify({ tokenSecret: secret, service: 'diabetes' }));
  const { front, score } = await start();
  expect(front.front.auth).toBe('token');
  const good = await issueToken('diabetes', secret);
  const other = await issueToken('other', secret);
  seen.length = 0;
  expect(await score(`Bearer ${other.accessToken}`)).toBe(401);
  expect(await score(`Bearer ${K1.primaryKey}`)).toBe(401);
  expect(await score(`Bearer ${good.accessToken}`)).toBe(200);
  expect(seen).toEqual([`Bearer ${good.accessToken}`]);
});

test('token auth with shadow traffic: copies carry the caller\'s token, so the new version scores them; one that refuses them disagrees', async () => {
  const secret = 'token-secret-of-diabetes-0123456789';
  writeAtomically(keysFile, JSON.stringify({ tokenSecret: secret, service: 'diabetes' }));
  const good = await issueToken('diabetes', secret);
  // The new version checks the token as a token-auth replica does; `refuse` makes it answer 400 to every copy.
  let refuse = false;
  const greenSeen: string[] = [];
  const green = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      greenSeen.push(`${req.url} ${req.headers.authorization === `Bearer ${good.accessToken}` ? 'token' : String(req.headers.authorization)}`);
      if (req.headers.authorization !== `Bearer ${good.accessToken}`) return res.writeHead(401).end('{"error":"token"}');
      const answer = () => (refuse ? { status: 400, body: Buffer.from('{"error":"bad input"}') } : { status: 200, body: Buffer.from('{"ok":true}') });
      if (req.url === MIRROR_BATCH_PATH) {
        const frame = answerMirrorBatch(Buffer.concat(chunks), answer);
        return res.writeHead(200, { 'content-type': MIRROR_BATCH_TYPE, 'content-length': frame.length }).end(frame);
      }
      const a = answer();
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
    });
  });
  await new Promise<void>((r) => green.listen(0, '127.0.0.1', () => r()));
  try {
    const greenUrl = `http://127.0.0.1:${(green.address() as AddressInfo).port}`;
    const state = { generation: 1, serving: 'blue', slots: { blue: slotUrl, green: greenUrl }, weights: { blue: 100, green: 0 }, mirror: { slot: 'green', percent: 100, tolerance: 1e-6 } };
    const { front, score } = await start({ MDF_FRONT_STATE: JSON.stringify(state) });
    const shadow = () => front.front.snapshot().shadow?.green;
    for (let i = 0; i < 6; i++) expect(await score(`Bearer ${good.accessToken}`)).toBe(200);
    await waitFor(async () => shadow()?.compared === 6);
    expect(shadow()).toMatchObject({ mirrored: 6, compared: 6, disagreed: 0, errors: 0 });
    expect(greenSeen.every((s) => s.endsWith(' token'))).toBe(true);

    refuse = true;
    for (let i = 0; i < 4; i++) expect(await score(`Bearer ${good.accessToken}`)).toBe(200);
    await waitFor(async () => shadow()?.compared === 10);
    expect(shadow()).toMatchObject({ mirrored: 10, compared: 10, disagreed: 4, errors: 0 });
  } finally {
    await new Promise((r) => green.close(r));
  }
});

test('a keys file that cannot be used at start, or both a file and keys, is refused (the front never runs open)', async () => {
  writeAtomically(keysFile, JSON.stringify({ primaryKey: 'x' }));
  await expect(startFrontFromEnv(env(), () => undefined)).rejects.toThrow(/MDF_KEYS_FILE .*must hold/);
  await expect(startFrontFromEnv(env({ MDF_KEYS_FILE: path.join(dir, 'absent.json') }), () => undefined)).rejects.toThrow(/ENOENT/);
  writeAtomically(keysFile, JSON.stringify(K1));
  await expect(startFrontFromEnv(env({ MDF_PRIMARY_KEY: K1.primaryKey, MDF_SECONDARY_KEY: K1.secondaryKey }), () => undefined)).rejects.toThrow(/not both/);
  await expect(startFrontFromEnv(env({ MDF_FRONT_KEYS_RELOAD_MS: 'soon' }), () => undefined)).rejects.toThrow(/MDF_FRONT_KEYS_RELOAD_MS/);
});

test('shadow copies gather for a batch by default (the shadow replicas have their own cores); MDF_FRONT_MIRROR_GATHER_MS sets how long, 0 = at once', async () => {
  writeAtomically(keysFile, JSON.stringify(K1));
  const byDefault = await start();
  expect(byDefault.front.front.mirrorBounds.gatherMs).toBe(DEFAULT_FRONT_GATHER_MS);
  expect((await start({ MDF_FRONT_MIRROR_GATHER_MS: '0' })).front.front.mirrorBounds.gatherMs).toBe(0);
  for (const bad of ['-1', '5001', '1e3', 'soon', ' 250'])
    await expect(startFrontFromEnv(env({ MDF_FRONT_MIRROR_GATHER_MS: bad }), () => undefined)).rejects.toThrow(/MDF_FRONT_MIRROR_GATHER_MS must be a number of milliseconds from 0 to 5000/);
});

test('the shadow thread by default; MDF_FRONT_MIRROR_THREAD=0 keeps shadow copies on the front\'s loop; another value is refused', async () => {
  writeAtomically(keysFile, JSON.stringify(K1));
  expect((await start()).front.front.mirrorBounds.thread).toBe(true);
  const off = (await start({ MDF_FRONT_MIRROR_THREAD: '0' })).front.front;
  expect(off.mirrorBounds.thread).toBe(false);
  expect(off.shadowPath).toBe('loop');
  for (const bad of ['yes', 'true', '2', ''])
    await expect(startFrontFromEnv(env({ MDF_FRONT_MIRROR_THREAD: bad }), () => undefined)).rejects.toThrow(/MDF_FRONT_MIRROR_THREAD must be 0 or 1/);
});
