/**
 * The local Functions host: loads an unchanged Azure Functions Node (v4 model) app, serves its HTTP
 * triggers, runs its durable orchestrations and activities on Azure Storage, polls its blob and
 * Service Bus (→ Storage queue) triggers. It knows nothing about what the app does.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { randomUUID } from 'crypto';
import { coreState, installCoreModule, RegisteredFunction, RpcTypedData } from './functionsCore';
import { invokeFunction } from './invoke';
import { compileRoute, CompiledRoute, matchRoute } from './routes';
import { DurableEngine } from './durable/engine';
import type { ActivityOverride } from './durable/dispatch';
import { DurableStore } from './durable/store';
import { clientBindingData, errorBody, handleDurableApi, RPC_PREFIX, WEBHOOK_PREFIX } from './durable/api';
import { HostStorage, HostStorageSettings } from './storage';
import { createBoundedServer, DEFAULT_HTTP_LIMITS, messageLogger, resolveHttpLimits, type HttpLimits } from '../runtime';
import { BlobTriggerPoller, QueueTriggerPoller, TimerTriggerScheduler } from './triggers';

export interface HostOptions {
  /** Folder with the app's package.json (its `main` names the entry files) and host.json. */
  appRoot: string;
  /** The storage account for durable state and storage triggers (AzureWebJobsStorage): a connection string or identity settings. */
  storage: string | HostStorageSettings;
  /** HTTP port on 127.0.0.1; 0 picks a free one. Default 7071. */
  port?: number;
  /** App settings to put in process.env before the app loads (local.settings.json "Values"). */
  settings?: Record<string, string>;
  /** Poll interval of blob/queue triggers. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Longest poll interval while the triggers find nothing (idle back-off, local/triggers.ts). Default 4 × pollIntervalMs. */
  pollIdleMaxMs?: number;
  /** host.json overrides (merged over the file). */
  hostJson?: HostJson;
  /** Test-only: activities answered by the test instead of the app's functions, by activity name (local/testing.ts). */
  activityOverrides?: Readonly<Record<string, ActivityOverride>>;
  log?: (message: string) => void;
}

export interface HostJson {
  extensions?: {
    durableTask?: { hubName?: string; maxConcurrentActivityFunctions?: number; maxConcurrentOrchestratorFunctions?: number };
    http?: { routePrefix?: string };
  };
  [key: string]: unknown;
}

const MAX_BODY_BYTES = 100 * 1024 * 1024;

/** The host's connection bounds and the settings (local.settings.json "Values" or the environment) that change them. */
export const HOST_HTTP_SETTINGS: Record<keyof HttpLimits, string> = {
  headersTimeoutMs: 'LOCAL_HOST_HEADERS_TIMEOUT_MS',
  requestTimeoutMs: 'LOCAL_HOST_REQUEST_TIMEOUT_MS',
  keepAliveTimeoutMs: 'LOCAL_HOST_KEEP_ALIVE_TIMEOUT_MS',
  maxConnections: 'LOCAL_HOST_MAX_CONNECTIONS',
};

/** Uploads (multipart deployments) get 5 minutes to arrive, as with node:http's own default. */
const HOST_HTTP_DEFAULTS: HttpLimits = { ...DEFAULT_HTTP_LIMITS, requestTimeoutMs: 300_000 };

/** The host's connection bounds from its settings; a bad value stops the host with the setting's name. */
export function hostHttpLimits(settings: Record<string, string | undefined>): HttpLimits {
  const given: Partial<HttpLimits> = {};
  for (const [key, name] of Object.entries(HOST_HTTP_SETTINGS) as [keyof HttpLimits, string][]) {
    const raw = settings[name]?.trim();
    if (!raw) continue;
    if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new Error(`Setting ${name} must be a positive integer (milliseconds or a count); got "${raw}".`);
    given[key] = Number(raw);
  }
  return resolveHttpLimits(given, HOST_HTTP_DEFAULTS);
}

/** Expand the `main` field of package.json (globs with `*`, `**` and `{a,b}`) to files. */
export function resolveMain(appRoot: string, main: string): string[] {
  const expand = (p: string): string[] => {
    const m = /\{([^{}]*)\}/.exec(p);
    if (!m) return [p];
    return m[1].split(',').flatMap((alt) => expand(p.slice(0, m.index) + alt + p.slice(m.index + m[0].length)));
  };
  const files = new Set<string>();
  for (const pattern of expand(main)) {
    if (!/[*?]/.test(pattern)) {
      const abs = path.resolve(appRoot, pattern);
      files.add(fs.existsSync(abs) ? abs : require.resolve(abs));
      continue;
    }
    const parts = pattern.split('/');
    const baseParts: string[] = [];
    while (parts.length && !/[*?]/.test(parts[0])) baseParts.push(parts.shift()!);
    const base = path.resolve(appRoot, ...baseParts);
    const rx = globToRegex(parts.join('/'));
    const walk = (dir: string, rel: string) => {
      if (!fs.existsSync(dir)) return;
      for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const r = rel ? `${rel}/${entry.name}` : entry.name;
        if (entry.isDirectory()) walk(path.join(dir, entry.name), r);
        else if (rx.test(r)) files.add(path.join(dir, entry.name));
      }
    };
    walk(base, '');
  }
  return [...files];
}

/** `*` = within one folder, `**` = any depth, `?` = one character. */
export function globToRegex(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      if (glob[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

interface HttpFunction {
  fn: RegisteredFunction;
  route: CompiledRoute;
  methods: string[];
}

export class LocalHost {
  readonly hostId = 'local-host';
  private server?: http.Server;
  private engine?: DurableEngine;
  private store?: DurableStore;
  private blobPoller?: BlobTriggerPoller;
  private queuePoller?: QueueTriggerPoller;
  private timers?: TimerTriggerScheduler;
  private httpFunctions: HttpFunction[] = [];
  private routePrefix = 'api';
  private hubName = 'TestHubName';
  private port = 0;
  /** The app's HTTP proxy (HTTP streaming enabled): requests are forwarded there, bodies unbuffered. */
  private httpStreamUri?: string;
  private proxyAgent?: http.Agent;
  /** False until the app is loaded and the engine exists: requests meanwhile get 503 `Starting` (never a 404). */
  private ready = false;
  private readonly log: (message: string) => void;

  constructor(private readonly opts: HostOptions) {
    // JSON lines {"event":"host","level","time","message"} (human-readable on a terminal; LOG_LEVEL honoured).
    this.log = opts.log ?? messageLogger('host');
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get durable(): DurableEngine {
    if (!this.engine) throw new Error('The host is not started.');
    return this.engine;
  }

  get taskHub(): string {
    return this.hubName;
  }

  get functions(): RegisteredFunction[] {
    return [...coreState().functions.values()];
  }

  async start(): Promise<void> {
    const appRoot = path.resolve(this.opts.appRoot);
    const fileHostJson = fs.existsSync(path.join(appRoot, 'host.json')) ? JSON.parse(fs.readFileSync(path.join(appRoot, 'host.json'), 'utf8')) : {};
    const hostJson: HostJson = deepMerge(fileHostJson, this.opts.hostJson ?? {});
    const durableCfg = hostJson.extensions?.durableTask ?? {};
    this.hubName = durableCfg.hubName ?? 'TestHubName';
    this.routePrefix = (hostJson.extensions?.http?.routePrefix ?? 'api').replace(/^\/+|\/+$/g, '');

    // 1. Listen first (the port is needed for the durable client binding's URLs).
    const limits = hostHttpLimits({ ...process.env, ...(this.opts.settings ?? {}) });
    this.server = createBoundedServer(limits, (req, res) => void this.onRequest(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.opts.port ?? 7071, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;

    // 2. Settings, then the app itself, as the worker loads it.
    const storage = new HostStorage(typeof this.opts.storage === 'string' ? { kind: 'connectionString', connectionString: this.opts.storage } : this.opts.storage);
    if (storage.settings.kind === 'connectionString') process.env.AzureWebJobsStorage = storage.settings.connectionString;
    process.env.WEBSITE_HOSTNAME = `127.0.0.1:${this.port}`;
    process.env.FUNCTIONS_WORKER_RUNTIME = 'node';
    for (const [k, v] of Object.entries(this.opts.settings ?? {})) process.env[k] = v;
    installCoreModule();
    const state = coreState();
    if (state.functions.size === 0) {
      const pkg = JSON.parse(fs.readFileSync(path.join(appRoot, 'package.json'), 'utf8'));
      const entries = resolveMain(appRoot, pkg.main ?? 'index.js');
      if (!entries.length) throw new Error(`package.json "main" (${pkg.main}) matches no file under ${appRoot}. Run the build first.`);
      for (const file of entries) require(file);
    }
    // The worker asks the programming model for its capabilities once, after loading the app: with
    // `app.setup({ enableHttpStream: true })` the model starts its HTTP proxy and answers its address (HttpUri).
    if (!state.capabilities) state.capabilities = await programmingModelCapabilities(state);
    this.httpStreamUri = state.capabilities.HttpUri || undefined;
    if (this.httpStreamUri) this.proxyAgent = new http.Agent({ keepAlive: true });
    for (const hook of state.hooks.appStart) await hook({ hookData: {}, appHookData: {} });

    // Input bindings every trigger kind gets (the durable client binding for blob, queue and HTTP functions alike).
    const clientData: RpcTypedData = { string: JSON.stringify(clientBindingData(this.baseUrl, this.hubName)) };
    state.bindingData = (type) => (type === 'durableClient' || type === 'orchestrationClient' ? clientData : undefined);

    // 3. Durable state and engine.
    this.store = await DurableStore.open(storage, this.hubName);
    this.engine = new DurableEngine({
      store: this.store,
      maxConcurrentActivities: durableCfg.maxConcurrentActivityFunctions ?? 10,
      maxConcurrentOrchestrations: durableCfg.maxConcurrentOrchestratorFunctions ?? 10,
      ...(this.opts.activityOverrides ? { activityOverrides: this.opts.activityOverrides } : {}),
      log: this.log,
    });

    // 4. HTTP routes, most specific first.
    this.httpFunctions = this.functions
      .filter((f) => String(f.trigger.type) === 'httpTrigger')
      .map((fn) => ({
        fn,
        route: compileRoute(String(fn.trigger.route ?? fn.metadata.name)),
        methods: ((fn.trigger.methods as string[] | undefined) ?? []).map((m) => m.toUpperCase()),
      }))
      .sort((a, b) => b.route.specificity - a.route.specificity);

    // 5. Storage-polling triggers.
    const triggerOpts = {
      storage,
      hostId: this.hostId,
      pollIntervalMs: this.opts.pollIntervalMs ?? 1000,
      ...(this.opts.pollIdleMaxMs !== undefined ? { idleMaxMs: this.opts.pollIdleMaxMs } : {}),
      log: this.log,
    };
    this.blobPoller = new BlobTriggerPoller(this.functions.filter((f) => String(f.trigger.type) === 'blobTrigger'), triggerOpts);
    this.queuePoller = new QueueTriggerPoller(
      this.functions.filter((f) => ['serviceBusTrigger', 'queueTrigger'].includes(String(f.trigger.type))),
      triggerOpts,
    );
    this.timers = new TimerTriggerScheduler(this.functions.filter((f) => String(f.trigger.type) === 'timerTrigger'), { log: this.log });
    this.ready = true; // every route and the durable API can answer from here on
    const resumed = await this.engine.start();
    await this.blobPoller.start();
    await this.queuePoller.start();
    this.timers.start();
    this.log(`listening on ${this.baseUrl} with ${this.functions.length} functions; task hub ${this.hubName} in ${storage.describe()}; ${resumed} instance(s) resumed; HTTP ${this.httpStreamUri ? 'streamed to the app' : 'bodies buffered'}`);
  }

  async stop(): Promise<void> {
    await this.timers?.stop();
    await this.blobPoller?.stop();
    await this.queuePoller?.stop();
    await this.engine?.stop();
    for (const hook of coreState().hooks.appTerminate) await Promise.resolve(hook({ hookData: {}, appHookData: {} })).catch(() => undefined);
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.proxyAgent?.destroy();
  }

  /** Run a blob-trigger scan now (tests use it instead of waiting for the poll interval). */
  async pollBlobs(): Promise<void> {
    await this.blobPoller?.pollOnce();
  }

  // ------------------------------------------------------------------ HTTP

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!this.ready) {
      // The port is bound before the app is loaded: a "No function serves" 404 now would tell a client polling its run that the run is gone.
      res.writeHead(503, { 'Content-Type': 'application/json; charset=utf-8', 'Retry-After': '1', Connection: 'close' });
      res.end(JSON.stringify(errorBody('Starting', 'The host is starting; retry in a moment.')));
      req.resume();
      return;
    }
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, { ...(text ? { 'Content-Type': 'application/json; charset=utf-8' } : {}), ...headers });
      res.end(text);
    };
    // Bodies are read (bounded) only where they are used: the durable HTTP API and functions of apps that do not
    // stream. With HTTP streaming the request itself goes to the app.
    const bufferedBody = async (): Promise<Buffer | undefined> => {
      try {
        return await readBody(req, MAX_BODY_BYTES);
      } catch {
        send(413, errorBody('PayloadTooLarge', `Request bodies are limited to ${MAX_BODY_BYTES / 1024 / 1024} MB.`));
        req.resume();
        return undefined;
      }
    };
    const url = new URL(req.url ?? '/', this.baseUrl);
    const pathname = url.pathname;
    try {
      for (const prefix of [RPC_PREFIX, WEBHOOK_PREFIX]) {
        if (pathname.toLowerCase().startsWith(prefix)) {
          const body = await bufferedBody();
          if (!body) return;
          const r = await handleDurableApi(this.durable, this.hubName, {
            method: req.method ?? 'GET',
            path: pathname.slice(prefix.length),
            query: url.searchParams,
            body,
            origin: this.baseUrl,
            continuationToken: headerValue(req.headers['x-ms-continuation-token']),
          });
          send(r.status, r.body, r.headers);
          return;
        }
      }
      const prefix = this.routePrefix ? `/${this.routePrefix}/` : '/';
      if (pathname.toLowerCase().startsWith(prefix) || pathname.toLowerCase() === prefix.slice(0, -1)) {
        const rel = pathname.slice(prefix.length);
        let methodMismatch: string[] | undefined;
        for (const h of this.httpFunctions) {
          const params = matchRoute(h.route, rel);
          if (!params) continue;
          if (h.methods.length && !h.methods.includes((req.method ?? 'GET').toUpperCase())) {
            methodMismatch = [...(methodMismatch ?? []), ...h.methods];
            continue;
          }
          if (this.httpStreamUri) {
            await this.invokeHttpStream(h, req, res, url, params, this.httpStreamUri);
            return;
          }
          const body = await bufferedBody();
          if (!body) return;
          await this.invokeHttp(h, req, res, url, params, body);
          return;
        }
        if (methodMismatch) {
          send(405, errorBody('MethodNotAllowed', `${req.method} is not allowed here; use ${[...new Set(methodMismatch)].join(', ')}.`), { Allow: [...new Set(methodMismatch)].join(', ') });
          return;
        }
      }
      send(404, errorBody('NotFound', `No function serves ${req.method} ${pathname}.`));
    } catch (err) {
      const id = randomUUID();
      this.log(`request ${req.method} ${pathname} failed (${id}): ${(err as Error).stack ?? err}`);
      send(500, errorBody('InternalServerError', `The host failed to process the request; see the host log for invocation ${id}.`));
    }
  }

  private async invokeHttp(h: HttpFunction, req: http.IncomingMessage, res: http.ServerResponse, url: URL, params: Record<string, string>, body: Buffer): Promise<void> {
    const httpData = { ...rpcHttpData(req, url, params), body: body.length ? { bytes: body } : undefined };
    const result = await invokeFunction(h.fn, { trigger: { http: httpData } });
    if (result.error) {
      this.functionFailed(h, res, result.invocationId, result.error);
      return;
    }
    const out = result.response?.returnValue?.http as
      | { statusCode?: string; headers?: Record<string, string>; cookies?: RpcCookie[]; body?: RpcTypedData }
      | undefined;
    if (!out) {
      res.writeHead(204);
      res.end();
      return;
    }
    const responseHeaders: Record<string, string | string[]> = { ...(out.headers ?? {}) };
    if (out.cookies?.length) responseHeaders['Set-Cookie'] = out.cookies.map(setCookieHeader);
    const payload = out.body?.bytes ? Buffer.from(out.body.bytes) : out.body?.string ? Buffer.from(out.body.string) : Buffer.alloc(0);
    res.writeHead(Number(out.statusCode ?? 200), responseHeaders);
    res.end(payload);
  }

  private functionFailed(h: HttpFunction, res: http.ServerResponse, invocationId: string, error: Error): void {
    this.log(`function ${h.fn.metadata.name} failed (invocation ${invocationId}): ${error.stack ?? error.message}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(500, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ ...errorBody('FunctionFailed', `The function '${h.fn.metadata.name}' failed. Invocation id: ${invocationId}.`), invocationId }));
  }

  /**
   * HTTP streaming, as the Functions host does it for a worker that answered `HttpUri`: the invocation goes over
   * "RPC" (route parameters and headers in the trigger metadata, no body), and the raw request — body unread — is
   * forwarded to the app's proxy with the `x-ms-invocation-id` header that pairs the two; the app answers on that
   * proxy connection, and the answer is relayed as it arrives. Nothing is buffered here.
   */
  private async invokeHttpStream(h: HttpFunction, req: http.IncomingMessage, res: http.ServerResponse, url: URL, params: Record<string, string>, proxyUri: string): Promise<void> {
    const invocationId = randomUUID();
    const httpData = rpcHttpData(req, url, params);
    const triggerMetadata: Record<string, RpcTypedData> = {
      Headers: { json: JSON.stringify(httpData.headers) },
      Query: { json: JSON.stringify(httpData.query) },
    };
    for (const [k, v] of Object.entries(params)) triggerMetadata[k] = { string: v };

    const forwardHeaders: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) forwardHeaders[k] = v;
    // A chunked body stays chunked upstream: node:http sends the body of a GET, DELETE or OPTIONS without any framing
    // by default, and the app's proxy would read it as the next request on the connection (request smuggling).
    if (req.headers['transfer-encoding'] !== undefined) forwardHeaders['transfer-encoding'] = 'chunked';
    forwardHeaders['x-ms-invocation-id'] = invocationId;
    forwardHeaders['x-forwarded-host'] = url.host;
    forwardHeaders['x-forwarded-proto'] = url.protocol.replace(/:$/, '');
    const upstream = http.request(new URL(req.url ?? '/', proxyUri), { method: req.method ?? 'GET', headers: forwardHeaders, agent: this.proxyAgent });
    const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
      upstream.once('response', resolve);
      upstream.once('error', reject);
    });
    answered.catch(() => undefined); // observed below; the request may end before it is awaited
    upstream.on('error', () => undefined); // every failure is handled through the promises here
    const stopForwarding = () => {
      req.unpipe(upstream);
      upstream.destroy();
      // The client may still be sending a body nobody reads: drain it (the server's timeouts bound a slow sender).
      if (!req.readableEnded) req.resume();
    };
    req.pipe(upstream);
    // A client that goes away mid-body: the app's body stream fails (and its handler cleans up).
    req.once('close', () => {
      if (!req.readableEnded) upstream.destroy();
    });

    // The invocation waits for the proxied request: if that request cannot be delivered, answer now.
    const invocationDone = invokeFunction(h.fn, { trigger: { http: httpData }, triggerMetadata, invocationId });
    const undeliverable = new Promise<Error>((resolve) => upstream.once('error', resolve));
    const first = await Promise.race([invocationDone, undeliverable.then((err) => ({ undeliverable: err }))]);
    if ('undeliverable' in first) {
      stopForwarding();
      if (req.destroyed && !req.readableEnded) {
        this.log(`${req.method} ${url.pathname}: the client closed the connection before its request body ended (invocation ${invocationId})`);
        return;
      }
      this.functionFailed(h, res, invocationId, new Error(`the request could not be forwarded to the app's HTTP proxy: ${first.undeliverable.message}`));
      return;
    }
    const invocation = first;
    if (invocation.error) {
      stopForwarding();
      this.functionFailed(h, res, invocation.invocationId, invocation.error);
      return;
    }
    if (invocation.returned === undefined || invocation.returned === null) {
      // No response object: the app sent nothing over the proxy.
      stopForwarding();
      res.writeHead(204);
      res.end();
      return;
    }
    let proxied: http.IncomingMessage;
    try {
      proxied = await answered;
    } catch (err) {
      stopForwarding();
      this.functionFailed(h, res, invocationId, new Error(`the app's HTTP proxy did not answer: ${(err as Error).message}`));
      return;
    }
    const responseHeaders: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(proxied.headers)) if (v !== undefined && !HOP_BY_HOP.has(k) && k !== 'x-ms-invocation-id') responseHeaders[k] = v;
    res.writeHead(proxied.statusCode ?? 200, responseHeaders);
    await new Promise<void>((resolve) => {
      proxied.pipe(res);
      res.once('finish', resolve);
      res.once('close', resolve);
      proxied.once('error', () => {
        res.destroy();
        resolve();
      });
    });
    if (!req.readableEnded) stopForwarding();
  }
}

/** Headers that describe one connection, never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** The RPC http data of a request (method, url, headers, query, route parameters; no body). */
function rpcHttpData(req: http.IncomingMessage, url: URL, params: Record<string, string>) {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (query[k] = v));
  return { method: req.method ?? 'GET', url: url.href, headers, query, params, identities: [] as unknown[] };
}

/**
 * Asks the app's programming model for its capabilities. A model that enables HTTP streaming starts its proxy
 * server here (`@azure/functions` listens on every interface; the stand-in binds it to loopback instead, and
 * unrefs it: it must never keep a test process alive). The server is kept for the process, as the worker keeps it,
 * so a host restarted in the same process reuses it.
 */
async function programmingModelCapabilities(state: ReturnType<typeof coreState>): Promise<Record<string, string>> {
  const model = state.model;
  if (!model?.getCapabilities) return {};
  // The real module object (an `import * as` namespace is a copy under esModuleInterop).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const httpModule = require('http') as typeof http;
  const original = httpModule.createServer;
  let proxy: http.Server | undefined;
  httpModule.createServer = ((...args: Parameters<typeof http.createServer>) => {
    const server = original(...args);
    const listen = server.listen.bind(server);
    server.listen = ((...a: unknown[]) => (typeof a[0] === 'function' || a.length === 0 ? listen(0, '127.0.0.1', a[0] as () => void) : listen(...(a as [number])))) as typeof server.listen;
    proxy ??= server;
    return server;
  }) as typeof http.createServer;
  let caps: Record<string, string>;
  try {
    caps = (await model.getCapabilities({})) ?? {};
  } finally {
    httpModule.createServer = original;
  }
  if (proxy) {
    proxy.unref();
    state.httpProxyServer = proxy;
  }
  if (caps.HttpUri) {
    const port = new URL(caps.HttpUri).port;
    caps = { ...caps, HttpUri: `http://127.0.0.1:${port}/` };
  }
  return caps;
}
/** A cookie as `@azure/functions` sends it (RPC form: nullable fields are `{ value }` wrappers). */
interface RpcCookie {
  name: string;
  value: string;
  domain?: { value?: string } | null;
  path?: { value?: string } | null;
  expires?: { value?: { seconds?: number | string } } | null;
  secure?: { value?: boolean } | null;
  httpOnly?: { value?: boolean } | null;
  sameSite?: number | string | null;
  maxAge?: { value?: number } | null;
}

function setCookieHeader(c: RpcCookie): string {
  const parts = [`${c.name}=${c.value}`];
  if (c.domain?.value) parts.push(`Domain=${c.domain.value}`);
  if (c.path?.value) parts.push(`Path=${c.path.value}`);
  const seconds = c.expires?.value?.seconds;
  if (seconds !== undefined && seconds !== null) parts.push(`Expires=${new Date(Number(seconds) * 1000).toUTCString()}`);
  if (c.maxAge?.value !== undefined && c.maxAge.value !== null) parts.push(`Max-Age=${c.maxAge.value}`);
  if (c.secure?.value) parts.push('Secure');
  if (c.httpOnly?.value) parts.push('HttpOnly');
  // RPC values: 'none' (no attribute), 'lax', 'strict', 'explicitNone' (SameSite=None).
  const sameSite = ({ lax: 'Lax', strict: 'Strict', explicitNone: 'None' } as Record<string, string>)[String(c.sameSite ?? '')];
  if (sameSite) parts.push(`SameSite=${sameSite}`);
  return parts.join('; ');
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) return reject(new Error('too large'));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('too large'));
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function deepMerge<T>(a: T, b: unknown): T {
  if (!b || typeof b !== 'object' || Array.isArray(b)) return (b ?? a) as T;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b)) out[k] = v && typeof v === 'object' && !Array.isArray(v) ? deepMerge(out[k] ?? {}, v) : v;
  return out as T;
}
