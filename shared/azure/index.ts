/**
 * The Azure implementations of the seams, built from the app settings:
 *   const azure = azureSeams(getStorage());           // validates settings on first use of each piece
 *   azure.imageBuilder().build(...); azure.target('aci').deploySlot(...); azure.batchPools().provision(...)
 * Each getter validates only the settings its feature needs (`AzureConfigMissing` names what is missing).
 */
import type { TokenCredential } from '@azure/core-auth';
import type { BatchPoolProvider, DeployTarget, ImageBuilder } from '../seams';
import { isNotFound } from '../errors';
import { CONTAINERS, downloadBlob, parseBlobPath, type StorageClients } from '../storage';
import { AciBatchPoolProvider } from './aci-batch';
import { AciTarget } from './aci-target';
import { frontAdminKey } from './aci-front';
import { FrontImage } from './front-image';
import { ServiceRegistry } from '../registry/services';
import { AcrTaskImageBuilder, type BlobIO } from './acr-builder';
import { AksTarget } from './aks-target';
import { createAzureClients, type AzureClientOptions, type AzureTiming } from './clients';
import { createAzureCredential, loadAzureConfig, type AzureFeature } from './config';

export { loadAzureConfig, createAzureCredential, validateAzureStartup, azureFeaturesFor } from './config';
export type { AzureConfig, AzureFeature } from './config';
export { AcrTaskImageBuilder } from './acr-builder';
export { AciTarget } from './aci-target';
export { KeyVaultSecretReader } from './key-vault';
export { AksTarget } from './aks-target';
export { AciBatchPoolProvider } from './aci-batch';
export { generateEdgeManifest } from './iot-edge';
export { createAksCluster, attachAksCluster, checkAksCapacity } from './aks-cluster';

/** Blob access for the ACR builder over the app's storage clients. */
export function blobIoFromStorage(storage: StorageClients): BlobIO {
  const blob = (p: string) => {
    const { container, blob: name } = parseBlobPath(p, storage);
    return storage.container(container).getBlockBlobClient(name);
  };
  return {
    read: (p) => downloadBlob(storage, p),
    async tryRead(p) {
      try {
        return await blob(p).downloadToBuffer();
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
    async write(p, data) {
      const { container } = parseBlobPath(p, storage);
      await storage.ensureContainer(container);
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
      await blob(p).uploadData(buf);
    },
    async delete(p) {
      await blob(p).deleteIfExists();
    },
  };
}

export interface AzureSeamsOptions {
  env?: Record<string, string | undefined>;
  credential?: TokenCredential;
  clientOptions?: AzureClientOptions;
  timing?: AzureTiming;
  log?: (message: string) => void;
}

export interface AzureSeams {
  imageBuilder(): ImageBuilder;
  target(kind: 'aci' | 'aks'): DeployTarget;
  batchPools(): BatchPoolProvider;
}

/**
 * What the service front (progressive delivery on ACI; the shadow phase on AKS) needs of the services' secrets: its
 * admin signing key and, on ACI, the service's keys (AKS mounts the keys Secret).
 * - AKS: the admin key comes from the service's own front secret (`ensureFrontSecret`), never from the token secret:
 *   a token-auth slot holds the token secret (its keys file), so the scoring script could otherwise sign admin writes
 *   to the front (point live traffic at any URL, take all of it) from inside the cluster.
 * - ACI: from the token secret, as the fronts already running were created with; ACI slots never hold it (ACI has
 *   key auth only: `TokenAuthNotSupported`).
 */
export function frontSecrets(registry: ServiceRegistry, kind: 'aci' | 'aks'): { keys(name: string): Promise<{ primaryKey: string; secondaryKey: string }>; frontKey(name: string): Promise<string> } {
  return {
    keys: (name) => registry.ensureKeys(name),
    frontKey: async (name) => frontAdminKey(name, kind === 'aks' ? await registry.ensureFrontSecret(name) : await registry.ensureTokenSecret(name)),
  };
}

export function azureSeams(storage: StorageClients, options: AzureSeamsOptions = {}): AzureSeams {
  const env = options.env ?? process.env;
  const setup = (features: AzureFeature[]) => {
    const config = loadAzureConfig(env, features);
    const clients = createAzureClients(config, options.credential ?? createAzureCredential(config), options.clientOptions);
    return { config, clients, timing: options.timing, log: options.log };
  };
  let builder: AcrTaskImageBuilder | undefined;
  const acrBuilder = (): AcrTaskImageBuilder => (builder ??= new AcrTaskImageBuilder({ ...setup(['acr']), blobs: blobIoFromStorage(storage) }));
  let aci: DeployTarget | undefined;
  let frontImages: FrontImage | undefined;
  let aks: DeployTarget | undefined;
  let pools: BatchPoolProvider | undefined;
  return {
    imageBuilder: acrBuilder,
    target: (kind) => {
      // collect_model_data: replicas write to the app's own storage account, with their identity.
      const modelDataUrl = storage.container(CONTAINERS.modelData).url;
      // The service front (progressive delivery on ACI; the shadow phase on AKS): its admin key and, on ACI, the
      // service's keys (AKS mounts the keys Secret).
      const secrets = frontSecrets(new ServiceRegistry(storage), kind);
      // The service front's own image (both targets run the same one), built with the app's ACR builder when a
      // first front needs it (the ACR settings are checked then, not when the target is made).
      const images = () => (frontImages ??= new FrontImage({ builder: acrBuilder(), blobs: blobIoFromStorage(storage), ...(options.log ? { log: options.log } : {}) }));
      const frontImage = { ref: () => images().ref(), ready: () => images().ready() };
      if (kind === 'aci') return (aci ??= new AciTarget({ ...setup(['aci']), modelDataUrl, secrets, frontImage }));
      return (aks ??= new AksTarget({ ...setup(['aks']), modelDataUrl, secrets, frontImage }));
    },
    batchPools: () => (pools ??= new AciBatchPoolProvider(setup(['aci']))),
  };
}
