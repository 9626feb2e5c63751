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
import { makeTokenVerifier } from './auth-token';
import { forwardRequest } from './forward';
import { createBoundedServer, DEFAULT_HTTP_LIMITS, dropBody, resolveHttpLimits, type BoundedServer, type HttpLimits } from './http-limits';
import { BATCHABLE_PATH, MAX_BATCH_ITEMS, MAX_BATCH_TYPE_CHARS } from './mirror-batch';
import { isOpenOipPath } from './oip';
import { DEFAULT_MAX_BODY_BYTES } from './options';
import { PINNED_HEADER } from './metrics';
import { makeAuthorizer } from './server';
import type { TlsMaterial } from './tls';
import { LOST_COPY, MAX_COMPARE_BYTES, ShadowSender, type CopyResult, type ShadowTarget, type WireCopy } from './shadow-sender';
import { ShadowThread } from './shadow-thread';
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
/** Requests of shadow copies (batches, mirror-batch.ts, or a copy alone) out to one shadow slot at once at most; more copies wait for one. */
export const MIRROR_BATCHES_IN_FLIGHT = 2;
/**
 * Shadow copies in flight at most (sent and waiting for a batch): two full batches out and one gathering. Beyond, a
 * copy is skipped (mirroring never queues behind the client): only when the shadow answers slower than copies come.
 */
export const MAX_SHADOW_INFLIGHT = (MIRROR_BATCHES_IN_FLIGHT + 1) * MAX_BATCH_ITEMS;
export { MAX_COMPARE_BYTES, MAX_SHADOW_SOCKETS } from './shadow-sender';
/** Time per event-loop turn the deferred shadow work (sending copies, comparing answers) may take at most. */
const SHADOW_TURN_BUDGET_MS = 1;
/**
 * While the front is busy (`ServiceFront.busy`), a copy waits at most this long for a lull (a moment with no client
 * request in flight) to leave with the others gathered meanwhile; a full batch (MAX_BATCH_ITEMS) leaves at once. An
 * idle front sends each copy at once.
 */
export const MIRROR_LINGER_MS = 25;
/**
 * Concurrency (clients in flight, averaged over the last arrivals) from which a front counts as under heavy traffic:
 * a moment without a client request is then a gap between two of them, not a lull, and copies wait for a full batch
 * or the linger. Each small batch sent at such gaps cost a round trip, and the replica a wake-up.
 */
export const MIRROR_HEAVY_CONCURRENCY = 4;
/**
 * How shadow copies are held (`ServiceFront`'s third argument; defaults DEFAULT_MIRROR_BOUNDS):
 * - `lingerMs`: while the front is busy, how long a copy waits at most for a lull (MIRROR_LINGER_MS);
 * - `gatherMs`: 0 (the default) = the rule above (an idle front sends a copy at once); > 0 = every copy waits for a
 *   full batch (MAX_BATCH_ITEMS) or until it has waited this long, at any traffic: a few batches a second cost the
 *   shadow a fraction of the CPU and the front a fraction of the round trips of copies sent one by one. The ACI/AKS
 *   front process (front-cli.ts) and the local target's fronts gather (DEFAULT_FRONT_GATHER_MS); on the local target,
 *   where the new version shares the machine's cores, gathering cost the clients no more than copies sent at once
 *   (docs/benchmarks.md, "Gathering on the ACI/AKS front" and "The shadow work on a thread and in slices").
 * - `heldBytes`: request bodies and serving answers held for copies not yet compared, per shadow slot at most; a copy
 *   whose bytes would go over is released at once and counted as mirrored, not compared.
 * - `thread`: true (the default) = under light traffic, copies travel, and their answers are judged, on a thread of
 *   the front's at idle CPU priority (shadow-thread.ts), where the host lets a thread lower itself (Linux, util-linux's
 *   `chrt`); under heavy traffic, elsewhere, and with false, on the front's own event loop (deferred, within a budget
 *   per turn; `shadowTransport`).
 */
export interface MirrorBounds {
  lingerMs: number;
  gatherMs: number;
  heldBytes: number;
  thread: boolean;
}
/**
 * How long the shadow copies of a front serving real traffic gather for a batch (MirrorBounds.gatherMs): the ACI/AKS
 * front process (front-cli.ts, `MDF_FRONT_MIRROR_GATHER_MS`) and the local target's fronts. Gathered copies cost the
 * new version's replicas a fraction of the CPU (docs/benchmarks.md).
 */
export const DEFAULT_FRONT_GATHER_MS = 250;
export const DEFAULT_MIRROR_BOUNDS: MirrorBounds = { lingerMs: MIRROR_LINGER_MS, gatherMs: 0, heldBytes: 64 * 1024 * 1024, thread: true };
/**
 * Something about how the front runs that its operator should know, though no request failed (`ServiceFront.onNotice`;
 * the ACI/AKS front process logs it, the local target writes it to the slot's log):
 * - `ShadowCopiesOnLoop`: the front's shadow thread cannot run at idle CPU priority (or did not start, or ended too
 *   often), so shadow copies are sent and compared on the front's own event loop, next to the clients' requests.
 */
export interface FrontNotice {
  code: 'ShadowCopiesOnLoop';
  message: string;
  /** The shadow slot of the mirror in force (else of the latest mirror), if any. */
  slot?: string;
}
/** Bodies of one batch at most; a larger body is copied on its own. */
const MIRROR_BATCH_BODY_BYTES = 256 * 1024;

/** One shadow copy, ready to go (shadow-sender.ts), and what to do with its result. */
interface ShadowCopy extends WireCopy {
  done(result: CopyResult): void;
}

/** Counts one latency into a histogram of `latencyBucket`s. */
function countLatency(h: Record<string, number>, ms: number): void {
  const b = String(latencyBucket(ms));
  h[b] = (h[b] ?? 0) + 1;
}

/** A shadow copy's share of its slot's bounds (copies in flight, bytes held), from its decision until it is settled. */
class CopyHold {
  private held = 0;
  private finished = false;
  constructor(
    private readonly out: { n: number; bytes: number },
    private readonly limit: number,
  ) {
    out.n++;
  }

  /** Holds `n` more bytes; false (nothing held) when the slot's bound would be passed. */
  take(n: number): boolean {
    if (this.finished || this.out.bytes + n > this.limit) return false;
    this.out.bytes += n;
    this.held += n;
    return true;
  }

  /** Leaves the bounds, once (false: already left). */
  release(): boolean {
    if (this.finished) return false;
    this.finished = true;
    this.out.n--;
    this.out.bytes -= this.held;
    return true;
  }
}

/**
 * A copy on its way, and where its verdict is counted: an object of one shape, holding only what travels and what
 * counts, never the client's request. A copy waits for its batch (up to MirrorBounds.gatherMs) and for the shadow's
 * answer; a closure of the request's handling would keep the request's objects alive all that time.
 */
class PendingCopy implements ShadowCopy {
  constructor(
    readonly path: string,
    readonly contentType: string,
    readonly auth: string | undefined,
    readonly body: Buffer,
    readonly primary: WireCopy['primary'],
    readonly tolerance: number,
    private readonly hold: CopyHold,
    private readonly stats: ShadowTraffic,
  ) {}

  // Counted together (the verdict with its comparison), so a snapshot never holds a comparison without its verdict.
  done(r: CopyResult): void {
    if (!this.hold.release()) return;
    const stats = this.stats;
    if (r.lost) return void stats.skipped++;
    countLatency(stats.latency, r.ms);
    if (r.error) stats.errors++;
    if (r.compared) stats.compared++;
    if (r.disagreed) stats.disagreed++;
  }
}

/**
 * The copies for one shadow slot, sent in batches. While the front is idle (no client request in flight, light
 * traffic), a copy leaves at once (on the next event-loop turn, with the others of its turn); while it is busy, copies
 * wait for a lull, for a full batch, or MIRROR_LINGER_MS, then leave together — so an idle front never wakes for a
 * batch (a fixed window stalled the client's request at c1: docs/benchmarks.md, "Shadow copies in batches"). At most
 * MIRROR_BATCHES_IN_FLIGHT requests are out; more copies wait for one to come back (at most MAX_BATCH_ITEMS and
 * MIRROR_BATCH_BODY_BYTES per batch). Gathering (`gatherMs`), only a full batch or a due one leaves: the copies left
 * after a full batch wait for their own time.
 */
export class MirrorBatcher {
  private pending: ShadowCopy[] = [];
  /** With `gatherMs`: when each pending copy was added (performance.now()), in the same order. */
  private since: number[] = [];
  private out = 0;
  private scheduled?: NodeJS.Immediate;
  /** Whether the slot takes batches (unknown until it answered one); `false` (an older replica): copies go at once, one by one. */
  takesBatches?: boolean;

  private linger?: NodeJS.Timeout;

  constructor(
    private readonly send: (copies: ShadowCopy[], sent: () => void) => void,
    /** Whether the front is busy (`ServiceFront.busy`): copies then wait for a lull, a full batch or the linger. */
    private readonly busy: () => boolean,
    private readonly lingerMs: number,
    /** MirrorBounds.gatherMs: > 0 = copies wait for a full batch or this long, whatever the traffic. */
    private readonly gatherMs: number,
  ) {}

  add(copy: ShadowCopy): void {
    this.pending.push(copy);
    if (this.gatherMs > 0) this.since.push(performance.now());
    this.schedule();
  }

  /** The front has no client request in flight: copies waiting for a lull may leave. */
  lull(): void {
    if (this.pending.length) this.schedule();
  }

  /** Gathering: the oldest copy's wait left; else: an idle front sends at once, a busy one waits for a lull or the linger. */
  private waitLeft(): number {
    return this.gatherMs > 0 ? this.since[0] + this.gatherMs - performance.now() : this.busy() ? this.lingerMs : 0;
  }

  private schedule(): void {
    if (this.out >= MIRROR_BATCHES_IN_FLIGHT || !this.pending.length) return;
    const full = this.pending.length >= MAX_BATCH_ITEMS;
    if (full || this.waitLeft() <= 0) this.scheduled ??= setImmediate(() => this.flush());
    else if (!this.linger) {
      this.linger = setTimeout(() => {
        this.linger = undefined;
        this.flush();
      }, this.waitLeft());
      this.linger.unref();
    }
  }

  private flush(): void {
    if (this.linger) clearTimeout(this.linger);
    this.linger = undefined;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    while (this.out < MIRROR_BATCHES_IN_FLIGHT && this.pending.length) {
      let end = 0;
      let bytes = 0;
      while (end < this.pending.length && end < MAX_BATCH_ITEMS && (end === 0 || bytes + this.pending[end].body.length <= MIRROR_BATCH_BODY_BYTES)) bytes += this.pending[end++].body.length;
      // Gathering: the copies left after a full batch wait for their own time (or to fill a batch) rather than leave at
      // once as a small one: 40 % of the batches at c32 were such leftovers of 1-4 copies, each costing the shadow a
      // round trip (docs/benchmarks.md, "What a copy costs the front's loop").
      // (Due within 1 ms counts as due: a timer may fire that much before its time.)
      if (this.gatherMs > 0 && end === this.pending.length && end < MAX_BATCH_ITEMS && this.waitLeft() > 1) break;
      const copies = this.pending.splice(0, end);
      this.since.splice(0, end);
      this.out++;
      let back = false;
      this.send(copies, () => {
        if (back) return;
        back = true;
        this.out--;
        this.schedule();
      });
    }
    // Copies left waiting: their time is armed again.
    this.schedule();
  }

  clear(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.linger) clearTimeout(this.linger);
    this.linger = undefined;
    this.pending = [];
    this.since = [];
  }
}

/**
 * Shadow work that may wait (sending a copy, comparing two answers): run with setImmediate, i.e. after the turn's
 * pending I/O (clients' requests and answers go first), at most SHADOW_TURN_BUDGET_MS per turn (at least one item),
 * the rest on the next turn. Bounded: each item belongs to one of at most MAX_SHADOW_INFLIGHT copies.
 */
class ShadowWork {
  private queue: Array<() => void> = [];
  private head = 0;
  private scheduled?: NodeJS.Immediate;

  push(fn: () => void): void {
    this.queue.push(fn);
    this.scheduled ??= setImmediate(() => this.run());
  }

  clear(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.queue = [];
    this.head = 0;
  }

  private run(): void {
    this.scheduled = undefined;
    const end = performance.now() + SHADOW_TURN_BUDGET_MS;
    do this.queue[this.head++]();
    while (this.head < this.queue.length && performance.now() < end);
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else this.scheduled = setImmediate(() => this.run());
  }
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
  /** Shadow copies waiting to be sent to this slot in one batch (created with the first copy). */
  batcher?: MirrorBatcher;
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
  /** Shadow copies travel (and are judged) on the front's loop through this, or on the thread (`MirrorBounds.thread`). */
  private shadowSender?: ShadowSender;
  private shadowThread?: ShadowThread;
  private readonly shadowWork = new ShadowWork();
  /** Set by `close`: no shadow copy is sent any more. */
  private closed = false;
  /** Client requests being answered (all slots): shadow copies wait for a moment with none (`MirrorBatcher`). */
  private clientsInFlight = 0;
  /** Clients in flight as each request arrives, averaged over about the last 32 (an exponential moving average). */
  private recentConcurrency = 0;
  private readonly batchers = new Set<MirrorBatcher>();
  /** Counters are comparable only within one epoch (a new front starts from zero). */
  readonly epoch = randomUUID();
  private authorize: (header: string | undefined) => boolean | Promise<boolean> = () => true;
  private authMode: FrontAuth['mode'] = 'none';
  port = 0;

  readonly limits: FrontLimits;

  readonly mirrorBounds: MirrorBounds;

  /** Told what the operator should know (FrontNotice); never a secret. */
  onNotice?: (notice: FrontNotice) => void;
  /** The shadow slot of the latest mirror, and the one the latest ShadowCopiesOnLoop notice named. */
  private lastMirrorSlot?: string;
  private noticedSlot?: string;

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
    if (this.mirror) {
      this.lastMirrorSlot = this.mirror.slot;
      // A thread already found unusable: the new shadow slot is told too.
      const thread = this.shadowThread;
      if (thread?.usable === false && this.noticedSlot !== this.mirror.slot) this.shadowThreadUnusable(thread.why ?? 'the shadow thread is not used');
    }
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
    // Its copies still waiting leave with the linger; no lull needs to reach it any more.
    if (s.batcher) this.batchers.delete(s.batcher);
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
    this.clientsInFlight++;
    this.recentConcurrency += (this.clientsInFlight - this.recentConcurrency) / 32;
    forwardRequest(req, res, {
      target: slot.target,
      agent: slot.agent,
      headers,
      maxBodyBytes: this.limits.maxBodyBytes,
      onDone: () => {
        slot.inflight--;
        if (--this.clientsInFlight === 0) for (const b of this.batchers) b.lull();
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
   * (references, read alongside the forward, never instead of it). Everything else waits until the client has its
   * answer: the copy is sent once the serving slot's answer was passed on (and the body is complete), in the slot's
   * next batch when it can travel in one (`sendCopy`, `MirrorBatcher`), through the front's own agent for copies (at
   * most MAX_SHADOW_SOCKETS connections, so copies never take the slot's sockets and the shadow replica sees a
   * bounded concurrency), and both answers are compared later still, off the client's path: on the front's shadow
   * thread at idle CPU priority (shadow-thread.ts), else on this loop (`ShadowWork`: after pending I/O, within a
   * budget per event-loop turn; byte-equal answers skip the parse). This loop only counts the verdicts.
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
    const hold = new CopyHold(inflight, this.mirrorBounds.heldBytes);
    const work = this.shadowWork;
    const tolerance = m.tolerance;
    let reqChunks: Buffer[] | undefined = [];
    let reqBytes = 0;
    const onReqData = (c: Buffer) => {
      reqBytes += c.length;
      if (reqBytes <= MAX_COMPARE_BYTES && hold.take(c.length)) reqChunks?.push(c);
      else {
        reqChunks = undefined; // too large to copy, or over the bytes held for copies: released at once
        req.off('data', onReqData);
      }
    };
    req.on('data', onReqData);
    let primary: WireCopy['primary'] | undefined;
    let primaryChunks: Buffer[] | undefined = [];
    let primaryBytes = 0;
    let sent = false;
    const sendCopy = () => {
      if (sent) return;
      sent = true;
      const chunks = reqChunks;
      reqChunks = undefined;
      if (!chunks || !primary) return void hold.release();
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, reqBytes);
      this.sendCopy(target, new PendingCopy(req.url ?? '/', req.headers['content-type'] ?? 'application/json', auth, body, primary, tolerance, hold, stats));
    };
    // A body that never completes: the copy is abandoned with the request.
    req.once('close', () => {
      if (!req.complete && !sent) {
        reqChunks = undefined;
        hold.release();
      }
    });
    return {
      primaryBody: (up) => {
        up.on('data', (c: Buffer) => {
          if (!primaryChunks) return;
          primaryBytes += c.length;
          if (primaryBytes > MAX_COMPARE_BYTES || !hold.take(c.length)) primaryChunks = undefined;
          else primaryChunks.push(c);
        });
      },
      primaryDone: (status, ms) => {
        if (primary) return;
        countLatency(stats.primaryLatency, ms);
        const chunks = primaryChunks;
        primaryChunks = undefined;
        primary = { status, ...(chunks ? { body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks) } : {}) };
        // The client has its answer: only now is the copy sent (once the body is complete), as deferred work.
        if (req.complete) work.push(sendCopy);
        else req.once('end', () => work.push(sendCopy));
      },
    };
  }

  /**
   * Whether shadow copies should wait rather than leave at once: while client requests are in flight, and under heavy
   * traffic (MIRROR_HEAVY_CONCURRENCY) also in the gaps between them.
   */
  private get busy(): boolean {
    return this.clientsInFlight > 0 || this.heavy;
  }

  /** Under heavy traffic: on average MIRROR_HEAVY_CONCURRENCY or more clients in flight as requests arrive. */
  private get heavy(): boolean {
    return this.recentConcurrency >= MIRROR_HEAVY_CONCURRENCY;
  }

  /** Sends one shadow copy: in the slot's next batch when it can travel in one, else on its own. */
  private sendCopy(target: SlotState, copy: ShadowCopy): void {
    const batchable = target.batcher?.takesBatches !== false && BATCHABLE_PATH.test(copy.path) && copy.contentType.length <= MAX_BATCH_TYPE_CHARS && copy.body.length < MIRROR_BATCH_BODY_BYTES;
    if (!batchable) return this.sendBatch(target, [copy], () => undefined, true);
    if (!target.batcher) {
      target.batcher = new MirrorBatcher((copies, sent) => this.sendBatch(target, copies, sent), () => this.busy, this.mirrorBounds.lingerMs, this.mirrorBounds.gatherMs);
      this.batchers.add(target.batcher);
    }
    target.batcher.add(copy);
  }

  /**
   * Where the next batch travels and is judged: the thread at idle priority (`MirrorBounds.thread`), unless it said it
   * cannot run there, or the front is under heavy traffic (MIRROR_HEAVY_CONCURRENCY); else this loop, judging answers
   * as deferred work (`ShadowWork`). Under light traffic a batch sent and read on the loop lands on a client's request
   * in flight, which the thread avoids; under heavy traffic batches are full, so the loop's share per copy is small,
   * and handing them to a thread cost a saturated host more CPU than it saved (docs/benchmarks.md, "The front's shadow
   * work on a thread at idle priority").
   */
  private get shadowTransport(): ShadowSender | ShadowThread {
    if (this.shadowPath !== 'loop') return (this.shadowThread ??= new ShadowThread(undefined, (why) => this.shadowThreadUnusable(why)));
    return this.loopSender;
  }

  /**
   * Tells `onNotice` that shadow copies go on this loop, for `why`: when the thread says so, and again for each later
   * mirror to another slot (a new rollout's new version), so that each shadow slot's log has it.
   */
  private shadowThreadUnusable(why: string): void {
    const slot = this.mirror?.slot ?? this.lastMirrorSlot;
    this.noticedSlot = slot;
    const hint = /ENOENT|not Linux/.test(why) ? " (on Linux, util-linux's `chrt` lets the thread lower its own priority)" : '';
    this.onNotice?.({
      code: 'ShadowCopiesOnLoop',
      message: `shadow copies are sent and compared on the front's own event loop from now on, next to the clients' requests, not on its thread at idle CPU priority: ${why}${hint}`,
      ...(slot ? { slot } : {}),
    });
  }

  private get loopSender(): ShadowSender {
    return (this.shadowSender ??= new ShadowSender((fn) => this.shadowWork.push(fn)));
  }

  /** Where the next batch of copies goes (`loop`, or the thread and its priority; `thread` until it said which). */
  get shadowPath(): 'loop' | 'thread' | 'thread-idle' {
    if (!this.mirrorBounds.thread || this.shadowThread?.usable === false || this.heavy) return 'loop';
    return this.shadowThread?.priority === 'idle' ? 'thread-idle' : 'thread';
  }

  /**
   * Copies to the shadow slot (a batch, or one `alone`: shadow-sender.ts); `sent` once the batch's request is over.
   * Copies that go one by one (`alone`, or to a slot that takes no batches) go from this loop: the thread only sends
   * frames, whose latencies are the replica's own.
   */
  private sendBatch(target: SlotState, copies: ShadowCopy[], sent: () => void, alone = false): void {
    // A closed front sends nothing (the batcher of a slot removed before the close may still have copies waiting).
    if (this.closed) {
      sent();
      for (const c of copies) c.done(LOST_COPY);
      return;
    }
    const to: ShadowTarget = { hostname: target.target.hostname, port: Number(target.target.port) || 80, host: target.target.host, ...(target.key ? { key: target.key } : {}) };
    let over = false;
    const takesBatches = target.batcher?.takesBatches;
    const transport = alone || takesBatches === false ? this.loopSender : this.shadowTransport;
    transport.send(to, copies, {
      sent: (takesBatches) => {
        if (over) return;
        over = true;
        if (target.batcher && takesBatches !== undefined) target.batcher.takesBatches = takesBatches;
        sent();
      },
      done: (results) => {
        // Refused as a batch by the slot (the thread sends frames only): these copies go one by one from this loop.
        const refused = copies.filter((_, i) => results[i].refused);
        if (refused.length) this.sendBatch(target, refused, () => undefined, true);
        results.forEach((r, i) => r.refused || copies[i].done(r));
      },
    }, { alone, ...(takesBatches === undefined ? {} : { takesBatches }) });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const b of this.batchers) b.clear();
    this.batchers.clear();
    for (const s of this.slots.values()) s.agent.destroy();
    this.shadowSender?.close();
    this.shadowSender = undefined;
    const thread = this.shadowThread;
    this.shadowThread = undefined;
    await thread?.close();
    this.shadowWork.clear();
    // Copies still out (or waiting to be judged) are gone with the front.
    this.shadowInflight.clear();
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
