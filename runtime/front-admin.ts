/**
 * The control surface of a service front that runs on its own (the ACI and AKS fronts: front-cli.ts): its routing state
 * (slots, serving slot, weights, mirror) is read and replaced through `GET|PUT /.mdf/front/state`, and every such
 * request is signed by the controller (the app's rollout activities) with the front's admin key:
 *
 *   x-mdf-front-signature: t=<unix seconds>, n=<nonce>, s=<base64url HMAC-SHA256(key, "mdf-front-v1\n" + method +
 *                          "\n" + path + "\n" + t + "\n" + n + "\n" + hex SHA-256(body))>
 *
 * The key itself never travels (the front may be reached over plain HTTP); a signature is good for
 * FRONT_SIGNATURE_SKEW_SECONDS either side of the front's clock and once (nonces are remembered for that long, at most
 * MAX_NONCES of them). Anything under `/.mdf/` is the front's own and never forwarded; without a valid signature it
 * is 401, whatever the service's auth. Bodies are bounded (FRONT_ADMIN_MAX_BODY_BYTES, JSON depth) before parsing.
 *
 * The state has a `generation` the controller raises with each change: a PUT older than the state in force is
 * refused (409), so a retried or late request never undoes a newer one. The state is saved to `stateFile` (the ACI
 * group's emptyDir volume) at each change, so a restarted container serves the last state, not its creation's.
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import { z } from 'zod';
import { isFrontOwnPath, type ServiceFront } from './front';
import { jsonNestingDepth } from './json-depth';

export const FRONT_ADMIN_PREFIX = '/.mdf/';
export const FRONT_STATE_PATH = '/.mdf/front/state';
export const FRONT_SIGNATURE_HEADER = 'x-mdf-front-signature';
export const FRONT_SIGNATURE_SKEW_SECONDS = 300;
export const FRONT_ADMIN_MAX_BODY_BYTES = 64 * 1024;
const MAX_NONCES = 10_000;
const MAX_SIGNATURE_CHARS = 512;
const LABEL = 'mdf-front-v1';

const slotName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'slot names are lower-case letters, digits and dashes (at most 63)');
const slotUrl = z
  .string()
  .max(2048)
  .refine((u) => {
    try {
      const url = new URL(u);
      return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password && url.pathname === '/' && !url.search && !url.hash;
    } catch {
      return false;
    }
  }, 'a slot URL is http(s)://host[:port] with no path, query or credentials');

export const frontStateSchema = z
  .strictObject({
    generation: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    serving: slotName.optional(),
    slots: z.record(slotName, slotUrl).refine((s) => Object.keys(s).length <= 8, 'at most 8 slots'),
    weights: z.record(slotName, z.number().int().min(0).max(100)),
    mirror: z.strictObject({ slot: slotName, percent: z.number().int().min(1).max(100), tolerance: z.number().min(0).max(1e12) }).optional(),
  })
  .superRefine((st, ctx) => {
    const known = (s: string) => Object.prototype.hasOwnProperty.call(st.slots, s);
    for (const s of [...Object.keys(st.weights), ...(st.serving ? [st.serving] : []), ...(st.mirror ? [st.mirror.slot] : [])]) {
      if (!known(s)) ctx.addIssue({ code: 'custom', message: `slot ${s} is not in slots` });
    }
    const ws = Object.values(st.weights);
    if (ws.length && ws.reduce((a, b) => a + b, 0) !== 100) ctx.addIssue({ code: 'custom', message: 'weights must sum to 100' });
    if (!ws.length && !st.serving && Object.keys(st.slots).length) ctx.addIssue({ code: 'custom', message: 'give serving or weights' });
  });

/** The front's routing state (what the controller sets; slot → base URL of the slot). */
export type FrontState = z.output<typeof frontStateSchema>;

/** Parses and checks a state (size and depth first). Throws an Error whose message says what is wrong. */
export function parseFrontState(text: string): FrontState {
  if (Buffer.byteLength(text) > FRONT_ADMIN_MAX_BODY_BYTES) throw new Error(`the state is larger than ${FRONT_ADMIN_MAX_BODY_BYTES} bytes`);
  if (jsonNestingDepth(text, 8) > 4) throw new Error('the state is nested too deeply');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error('the state is not JSON');
  }
  const r = frontStateSchema.safeParse(raw);
  if (!r.success) throw new Error(r.error.issues.map((i) => `${i.path.join('.') || 'state'}: ${i.message}`).join('; '));
  return r.data;
}

const sha256hex = (body: string) => createHash('sha256').update(body, 'utf8').digest('hex');
const mac = (key: string, method: string, path: string, t: string, n: string, body: string) =>
  createHmac('sha256', key).update(`${LABEL}\n${method.toUpperCase()}\n${path}\n${t}\n${n}\n${sha256hex(body)}`).digest('base64url');

/** The signature header of one admin request (the controller's side). */
export function signFrontRequest(key: string, method: string, path: string, body: string, nowMs = Date.now(), nonce: string = randomUUID()): string {
  const t = String(Math.floor(nowMs / 1000));
  return `t=${t}, n=${nonce}, s=${mac(key, method, path, t, nonce, body)}`;
}

/** The front's side: checks a signature (constant time), its age, and that its nonce was not seen (replay). */
export function makeFrontVerifier(key: string, now: () => number = Date.now): (method: string, path: string, body: string, header: string | string[] | undefined) => boolean {
  const seen = new Map<string, number>();
  return (method, path, body, header) => {
    if (typeof header !== 'string' || header.length > MAX_SIGNATURE_CHARS) return false;
    const parts = Object.fromEntries(
      header.split(',').map((p) => {
        const i = p.indexOf('=');
        return [p.slice(0, i).trim(), p.slice(i + 1).trim()];
      }),
    ) as Record<string, string | undefined>;
    const { t, n, s } = parts;
    if (!t || !n || !s || !/^\d{1,12}$/.test(t) || !/^[A-Za-z0-9-]{8,64}$/.test(n)) return false;
    const nowS = Math.floor(now() / 1000);
    if (Math.abs(nowS - Number(t)) > FRONT_SIGNATURE_SKEW_SECONDS) return false;
    const expected = Buffer.from(mac(key, method, path, t, n, body));
    const given = Buffer.from(s);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return false;
    for (const [k, until] of seen) if (until < nowS) seen.delete(k);
    if (seen.has(n) || seen.size >= MAX_NONCES) return false;
    seen.set(n, Number(t) + FRONT_SIGNATURE_SKEW_SECONDS);
    return true;
  };
}

/**
 * Puts a state into force on a front: slots added (with `slotKey`, the key the slots accept), then the weights
 * and mirror (or a switch to `serving`), then slots no longer listed are detached (their requests in flight finish).
 */
export function applyFrontState(front: ServiceFront, state: FrontState, slotKey?: string): void {
  for (const [name, url] of Object.entries(state.slots)) front.addSlot({ name, url: url.replace(/\/$/, ''), ...(slotKey ? { key: slotKey } : {}) });
  if (Object.keys(state.weights).length) front.setWeights(state.weights, state.mirror);
  else if (state.serving) {
    front.switchTo(state.serving);
    if (state.mirror) front.setWeights({}, state.mirror);
  }
  for (const name of front.slotNames) if (!Object.prototype.hasOwnProperty.call(state.slots, name)) void front.removeSlot(name);
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

const sendError = (res: http.ServerResponse, status: number, code: string, message: string) => send(res, status, { error: { code, message } });

export interface FrontAdminOptions {
  /** The admin key (secure setting of the front's container). */
  key: string;
  /** The state in force at start. */
  initial: FrontState;
  /** The key the slots accept (the service's primary key), when they have key auth. */
  slotKey?: string;
  /** Where each new state is saved (atomically: a temporary file renamed). */
  stateFile?: string;
  now?: () => number;
  onState?: (state: FrontState) => void;
}

/**
 * Installs the admin routes on `front` (its `intercept`) and puts `initial` in force. Returns the current state's
 * getter and a setter of the slots' key. `GET` answers `{ state, snapshot, auth }` (the front's counters:
 * shared/rollout/traffic.ts; what it checks of callers: `none`, `keys` or `token`), `PUT` takes a state and answers
 * the same after it is in force.
 */
export function installFrontAdmin(front: ServiceFront, o: FrontAdminOptions): { state: () => FrontState; setSlotKey: (key: string | undefined) => void } {
  const verify = makeFrontVerifier(o.key, o.now);
  let state = o.initial;
  let slotKey = o.slotKey;
  applyFrontState(front, state, slotKey);
  const save = (st: FrontState) => {
    if (!o.stateFile) return;
    const tmp = `${o.stateFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(st), { mode: 0o600 });
    fs.renameSync(tmp, o.stateFile);
  };
  front.intercept = (req, res) => {
    // Any spelling of the admin prefix (`/.MDF/`, `/%2emdf/`, `//.mdf/`, `/x/../.mdf/`, …) is taken here, so it is
    // signed or refused, never forwarded; only the exact path of a route is served.
    if (!isFrontOwnPath(req.url ?? '/')) return false;
    const path = (req.url ?? '/').split('?')[0];
    res.setHeader('x-ms-request-id', randomUUID());
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    let bytes = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > FRONT_ADMIN_MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (res.headersSent) return;
      const body = Buffer.concat(chunks).toString('utf8');
      if (tooLarge) return sendError(res, 413, 'PayloadTooLarge', `Admin requests are at most ${FRONT_ADMIN_MAX_BODY_BYTES} bytes.`);
      if (!verify(method, path, body, req.headers[FRONT_SIGNATURE_HEADER])) {
        return sendError(res, 401, 'Unauthorized', `The front's admin routes need a valid, fresh ${FRONT_SIGNATURE_HEADER} signed with the front's admin key.`);
      }
      if (path !== FRONT_STATE_PATH) return sendError(res, 404, 'NotFound', `No admin route ${path}; the front has ${FRONT_STATE_PATH}.`);
      if (method === 'GET') return send(res, 200, { state, snapshot: front.snapshot(), auth: front.auth });
      if (method !== 'PUT') return sendError(res, 405, 'MethodNotAllowed', `Use GET or PUT ${FRONT_STATE_PATH}.`);
      let next: FrontState;
      try {
        next = parseFrontState(body);
      } catch (e) {
        return sendError(res, 400, 'InvalidFrontState', (e as Error).message);
      }
      if (next.generation < state.generation) {
        return sendError(res, 409, 'StaleFrontState', `The front is at generation ${state.generation}; generation ${next.generation} is older and was not applied.`);
      }
      try {
        applyFrontState(front, next, slotKey);
        save(next);
      } catch (e) {
        applyFrontState(front, state, slotKey);
        return sendError(res, 500, 'FrontStateNotApplied', (e as Error).message);
      }
      state = next;
      o.onState?.(state);
      send(res, 200, { state, snapshot: front.snapshot(), auth: front.auth });
    });
    return true;
  };
  return {
    state: () => state,
    // New keys (a reloaded keys file): the slots are registered again with the new primary key.
    setSlotKey: (key) => {
      slotKey = key;
      applyFrontState(front, state, slotKey);
    },
  };
}
