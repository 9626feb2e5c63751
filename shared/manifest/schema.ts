/**
 * The deployment manifest (`deploy.json`, JSON or YAML): one zod schema, strict (unknown fields are errors that
 * name the field path), with the AML deploy-configuration defaults applied per target.
 *
 * ```yaml
 * model:   { name: diabetes, files: [model.json], tags: {}, properties: {}, description: "" }
 * image:   { name: diabetes-node, runtime: node, entry_script: score.js, environment_file: package.json,
 *            base_image: myregistry.azurecr.io/base:1, base_image_registry: myregistry.azurecr.io }
 * target:  { kind: aks, autoscale_max_replicas: 4, auth_enabled: true }   # or just: target: local
 * service: { name: diabetes-svc, description: "" }
 * schema:  { input_sample: {data: [[...]]}, output_sample: [1.0] }
 * smoke_test: { sample: {data: [[...]]}, expected_output: [152.1], tolerance: 1e-6 }
 * promotion:  { min_metrics: { r2: 0.4 }, max_metrics: { rmse: 60 } }
 * ```
 * A file is a path relative to the manifest's folder (`model.json`) or `{ path, source }` where `source` is a
 * blob reference (`container/path` or a blob URL) — how HTTP deployments reference already uploaded files.
 */
import YAML from 'yaml';
import { z } from 'zod';
import { AppError, badRequest } from '../errors';
import { parseJsonBounded, parseYamlDocumentBounded, yamlToJs } from '../parse';
import type { DeployConfig, RuntimeKind, TargetKind } from '../seams';
import { blobRefString, canonicalBlobRef } from '../storage';
import { checkImageName, checkModelName, checkRelativePath, checkServiceName, parseVersion } from './names';
import { isProgressive, resolveRollout, rolloutSchema, type RolloutSpec } from '../rollout/spec';
import { checkCname, KEY_VAULT_SECRET, parseTlsRef, type TlsSettings } from '../tls';

// ---------------------------------------------------------------- parsed types

export interface FileRef {
  /** Path inside the model / image (`model.json`, `score.py`). */
  path: string;
  /** Blob reference of the content; absent → `<manifest folder>/<path>`. */
  source?: string;
}

export type EnvironmentKind = 'conda' | 'requirements' | 'npm';

/** Credentials of a base image registry: a user name and the password's Key Vault secret URI. */
export interface RegistryAuth {
  username: string;
  /** `https://<vault>.vault.azure.net/secrets/<name>[/<version>]`. */
  passwordSecret: string;
}

export interface PromotionPolicy {
  /** metric → minimum value (inclusive). */
  minMetrics: Record<string, number>;
  /** metric → maximum value (inclusive). */
  maxMetrics: Record<string, number>;
}

export interface DeploymentManifest {
  model: {
    name: string;
    /** Files to register as a new version; empty when `id` names a registered version, or when there is no model. */
    files: FileRef[];
    /** `model: { id: "name:version" }`: deploy a registered version; nothing is registered. */
    id?: string;
    /** The manifest has no `model` section: a script that needs no model (no version registered, none in the image). */
    none?: true;
    tags: Record<string, string>;
    properties: Record<string, string>;
    description?: string;
  };
  image: {
    name: string;
    /** Known once the image is resolved when `existing` is set (the door fills it from the image's record). */
    runtime?: RuntimeKind;
    /** `image: "name:version"`: deploy a built image; nothing is built (its models are the ones deployed). */
    existing?: string;
    /** Required for python/node; optional for onnx (served with no script). */
    entryScript?: FileRef;
    environmentFile?: FileRef & { kind: EnvironmentKind };
    baseImage?: string;
    /** The registry of `baseImage` (its host), pulled with the app's identity unless `baseImageRegistryAuth` is set. */
    baseImageRegistry?: string;
    /** A user name and the Key Vault secret URI of the password (never the password itself). */
    baseImageRegistryAuth?: RegistryAuth;
    description?: string;
    tags: Record<string, string>;
  };
  target: TargetKind;
  deployConfig: DeployConfig;
  /**
   * Keys the manifest sets (AML `primary_key` / `secondary_key`). Secrets: stored with the service's keys when the
   * run is accepted and removed from the run's input (shared/services/start.ts), so never in history or statuses.
   */
  userKeys?: { primaryKey?: string; secondaryKey?: string };
  service: { name: string; description?: string; tags: Record<string, string> };
  schema?: { inputSample?: unknown; outputSample?: unknown };
  smokeTest?: { sample?: unknown; sampleBase64?: string; expectedOutput?: unknown; expectedOutputFormat?: 'json' | 'text' | 'base64'; tolerance: number };
  promotion?: PromotionPolicy;
  /** Progressive delivery (shared/rollout/spec.ts); absent = blue/green. */
  rollout?: RolloutSpec;
}

// ---------------------------------------------------------------- zod schema (snake_case, AML style)

/** Limits checked when a manifest or message is parsed (the registry's own limits, so a refused input answers 400 at once). */
export const MANIFEST_LIMITS = {
  /** Characters of a description (model, image, service). */
  description: 8192,
  /** Characters of a tag/property key, and of a value. */
  mapKey: 256,
  mapValue: 4096,
  /** Entries of one tags/properties/metrics map, and its characters as JSON (it is stored in one table property). */
  mapEntries: 100,
  mapJson: 30_000,
  /** Files of one model (`MAX_MODEL_FILES`). */
  modelFiles: 200,
  /** Characters of other free-text fields (image references, locations, names of compute targets). */
  text: 512,
} as const;

const FILE_REF_RULE = 'must be a file path ("score.py") or { "path": "score.py", "source": "container/path" }';
export const description = z.string().max(MANIFEST_LIMITS.description, `must be at most ${MANIFEST_LIMITS.description} characters`);
const shortText = z.string().max(MANIFEST_LIMITS.text, `must be at most ${MANIFEST_LIMITS.text} characters`);
/** `{ key: value }` with the registry's limits. */
export function boundedMap<V extends z.ZodType>(value: V, what: string) {
  return z
    .record(z.string().min(1, 'keys must not be empty').max(MANIFEST_LIMITS.mapKey, `keys must be at most ${MANIFEST_LIMITS.mapKey} characters`), value, {
      error: (i) => (i.code === 'invalid_type' ? `must be an object of ${what}` : undefined),
    })
    .superRefine((m, ctx) => {
      const n = Object.keys(m).length;
      if (n > MANIFEST_LIMITS.mapEntries) ctx.addIssue({ code: 'custom', message: `has ${n} entries; at most ${MANIFEST_LIMITS.mapEntries} are allowed` });
      else if (JSON.stringify(m).length > MANIFEST_LIMITS.mapJson) ctx.addIssue({ code: 'custom', message: `is larger than ${MANIFEST_LIMITS.mapJson} characters in total` });
    });
}
export const stringMap = boundedMap(z.string().max(MANIFEST_LIMITS.mapValue, `values must be at most ${MANIFEST_LIMITS.mapValue} characters`), 'strings ("key": "value")');
const fileRef = z.union([z.string(), z.strictObject({ path: z.string(), source: z.string().optional() })], { error: FILE_REF_RULE });
export const metricMap = boundedMap(z.number(), 'numbers ("metric": 0.5)');

/** A user-supplied service key (AML `primary_key` / `secondary_key`): sent as `Bearer <key>`, so no spaces. Never echoed. */
const userKey = z.string().regex(/^[\x21-\x7e]{16,256}$/, 'must be 16–256 printable ASCII characters without spaces (the value is not shown)');

const tlsRefField = z.union([z.string().min(1), z.strictObject({ source: z.string().min(1) })], {
  error: 'must be a Key Vault secret URI, a path beside the manifest, a blob URL, or { "source": "container/path" } (never PEM text)',
});

export const targetCommonFields = {
  cpu_cores: z.number().positive().max(64).optional(),
  memory_gb: z.number().positive().max(256).optional(),
  auth_enabled: z.boolean().optional(),
  /** AML `collect_model_data`: the replicas write each scored request's input and output to blob storage (runtime/collector.ts). */
  collect_model_data: z.boolean().optional(),
  /** AML `enable_app_insights`: the replicas emit an OpenTelemetry span per request (runtime/telemetry.ts). */
  enable_app_insights: z.boolean().optional(),
  /** AML `token_auth_enabled`: Bearer JWTs from `GET /api/services/{name}/token`; exclusive with `auth_enabled`. */
  token_auth_enabled: z.boolean().optional(),
  primary_key: userKey.optional(),
  secondary_key: userKey.optional(),
  description: description.optional(),
  tags: stringMap.optional(),
  /**
   * AML TLS: `ssl_enabled` with the certificate and key as references (a Key Vault secret URI, a path beside the
   * manifest, a blob URL or `{ source: "container/path" }`); PEM text is refused (shared/tls.ts). Bounded by the
   * manifest's size only, so that PEM pasted here gets its own error (`SecretInManifest`) rather than a length one.
   */
  ssl_enabled: z.boolean().optional(),
  ssl_cert_pem_file: tlsRefField.optional(),
  ssl_key_pem_file: tlsRefField.optional(),
  ssl_cname: shortText.optional(),
};

export const targetScalingFields = {
  num_replicas: z.number().int().min(1).max(100).optional(),
  autoscale_enabled: z.boolean().optional(),
  autoscale_min_replicas: z.number().int().min(1).max(100).optional(),
  autoscale_max_replicas: z.number().int().min(1).max(100).optional(),
  autoscale_target_utilization: z.number().int().min(1).max(100).optional(),
  autoscale_refresh_seconds: z.number().int().min(1).max(3600).optional(),
  replica_max_concurrent_requests: z.number().int().min(1).max(1000).optional(),
  scoring_timeout_ms: z.number().int().min(1).max(300_000).optional(),
  max_request_wait_time: z.number().int().min(0).max(300_000).optional(),
};

const localTarget = z.strictObject({ kind: z.literal('local'), ...targetCommonFields, ...targetScalingFields, port: z.number().int().min(0).max(65535).optional() });
const aciTarget = z.strictObject({
  kind: z.literal('aci'),
  ...targetCommonFields,
  dns_name_label: z.string().regex(/^[a-z][a-z0-9-]{1,61}[a-z0-9]$/).optional(),
  location: shortText.optional(),
});
/** AML `AksWebservice.deploy_configuration` liveness probe settings (seconds / counts). */
const probeSettings = {
  period_seconds: z.number().int().min(1).max(3600).optional(),
  initial_delay_seconds: z.number().int().min(0).max(3600).optional(),
  timeout_seconds: z.number().int().min(1).max(3600).optional(),
  success_threshold: z.number().int().min(1).max(100).optional(),
  failure_threshold: z.number().int().min(1).max(100).optional(),
};

const aksTarget = z.strictObject({
  kind: z.literal('aks'),
  ...targetCommonFields,
  ...targetScalingFields,
  ...probeSettings,
  /** AML `cpu_cores_limit` / `memory_gb_limit`: the container's Kubernetes limits (requests are cpu_cores / memory_gb). */
  cpu_cores_limit: z.number().positive().max(64).optional(),
  memory_gb_limit: z.number().positive().max(256).optional(),
  compute_target_name: shortText.optional(),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).optional(),
});
const target = z.preprocess(
  (v) => (typeof v === 'string' ? { kind: v } : v),
  z.discriminatedUnion('kind', [localTarget, aciTarget, aksTarget]),
);

/**
 * `image.base_image_registry`: the registry of `base_image`, as its address (pulled with the app's identity) or
 * `{ address, username, password_secret }` where `password_secret` is a Key Vault secret URI. A password itself is
 * never accepted in a manifest (manifests reach blobs, run inputs and history).
 */
const baseImageRegistry = z.union(
  [
    shortText.min(1),
    z.strictObject({
      address: shortText.min(1),
      username: shortText.min(1).optional(),
      password_secret: shortText.min(1).optional(),
      // Declared only to refuse it with its own message (validateManifest): never a password in a manifest.
      password: z.unknown().optional(),
    }),
  ],
  { error: 'must be a registry address ("myregistry.azurecr.io") or { address, username, password_secret }' },
);

const promotion = z.strictObject({ min_metrics: metricMap.optional(), max_metrics: metricMap.optional() });

export const manifestSchema = z.strictObject({
  model: z.strictObject({
    name: shortText.optional(),
    /** A registered version, `name:version` (or `name` for the latest): deployed as it is, nothing registered. */
    id: shortText.optional(),
    // One file or a list: a single one is a list of one.
    files: z.preprocess(
      (v) => (v !== undefined && v !== null && !Array.isArray(v) && (typeof v === 'string' || typeof v === 'object') ? [v] : v),
      z
        .array(fileRef, { error: (i) => (i.code === 'invalid_type' ? `${FILE_REF_RULE}, or a list of them` : undefined) })
        .max(MANIFEST_LIMITS.modelFiles, `must list at most ${MANIFEST_LIMITS.modelFiles} files (zip a folder of many files)`),
    ).optional(),
    tags: stringMap.optional(),
    properties: stringMap.optional(),
    description: description.optional(),
  }).optional(),
  // A built image, `name:version`, or what to build.
  image: z.union([
    shortText.min(1),
    z.strictObject({
      name: shortText.optional(),
      runtime: z.enum(['python', 'node', 'onnx'], { error: 'must be one of python, node, onnx' }),
      entry_script: fileRef.optional(),
      environment_file: fileRef.optional(),
      base_image: shortText.min(1).optional(),
      base_image_registry: baseImageRegistry.optional(),
      description: description.optional(),
      tags: stringMap.optional(),
    }),
  ]),
  target: target.optional(),
  service: z.strictObject({ name: shortText.optional(), description: description.optional(), tags: stringMap.optional() }).optional(),
  schema: z.strictObject({ input_sample: z.unknown().optional(), output_sample: z.unknown().optional() }).optional(),
  smoke_test: z
    .strictObject({
      sample: z.unknown().optional(),
      /** Raw bytes to send (base64), as `application/octet-stream`: for `@rawhttp` scripts that read bytes. */
      sample_base64: z.string().max(1_000_000).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64').optional(),
      expected_output: z.unknown().optional(),
      /** How the answer is compared: `json` (default), `text` (the body as UTF-8 text) or `base64` (the body's bytes). */
      expected_output_format: z.enum(['json', 'text', 'base64']).optional(),
      tolerance: z.number().min(0).optional(),
    })
    .optional(),
  promotion: promotion.optional(),
  rollout: rolloutSchema.optional(),
});

export type RawManifest = z.input<typeof manifestSchema>;
type ParsedTarget = z.output<typeof localTarget> | z.output<typeof aciTarget> | z.output<typeof aksTarget>;

// ---------------------------------------------------------------- errors

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  record: 'an object',
  array: 'a list',
};

/** zod issues → one message naming every field path (`target.autoscale_enabled: unknown field`) and what was expected. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): string {
  const parts: string[] = [];
  for (const i of issues) {
    const at = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) parts.push(`${at ? `${at}.` : ''}${k}: unknown field`);
    } else if (i.code === 'invalid_union' && 'note' in i && i.note === 'No matching discriminator') {
      parts.push(`${at}: must be one of ${(('options' in i && i.options) || []).join(', ')}`);
    } else if (i.code === 'invalid_key') {
      // A bad key of a record: name the map and a short form of the key, then the key rule.
      const key = String(i.path[i.path.length - 1] ?? '');
      const map = [prefix, ...i.path.slice(0, -1).map(String)].filter(Boolean).join('.');
      const shortKey = key.length > 40 ? `${key.slice(0, 40)}…` : key;
      parts.push(`${map || '(root)'}: key "${shortKey}": ${i.issues.map((x) => x.message).join('; ')}`);
    } else if (i.code === 'invalid_value' && /^Invalid option/.test(i.message)) {
      parts.push(`${at || '(root)'}: must be one of ${i.values.map(String).join(', ')}`);
    } else if ((i.code === 'too_small' || i.code === 'too_big') && /^Too (small|big)/.test(i.message)) {
      parts.push(`${at || '(root)'}: ${sizeRule(i)}`);
    } else if (i.code === 'invalid_type' && /^Invalid input/.test(i.message)) {
      const got = /received (\w+)/.exec(i.message)?.[1];
      const shown = got && !(i.expected === 'int' && got === 'number') ? ` (got ${got === 'undefined' ? 'nothing' : got})` : '';
      parts.push(`${at || '(root)'}: must be ${TYPE_WORDS[i.expected] ?? i.expected}${shown}`);
    } else if (i.code === 'invalid_union' && /^Invalid input/.test(i.message)) {
      // The option that got furthest (deepest issue path) says what is wrong; otherwise the value has the wrong type.
      const best = [...(i.errors ?? [])].sort((a, b) => Math.max(0, ...b.map((x) => x.path.length)) - Math.max(0, ...a.map((x) => x.path.length)))[0];
      if (best && best.some((x) => x.path.length > 0 || x.code !== 'invalid_type')) parts.push(describeIssues(best, at));
      else parts.push(`${at || '(root)'}: has the wrong type`);
    } else {
      parts.push(`${at || '(root)'}: ${i.message}`);
    }
  }
  return capList(parts).join('; ');
}

/** A zod size issue in words: "must not be empty", "must be at most 5", "must list at least 2 entries". */
function sizeRule(i: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const small = i.code === 'too_small';
  const bound = Number(small ? (i as z.core.$ZodIssueTooSmall).minimum : (i as z.core.$ZodIssueTooBig).maximum);
  const inclusive = i.inclusive !== false;
  if (i.origin === 'string') return small && bound === 1 ? 'must not be empty' : `must be ${small ? 'at least' : 'at most'} ${bound} characters`;
  if (i.origin === 'array' || i.origin === 'set') return small && bound === 1 ? 'must not be empty' : `must list ${small ? 'at least' : 'at most'} ${bound} entries`;
  if (small) return inclusive ? `must be at least ${bound}` : `must be greater than ${bound}`;
  return inclusive ? `must be at most ${bound}` : `must be less than ${bound}`;
}

/** At most `max` problems, then "… and N more" (a list of 100,000 bad entries must not make a 100,000-part message). */
export function capList(parts: string[], max = 20): string[] {
  return parts.length > max ? [...parts.slice(0, max), `… and ${parts.length - max} more problems`] : parts;
}

/** Largest manifest accepted (bytes): checked before parsing, so a refused manifest answers fast. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/**
 * Parses JSON or YAML text (format from the file name, else sniffed), bounded (`shared/parse.ts`: size, then
 * nesting depth before parsing, YAML aliases): 400 `InputTooLarge` / `InputTooDeep`. Syntax errors → 400
 * `ManifestMalformed` with the position.
 */
export function parseManifestText(text: string, fileName = 'deploy.json', topLevelFields?: readonly string[], maxBytes = MAX_MANIFEST_BYTES): unknown {
  const bounds = { what: fileName, maxBytes };
  const yaml = /\.ya?ml$/i.test(fileName) || (!/\.json$/i.test(fileName) && !/^\s*[{[]/.test(text.slice(0, 4096)));
  if (yaml) {
    const doc = parseYamlDocumentBounded(text, bounds, { prettyErrors: true, uniqueKeys: true, merge: true });
    if (doc.errors.length) throw badRequest('ManifestMalformed', `${fileName} is not valid YAML: ${doc.errors[0].message.split('\n')[0].slice(0, 500)}`);
    if (topLevelFields && YAML.isMap(doc.contents)) {
      for (const pair of doc.contents.items) {
        const key = YAML.isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const anchor = (pair.value as { anchor?: string } | null)?.anchor;
        if (anchor && !topLevelFields.includes(key)) {
          throw badRequest(
            'InvalidManifest',
            `${fileName}: ${key}: unknown field (it only holds the YAML anchor &${anchor}); top-level fields are ${topLevelFields.join(', ')}. Define the anchor inside the field that first uses it, then reuse it with *${anchor} or "<<: *${anchor}".`,
          );
        }
      }
    }
    return yamlToJs(doc, bounds);
  }
  return parseJsonBounded(text, { ...bounds, malformedCode: 'ManifestMalformed' });
}

// ---------------------------------------------------------------- defaults (AML)

/** AML defaults per target, as `DeployConfig`. `num_replicas` turns autoscale off. */
export function deployConfigFor(t: ParsedTarget | { kind: TargetKind }, field = 'target'): DeployConfig {
  type AnyTarget = Omit<Partial<z.output<typeof aksTarget>>, 'kind'> &
    Omit<Partial<z.output<typeof aciTarget>>, 'kind'> &
    Omit<Partial<z.output<typeof localTarget>>, 'kind'> & { kind: TargetKind };
  const v = t as AnyTarget;
  const extra: Record<string, unknown> = {};
  // Only when on, so configurations without them stay as they were.
  const observability = {
    ...(v.collect_model_data ? { collectModelData: true } : {}),
    ...(v.enable_app_insights ? { enableAppInsights: true } : {}),
  };
  if (v.auth_enabled === true && v.token_auth_enabled === true) {
    throw badRequest('AuthModesExclusive', `${field}: auth_enabled and token_auth_enabled cannot both be true (as in AML): a service takes keys or tokens. Keep one.`);
  }
  if (v.token_auth_enabled && (v.primary_key !== undefined || v.secondary_key !== undefined)) {
    throw badRequest('AuthModesExclusive', `${field}: primary_key/secondary_key are keys; token_auth_enabled turns keys off. Remove the keys or token_auth_enabled.`);
  }
  const token = v.token_auth_enabled === true ? { tokenAuthEnabled: true } : {};
  const tls = tlsOf(v, field);
  if (v.kind === 'aci') {
    if (v.token_auth_enabled) throw badRequest('TokenAuthNotSupported', `${field}: ACI services support key auth only (as in AML); use AKS or local for token_auth_enabled.`);
    if (v.dns_name_label) extra.dnsNameLabel = v.dns_name_label;
    if (v.location) extra.location = v.location;
    return {
      cpuCores: v.cpu_cores ?? 0.1,
      memoryGb: v.memory_gb ?? 0.5,
      authEnabled: v.auth_enabled ?? false,
      numReplicas: 1,
      autoscaleEnabled: false,
      autoscaleMinReplicas: 1,
      autoscaleMaxReplicas: 1,
      autoscaleTargetUtilization: 70,
      autoscaleRefreshSeconds: 1,
      replicaMaxConcurrentRequests: 1,
      scoringTimeoutMs: 60_000,
      maxRequestWaitTimeMs: 500,
      ...observability,
      ...(tls ? { tls } : {}),
      ...(Object.keys(extra).length ? { extra } : {}),
    };
  }
  if (v.num_replicas !== undefined && v.autoscale_enabled === true) {
    throw badRequest('InvalidDeployConfig', `${field}: num_replicas and autoscale_enabled=true are exclusive (num_replicas disables autoscale).`);
  }
  const isAks = v.kind === 'aks';
  const autoscale = v.num_replicas !== undefined ? false : (v.autoscale_enabled ?? isAks);
  const min = v.autoscale_min_replicas ?? 1;
  const max = v.autoscale_max_replicas ?? (isAks ? 10 : Math.max(min, 4));
  if (min > max) {
    throw badRequest('InvalidDeployConfig', `${field}: autoscale_min_replicas (${min}) is greater than autoscale_max_replicas (${max}).`);
  }
  const aks: Pick<DeployConfig, 'cpuCoresLimit' | 'memoryGbLimit' | 'probe'> = {};
  if (isAks) {
    if (v.compute_target_name) extra.computeTargetName = v.compute_target_name;
    if (v.namespace) extra.namespace = v.namespace;
    const cores = v.cpu_cores ?? 0.1;
    const memory = v.memory_gb ?? 0.5;
    if (v.cpu_cores_limit !== undefined) {
      if (v.cpu_cores_limit < cores) throw badRequest('InvalidDeployConfig', `${field}: cpu_cores_limit (${v.cpu_cores_limit}) is less than cpu_cores (${cores}); the limit must be at least the request.`);
      aks.cpuCoresLimit = v.cpu_cores_limit;
    }
    if (v.memory_gb_limit !== undefined) {
      if (v.memory_gb_limit < memory) throw badRequest('InvalidDeployConfig', `${field}: memory_gb_limit (${v.memory_gb_limit}) is less than memory_gb (${memory}); the limit must be at least the request.`);
      aks.memoryGbLimit = v.memory_gb_limit;
    }
    const probe = {
      ...(v.period_seconds !== undefined ? { periodSeconds: v.period_seconds } : {}),
      ...(v.initial_delay_seconds !== undefined ? { initialDelaySeconds: v.initial_delay_seconds } : {}),
      ...(v.timeout_seconds !== undefined ? { timeoutSeconds: v.timeout_seconds } : {}),
      ...(v.success_threshold !== undefined ? { successThreshold: v.success_threshold } : {}),
      ...(v.failure_threshold !== undefined ? { failureThreshold: v.failure_threshold } : {}),
    };
    if (Object.keys(probe).length) aks.probe = probe;
  } else if (v.port !== undefined) extra.port = v.port;
  return {
    cpuCores: v.cpu_cores ?? 0.1,
    memoryGb: v.memory_gb ?? 0.5,
    authEnabled: v.auth_enabled ?? (isAks && !v.token_auth_enabled),
    ...token,
    ...(v.num_replicas !== undefined ? { numReplicas: v.num_replicas } : autoscale ? {} : { numReplicas: 1 }),
    autoscaleEnabled: autoscale,
    autoscaleMinReplicas: min,
    autoscaleMaxReplicas: max,
    autoscaleTargetUtilization: v.autoscale_target_utilization ?? 70,
    autoscaleRefreshSeconds: v.autoscale_refresh_seconds ?? 1,
    replicaMaxConcurrentRequests: v.replica_max_concurrent_requests ?? 1,
    scoringTimeoutMs: v.scoring_timeout_ms ?? 60_000,
    maxRequestWaitTimeMs: v.max_request_wait_time ?? 500,
    ...observability,
    ...aks,
    ...(tls ? { tls } : {}),
    ...(Object.keys(extra).length ? { extra } : {}),
  };
}

/**
 * AML's TLS fields → `DeployConfig.tls` (references only). `ssl_enabled: true` needs the certificate and the key;
 * the other fields without it are refused rather than ignored. PEM text in a manifest is 400 `SecretInManifest`.
 */
function tlsOf(v: { ssl_enabled?: boolean; ssl_cert_pem_file?: string | { source: string }; ssl_key_pem_file?: string | { source: string }; ssl_cname?: string }, field: string): TlsSettings | undefined {
  // References are parsed first: PEM pasted into a manifest is refused as such whatever else is wrong.
  const cert = v.ssl_cert_pem_file !== undefined ? parseTlsRef(v.ssl_cert_pem_file, `${field}.ssl_cert_pem_file`) : undefined;
  const key = v.ssl_key_pem_file !== undefined ? parseTlsRef(v.ssl_key_pem_file, `${field}.ssl_key_pem_file`) : undefined;
  const cname = v.ssl_cname !== undefined ? checkCname(v.ssl_cname, `${field}.ssl_cname`) : undefined;
  if (v.ssl_enabled !== true) {
    if (cert || key || cname) throw badRequest('InvalidManifest', `${field}: ssl_cert_pem_file, ssl_key_pem_file and ssl_cname need ssl_enabled: true (or remove them).`);
    return undefined;
  }
  if (!cert || !key) {
    throw badRequest('InvalidManifest', `${field}: ssl_enabled needs ssl_cert_pem_file and ssl_key_pem_file (references to the PEM certificate and key: a Key Vault secret URI, a path beside the manifest or { "source": "container/path" }).`);
  }
  return { cert, key, ...(cname ? { cname } : {}) };
}

// ---------------------------------------------------------------- validation

export interface ManifestDefaults {
  /** Name used when model/image/service names are omitted (the `incoming/<name>/` folder). */
  name?: string;
  target?: TargetKind;
  /** What `name` is, for error messages ("folder name", "model name"); default "folder name". */
  nameSource?: string;
  /** Prefix for error messages (`deploy.json`). */
  fileName?: string;
}

/**
 * A file source: `container/path` or a blob URL of this app's account without a query string (no SAS: the app
 * reads with its own identity, and run inputs reach orchestration history), never in a system container.
 * Returns the canonical `container/blob` that is read (see `canonicalBlobRef`). With `accountUrl`, a URL of another
 * account is refused; without it a URL is returned as given (checked again, with the account, when it is read).
 */
export function checkSource(source: string, field: string, accountUrl?: string): string {
  const ref = canonicalBlobRef(source, { field, ...(accountUrl ? { accountUrl } : {}) });
  return accountUrl || !/^https?:\/\//i.test(source) ? blobRefString(ref) : source;
}

/** Checks a derived name; when invalid, says where it came from and which field to set. */
function derived(check: (name: string, field: string) => string, name: string, from: string, field: string, what: string): string {
  try {
    return check(name, field);
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    const as = name !== from ? ` (as "${name}")` : '';
    throw new AppError(e.code, `${field} was not given and the name derived from the ${what} "${from}"${as} is not valid: ${e.message} Set ${field} in the manifest.`, 400);
  }
}

function toFileRef(v: string | { path: string; source?: string }, field: string): FileRef {
  const ref = typeof v === 'string' ? { path: v } : { path: v.path, ...(v.source ? { source: v.source } : {}) };
  checkRelativePath(ref.path, field);
  if (ref.source !== undefined) checkSource(ref.source, `${field}.source`);
  return ref;
}

export function environmentKind(p: string, field = 'image.environment_file'): EnvironmentKind {
  const base = p.split('/').pop()!.toLowerCase();
  if (/\.ya?ml$/.test(base)) return 'conda';
  if (/^requirements.*\.txt$/.test(base) || base.endsWith('.txt')) return 'requirements';
  if (base === 'package.json') return 'npm';
  throw badRequest('InvalidManifest', `${field} "${p}" must be a conda file (*.yml), a requirements file (*.txt) or package.json.`);
}

/**
 * Name derived from a folder name for images/services (lowercase, invalid ASCII characters → "-"). A name with
 * non-ASCII characters is returned as it is (lowercased), so the name check rejects it rather than turning
 * "café" into "caf".
 */
export function deriveName(from: string, maxLength: number): string {
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(from)) return from.toLowerCase();
  return from
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .slice(0, maxLength)
    .replace(/-+$/, '');
}

/** `name`, `name:version` or `name:latest` (the registries' reference form) → parts. */
function parseRegisteredRef(ref: string, check: (name: string, field: string) => string, field: string, code: string): { name: string; version?: number } {
  const m = /^([^:]+)(?::(\d+|latest))?$/.exec(ref);
  if (!m) throw badRequest(code, `${field} "${ref}" is not a reference; use "name:version".`);
  return { name: check(m[1], field), ...(m[2] && m[2] !== 'latest' ? { version: parseVersion(m[2], `the version in ${field}`) } : {}) };
}

type RawModel = NonNullable<z.output<typeof manifestSchema>['model']>;

/**
 * The manifest's model: files to register, a registered version (`id`), or none (no `model` section: a script that
 * needs no model). An existing image embeds its models, so with one the model is named by `id` or left out.
 */
function modelOf(raw: RawModel | undefined, existingImage: boolean, file: string, from: { value: string; what: string } | undefined): DeploymentManifest['model'] {
  if (!raw) return { name: '', files: [], tags: {}, properties: {}, none: true };
  const meta = { tags: raw.tags ?? {}, properties: raw.properties ?? {}, ...(raw.description !== undefined ? { description: raw.description } : {}) };
  if (raw.id !== undefined) {
    if (raw.files !== undefined) throw badRequest('InvalidManifest', `${file}: model.id names a registered version; remove model.files (or remove model.id to register the files as a new version).`);
    if (raw.name !== undefined || raw.tags !== undefined || raw.properties !== undefined || raw.description !== undefined) {
      throw badRequest('InvalidManifest', `${file}: model.id names a registered version, whose name, tags, properties and description are already set; give only model.id.`);
    }
    const ref = parseRegisteredRef(raw.id, checkModelName, 'model.id', 'InvalidModelReference');
    return { name: ref.name, files: [], tags: {}, properties: {}, id: `${ref.name}${ref.version !== undefined ? `:${ref.version}` : ''}` };
  }
  if (existingImage) throw badRequest('InvalidManifest', `${file}: image names a built image, which embeds its models; name the model with model.id (or leave model out) instead of model.files.`);
  const files = (raw.files ?? []).map((f, i) => toFileRef(f, `model.files[${i}]`));
  if (files.length === 0) throw badRequest('ModelFilesMissing', `${file}: model.files is empty; list at least one file (or model.id for a registered version, or leave model out for a script that needs no model).`);
  const name = raw.name !== undefined || !from ? checkModelName(raw.name ?? '', 'model.name') : derived(checkModelName, from.value, from.value, 'model.name', from.what);
  return { name, files, ...meta };
}

/**
 * Validates a parsed manifest: structure (strict), names, paths, runtime rules, AML defaults.
 * Errors: 400 `InvalidManifest` (every bad or unknown field named), `UnknownTarget`, `InvalidModelName`,
 * `InvalidImageName`, `InvalidServiceName`, `InvalidPath`, `InvalidDeployConfig`.
 */
export function validateManifest(raw: unknown, defaults: ManifestDefaults = {}): DeploymentManifest {
  const file = defaults.fileName ?? 'deploy.json';
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw badRequest('InvalidManifest', `${file}: the manifest must be an object with model, image, target and service.`);
  }
  const t = (raw as { target?: unknown }).target;
  const kind = typeof t === 'string' ? t : t && typeof t === 'object' ? (t as { kind?: unknown }).kind : undefined;
  if (t !== undefined && !['local', 'aci', 'aks'].includes(kind as string)) {
    throw badRequest('UnknownTarget', `${file}: target "${String(kind)}" is unknown; use local, aci or aks.`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) throw badRequest('InvalidManifest', `${file}: ${describeIssues(parsed.error.issues)}`);
  const m = parsed.data;

  const from = defaults.name !== undefined ? { value: defaults.name, what: defaults.nameSource ?? 'folder name' } : undefined;
  const existingImage = typeof m.image === 'string' ? parseRegisteredRef(m.image, checkImageName, 'image', 'InvalidImageReference') : undefined;
  const build = typeof m.image === 'string' ? undefined : m.image;
  const model = modelOf(m.model, existingImage !== undefined, file, from);

  const nameFrom = from ?? (model.none ? (m.service?.name !== undefined ? { value: m.service.name, what: 'service name' } : undefined) : { value: model.name, what: 'model name' });
  if (!nameFrom) throw badRequest('InvalidManifest', `${file}: a manifest without a model needs service.name (nothing else to name the service and image after).`);
  const modelName = model.none ? checkModelName(deriveName(nameFrom.value, 63) || 'none', 'model.name') : model.name;
  const imageName = existingImage
    ? existingImage.name
    : build?.name !== undefined
      ? checkImageName(build.name, 'image.name')
      : derived(checkImageName, deriveName(nameFrom.value, 63), nameFrom.value, 'image.name', nameFrom.what);
  const runtime = build?.runtime;
  if (build && model.none && runtime === 'onnx') throw badRequest('ModelFilesMissing', `${file}: the onnx runtime serves a model: add a model section (files or id).`);
  const entryScript = build?.entry_script !== undefined ? toFileRef(build.entry_script, 'image.entry_script') : undefined;
  if (build && !entryScript && runtime !== 'onnx') {
    throw badRequest('InvalidManifest', `${file}: image.entry_script is required for the ${runtime} runtime (e.g. ${runtime === 'python' ? 'score.py' : 'score.js'}).`);
  }
  if (entryScript) {
    const ok = runtime === 'python' ? /\.py$/.test(entryScript.path) : runtime === 'node' ? /\.(c?js|mjs|ts)$/.test(entryScript.path) : /\.(py|c?js|mjs|ts)$/.test(entryScript.path);
    if (!ok) throw badRequest('InvalidManifest', `${file}: image.entry_script "${entryScript.path}" does not fit the ${runtime} runtime.`);
  }
  let environmentFile: DeploymentManifest['image']['environmentFile'];
  if (build?.environment_file !== undefined) {
    const ref = toFileRef(build.environment_file, 'image.environment_file');
    environmentFile = { ...ref, kind: environmentKind(ref.path) };
  }
  if (build?.base_image !== undefined && !/^[a-z0-9][a-z0-9._\-/:@]*$/i.test(build.base_image)) {
    throw badRequest('InvalidManifest', `${file}: image.base_image "${build.base_image}" is not an image reference (registry/repo:tag).`);
  }
  const registry = build?.base_image_registry !== undefined ? baseImageRegistryOf(build.base_image_registry, build.base_image, file) : undefined;

  const targetParsed: ParsedTarget = m.target ?? { kind: defaults.target ?? 'local' };
  const deployConfig = deployConfigFor(targetParsed, 'target');
  const service = serviceMetadata(targetParsed, m.service, file);
  const serviceName =
    m.service?.name !== undefined ? checkServiceName(m.service.name, 'service.name') : derived(checkServiceName, deriveName(nameFrom.value, 32), nameFrom.value, 'service.name', nameFrom.what);

  let rollout: RolloutSpec | undefined;
  if (m.rollout) {
    const r = resolveRollout(m.rollout, targetParsed.kind);
    if (r.problems.length) throw badRequest('InvalidManifest', `${file}: ${r.problems.join('; ')}`);
    if (deployConfig.tls && targetParsed.kind === 'aks') {
      throw badRequest('TlsNotSupported', `${file}: rollout with ssl_enabled is not available on AKS: the pods terminate TLS themselves and the Gateway API route that splits traffic would need a backend TLS policy. Deploy blue/green (remove rollout), or use target local.`);
    }
    if (deployConfig.tls && targetParsed.kind === 'aci' && isProgressive(r.spec)) {
      const what = r.spec.strategy !== 'blue_green' ? `a ${r.spec.strategy} rollout` : 'a shadow phase (rollout.mirror_percent)';
      throw badRequest('TlsNotSupported', `${file}: ${what} with ssl_enabled is not available on ACI: the service front's container group serves plain HTTP (each slot's group terminates TLS itself). Deploy blue/green without mirror_percent (or remove rollout), or use target local.`);
    }
    rollout = r.spec;
  }
  const promo = m.promotion ? { minMetrics: m.promotion.min_metrics ?? {}, maxMetrics: m.promotion.max_metrics ?? {} } : undefined;
  return {
    model: { ...model, name: modelName },
    image: {
      name: imageName,
      ...(runtime ? { runtime } : {}),
      ...(existingImage ? { existing: `${existingImage.name}${existingImage.version !== undefined ? `:${existingImage.version}` : ''}` } : {}),
      ...(entryScript ? { entryScript } : {}),
      ...(environmentFile ? { environmentFile } : {}),
      ...(build?.base_image ? { baseImage: build.base_image } : {}),
      ...(registry ? { baseImageRegistry: registry.address } : {}),
      ...(registry?.auth ? { baseImageRegistryAuth: registry.auth } : {}),
      ...(build?.description !== undefined ? { description: build.description } : {}),
      tags: build?.tags ?? {},
    },
    target: targetParsed.kind,
    deployConfig,
    ...userKeysOf(targetParsed),
    service: { name: serviceName, ...service },
    ...(m.schema ? { schema: { inputSample: m.schema.input_sample, outputSample: m.schema.output_sample } } : {}),
    ...(m.smoke_test
      ? { smokeTest: smokeTestOf(m.smoke_test) }
      : {}),
    ...(promo ? { promotion: promo } : {}),
    ...(rollout ? { rollout } : {}),
  };
}

/**
 * The service's description and tags: `service.*` and the AML deploy-configuration fields `target.description` /
 * `target.tags` (the webservice's own, as in AML) are the same thing, merged; a conflict (two descriptions, or one
 * tag with two values) is refused rather than one silently winning.
 */
function serviceMetadata(t: ParsedTarget, s: { description?: string; tags?: Record<string, string> } | undefined, file: string): { description?: string; tags: Record<string, string> } {
  const tt = t as { description?: string; tags?: Record<string, string> };
  if (tt.description !== undefined && s?.description !== undefined && tt.description !== s.description) {
    throw badRequest('InvalidManifest', `${file}: target.description and service.description differ; both describe the service. Keep one.`);
  }
  const tags = { ...(tt.tags ?? {}) };
  for (const [k, v] of Object.entries(s?.tags ?? {})) {
    if (k in tags && tags[k] !== v) throw badRequest('InvalidManifest', `${file}: tag "${k.slice(0, 40)}" has different values in target.tags and service.tags; both tag the service. Keep one.`);
    tags[k] = v;
  }
  const n = Object.keys(tags).length;
  if (n > MANIFEST_LIMITS.mapEntries) throw badRequest('InvalidManifest', `${file}: target.tags and service.tags have ${n} entries together; at most ${MANIFEST_LIMITS.mapEntries} are allowed.`);
  const description = s?.description ?? tt.description;
  return { ...(description !== undefined ? { description } : {}), tags };
}


/**
 * `image.base_image_registry` → its address (normalised: lowercase host[:port], no scheme, no trailing slash) and
 * credentials. Refused (400): a `password` (`SecretInManifest`: a manifest is stored and travels in run inputs), a
 * user name without its Key Vault secret or the reverse, a `password_secret` that is not a Key Vault secret URI,
 * and an address that is not the registry `base_image` is pulled from.
 */
function baseImageRegistryOf(
  r: string | { address: string; username?: string; password_secret?: string; password?: unknown },
  baseImage: string | undefined,
  file: string,
): { address: string; auth?: RegistryAuth } {
  const field = 'image.base_image_registry';
  const o = typeof r === 'string' ? { address: r } : r;
  if ('password' in o && o.password !== undefined) {
    throw badRequest(
      'SecretInManifest',
      `${file}: ${field}.password: a password is never accepted in a manifest (manifests are stored and travel in run inputs). Store it in Key Vault and give the secret's URI as password_secret (https://<vault>.vault.azure.net/secrets/<name>), or give the address alone to pull with the app's identity.`,
    );
  }
  const address = o.address.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$/.test(address)) {
    throw badRequest('InvalidManifest', `${file}: ${field} "${o.address.slice(0, 100)}" is not a registry address (host or host:port, e.g. myregistry.azurecr.io).`);
  }
  if (baseImage === undefined) throw badRequest('InvalidManifest', `${file}: ${field} is set but image.base_image is not; name the base image pulled from that registry.`);
  const first = baseImage.toLowerCase().split('/')[0];
  const host = baseImage.includes('/') && /[.:]|^localhost$/.test(first) ? first : 'docker.io';
  if (host !== address) {
    throw badRequest('InvalidManifest', `${file}: ${field} is "${address}" but image.base_image "${baseImage}" is pulled from "${host}"; write the base image as ${address}/<repository>:<tag>.`);
  }
  const { username, password_secret: secret } = o as { username?: string; password_secret?: string };
  if ((username === undefined) !== (secret === undefined)) {
    throw badRequest('InvalidManifest', `${file}: ${field}: give username and password_secret together (or neither, to pull with the app's identity).`);
  }
  if (secret !== undefined && !KEY_VAULT_SECRET.test(secret)) {
    throw badRequest('InvalidManifest', `${file}: ${field}.password_secret must be a Key Vault secret URI (https://<vault>.vault.azure.net/secrets/<name>[/<version>]).`);
  }
  return { address, ...(username !== undefined && secret !== undefined ? { auth: { username, passwordSecret: secret } } : {}) };
}

/** The smoke test of a manifest; a raw (`text` / `base64`) expected output must be a string, and one sample at most. */
function smokeTestOf(t: { sample?: unknown; sample_base64?: string; expected_output?: unknown; expected_output_format?: 'json' | 'text' | 'base64'; tolerance?: number }): NonNullable<DeploymentManifest['smokeTest']> {
  const format = t.expected_output_format;
  if (format && format !== 'json' && t.expected_output !== undefined && typeof t.expected_output !== 'string') {
    throw badRequest('InvalidManifest', `smoke_test.expected_output must be a string when expected_output_format is ${format}.`);
  }
  if (format === 'base64' && typeof t.expected_output === 'string' && !/^[A-Za-z0-9+/]*={0,2}$/.test(t.expected_output)) {
    throw badRequest('InvalidManifest', 'smoke_test.expected_output is not base64 (expected_output_format is base64).');
  }
  if (t.sample !== undefined && t.sample_base64 !== undefined) throw badRequest('InvalidManifest', 'smoke_test: give sample or sample_base64, not both.');
  return {
    ...(t.sample !== undefined ? { sample: t.sample } : {}),
    ...(t.sample_base64 !== undefined ? { sampleBase64: t.sample_base64 } : {}),
    ...(t.expected_output !== undefined ? { expectedOutput: t.expected_output } : {}),
    ...(format ? { expectedOutputFormat: format } : {}),
    tolerance: t.tolerance ?? 1e-6,
  };
}

/** `primary_key` / `secondary_key` of a target, as `userKeys` (absent when neither is set). */
function userKeysOf(t: ParsedTarget): Pick<DeploymentManifest, 'userKeys'> {
  const v = t as { primary_key?: string; secondary_key?: string };
  if (v.primary_key === undefined && v.secondary_key === undefined) return {};
  if (v.primary_key !== undefined && v.primary_key === v.secondary_key) throw badRequest('InvalidManifest', 'target: primary_key and secondary_key must differ.');
  return { userKeys: { ...(v.primary_key !== undefined ? { primaryKey: v.primary_key } : {}), ...(v.secondary_key !== undefined ? { secondaryKey: v.secondary_key } : {}) } };
}

/** Text → validated manifest (JSON or YAML). */
export function parseManifest(text: string, defaults: ManifestDefaults = {}): DeploymentManifest {
  const fileName = defaults.fileName ?? 'deploy.json';
  return validateManifest(parseManifestText(text, fileName, Object.keys(manifestSchema.shape)), { ...defaults, fileName });
}

/** The manifest a lone `incoming/<name>/<file>.onnx` deploys with: runtime onnx, target local, names from the folder. */
export function defaultOnnxManifest(folderName: string, onnxFile: string): DeploymentManifest {
  return validateManifest({ model: { files: [onnxFile] }, image: { runtime: 'onnx' }, target: 'local' }, { name: folderName, fileName: `${folderName}/${onnxFile}` });
}

/**
 * Every file the manifest references with the blob it is read from: `{ path, blob }`, where `blob` is the canonical
 * `container/blob` (see `canonicalBlobRef`) of the `source` or of `<baseFolder>/<path>` (baseFolder =
 * `incoming/<name>` for the blob trigger). With `accountUrl`, blob URLs of another account are refused here.
 * Fails with 400 `ManifestFileMissing` naming the field when a file has no source and there is no base folder.
 */
export function resolveManifestFiles(
  manifest: DeploymentManifest,
  baseFolder?: string,
  accountUrl?: string,
): { model: Array<{ path: string; blob: string }>; entryScript?: { path: string; blob: string }; environmentFile?: { path: string; blob: string } } {
  const base = baseFolder?.replace(/\/+$/, '');
  const resolve = (f: FileRef, field: string) => {
    if (f.source) return { path: f.path, blob: checkSource(f.source, `${field}.source`, accountUrl) };
    if (!base) throw new AppError('ManifestFileMissing', `${field} "${f.path}" has no source; give a blob reference as { "path", "source" }.`, 400);
    return { path: f.path, blob: checkSource(`${base}/${f.path}`, field, accountUrl) };
  };
  return {
    model: manifest.model.files.map((f, i) => resolve(f, `model.files[${i}]`)),
    ...(manifest.image.entryScript ? { entryScript: resolve(manifest.image.entryScript, 'image.entry_script') } : {}),
    ...(manifest.image.environmentFile ? { environmentFile: resolve(manifest.image.environmentFile, 'image.environment_file') } : {}),
  };
}
