/**
 * The scoring replicas' own identity on AKS (REPLICA_IDENTITY_*), with Azure Workload Identity:
 * - a ServiceAccount `mdf-replica` in AKS_NAMESPACE, annotated `azure.workload.identity/client-id: <replica client
 *   id>`, with no Kubernetes API token mounted (`automountServiceAccountToken: false`): the slot pods run as it;
 * - the pods of a slot with `collect_model_data` carry the label `azure.workload.identity/use: "true"`, so the
 *   cluster's webhook injects AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_FEDERATED_TOKEN_FILE / AZURE_AUTHORITY_HOST
 *   and the projected token, which the runtime's DefaultAzureCredential exchanges (WorkloadIdentityCredential) for a
 *   storage token of the replicas' identity; pods that collect nothing get no Azure token at all;
 * - the federated identity credential on the replicas' user-assigned identity (ARM, Microsoft.ManagedIdentity
 *   `federatedIdentityCredentials`, api-version 2023-01-31) that trusts the cluster's OIDC issuer for
 *   `system:serviceaccount:<namespace>:mdf-replica`, audience `api://AzureADTokenExchange`.
 * Everything is read first and written only when it differs, so a deployment that finds it in place writes nothing.
 * A cluster without an OIDC issuer or with workload identity off is refused with the `az aks update` that fixes it.
 */
import { createHash } from 'node:crypto';
import type { ManagedCluster } from '@azure/arm-containerservice';
import { createDefaultHttpClient, createPipelineRequest, type HttpClient } from '@azure/core-rest-pipeline';
import type * as K8s from '@kubernetes/client-node';
import { AppError, isNotFound, statusOf } from '../errors';
import type { AzureClients } from './clients';
import type { AzureConfig } from './config';
import { azureCall, toAzureError } from './errors';
import { MANAGED_BY, TAGS } from './names';

/** The ServiceAccount the slot pods run as when the replicas have their own identity. */
export const REPLICA_SERVICE_ACCOUNT = 'mdf-replica';
/** Pod label the workload identity webhook acts on (only pods with it get the Azure variables and the token). */
export const WORKLOAD_IDENTITY_USE_LABEL = 'azure.workload.identity/use';
/** ServiceAccount annotation naming the client id of the identity the webhook puts in AZURE_CLIENT_ID. */
export const WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION = 'azure.workload.identity/client-id';
/** Audience of the projected service account token that Entra ID exchanges. */
export const TOKEN_EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';
/** api-version of Microsoft.ManagedIdentity federatedIdentityCredentials. */
export const FEDERATED_CREDENTIAL_API_VERSION = '2023-01-31';
/** Largest ARM answer parsed here (a federated credential is well under 2 KB). */
const MAX_ARM_ANSWER_CHARS = 64 * 1024;

export type ReplicaIdentity = NonNullable<AzureConfig['replicaIdentity']>;

/** `system:serviceaccount:<namespace>:<service account>`: the subject the credential trusts. */
export function serviceAccountSubject(namespace: string, serviceAccount = REPLICA_SERVICE_ACCOUNT): string {
  return `system:serviceaccount:${namespace}:${serviceAccount}`;
}

/**
 * The credential's name: one per cluster and namespace (`mdf-<cluster>-<namespace>-<8 hex of their SHA-256>`, the
 * characters ARM allows, at most 120), so an identity federated with several clusters or namespaces keeps one
 * credential for each. The digest keeps apart pairs the readable part cannot (`a-b` + `c` and `a` + `b-c`, names cut
 * at 120): with one name, each installation's deployment would overwrite the other's issuer and cut its pods off.
 */
export function federatedCredentialName(clusterName: string, namespace: string): string {
  const digest = createHash('sha256').update(`${clusterName}\n${namespace}`).digest('hex').slice(0, 8);
  return `${`mdf-${clusterName}-${namespace}`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 111)}-${digest}`;
}

/** The ARM resource id of the federated credential on the replicas' identity. */
export function federatedCredentialId(identity: ReplicaIdentity, clusterName: string, namespace: string): string {
  return `${identity.resourceId}/federatedIdentityCredentials/${federatedCredentialName(clusterName, namespace)}`;
}

export interface FederatedCredentialProperties {
  issuer: string;
  subject: string;
  audiences: string[];
}

/** The body of the credential's PUT. */
export function federatedCredentialBody(issuer: string, namespace: string): { properties: FederatedCredentialProperties } {
  return { properties: { issuer, subject: serviceAccountSubject(namespace), audiences: [TOKEN_EXCHANGE_AUDIENCE] } };
}

/** The ServiceAccount `mdf-replica`: the replicas' client id for the webhook, no Kubernetes API token in the pods. */
export function replicaServiceAccount(namespace: string, identity: Pick<ReplicaIdentity, 'clientId'>): K8s.V1ServiceAccount {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name: REPLICA_SERVICE_ACCOUNT,
      namespace,
      labels: { [TAGS.managedBy]: MANAGED_BY },
      annotations: { [WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION]: identity.clientId },
    },
    automountServiceAccountToken: false,
  };
}

/**
 * A slot Deployment with the replicas' identity: its pods run as `mdf-replica`; with `workloadIdentity` (the slot
 * collects model data) their template also carries `azure.workload.identity/use: "true"`. The selector is unchanged.
 */
export function withReplicaIdentity(deployment: K8s.V1Deployment, workloadIdentity: boolean): K8s.V1Deployment {
  const template = deployment.spec!.template;
  return {
    ...deployment,
    spec: {
      ...deployment.spec!,
      template: {
        ...template,
        metadata: {
          ...template.metadata,
          labels: { ...template.metadata?.labels, ...(workloadIdentity ? { [WORKLOAD_IDENTITY_USE_LABEL]: 'true' } : {}) },
        },
        spec: { ...template.spec!, serviceAccountName: REPLICA_SERVICE_ACCOUNT },
      },
    },
  };
}

/** The az command that turns on what the replicas' identity needs on the cluster. */
function enableCommand(config: Pick<AzureConfig, 'aks'>): string {
  return `az aks update --resource-group ${config.aks.resourceGroup} --name ${config.aks.clusterName} --enable-oidc-issuer --enable-workload-identity`;
}

/**
 * The cluster's OIDC issuer URL, after checking that the cluster can federate the replicas' identity: OIDC issuer on
 * (`AksOidcIssuerDisabled`) and workload identity on (`AksWorkloadIdentityDisabled`, the webhook that injects the
 * token), both 409 with the command that fixes them.
 */
export function workloadIdentityIssuer(cluster: ManagedCluster, config: Pick<AzureConfig, 'aks'>): string {
  const name = config.aks.clusterName;
  const issuer = cluster.oidcIssuerProfile?.enabled === false ? undefined : cluster.oidcIssuerProfile?.issuerURL;
  if (!issuer) {
    throw new AppError(
      'AksOidcIssuerDisabled',
      `AKS cluster ${name} has no OIDC issuer: the replicas' identity (REPLICA_IDENTITY_*) cannot be federated with its pods for collect_model_data. ` +
        `Enable it (and workload identity): ${enableCommand(config)}`,
      409,
    );
  }
  if (cluster.securityProfile?.workloadIdentity?.enabled !== true) {
    throw new AppError(
      'AksWorkloadIdentityDisabled',
      `AKS cluster ${name} has workload identity turned off: its pods cannot get the replicas' identity (REPLICA_IDENTITY_*) for collect_model_data. ` +
        `Enable it: ${enableCommand(config)}`,
      409,
    );
  }
  return issuer;
}

const sameAudiences = (a: readonly string[] | undefined, b: readonly string[]) =>
  !!a && a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);

/** Whether a credential read back from ARM already trusts what `want` says. */
export function sameFederatedCredential(have: Partial<FederatedCredentialProperties> | undefined, want: FederatedCredentialProperties): boolean {
  return !!have && have.issuer === want.issuer && have.subject === want.subject && sameAudiences(have.audiences, want.audiences);
}

/** One ARM request through the clients' pipeline (the app's token, retries); 404 → undefined; bounded answer. */
async function armRequest(
  clients: Pick<AzureClients, 'containerService'>,
  config: Pick<AzureConfig, 'armEndpoint'>,
  http: HttpClient,
  method: 'GET' | 'PUT',
  id: string,
  body?: unknown,
): Promise<unknown> {
  const request = createPipelineRequest({
    url: `${config.armEndpoint}${id}?api-version=${FEDERATED_CREDENTIAL_API_VERSION}`,
    method,
    timeout: 60_000,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  request.headers.set('accept', 'application/json');
  if (body !== undefined) request.headers.set('content-type', 'application/json');
  const res = await clients.containerService.pipeline.sendRequest(http, request);
  const text = res.bodyAsText ?? '';
  if (res.status === 404 && method === 'GET') return undefined;
  if (text.length > MAX_ARM_ANSWER_CHARS) throw new AppError('AzureServiceError', `Azure's answer for ${id} is larger than ${MAX_ARM_ANSWER_CHARS} characters.`, 502);
  if (res.status < 200 || res.status >= 300) {
    let parsed: { error?: { code?: string; message?: string } } | undefined;
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      parsed = undefined;
    }
    throw Object.assign(new Error(parsed?.error?.message ?? `HTTP ${res.status}`), { statusCode: res.status, code: parsed?.error?.code });
  }
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new AppError('AzureServiceError', `Azure's answer for ${id} is not JSON.`, 502);
  }
}

export interface ReplicaIdentityOptions {
  clients: Pick<AzureClients, 'containerService'>;
  config: Pick<AzureConfig, 'aks' | 'armEndpoint'> & { replicaIdentity: ReplicaIdentity };
  /** The Kubernetes core API of the cluster (AksTarget's). */
  core: K8s.CoreV1Api;
  /** The slot collects model data: the pods get the identity's token, so the cluster must federate it. */
  workloadIdentity: boolean;
  /** The HTTP client of the ARM requests (default: the SDK's). */
  http?: HttpClient;
  log?: (message: string) => void;
}

/**
 * Puts the replicas' identity in place before a slot's pods start: the ServiceAccount (always, since the pods name
 * it) and, when the slot uses workload identity, the cluster check and the federated credential. Each is read
 * first; only what is missing or different is written. Returns what was written (for the log and the tests).
 */
export async function ensureReplicaIdentity(o: ReplicaIdentityOptions): Promise<string[]> {
  const { config, core } = o;
  const ns = config.aks.namespace;
  const wrote: string[] = [];
  const k8s = async <T>(operation: string, fn: () => Promise<T>, absentOk = false): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (e) {
      if (absentOk && isNotFound(e)) return undefined;
      throw toAzureError(e, operation);
    }
  };

  if (o.workloadIdentity) {
    const { resourceGroup, clusterName } = config.aks;
    const cluster = await azureCall(`read AKS cluster ${clusterName}`, () => o.clients.containerService.managedClusters.get(resourceGroup, clusterName));
    const issuer = workloadIdentityIssuer(cluster, config);
    const name = federatedCredentialName(clusterName, ns);
    const id = federatedCredentialId(config.replicaIdentity, clusterName, ns);
    const want = federatedCredentialBody(issuer, ns);
    const http = o.http ?? createDefaultHttpClient();
    const inPlace = async () => {
      const have = (await azureCall(`read the federated credential ${name} of the replicas' identity`, () => armRequest(o.clients, config, http, 'GET', id))) as { properties?: Partial<FederatedCredentialProperties> } | undefined;
      return sameFederatedCredential(have?.properties, want.properties);
    };
    if (!(await inPlace())) {
      try {
        await armRequest(o.clients, config, http, 'PUT', id, want);
        wrote.push(`federated credential ${name}`);
      } catch (e) {
        // ARM refuses concurrent writes of credentials on one identity (409): another deployment wrote it at the same
        // moment; what it wrote is what this one wants, or the write is reported.
        if (statusOf(e) !== 409 || !(await inPlace())) {
          throw toAzureError(e, `write the federated credential ${name} of the replicas' identity (the app identity needs Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write on it: docs/azure.md)`);
        }
      }
    }
  }

  const sa = replicaServiceAccount(ns, config.replicaIdentity);
  const readSa = () => k8s(`read ServiceAccount ${REPLICA_SERVICE_ACCOUNT}`, () => core.readNamespacedServiceAccount({ name: REPLICA_SERVICE_ACCOUNT, namespace: ns }), true);
  const saInPlace = (a: K8s.V1ServiceAccount | undefined) =>
    !!a && a.metadata?.annotations?.[WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION] === config.replicaIdentity.clientId && a.automountServiceAccountToken === false;
  /** A write another deployment raced (409: created meanwhile, or changed since read) is fine when the result is ours. */
  const write = async (operation: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      wrote.push(`ServiceAccount ${REPLICA_SERVICE_ACCOUNT}`);
    } catch (e) {
      if (statusOf(e) !== 409 || !saInPlace(await readSa())) throw toAzureError(e, operation);
    }
  };
  const existing = await readSa();
  if (!existing) {
    await write(`create ServiceAccount ${REPLICA_SERVICE_ACCOUNT}`, () => core.createNamespacedServiceAccount({ namespace: ns, body: sa }));
  } else if (!saInPlace(existing)) {
    // Keep what others put on it (labels, annotations, image pull secrets); set ours.
    const body: K8s.V1ServiceAccount = {
      ...existing,
      metadata: {
        ...existing.metadata,
        labels: { ...existing.metadata?.labels, ...sa.metadata!.labels },
        annotations: { ...existing.metadata?.annotations, ...sa.metadata!.annotations },
      },
      automountServiceAccountToken: false,
    };
    await write(`update ServiceAccount ${REPLICA_SERVICE_ACCOUNT}`, () => core.replaceNamespacedServiceAccount({ name: REPLICA_SERVICE_ACCOUNT, namespace: ns, body }));
  }
  if (wrote.length) o.log?.(`replicas' identity on AKS: wrote ${wrote.join(', ')}`);
  return wrote;
}
