/**
 * The scoring step of one mini-batch: read its inputs from blob storage, POST them to a pool node's batch entry
 * (`POST <node>/batch` with `{ "mini_batch": [...] }`, answered by `{ "results": [...], "count": n }` or a bare
 * JSON array — runtime/server.ts, runtime/python/amlworker.py), within run_invocation_timeout, and count the
 * outcome per input. Never throws for scoring failures: they come back as a `failed` result.
 *
 * What run(mini_batch) receives, as in Azure ML:
 * - `files`: a list of file paths (`filesAs: 'paths'`, the default: the files are downloaded to a temporary folder
 *   on this machine, which local pool workers share) or `{ name, content_base64 }` objects (`'content'`, for
 *   pools on other machines);
 * - `tabular`: the rows of the mini-batch's byte range, CSV rows as objects keyed by the header's columns,
 *   JSONL rows as parsed JSON (a Python script can `pandas.DataFrame(mini_batch)`).
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import type { BlobServiceClient } from '@azure/storage-blob';
import { isNotFound, redactSecrets, toErrorInfo } from '../errors';
import type { ErrorInfo } from '../seams';
import { isConditionFailed, mapLimit, readAll } from './blobs';
import type { BatchJob } from './job';
import type { RunLayout } from './layout';
import { BlobInput, inputChanged, MiniBatch } from './plan';
import { countReturn, describeInputs, failedResult, MiniBatchOutcome, MiniBatchResult, writeMiniBatchResult, writeResultGroup } from './results';
import { parseCsvHeader, parseRows } from './tabular';

export interface ScoreOptions {
  /** A pool node endpoint (`BatchPool.nodeUris[i]`); the step POSTs to `<nodeUri>/batch`. */
  nodeUri: string;
  /** run_invocation_timeout in milliseconds. */
  timeoutMs: number;
  /** Keep the returned elements as output lines (output_action append_row). */
  keepRows: boolean;
  /** 1-based attempt number, recorded in the result. */
  attempt?: number;
  /**
   * Client-side bound on the whole HTTP call (default `timeoutMs`). Set it above `timeoutMs` when the node enforces
   * run_invocation_timeout itself (the runtime's `--timeout-ms` → 504) and requests may queue for a free worker.
   */
  requestTimeoutMs?: number;
  /** Extra request headers (e.g. Authorization). Never logged or stored. */
  headers?: Record<string, string>;
  /** How `files` inputs reach run(): local file paths (default) or inline base64 content. */
  filesAs?: 'paths' | 'content';
  /** Parent folder for downloaded files (default: the OS temp folder). */
  tempDir?: string;
  /** Clock for timings (default: wall clock). */
  now?: () => Date;
}

/**
 * Mini-batches in flight per pool worker (orchestrations/batchChunk.ts keeps `workers × this` scheduled, refilled
 * in halves): the workers always have the next ones queued on their node while the orchestrator turns around
 * (bench:batch, docs/benchmarks.md: 8 left fewer idle gaps than 4 and much fewer than waves; 16 lets a refill hold
 * two calls of `MAX_MINI_BATCHES_PER_CALL` with 2 workers).
 */
export const IN_FLIGHT_PER_WORKER = 16;

/**
 * Most mini-batches per scoring activity call (`batchScoreMiniBatchGroup`): each call scores them concurrently, each
 * queued on its node, and writes their results as one blob — one activity invocation, one completion, two history
 * events, one result write and a share of an orchestrator episode per call instead of per mini-batch (bench:batch,
 * docs/benchmarks.md).
 */
export const MAX_MINI_BATCHES_PER_CALL = 8;

/**
 * Mini-batches per scoring call for a chunk's window: at most a quarter of it, so that a refill (half the window)
 * schedules at least two calls. The orchestrator waits for the first of the calls it just scheduled; with a single
 * call per refill that would be the newest, and the window would drain before the next refill.
 */
export function miniBatchesPerCall(window: number): number {
  return Math.max(1, Math.min(MAX_MINI_BATCHES_PER_CALL, Math.floor(window / 4)));
}

/**
 * How long a mini-batch may wait on its node for a free worker: everything queued ahead of it on that worker, each
 * at most run_invocation_timeout (the pool nodes' `--max-wait-ms`).
 */
export function nodeQueueWaitMs(runInvocationTimeoutMs: number): number {
  return Math.max(1000, IN_FLIGHT_PER_WORKER * runInvocationTimeoutMs);
}

/**
 * Client-side bound on one scoring call: its own run plus the wait behind the others queued on the node, plus a
 * margin for the transfer (the node enforces run_invocation_timeout itself, answering 504).
 */
export function scoringCallTimeoutMs(runInvocationTimeoutMs: number): number {
  return nodeQueueWaitMs(runInvocationTimeoutMs) + runInvocationTimeoutMs + 10_000;
}

/** The node for mini-batch `index`: round-robin over the pool's nodes. */
export function nodeFor(nodeUris: readonly string[], index: number): string {
  if (nodeUris.length === 0) throw new Error('the batch pool has no nodes');
  return nodeUris[index % nodeUris.length];
}

/**
 * The options for mini-batch `index` of a job on a pool: its node (round-robin), run_invocation_timeout, and
 * whether rows are kept (append_row). `extra` adds headers, filesAs, ...
 */
export function scoreOptionsFor(
  job: Pick<BatchJob, 'runInvocationTimeoutSeconds' | 'outputAction'>,
  nodeUris: readonly string[],
  index: number,
  attempt?: number,
  extra: Partial<ScoreOptions> = {},
): ScoreOptions {
  return {
    nodeUri: nodeFor(nodeUris, index),
    timeoutMs: Math.round(job.runInvocationTimeoutSeconds * 1000),
    keepRows: job.outputAction === 'append_row',
    ...(attempt !== undefined ? { attempt } : {}),
    ...extra,
  };
}

/** Scores one mini-batch and returns its full result (rows included for append_row). */
export async function scoreMiniBatch(
  service: Pick<BlobServiceClient, 'getContainerClient'>,
  mb: MiniBatch,
  opts: ScoreOptions,
): Promise<MiniBatchResult> {
  const now = opts.now ?? (() => new Date());
  const started = now();
  const base = { index: mb.index, itemCount: mb.itemCount, node: redactSecrets(opts.nodeUri), ...(opts.attempt !== undefined ? { attempt: opts.attempt } : {}) };
  const finish = (r: Omit<MiniBatchResult, 'index' | 'itemCount' | 'node' | 'attempt' | 'startedAt' | 'finishedAt' | 'durationMs'>): MiniBatchResult => {
    const finished = now();
    return { ...base, ...r, startedAt: started.toISOString(), finishedAt: finished.toISOString(), durationMs: finished.getTime() - started.getTime() };
  };
  const failed = (error: ErrorInfo, retryable: boolean) =>
    failedResult(mb, error, { startedAt: started.toISOString(), finishedAt: now().toISOString(), attempt: opts.attempt, node: base.node, retryable });

  if (mb.itemCount === 0) return finish({ status: 'succeeded', returned: 0, succeeded: 0, failed: 0, retryable: false, ...(opts.keepRows ? { rows: [] } : {}) });

  let input: { miniBatch: unknown[]; cleanup: () => void };
  try {
    input = await readInputs(service, mb, opts);
  } catch (e) {
    const info = toErrorInfo(e, 'InputReadFailed');
    return failed(info, !['InputChanged', 'InvalidTabularInput', 'InputMismatch'].includes(info.code));
  }

  try {
    const reply = await postBatch(opts, input.miniBatch);
    if ('error' in reply) return failed(reply.error, reply.retryable);
    return finish({ ...countReturn(mb, reply.elements, opts.keepRows), retryable: false });
  } finally {
    input.cleanup();
  }
}

/** Scores one mini-batch and writes its result blob (overwriting an earlier attempt); returns the compact outcome. */
export async function runMiniBatch(
  service: Pick<BlobServiceClient, 'getContainerClient'>,
  layout: RunLayout,
  mb: MiniBatch,
  opts: ScoreOptions,
): Promise<MiniBatchOutcome> {
  const result = await scoreMiniBatch(service, mb, opts);
  return writeMiniBatchResult(service.getContainerClient(layout.container), layout, result);
}

/**
 * Scores several mini-batches concurrently (each queued on its node) and writes their results as one blob
 * (`layout.resultGroup`, results/…a<attempt>r<run>.json); returns the compact outcomes in order. Scoring failures are
 * outcomes; only the write throws.
 */
export async function runMiniBatchGroup(
  service: Pick<BlobServiceClient, 'getContainerClient'>,
  layout: RunLayout,
  items: ReadonlyArray<{ mb: MiniBatch; opts: ScoreOptions; run: number }>,
): Promise<MiniBatchOutcome[]> {
  const results = await Promise.all(items.map((x) => scoreMiniBatch(service, x.mb, x.opts)));
  const keys = items.map((x) => ({ index: x.mb.index, attempt: x.opts.attempt ?? 1, run: x.run }));
  return writeResultGroup(service.getContainerClient(layout.container), layout, keys, results);
}

// ---------------------------------------------------------------- inputs

async function download(service: Pick<BlobServiceClient, 'getContainerClient'>, f: BlobInput, offset = 0, count?: number): Promise<Buffer> {
  let buf: Buffer;
  try {
    // One GET of exactly the range, read straight from the response (downloadToBuffer costs more CPU per call).
    const res = await service.getContainerClient(f.container).getBlobClient(f.blob).download(offset, count, { conditions: { ifMatch: f.etag } });
    buf = await readAll(res.readableStreamBody);
  } catch (e) {
    if (isConditionFailed(e) || isNotFound(e)) throw inputChanged(f);
    throw e;
  }
  if (count !== undefined && buf.length !== count) {
    throw Object.assign(new Error(`read ${buf.length} of ${count} bytes of ${f.container}/${f.blob}`), { code: 'InputReadFailed' });
  }
  return buf;
}

async function readInputs(
  service: Pick<BlobServiceClient, 'getContainerClient'>,
  mb: MiniBatch,
  opts: ScoreOptions,
): Promise<{ miniBatch: unknown[]; cleanup: () => void }> {
  if (mb.kind === 'tabular') {
    // The first range of a file follows its header: one read for both.
    const contiguous = mb.headerEnd > 0 && mb.start === mb.headerEnd;
    const [header, data] = contiguous
      ? await download(service, mb.file, 0, mb.end).then((b) => [b.subarray(0, mb.headerEnd), b.subarray(mb.headerEnd)] as const)
      : await Promise.all([
          mb.headerEnd > 0 ? download(service, mb.file, 0, mb.headerEnd) : Promise.resolve(null),
          download(service, mb.file, mb.start, mb.end - mb.start),
        ]);
    const rows = parseRows(data, mb.format, header ? parseCsvHeader(header) : null);
    if (rows.length !== mb.itemCount) {
      throw Object.assign(new Error(`expected ${mb.itemCount} rows in ${describeInputs(mb)[0]}, read ${rows.length}`), { code: 'InputMismatch' });
    }
    return { miniBatch: rows, cleanup: () => undefined };
  }

  const contents = await mapLimit(mb.files, 8, (f) => download(service, f, 0, f.size > 0 ? f.size : undefined));
  if ((opts.filesAs ?? 'paths') === 'content') {
    return { miniBatch: mb.files.map((f, i) => ({ name: f.blob, content_base64: contents[i].toString('base64') })), cleanup: () => undefined };
  }
  const dir = path.join(opts.tempDir ?? os.tmpdir(), `mdf-batch-${mb.index}-${randomBytes(4).toString('hex')}`);
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const paths = mb.files.map((f, i) => {
      // One folder per position keeps the original file name (scripts often use os.path.basename) without clashes.
      const p = path.join(dir, String(i), safeBaseName(f.blob));
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, contents[i]);
      return p;
    });
    return { miniBatch: paths, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

function safeBaseName(blob: string): string {
  const b = blob.split('/').pop() ?? '';
  return b === '' || b === '.' || b === '..' ? 'input' : b;
}

// ---------------------------------------------------------------- the HTTP call

type Reply = { elements: unknown[] } | { error: ErrorInfo; retryable: boolean };

/**
 * Keep-alive connections to the pool nodes, shared by every mini-batch of this process (a connection per call
 * costs a handshake and, through fetch, about twice the client CPU: bench:batch profile in docs/benchmarks.md).
 */
const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 256 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 256 }),
};

class CallTimeout extends Error {
  override readonly name = 'TimeoutError';
}

/** One POST with a JSON body over the keep-alive agents; the whole call (queueing on the node included) is bounded. */
function postJson(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; text: string }> {
  const once = () =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const u = new URL(url);
      const secure = u.protocol === 'https:';
      const req = (secure ? https : http).request(u, {
        method: 'POST',
        agent: secure ? agents.https : agents.http,
        headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      const timer = setTimeout(() => req.destroy(new CallTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        reject(Object.assign(e, { reusedSocket: req.reusedSocket }));
      };
      req.on('error', fail);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        });
      });
      req.end(body);
    });
  // A kept-alive connection the node closed while it sat idle fails at once, before the node saw the request:
  // send it again on a new connection (Node's documented pattern for keep-alive races).
  return once().catch((e: Error & { code?: string; reusedSocket?: boolean }) => {
    if (e.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) return once();
    throw e;
  });
}

async function postBatch(opts: ScoreOptions, miniBatch: unknown[]): Promise<Reply> {
  // Pool providers give either the node's base URI or its `/batch` endpoint (ACI); both work.
  const url = `${opts.nodeUri.replace(/\/+$/, '').replace(/\/batch$/, '')}/batch`;
  const seconds = opts.timeoutMs / 1000;
  let res: { status: number; ok: boolean };
  let text: string;
  try {
    const r = await postJson(url, JSON.stringify({ mini_batch: miniBatch }), opts.headers ?? {}, opts.requestTimeoutMs ?? opts.timeoutMs);
    res = { status: r.status, ok: r.status >= 200 && r.status < 300 };
    text = r.text;
  } catch (e) {
    if ((e as Error)?.name === 'TimeoutError') {
      return { error: { code: 'RunInvocationTimeout', message: `run() did not return within ${seconds} s (run_invocation_timeout)` }, retryable: true };
    }
    const err = e as NodeJS.ErrnoException;
    return {
      error: { code: 'WorkerUnreachable', message: `The batch node did not answer: ${redactSecrets(err?.code ?? err?.message ?? String(e))}` },
      retryable: true,
    };
  }

  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    // 504 = the node stopped a run() that outlived its --timeout-ms (run_invocation_timeout).
    const code = res.status === 504 ? 'RunInvocationTimeout' : typeof err?.code === 'string' ? err.code : 'RunFailed';
    const message =
      res.status === 504
        ? `run() did not return within ${seconds} s (run_invocation_timeout)`
        : typeof err?.message === 'string'
          ? err.message
          : `The batch node answered HTTP ${res.status}: ${text.slice(0, 200)}`;
    return { error: { code, message: redactSecrets(message) }, retryable: res.status >= 500 || res.status === 429 || res.status === 408 };
  }
  const elements = Array.isArray(body) ? body : Array.isArray((body as { results?: unknown })?.results) ? (body as { results: unknown[] }).results : null;
  if (!elements) {
    return {
      error: { code: 'InvalidBatchResponse', message: 'run(mini_batch) must return a list (one element per input); the batch node answered something else' },
      retryable: false,
    };
  }
  return { elements };
}
