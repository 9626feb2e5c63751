/**
 * zod schemas of the management API's bodies that are not already schemas elsewhere: the answers (runs, models,
 * images, services, keys, health, 202s), the error body, and the small request bodies (`PATCH` of a model, key
 * regeneration) the handlers validate with them. The OpenAPI document (`shared/api/openapi.ts`) is generated from
 * these and from the request schemas of the manifest and the batch job.
 *
 * Each answer schema is checked at compile time against the TypeScript type the handler returns (`Covers` below):
 * a top-level field added to the type without its schema, or a field whose type the schema does not accept, does
 * not build.
 */
import { z } from 'zod';
import type { BatchRunView } from '../batch/run';
import type { ImageRecord } from '../images/image-registry';
import type { ModelRecord } from '../registry/models';
import type { ErrorInfo, ServiceKeys } from '../seams';
import type { ServiceRecord } from '../registry/services';
import type { RunView } from '../deploy/run-status';
import type { RunSummary } from '../deploy/runs-list';
import type { IssuedToken } from '../../runtime';
import { stringMap as boundedStringMap } from '../manifest/schema';

const text = z.string();
const iso = z.string().meta({ description: 'ISO 8601 date and time', examples: ['2026-11-29T10:00:00.000Z'] });
const stringMap = z.record(z.string(), z.string());

export const errorInfo = z.object({ code: text.meta({ examples: ['ServiceNotFound'] }), message: text.meta({ examples: ['Service "diabetes" does not exist.'] }) });

/** Every error answer: `{ "error": { "code", "message" } }`. */
export const errorBody = z
  .object({ error: errorInfo })
  .meta({ description: 'Every error answer (4xx/5xx): a stable code and an actionable message.', examples: [{ error: { code: 'InvalidVersion', message: 'Version "x" must be a whole number from 1 to 999999999.' } }] });

// ---------------------------------------------------------------- request bodies

/** `PATCH /api/models/{name}/{version}`. */
export const modelPatch = z
  .strictObject({
    tags: z.record(z.string(), z.string()).optional(),
    remove_tags: z.array(z.string()).optional(),
    properties: z.record(z.string(), z.string()).optional(),
    description: z.string().max(8192).optional(),
  })
  .meta({ description: 'Tags are mutable (`tags` adds or overwrites, `remove_tags` removes); properties are add-only; `description` replaces the description.', examples: [{ tags: { stage: 'prod' }, remove_tags: ['draft'] }] });

/** `POST /api/services/{name}/keys/regenerate`. */
export const regenerateKeyBody = z.strictObject({ keyType: z.enum(['Primary', 'Secondary']) }).meta({ examples: [{ keyType: 'Primary' }] });

/** `PATCH /api/images/{name}/{version}` (AML `image.update_tags`). */
export const imagePatch = z
  .strictObject({
    tags: z.record(z.string(), z.string()).optional(),
    remove_tags: z.array(z.string()).max(100).optional(),
  })
  .meta({ description: '`tags` adds or overwrites, `remove_tags` removes (at least one of them).', examples: [{ tags: { stage: 'prod' } }] });

/**
 * `POST /api/models` as JSON (AML `Model.register`): files as blob references (`{path, source}`) or paths relative to
 * `folder`. As multipart, the "model" part holds the same fields without `files`/`folder`, then one part per file.
 */
export const registerModelBody = z
  .strictObject({
    name: z.string(),
    /** Paths relative to `folder`, or `{ path, source }` blob references. */
    files: z.array(z.union([z.string(), z.strictObject({ path: z.string(), source: z.string().optional() })])).min(1).max(200),
    folder: z.string().max(1024).optional(),
    description: z.string().max(8192).optional(),
    tags: boundedStringMap.optional(),
    properties: boundedStringMap.optional(),
    training_run_id: z.string().min(1).max(256).optional(),
  })
  .meta({ examples: [{ name: 'diabetes-linear', folder: 'models/diabetes', files: ['model.json'], tags: { stage: 'dev' } }] });

// ---------------------------------------------------------------- answers

export const runStep = z.object({
  name: text.meta({ description: 'register, promotionCheck, image, prepare, deploy (blue/green: a new slot) or inPlace (an update of the serving slot), smokeTest, rollout, promote, retire, rollback, batch' }),
  state: z.enum(['Running', 'Succeeded', 'Failed', 'Skipped']),
  startedTime: iso,
  endedTime: iso.optional(),
  detail: text.optional(),
});

export const runView = z
  .object({
    id: text,
    state: z.enum(['Running', 'Succeeded', 'Failed', 'RolledBack', 'NotPromoted', 'Registered']),
    currentStep: text.optional(),
    steps: z.array(runStep),
    createdTime: iso.optional(),
    lastUpdatedTime: iso.optional(),
    error: errorInfo.optional(),
    result: z
      .object({
        outcome: z.enum(['Deployed', 'Updated']).optional(),
        serviceName: text.optional(),
        scoringUri: text.optional(),
        swaggerUri: text.optional(),
        model: text.optional(),
        image: text.optional(),
        smokeTest: z.object({ latencyMs: z.number().optional(), swagger: text.optional(), checks: z.array(text).optional() }).optional(),
        promotion: z.object({ promote: z.boolean(), reasons: z.array(text) }).optional(),
        batch: z.union([z.object({ runId: text, statusUri: text }), z.object({ error: errorInfo })]).optional(),
        notes: z.array(text).optional(),
        update: z
          .object({ mode: z.enum(['inPlace', 'blueGreen']), fields: z.array(text) })
          .optional()
          .meta({ description: 'PATCH /api/services/{name} runs: in place (same slot, no replica restarted) or blue/green, and the fields changed' }),
      })
      .optional(),
  })
  .meta({
    examples: [
      {
        id: 'deploy-http-4f1c…',
        state: 'Succeeded',
        steps: [{ name: 'register', state: 'Succeeded', startedTime: '2026-11-29T10:00:00.000Z', endedTime: '2026-11-29T10:00:00.500Z', detail: 'diabetes-linear:1' }],
        result: { outcome: 'Deployed', serviceName: 'diabetes', scoringUri: 'http://127.0.0.1:40123/score', model: 'diabetes-linear:1', image: 'diabetes-node:1' },
      },
    ],
  });

const thresholdView = z.object({ threshold: text, limit: z.number(), observed: z.number(), message: text });

export const batchProgress = z.object({
  phase: text,
  miniBatches: z.object({ total: z.number(), done: z.number(), failed: z.number() }),
  items: z.object({ total: z.number(), done: z.number(), succeeded: z.number(), failed: z.number() }),
  rowsPerSecond: z.number(),
  etaSeconds: z.number().nullable(),
  percent: z.number(),
  startedAt: iso.optional(),
  updatedAt: iso,
  threshold: thresholdView.optional(),
  lastError: errorInfo.extend({ miniBatch: z.number().optional() }).optional(),
});

const countsOf = z.record(z.string(), z.number());

export const batchRunView = z
  .object({
    id: text,
    kind: z.literal('batch'),
    name: text.optional(),
    runtimeStatus: text,
    state: z.enum(['Pending', 'Running', 'Succeeded', 'Failed', 'Terminated']),
    phase: text.optional(),
    createdTime: iso.optional(),
    lastUpdatedTime: iso.optional(),
    progress: batchProgress.optional(),
    counts: z.object({ items: countsOf, miniBatches: countsOf }).optional(),
    threshold: thresholdView.optional(),
    error: errorInfo.optional(),
    job: z.object({
      model: text.optional(),
      image: text.optional(),
      inputKind: z.enum(['files', 'tabular']),
      inputs: z.union([z.object({ kind: z.literal('prefix'), container: text, prefix: text }), z.object({ kind: z.literal('blobs'), count: z.number() })]),
      nodeCount: z.number(),
      processCountPerNode: z.number(),
      errorThreshold: z.number(),
      allowedFailedCount: z.number(),
      allowedFailedPercent: z.number(),
      outputAction: z.enum(['append_row', 'summary_only']),
    }),
    pool: z.object({ poolId: text, kind: text }),
    output: text.nullable().meta({ description: 'The merged output (append_row) as container/blob' }),
    summary: text,
    source: z.object({ kind: text, eventId: text.optional(), location: text.optional() }),
  })
  ;

export const modelRecord = z
  .object({
    id: text.meta({ examples: ['diabetes-linear:1'] }),
    name: text,
    version: z.number().int(),
    state: z.enum(['Registering', 'Registered']),
    description: text.optional(),
    tags: stringMap,
    properties: stringMap,
    files: z.array(z.object({ path: text, size: z.number(), sha256: text, blob: text })),
    createdTime: iso,
    source: z.object({ kind: z.enum(['blob', 'http', 'servicebus', 'api']), eventId: text, trainingRunId: text.optional(), location: text.optional() }),
    location: text,
  })
  ;

export const imageRecord = z
  .object({
    id: text.meta({ examples: ['diabetes-node:1'] }),
    name: text,
    version: z.number().int(),
    state: z.enum(['Running', 'Succeeded', 'Failed']),
    runtime: z.enum(['python', 'node', 'onnx']),
    models: z.array(text),
    entryScript: text.optional(),
    environmentFile: z.object({ path: text, kind: text }).optional(),
    baseImage: text.optional(),
    baseImageRegistry: text.optional(),
    description: text.optional(),
    tags: stringMap,
    contextBlob: text,
    digest: text.optional(),
    imageRef: text.optional(),
    logBlob: text.optional(),
    error: errorInfo.optional(),
    builder: text.optional(),
    createdTime: iso,
    updatedTime: iso,
    eventId: text,
  })
  ;

export const serviceRecord = z
  .object({
    name: text,
    state: z.enum(['Transitioning', 'Healthy', 'Failed', 'Deleting']),
    target: z.enum(['local', 'aci', 'aks']),
    image: text.optional(),
    runtime: text.optional(),
    models: z.array(text),
    config: z.object({
      cpuCores: z.number(),
      memoryGb: z.number(),
      authEnabled: z.boolean(),
      numReplicas: z.number().optional(),
      autoscaleEnabled: z.boolean(),
      autoscaleMinReplicas: z.number(),
      autoscaleMaxReplicas: z.number(),
      autoscaleTargetUtilization: z.number(),
      autoscaleRefreshSeconds: z.number(),
      replicaMaxConcurrentRequests: z.number(),
      scoringTimeoutMs: z.number(),
      maxRequestWaitTimeMs: z.number(),
      tls: z
        .object({ cert: z.record(z.string(), text), key: z.record(z.string(), text), cname: text.optional() })
        .optional()
        .meta({ description: 'ssl_enabled: where the certificate and key are read (a Key Vault secret URI or a blob), never the PEM' }),
      extra: z.record(z.string(), z.unknown()).optional(),
    }),
    scoringUri: text.optional(),
    swaggerUri: text.optional(),
    activeSlot: text.optional(),
    authEnabled: z.boolean(),
    description: text.optional(),
    tags: stringMap,
    createdTime: iso,
    updatedTime: iso,
    lastError: errorInfo.optional(),
    currentDeployment: z.object({ runId: text, slot: text, image: text, startedTime: iso }).optional(),
    lastRunId: text.optional(),
    servingRunId: text.optional().meta({ description: 'the run that put the serving version (or its last in-place update) in place' }),
  })
  .meta({ description: 'Never carries keys (GET /api/services/{name}/keys).' });

export const serviceKeys = z.object({ primaryKey: text, secondaryKey: text });

export const listOf = <T extends z.ZodType>(item: T) => z.object({ value: z.array(item) });
export const versionsOf = <T extends z.ZodType>(item: T) => z.object({ latest: item, value: z.array(item).meta({ description: 'every version, newest first' }) });
export const deleted = z.object({ deleted: z.array(text) }).meta({ examples: [{ deleted: ['diabetes-linear:1'] }] });

export const health = z
  .object({ status: z.enum(['Healthy', 'Unhealthy']), storage: z.object({ reachable: z.boolean(), latencyMs: z.number().optional() }).optional(), error: errorInfo.optional() })
  .meta({ examples: [{ status: 'Healthy', storage: { reachable: true, latencyMs: 3 } }] });

export const deploymentAccepted = z
  .object({
    runId: text,
    started: z.boolean(),
    statusUri: text,
    serviceName: text.optional(),
    model: text.optional(),
    image: text.optional(),
    target: text.optional(),
    update: z.object({ mode: z.enum(['inPlace', 'blueGreen']), fields: z.array(text) }).optional().meta({ description: 'PATCH /api/services/{name}: how the update runs' }),
  })
  .meta({ examples: [{ runId: 'deploy-http-4f1c…', started: true, statusUri: 'http://127.0.0.1:7071/api/runs/deploy-http-4f1c…', serviceName: 'diabetes', model: 'diabetes-linear', image: 'diabetes-node', target: 'local' }] });

export const batchAccepted = z.object({ id: text, started: z.boolean(), statusUri: text, terminateUri: text });
export const batchTerminated = z.object({ id: text, terminated: z.boolean(), pool: z.object({ poolId: text, removed: z.boolean() }) });

/** `GET /api/runs`: one line per run, newest first. */
export const runSummary = z.object({
  id: text,
  type: z.enum(['deployment', 'batch']),
  state: text.meta({ description: 'Pending, Running, Succeeded, Failed, RolledBack, NotPromoted, Registered, Terminated' }),
  createdTime: iso.optional(),
  lastUpdatedTime: iso.optional(),
  serviceName: text.optional(),
  model: text.optional(),
  image: text.optional(),
  currentStep: text.optional(),
  error: errorInfo.optional(),
});
export const runsPage = z
  .object({
    value: z.array(runSummary),
    continuationToken: text.optional().meta({ description: 'Pass it back as ?continuationToken= for the next page' }),
    nextLink: text.optional().meta({ description: 'The next page: path and query (the function key is never echoed)' }),
    asOf: iso.meta({ description: 'When the runs were read: pass it back as ?changedSince= to get only what changed since (new runs and runs not ended)' }),
  })
  .meta({ examples: [{ value: [{ id: 'deploy-http-4f1c…', type: 'deployment', state: 'Succeeded', createdTime: '2026-11-29T10:00:00.000Z', serviceName: 'diabetes' }], asOf: '2026-11-29T10:00:02.000Z' }] });

/** `GET /api/services/{name}/logs`: the last lines of the slot's scoring replicas' output (secrets redacted). */
export const serviceLogs = z
  .object({ service: text, slot: text, tail: z.number().int(), lines: z.array(text) })
  .meta({ examples: [{ service: 'diabetes', slot: 'blue', tail: 100, lines: ['listening on 127.0.0.1:40123'] }] });

/** `GET /api/services/{name}/token` (AML `service.get_token()`): times in Unix seconds. */
export const serviceToken = z.object({ accessToken: text, tokenType: z.literal('Bearer'), expiryOn: z.number().int(), refreshAfter: z.number().int() });

/** `POST /api/runs/{id}/approve|reject|abort`: the decision as sent to the rollout. */
export const rolloutDecisionAccepted = z
  .object({ runId: text, action: z.enum(['approve', 'reject', 'abort']), at: iso, reason: text.optional(), by: text.optional() })
  .meta({ examples: [{ runId: 'deploy-http-4f1c…', action: 'approve', at: '2026-11-29T10:05:00.000Z', by: 'alice' }] });

/** The OpenAPI document itself (`GET /api/openapi.json`). */
export const openApiDocument = z.object({ openapi: text, info: z.object({ title: text, version: text }), paths: z.record(z.string(), z.unknown()) });

// ---------------------------------------------------------------- compile-time checks against the handlers' types

/**
 * `T` (what the handler returns) fits the schema's type `S` (every field compatible), and every top-level field of
 * `T` is in the schema; otherwise the check's type names the missing fields and `SCHEMA_CHECKS` does not build.
 */
type Covers<S, T extends S> = [Exclude<keyof T, keyof S>] extends [never] ? true : { fieldsMissingFromTheSchema: Exclude<keyof T, keyof S> };
export const SCHEMA_CHECKS: [
  Covers<z.infer<typeof runView>, RunView>,
  Covers<z.infer<typeof batchRunView>, BatchRunView>,
  Covers<z.infer<typeof modelRecord>, ModelRecord>,
  Covers<z.infer<typeof imageRecord>, ImageRecord>,
  Covers<z.infer<typeof serviceRecord>, ServiceRecord>,
  // `tokenSecret` (token auth's signing secret) is never in an answer: `/keys` returns the two keys only.
  Covers<z.infer<typeof serviceKeys>, Omit<ServiceKeys, 'tokenSecret'>>,
  Covers<z.infer<typeof errorInfo>, ErrorInfo>,
  Covers<z.infer<typeof runSummary>, RunSummary>,
  Covers<z.infer<typeof serviceToken>, IssuedToken>,
] = [true, true, true, true, true, true, true, true, true];

/** The body of `POST /api/runs/{id}/approve|reject|abort`: why, and who (defaults to the authenticated principal). */
export const rolloutDecisionSchema = z.strictObject({
  reason: z.string().max(500, 'must be at most 500 characters').optional(),
  by: z.string().min(1).max(128, 'must be at most 128 characters').optional(),
});

/** `GET /api/services/{name}/metrics` (shared/scoring/metrics.ts: `ServiceMetrics`). */
export const serviceMetrics = z
  .object({
    service: text,
    slot: text.optional(),
    sampledTime: text,
    score: z.object({ requests: z.number(), serverErrors: z.number(), clientErrors: z.number(), durationSecondsSum: z.number(), durationCount: z.number() }),
    requestsTotal: z.number(),
    inflight: z.number(),
    queued: z.number(),
    workersReady: z.number(),
    workers: z.number(),
    workerRestarts: z.number(),
    rejected: z.number(),
  })
  .meta({ description: 'Cumulative counters of the serving slot\'s replicas: rates are the difference of two samples over their sampledTime.' });
