/**
 * AKS clusters (`@azure/arm-containerservice`): attach an existing cluster or create one — both check the seed's
 * rule "agent_count × vCPUs of vm_size ≥ 12" before anything else — and build a Kubernetes client
 * configuration from the cluster's user credentials. On Entra ID (AAD) clusters the kubeconfig's exec plugin
 * (kubelogin) is replaced by a token for the AKS server application from the app's own credential.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { ManagedCluster } from '@azure/arm-containerservice';
import type * as K8s from '@kubernetes/client-node';
import { AppError } from '../errors';
import type { AzureClients, AzureTiming } from './clients';
import { DEFAULT_TIMING } from './clients';
import type { AzureConfig } from './config';
import { azureCall } from './errors';

/** vCPUs of common VM sizes (Azure VM size docs). Sizes not listed need `vcpusPerAgent`. */
export const VM_VCPUS: Record<string, number> = {
  Standard_A2_v2: 2, Standard_A4_v2: 4, Standard_A8_v2: 8,
  Standard_B2s: 2, Standard_B2ms: 2, Standard_B4ms: 4, Standard_B8ms: 8,
  Standard_D1_v2: 1, Standard_D2_v2: 2, Standard_D3_v2: 4, Standard_D4_v2: 8, Standard_D5_v2: 16,
  Standard_DS1_v2: 1, Standard_DS2_v2: 2, Standard_DS3_v2: 4, Standard_DS4_v2: 8, Standard_DS5_v2: 16,
  Standard_D2_v3: 2, Standard_D4_v3: 4, Standard_D8_v3: 8, Standard_D16_v3: 16,
  Standard_D2s_v3: 2, Standard_D4s_v3: 4, Standard_D8s_v3: 8, Standard_D16s_v3: 16,
  Standard_D2s_v4: 2, Standard_D4s_v4: 4, Standard_D8s_v4: 8, Standard_D16s_v4: 16,
  Standard_D2s_v5: 2, Standard_D4s_v5: 4, Standard_D8s_v5: 8, Standard_D16s_v5: 16,
  Standard_D2ds_v5: 2, Standard_D4ds_v5: 4, Standard_D8ds_v5: 8, Standard_D16ds_v5: 16,
  Standard_D2as_v5: 2, Standard_D4as_v5: 4, Standard_D8as_v5: 8, Standard_D16as_v5: 16,
  Standard_E2s_v3: 2, Standard_E4s_v3: 4, Standard_E8s_v3: 8, Standard_E16s_v3: 16,
  Standard_F2s_v2: 2, Standard_F4s_v2: 4, Standard_F8s_v2: 8, Standard_F16s_v2: 16,
  Standard_NC6: 6, Standard_NC4as_T4_v3: 4, Standard_NC8as_T4_v3: 8,
};

/** The seed's minimum: agent_count × vCPUs ≥ 12. */
export const AKS_MIN_VCPUS = 12;

export interface AksClusterSpec {
  /** Seed defaults (AksCompute.provisioning_configuration): 3 × Standard_D3_v2 (4 vCPUs). */
  agentCount?: number;
  vmSize?: string;
  /** vCPUs of `vmSize` when it is not in `VM_VCPUS`. */
  vcpusPerAgent?: number;
  kubernetesVersion?: string;
  dnsPrefix?: string;
}

export function vcpusOf(vmSize: string, override?: number): number {
  if (override !== undefined) return override;
  const known = VM_VCPUS[vmSize] ?? Object.entries(VM_VCPUS).find(([k]) => k.toLowerCase() === vmSize.toLowerCase())?.[1];
  if (known === undefined) {
    throw new AppError('AksVmSizeUnknown', `The vCPU count of VM size ${vmSize} is not known here; pass vcpusPerAgent for it or use a size such as Standard_D3_v2.`, 400);
  }
  return known;
}

/** Throws `AksClusterTooSmall` unless agent_count × vCPUs ≥ 12 (names the smallest agent count that works). */
export function checkAksCapacity(agentCount: number, vmSize: string, vcpusPerAgent?: number): number {
  const vcpus = vcpusOf(vmSize, vcpusPerAgent);
  const total = agentCount * vcpus;
  if (!Number.isInteger(agentCount) || agentCount < 1 || total < AKS_MIN_VCPUS) {
    throw new AppError(
      'AksClusterTooSmall',
      `AKS needs agent_count × vCPUs ≥ ${AKS_MIN_VCPUS}: ${agentCount} × ${vcpus} (${vmSize}) = ${total}. ` +
        `Set agent_count to at least ${Math.ceil(AKS_MIN_VCPUS / vcpus)} or choose a larger vm_size.`,
      400,
    );
  }
  return total;
}

/** The ARM body `createAksCluster` sends (exported for `plan`). */
export function managedClusterBody(config: Pick<AzureConfig, 'location' | 'aks'>, spec: AksClusterSpec): ManagedCluster {
  const agentCount = spec.agentCount ?? 3;
  const vmSize = spec.vmSize ?? 'Standard_D3_v2';
  return {
    location: config.location,
    identity: { type: 'SystemAssigned' },
    dnsPrefix: spec.dnsPrefix ?? config.aks.clusterName.toLowerCase().replace(/[^a-z0-9-]/g, '').slice(0, 54),
    ...(spec.kubernetesVersion ? { kubernetesVersion: spec.kubernetesVersion } : {}),
    enableRbac: true,
    agentPoolProfiles: [{ name: 'system', mode: 'System', osType: 'Linux', count: agentCount, vmSize, type: 'VirtualMachineScaleSets' }],
    tags: { 'mdf-managed-by': 'model-deploy-flow' },
  };
}

export interface AksClusterOptions {
  clients: Pick<AzureClients, 'containerService' | 'credential'>;
  config: Pick<AzureConfig, 'location' | 'aks'>;
  timing?: AzureTiming;
}

/** Attaches an existing cluster: it must exist, be provisioned, and meet the vCPU rule. */
export async function attachAksCluster(o: AksClusterOptions): Promise<ManagedCluster> {
  const { resourceGroup, clusterName } = o.config.aks;
  const cluster = await azureCall(`read AKS cluster ${clusterName}`, () => o.clients.containerService.managedClusters.get(resourceGroup, clusterName));
  if (cluster.provisioningState !== 'Succeeded') {
    throw new AppError('AksClusterNotReady', `AKS cluster ${clusterName} is ${cluster.provisioningState ?? 'in an unknown state'}; wait for it to finish provisioning.`, 409);
  }
  const total = (cluster.agentPoolProfiles ?? []).reduce((sum, p) => sum + (p.count ?? 0) * (VM_VCPUS[p.vmSize ?? ''] ?? 0), 0);
  const unknown = (cluster.agentPoolProfiles ?? []).some((p) => VM_VCPUS[p.vmSize ?? ''] === undefined);
  if (!unknown && total < AKS_MIN_VCPUS) {
    throw new AppError('AksClusterTooSmall', `AKS cluster ${clusterName} has ${total} vCPUs; the minimum is ${AKS_MIN_VCPUS}. Add nodes or attach another cluster.`, 400);
  }
  return cluster;
}

/** Creates the configured cluster after checking the vCPU rule (no ARM call when the rule fails). */
export async function createAksCluster(o: AksClusterOptions, spec: AksClusterSpec = {}): Promise<ManagedCluster> {
  checkAksCapacity(spec.agentCount ?? 3, spec.vmSize ?? 'Standard_D3_v2', spec.vcpusPerAgent);
  const { resourceGroup, clusterName } = o.config.aks;
  const timing = o.timing ?? DEFAULT_TIMING;
  return azureCall(`create AKS cluster ${clusterName}`, () =>
    o.clients.containerService.managedClusters
      .createOrUpdate(resourceGroup, clusterName, managedClusterBody(o.config, spec), { updateIntervalInMs: timing.lroIntervalMs })
      .pollUntilDone(),
  );
}

/** Entra ID application of the AKS API server: tokens for it authenticate to AAD-enabled clusters. */
export const AKS_AAD_SERVER_SCOPE = '6dae42f8-4368-4678-94ff-3960e28e3630/.default';

/** The `@kubernetes/client-node` module (ESM; Node ≥ 20.19 loads it with require). */
export type KubernetesModule = typeof K8s;

export function loadKubernetesModule(): KubernetesModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@kubernetes/client-node') as KubernetesModule;
}

/**
 * A KubeConfig for the cluster from `listClusterUserCredential`. When the user entry needs the kubelogin exec
 * plugin (AAD clusters), it is replaced by a bearer token from `credential` (valid about an hour).
 */
export async function kubeConfigFor(o: AksClusterOptions, k8s: KubernetesModule): Promise<K8s.KubeConfig> {
  const { resourceGroup, clusterName } = o.config.aks;
  const creds = await azureCall(`get credentials of AKS cluster ${clusterName}`, () =>
    o.clients.containerService.managedClusters.listClusterUserCredentials(resourceGroup, clusterName),
  );
  const raw = creds.kubeconfigs?.[0]?.value;
  if (!raw) throw new AppError('AksCredentialsMissing', `AKS returned no kubeconfig for ${clusterName}; check the identity's "Azure Kubernetes Service Cluster User Role".`, 502);
  const kc = new k8s.KubeConfig();
  kc.loadFromString(Buffer.from(raw).toString('utf8'));
  const user = kc.getCurrentUser();
  if (user?.exec || user?.authProvider) {
    const token = await o.clients.credential.getToken(AKS_AAD_SERVER_SCOPE);
    if (!token) throw new AppError('AksTokenUnavailable', `No Entra ID token for AKS cluster ${clusterName}; check the app identity.`, 502);
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new AppError('AksCredentialsMissing', `The kubeconfig of ${clusterName} names no cluster.`, 502);
    const fresh = new k8s.KubeConfig();
    fresh.loadFromOptions({
      clusters: [cluster],
      users: [{ name: 'model-deploy-flow', token: token.token }],
      contexts: [{ name: 'mdf', cluster: cluster.name, user: 'model-deploy-flow' }],
      currentContext: 'mdf',
    });
    return fresh;
  }
  return kc;
}
