/**
 * Replicas and autoscale with the AKS semantics described in the seed guide:
 * utilization = busy replicas / replicas; above `targetUtilization` replicas are added quickly (about 1 s),
 * below it they are removed slowly (about 60 s), always within [min, max].
 * `planReplicas` is the seed's sizing formula, also used to size AKS deployments.
 */
import * as http from 'node:http';
import { forwardRequest } from './forward';
import { createBoundedServer, dropBody, resolveHttpLimits, type HttpLimits } from './http-limits';
import { DEFAULT_MAX_BODY_BYTES } from './options';
import type { AddressInfo } from 'node:net';
import { RuntimeError } from './errors';
import { startScoringServer, type ScoringServer, type StartOptions } from './server';

export interface PlanInput {
  targetRps: number;
  /** Time to process one request, in seconds. */
  requestSeconds: number;
  /** 0 < u ≤ 1, or a percentage (70 = 70 %) as in `autoscale_target_utilization`. */
  targetUtilization: number;
  maxConcurrentPerReplica: number;
  minReplicas?: number;
  maxReplicas?: number;
}

function utilizationFraction(u: number): number {
  const f = u > 1 ? u / 100 : u;
  if (!(f > 0 && f <= 1)) throw new RuntimeError('InvalidUtilization', `Target utilization must be in (0, 1] or a percentage in (1, 100]; got ${u}`, 400);
  return f;
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}

/** `ceil(targetRps × requestSeconds / targetUtilization / maxConcurrentPerReplica)`, within [min, max]. */
export function planReplicas(p: PlanInput): number {
  if (!(p.targetRps >= 0) || !(p.requestSeconds >= 0) || !(p.maxConcurrentPerReplica >= 1)) {
    throw new RuntimeError('InvalidPlan', 'targetRps and requestSeconds must be ≥ 0 and maxConcurrentPerReplica ≥ 1', 400);
  }
  const concurrent = (p.targetRps * p.requestSeconds) / utilizationFraction(p.targetUtilization);
  // Round away float noise (20 × 10 / 0.7 = 285.71…; 7 × 1 / 0.7 must be 10, not 10.000000000000002).
  const replicas = Math.ceil(Number((concurrent / p.maxConcurrentPerReplica).toFixed(9)));
  return clamp(replicas, p.minReplicas ?? 1, p.maxReplicas ?? Number.MAX_SAFE_INTEGER);
}

/** Replicas needed so that `busy / replicas` ≤ target: `ceil(busy / target)` within [min, max]. */
export function desiredReplicas(busy: number, targetUtilization: number, min: number, max: number): number {
  return clamp(Math.ceil(Number((busy / utilizationFraction(targetUtilization)).toFixed(9))), min, max);
}

export interface ReplicaHandle {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  stop(): Promise<void>;
  /** The in-process server when the factory made one (startLocalReplicas). */
  server?: ScoringServer;
}

export type ReplicaFactory = (index: number) => Promise<ReplicaHandle>;

export interface ScaleEvent {
  event: 'scale_up' | 'scale_down';
  from: number;
  to: number;
  busy: number;
  utilization: number;
}

export interface AutoscaleOptions {
  factory: ReplicaFactory;
  minReplicas: number;
  maxReplicas: number;
  /** Start with this many (default minReplicas). With `autoscale: false` the count never changes. */
  initialReplicas?: number;
  autoscale?: boolean;
  /** Default 0.7 (AKS `autoscale_target_utilization` 70). */
  targetUtilization?: number;
  /** Evaluation period (AKS `autoscale_refresh_seconds`, default 1 s). */
  refreshMs?: number;
  /** How long the need for more replicas must last before adding them (default 0: next evaluation, ≈ 1 s). */
  scaleUpDelayMs?: number;
  /** How long the need for fewer replicas must last before removing them (default 60 s). */
  scaleDownDelayMs?: number;
  host?: string;
  port?: number;
  /** With `port`: a port another process holds falls back to a free one instead of failing. */
  portFallback?: boolean;
  onScale?: (e: ScaleEvent) => void;
  /** Connection bounds of the router's own server (defaults: runtime/http-limits.ts). */
  http?: Partial<HttpLimits>;
  /** Request bodies over this are answered 413 by the router itself (default: the runtime's 100 MB). */
  maxBodyBytes?: number;
}

interface Replica {
  handle: ReplicaHandle;
  target: URL;
  inflight: number;
  draining: boolean;
}

/** An HTTP router on one port in front of N replicas, least-busy routing, autoscaled. */
export class AutoscaleRouter {
  private readonly replicas: Replica[] = [];
  private server?: http.Server;
  private timer?: NodeJS.Timeout;
  /** Sockets to the replicas; an abandoned request gives its socket back at once (forward.ts aborts it). */
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private peakBusy = 0;
  private upSince?: number;
  private downSince?: number;
  private scaling = false;
  private stopped = false;
  private created = 0;
  readonly events: ScaleEvent[] = [];
  port = 0;

  private constructor(private readonly opts: AutoscaleOptions) {}

  static async start(opts: AutoscaleOptions): Promise<AutoscaleRouter> {
    if (opts.minReplicas < 1 || opts.maxReplicas < opts.minReplicas) {
      throw new RuntimeError('InvalidReplicaRange', `Need 1 ≤ minReplicas ≤ maxReplicas; got ${opts.minReplicas}..${opts.maxReplicas}`, 400);
    }
    utilizationFraction(opts.targetUtilization ?? 0.7);
    const router = new AutoscaleRouter({ ...opts });
    try {
      await router.addReplicas(clamp(opts.initialReplicas ?? opts.minReplicas, opts.minReplicas, opts.maxReplicas));
      await router.listen();
    } catch (e) {
      await router.stop();
      throw e;
    }
    if (opts.autoscale !== false) router.timer = setInterval(() => router.evaluate(), opts.refreshMs ?? 1000);
    return router;
  }

  get url(): string {
    return `http://${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  /** Replicas serving traffic (draining ones excluded). */
  get replicaCount(): number {
    return this.replicas.filter((r) => !r.draining).length;
  }

  get busyReplicas(): number {
    return this.replicas.filter((r) => !r.draining && r.inflight > 0).length;
  }

  get replicaUrls(): string[] {
    return this.replicas.filter((r) => !r.draining).map((r) => r.handle.url);
  }

  get replicaHandles(): ReplicaHandle[] {
    return this.replicas.filter((r) => !r.draining).map((r) => r.handle);
  }

  private async addReplicas(n: number): Promise<void> {
    const handles = await Promise.allSettled(Array.from({ length: n }, () => this.opts.factory(this.created++)));
    const failed = handles.find((h): h is PromiseRejectedResult => h.status === 'rejected');
    for (const h of handles) {
      if (h.status !== 'fulfilled') continue;
      if (this.stopped) await h.value.stop();
      else this.replicas.push({ handle: h.value, target: new URL(h.value.url), inflight: 0, draining: false });
    }
    if (failed) throw failed.reason;
  }

  private noteBusy(): void {
    this.peakBusy = Math.max(this.peakBusy, this.busyReplicas);
  }

  /** One autoscale decision (called every refreshMs; public for tests). */
  evaluate(now = Date.now()): void {
    if (this.scaling || this.stopped) return;
    const current = this.replicaCount;
    const busy = Math.max(this.peakBusy, this.busyReplicas);
    this.peakBusy = this.busyReplicas;
    const target = this.opts.targetUtilization ?? 0.7;
    const desired = desiredReplicas(busy, target, this.opts.minReplicas, this.opts.maxReplicas);
    const utilization = current ? busy / current : 0;
    if (desired > current) {
      this.downSince = undefined;
      this.upSince ??= now;
      if (now - this.upSince >= (this.opts.scaleUpDelayMs ?? 0)) {
        this.upSince = undefined;
        this.scaling = true;
        const e: ScaleEvent = { event: 'scale_up', from: current, to: desired, busy, utilization };
        this.addReplicas(desired - current).then(
          () => this.record({ ...e, to: this.replicaCount }),
          () => this.record({ ...e, to: this.replicaCount }),
        ).finally(() => { this.scaling = false; });
      }
    } else if (desired < current) {
      this.upSince = undefined;
      this.downSince ??= now;
      if (now - this.downSince >= (this.opts.scaleDownDelayMs ?? 60_000)) {
        this.downSince = undefined;
        const victims = this.replicas.filter((r) => !r.draining).sort((a, b) => a.inflight - b.inflight).slice(0, current - desired);
        for (const v of victims) {
          v.draining = true;
          this.retireWhenIdle(v);
        }
        this.record({ event: 'scale_down', from: current, to: this.replicaCount, busy, utilization });
      }
    } else {
      this.upSince = undefined;
      this.downSince = undefined;
    }
  }

  private record(e: ScaleEvent): void {
    this.events.push(e);
    this.opts.onScale?.(e);
  }

  private retireWhenIdle(r: Replica): void {
    if (r.inflight > 0) return; // retried when its last request ends
    const i = this.replicas.indexOf(r);
    if (i >= 0) this.replicas.splice(i, 1);
    void r.handle.stop();
  }

  private pick(): Replica | undefined {
    let best: Replica | undefined;
    for (const r of this.replicas) if (!r.draining && (!best || r.inflight < best.inflight)) best = r;
    return best;
  }

  private listen(): Promise<void> {
    const server = createBoundedServer(resolveHttpLimits(this.opts.http), (req, res) => {
      const replica = this.pick();
      if (!replica) {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify({ error: { code: 'NoReplica', message: 'No replica is running; retry shortly' } }));
        dropBody(req);
        return;
      }
      replica.inflight++;
      this.noteBusy();
      forwardRequest(req, res, {
        target: replica.target,
        agent: this.agent,
        maxBodyBytes: this.opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        onDone: () => {
          replica.inflight--;
          if (replica.draining) this.retireWhenIdle(replica);
        },
        onUnreachable: (r, e) => {
          r.writeHead(502, { 'content-type': 'application/json' });
          r.end(JSON.stringify({ error: { code: 'ReplicaUnreachable', message: `The replica did not answer: ${e.message}` } }));
        },
      });
    });
    this.server = server;
    const tryListen = (port: number) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, this.opts.host ?? '127.0.0.1', () => {
          server.off('error', reject);
          this.port = (server.address() as AddressInfo).port;
          resolve();
        });
      });
    const port = this.opts.port ?? 0;
    return tryListen(port).catch((e: NodeJS.ErrnoException) => {
      if (!this.opts.portFallback || port === 0 || e.code !== 'EADDRINUSE') throw e;
      return tryListen(0);
    });
  }

  /**
   * Resizes the pool in place (an update of the replica count or autoscale settings): the new bounds and settings
   * apply from the next evaluation; a fixed pool (`autoscale: false`) gets exactly `replicas` (default `minReplicas`),
   * an autoscaled one at least `minReplicas` and at most `maxReplicas`. Missing replicas are started (awaited: a
   * replica that fails to start fails the call, the others stay); extra ones leave the rotation at once and stop when
   * their requests are done. The replicas that stay are never restarted.
   */
  async resize(o: { minReplicas: number; maxReplicas: number; autoscale: boolean; replicas?: number; targetUtilization?: number; refreshMs?: number }): Promise<void> {
    if (this.stopped) throw new RuntimeError('RouterStopped', 'The router is stopped.', 409);
    if (o.minReplicas < 1 || o.maxReplicas < o.minReplicas) {
      throw new RuntimeError('InvalidReplicaRange', `Need 1 ≤ minReplicas ≤ maxReplicas; got ${o.minReplicas}..${o.maxReplicas}`, 400);
    }
    utilizationFraction(o.targetUtilization ?? this.opts.targetUtilization ?? 0.7);
    Object.assign(this.opts, { minReplicas: o.minReplicas, maxReplicas: o.maxReplicas, autoscale: o.autoscale }, o.targetUtilization !== undefined ? { targetUtilization: o.targetUtilization } : {}, o.refreshMs !== undefined ? { refreshMs: o.refreshMs } : {});
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.upSince = this.downSince = undefined;
    const want = clamp(o.autoscale ? this.replicaCount : (o.replicas ?? o.minReplicas), o.minReplicas, o.maxReplicas);
    const current = this.replicaCount;
    this.scaling = true;
    try {
      if (want > current) await this.addReplicas(want - current);
      else if (want < current) {
        for (const v of this.replicas.filter((r) => !r.draining).sort((a, b) => a.inflight - b.inflight).slice(0, current - want)) {
          v.draining = true;
          this.retireWhenIdle(v);
        }
      }
    } finally {
      this.scaling = false;
      if (o.autoscale && !this.stopped) this.timer = setInterval(() => this.evaluate(), this.opts.refreshMs ?? 1000);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.server) {
      await new Promise<void>((resolve) => {
        this.server!.close(() => resolve());
        this.server!.closeAllConnections();
      });
    }
    this.agent.destroy();
    await Promise.all(this.replicas.splice(0).map((r) => r.handle.stop()));
  }
}

/**
 * Local replicas of one scoring service: each replica is an in-process scoring server (its own worker pool)
 * on a free port, behind an AutoscaleRouter. A replica joins the rotation once its init() succeeded.
 */
export async function startLocalReplicas(
  server: StartOptions,
  autoscale: Omit<AutoscaleOptions, 'factory'>,
): Promise<AutoscaleRouter> {
  const factory: ReplicaFactory = async () => {
    const s = await startScoringServer({ ...server, port: 0 });
    const init = await s.initialized;
    if (!init.ok) {
      await s.stop();
      throw new RuntimeError('InitFailed', init.error ?? 'init() failed', 503);
    }
    return { url: s.url, stop: () => s.stop(), server: s };
  };
  const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, maxConnections } = server;
  return AutoscaleRouter.start({
    http: { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, maxConnections },
    maxBodyBytes: server.maxBodyBytes,
    ...autoscale,
    factory,
  });
}
