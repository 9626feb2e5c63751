/**
 * What a replica gets for `collect_model_data` / `enable_app_insights` (runtime/collector.ts, runtime/telemetry.ts):
 * labels (service, slot), the collection container and the telemetry exporter settings — for the scoring runtime's
 * own process only; its workers (user code) never inherit them (runtime/child-env.ts).
 *
 * Local target: a SAS URL of the `modeldata` container alone, create + write only (no read, no list, no other
 * container), valid `MODEL_DATA_SAS_DAYS`: never the host's connection string. Azure targets: the container URL
 * without a SAS; the replica writes with its managed identity (DefaultAzureCredential).
 */
import { ContainerSASPermissions } from '@azure/storage-blob';
import { RUNTIME_ENV } from '../../runtime';
import { AppError } from '../errors';
import type { DeployConfig } from '../seams';
import { CONTAINERS, type StorageClients } from '../storage';

/** Lifetime of the local target's collection SAS (a replica started again gets a new one). */
export const MODEL_DATA_SAS_DAYS = 7;

/** Telemetry settings passed from the host's environment to a replica's runtime process when `enable_app_insights`. */
export const TELEMETRY_ENV_NAMES = [
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
  'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
  'OTEL_EXPORTER_OTLP_METRICS_HEADERS',
] as const;

/** A write-only SAS URL of the model data container (created if missing). */
export async function modelDataSasUrl(storage: StorageClients, now = new Date()): Promise<string> {
  const container = await storage.ensureContainer(CONTAINERS.modelData);
  try {
    return await container.generateSasUrl({
      permissions: ContainerSASPermissions.parse('cw'),
      startsOn: new Date(now.getTime() - 5 * 60_000),
      expiresOn: new Date(now.getTime() + MODEL_DATA_SAS_DAYS * 24 * 3600_000),
    });
  } catch {
    throw new AppError(
      'ModelDataUnavailable',
      'collect_model_data on the local target needs storage addressed with an account key (a connection string such as Azurite\'s): it gives each replica a write-only SAS of the modeldata container.',
      400,
    );
  }
}

/**
 * Environment for a replica's runtime process when the configuration turns collection or telemetry on (else none):
 * labels, then the collection and telemetry settings. `modelDataUrl`: the container URL (with SAS locally, without in Azure).
 */
export function observabilityEnv(
  config: Pick<DeployConfig, 'collectModelData' | 'enableAppInsights'>,
  labels: { serviceName: string; slot: string },
  modelDataUrl?: string,
  source: NodeJS.ProcessEnv = process.env,
): Array<[string, string]> {
  if (!config.collectModelData && !config.enableAppInsights) return [];
  const out: Array<[string, string]> = [
    [RUNTIME_ENV.serviceName, labels.serviceName],
    [RUNTIME_ENV.slot, labels.slot],
  ];
  if (config.collectModelData) {
    out.push([RUNTIME_ENV.collectModelData, 'true']);
    if (modelDataUrl) out.push([RUNTIME_ENV.modelDataUrl, modelDataUrl]);
  }
  if (config.enableAppInsights) {
    out.push([RUNTIME_ENV.enableAppInsights, 'true']);
    for (const name of TELEMETRY_ENV_NAMES) {
      const v = source[name];
      if (v) out.push([name, v]);
    }
  }
  return out;
}
