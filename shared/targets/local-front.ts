/**
 * The stable public endpoint of a local service: a small HTTP proxy on a fixed port in front of the service's
 * slots. `switchTo(slot)` changes the target atomically (one assignment): requests already in flight finish on
 * the old slot, new ones go to the new slot, so no request fails during a blue/green switch. The front also
 * enforces key auth with the service's *current* keys (regenerated keys work at once) and forwards to the slot
 * with the slot's own key.
 *
 * Connections are bounded (runtime/http-limits.ts: header and body time, keep-alive, open connections), bodies are
 * limited here (413 before anything reaches a slot), and a client that goes away aborts its request to the slot
 * (runtime/forward.ts), so abandoned requests never pile up behind the front.
 */
import { randomUUID } from 'crypto';
import * as http from 'http';
import type { AddressInfo } from 'net';
import {
  createBoundedServer,
  DEFAULT_HTTP_LIMITS,
  DEFAULT_MAX_BODY_BYTES,
  dropBody,
  forwardRequest,
  makeAuthorizer,
  makeTokenVerifier,
  resolveHttpLimits,
  type HttpLimits,
} from '../../runtime';
import { fromRuntime } from '../errors';
import type { ServiceKeys } from '../seams';

/** Paths that stay open without a key (liveness and schema), as in AML. */
const OPEN_PATHS = new Set(['/', '/swagger.json', '/openapi.json']);

export interface FrontSlot {
  name: string;
  /** Base URL of the slot's router (`http://127.0.0.1:N`). */
  url: string;
  /** Key the slot's replicas accept (absent: slot runs without auth). */
  key?: string;
}

/** What the front checks: nothing, the service's keys, or tokens signed with the service's token secret. */
export type FrontAuth = { mode: 'none' } | { mode: 'keys'; keys: ServiceKeys } | { mode: 'token'; serviceName: string; secret: string };

/** The front's bounds (the local target's `LOCAL_SCORING_*` settings). */
export interface FrontLimits extends HttpLimits {
  /** Request bodies over this are answered 413 `PayloadTooLarge` by the front. */
  maxBodyBytes: number;
}

export const DEFAULT_FRONT_LIMITS: FrontLimits = { ...DEFAULT_HTTP_LIMITS, maxBodyBytes: DEFAULT_MAX_BODY_BYTES };

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

export class LocalFront {
  private server?: http.Server;
  private readonly slots = new Map<string, SlotState>();
  private active?: SlotState;
  private authorize: (header: string | undefined) => boolean | Promise<boolean> = () => true;
  private authMode: FrontAuth['mode'] = 'none';
  port = 0;

  readonly limits: FrontLimits;

  constructor(
    readonly serviceName: string,
    limits: Partial<FrontLimits> = {},
  ) {
    const maxBodyBytes = limits.maxBodyBytes ?? DEFAULT_FRONT_LIMITS.maxBodyBytes;
    if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new Error(`maxBodyBytes must be a positive integer; got ${maxBodyBytes}`);
    this.limits = { ...fromRuntime(() => resolveHttpLimits(limits)), maxBodyBytes };
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get activeSlot(): string | undefined {
    return this.active?.name;
  }

  /** Listens on `port` (0 = any free port; a taken preferred port falls back to a free one). */
  async listen(port = 0): Promise<number> {
    const server = createBoundedServer(this.limits, (req, res) => this.handle(req, res));
    const tryListen = (p: number) =>
      new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        server.once('error', onError);
        server.listen(p, '127.0.0.1', () => {
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

  /** Routes new requests to `slot` (must have been added). */
  switchTo(slot: string): void {
    const s = this.slots.get(slot);
    if (!s) throw new Error(`slot ${slot} is not registered with the front of ${this.serviceName}`);
    this.active = s;
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
    // Every answer of the front carries a request id (401, 503, 502 included); a replica's own id replaces it.
    res.setHeader('x-ms-request-id', randomUUID());
    const s = this.active;
    if (!s) {
      sendError(res, 503, 'ServiceUnavailable', `Service ${this.serviceName} has no active deployment; retry shortly.`, { 'retry-after': '1' });
      dropBody(req);
      return;
    }
    const pathOnly = (req.url ?? '/').split('?')[0];
    if (this.authMode === 'none' || OPEN_PATHS.has(pathOnly)) {
      this.forward(req, res, s);
      return;
    }
    const mode = this.authMode;
    const refuse = () => {
      const what = mode === 'token' ? 'a valid token of the service (GET /api/services/{name}/token)' : 'the primary or secondary key of the service';
      sendError(res, 401, 'Unauthorized', `Send "Authorization: Bearer <token>" with ${what}.`, { 'www-authenticate': 'Bearer' });
      dropBody(req);
    };
    const verdict = this.authorize(req.headers.authorization);
    if (verdict === true) this.forward(req, res, s);
    else if (verdict === false) refuse();
    else verdict.then((ok) => (ok ? this.forward(req, res, s) : refuse()), refuse);
  }

  /** Passes a request on to the slot: with the slot's own key (key auth), or the caller's verified token (token auth). */
  private forward(req: http.IncomingMessage, res: http.ServerResponse, s: SlotState): void {
    const headers = { ...req.headers };
    if (this.authMode !== 'token') delete headers.authorization;
    if (s.key) headers.authorization = `Bearer ${s.key}`;
    headers.host = s.target.host;

    s.inflight++;
    forwardRequest(req, res, {
      target: s.target,
      agent: s.agent,
      headers,
      maxBodyBytes: this.limits.maxBodyBytes,
      onDone: () => {
        s.inflight--;
        if (s.inflight === 0) for (const w of s.idleWaiters.splice(0)) w();
      },
      onUnreachable: (r, e) => sendError(r, 502, 'SlotUnreachable', `The deployment of ${this.serviceName} did not answer: ${e.message}`),
    });
  }

  async close(): Promise<void> {
    for (const s of this.slots.values()) s.agent.destroy();
    this.slots.clear();
    this.active = undefined;
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.server = undefined;
  }
}
