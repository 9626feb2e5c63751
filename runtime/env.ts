/**
 * How a scoring container is configured without a command line: environment variables (ACI secure
 * environment values, an AKS Secret/ConfigMap) that give the runtime's options their defaults. Command-line
 * flags win over them. Keys travel only here or in `--keys-file`, and are never echoed in errors.
 */
import { RuntimeError } from './errors';
import type { ServerOptionsInput } from './options';

export const RUNTIME_ENV = {
  port: 'MDF_PORT',
  mode: 'MDF_MODE',
  primaryKey: 'MDF_PRIMARY_KEY',
  secondaryKey: 'MDF_SECONDARY_KEY',
  keysFile: 'MDF_KEYS_FILE',
  maxConcurrent: 'MDF_MAX_CONCURRENT_REQUESTS',
  maxWaitMs: 'MDF_MAX_WAIT_MS',
  timeoutMs: 'MDF_SCORING_TIMEOUT_MS',
  workers: 'MDF_WORKERS',
  serviceName: 'MDF_SERVICE_NAME',
  slot: 'MDF_SLOT',
  modelName: 'MDF_MODEL_NAME',
  modelVersion: 'MDF_MODEL_VERSION',
  /** `true`: model data collection on (collector.ts). */
  collectModelData: 'MDF_COLLECT_MODEL_DATA',
  /** Container URL of collected data: with a SAS (local target: write-only, that container only) or without (managed identity). */
  modelDataUrl: 'MDF_MODEL_DATA_URL',
  modelDataConnectionString: 'MDF_MODEL_DATA_CONNECTION_STRING',
  /** `true`: OpenTelemetry traces (telemetry.ts). */
  enableAppInsights: 'MDF_ENABLE_APP_INSIGHTS',
  /** HTTPS: paths of the PEM certificate chain and key (a secret volume on ACI/AKS; never the PEM itself). */
  tlsCertFile: 'MDF_TLS_CERT_FILE',
  tlsKeyFile: 'MDF_TLS_KEY_FILE',
  /** `http` / `https`: the scheme the swagger advertises (runtime/options.ts `publicScheme`). */
  publicScheme: 'MDF_PUBLIC_SCHEME',
} as const;

const STRING_OPTIONS = {
  serviceName: RUNTIME_ENV.serviceName,
  slot: RUNTIME_ENV.slot,
  modelName: RUNTIME_ENV.modelName,
  modelVersion: RUNTIME_ENV.modelVersion,
  modelDataUrl: RUNTIME_ENV.modelDataUrl,
  modelDataConnectionString: RUNTIME_ENV.modelDataConnectionString,
  tlsCertFile: RUNTIME_ENV.tlsCertFile,
  tlsKeyFile: RUNTIME_ENV.tlsKeyFile,
} as const;

const FLAG_OPTIONS = {
  collectModelData: RUNTIME_ENV.collectModelData,
  enableAppInsights: RUNTIME_ENV.enableAppInsights,
} as const;

const INT_OPTIONS = {
  port: RUNTIME_ENV.port,
  maxConcurrent: RUNTIME_ENV.maxConcurrent,
  maxWaitMs: RUNTIME_ENV.maxWaitMs,
  timeoutMs: RUNTIME_ENV.timeoutMs,
  workers: RUNTIME_ENV.workers,
} as const;

/** Options from `MDF_*` variables (absent or empty variables are ignored). */
export function optionsFromEnv(env: NodeJS.ProcessEnv): ServerOptionsInput {
  const out: ServerOptionsInput = {};
  for (const [key, name] of Object.entries(INT_OPTIONS) as [keyof typeof INT_OPTIONS, string][]) {
    const v = env[name]?.trim();
    if (!v) continue;
    if (!/^\d+$/.test(v)) throw new RuntimeError('InvalidArguments', `${name} must be a non-negative integer; got "${v}"`, 400);
    out[key] = Number(v);
  }
  for (const [key, name] of Object.entries(STRING_OPTIONS) as [keyof typeof STRING_OPTIONS, string][]) {
    const v = env[name]?.trim();
    if (v) out[key] = v;
  }
  for (const [key, name] of Object.entries(FLAG_OPTIONS) as [keyof typeof FLAG_OPTIONS, string][]) {
    const v = env[name]?.trim().toLowerCase();
    if (!v) continue;
    if (v === 'true' || v === '1') out[key] = true;
    else if (v === 'false' || v === '0') out[key] = false;
    else throw new RuntimeError('InvalidArguments', `${name} must be true or false; got "${env[name]!.trim().slice(0, 20)}"`, 400);
  }
  const mode = env[RUNTIME_ENV.mode]?.trim();
  if (mode) {
    if (mode === 'serve' || mode === 'realtime') out.mode = 'realtime';
    else if (mode === 'batch') out.mode = 'batch';
    else throw new RuntimeError('InvalidArguments', `${RUNTIME_ENV.mode} must be serve (realtime) or batch; got "${mode}"`, 400);
  }
  const scheme = env[RUNTIME_ENV.publicScheme]?.trim();
  if (scheme) {
    if (scheme !== 'http' && scheme !== 'https') throw new RuntimeError('InvalidArguments', `${RUNTIME_ENV.publicScheme} must be http or https; got "${scheme.slice(0, 20)}"`, 400);
    out.publicScheme = scheme;
  }
  const keysFile = env[RUNTIME_ENV.keysFile]?.trim();
  if (keysFile) out.keysFile = keysFile;
  const primaryKey = env[RUNTIME_ENV.primaryKey];
  const secondaryKey = env[RUNTIME_ENV.secondaryKey];
  if (primaryKey || secondaryKey) {
    if (!primaryKey || !secondaryKey) {
      throw new RuntimeError('InvalidArguments', `Set both ${RUNTIME_ENV.primaryKey} and ${RUNTIME_ENV.secondaryKey} (key auth needs a primary and a secondary key).`, 400);
    }
    out.keys = { primaryKey, secondaryKey };
  }
  return out;
}
