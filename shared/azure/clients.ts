/**
 * The Azure SDK clients the Azure seams use, built once from the settings and a credential. Tests pass a fake
 * TokenCredential, fast retries and fast long-running-operation polling; nothing else differs from production.
 */
import type { TokenCredential } from '@azure/core-auth';
import { ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import { ContainerRegistryManagementClient } from '@azure/arm-containerregistry';
import { ContainerServiceClient } from '@azure/arm-containerservice';
import type { AzureConfig } from './config';

export interface AzureTiming {
  /** Interval of the SDK's long-running-operation pollers (when the service sends no Retry-After). */
  lroIntervalMs: number;
  /** Interval of our own polls (ACR run status, container state, Kubernetes rollout). */
  pollIntervalMs: number;
  /** Clock for deadlines (tests advance it instead of waiting). */
  now?: () => number;
}

export const DEFAULT_TIMING: AzureTiming = { lroIntervalMs: 5000, pollIntervalMs: 5000 };

export interface AzureClientOptions {
  /** SDK retry policy (429 with Retry-After, 5xx, network errors). */
  retryOptions?: { maxRetries?: number; retryDelayInMs?: number; maxRetryDelayInMs?: number };
}

export interface AzureClients {
  readonly credential: TokenCredential;
  readonly registry: ContainerRegistryManagementClient;
  readonly containerInstance: ContainerInstanceManagementClient;
  readonly containerService: ContainerServiceClient;
}

export function createAzureClients(
  config: Pick<AzureConfig, 'subscriptionId' | 'armEndpoint'>,
  credential: TokenCredential,
  options: AzureClientOptions = {},
): AzureClients {
  const common = { endpoint: config.armEndpoint, retryOptions: options.retryOptions };
  let registry: ContainerRegistryManagementClient | undefined;
  let containerInstance: ContainerInstanceManagementClient | undefined;
  let containerService: ContainerServiceClient | undefined;
  return {
    credential,
    get registry() {
      return (registry ??= new ContainerRegistryManagementClient(credential, config.subscriptionId, common));
    },
    get containerInstance() {
      return (containerInstance ??= new ContainerInstanceManagementClient(credential, config.subscriptionId, common));
    },
    get containerService() {
      return (containerService ??= new ContainerServiceClient(credential, config.subscriptionId, common));
    },
  };
}
