/**
 * Typed application settings, read once from the environment (app settings in Azure, `local.settings.json`
 * locally) and validated with zod. Every setting the app reads is listed in `local.settings.example.json`.
 *
 * Storage: either a connection string (`AzureWebJobsStorage`, e.g. Azurite) or identity-based settings
 * (`AzureWebJobsStorage__accountName` or `AzureWebJobsStorage__blobServiceUri` / `__queueServiceUri` /
 * `__tableServiceUri`, optional `AzureWebJobsStorage__clientId` for a user-assigned managed identity).
 */
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { AppError } from './errors';
import type { TargetKind } from './seams';

export type StorageConfig =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; blobServiceUri: string; queueServiceUri: string; tableServiceUri: string; clientId?: string };

export type ServiceBusConfig =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; fullyQualifiedNamespace: string; clientId?: string };

export interface AppConfig {
  storage: StorageConfig;
  /** Which `ImageBuilder` builds images: `local` (context archive in blob) or `acr` (ACR Tasks). */
  imageBuilder: 'local' | 'acr';
  /** Target used when a manifest or event does not name one. */
  defaultTarget: TargetKind;
  events: {
    /** Service Bus topic for outbound events; absent → events are logged. */
    topicName?: string;
    serviceBus?: ServiceBusConfig;
  };
  local: {
    /** Where the local target extracts images and keeps slot logs. */
    workDir: string;
    /** Python interpreter the scoring runtime's Python workers use. */
    python: string;
    /** Worker processes per local replica. */
    workersPerReplica: number;
    /** How long a local slot may take to print its ready line. */
    startTimeoutMs: number;
    /** A shadow phase's new version: at idle CPU priority (only cores the serving version leaves free) or normal. */
    shadowCpuPriority: 'idle' | 'normal';
    /** Bounds of the local scoring endpoints (service front, slot router, replicas). */
    scoring: {
      /** Request bodies over this → 413 `PayloadTooLarge`. */
      maxBodyBytes: number;
      /** Request headers not received within this → 408 `RequestTimeout` (slowloris). */
      headersTimeoutMs: number;
      /** Whole request (headers and body) not received within this → 408 `RequestTimeout`. */
      requestTimeoutMs: number;
      /** Idle kept-alive connections are closed after this. */
      keepAliveTimeoutMs: number;
      /** Open connections per endpoint at most; more → 503 `TooManyConnections`. */
      maxConnections: number;
    };
  };
  limits: {
    /** Largest accepted upload (HTTP multipart / single model file), bytes. */
    maxUploadBytes: number;
    /** Largest single file of a multipart upload, bytes (default and at most `maxUploadBytes`). */
    maxUploadPartBytes: number;
  };
  /**
   * How long a lone `incoming/<name>/<file>.onnx` waits before it deploys with defaults: a `deploy.json` (or other
   * files) uploaded after the model within that time means the folder is not a lone model after all.
   */
  loneOnnxSettleSeconds: number;
  smokeTest: {
    /** Bound on waiting for `GET /` to answer 200 (liveness) before a slot is declared unhealthy. */
    livenessTimeoutMs: number;
    /** Timeout of the scoring call itself. */
    requestTimeoutMs: number;
  };
  azure: {
    subscriptionId?: string;
    resourceGroup?: string;
    location?: string;
    acrName?: string;
    managedIdentityClientId?: string;
    managedIdentityResourceId?: string;
    aksClusterName?: string;
    aksNamespace?: string;
  };
}

/** An optional text setting (empty = absent). */
export const optionalText = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v ? v : undefined));

/** An optional integer setting with a default and bounds; the message names the rule and the value given. */
export const intSetting = (def: number, min = 1, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return def;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        const rule = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'a positive integer' : `an integer ≥ ${min}`) : `an integer between ${min} and ${max}`;
        ctx.addIssue({ code: 'custom', message: `must be ${rule}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const positiveInt = (def: number) => intSetting(def);

const envSchema = z.object({
  AzureWebJobsStorage: optionalText,
  AzureWebJobsStorage__accountName: optionalText,
  AzureWebJobsStorage__blobServiceUri: optionalText,
  AzureWebJobsStorage__queueServiceUri: optionalText,
  AzureWebJobsStorage__tableServiceUri: optionalText,
  AzureWebJobsStorage__clientId: optionalText,
  IMAGE_BUILDER: z.enum(['local', 'acr']).default('local'),
  DEFAULT_TARGET: z.enum(['local', 'aci', 'aks']).default('local'),
  EVENTS_TOPIC_NAME: optionalText,
  ServiceBusConnection: optionalText,
  ServiceBusConnection__fullyQualifiedNamespace: optionalText,
  ServiceBusConnection__clientId: optionalText,
  LOCAL_WORK_DIR: optionalText,
  LOCAL_PYTHON: optionalText,
  LOCAL_WORKERS_PER_REPLICA: positiveInt(1),
  LOCAL_START_TIMEOUT_MS: positiveInt(60_000),
  LOCAL_SHADOW_CPU_PRIORITY: z.enum(['idle', 'normal']).default('idle'),
  LOCAL_SCORING_MAX_BODY_BYTES: positiveInt(100 * 1024 * 1024),
  LOCAL_SCORING_HEADERS_TIMEOUT_MS: positiveInt(30_000),
  LOCAL_SCORING_REQUEST_TIMEOUT_MS: positiveInt(120_000),
  LOCAL_SCORING_KEEP_ALIVE_TIMEOUT_MS: positiveInt(5_000),
  LOCAL_SCORING_MAX_CONNECTIONS: positiveInt(1_000),
  MAX_UPLOAD_BYTES: positiveInt(100 * 1024 * 1024),
  /** 0 = the same as MAX_UPLOAD_BYTES. */
  MAX_UPLOAD_PART_BYTES: intSetting(0, 0),
  SMOKE_TEST_LIVENESS_TIMEOUT_MS: positiveInt(60_000),
  SMOKE_TEST_REQUEST_TIMEOUT_MS: positiveInt(30_000),
  LONE_ONNX_SETTLE_SECONDS: intSetting(30, 0, 3600),
  AZURE_SUBSCRIPTION_ID: optionalText,
  AZURE_RESOURCE_GROUP: optionalText,
  AZURE_LOCATION: optionalText,
  ACR_NAME: optionalText,
  AZURE_CLIENT_ID: optionalText,
  MANAGED_IDENTITY_RESOURCE_ID: optionalText,
  AKS_CLUSTER_NAME: optionalText,
  AKS_NAMESPACE: optionalText,
});

/**
 * Settings only the Azure side reads, with defaults (validated by `shared/azure/config.ts`, which keeps the same
 * list as `AZURE_ONLY_SETTINGS`; test/azure/config.test.ts checks the two agree).
 */
const AZURE_ONLY_SETTING_NAMES = ['AKS_RESOURCE_GROUP', 'ALLOWED_KEY_VAULTS', 'ACR_BUILD_TIMEOUT_SECONDS', 'AZURE_DEPLOY_TIMEOUT_SECONDS', 'AZURE_RESOURCE_MANAGER_ENDPOINT', 'REPLICA_IDENTITY_RESOURCE_ID', 'REPLICA_IDENTITY_CLIENT_ID', 'REPLICAS_USE_APP_IDENTITY'];

/** Every setting name the app reads (kept in sync with `local.settings.example.json` by a test). */
export const SETTING_NAMES = [...Object.keys(envSchema.shape), ...AZURE_ONLY_SETTING_NAMES];

function fail(setting: string, message: string): never {
  throw new AppError('ConfigurationInvalid', `Setting ${setting}: ${message}`, 500);
}

function storageFrom(env: z.infer<typeof envSchema>): StorageConfig {
  if (env.AzureWebJobsStorage) return { kind: 'connectionString', connectionString: env.AzureWebJobsStorage };
  const account = env.AzureWebJobsStorage__accountName;
  const uri = (given: string | undefined, service: string, setting: string) => {
    if (given) return given.replace(/\/+$/, '');
    if (account) return `https://${account}.${service}.core.windows.net`;
    return fail(
      setting,
      'is missing. Set AzureWebJobsStorage (a connection string, e.g. Azurite) or identity-based ' +
        'AzureWebJobsStorage__accountName (or AzureWebJobsStorage__blobServiceUri, __queueServiceUri and __tableServiceUri).',
    );
  };
  return {
    kind: 'identity',
    blobServiceUri: uri(env.AzureWebJobsStorage__blobServiceUri, 'blob', 'AzureWebJobsStorage__blobServiceUri'),
    queueServiceUri: uri(env.AzureWebJobsStorage__queueServiceUri, 'queue', 'AzureWebJobsStorage__queueServiceUri'),
    tableServiceUri: uri(env.AzureWebJobsStorage__tableServiceUri, 'table', 'AzureWebJobsStorage__tableServiceUri'),
    clientId: env.AzureWebJobsStorage__clientId ?? env.AZURE_CLIENT_ID,
  };
}

/** Parses and validates settings from an environment map (pure; `getConfig()` caches it for `process.env`). */
export function loadConfig(source: Record<string, string | undefined> = process.env): AppConfig {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `Setting ${i.path.join('.')}: ${i.message}`).join('; ');
    throw new AppError('ConfigurationInvalid', msg, 500);
  }
  const env = parsed.data;
  const storage = storageFrom(env);

  let serviceBus: ServiceBusConfig | undefined;
  if (env.ServiceBusConnection) serviceBus = { kind: 'connectionString', connectionString: env.ServiceBusConnection };
  else if (env.ServiceBusConnection__fullyQualifiedNamespace)
    serviceBus = {
      kind: 'identity',
      fullyQualifiedNamespace: env.ServiceBusConnection__fullyQualifiedNamespace,
      clientId: env.ServiceBusConnection__clientId ?? env.AZURE_CLIENT_ID,
    };
  if (env.EVENTS_TOPIC_NAME && !serviceBus) {
    fail(
      'ServiceBusConnection',
      'is missing: EVENTS_TOPIC_NAME is set, so set ServiceBusConnection (connection string) or ' +
        'ServiceBusConnection__fullyQualifiedNamespace (identity-based), or unset EVENTS_TOPIC_NAME to log events.',
    );
  }
  if (env.LOCAL_SCORING_HEADERS_TIMEOUT_MS > env.LOCAL_SCORING_REQUEST_TIMEOUT_MS) {
    fail('LOCAL_SCORING_HEADERS_TIMEOUT_MS', `must not exceed LOCAL_SCORING_REQUEST_TIMEOUT_MS (${env.LOCAL_SCORING_REQUEST_TIMEOUT_MS}), got "${env.LOCAL_SCORING_HEADERS_TIMEOUT_MS}": the headers are part of the request.`);
  }
  if (env.IMAGE_BUILDER === 'acr') {
    for (const [name, value] of [
      ['AZURE_SUBSCRIPTION_ID', env.AZURE_SUBSCRIPTION_ID],
      ['AZURE_RESOURCE_GROUP', env.AZURE_RESOURCE_GROUP],
      ['ACR_NAME', env.ACR_NAME],
    ] as const) {
      if (!value) fail(name, 'is missing: IMAGE_BUILDER=acr needs it (or set IMAGE_BUILDER=local).');
    }
  }

  return {
    storage,
    imageBuilder: env.IMAGE_BUILDER,
    defaultTarget: env.DEFAULT_TARGET,
    events: { topicName: env.EVENTS_TOPIC_NAME, serviceBus },
    local: {
      workDir: path.resolve(env.LOCAL_WORK_DIR ?? path.join(os.tmpdir(), 'model-deploy-flow')),
      python: env.LOCAL_PYTHON ?? 'python3',
      workersPerReplica: env.LOCAL_WORKERS_PER_REPLICA,
      startTimeoutMs: env.LOCAL_START_TIMEOUT_MS,
      shadowCpuPriority: env.LOCAL_SHADOW_CPU_PRIORITY,
      scoring: {
        maxBodyBytes: env.LOCAL_SCORING_MAX_BODY_BYTES,
        headersTimeoutMs: env.LOCAL_SCORING_HEADERS_TIMEOUT_MS,
        requestTimeoutMs: env.LOCAL_SCORING_REQUEST_TIMEOUT_MS,
        keepAliveTimeoutMs: env.LOCAL_SCORING_KEEP_ALIVE_TIMEOUT_MS,
        maxConnections: env.LOCAL_SCORING_MAX_CONNECTIONS,
      },
    },
    limits: { maxUploadBytes: env.MAX_UPLOAD_BYTES, maxUploadPartBytes: Math.min(env.MAX_UPLOAD_PART_BYTES || env.MAX_UPLOAD_BYTES, env.MAX_UPLOAD_BYTES) },
    loneOnnxSettleSeconds: env.LONE_ONNX_SETTLE_SECONDS,
    smokeTest: {
      livenessTimeoutMs: env.SMOKE_TEST_LIVENESS_TIMEOUT_MS,
      requestTimeoutMs: env.SMOKE_TEST_REQUEST_TIMEOUT_MS,
    },
    azure: {
      subscriptionId: env.AZURE_SUBSCRIPTION_ID,
      resourceGroup: env.AZURE_RESOURCE_GROUP,
      location: env.AZURE_LOCATION,
      acrName: env.ACR_NAME,
      managedIdentityClientId: env.AZURE_CLIENT_ID,
      managedIdentityResourceId: env.MANAGED_IDENTITY_RESOURCE_ID,
      aksClusterName: env.AKS_CLUSTER_NAME,
      aksNamespace: env.AKS_NAMESPACE,
    },
  };
}

let cached: { fingerprint: string; config: AppConfig } | undefined;

/**
 * The process-wide settings, read from `process.env` once (and again only if one of the app's settings changed,
 * e.g. when a test starts a new local host with other settings). The same object is returned while unchanged.
 */
export function getConfig(): AppConfig {
  const fingerprint = SETTING_NAMES.map((n) => process.env[n] ?? '').join('\u0000');
  if (!cached || cached.fingerprint !== fingerprint) cached = { fingerprint, config: loadConfig(process.env) };
  return cached.config;
}
