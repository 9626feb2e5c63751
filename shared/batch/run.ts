/**
 * A batch run as the app sees it: the orchestration's input, run ids derived from the triggering event, starting a
 * run from any entry point (HTTP, `incoming/batch/<name>/batch.json`, a `training-completed` message), the public
 * view of a run (`GET /api/batch-runs/{id}`, and `GET /api/runs/{id}` through `getBatchRunView`), and the image a
 * job runs (registry adapter).
 *
 * Orchestrations: `batchRun` (orchestrations/batchRun.ts) and its `batchChunk` sub-orchestrations
 * (orchestrations/batchChunk.ts). Blobs of a run: see layout.ts, plus `<root>job.json` (the full job definition).
 */
import { createHash, randomUUID } from 'crypto';
import type { DurableClient } from 'durable-functions';
import type { AppConfig } from '../config';
import { AppError, isNotFound } from '../errors';
import { getImageBuilder } from '../platform/compose';
import { ImageRegistry } from '../images/image-registry';
import { IMAGE_NAME_RE } from '../manifest/names';
import { ModelRegistry } from '../registry/models';
import type { ErrorInfo, RuntimeKind } from '../seams';
import { downloadBlob, parseBlobPath, sha256Hex, type StorageClients } from '../storage';
import { getJson, putJson } from './blobs';
import { parseBatchJob, type BatchInputs, type BatchJob } from './job';
import { runLayout, type RunLayout } from './layout';
import type { BatchCounts, BatchSummary } from './merge';
import type { PlanSummary } from './plan';
import type { BatchProgress } from './progress';
import { batchPoolKind, isTerminalStatus, poolIdFor, statusOrUndefined, type BatchPoolKind } from './pools';
import { parseJsonBounded } from '../parse';
import { BATCH_RUN_ORCHESTRATION, type BatchImage, type BatchJobSettings, type BatchRunInput, type BatchRunSource } from './contract';
import { MAX_MESSAGE_BYTES } from '../manifest/training';
import type { ThresholdTrip } from './thresholds';
import { checkedTraceparent } from '../../runtime';
import { recordRunStart } from '../telemetry';

export {
  BATCH_CHUNK_ORCHESTRATION,
  BATCH_RUN_ORCHESTRATION,
  type BatchImage,
  type BatchJobSettings,
  type BatchRunInput,
  type BatchRunResult,
  type BatchRunSource,
} from './contract';

/** `batchRun`'s custom status: the progress plus where things are. Under 16 KB (strings are bounded). */
export interface BatchRunCustomStatus {
  runId: string;
  phase: BatchProgress['phase'];
  progress?: BatchProgress;
  /** The plan chunk being scored: its sub-orchestration has the live progress. */
  chunk?: { index: number; count: number; instanceId: string };
  pool?: { poolId: string; kind: BatchPoolKind; nodes?: number };
  image?: string;
  threshold?: Pick<ThresholdTrip, 'threshold' | 'limit' | 'observed' | 'message'>;
  error?: ErrorInfo;
  counts?: BatchCounts;
}

/** Instance id of chunk `k` of a run. */
export const chunkInstanceId = (runId: string, chunk: number) => `${runId}:chunk:${chunk}`;

/** Where the full job definition of a run is kept. */
export function jobBlobOf(layout: RunLayout): string {
  return `${layout.container}/${layout.root}job.json`;
}

export function settingsOf(job: BatchJob): BatchJobSettings {
  return { ...job, inputs: job.inputs.kind === 'prefix' ? job.inputs : { kind: 'blobs', count: job.inputs.blobs.length } };
}

const jobCache = new Map<string, BatchJob>();

/** The full job definition of a run (cached per process: it never changes once written). */
export async function readRunJob(storage: StorageClients, jobBlob: string): Promise<BatchJob> {
  const hit = jobCache.get(jobBlob);
  if (hit) return hit;
  const { container, blob } = parseBlobPath(jobBlob);
  const job = await getJson<BatchJob>(storage.container(container), blob);
  if (!job) throw new AppError('JobNotFound', `The job definition ${jobBlob} of this batch run is missing; submit the job again.`, 404);
  if (jobCache.size > 64) jobCache.clear();
  jobCache.set(jobBlob, job);
  return job;
}

// ---------------------------------------------------------------- run ids

const hash = (s: string, n = 32) => createHash('sha256').update(s).digest('hex').slice(0, n);

export const runIds = {
  /** A new run per request; with an `Idempotency-Key`, one run per key (a client's retry finds the same run). */
  http: (idempotencyKey?: string) => (idempotencyKey ? `batch-http-${hash(`http|${idempotencyKey}`)}` : `batch-${randomUUID()}`),
  /** One run per blob version: a re-delivered event finds the same instance. */
  blob: (blobPath: string, etag: string) => `batch-blob-${hash(`${blobPath}|${etag.replace(/^"|"$/g, '')}`)}`,
  /** One run per training run and model. */
  training: (trainingRunId: string, model: string) => `batch-tc-${hash(`${trainingRunId}|${model}`)}`,
};

// ---------------------------------------------------------------- starting a run

export interface StartOptions {
  runId: string;
  source: BatchRunSource;
  config: AppConfig;
  storage: StorageClients;
  /** Digest of the request that asks for the run: another request for an existing run is 422 `IdempotencyKeyReused`. */
  requestDigest?: string;
  /** The caller's W3C `traceparent` (checked here: a malformed one is dropped): the run's root span links to it. */
  traceparent?: string;
}

/**
 * Checks that the inputs exist (clear 400 `InputNotFound` at submission instead of a failed run): the container,
 * at least one blob under the prefix. URI lists are checked by the planner.
 */
export async function checkInputs(storage: StorageClients, job: BatchJob): Promise<void> {
  if (job.inputs.kind !== 'prefix') return;
  const { container, prefix } = job.inputs;
  try {
    const page = await storage.container(container).listBlobsFlat({ prefix }).byPage({ maxPageSize: 1 }).next();
    if ((page.value?.segment?.blobItems ?? []).length === 0 && !page.value?.continuationToken) {
      throw new AppError('InputNotFound', `No blobs under "${container}/${prefix}": upload the inputs there or fix inputs.prefix (blob names are case-sensitive)`, 400);
    }
  } catch (e) {
    if (isNotFound(e)) throw new AppError('InputNotFound', `Input container "${container}" does not exist: create it and upload the inputs, or fix inputs.container`, 400);
    throw e;
  }
}

/**
 * Starts a batch run for a validated job (idempotent per run id: an existing instance is returned, not restarted).
 * Writes `<root>job.json` first, so the orchestration carries only a reference to a long input list.
 */
export async function startBatchRun(client: Pick<DurableClient, 'getStatus' | 'startNew'>, job: BatchJob, opts: StartOptions): Promise<{ runId: string; created: boolean }> {
  const existing = await statusOrUndefined(client, opts.runId);
  if (existing) {
    const original = (existing.input ?? undefined) as Partial<BatchRunInput> | undefined;
    if (opts.requestDigest && original?.requestDigest && original.requestDigest !== opts.requestDigest) {
      throw new AppError('IdempotencyKeyReused', `This Idempotency-Key was used for another job definition (run ${opts.runId}); send the same request to find that run again, or use a new key for a new job.`, 422);
    }
    return { runId: opts.runId, created: false };
  }
  const traceparent = checkedTraceparent(opts.traceparent);
  const layout = runLayout(job, opts.runId);
  const out = await opts.storage.ensureContainer(layout.container);
  await putJson(out, `${layout.root}job.json`, job);
  const input: BatchRunInput = {
    runId: opts.runId,
    job: settingsOf(job),
    jobBlob: jobBlobOf(layout),
    poolKind: batchPoolKind(opts.config),
    poolId: poolIdFor(opts.runId),
    source: opts.source,
    ...(opts.requestDigest ? { requestDigest: opts.requestDigest } : {}),
    ...(traceparent ? { traceparent } : {}),
  };
  await client.startNew(BATCH_RUN_ORCHESTRATION, { instanceId: opts.runId, input });
  recordRunStart({ kind: 'batch', runId: opts.runId, eventKind: opts.source.kind, eventId: opts.source.eventId, traceparent });
  return { runId: opts.runId, created: true };
}

/**
 * For the deployment chain's `training-completed` trigger: when the message carries a `batch` section (a job
 * definition; `model` defaults to the model the message registered), start a batch run for it. Returns null when
 * the message does not ask for scoring. Throws `InvalidJobDefinition` (400) for a bad `batch` section.
 *
 * ```json
 * { "model_name": "iris", "training_run_id": "run-7", "artifacts": [...],
 *   "batch": { "entry_script": "score.py", "source_directory": "code/iris", "inputs": { "container": "d", "prefix": "x/" }, ... } }
 * ```
 * The run id is derived from the training run id and the model, so a re-delivered message starts nothing new.
 */
export async function startBatchFromTrainingMessage(
  client: Pick<DurableClient, 'getStatus' | 'startNew'>,
  message: unknown,
  deployed: { model: string; image?: string },
  opts: { config: AppConfig; storage: StorageClients; messageId?: string; traceparent?: string },
): Promise<{ runId: string; created: boolean } | null> {
  const body = (typeof message === 'string' ? safeJson(message) : Buffer.isBuffer(message) ? safeJson(message.toString('utf8')) : message) as
    | { batch?: unknown; training_run_id?: unknown }
    | undefined;
  if (!body || typeof body !== 'object' || body.batch === undefined || body.batch === null) return null;
  if (typeof body.batch !== 'object' || Array.isArray(body.batch)) throw new AppError('InvalidJobDefinition', 'Invalid batch job definition: "batch" must be an object (a job definition)', 400);
  const raw = { ...(body.batch as Record<string, unknown>) };
  if (raw.model === undefined && raw.image === undefined) raw.model = deployed.model;
  const job = parseBatchJob(raw, { accountUrl: opts.storage.blobService.url });
  const runId = runIds.training(String(body.training_run_id ?? opts.messageId ?? ''), deployed.model);
  return startBatchRun(client, job, { runId, source: { kind: 'servicebus', eventId: opts.messageId ?? runId }, config: opts.config, storage: opts.storage, traceparent: opts.traceparent });
}

function safeJson(s: string): unknown {
  try {
    return parseJsonBounded(s, { what: 'the training-completed message', maxBytes: MAX_MESSAGE_BYTES });
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- the public view

export interface BatchRunView {
  id: string;
  kind: 'batch';
  name?: string;
  /** Durable runtime status (Pending, Running, Completed, Failed, Terminated). */
  runtimeStatus: string;
  /** Run state: Running, Succeeded, Failed, Terminated. */
  state: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Terminated';
  phase?: BatchProgress['phase'];
  createdTime?: string;
  lastUpdatedTime?: string;
  progress?: BatchProgress;
  counts?: BatchCounts;
  threshold?: BatchRunCustomStatus['threshold'];
  error?: ErrorInfo;
  job: {
    model?: string;
    image?: string;
    inputKind: BatchJob['inputKind'];
    inputs: BatchJobSettings['inputs'];
    nodeCount: number;
    processCountPerNode: number;
    errorThreshold: number;
    allowedFailedCount: number;
    allowedFailedPercent: number;
    outputAction: BatchJob['outputAction'];
  };
  pool: { poolId: string; kind: BatchPoolKind };
  /** The merged output (append_row) and the summary blob, as `container/blob` references. */
  output: string | null;
  summary: string;
  source: BatchRunSource;
}

/**
 * The public view of batch run `instanceId`, or undefined when there is no such run (or the instance is not a batch
 * run). Live progress comes from the custom status of the run or of the chunk being scored; the final counts from
 * the summary blob.
 */
export async function getBatchRunView(client: Pick<DurableClient, 'getStatus'>, storage: StorageClients, instanceId: string): Promise<BatchRunView | undefined> {
  const s = await statusOrUndefined(client, instanceId, { showInput: true });
  if (!s || s.name !== BATCH_RUN_ORCHESTRATION) return undefined;
  const input = s.input as BatchRunInput;
  const custom = (s.customStatus ?? undefined) as BatchRunCustomStatus | undefined;
  const runtimeStatus = String(s.runtimeStatus);
  const job = input.job;
  const layout = runLayout(job, input.runId);

  let progress = custom?.progress;
  if (runtimeStatus === 'Running' && custom?.chunk) {
    const chunk = await statusOrUndefined(client, custom.chunk.instanceId).catch(() => undefined);
    const live = chunk?.customStatus as BatchProgress | undefined;
    if (live && typeof live === 'object' && 'miniBatches' in live) progress = live;
  }
  let summary: BatchSummary | null = null;
  if (isTerminalStatus(runtimeStatus)) summary = await getJson<BatchSummary>(storage.container(layout.container), layout.summary).catch(() => null);

  const state: BatchRunView['state'] =
    runtimeStatus === 'Completed' ? 'Succeeded' : runtimeStatus === 'Failed' ? 'Failed' : runtimeStatus === 'Terminated' ? 'Terminated' : runtimeStatus === 'Pending' ? 'Pending' : 'Running';
  const threshold = custom?.threshold ?? (summary?.threshold ? pickTrip(summary.threshold) : undefined);
  const error = custom?.error ?? summary?.error;
  return {
    id: input.runId,
    kind: 'batch',
    ...(job.name ? { name: job.name } : {}),
    runtimeStatus,
    state,
    ...(custom?.phase ? { phase: state === 'Terminated' ? 'terminated' : custom.phase } : {}),
    ...(s.createdTime ? { createdTime: new Date(s.createdTime).toISOString() } : {}),
    ...(s.lastUpdatedTime ? { lastUpdatedTime: new Date(s.lastUpdatedTime).toISOString() } : {}),
    ...(progress ? { progress } : {}),
    ...(summary?.counts ?? custom?.counts ? { counts: summary?.counts ?? custom?.counts } : {}),
    ...(threshold ? { threshold } : {}),
    ...(error ? { error } : {}),
    job: {
      ...(job.model ? { model: job.model.version ? `${job.model.name}:${job.model.version}` : job.model.name } : {}),
      ...(job.image ? { image: `${job.image.name}:${job.image.version}` } : {}),
      inputKind: job.inputKind,
      inputs: job.inputs,
      nodeCount: job.nodeCount,
      processCountPerNode: job.processCountPerNode,
      errorThreshold: job.errorThreshold,
      allowedFailedCount: job.allowedFailedCount,
      allowedFailedPercent: job.allowedFailedPercent,
      outputAction: job.outputAction,
    },
    pool: { poolId: input.poolId, kind: input.poolKind },
    output: job.outputAction === 'append_row' ? `${layout.container}/${layout.output}` : null,
    summary: `${layout.container}/${layout.summary}`,
    source: input.source,
  };
}

function pickTrip(t: ThresholdTrip): BatchRunCustomStatus['threshold'] {
  return { threshold: t.threshold, limit: t.limit, observed: t.observed, message: t.message };
}

// ---------------------------------------------------------------- the image a job runs

const RUNTIME_BY_EXT: Record<string, RuntimeKind> = { '.py': 'python', '.js': 'node', '.ts': 'node' };

/**
 * The image of a job: `image: name:version` as registered (must have built), or for `model: name[:version]` +
 * `entry_script` an image built from the model and the script (`batch-<model name>`, one version per model version
 * and script content: re-runs reuse it). Uses the image and model registries as they are (`ImageRegistry.get` /
 * `create`, `ModelRegistry.resolve`): this function is the adapter from a job to a `BatchPoolRequest.image`.
 */
export async function resolveBatchImage(config: AppConfig, storage: StorageClients, job: Pick<BatchJob, 'model' | 'image' | 'entryScript' | 'sourceDirectory' | 'runtime'>): Promise<BatchImage> {
  const models = new ModelRegistry(storage);
  const images = new ImageRegistry(storage, models, getImageBuilder(config, storage));
  let record;
  if (job.image) {
    record = await images.get(job.image.name, job.image.version);
  } else if (job.model) {
    const model = await models.resolve(job.model.version ? `${job.model.name}:${job.model.version}` : job.model.name);
    const script = job.entryScript!;
    if (!job.sourceDirectory) {
      throw new AppError('SourceDirectoryMissing', `The job names model ${model.id} and entry_script "${script}" but no source_directory: give the blob folder that holds the script ("container/folder"), or drop the job as incoming/batch/<name>/batch.json beside it.`, 400);
    }
    const scriptBlob = `${job.sourceDirectory}/${script}`;
    let data: Buffer;
    try {
      data = await downloadBlob(storage, scriptBlob);
    } catch (e) {
      if (isNotFound(e)) throw new AppError('EntryScriptNotFound', `entry_script ${scriptBlob} does not exist: upload it or fix entry_script / source_directory.`, 400);
      throw e;
    }
    const ext = script.slice(script.lastIndexOf('.'));
    const runtime = job.runtime ?? RUNTIME_BY_EXT[ext] ?? 'python';
    const name = `batch-${model.name.toLowerCase().replace(/[^a-z0-9._-]/g, '-')}`.slice(0, 63);
    if (!IMAGE_NAME_RE.test(name)) throw new AppError('InvalidImageName', `Cannot derive an image name from model "${model.name}".`, 400);
    ({ image: record } = await images.create({
      name,
      runtime,
      models: [model.id],
      entryScript: { path: script, content: data },
      description: `Batch scoring image for ${model.id} (${script})`,
      eventId: `batch|${model.id}|${runtime}|${script}|${sha256Hex(data)}`,
    }));
  } else {
    throw new AppError('InvalidJobDefinition', 'Invalid batch job definition: give exactly one of "model" or "image"', 400);
  }
  if (record.state !== 'Succeeded' || !record.imageRef) {
    throw new AppError('ImageNotReady', `Image ${record.id} is ${record.state}${record.error ? ` (${record.error.code}: ${record.error.message})` : ''}; use an image that built successfully.`, 409);
  }
  return { name: record.name, version: record.version, imageRef: record.imageRef, runtime: record.runtime, contextBlob: record.contextBlob };
}

/** A plan with nothing in it (finalizing a run that stopped before planning completed). */
export function emptyPlan(job: Pick<BatchJob, 'inputKind'>): PlanSummary {
  return { miniBatchCount: 0, itemCount: 0, bytes: 0, inputFileCount: 0, chunkCount: 0, chunkSize: 500, inputKind: job.inputKind };
}
