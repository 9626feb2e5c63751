/**
 * The HTTP front of one replica (node:http): routes, key auth, request ids, limits, access log, metrics.
 * The entry script runs in the worker pool (pool.ts), an ONNX model on threads of this process (in-process.ts);
 * see runtime/README.md for the contract.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RuntimeError, toErrorInfo } from './errors';
import type { RuntimeKind } from './launch';
import { createBoundedServer, dropBody, type HttpLimits } from './http-limits';
import { loadTlsFiles } from './tls';
import { InProcessScorer, startOnnxThreads } from './in-process';
import { onnxThreads, workerLaunch } from './launch';
import { PINNED_HEADER, RuntimeMetrics } from './metrics';
import { resolveOptions, type ServerOptions, type ServerOptionsInput } from './options';
import { WorkerPool, type Scorer } from './pool';
import { keyAuth } from './auth-keys';
import { METRICS_KEY_HEADER } from './auth-metrics';
import { buildOpenApi3, buildSwagger2 } from './schema';
import { OipService } from './oip';
import { createLogger, type LogRecord } from './log';
import { setupObservability, type ObservabilityOverrides } from './observability';
import { decodeMirrorRequest, encodeMirrorResponse, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE } from './mirror-batch';

export type { LogRecord } from './log';

export interface StartOptions extends ServerOptionsInput, ObservabilityOverrides {
  /** Where log records go (default: one JSON line each on stdout). */
  log?: (record: LogRecord) => void;
  /** The entry script's own output lines (default: stderr, prefixed with the worker id). */
  onWorkerOutput?: (workerId: number, line: string) => void;
}

export interface ScoringServer {
  readonly port: number;
  readonly url: string;
  readonly kind: RuntimeKind;
  readonly options: ServerOptions;
  /** What runs the model: the worker pool, or the in-process ONNX scorer (`InProcessScorer`). */
  readonly pool: Scorer;
  readonly metrics: RuntimeMetrics;
  /**
   * Resolves when init() finished in a worker and the warm-up run (the schema's sample, see oip.ts) was answered
   * (`ok: true`), or init() failed everywhere (`ok: false`).
   */
  readonly initialized: Promise<{ ok: boolean; error?: string }>;
  /** `GET /v2/health/ready`: the model is loaded and has answered once. */
  readonly oipReady: boolean;
  /** Requests being handled or waiting (used by the autoscale router as "busy"). */
  readonly activeRequests: number;
  stop(): Promise<void>;
}

const CLIENT_ID = /^[\w.:@-]{1,128}$/;


function keyDigest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time Bearer check against both keys (both comparisons always run). */
export function makeAuthorizer(keys: ServerOptions['keys']): (header: string | undefined) => boolean {
  if (!keys) return () => true;
  const digests = [keyDigest(keys.primaryKey), keyDigest(keys.secondaryKey)];
  return (header) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    const presented = keyDigest(m ? m[1] : '');
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, presented) || ok;
    return ok && m !== null;
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length, ...extra });
  res.end(data);
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  sendJson(res, status, { error: { code, message } }, extra);
}

/** Reads the body up to `limit` bytes; rejects with 413 beyond it. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new RuntimeError('PayloadTooLarge', `The request body (${declared} bytes) is over the limit of ${limit} bytes`, 413));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new RuntimeError('PayloadTooLarge', `The request body is over the limit of ${limit} bytes`, 413));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => !over && resolve(Buffer.concat(chunks, size)));
    req.on('error', (e) => !over && reject(e));
  });
}

const ROUTES: Record<string, string> = {
  '/': 'health', '/score': 'score', '/batch': 'batch', '/metrics': 'metrics', '/swagger.json': 'swagger', '/openapi.json': 'swagger', [MIRROR_BATCH_PATH]: 'mirror',
};
/** Copies of one shadow batch (mirror-batch.ts) scored at the same time at most: with the front's 2 batches out, 8 copies at once, as over its 8 connections one by one. */
const MIRROR_CONCURRENCY = 4;
/** Metric label of a path (a closed set, so unknown paths cannot blow up the series count). */
const routeOf = (path: string): string => ROUTES[path] ?? (path === '/v2' || path.startsWith('/v2/') ? (path.endsWith('/infer') ? 'infer' : 'v2') : 'other');

/** The request target's path and query, as the WHATWG URL parser reads them (most requests: a bare route, parsed once). */
const BARE_ROUTES = new Map(Object.keys(ROUTES).map((p) => [p, { pathname: p, search: '' }]));
function parseTarget(target: string | undefined): { pathname: string; search: string } {
  const bare = BARE_ROUTES.get(target ?? '/');
  if (bare) return bare;
  const url = new URL(target ?? '/', 'http://localhost');
  return { pathname: url.pathname, search: url.search };
}

const HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'x-ms-request-id']);

/** The runtime's connection bounds (also what a router in front of its replicas uses). */
export function httpLimitsOf(o: Pick<ServerOptions, 'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'maxConnections'>): HttpLimits {
  return { headersTimeoutMs: o.headersTimeoutMs, requestTimeoutMs: o.requestTimeoutMs, keepAliveTimeoutMs: o.keepAliveTimeoutMs, maxConnections: o.maxConnections };
}

export async function startScoringServer(input: StartOptions): Promise<ScoringServer> {
  const { log: logOpt, onWorkerOutput, collectorSink, spanExporter, metricExporter, metricIntervalMs, ...raw } = input;
  const options = resolveOptions(raw);
  // HTTPS: the files are read and checked before anything starts (a bad pair fails here, with its code).
  const tls = options.tlsCertFile && options.tlsKeyFile ? loadTlsFiles(options.tlsCertFile, options.tlsKeyFile) : undefined;
  const log = logOpt ?? createLogger();
  // collect_model_data / enable_app_insights (observability.ts): undefined parts when off.
  const obs = setupObservability(options, log, { collectorSink, spanExporter, metricExporter, metricIntervalMs });
  const { collector, telemetry } = obs;
  const { kind, launch, onnxModel } = workerLaunch(options);
  const keys = keyAuth(options, log);
  const authorized = (header: string | undefined) => keys.check(header);

  let metrics: RuntimeMetrics;
  const onEvent = (e: Record<string, unknown>) => log({ event: 'worker', time: new Date().toISOString(), ...e });
  const onQueueWait = (s: number) => metrics.queueWait.observe({}, s);
  const onBatch = (runs: number[], fallbacks: number) => {
    for (const n of runs) metrics.batchSize.observe({}, n);
    if (fallbacks) metrics.batchFallbacks.inc({}, fallbacks);
  };
  const pool: Scorer = onnxModel && !options.onnxWorkerProcesses
    ? new InProcessScorer({
        load: () => startOnnxThreads(onnxModel, {
          count: options.workers,
          threads: onnxThreads(options),
          debug: options.debug,
          maxBatchSize: options.maxBatchSize,
          maxBatchDelayMs: options.maxBatchDelayMs,
          onBatch,
        }),
        capacity: options.workers * options.maxConcurrent,
        maxWaitMs: options.maxWaitMs,
        timeoutMs: options.timeoutMs,
        onEvent,
        onQueueWait,
      })
    : new WorkerPool({
        launch,
        workers: options.workers,
        maxConcurrent: options.maxConcurrent,
        maxWaitMs: options.maxWaitMs,
        timeoutMs: options.timeoutMs,
        restartInitialMs: options.restartInitialMs,
        restartMaxMs: options.restartMaxMs,
        onOutput: onWorkerOutput,
        onEvent,
        onQueueWait,
        onRestart: () => metrics.workerRestarts.inc(),
        onBatch,
        onCollect: obs.onCollect,
        // Python workers run their frames one at a time, in order: short runs are pipelined (pool.ts).
        pipeline: kind === 'python' ? options.pipelineDepth : 0,
        pipelineMaxRunMs: options.pipelineMaxRunMs,
      });
  metrics = new RuntimeMetrics(() => ({ workersReady: pool.readyCount, workersTotal: pool.size, queued: pool.queued }));
  obs.attachMetrics(metrics);
  let active = 0;

  const swaggerOpts = { serviceName: options.serviceName, authEnabled: keys.enabled, scheme: options.publicScheme ?? (tls ? 'https' : 'http') } as const;
  const oip = new OipService({ pool, kind, options, authorized, readBody, inflight: (d) => { metrics.inflight += d; }, log });

  async function route(req: http.IncomingMessage, res: http.ServerResponse, path: string, query: string, requestId: string, clientRequestId?: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (path === '/' && (method === 'GET' || method === 'HEAD')) {
      const phase = pool.phase;
      if (phase === 'ready') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(method === 'HEAD' ? undefined : 'Healthy');
      } else sendError(res, 503, phase === 'failed' ? 'InitFailed' : 'NotReady', pool.unavailableReason);
      return;
    }
    if ((path === '/swagger.json' || path === '/openapi.json') && method === 'GET') {
      const schema = pool.schema;
      if (!schema || options.mode === 'batch') {
        sendError(res, 404, 'SwaggerNotFound', pool.phase === 'ready'
          ? 'The entry script declares no schema: add @input_schema/@output_schema (Python) or export inputSample/outputSample (Node)'
          : `No schema yet: ${pool.unavailableReason}`);
      } else sendJson(res, 200, path === '/swagger.json' ? buildSwagger2(schema, swaggerOpts) : buildOpenApi3(schema, swaggerOpts));
      return;
    }
    if (path === '/v2' || path.startsWith('/v2/')) return oip.handle(req, res, path);
    const isScore = path === '/score';
    const isBatch = path === '/batch';
    const isMetrics = path === '/metrics';
    const isMirror = path === MIRROR_BATCH_PATH;
    if (!isScore && !isBatch && !isMetrics && !isMirror) {
      sendError(res, 404, 'NotFound', `No route ${method} ${path}; the service serves GET /, POST /score, POST /batch, GET /swagger.json, GET /metrics, /v2 (Open Inference Protocol)`);
      return;
    }
    // GET /metrics also accepts the metrics key (x-mdf-metrics-key, runtime/auth-metrics.ts): the AKS pod proxy drops Authorization.
    const metricsKeyOk = isMetrics && keys.enabled && keys.checkMetrics(req.headers[METRICS_KEY_HEADER]);
    let allowed = metricsKeyOk || authorized(req.headers.authorization);
    if (typeof allowed !== 'boolean') allowed = await allowed;
    if (!allowed) {
      sendError(res, 401, 'Unauthorized', 'Send a service key or token: Authorization: Bearer <primary or secondary key, or token>', { 'www-authenticate': 'Bearer' });
      return;
    }
    if (isMetrics) {
      if (method !== 'GET') {
        sendError(res, 405, 'MethodNotAllowed', 'Use GET /metrics', { allow: 'GET' });
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(metrics.render() + (collector ? collector.metricLines().join('\n') + '\n' : ''));
      return;
    }
    if ((isScore || isMirror) && options.mode === 'batch') {
      sendError(res, 404, 'NotFound', 'This service runs in batch mode: POST /batch with {"mini_batch": [...]}');
      return;
    }
    if (isMirror) {
      if (method !== 'POST') {
        sendError(res, 405, 'MethodNotAllowed', `Use POST ${MIRROR_BATCH_PATH}`, { allow: 'POST' });
        return;
      }
      return mirrorBatch(await readBody(req, options.maxBodyBytes), requestId, res);
    }
    if (method !== 'POST' && !(isScore && pool.rawHttp)) {
      sendError(res, 405, 'MethodNotAllowed', `Use POST ${path}`, { allow: 'POST' });
      return;
    }
    const body = await readBody(req, options.maxBodyBytes);
    metrics.inflight++;
    try {
      const reply = await score(method, query, isBatch, requestHeaders(req), requestId, body);
      const out: Record<string, string | number> = { 'content-type': reply.contentType, 'content-length': reply.body.length };
      for (const [k, v] of Object.entries(reply.headers)) if (!HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
      res.writeHead(reply.status, out);
      res.end(reply.body);
      // Recorded once the answer is on its way (the record is a copy of both bodies: they are not kept).
      if (collector && isScore) {
        collector.captureRequest({ requestId, clientRequestId, status: reply.status, input: body, inputType: req.headers['content-type'], output: reply.body, outputType: reply.contentType });
      }
    } finally {
      metrics.inflight--;
    }
  }

  /** One run of the entry script (`POST /score` or `/batch`): what `run()` answered (rejects with the pool's error). */
  function score(method: string, query: string, isBatch: boolean, headers: Record<string, string>, requestId: string, body: Buffer) {
    return pool.run({ kind: isBatch ? 'batch' : 'score', method, path: isBatch ? '/batch' : '/score', query, headers, requestId }, body).then((reply) => {
      oip.noteAnswer(reply.status);
      return reply;
    });
  }

  /**
   * `POST /.mdf/mirror` (a front's shadow copies, mirror-batch.ts): each copy is scored as its own `POST /score` —
   * the same scorer, counted in the metrics as a `score` request with its own status and duration, collected as one
   * — at most MIRROR_CONCURRENCY at a time; all answers go back in one frame, with each copy's scoring time.
   */
  async function mirrorBatch(frame: Buffer, requestId: string, res: http.ServerResponse): Promise<void> {
    const batch = decodeMirrorRequest(frame);
    const answers: Array<{ status: number; contentType: string; body: Buffer; ms: number }> = new Array(batch.items.length);
    let next = 0;
    const one = async (i: number) => {
      const item = batch.items[i];
      const itemId = `${requestId}.${i}`;
      const q = item.p.indexOf('?');
      const started = process.hrtime.bigint();
      let answer: { status: number; contentType: string; body: Buffer };
      metrics.inflight++;
      try {
        // Headers reach only a @rawhttp script, as for a direct request (the copy carries its content type).
        const headers: Record<string, string> = pool.rawHttp || pool.phase !== 'ready' ? { 'content-type': item.t } : {};
        answer = await score('POST', q < 0 ? '' : item.p.slice(q + 1), false, headers, itemId, item.body);
      } catch (e) {
        const info = toErrorInfo(e);
        answer = { status: e instanceof RuntimeError ? e.httpStatus : 500, contentType: 'application/json', body: Buffer.from(JSON.stringify({ error: info })) };
      } finally {
        metrics.inflight--;
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.recordRequest('score', answer.status, seconds);
      answers[i] = { ...answer, ms: seconds * 1000 };
      collector?.captureRequest({ requestId: itemId, status: answer.status, input: item.body, inputType: item.t, output: answer.body, outputType: answer.contentType });
    };
    const runner = async () => {
      while (next < batch.items.length) await one(next++);
    };
    await Promise.all(Array.from({ length: Math.min(MIRROR_CONCURRENCY, batch.items.length) }, runner));
    const answer = encodeMirrorResponse(answers, batch.answerBytes);
    res.writeHead(200, { 'content-type': MIRROR_BATCH_TYPE, 'content-length': answer.length });
    res.end(answer);
  }

  /**
   * The request's headers reach the script only through @rawhttp (AMLRequest / the raw request object): other
   * scripts get none (until the workers are ready, whether the script is raw is not known yet).
   */
  function requestHeaders(req: http.IncomingMessage): Record<string, string> {
    const headers: Record<string, string> = {};
    if (pool.rawHttp || pool.phase !== 'ready') {
      for (const [k, v] of Object.entries(req.headers)) {
        if (k === 'authorization' || v === undefined) continue;
        headers[k] = Array.isArray(v) ? v.join(', ') : v;
      }
    }
    return headers;
  }

  const server = createBoundedServer(httpLimitsOf(options), (req, res) => {
    const started = process.hrtime.bigint();
    const requestId = randomUUID();
    res.setHeader('x-ms-request-id', requestId);
    const clientId = req.headers['x-ms-client-request-id'];
    const echo = typeof clientId === 'string' && CLIENT_ID.test(clientId) ? clientId : undefined;
    if (echo) res.setHeader('x-ms-client-request-id', echo);
    const url = parseTarget(req.url);
    const routeName = routeOf(url.pathname);
    const span = telemetry?.startRequest({
      method: req.method ?? 'GET', route: routeName === 'other' ? 'other' : url.pathname, requestId, clientRequestId: echo,
      traceparent: typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined,
    });
    active++;
    res.on('close', () => {
      active--;
      if (span) telemetry!.endRequest(span, res.statusCode);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.recordRequest(routeName, res.statusCode, seconds, req.headers[PINNED_HEADER] === '1');
      if ([413, 503, 504].includes(res.statusCode)) metrics.rejected.inc({ status: String(res.statusCode) });
      if (options.accessLog) {
        log({
          event: 'access', time: new Date().toISOString(), requestId, ...(echo ? { clientRequestId: echo } : {}),
          method: req.method, path: url.pathname, status: res.statusCode, durationMs: Math.round(seconds * 1e6) / 1e3,
        });
      }
    });
    route(req, res, url.pathname, url.search.slice(1), requestId, echo).catch((e: unknown) => {
      const info = toErrorInfo(e);
      const status = e instanceof RuntimeError ? e.httpStatus : 500;
      if (res.headersSent) { res.destroy(); return; }
      const extra: Record<string, string> = status === 503 ? { 'retry-after': '1' } : {};
      sendError(res, status, info.code, info.message, extra);
      if (status === 413) dropBody(req);
    });
  }, tls);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new RuntimeError(e.code === 'EADDRINUSE' ? 'PortInUse' : 'ListenFailed', `Cannot listen on ${options.host}:${options.port}: ${e.message}; pick another --port (0 = any free port)`, 500)));
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  // Ready = init() done and the warm-up run answered (Open Inference Protocol readiness: loaded and answered once).
  const initialized = pool.start()
    .then(() => oip.warmUp())
    .then(() => (pool.phase === 'ready' ? { ok: true } : { ok: false, error: pool.unavailableReason }));

  let stopped: Promise<void> | undefined;
  return {
    port,
    url: `${tls ? 'https' : 'http'}://${options.host.includes(':') ? `[${options.host}]` : options.host === '0.0.0.0' ? '127.0.0.1' : options.host}:${port}`,
    kind,
    options,
    pool,
    metrics,
    initialized,
    get oipReady() { return oip.ready; },
    get activeRequests() { return active; },
    stop() {
      stopped ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        keys.close();
        await pool.stop();
        // After the pool: the records of the last requests are in; a clean stop writes them all.
        await obs.close();
      })();
      return stopped;
    },
  };
}
