/**
 * Everything an activity or HTTP function of the deployment chain needs, built once per process from the
 * settings: storage, model/image/service registries, the configured image builder, deploy targets and the event
 * publisher. `shutdownAppServices()` stops local processes and closes the publisher (host shutdown, tests).
 */
import { getConfig, type AppConfig } from '../config';
import { closeEventPublisher, getEventPublisher, type EventPublisher } from '../events';
import { ImageRegistry } from '../images';
import { ModelRegistry } from '../registry/models';
import type { DeployTarget, ImageBuilder, TargetKind } from '../seams';
import { disposeAll, getDeployTarget, getImageBuilder, getSecretReader } from '../platform/compose';
import type { SecretReader } from '../tls';
import { getStorage, type StorageClients } from '../storage';
import type { DeployContext } from '../deploy/steps';
import { ServiceRegistry } from '../registry/services';

export interface AppServices {
  config: AppConfig;
  storage: StorageClients;
  models: ModelRegistry;
  builder: ImageBuilder;
  images: ImageRegistry;
  services: ServiceRegistry;
  events: EventPublisher;
  /** Key Vault secrets, read with the app's identity (TLS certificates and keys); refuses without Azure settings. */
  secrets: SecretReader;
  target(kind: TargetKind): DeployTarget;
  /** The context of the deploy steps for one target kind. */
  deployContext(kind: TargetKind): DeployContext;
}

let cached: AppServices | undefined;

export function getAppServices(config: AppConfig = getConfig()): AppServices {
  if (cached && cached.config === config) return cached;
  const storage = getStorage(config);
  const models = new ModelRegistry(storage);
  const builder = getImageBuilder(config, storage);
  const images = new ImageRegistry(storage, models, builder);
  const services = new ServiceRegistry(storage);
  const target = (kind: TargetKind) => getDeployTarget(kind, config, storage);
  const secrets = getSecretReader();
  cached = {
    config,
    storage,
    models,
    builder,
    images,
    services,
    get events() {
      return getEventPublisher(config);
    },
    secrets,
    target,
    deployContext: (kind) => ({
      services,
      images,
      target: target(kind),
      tls: { storage, secrets },
      livenessTimeoutMs: config.smokeTest.livenessTimeoutMs,
      requestTimeoutMs: config.smokeTest.requestTimeoutMs,
    }),
  };
  return cached;
}

/** Stops local scoring processes and closes the event publisher. */
export async function shutdownAppServices(): Promise<void> {
  cached = undefined;
  await disposeAll();
  await closeEventPublisher();
}
