/**
 * The service front: the stable public endpoint of a service, a small HTTP proxy in front of the service's slots.
 * The local target runs one per service in the host (shared/targets/local.ts); on ACI it runs as its own container
 * group (front-cli.ts, controlled through the signed admin routes of front-admin.ts; docs/azure.md). One piece of
 * routing code for both. `switchTo(slot)` changes the target atomically (one assignment): requests already in flight finish on
 * the old slot, new ones go to the new slot, so no request fails during a blue/green switch. The front also
 * enforces key auth with the service's *current* keys (regenerated keys work at once) and forwards to the slot
 * with the slot's own key.
 *
 * Connections are bounded (runtime/http-limits.ts: header and body time, keep-alive, open connections), bodies are
 * limited here (413 before anything reaches a slot), and a client that goes away aborts its request to the slot
 * (runtime/forward.ts), so abandoned requests never pile up behind the front.
 */
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { makeTokenVerifier } from './auth-token';
import { forwardRequest } from './forward';
import { createBoundedServer, DEFAULT_HTTP_LIMITS, dropBody, resolveHttpLimits, type BoundedServer, type HttpLimits } from './http-limits';
import { packageRoot } from './launch';
import { isOpenOipPath } from './oip';
import { DEFAULT_MAX_BODY_BYTES } from './options';
import { PINNED_HEADER } from './metrics';
import { makeAuthorizer } from './server';
import { MAX_COMPARE_BYTES, MAX_SHADOW_INFLIGHT, type ShadowCopyMessage, type ShadowReport } from './shadow-sender';
import type { ShadowThreadData } from './shadow-thread';
import type { TlsMaterial } from './tls';
import {
  emptyShadowTraffic,
  emptySlotTraffic,
  latencyBucket,
  type ShadowTraffic,
  type SlotTraffic,
  type TrafficSnapshot,
} from './traffic-counters';

/** The header that pins a request to one slot (at any weight, 0 % included), as AML v2's online endpoints. */
export const PIN_HEADER = 'azureml-model-deployment';
/**
 * How shadow copies are held (`ServiceFront`'s third argument; defaults DEFAULT_MIRROR_BOUNDS):
 * - `gatherMs`: 0 (the default) = a copy leaves as soon as the shadow thread has it (with the others of its turn);
 *   > 0 = copies wait for a full batch (MAX_BATCH_ITEMS) or until the oldest has waited this long. The front
 *   processes (ACI, AKS: front-cli.ts) and the local target gather (DEFAULT_FRONT_GATHER_MS): a few batches a second
 *   cost the shadow replica a fraction of the CPU of copies sent one by one (docs/benchmarks.md, "Gathering on the
 *   ACI/AKS front").
 * - `heldBytes`: request bodies and serving answers held for copies not yet compared, per shadow slot at most; a copy
 *   whose bytes would go over is released at once and counted as mirrored, not compared.
 */
export interface MirrorBounds {
  gatherMs: number;
  heldBytes: number;
}
export const DEFAULT_MIRROR_BOUNDS: MirrorBounds = { gatherMs: 0, heldBytes: 64 * 1024 * 1024 };
/**
 * How long copies gather for a batch on a front that serves real traffic (the ACI/AKS front process, front-cli.ts,
 * and the local target's fronts); `ServiceFront` alone defaults to 0 (at once).
 */
export const DEFAULT_FRONT_GATHER_MS = 250;

/** Where the shadow thread's code is (the compiled file, as for the ONNX threads). */
const shadowThreadPath = (): string => path.join(packageRoot(), 'dist', 'runtime', 'shadow-thread.js');

export { MAX_COMPARE_BYTES, MAX_SHADOW_INFLIGHT, MAX_SHADOW_SOCKETS, MIRROR_BATCHES_IN_FLIGHT } from './shadow-sender';

/** `chunks` (`length` bytes) in a buffer of their own, not a slice of Node's shared pool: a message can move it to the shadow thread. */
function ownBytes(chunks: Buffer[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Whether a request target names the front's own surface (`/.mdf/…`, front-admin.ts) in any spelling a slot could
 * read as one: percent-encoding (`%2e`, `%2f`, `%5c`, encoded more than once), upper case, backslashes, doubled
 * slashes, dot segments, the absolute form. Checked on a decoded, lower-cased copy of the path (the query cut off
 * first): any `.mdf` segment counts, so no spelling of the front's paths is ever forwarded to a slot.
 */
export function isFrontOwnPath(target: string): boolean {
  // Most requests (`/score`, `/v2/...`): no `mdf`, no escape, no backslash — not the front's, at no cost.
  if (!/mdf|%|\\/i.test(target)) return false;
  let p = target.split('?')[0];
  for (let i = 0; i < 4; i++) {
    const decoded = p.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    if (decoded === p) break;
    p = decoded;
  }
  return p.toLowerCase().split(/[/\\]/).some((segment) => segment === '.mdf');
}

/** Paths that stay open without a key (liveness and schema), as in AML. */
const OPEN_PATHS = new Set(['/', '/swagger.json', '/openapi.json']);

/**
 * Whether a request path is open: one of OPEN_PATHS, or an Open Inference Protocol health / metadata path
 * (`isOpenOipPath`; `/infer` needs the key). Only a path already in normal form counts (no `.`/`..` segments,
 * `%2e`, backslashes): the path forwarded is the one checked, so `/v2/health/ready/../../../score` is no way past
 * the key.
 */
function isOpenPath(pathOnly: string): boolean {
  if (OPEN_PATHS.has(pathOnly)) return true;
  let normal: string;
  try {
    normal = new URL(pathOnly, 'http://front.invalid').pathname;
  } catch {
    return false;
  }
  return normal === pathOnly && isOpenOipPath(pathOnly);
}

export interface FrontSlot {
  name: string;
  /** Base URL of the slot's router (`http://127.0.0.1:N`). */
  url: string;
  /** Key the slot's replicas accept (absent: slot runs without auth). */
  key?: string;
}

/** What the front checks: nothing, the service's keys, or tokens signed with the service's token secret. */
export type FrontAuth = { mode: 'none' } | { mode: 'keys'; keys: { primaryKey: string; secondaryKey: string } } | { mode: 'token'; serviceName: string; secret: string };

/** The front's bounds (the local target's `LOCAL_SCORING_*` settings). */
export interface FrontLimits extends HttpLimits {
  /** Request bodies over this are answered 413 `PayloadTooLarge` by the front. */
  maxBodyBytes: number;
}

export const DEFAULT_FRONT_LIMITS: FrontLimits = { ...DEFAULT_HTTP_LIMITS, maxBodyBytes: DEFAULT_MAX_BODY_BYTES };

/**
 * HTTPS of the front (`ssl_enabled`): a checked certificate and key (runtime/tls.ts) and the host name of the public
 * URI (`ssl_cname`; default 127.0.0.1). With it the front speaks only TLS: plain HTTP connections are closed.
 */
export interface FrontTls extends TlsMaterial {
  cname?: string;
}

interface SlotState extends FrontSlot {
  target: URL;
  agent: http.Agent;
  inflight: number;
  idleWaiters: Array<() => void>;
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}) {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** Weighted routing state: smooth weighted round-robin (nginx), so each slot's share is exact over any run of requests. */
interface Split {
  slot: SlotState;
  weight: number;
  current: number;
}

/**
 * A handler the front consults before anything else (auth, routing): answers `true` when it took the request (the
 * ACI front's admin routes, front-admin.ts). Never forwarded to a slot.
 */
export type FrontIntercept = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

export class ServiceFront {
  private server?: BoundedServer;
  private tls?: FrontTls;
  private host = '127.0.0.1';
  private readonly slots = new Map<string, SlotState>();
  private active?: SlotState;
  /** Set by `setWeights`: live traffic split between slots; absent → all to `active`. */
  private split?: Split[];
  private mirror?: { slot: string; percent: number; tolerance: number; acc: number };
  /**
   * Copies in flight per shadow slot, kept across mirror changes (a new percent, a step of the rollout): the cap
   * counts every copy still out, and each copy leaves the count it entered.
   */
  private readonly shadowInflight = new Map<string, { n: number; bytes: number }>();
  private readonly traffic = new Map<string, SlotTraffic>();
  private readonly shadow = new Map<string, ShadowTraffic>();
  /** The shadow thread (shadow-thread.ts), started with the first copy: it sends the copies and compares the answers. */
  private shadowThread?: { worker: Worker; posted: Map<string, { n: number; bytes: number }> };
  /** Copies ready to be handed to the shadow thread, all in one message on the next event-loop turn. */
  private outbox: Array<() => ShadowCopyMessage | undefined> = [];
  private posting?: NodeJS.Immediate;
  /** Counters are comparable only within one epoch (a new front starts from zero). */
  readonly epoch = randomUUID();
  private authorize: (header: string | undefined) => boolean | Promise<boolean> = () => true;
  private authMode: FrontAuth['mode'] = 'none';
  port = 0;

  readonly limits: FrontLimits;

  readonly mirrorBounds: MirrorBounds;

  constructor(
    readonly serviceName: string,
    limits: Partial<FrontLimits> = {},
    mirrorBounds: Partial<MirrorBounds> = {},
  ) {
    this.mirrorBounds = { ...DEFAULT_MIRROR_BOUNDS, ...mirrorBounds };
    const maxBodyBytes = limits.maxBodyBytes ?? DEFAULT_FRONT_LIMITS.maxBodyBytes;
    if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new Error(`maxBodyBytes must be a positive integer; got ${maxBodyBytes}`);
    this.limits = { ...resolveHttpLimits(limits), maxBodyBytes };
  }

  /** The public base URL: `https://<ssl_cname or 127.0.0.1>:<port>` with TLS, else `http://127.0.0.1:<port>`. */
  get url(): string {
    return this.tls ? `https://${this.tls.cname ?? '127.0.0.1'}:${this.port}` : `http://127.0.0.1:${this.port}`;
  }

  /** Whether the front serves HTTPS. */
  get secure(): boolean {
    return !!this.tls;
  }

  /**
   * Serves HTTPS with `tls` (or plain HTTP without). A new certificate for a front that already speaks TLS takes
   * effect for new connections at once (the listener's secure context is replaced); turning TLS on or off restarts
   * the listener on the same port (open connections are closed).
   */
  async setTls(tls: FrontTls | undefined): Promise<void> {
    const before = this.tls;
    this.tls = tls;
    const server = this.server;
    if (!server) return;
    if (before && tls && server instanceof https.Server) {
      if (before.cert !== tls.cert || before.key !== tls.key) server.setSecureContext({ cert: tls.cert, key: tls.key });
      return;
    }
    if (!before && !tls) return;
    const port = this.port;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.server = undefined;
    await this.listen(port, this.host);
  }

  get activeSlot(): string | undefined {
    return this.active?.name;
  }

  /** The registered slots. */
  get slotNames(): string[] {
    return [...this.slots.keys()];
  }

  /** Set by the owner (ACI front: the admin routes); see `FrontIntercept`. */
  intercept?: FrontIntercept;

  /**
   * Listens on `port` (0 = any free port; a taken preferred port falls back to a free one) and `host` (loopback);
   * HTTPS after `setTls`.
   */
  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    this.host = host;
    const server = createBoundedServer(this.limits, (req, res) => this.handle(req, res), this.tls);
    const tryListen = (p: number) =>
      new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        server.once('error', onError);
        server.listen(p, host, () => {
          server.off('error', onError);
          resolve();
        });
      });
    try {
      await tryListen(port);
    } catch (e) {
      if (port === 0 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      await tryListen(0);
    }
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  /** Sets what the front checks: the service's current keys, tokens of the service, or nothing (open). */
  setAuth(auth: FrontAuth): void {
    this.authMode = auth.mode;
    this.authorize = auth.mode === 'keys' ? makeAuthorizer(auth.keys) : auth.mode === 'token' ? makeTokenVerifier(auth.serviceName, auth.secret) : () => true;
  }

  /** What the front checks now (`none`, `keys` or `token`): the controller checks it before sending traffic. */
  get auth(): FrontAuth['mode'] {
    return this.authMode;
  }

  addSlot(slot: FrontSlot): void {
    const existing = this.slots.get(slot.name);
    if (existing) {
      existing.url = slot.url;
      existing.target = new URL(slot.url);
      existing.key = slot.key;
      return;
    }
    this.slots.set(slot.name, {
      ...slot,
      target: new URL(slot.url),
      agent: new http.Agent({ keepAlive: true, maxSockets: 256 }),
      inflight: 0,
      idleWaiters: [],
    });
  }

  /** Routes new requests to `slot` (must have been added); clears any split and mirror (a blue/green switch). */
  switchTo(slot: string): void {
    const s = this.slots.get(slot);
    if (!s) throw new Error(`slot ${slot} is not registered with the front of ${this.serviceName}`);
    this.active = s;
    this.split = undefined;
    this.mirror = undefined;
  }

  /**
   * Splits live traffic between registered slots (`{ blue: 90, green: 10 }`, percents summing to 100; a slot at 0
   * gets only pinned requests) and optionally copies `mirror.percent` of requests to a shadow slot. One assignment:
   * requests in flight finish where they are. `{}` clears the split (all traffic to the active slot).
   */
  setWeights(weights: Record<string, number>, mirror?: { slot: string; percent: number; tolerance: number }): void {
    const entries = Object.entries(weights);
    for (const [name, w] of entries) {
      if (!this.slots.has(name)) throw new Error(`slot ${name} is not registered with the front of ${this.serviceName}`);
      if (!Number.isFinite(w) || w < 0 || w > 100) throw new Error(`weight of ${name} must be 0–100; got ${w}`);
    }
    if (mirror && !this.slots.has(mirror.slot)) throw new Error(`slot ${mirror.slot} is not registered with the front of ${this.serviceName}`);
    const live = entries.filter(([, w]) => w > 0);
    if (entries.length && Math.round(live.reduce((t, [, w]) => t + w, 0)) !== 100) throw new Error(`weights must sum to 100; got ${JSON.stringify(weights)}`);
    this.split = live.length > 1 ? live.map(([name, w]) => ({ slot: this.slots.get(name)!, weight: w, current: 0 })) : undefined;
    if (live.length === 1) this.active = this.slots.get(live[0][0]);
    this.mirror = mirror && mirror.percent > 0 ? { ...mirror, acc: 0 } : undefined;
  }

  /** The weights in force (slot → percent); `{}` when all traffic goes to the active slot. */
  get weights(): Record<string, number> {
    return this.split ? Object.fromEntries(this.split.map((x) => [x.slot.name, x.weight])) : {};
  }

  /** Shadow copies not settled yet (gathering for a batch, or out to the shadow slot), all slots. */
  get pendingCopies(): number {
    let n = 0;
    for (const o of this.shadowInflight.values()) n += o.n;
    return n;
  }

  /** Cumulative per-slot figures since this front started (see shared/rollout/traffic.ts). */
  snapshot(): TrafficSnapshot {
    const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
    return {
      epoch: this.epoch,
      weights: this.weights,
      ...(this.active ? { serving: this.active.name } : {}),
      ...(this.mirror ? { mirror: { slot: this.mirror.slot, percent: this.mirror.percent } } : {}),
      slots: copy(Object.fromEntries(this.traffic)),
      ...(this.shadow.size ? { shadow: copy(Object.fromEntries(this.shadow)) } : {}),
    };
  }

  /** The slot of the next live request (smooth weighted round-robin over the split, else the active slot). */
  private pick(): SlotState | undefined {
    const split = this.split;
    if (!split) return this.active;
    let best: Split | undefined;
    for (const x of split) {
      x.current += x.weight;
      if (!best || x.current > best.current) best = x;
    }
    best!.current -= 100;
    return best!.slot;
  }

  private count(slot: string, status: number, ms: number): void {
    let t = this.traffic.get(slot);
    if (!t) this.traffic.set(slot, (t = emptySlotTraffic()));
    t.requests++;
    if (status >= 500) t.errors++;
    const b = String(latencyBucket(ms));
    t.latency[b] = (t.latency[b] ?? 0) + 1;
  }

  /**
   * Detaches a slot: no new requests reach it; resolves once its in-flight requests are done (bounded by
   * `timeoutMs`). If it was active, the service has no slot until the next switch (503).
   */
  async removeSlot(slot: string, timeoutMs = 30_000): Promise<void> {
    const s = this.slots.get(slot);
    if (!s) return;
    if (this.active === s) this.active = undefined;
    this.slots.delete(slot);
    if (this.split?.some((x) => x.slot === s)) {
      // The rest of the split takes all traffic (a rollback removes the new slot).
      const rest = this.split.filter((x) => x.slot !== s);
      this.split = undefined;
      if (rest.length && !this.active) this.active = rest[0].slot;
    }
    if (this.mirror?.slot === slot) this.mirror = undefined;
    if (s.inflight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        s.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    s.agent.destroy();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = process.hrtime.bigint();
    if (this.intercept?.(req, res)) return;
    // Every answer of the front carries a request id (401, 503, 502 included); a replica's own id replaces it.
    res.setHeader('x-ms-request-id', randomUUID());
    // The front's own paths (its admin routes when it has them) are never a slot's, however spelled.
    if (isFrontOwnPath(req.url ?? '/')) {
      sendError(res, 404, 'NotFound', `Paths under /.mdf/ are the service front's own; ${this.serviceName} has none here.`);
      dropBody(req);
      return;
    }
    if (!this.active && !this.split) {
      sendError(res, 503, 'ServiceUnavailable', `Service ${this.serviceName} has no active deployment; retry shortly.`, { 'retry-after': '1' });
      dropBody(req);
      return;
    }
    const pathOnly = (req.url ?? '/').split('?')[0];
    if (this.authMode === 'none' || isOpenPath(pathOnly)) {
      this.route(req, res, started);
      return;
    }
    const mode = this.authMode;
    const refuse = () => {
      const what = mode === 'token' ? 'a valid token of the service (GET /api/services/{name}/token)' : 'the primary or secondary key of the service';
      sendError(res, 401, 'Unauthorized', `Send "Authorization: Bearer <token>" with ${what}.`, { 'www-authenticate': 'Bearer' });
      dropBody(req);
    };
    const verdict = this.authorize(req.headers.authorization);
    if (verdict === true) this.route(req, res, started);
    else if (verdict === false) refuse();
    else verdict.then((ok) => (ok ? this.route(req, res, started) : refuse()), refuse);
  }

  /**
   * After auth: the pinned slot or the weighted pick, then the request goes on with the slot's own key (key auth) or
   * the caller's verified token (token auth).
   */
  private route(req: http.IncomingMessage, res: http.ServerResponse, started: bigint): void {
    const headers = { ...req.headers };
    // A pinned request (checked after the key) goes to the named slot, whatever its weight; it is not live traffic.
    const pinRaw = req.headers[PIN_HEADER];
    let s: SlotState | undefined;
    if (pinRaw !== undefined) {
      const pin = (Array.isArray(pinRaw) ? pinRaw[0] : pinRaw).trim().toLowerCase();
      s = this.slots.get(pin);
      if (!s || pin.length > 64) {
        const names = [...this.slots.keys()].join(', ');
        sendError(res, 404, 'DeploymentNotFound', `Service ${this.serviceName} has no deployment "${pin.slice(0, 64)}" (${PIN_HEADER}); it has: ${names || 'none'}.`);
        dropBody(req);
        return;
      }
    } else s = this.pick();
    if (!s) {
      sendError(res, 503, 'ServiceUnavailable', `Service ${this.serviceName} has no active deployment; retry shortly.`, { 'retry-after': '1' });
      dropBody(req);
      return;
    }
    if (this.authMode !== 'token') delete headers.authorization;
    delete headers[PIN_HEADER];
    if (pinRaw !== undefined) headers[PINNED_HEADER] = '1';
    else delete headers[PINNED_HEADER];
    if (s.key) headers.authorization = `Bearer ${s.key}`;
    headers.host = s.target.host;

    const slot = s;
    const live = pinRaw === undefined;
    const copy = live ? this.mirrorCopy(req, slot, this.authMode === 'token' ? headers.authorization : undefined) : undefined;
    slot.inflight++;
    forwardRequest(req, res, {
      target: slot.target,
      agent: slot.agent,
      headers,
      maxBodyBytes: this.limits.maxBodyBytes,
      onDone: () => {
        slot.inflight--;
        if (slot.inflight === 0) for (const w of slot.idleWaiters.splice(0)) w();
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        // Counted when answered (a client that went away before its answer is not the slot's doing). An answer
        // still flushing to the client (large, or a slow reader) is counted once it is out ('finish'), not dropped.
        const record = () => {
          if (live && res.writableFinished) this.count(slot.name, res.statusCode, ms);
          copy?.primaryDone(res.writableFinished ? res.statusCode : 0, ms);
        };
        if (res.writableFinished || res.destroyed || !res.writableEnded) return record();
        let recorded = false;
        const once = () => {
          if (recorded) return;
          recorded = true;
          record();
        };
        res.once('finish', once);
        res.once('close', once);
      },
      onUnreachable: (r, e) => sendError(r, 502, 'SlotUnreachable', `The deployment of ${this.serviceName} did not answer: ${e.message}`),
      ...(copy ? { onResponse: (up: http.IncomingMessage) => copy.primaryBody(up) } : {}),
    });
  }

  /**
   * Shadow traffic: decides whether this request is copied to the mirror slot and, if so, keeps the body's chunks
   * (references, read alongside the forward, never instead of it) and the serving slot's answer. Everything else
   * happens once the client has its answer, and off the front's event loop: the copy (body and serving answer in
   * buffers of their own) is handed to the shadow thread on the next turn, with the other copies of that turn, in one
   * message (`post`); the thread sends it to the shadow slot (in a batch when it can travel in one, through its own
   * connections, at most MAX_SHADOW_SOCKETS, so copies never take the slot's sockets), compares the answers and sends
   * back the counts (`settle`).
   */
  private mirrorCopy(
    req: http.IncomingMessage,
    serving: SlotState,
    auth: string | undefined,
  ): { primaryBody: (up: http.IncomingMessage) => void; primaryDone: (status: number, ms: number) => void } | undefined {
    const m = this.mirror;
    if (!m || req.method !== 'POST' || serving.name === m.slot) return undefined;
    m.acc += m.percent;
    if (m.acc < 100) return undefined;
    m.acc -= 100;
    const target = this.slots.get(m.slot);
    if (!target) return undefined;
    let st = this.shadow.get(m.slot);
    if (!st) this.shadow.set(m.slot, (st = emptyShadowTraffic()));
    const stats = st;
    let inflight = this.shadowInflight.get(m.slot);
    if (!inflight) this.shadowInflight.set(m.slot, (inflight = { n: 0, bytes: 0 }));
    const out = inflight;
    if (out.n >= MAX_SHADOW_INFLIGHT) {
      stats.skipped++;
      return undefined;
    }
    stats.mirrored++;
    out.n++;
    const { slot: slotName, tolerance } = m;
    const heldBytes = this.mirrorBounds.heldBytes;
    // Bytes this copy holds (its request body, the serving answer) against the slot's `heldBytes`, released once settled.
    let held = 0;
    const hold = (n: number) => {
      if (out.bytes + n > heldBytes) return false;
      out.bytes += n;
      held += n;
      return true;
    };
    let reqChunks: Buffer[] | undefined = [];
    let reqBytes = 0;
    const onReqData = (c: Buffer) => {
      reqBytes += c.length;
      if (reqBytes <= MAX_COMPARE_BYTES && hold(c.length)) reqChunks?.push(c);
      else {
        reqChunks = undefined; // too large to copy, or over the bytes held for copies: released at once
        req.off('data', onReqData);
      }
    };
    req.on('data', onReqData);
    let primary: { status: number; chunks?: Buffer[]; bytes: number } | undefined;
    let primaryChunks: Buffer[] | undefined = [];
    let primaryBytes = 0;
    // Over: handed to the shadow thread, or released here (mirrored, not compared).
    let over = false;
    const release = () => {
      if (over) return;
      over = true;
      out.n--;
      out.bytes -= held;
    };
    const handOver = () => {
      if (over) return;
      const chunks = reqChunks;
      reqChunks = undefined;
      if (!chunks || !primary) return release();
      const p = primary;
      over = true;
      this.post(() => {
        const slot = this.slots.get(slotName) ?? target;
        return {
          slot: slotName,
          url: slot.url,
          ...(slot.key ? { key: slot.key } : {}),
          ...(auth ? { auth } : {}),
          path: req.url ?? '/',
          contentType: req.headers['content-type'] ?? 'application/json',
          tolerance,
          body: ownBytes(chunks, reqBytes),
          primary: { status: p.status, ...(p.chunks ? { body: ownBytes(p.chunks, p.bytes) } : {}) },
          held,
        };
      });
    };
    // A body that never completes: the copy is abandoned with the request.
    req.once('close', () => {
      if (!req.complete) {
        reqChunks = undefined;
        release();
      }
    });
    return {
      primaryBody: (up) => {
        up.on('data', (c: Buffer) => {
          if (!primaryChunks) return;
          primaryBytes += c.length;
          if (primaryBytes > MAX_COMPARE_BYTES || !hold(c.length)) primaryChunks = undefined;
          else primaryChunks.push(c);
        });
      },
      primaryDone: (status, ms) => {
        if (primary) return;
        const b = String(latencyBucket(ms));
        stats.primaryLatency[b] = (stats.primaryLatency[b] ?? 0) + 1;
        primary = { status, ...(primaryChunks ? { chunks: primaryChunks } : {}), bytes: primaryBytes };
        primaryChunks = undefined;
        // The client has its answer: only now does the copy go (once the body is complete).
        if (req.complete) handOver();
        else req.once('end', handOver);
      },
    };
  }

  /**
   * Queues a copy for the shadow thread (built on the next turn: `make` copies the bytes into buffers of their own, which
   * the message moves to the thread without another copy). Each copy is counted as posted to this thread until it
   * reports it settled.
   */
  private post(make: () => ShadowCopyMessage | undefined): void {
    this.outbox.push(make);
    this.posting ??= setImmediate(() => {
      this.posting = undefined;
      const makers = this.outbox;
      this.outbox = [];
      const thread = this.thread();
      const copies: ShadowCopyMessage[] = [];
      const transfer: ArrayBuffer[] = [];
      for (const f of makers) {
        const c = f();
        if (!c) continue;
        copies.push(c);
        transfer.push(c.body.buffer as ArrayBuffer);
        if (c.primary.body) transfer.push(c.primary.body.buffer as ArrayBuffer);
        const p = thread.posted.get(c.slot) ?? { n: 0, bytes: 0 };
        p.n++;
        p.bytes += c.held;
        thread.posted.set(c.slot, p);
      }
      if (copies.length) thread.worker.postMessage({ copies }, transfer);
    });
  }

  /** The shadow thread, started on first use; one that stopped (it should not) fails the copies it had and is replaced. */
  private thread(): { worker: Worker; posted: Map<string, { n: number; bytes: number }> } {
    if (this.shadowThread) return this.shadowThread;
    const worker = new Worker(shadowThreadPath(), { workerData: { gatherMs: this.mirrorBounds.gatherMs } satisfies ShadowThreadData });
    const thread = { worker, posted: new Map<string, { n: number; bytes: number }>() };
    this.shadowThread = thread;
    worker.unref();
    worker.on('message', (report: ShadowReport) => this.settle(thread, report));
    worker.on('error', () => undefined); // followed by 'exit'
    worker.on('exit', () => {
      if (this.shadowThread === thread) this.shadowThread = undefined;
      // Its copies are lost: each counts as a failed copy (an error, not compared) and leaves the in-flight counts.
      for (const [slot, p] of thread.posted) {
        if (p.n === 0) continue;
        const stats = this.shadow.get(slot);
        if (stats) stats.errors += p.n;
        const o = this.shadowInflight.get(slot);
        if (o) {
          o.n -= p.n;
          o.bytes -= p.bytes;
        }
      }
      thread.posted.clear();
    });
    return thread;
  }

  /** The shadow thread's counts of the copies it settled: into the shadow counters; the copies leave the in-flight counts. */
  private settle(thread: { posted: Map<string, { n: number; bytes: number }> }, report: ShadowReport): void {
    for (const [slot, d] of Object.entries(report)) {
      const p = thread.posted.get(slot);
      if (p) {
        p.n -= d.settled;
        p.bytes -= d.held;
      }
      const o = this.shadowInflight.get(slot);
      if (o) {
        o.n -= d.settled;
        o.bytes -= d.held;
      }
      const stats = this.shadow.get(slot);
      if (!stats) continue;
      // Counted together, so a snapshot never holds a comparison without its verdict.
      stats.compared += d.compared;
      stats.disagreed += d.disagreed;
      stats.errors += d.errors;
      for (const [b, n] of Object.entries(d.latency)) stats.latency[b] = (stats.latency[b] ?? 0) + n;
    }
  }

  async close(): Promise<void> {
    for (const s of this.slots.values()) s.agent.destroy();
    if (this.posting) clearImmediate(this.posting);
    this.posting = undefined;
    this.outbox = [];
    const thread = this.shadowThread;
    this.shadowThread = undefined;
    if (thread) await thread.worker.terminate();
    this.slots.clear();
    this.active = undefined;
    this.split = undefined;
    this.mirror = undefined;
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.server = undefined;
  }
}
