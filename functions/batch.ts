/**
 * Batch scoring entry points and status:
 * - `POST /api/batch-runs` — body: a job definition (JSON, or YAML with a yaml content type or not starting with
 *   "{") → 202 `{ id, statusUri, terminateUri }` + `Location`; 400 `InvalidJobDefinition` / `InputNotFound`.
 * - `GET /api/batch-runs/{id}` — the run's public view (`getBatchRunView`): state, phase, progress, counts,
 *   threshold, error, output and summary blob locations. 404 `RunNotFound`.
 * - `POST /api/batch-runs/{id}/terminate` — terminates the run (and the chunk being scored) and tears its pool down.
 * - blob `incoming/batch/{name}/batch.json` — starts a run; the instance id comes from the blob path + ETag, so a
 *   re-delivered event never starts a second run. `entry_script` defaults to that folder (`source_directory`).
 *   An invalid job file is reported in `incoming/batch/{name}/batch.error.json` (not retried: it cannot succeed).
 * - timer `batchPoolSweep` (every 5 minutes): tears down pools of runs that ended without their teardown.
 * - app start (local pools): `reapLocalPools` removes pools a killed host left half-provisioned or unrecorded, and
 *   kills node processes no pool names, before the durable engine resumes any run.
 * The `training-completed` message is handled by the deployment chain's trigger via `startBatchFromTrainingMessage`.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { createHash } from 'crypto';
import * as df from 'durable-functions';
import type { DurableClient } from 'durable-functions';
import { MAX_JOB_BYTES, parseBatchJob, parseBatchJobText } from '../shared/batch/job';
import { parseManifestText } from '../shared/manifest/schema';
import { BATCH } from '../shared/batch/contract';
import { reapLocalPools, statusOrUndefined, sweepBatchPools, teardownPool } from '../shared/batch/pools';
import { checkInputs, getBatchRunView, runIds, startBatchRun, type BatchRunCustomStatus, type BatchRunInput } from '../shared/batch/run';
import { getConfig } from '../shared/config';
import { AppError, errorResponse, toErrorInfo } from '../shared/errors';
import { MAX_JSON_BODY_BYTES, readBodyText, readDocumentText } from '../shared/http-body';
import { blobNameReason, getStorage } from '../shared/storage';
import { checkRunId } from '../shared/manifest/names';

const SOURCE = 'batch-runs';

function statusUris(request: HttpRequest, id: string) {
  const base = new URL(request.url);
  const root = `${base.protocol}//${base.host}/api/${SOURCE}/${encodeURIComponent(id)}`;
  return { statusUri: root, terminateUri: `${root}/terminate` };
}

/** Tears down pools of finished runs in the background (never fails the request). */
function sweepSoon(client: DurableClient, context: InvocationContext, onlyRunId?: string): Promise<void> {
  return sweepBatchPools(client, getConfig(), getStorage(), onlyRunId ? { onlyRunId } : {}).then(
    (r) => {
      if (r.tornDown.length) context.log(`batch pool sweep: removed ${r.tornDown.join(', ')}`);
      for (const e of r.errors) context.warn(`batch pool sweep: ${e.poolId}: ${e.error.code}: ${e.error.message}`);
    },
    (e) => context.warn(`batch pool sweep failed: ${toErrorInfo(e).message}`),
  );
}

df.app.client.http('batchRunsStart', {
  route: SOURCE,
  methods: ['POST'],
  authLevel: 'function',
  handler: async (request: HttpRequest, client: DurableClient, context: InvocationContext): Promise<HttpResponseInit> => {
    try {
      const storage = getStorage();
      const text = await readDocumentText(request, { what: 'The batch job definition', maxBytes: MAX_JOB_BYTES });
      if (!text.trim()) throw new AppError('InvalidJobDefinition', 'The request body is empty: send a batch job definition (JSON or YAML).', 400);
      const yaml = /yaml/i.test(request.headers.get('content-type') ?? '');
      const job = parseBatchJobText(text, { fileName: yaml ? 'batch.yaml' : 'request body', accountUrl: storage.blobService.url });
      if (job.model && !job.sourceDirectory) {
        throw new AppError('InvalidJobDefinition', 'Invalid batch job definition: source_directory: is required with "model" in a request: the blob folder ("container/folder") that holds entry_script', 400);
      }
      await checkInputs(storage, job);
      const idempotencyKey = request.headers.get('idempotency-key') ?? undefined;
      const runId = runIds.http(idempotencyKey);
      const requestDigest = createHash('sha256').update(`${yaml ? 'yaml' : 'json'}\n${text}`).digest('hex');
      const { created } = await startBatchRun(client, job, { runId, source: { kind: 'http', eventId: idempotencyKey ?? context.invocationId }, config: getConfig(), storage, requestDigest, traceparent: request.headers.get('traceparent') ?? undefined });
      void sweepSoon(client, context);
      const uris = statusUris(request, runId);
      return { status: 202, headers: { Location: uris.statusUri }, jsonBody: { id: runId, started: created, ...uris } };
    } catch (e) {
      return errorResponse(e);
    }
  },
});

df.app.client.http('batchRunsGet', {
  route: `${SOURCE}/{id}`,
  methods: ['GET'],
  authLevel: 'function',
  handler: async (request: HttpRequest, client: DurableClient, context: InvocationContext): Promise<HttpResponseInit> => {
    try {
      const id = checkRunId(request.params.id, 'Batch run id');
      const view = await getBatchRunView(client, getStorage(), id);
      if (!view) throw new AppError('RunNotFound', `There is no batch run "${id}"; use the id returned by POST /api/batch-runs.`, 404);
      // A run that ended without its teardown (terminated) gets its pool removed now.
      if (['Failed', 'Terminated', 'Succeeded'].includes(view.state)) await sweepSoon(client, context, id);
      return { jsonBody: view };
    } catch (e) {
      return errorResponse(e);
    }
  },
});

df.app.client.http('batchRunsTerminate', {
  route: `${SOURCE}/{id}/terminate`,
  methods: ['POST'],
  authLevel: 'function',
  handler: async (request: HttpRequest, client: DurableClient): Promise<HttpResponseInit> => {
    try {
      const id = checkRunId(request.params.id, 'Batch run id');
      const s = await statusOrUndefined(client, id, { showInput: true });
      if (!s || s.name !== BATCH.run.name) throw new AppError('RunNotFound', `There is no batch run "${id}".`, 404);
      const input = s.input as BatchRunInput;
      const reason = (await readBodyText(request, MAX_JSON_BODY_BYTES, 'The reason')).slice(0, 200) || 'terminated through POST /api/batch-runs/{id}/terminate';
      const running = (st: unknown) => ['Running', 'Pending'].includes(String(st));
      if (running(s.runtimeStatus)) await client.terminate(id, reason);
      const chunk = (s.customStatus as BatchRunCustomStatus | undefined)?.chunk;
      if (chunk) {
        const cs = await statusOrUndefined(client, chunk.instanceId);
        if (cs && running(cs.runtimeStatus)) await client.terminate(chunk.instanceId, reason);
      }
      await teardownPool(getConfig(), getStorage(), input.poolId, input.poolKind);
      return { status: 202, jsonBody: { id, terminated: running(s.runtimeStatus), pool: { poolId: input.poolId, removed: true } } };
    } catch (e) {
      return errorResponse(e);
    }
  },
});

df.app.client.storageBlob('batchJobBlob', {
  path: 'incoming/batch/{name}/batch.json',
  source: 'EventGrid',
  connection: 'AzureWebJobsStorage',
  handler: async (blob: unknown, client: DurableClient, context: InvocationContext): Promise<void> => {
    const name = String(context.triggerMetadata?.name ?? '');
    const blobPath = String(context.triggerMetadata?.blobTrigger ?? `incoming/batch/${name}/batch.json`);
    const unsafe = !blobPath.startsWith('incoming/batch/') ? 'is not under incoming/batch/' : blobNameReason(blobPath);
    if (unsafe) {
      context.warn(`batch job ${blobPath.slice(0, 300)} ignored: the blob name ${unsafe}.`);
      return;
    }
    const props = (context.triggerMetadata?.properties ?? {}) as { eTag?: string; ETag?: string; etag?: string };
    const storage = getStorage();
    // The run id comes from the blob version: without the ETag in the trigger metadata, ask the blob itself.
    const etag = String(
      props.eTag ?? props.ETag ?? props.etag ?? (await storage.container('incoming').getBlockBlobClient(blobPath.slice('incoming/'.length)).getProperties()).etag ?? '',
    ).replace(/"/g, '');
    const folder = blobPath.slice(0, blobPath.lastIndexOf('/'));
    const text = Buffer.isBuffer(blob) ? blob.toString('utf8') : typeof blob === 'string' ? blob : JSON.stringify(blob);
    let job;
    try {
      const raw = parseManifestText(text, 'batch.json', undefined, MAX_JOB_BYTES) as Record<string, unknown>;
      // The entry script sits beside the job file unless the job says otherwise.
      const withSource = raw && typeof raw === 'object' && raw.model !== undefined && raw.source_directory === undefined ? { ...raw, source_directory: folder } : raw;
      job = parseBatchJob(withSource, { accountUrl: storage.blobService.url });
      await checkInputs(storage, job);
    } catch (e) {
      if (!(e instanceof AppError) || e.retryable) throw e; // transient: let the trigger retry
      const info = e.toInfo();
      context.warn(`batch job ${blobPath} rejected: ${info.code}: ${info.message}`);
      const c = await storage.ensureContainer('incoming');
      const body = JSON.stringify({ error: info, job: blobPath, etag }, null, 2);
      await c.getBlockBlobClient(`${folder.slice('incoming/'.length)}/batch.error.json`).upload(body, Buffer.byteLength(body));
      return;
    }
    const runId = runIds.blob(blobPath, etag);
    const r = await startBatchRun(client, job, { runId, source: { kind: 'blob', eventId: `${blobPath}@${etag}`, location: blobPath }, config: getConfig(), storage });
    context.log(`batch job ${blobPath}: run ${runId} ${r.created ? 'started' : 'already exists'}`);
  },
});

app.hook.appStart(async () => {
  try {
    const config = getConfig();
    const r = await reapLocalPools(config, getStorage());
    if (r && (r.removed.length || r.strays)) console.log(JSON.stringify({ event: 'batch-pools-reaped', removed: r.removed, strayProcesses: r.strays }));
  } catch (e) {
    console.warn(`batch pool reap at start failed: ${toErrorInfo(e).message}`);
  }
});

df.app.client.timer('batchPoolSweep', {
  schedule: '0 */5 * * * *',
  handler: async (_timer: unknown, client: DurableClient, context: InvocationContext): Promise<void> => {
    await sweepSoon(client, context);
  },
});
