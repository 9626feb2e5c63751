/**
 * Typed client of the management API (`/api/...`) — the one piece of client code the `mdf` CLI, the demo and
 * `bench:pipeline` share. It speaks HTTP only (`fetch`), sends the function key as `x-functions-key` when given,
 * and turns the API's error body `{ "error": { "code", "message" } }` into an `ApiError` with the same code and
 * message. It imports nothing from the app but types: it runs wherever the API is reachable.
 */
import type { BatchRunView } from '../shared/batch/run';
import type { ImageRecord } from '../shared/images/image-registry';
import type { ModelRecord } from '../shared/registry/models';
import type { ErrorInfo, ServiceKeys } from '../shared/seams';
import type { ServiceRecord } from '../shared/registry/services';
import type { RunStep, RunView } from '../shared/deploy/run-status';
import type { RunSummary } from '../shared/deploy/runs-list';
import type { IssuedToken } from '../runtime/auth-token';
import type { ServiceMetrics } from '../shared/scoring/metrics';

export type { IssuedToken, RunSummary, ServiceMetrics };
export type { BatchRunView, ErrorInfo, ImageRecord, ModelRecord, RunStep, RunView, ServiceKeys, ServiceRecord };

/** The API answered with an error (`status` ≥ 400): its `{ code, message }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** `METHOD /path` of the request. */
    readonly request: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A download was larger than the caller's bound (nothing kept). */
export class TooLarge extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TooLarge';
  }
}

/** The API could not be reached (connection refused, DNS, timeout): no answer at all. */
export class ConnectionError extends Error {
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConnectionError';
  }
}

export interface ClientOptions {
  /** The app's base URL (`http://127.0.0.1:7071`); `/api/...` is appended. */
  baseUrl: string;
  /** Function key, sent as `x-functions-key` (Azure; the local host does not check keys). */
  functionKey?: string;
  /** Bound on each request, in ms (default 120 s; uploads may take longer: pass `timeoutMs` per call). */
  timeoutMs?: number;
}

export interface HealthView {
  status: 'Healthy' | 'Unhealthy';
  storage?: { reachable: boolean; latencyMs?: number };
  error?: ErrorInfo;
  [key: string]: unknown;
}

export interface DeploymentAccepted {
  runId: string;
  started: boolean;
  statusUri: string;
  serviceName?: string;
  model?: string;
  image?: string;
  target?: unknown;
  /** `PATCH /api/services/{name}`: in place (same slot, no replica restarted) or blue/green, and the fields changed. */
  update?: { mode: 'inPlace' | 'blueGreen'; fields: string[] };
}

export interface BatchAccepted {
  id: string;
  started: boolean;
  statusUri: string;
  terminateUri: string;
}

export interface BatchTerminated {
  id: string;
  terminated: boolean;
  pool: { poolId: string; removed: boolean };
}

export interface Listing<T> {
  value: T[];
}

export interface Versions<T> {
  latest: T;
  value: T[];
}

export type AnyRunView = RunView | BatchRunView;

/** `GET /api/runs`: a page of runs, newest first. */
export interface RunsPage {
  value: RunSummary[];
  continuationToken?: string;
  nextLink?: string;
  /** When the runs were read: pass it back as `changedSince` to get only what changed since. */
  asOf: string;
}

export interface RunsQuery {
  type?: 'deployment' | 'batch';
  status?: string;
  service?: string;
  model?: string;
  top?: number;
  since?: string;
  continuationToken?: string;
  /** The `asOf` of a previous answer: only runs created since then and runs not ended yet. */
  changedSince?: string;
}

export interface ServiceLogs {
  service: string;
  slot: string;
  tail: number;
  lines: string[];
}

export interface RolloutDecision {
  runId: string;
  action: 'approve' | 'reject' | 'abort';
  at: string;
  reason?: string;
  by?: string;
}

export interface ModelRegistration {
  name: string;
  description?: string;
  tags?: Record<string, string>;
  properties?: Record<string, string>;
  training_run_id?: string;
}

export const isBatchRun = (v: AnyRunView): v is BatchRunView => (v as BatchRunView).kind === 'batch';

/** A run that has not ended yet (deployment: `Running`; batch: `Pending` or `Running`). */
export const isRunning = (v: AnyRunView): boolean => v.state === 'Running' || v.state === 'Pending';

export interface UploadFile {
  /** Path inside the model folder (the multipart part's name): `model.json`, `weights/w.bin`. */
  path: string;
  data: Uint8Array;
}

export interface WaitOptions {
  timeoutMs?: number;
  pollMs?: number;
  /** Called on every poll with the current view (undefined while the run does not exist yet: 404). */
  onPoll?: (view: AnyRunView | undefined) => void | Promise<void>;
}

export interface ScoreResult {
  status: number;
  body: any;
  ms: number;
}

interface RequestOptions {
  body?: string | FormData;
  contentType?: string;
  headers?: Record<string, string>;
  query?: Record<string, string | string[] | boolean | undefined>;
  timeoutMs?: number;
  /** Statuses answered as results instead of thrown as `ApiError` (e.g. 404 for "not yet", 503 for health). */
  accept?: number[];
}

const seg = (s: string) => encodeURIComponent(s);
const versioned = (name: string, version?: number) => `${seg(name)}${version === undefined ? '' : `/${version}`}`;

/** A Blob over the bytes (a view of a SharedArrayBuffer is copied: a Blob takes only ArrayBuffer views). */
function blobOf(data: Uint8Array): Blob {
  return new Blob([data.buffer instanceof ArrayBuffer ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data.slice()]);
}

/** Parses a JSON text; the text itself when it is not JSON (undefined when empty). */
function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** `{ code, message }` of an error answer: the API's error body, or one made from the status and text. */
export function errorOf(status: number, body: unknown): ErrorInfo {
  const e = (body as { error?: unknown } | undefined)?.error;
  if (e && typeof e === 'object' && typeof (e as ErrorInfo).code === 'string') {
    return { code: (e as ErrorInfo).code, message: String((e as ErrorInfo).message ?? '') };
  }
  const text = typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body);
  return { code: `Http${status}`, message: text.slice(0, 500) || `HTTP ${status} with no body.` };
}

export class MdfClient {
  readonly baseUrl: string;

  constructor(private readonly opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
  }

  /** One request to `/api/<path>`; the parsed body. Errors: `ApiError` (an error answer), `ConnectionError` (none). */
  async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<{ status: number; body: T; headers: Headers }> {
    const r = await this.send(method, path, o, (res) => res.text());
    return { status: r.status, body: parseBody(r.data) as T, headers: r.headers };
  }

  /** Like `request`, the body as bytes (a download), bounded by `maxBytes` (checked while reading). */
  async requestBytes(method: string, path: string, maxBytes: number, o: RequestOptions = {}): Promise<{ status: number; body: Buffer; headers: Headers }> {
    const r = await this.send(method, path, { ...o, headers: { accept: '*/*', ...(o.headers ?? {}) } }, async (res) => {
      if (!res.ok || !res.body) return Buffer.from(await res.text());
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
        n += c.length;
        if (n > maxBytes) throw new TooLarge(`${method} /api/${path}: the answer is larger than ${maxBytes} bytes.`);
        chunks.push(Buffer.from(c));
      }
      return Buffer.concat(chunks);
    });
    return { status: r.status, body: r.data, headers: r.headers };
  }

  private async send<D extends string | Buffer>(method: string, path: string, o: RequestOptions, read: (res: Response) => Promise<D>): Promise<{ status: number; data: D; headers: Headers }> {
    const url = new URL(`${this.baseUrl}/api/${path.replace(/^\/+/, '')}`);
    for (const [k, v] of Object.entries(o.query ?? {})) {
      if (v === undefined || v === false) continue;
      for (const one of Array.isArray(v) ? v : [String(v)]) url.searchParams.append(k, one);
    }
    const headers: Record<string, string> = { accept: 'application/json', ...(o.headers ?? {}) };
    if (this.opts.functionKey) headers['x-functions-key'] = this.opts.functionKey;
    if (o.contentType) headers['content-type'] = o.contentType;
    const label = `${method} /api/${path.replace(/^\/+/, '').split('?')[0]}`;
    let res: Response;
    let data: D;
    try {
      res = await fetch(url, { method, headers, ...(o.body !== undefined ? { body: o.body } : {}), signal: AbortSignal.timeout(o.timeoutMs ?? this.opts.timeoutMs ?? 120_000) });
      data = await read(res);
    } catch (e) {
      if (e instanceof TooLarge) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = (e as Error).name === 'TimeoutError' ? 'no answer in time' : (cause?.code ?? cause?.message ?? (e as Error).message);
      throw new ConnectionError(url.origin, `${label}: cannot reach ${url.origin} (${why}).`);
    }
    if (res.status >= 400 && !(o.accept ?? []).includes(res.status)) {
      const err = errorOf(res.status, parseBody(data.toString()));
      throw new ApiError(res.status, err.code, err.message, label);
    }
    return { status: res.status, data, headers: res.headers };
  }

  private async get<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return (await this.request<T>('GET', path, { query })).body;
  }

  private async json<T>(method: string, path: string, body: unknown, query?: RequestOptions['query']): Promise<T> {
    return (await this.request<T>(method, path, { body: JSON.stringify(body), contentType: 'application/json', query })).body;
  }

  // ---------------------------------------------------------------- health

  /** `GET /api/health`: Healthy (200) or Unhealthy (503, with the reason) — both answered, not thrown. */
  async health(): Promise<{ status: number; body: HealthView }> {
    const r = await this.request<HealthView>('GET', 'health', { accept: [503] });
    return { status: r.status, body: r.body };
  }

  // ---------------------------------------------------------------- deployments and runs

  /**
   * `POST /api/deployments` as multipart: the manifest part first, then one part per file (named by its path).
   * The manifest is JSON or YAML text; `fileName` tells the API which (`deploy.json`, `deploy.yaml`).
   */
  async deploy(manifest: { text: string; fileName?: string }, files: UploadFile[], o: { idempotencyKey?: string; timeoutMs?: number } = {}): Promise<DeploymentAccepted> {
    const form = new FormData();
    const yaml = /\.ya?ml$/i.test(manifest.fileName ?? '');
    form.append('manifest', new Blob([manifest.text], { type: yaml ? 'application/yaml' : 'application/json' }), manifest.fileName ?? 'deploy.json');
    for (const f of files) form.append(f.path, blobOf(f.data), f.path);
    const headers: Record<string, string> = o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : {};
    return (await this.request<DeploymentAccepted>('POST', 'deployments', { body: form, headers, timeoutMs: o.timeoutMs ?? 600_000 })).body;
  }

  /** `POST /api/deployments` with a manifest whose files are blob references (or relative to `folder`). */
  async deployManifest(text: string, o: { yaml?: boolean; folder?: string; idempotencyKey?: string } = {}): Promise<DeploymentAccepted> {
    const headers: Record<string, string> = o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : {};
    return (await this.request<DeploymentAccepted>('POST', 'deployments', { body: text, contentType: o.yaml ? 'application/yaml' : 'application/json', headers, query: { folder: o.folder } })).body;
  }

  /** `GET /api/runs`: one page of runs, newest first (pass `continuationToken` back for the next). */
  listRuns(q: RunsQuery = {}): Promise<RunsPage> {
    return this.get('runs', { type: q.type, status: q.status, service: q.service, model: q.model, top: q.top === undefined ? undefined : String(q.top), since: q.since, continuationToken: q.continuationToken, changedSince: q.changedSince });
  }

  /** `POST /api/runs/{id}/approve|reject|abort`: a decision for a run's rollout (`reject` needs a reason). */
  decideRollout(id: string, action: 'approve' | 'reject' | 'abort', o: { reason?: string; by?: string } = {}): Promise<RolloutDecision> {
    return this.json('POST', `runs/${seg(id)}/${action}`, { ...(o.reason ? { reason: o.reason } : {}), ...(o.by ? { by: o.by } : {}) });
  }

  /** `GET /api/runs/{id}`: a deployment or a batch run. */
  run(id: string): Promise<AnyRunView> {
    return this.get<AnyRunView>(`runs/${seg(id)}`);
  }

  /** The run, or undefined while it does not exist (404: a blob-triggered run that has not started yet). */
  async runIfExists(id: string): Promise<AnyRunView | undefined> {
    const r = await this.request<AnyRunView>('GET', `runs/${seg(id)}`, { accept: [404] });
    return r.status === 404 ? undefined : r.body;
  }

  /** Polls `GET /api/runs/{id}` until the run has ended (a 404 means "not started yet"); its last view. */
  async waitForRun(id: string, o: WaitOptions = {}): Promise<AnyRunView> {
    const timeoutMs = o.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = await this.runIfExists(id);
      await o.onPoll?.(view);
      if (view && !isRunning(view)) return view;
      if (Date.now() > deadline) {
        const where = !view ? 'it never started' : isBatchRun(view) ? `still ${view.state}, phase ${view.phase ?? '?'}` : `still at step ${view.currentStep ?? '?'}`;
        throw new WaitTimeout(id, `Run ${id} did not finish within ${timeoutMs / 1000} s (${where}).`);
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? 250));
    }
  }

  // ---------------------------------------------------------------- models, images, services

  listModels(o: { tags?: string[]; latest?: boolean } = {}): Promise<Listing<ModelRecord>> {
    return this.get('models', { tag: o.tags, latest: o.latest });
  }
  model(name: string): Promise<Versions<ModelRecord>>;
  model(name: string, version: number): Promise<ModelRecord>;
  model(name: string, version?: number): Promise<ModelRecord | Versions<ModelRecord>> {
    return this.get(`models/${versioned(name, version)}`);
  }
  deleteModel(name: string, version?: number, o: { force?: boolean } = {}): Promise<unknown> {
    return this.request('DELETE', `models/${versioned(name, version)}`, { query: { force: o.force } }).then((r) => r.body);
  }
  updateModel(name: string, version: number, patch: { tags?: Record<string, string>; remove_tags?: string[]; properties?: Record<string, string>; description?: string }): Promise<ModelRecord> {
    return this.json('PATCH', `models/${versioned(name, version)}`, patch);
  }

  /** `POST /api/models` as multipart: the "model" part (metadata) first, then one part per file (named by its path). */
  async registerModel(meta: ModelRegistration, files: UploadFile[], o: { idempotencyKey?: string; timeoutMs?: number } = {}): Promise<ModelRecord> {
    const form = new FormData();
    form.append('model', new Blob([JSON.stringify(meta)], { type: 'application/json' }), 'model.json');
    for (const f of files) form.append(f.path, blobOf(f.data), f.path);
    const headers: Record<string, string> = o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : {};
    return (await this.request<ModelRecord>('POST', 'models', { body: form, headers, timeoutMs: o.timeoutMs ?? 600_000 })).body;
  }
  /** `GET /api/models/{name}/{version}/download`: the files as a tar.gz, at most `maxBytes`. */
  async downloadModel(name: string, version: number, maxBytes: number): Promise<{ data: Buffer; fileName?: string }> {
    const r = await this.requestBytes('GET', `models/${versioned(name, version)}/download`, maxBytes, { timeoutMs: 600_000 });
    const m = /filename="([^"/\\]+)"/.exec(r.headers.get('content-disposition') ?? '');
    return { data: r.body, ...(m ? { fileName: m[1] } : {}) };
  }

  /**
   * `GET /api/images/{name}/{version}/log`: the image's build log (its last MiB, secrets redacted), whether it was cut
   * to that and the image's state (a build still running has a partial log).
   */
  async imageLog(name: string, version: number): Promise<{ text: string; truncated: boolean; state?: string }> {
    const r = await this.requestBytes('GET', `images/${versioned(name, version)}/log`, 2 * 1024 * 1024, { headers: { accept: 'text/plain' } });
    const state = r.headers.get('x-mdf-image-state');
    return { text: r.body.toString('utf8'), truncated: r.headers.get('x-mdf-log-truncated') === 'true', ...(state ? { state } : {}) };
  }

  listImages(o: { model?: string } = {}): Promise<Listing<ImageRecord>> {
    return this.get('images', { model: o.model });
  }
  image(name: string): Promise<Versions<ImageRecord>>;
  image(name: string, version: number): Promise<ImageRecord>;
  image(name: string, version?: number): Promise<ImageRecord | Versions<ImageRecord>> {
    return this.get(`images/${versioned(name, version)}`);
  }
  deleteImage(name: string, version?: number, o: { force?: boolean } = {}): Promise<unknown> {
    return this.request('DELETE', `images/${versioned(name, version)}`, { query: { force: o.force } }).then((r) => r.body);
  }

  /** `PATCH /api/images/{name}/{version}`: add/overwrite tags, remove tags. */
  updateImage(name: string, version: number, patch: { tags?: Record<string, string>; remove_tags?: string[] }): Promise<ImageRecord> {
    return this.json('PATCH', `images/${versioned(name, version)}`, patch);
  }

  listServices(): Promise<Listing<ServiceRecord>> {
    return this.get('services');
  }
  service(name: string): Promise<ServiceRecord> {
    return this.get(`services/${seg(name)}`);
  }
  /** `PATCH /api/services/{name}` (AML `service.update`): deploy-configuration fields and/or `image`; a deployment run. */
  updateService(name: string, patch: Record<string, unknown>): Promise<DeploymentAccepted> {
    return this.json<DeploymentAccepted>('PATCH', `services/${seg(name)}`, patch);
  }
  deleteService(name: string, o: { force?: boolean } = {}): Promise<{ deleted: string[] }> {
    return this.request<{ deleted: string[] }>('DELETE', `services/${seg(name)}`, { query: { force: o.force } }).then((r) => r.body);
  }
  /** `GET /api/services/{name}/metrics`: the serving runtime's cumulative counters (never the key). */
  metrics(service: string): Promise<ServiceMetrics> {
    return this.get(`services/${seg(service)}/metrics`);
  }
  keys(service: string): Promise<ServiceKeys> {
    return this.get(`services/${seg(service)}/keys`);
  }
  /** `GET /api/services/{name}/logs`: the last `tail` lines of the (active or given) slot's replicas. */
  logs(service: string, o: { tail?: number; slot?: string } = {}): Promise<ServiceLogs> {
    return this.get(`services/${seg(service)}/logs`, { tail: o.tail === undefined ? undefined : String(o.tail), slot: o.slot });
  }
  /** `GET /api/services/{name}/token`: a Bearer token (services with token auth). */
  token(service: string): Promise<IssuedToken> {
    return this.get(`services/${seg(service)}/token`);
  }
  regenerateKey(service: string, keyType: 'Primary' | 'Secondary'): Promise<ServiceKeys> {
    return this.json('POST', `services/${seg(service)}/keys/regenerate`, { keyType });
  }

  // ---------------------------------------------------------------- scoring

  /** The service's scoring URI and, when its auth is on, its primary key (from the keys route). */
  async scoringTarget(service: string): Promise<{ scoringUri: string; key?: string }> {
    const svc = await this.service(service);
    if (!svc.scoringUri) throw new ApiError(409, 'ServiceNotServing', `Service "${service}" has no scoring URI yet (state ${svc.state}).`, `GET /api/services/${service}`);
    return { scoringUri: svc.scoringUri, ...(svc.authEnabled ? { key: (await this.keys(service)).primaryKey } : {}) };
  }

  /** `POST <scoringUri>` with a JSON body (a string is sent as is), `Authorization: Bearer <key>` when given. */
  static async scoreUri(scoringUri: string, body: unknown, key?: string, timeoutMs = 120_000): Promise<ScoreResult> {
    const t0 = performance.now();
    let res: Response;
    let text: string;
    try {
      res = await fetch(scoringUri, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause;
      throw new ConnectionError(scoringUri, `POST ${scoringUri}: cannot reach the scoring endpoint (${cause?.code ?? (e as Error).message}).`);
    }
    return { status: res.status, body: parseBody(text), ms: performance.now() - t0 };
  }

  /** Scores a service by name: looks up its scoring URI and key, then posts `body`. */
  async score(service: string, body: unknown): Promise<ScoreResult & { scoringUri: string }> {
    const t = await this.scoringTarget(service);
    return { ...(await MdfClient.scoreUri(t.scoringUri, body, t.key)), scoringUri: t.scoringUri };
  }

  // ---------------------------------------------------------------- batch

  /** `POST /api/batch-runs` with a job definition (JSON or YAML text). */
  async startBatch(text: string, o: { yaml?: boolean; idempotencyKey?: string } = {}): Promise<BatchAccepted> {
    const headers: Record<string, string> = o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : {};
    return (await this.request<BatchAccepted>('POST', 'batch-runs', { body: text, contentType: o.yaml ? 'application/yaml' : 'application/json', headers })).body;
  }
  batchRun(id: string): Promise<BatchRunView> {
    return this.get(`batch-runs/${seg(id)}`);
  }
  async terminateBatch(id: string, reason?: string): Promise<BatchTerminated> {
    return (await this.request<BatchTerminated>('POST', `batch-runs/${seg(id)}/terminate`, { ...(reason ? { body: reason, contentType: 'text/plain' } : {}) })).body;
  }
}

/** `waitForRun` gave up: the run had not ended within the time given. */
export class WaitTimeout extends Error {
  constructor(
    readonly runId: string,
    message: string,
  ) {
    super(message);
    this.name = 'WaitTimeout';
  }
}
