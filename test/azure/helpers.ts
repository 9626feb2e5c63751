/** Shared pieces of the Azure wire tests: a fake credential, fast timing, in-memory blobs, nock set-up. */
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import type NockType from 'nock';
import type { BlobIO } from '../../shared/azure/acr-builder';
import { createAzureClients } from '../../shared/azure/clients';
import type { AzureConfig } from '../../shared/azure/config';
import { loadAzureConfig } from '../../shared/azure/config';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';

const K8S_MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/Ingress': Ingress,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
};

/**
 * One nock for the whole process, loaded with Node's own require: Jest gives every test file its own module
 * registry, and several nock copies in one process (--runInBand) fight over the same HTTP interceptor.
 */
export const nock: typeof NockType = (process as unknown as { getBuiltinModule(m: string): typeof import('module') })
  .getBuiltinModule('module')
  .createRequire(__filename)('nock');
// nock intercepts as soon as it loads; keep it off except inside `setupNock()` blocks.
if (nock.isActive()) nock.restore();

export const ARM = 'https://management.azure.com';
export const SUB = '00000000-1111-2222-3333-444444444444';
export const RG = 'rg-mdf';
export const TOKEN = 'fake-arm-token-123';

/** A TokenCredential that hands out a fixed token and records the scopes asked for. */
export class FakeCredential implements TokenCredential {
  scopes: string[] = [];
  async getToken(scopes: string | string[]): Promise<AccessToken> {
    this.scopes.push(...(Array.isArray(scopes) ? scopes : [scopes]));
    return { token: TOKEN, expiresOnTimestamp: Date.now() + 3600_000 };
  }
}

export const TEST_ENV: Record<string, string> = {
  AZURE_SUBSCRIPTION_ID: SUB,
  // The vaults the wire tests' manifests reference (TLS material, registry passwords): shared/azure/vaults.ts.
  ALLOWED_KEY_VAULTS: 'kv-mdf,mdfvault',
  AZURE_RESOURCE_GROUP: RG,
  AZURE_LOCATION: 'westeurope',
  ACR_NAME: 'mdfregistry',
  AZURE_CLIENT_ID: 'aaaaaaaa-0000-0000-0000-000000000001',
  MANAGED_IDENTITY_RESOURCE_ID: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mdf`,
  AKS_CLUSTER_NAME: 'aks-mdf',
  AKS_NAMESPACE: 'models',
  // The wire tests' ACI bodies carry the app's identity (an install without REPLICA_IDENTITY_*, opted in): the replicas'
  // own identity is asserted where a test sets REPLICA_IDENTITY_* (aci-batch, aks-identity, config tests).
  REPLICAS_USE_APP_IDENTITY: 'true',
};

export function testConfig(extra: Record<string, string> = {}): AzureConfig {
  return loadAzureConfig({ ...TEST_ENV, ...extra }, ['acr', 'aci', 'aks']);
}

/** A clock that jumps `stepMs` at each read: deadlines pass after a known number of polls, without waiting. */
export function steppingClock(stepMs: number): () => number {
  let t = 0;
  return () => (t += stepMs);
}

export const FAST = { lroIntervalMs: 1, pollIntervalMs: 0 };

export function testClients(config: AzureConfig = testConfig(), credential = new FakeCredential()) {
  return createAzureClients(config, credential, { retryOptions: { maxRetries: 2, retryDelayInMs: 1, maxRetryDelayInMs: 2 } });
}

export function memoryBlobs(initial: Record<string, Buffer | string> = {}): BlobIO & { data: Map<string, Buffer> } {
  const data = new Map<string, Buffer>(Object.entries(initial).map(([k, v]) => [k, Buffer.from(v)]));
  return {
    data,
    async read(p) {
      const v = data.get(p);
      if (!v) throw Object.assign(new Error(`no blob ${p}`), { statusCode: 404 });
      return v;
    },
    async tryRead(p) {
      return data.get(p);
    },
    async write(p, d) {
      data.set(p, Buffer.from(d));
    },
    async delete(p) {
      data.delete(p);
    },
  };
}

/** The ARM path of a resource group scoped provider resource. */
export function rgPath(provider: string, rest: string, rg = RG): string {
  return `/subscriptions/${SUB}/resourceGroups/${rg}/providers/${provider}/${rest}`;
}

/** nock scope for ARM that checks the bearer token on every request. */
export function arm(): NockType.Scope {
  return nock(ARM, { reqheaders: { authorization: `Bearer ${TOKEN}` } });
}

/** Query matcher: exactly this api-version (and any other query parameters listed). */
export function q(apiVersion: string, extra: Record<string, string> = {}) {
  return (query: Record<string, unknown>) =>
    query['api-version'] === apiVersion && Object.entries(extra).every(([k, v]) => query[k] === v);
}

/** Collects log lines so tests can assert that no secret reached them. */
export function captureLog(): { lines: string[]; log: (m: string) => void } {
  const lines: string[] = [];
  return { lines, log: (m: string) => lines.push(m) };
}

export function setupNock(): void {
  beforeAll(() => {
    if (!nock.isActive()) nock.activate();
    nock.disableNetConnect();
  });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    expect(pending).toEqual([]);
  });
  afterAll(() => {
    // Leave no interception behind for other test files run in the same process.
    nock.cleanAll();
    nock.enableNetConnect();
    nock.restore();
  });
}

/**
 * Validates a Kubernetes object the AKS target sends against the Kubernetes schema (kubernetes-models), by its
 * apiVersion and kind; throws on a schema violation or on a kind this helper does not know (add it here).
 * Returns the object, so it can wrap a nock body matcher: `(b) => ((body = validateK8s(b)), true)`.
 */
export function validateK8s<T>(obj: T): T {
  const o = obj as { apiVersion?: string; kind?: string };
  const key = `${o.apiVersion}/${o.kind}`;
  const model = K8S_MODELS[key];
  if (!model) throw new Error(`validateK8s: no Kubernetes schema for ${key}`);
  new model(obj as never).validate();
  return obj;
}
