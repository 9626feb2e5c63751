/**
 * The batch scoring job definition (`batch.json`, `POST /api/batch-runs`, or a Service Bus message).
 *
 * Field names and meanings follow Azure ML's ParallelRunConfig (azureml-pipeline-steps):
 * https://learn.microsoft.com/en-us/python/api/azureml-pipeline-steps/azureml.pipeline.steps.parallelrunconfig
 * Validation is strict: an unknown field is an error that names its path (`inputs.prefixx`).
 *
 * Example:
 * {
 *   "model": "iris:2", "entry_script": "score.py",
 *   "inputs": { "container": "batch-data", "prefix": "iris/" }, "input_kind": "tabular",
 *   "mini_batch_size": "1MB", "node_count": 2, "error_threshold": 10,
 *   "output_action": "append_row", "output": { "container": "batch-output", "prefix": "iris/" }
 * }
 */
import * as os from 'os';
import { z } from 'zod';
import { AppError } from '../errors';
import { blobNameReason, IMAGE_NAME_RE, IMAGE_NAME_RULE, MODEL_NAME_RE, MODEL_NAME_RULE, unsafePathReason } from '../manifest/names';
import { capList, describeIssues, parseManifestText } from '../manifest/schema';
import { canonicalBlobFolder, canonicalBlobRef, CONTAINER_NAME_RE, systemContainerReason } from '../storage';
import type { RuntimeKind } from '../seams';
import {
  DEFAULT_FILES_PER_MINI_BATCH,
  DEFAULT_TABULAR_MINI_BATCH_BYTES,
  MiniBatchSize,
  parseFilesSize,
  parseTabularSize,
} from './size';

export type InputKind = 'files' | 'tabular';
export type TabularFormat = 'csv' | 'jsonl';
export type OutputAction = 'append_row' | 'summary_only';

/** Where the inputs are: every blob under a prefix of one container, or an explicit list of blobs. */
export type BatchInputs =
  | { kind: 'prefix'; container: string; prefix: string }
  /** `container/blob/name` references, in the order given (URIs are resolved against the storage account). */
  | { kind: 'blobs'; blobs: Array<{ container: string; blob: string }> };

/** A validated, defaulted job definition. Plain JSON (it travels through activities and into the summary). */
export interface BatchJob {
  name?: string;
  /** `model: "name[:version]"` — version omitted = latest. Exactly one of model / image. */
  model?: { name: string; version?: number };
  /** `image: "name:version"`. */
  image?: { name: string; version: number };
  /** Script with init() / run(mini_batch). Required with `model`; with `image` the image's own script runs. */
  entryScript?: string;
  /**
   * Blob folder (`container/folder`) that holds `entry_script` (ParallelRunConfig.source_directory). Defaults to
   * the job file's folder for a dropped `batch.json`; required with `model` otherwise.
   */
  sourceDirectory?: string;
  runtime?: RuntimeKind;
  inputs: BatchInputs;
  inputKind: InputKind;
  /** Tabular only. Omitted = per file by extension (`.jsonl`/`.ndjson`/`.json` → jsonl, else csv). */
  inputFormat?: TabularFormat;
  /** Tabular CSV only: the first record of each file is a header (default true). */
  csvHeader: boolean;
  miniBatchSize: MiniBatchSize;
  nodeCount: number;
  processCountPerNode: number;
  errorThreshold: number;
  allowedFailedCount: number;
  allowedFailedPercent: number;
  outputAction: OutputAction;
  appendRowFileName: string;
  output: { container: string; prefix: string };
  runInvocationTimeoutSeconds: number;
  runMaxTry: number;
}

/** Largest job file accepted (bytes): `inputs.uris` may list up to 100,000 blobs. */
export const MAX_JOB_BYTES = 16 * 1024 * 1024;

export const DEFAULT_APPEND_ROW_FILE_NAME = 'parallel_run_step.txt';
export const DEFAULT_OUTPUT_CONTAINER = 'batch-output';

/** Azure container names: 3-63 chars, lowercase letters, digits, single hyphens, starting with a letter or digit. */
const containerName = z
  .string()
  .regex(CONTAINER_NAME_RE, 'must be a storage container name (3-63 lowercase letters, digits, single hyphens)');
/** A blob name prefix: `""`, or segments without `..`, `.`, empty segments, `\\`, `%` (may end with `/`). */
const prefix = z
  .string()
  .max(1024)
  .superRefine((p, ctx) => {
    const why = p.startsWith('/') ? 'must not start with "/"' : blobNameReason(p, { prefix: true });
    if (why) ctx.addIssue({ code: 'custom', message: why });
  });
const positiveInt = z.number().int().min(1);

const rawSchema = z
  .strictObject({
    name: z.string().min(1).max(256).optional(),
    model: z
      .string()
      .refine(
        (s) => refOk(s, MODEL_NAME_RE, false),
        `must be "name" or "name:version" (name: ${MODEL_NAME_RULE}; version: 1, 2, ...)`,
      )
      .optional(),
    image: z
      .string()
      .refine((s) => refOk(s, IMAGE_NAME_RE, true), `must be "name:version" (name: ${IMAGE_NAME_RULE}; version: 1, 2, ...)`)
      .optional(),
    entry_script: z
      .string()
      .superRefine((s, ctx) => {
        const why = unsafePathReason(s);
        if (why) ctx.addIssue({ code: 'custom', message: why });
        else if (!/\.(py|js|ts)$/.test(s)) ctx.addIssue({ code: 'custom', message: 'must be a .py, .js or .ts file with init() and run(mini_batch)' });
      })
      .optional(),
    source_directory: z
      .string()
      .min(1)
      .max(1024)
      .refine((d) => !/[?#]/.test(d), 'must be a blob folder "container/folder" without a query string or SAS token')
      .superRefine((d, ctx) => {
        if (/[?#]/.test(d)) return;
        try {
          canonicalBlobFolder(d, 'source_directory');
        } catch (e) {
          if (!(e instanceof AppError)) throw e;
          ctx.addIssue({ code: 'custom', message: e.message.replace(/^source_directory:? /, '') });
        }
      })
      .optional(),
    runtime: z.enum(['python', 'node', 'onnx']).optional(),
    inputs: z.strictObject({
      container: containerName.optional(),
      prefix: prefix.optional(),
      uris: z.array(z.string().min(1)).max(100_000).optional(),
    }),
    input_kind: z.enum(['files', 'tabular']).default('files'),
    input_format: z.enum(['csv', 'jsonl']).optional(),
    csv_header: z.boolean().optional(),
    mini_batch_size: z.union([z.number(), z.string()], { error: 'must be a number of files (10) or a size ("1MB", "512KB", "50 rows")' }).optional(),
    node_count: positiveInt.max(100).default(1),
    process_count_per_node: positiveInt.max(256).optional(),
    // [-1, int.max]; -1 ignores all failures (ParallelRunConfig.error_threshold).
    error_threshold: z.number().int().min(-1).default(-1),
    // [-1, int.max]; -1 ignores all failures (ParallelRunConfig.allowed_failed_count).
    allowed_failed_count: z.number().int().min(-1).default(-1),
    // [0, 100]; 100 ignores all failures (ParallelRunConfig.allowed_failed_percent).
    allowed_failed_percent: z.number().min(0).max(100).default(100),
    output_action: z.enum(['append_row', 'summary_only']).default('append_row'),
    append_row_file_name: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,255}$/, 'must be a plain file name (letters, digits, ".", "_", "-")')
      .refine((s) => s !== '.' && s !== '..', 'must be a plain file name')
      .optional(),
    output: z
      .strictObject({ container: containerName, prefix: prefix.default('') })
      .default({ container: DEFAULT_OUTPUT_CONTAINER, prefix: '' }),
    // Seconds per run() invocation; AML allows (0, 259200], default 60.
    run_invocation_timeout: z.number().gt(0).max(259200).default(60),
    // [1, int.max], default 3 (ParallelRunConfig.run_max_try).
    run_max_try: positiveInt.max(100).default(3),
  })
  .superRefine((j, ctx) => {
    if (!!j.model === !!j.image) {
      ctx.addIssue({ code: 'custom', path: j.model ? ['image'] : ['model'], message: 'give exactly one of "model" ("name[:version]") or "image" ("name:version")' });
    }
    if (j.model && !j.entry_script) {
      ctx.addIssue({ code: 'custom', path: ['entry_script'], message: 'is required with "model": the script with init() and run(mini_batch)' });
    }
    if (j.source_directory !== undefined && !j.model) {
      ctx.addIssue({ code: 'custom', path: ['source_directory'], message: 'applies to "model" jobs only: an image runs its own entry script' });
    }
    const { container, prefix: pfx, uris } = j.inputs;
    if (uris !== undefined) {
      if (container !== undefined || pfx !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['inputs'], message: 'give either "container" + "prefix" or "uris", not both' });
      }
    } else {
      if (container === undefined) ctx.addIssue({ code: 'custom', path: ['inputs', 'container'], message: 'is required (or give "uris")' });
      if (pfx === undefined) {
        ctx.addIssue({ code: 'custom', path: ['inputs', 'prefix'], message: 'is required: the folder of input blobs, e.g. "data/"; use "" for the whole container' });
      }
    }
    if (container !== undefined && pfx !== undefined && container === j.output.container) {
      const outPrefix = j.output.prefix;
      if (outPrefix.startsWith(pfx) || pfx.startsWith(outPrefix)) {
        ctx.addIssue({
          code: 'custom',
          path: ['output', 'prefix'],
          message: `overlaps the inputs (${container}/${pfx}): outputs would become inputs of the next run; use another output container or prefix`,
        });
      }
    }
    if (j.input_kind === 'files') {
      if (j.input_format !== undefined) ctx.addIssue({ code: 'custom', path: ['input_format'], message: 'applies to input_kind "tabular" only' });
      if (j.csv_header !== undefined) ctx.addIssue({ code: 'custom', path: ['csv_header'], message: 'applies to input_kind "tabular" only' });
    }
    if (j.append_row_file_name !== undefined && j.output_action !== 'append_row') {
      ctx.addIssue({ code: 'custom', path: ['append_row_file_name'], message: 'applies to output_action "append_row" only' });
    }
    if (j.mini_batch_size !== undefined) {
      const parsed = j.input_kind === 'files' ? parseFilesSize(j.mini_batch_size) : parseTabularSize(j.mini_batch_size);
      if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', path: ['mini_batch_size'], message: parsed });
    }
  });

export type RawBatchJob = z.input<typeof rawSchema>;
/** The job definition's schema (what `POST /api/batch-runs` and `batch.json` are validated with; the OpenAPI document shows it). */
export const batchJobSchema = rawSchema;

export interface ParseOptions {
  /** Cores of one node: the default process_count_per_node (AML: "the number of cores" for CPU compute). */
  coresPerNode?: number;
}

/**
 * Resolves `https://<account>/<container>/<blob>` (or a plain `container/blob`) to a checked blob reference
 * (`canonicalBlobRef`: no traversal or encoded separators, a user container), or says why it is not one.
 */
export function resolveInputUri(uri: string, accountUrl?: string): { container: string; blob: string } | string {
  try {
    const ref = canonicalBlobRef(uri, { field: 'the input', ...(accountUrl ? { accountUrl } : {}) });
    if (!CONTAINER_NAME_RE.test(ref.container)) return `"${ref.container}" in "${uri}" is not a storage container name`;
    return { container: ref.container, blob: ref.blob };
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    if (e.code === 'SasNotAllowed') return 'blob URIs must not carry a query string or SAS token: the service reads inputs with its own identity';
    if (e.code === 'ForeignStorageAccount') return `"${uri.replace(/[?#].*$/s, '')}" is not in this service's storage account; copy the inputs there`;
    if (e.code === 'InvalidBlobReference' && /does not name a blob/.test(e.message)) return `"${uri}" does not name a blob: expected <container>/<blob name>`;
    return e.message;
  }
}

/**
 * Validates and defaults a job definition. Throws AppError `InvalidJobDefinition` (400) listing every problem.
 * `accountUrl` (the blob service URL) resolves absolute input URIs; without it only path-style URIs resolve.
 */
export function parseBatchJob(input: unknown, opts: ParseOptions & { accountUrl?: string } = {}): BatchJob {
  const r = rawSchema.safeParse(input);
  if (!r.success) throw invalid([describeIssues(r.error.issues)]);
  const j = r.data;

  let inputs: BatchInputs;
  if (j.inputs.uris !== undefined) {
    const problems: string[] = [];
    const blobs: Array<{ container: string; blob: string }> = [];
    j.inputs.uris.forEach((u, i) => {
      const ref = resolveInputUri(u, opts.accountUrl);
      if (typeof ref === 'string') problems.push(`inputs.uris.${i}: ${ref}`);
      else blobs.push(ref);
    });
    if (problems.length) throw invalid(problems);
    inputs = { kind: 'blobs', blobs };
  } else {
    inputs = { kind: 'prefix', container: j.inputs.container!, prefix: j.inputs.prefix! };
  }

  const miniBatchSize: MiniBatchSize =
    j.mini_batch_size === undefined
      ? j.input_kind === 'files'
        ? { unit: 'files', files: DEFAULT_FILES_PER_MINI_BATCH }
        : { unit: 'bytes', bytes: DEFAULT_TABULAR_MINI_BATCH_BYTES }
      : ((j.input_kind === 'files' ? parseFilesSize(j.mini_batch_size) : parseTabularSize(j.mini_batch_size)) as MiniBatchSize);

  const job: BatchJob = {
    ...(j.name !== undefined ? { name: j.name } : {}),
    ...(j.model !== undefined ? { model: parseRef(j.model) } : {}),
    ...(j.image !== undefined ? { image: parseRef(j.image) as { name: string; version: number } } : {}),
    ...(j.entry_script !== undefined ? { entryScript: j.entry_script } : {}),
    ...(j.source_directory !== undefined ? { sourceDirectory: j.source_directory.replace(/\/+$/, '') } : {}),
    ...(j.runtime !== undefined ? { runtime: j.runtime } : {}),
    inputs,
    inputKind: j.input_kind,
    ...(j.input_format !== undefined ? { inputFormat: j.input_format } : {}),
    csvHeader: j.csv_header ?? true,
    miniBatchSize,
    nodeCount: j.node_count,
    processCountPerNode: j.process_count_per_node ?? Math.max(1, opts.coresPerNode ?? os.availableParallelism()),
    errorThreshold: j.error_threshold,
    allowedFailedCount: j.allowed_failed_count,
    allowedFailedPercent: j.allowed_failed_percent,
    outputAction: j.output_action,
    appendRowFileName: j.append_row_file_name ?? DEFAULT_APPEND_ROW_FILE_NAME,
    output: { container: j.output.container, prefix: normalizePrefix(j.output.prefix) },
    runInvocationTimeoutSeconds: j.run_invocation_timeout,
    runMaxTry: j.run_max_try,
  };
  // The app's own containers (host keys, task hub state, pool keys) are neither inputs, scripts nor outputs.
  const problems: string[] = [];
  const containers: Array<[string, string]> = [
    ...(inputs.kind === 'prefix' ? [[inputs.container, 'inputs.container'] as [string, string]] : inputs.blobs.map((b, i) => [b.container, `inputs.uris.${i}`] as [string, string])),
    [job.output.container, 'output.container'],
    ...(job.sourceDirectory ? [[job.sourceDirectory.split('/')[0], 'source_directory'] as [string, string]] : []),
  ];
  for (const [container, field] of containers) {
    const why = systemContainerReason(container);
    if (why) problems.push(`${field}: container "${container}" ${why}; use a container of your own`);
  }
  if (problems.length) throw invalid(problems);
  return job;
}

/** Parses a job file's text (`batch.json`, or YAML by name) into a job; a syntax error is `InvalidJobDefinition` too. */
export function parseBatchJobText(text: string, opts: ParseOptions & { accountUrl?: string; fileName?: string } = {}): BatchJob {
  let data: unknown;
  try {
    data = parseManifestText(text, opts.fileName ?? 'batch.json', undefined, MAX_JOB_BYTES);
  } catch (e) {
    if (e instanceof AppError && (e.code === 'InputTooDeep' || e.code === 'InputTooLarge')) throw e;
    throw invalid([(e as Error).message]);
  }
  return parseBatchJob(data, opts);
}

/** Workers in the pool: node_count × process_count_per_node. */
export function workerCount(job: BatchJob): number {
  return job.nodeCount * job.processCountPerNode;
}

/** `name[:version]` with a name matching `re`; the version is required when `versionRequired`. */
function refOk(s: string, re: RegExp, versionRequired: boolean): boolean {
  const m = /^(.*?)(?::([1-9][0-9]{0,8}))?$/.exec(s);
  if (!m || !re.test(m[1])) return false;
  return !versionRequired || m[2] !== undefined;
}

function parseRef(s: string): { name: string; version?: number } {
  const i = s.lastIndexOf(':');
  if (i < 0) return { name: s };
  return { name: s.slice(0, i), version: Number(s.slice(i + 1)) };
}

/** `""` stays `""`; anything else ends with exactly one `/`. */
function normalizePrefix(p: string): string {
  return p === '' ? '' : p.replace(/\/*$/, '/');
}

function invalid(problems: string[]): AppError {
  return new AppError('InvalidJobDefinition', `Invalid batch job definition: ${capList(problems).join('; ')}`, 400);
}
