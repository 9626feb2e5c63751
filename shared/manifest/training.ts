/**
 * The Service Bus `training-completed` message (from a training job) and the promotion-policy check.
 *
 * ```json
 * { "model_name": "diabetes", "training_run_id": "run-42",
 *   "artifacts": ["https://<account>.blob.core.windows.net/outputs/run-42/model.json"],   // or [{ "path", "uri" }]
 *   "metrics": { "r2": 0.47, "rmse": 53.1 },
 *   "tags": {}, "properties": {}, "description": "…",
 *   "promotion": { "min_metrics": { "r2": 0.4 } },                          // optional
 *   "deploy": { "image": {…}, "target": "local", "service": {…}, "smoke_test": {…} },  // optional: deploy.json minus model
 *   "batch": { "inputs": {…}, "entry_script": "score.py", "source_directory": "…", … } }  // optional: score after deploying
 * ```
 * Artifact URIs are blob URLs of this app's storage account or `container/path` references (a SAS query is dropped).
 */
import { z } from 'zod';
import { AppError, badRequest } from '../errors';
import { parseBatchJob } from '../batch/job';
import { assertValueBounds, checkInputSize, parseJsonBounded } from '../parse';
import { canonicalBlobRef } from '../storage';
import { checkModelName, checkRelativePath } from './names';
import { describeIssues, description, MANIFEST_LIMITS, metricMap, stringMap, validateManifest, type DeploymentManifest, type FileRef, type PromotionPolicy } from './schema';

const artifact = z.union([z.string().min(1), z.strictObject({ path: z.string().optional(), uri: z.string().min(1) })], {
  error: 'must be a blob URL or "container/path", or { "path": "model.json", "uri": "…" }',
});

const messageSchema = z.strictObject({
  model_name: z.string(),
  training_run_id: z.string().min(1).max(256),
  artifacts: z.array(artifact).min(1, 'must list at least one artifact').max(MANIFEST_LIMITS.modelFiles, `must list at most ${MANIFEST_LIMITS.modelFiles} artifacts`),
  metrics: metricMap.optional(),
  tags: stringMap.optional(),
  properties: stringMap.optional(),
  description: description.optional(),
  promotion: z.strictObject({ min_metrics: metricMap.optional(), max_metrics: metricMap.optional() }).optional(),
  deploy: z.record(z.string(), z.unknown()).optional(),
  /** Batch scoring to run once the model is deployed (a batch job definition; `model` defaults to this model). */
  batch: z.record(z.string(), z.unknown()).optional(),
});

/** Largest training-completed message accepted (bytes; it may carry a batch job with many input URIs). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface TrainingCompleted {
  modelName: string;
  trainingRunId: string;
  metrics: Record<string, number>;
  /** Model registration input: files with blob sources, tags, properties (incl. the run id and metrics). */
  model: DeploymentManifest['model'];
  /** Present when the message carries deploy settings. */
  manifest?: DeploymentManifest;
  /** From `promotion` (or `deploy.promotion`); absent → always promote. */
  promotion?: PromotionPolicy;
  /** Batch job to start after a successful deployment (validated here; `model` defaults to this model). */
  batch?: Record<string, unknown>;
}

/** The URI without query string (SAS) or fragment: safe to record and log. */
export function stripQuery(uri: string): string {
  return uri.replace(/[?#].*$/, '');
}

function artifactRef(a: z.infer<typeof artifact>, i: number, accountUrl?: string): FileRef {
  const uri = typeof a === 'string' ? a : a.uri;
  // SAS tokens are dropped: the app reads artifacts with its own identity, and run inputs/history stay secret-free.
  // The reference is checked (traversal, encoding, account, container) first; the run reads its canonical form.
  const source = stripQuery(uri);
  const { blob } = canonicalBlobRef(source, { field: `artifacts[${i}].uri`, ...(accountUrl ? { accountUrl } : {}) });
  const p = (typeof a === 'string' ? undefined : a.path) ?? blob.split('/').pop()!;
  checkRelativePath(p, `artifacts[${i}].path`);
  return { path: p, source };
}

/**
 * Parses a message body (string, Buffer or already-parsed object). Not JSON → 400 `MessageNotJson`;
 * wrong shape → 400 `InvalidMessage` naming the fields; deploy settings are validated as a manifest.
 */
export function parseTrainingCompleted(body: unknown, opts: { accountUrl?: string } = {}): TrainingCompleted {
  let value = body;
  const bounds = { what: 'The training-completed message', maxBytes: MAX_MESSAGE_BYTES };
  if (Buffer.isBuffer(value)) {
    checkInputSize(value, bounds);
    value = value.toString('utf8');
  }
  if (typeof value === 'string') {
    try {
      value = parseJsonBounded(value, { ...bounds, malformedCode: 'MessageNotJson' });
    } catch (e) {
      if (e instanceof AppError && e.code === 'MessageNotJson') throw badRequest('MessageNotJson', e.message.replace('is not valid JSON', 'is not JSON'));
      throw e;
    }
  } else {
    // Already parsed (the Functions library parses JSON bodies): the same depth and size bounds, before anything walks it.
    assertValueBounds(value, bounds);
  }
  const parsed = messageSchema.safeParse(value);
  if (!parsed.success) throw badRequest('InvalidMessage', `training-completed message: ${describeIssues(parsed.error.issues)}`);
  const m = parsed.data;
  const name = checkModelName(m.model_name, 'model_name');
  const files = m.artifacts.map((a, i) => artifactRef(a, i, opts.accountUrl));
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) throw badRequest('InvalidMessage', `training-completed message: two artifacts map to "${f.path}"; give each a distinct "path".`);
    seen.add(f.path);
  }
  const metrics = m.metrics ?? {};
  const properties: Record<string, string> = { ...(m.properties ?? {}), training_run_id: m.training_run_id };
  for (const [k, v] of Object.entries(metrics)) properties[`metrics.${k}`] = String(v);
  const model: DeploymentManifest['model'] = {
    name,
    files,
    tags: m.tags ?? {},
    properties,
    ...(m.description !== undefined ? { description: m.description } : {}),
  };

  let manifest: DeploymentManifest | undefined;
  if (m.deploy) {
    if ('model' in m.deploy) throw badRequest('InvalidMessage', 'training-completed message: deploy.model: unknown field (the model comes from model_name and artifacts).');
    manifest = validateManifest(
      { ...m.deploy, model: { name, files: files.map((f) => ({ path: f.path, source: f.source })), tags: model.tags, properties, ...(m.description !== undefined ? { description: m.description } : {}) } },
      { name, nameSource: 'model name', fileName: 'training-completed message deploy' },
    );
  }
  if (m.batch) {
    // Checked now, so a bad job is rejected (and dead-lettered with the reason) before anything is registered.
    const raw: Record<string, unknown> = { ...m.batch };
    if (raw.model === undefined && raw.image === undefined) raw.model = name;
    try {
      parseBatchJob(raw, opts.accountUrl ? { accountUrl: opts.accountUrl } : {});
    } catch (e) {
      if (e instanceof AppError) throw new AppError(e.code, `training-completed message: batch: ${e.message}`, 400);
      throw e;
    }
  }
  const policy = m.promotion ? { minMetrics: m.promotion.min_metrics ?? {}, maxMetrics: m.promotion.max_metrics ?? {} } : manifest?.promotion;
  return { modelName: name, trainingRunId: m.training_run_id, metrics, model, ...(manifest ? { manifest } : {}), ...(policy ? { promotion: policy } : {}), ...(m.batch ? { batch: m.batch } : {}) };
}

export interface PromotionDecision {
  promote: boolean;
  /** Why not (one line per failed rule), or what passed. */
  reasons: string[];
}

/** Checks metrics against a promotion policy: every min/max rule must hold; a missing metric fails its rule. */
export function checkPromotion(policy: PromotionPolicy | undefined, metrics: Record<string, number>): PromotionDecision {
  if (!policy) return { promote: true, reasons: ['no promotion policy'] };
  const failed: string[] = [];
  const passed: string[] = [];
  for (const [k, min] of Object.entries(policy.minMetrics)) {
    const v = metrics[k];
    if (typeof v !== 'number' || Number.isNaN(v)) failed.push(`metric ${k} is missing (policy requires ≥ ${min})`);
    else if (v < min) failed.push(`metric ${k} = ${v} is below the minimum ${min}`);
    else passed.push(`${k} = ${v} ≥ ${min}`);
  }
  for (const [k, max] of Object.entries(policy.maxMetrics)) {
    const v = metrics[k];
    if (typeof v !== 'number' || Number.isNaN(v)) failed.push(`metric ${k} is missing (policy requires ≤ ${max})`);
    else if (v > max) failed.push(`metric ${k} = ${v} is above the maximum ${max}`);
    else passed.push(`${k} = ${v} ≤ ${max}`);
  }
  return failed.length ? { promote: false, reasons: failed } : { promote: true, reasons: passed.length ? passed : ['policy has no rules'] };
}
