/**
 * The replicas' own identity on AKS (REPLICA_IDENTITY_*, shared/azure/aks-identity.ts) at the wire: a slot deployment
 * reads the cluster's OIDC issuer (ARM managedClusters), federates the replicas' identity with the ServiceAccount
 * `mdf-replica` (ARM Microsoft.ManagedIdentity federatedIdentityCredentials, api-version 2023-01-31), writes the
 * ServiceAccount (client-id annotation, no API token), and the slot's pods run as it with the workload identity
 * label; a second deployment that finds all of it in place writes none of it; a cluster without OIDC issuer or
 * workload identity is refused before anything is written, with the command that fixes it.
 */
import { federatedCredentialName } from '../../shared/azure/aks-identity';
import { AksTarget } from '../../shared/azure/aks-target';
import { planDeployment, planConfig } from '../../shared/azure/plan';
import { parseManifest } from '../../shared/manifest';
import { deployConfigFor } from '../../shared/manifest/schema';
import type { DeployRequest } from '../../shared/seams';
import { AppError } from '../../shared/errors';
import { FAST, FakeCredential, RG, SUB, arm, q, setupNock, testClients, testConfig, validateK8s } from './helpers';
import { k8s, AKS_API, MC, NS, kube, kubeconfig, notFound } from './aks-world';

const REPLICA = {
  REPLICA_IDENTITY_RESOURCE_ID: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mdf-replica-x`,
  REPLICA_IDENTITY_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
};
const FIC_NAME = federatedCredentialName('aks-mdf', 'models'); // mdf-aks-mdf-models-<digest>
const FIC = `${REPLICA.REPLICA_IDENTITY_RESOURCE_ID}/federatedIdentityCredentials/${FIC_NAME}`;
const FIC_API = '2023-01-31';
const ISSUER = 'https://westeurope.oic.prod-aks.azure.com/00000000-aaaa-bbbb-cccc-000000000000/11111111-dddd-eeee-ffff-000000000000/';
const SA = `/api/v1${NS}/serviceaccounts`;
const WANT_FIC = { properties: { issuer: ISSUER, subject: 'system:serviceaccount:models:mdf-replica', audiences: ['api://AzureADTokenExchange'] } };

const image = { name: 'img', version: 2, imageRef: 'mdfregistry.azurecr.io/img:2', runtime: 'python' as const, contextBlob: 'images/img/2.tar.gz' };
const request = (collect = true, slot = 'green'): DeployRequest => ({
  serviceName: 'diabetes',
  slot,
  image,
  config: deployConfigFor({ kind: 'aks', num_replicas: 1, auth_enabled: false, ...(collect ? { collect_model_data: true } : {}) } as never),
});

function cluster(profile: { oidc?: boolean; workloadIdentity?: boolean } = {}) {
  const { oidc = true, workloadIdentity = true } = profile;
  return {
    id: MC,
    name: 'aks-mdf',
    location: 'westeurope',
    properties: {
      provisioningState: 'Succeeded',
      agentPoolProfiles: [{ name: 'system', count: 3, vmSize: 'Standard_D3_v2' }],
      oidcIssuerProfile: oidc ? { enabled: true, issuerURL: ISSUER } : { enabled: false },
      securityProfile: workloadIdentity ? { workloadIdentity: { enabled: true } } : {},
    },
  };
}

function makeTarget(env: Record<string, string> = REPLICA) {
  const credential = new FakeCredential();
  const logs: string[] = [];
  const config = testConfig(env);
  const target = new AksTarget({ clients: testClients(config, credential), config, timing: FAST, k8s, slotServiceType: 'ClusterIP', log: (m) => logs.push(m) });
  return { target, credential, logs };
}

/** The attach (cluster + credentials) every first call of a target makes. */
function expectAttach(c = cluster()) {
  arm().get(MC).query(q(AKS_API)).reply(200, c);
  arm()
    .post(`${MC}/listClusterUserCredential`)
    .query(q(AKS_API))
    .reply(200, { kubeconfigs: [{ name: 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') }] });
}

const echo = (status = 201) => (_uri: string, body: unknown) => [status, { ...(body as object), metadata: { ...(body as any).metadata, resourceVersion: '1', generation: 1 } }] as [number, object];

/** The rest of a slot deployment (no keys, fixed replicas, ClusterIP slot Service): the Deployment body is recorded. */
function expectSlotWorkload(slot: string, record: (d: any) => void) {
  const name = `diabetes-${slot}`;
  kube().get(`/apis/apps/v1${NS}/deployments/${name}`).reply(404, notFound);
  kube().post(`/apis/apps/v1${NS}/deployments`, (b) => (record(validateK8s(b)), true)).reply(echo());
  kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/${name}`).reply(404, notFound);
  kube().get(`/api/v1${NS}/services/${name}`).reply(404, notFound);
  kube().post(`/api/v1${NS}/services`, (b) => !!validateK8s(b)).reply(echo());
  kube()
    .get(`/apis/apps/v1${NS}/deployments/${name}`)
    .reply(200, { metadata: { name, generation: 1 }, spec: { replicas: 1 }, status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 } });
  kube().get(`/api/v1${NS}/services/${name}`).reply(200, { metadata: { name }, spec: { type: 'ClusterIP', clusterIP: '10.0.0.9' } });
}

describe('replicas\' identity on AKS (workload identity)', () => {
  setupNock();

  test('first deployment: federated credential (issuer, subject, audience) PUT once, ServiceAccount created, pods run as it with the workload identity label', async () => {
    const { target, logs } = makeTarget();
    expectAttach();
    arm().get(MC).query(q(AKS_API)).reply(200, cluster());
    let ficBody: unknown;
    let ficType = '';
    arm().get(FIC).query(q(FIC_API)).reply(404, { error: { code: 'NotFound', message: 'not found' } });
    arm()
      .put(FIC, (b) => ((ficBody = b), true))
      .query(q(FIC_API))
      .reply(function () {
        ficType = String(this.req.headers['content-type']);
        return [201, { id: FIC, name: FIC_NAME, ...WANT_FIC }];
      });
    let saBody: any;
    kube().get(`${SA}/mdf-replica`).reply(404, notFound);
    kube().post(SA, (b) => ((saBody = validateK8s(b)), true)).reply(echo());
    let dep: any;
    expectSlotWorkload('green', (d) => (dep = d));

    const slot = await target.deploySlot(request());

    expect(slot.state).toBe('Healthy');
    expect(ficBody).toEqual(WANT_FIC);
    expect(ficType).toMatch(/^application\/json/);
    expect(saBody).toEqual({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'mdf-replica', namespace: 'models', labels: { 'mdf-managed-by': 'model-deploy-flow' }, annotations: { 'azure.workload.identity/client-id': REPLICA.REPLICA_IDENTITY_CLIENT_ID } },
      automountServiceAccountToken: false,
    });
    const pod = dep.spec.template;
    expect(pod.spec.serviceAccountName).toBe('mdf-replica');
    expect(pod.metadata.labels['azure.workload.identity/use']).toBe('true');
    // The selector (immutable) and the Deployment's own labels are unchanged.
    expect(dep.spec.selector.matchLabels).toEqual({ 'mdf-service': 'diabetes', 'mdf-slot': 'green' });
    expect(dep.metadata.labels['azure.workload.identity/use']).toBeUndefined();
    // The webhook sets AZURE_CLIENT_ID and the rest from the ServiceAccount; the Deployment carries no identity value.
    const env = pod.spec.containers[0].env.map((e: any) => e.name);
    expect(env).toContain('MDF_COLLECT_MODEL_DATA');
    expect(env.filter((n: string) => n.startsWith('AZURE_'))).toEqual([]);
    expect(logs).toContain(`replicas' identity on AKS: wrote federated credential ${FIC_NAME}, ServiceAccount mdf-replica`);
  });

  test('a re-run that finds the credential and the ServiceAccount as they should be writes neither', async () => {
    const { target, logs } = makeTarget();
    expectAttach();
    arm().get(MC).query(q(AKS_API)).reply(200, cluster());
    arm().get(FIC).query(q(FIC_API)).reply(200, { id: FIC, name: FIC_NAME, properties: { ...WANT_FIC.properties } });
    kube()
      .get(`${SA}/mdf-replica`)
      .reply(200, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'mdf-replica', namespace: 'models', resourceVersion: '4', annotations: { 'azure.workload.identity/client-id': REPLICA.REPLICA_IDENTITY_CLIENT_ID } }, automountServiceAccountToken: false });
    const writes: string[] = [];
    // Any write of either would be answered here (and fail the test), not silently by a missing mock.
    arm().put(FIC).query(true).optionally().reply(function () { writes.push(`PUT ${this.req.path}`); return [500, {}]; });
    kube().put(`${SA}/mdf-replica`).optionally().reply(function () { writes.push('PUT ServiceAccount'); return [500, {}]; });
    kube().post(SA).optionally().reply(function () { writes.push('POST ServiceAccount'); return [500, {}]; });
    let dep: any;
    expectSlotWorkload('blue', (d) => (dep = d));

    const slot = await target.deploySlot(request(true, 'blue'));

    expect(slot.state).toBe('Healthy');
    expect(writes).toEqual([]);
    expect(logs.filter((l) => l.includes('replicas\' identity'))).toEqual([]);
    expect(dep.spec.template.spec.serviceAccountName).toBe('mdf-replica');
  });

  test('a credential with another issuer and a ServiceAccount of another identity are put right; what others set on the ServiceAccount is kept', async () => {
    const { target } = makeTarget();
    expectAttach();
    arm().get(MC).query(q(AKS_API)).reply(200, cluster());
    arm().get(FIC).query(q(FIC_API)).reply(200, { id: FIC, properties: { ...WANT_FIC.properties, issuer: 'https://old-issuer.example/' } });
    let ficBody: unknown;
    arm().put(FIC, (b) => ((ficBody = b), true)).query(q(FIC_API)).reply(200, { id: FIC, ...WANT_FIC });
    kube()
      .get(`${SA}/mdf-replica`)
      .reply(200, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'mdf-replica', namespace: 'models', resourceVersion: '4', annotations: { 'azure.workload.identity/client-id': '99999999-0000-0000-0000-000000000000', team: 'ml' } }, imagePullSecrets: [{ name: 'extra' }] });
    let saBody: any;
    kube().put(`${SA}/mdf-replica`, (b) => ((saBody = validateK8s(b)), true)).reply(echo(200));
    expectSlotWorkload('green', () => undefined);

    expect((await target.deploySlot(request())).state).toBe('Healthy');
    expect(ficBody).toEqual(WANT_FIC);
    expect(saBody.metadata).toMatchObject({ resourceVersion: '4', annotations: { 'azure.workload.identity/client-id': REPLICA.REPLICA_IDENTITY_CLIENT_ID, team: 'ml' } });
    expect(saBody.imagePullSecrets).toEqual([{ name: 'extra' }]);
    expect(saBody.automountServiceAccountToken).toBe(false);
  });

  test('two first deployments at once: the credential and ServiceAccount the other one wrote (409) are taken as they are; a 409 leaving something else is an error', async () => {
    const { target, logs } = makeTarget();
    expectAttach();
    arm().get(MC).query(q(AKS_API)).reply(200, cluster());
    arm().get(FIC).query(q(FIC_API)).reply(404, { error: { code: 'NotFound', message: 'not found' } });
    arm().put(FIC).query(q(FIC_API)).reply(409, { error: { code: 'ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity', message: 'Too many Federated Identity Credentials are written concurrently' } });
    arm().get(FIC).query(q(FIC_API)).reply(200, { id: FIC, ...WANT_FIC });
    kube().get(`${SA}/mdf-replica`).reply(404, notFound);
    kube().post(SA).reply(409, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'AlreadyExists', code: 409, message: 'serviceaccounts "mdf-replica" already exists' });
    const ours = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'mdf-replica', namespace: 'models', resourceVersion: '2', annotations: { 'azure.workload.identity/client-id': REPLICA.REPLICA_IDENTITY_CLIENT_ID } }, automountServiceAccountToken: false };
    kube().get(`${SA}/mdf-replica`).reply(200, ours);
    expectSlotWorkload('green', () => undefined);
    expect((await target.deploySlot(request())).state).toBe('Healthy');
    expect(logs.filter((l) => l.includes('replicas\' identity'))).toEqual([]);

    // The other deployment left a credential with another issuer: the conflict is reported, nothing else is written.
    const second = makeTarget();
    expectAttach();
    arm().get(MC).query(q(AKS_API)).reply(200, cluster());
    arm().get(FIC).query(q(FIC_API)).reply(404, { error: { code: 'NotFound', message: 'not found' } });
    arm().put(FIC).query(q(FIC_API)).reply(409, { error: { code: 'ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity', message: 'written concurrently' } });
    arm().get(FIC).query(q(FIC_API)).reply(200, { id: FIC, properties: { ...WANT_FIC.properties, issuer: 'https://other-cluster.example/' } });
    await expect(second.target.deploySlot(request())).rejects.toMatchObject({ code: 'AzureConflict', httpStatus: 409, message: expect.stringContaining('ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity') });
  });

  test.each([
    ['no OIDC issuer', { oidc: false }, 'AksOidcIssuerDisabled'],
    ['workload identity off', { workloadIdentity: false }, 'AksWorkloadIdentityDisabled'],
  ])('a cluster with %s is refused (409) with the az command that fixes it, before anything is written', async (_what, profile, code) => {
    const { target } = makeTarget();
    expectAttach(cluster(profile));
    arm().get(MC).query(q(AKS_API)).reply(200, cluster(profile));
    let error: unknown;
    try {
      await target.deploySlot(request());
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code, httpStatus: 409 });
    expect((error as Error).message).toContain(`az aks update --resource-group ${RG} --name aks-mdf --enable-oidc-issuer --enable-workload-identity`);
    expect((error as Error).message).toContain('REPLICA_IDENTITY_');
    // nock: no other call was made (an unexpected one fails with "No match"); setupNock checks nothing is left pending.
  });

  test('the app identity may not write the credential: AzureAuthorizationFailed naming the permission it needs', async () => {
    const { target } = makeTarget();
    expectAttach();
    arm().get(MC).query(q(AKS_API)).reply(200, cluster());
    arm().get(FIC).query(q(FIC_API)).reply(404, { error: { code: 'NotFound', message: 'not found' } });
    arm().put(FIC).query(q(FIC_API)).reply(403, { error: { code: 'AuthorizationFailed', message: 'The client does not have authorization to perform action Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write' } });
    await expect(target.deploySlot(request())).rejects.toMatchObject({
      code: 'AzureAuthorizationFailed',
      message: expect.stringMatching(/federatedIdentityCredentials\/write on it: docs\/azure\.md.*AuthorizationFailed/s),
    });
  });

  test('a slot that collects nothing: pods run as mdf-replica (no API token) without the workload identity label; no federation, so a cluster without OIDC is fine', async () => {
    const { target } = makeTarget();
    expectAttach(cluster({ oidc: false, workloadIdentity: false }));
    kube().get(`${SA}/mdf-replica`).reply(404, notFound);
    kube().post(SA, (b) => !!validateK8s(b)).reply(echo());
    let dep: any;
    expectSlotWorkload('green', (d) => (dep = d));
    expect((await target.deploySlot(request(false))).state).toBe('Healthy');
    expect(dep.spec.template.spec.serviceAccountName).toBe('mdf-replica');
    expect(dep.spec.template.metadata.labels['azure.workload.identity/use']).toBeUndefined();
  });

  test('without REPLICA_IDENTITY_* nothing changes: no ServiceAccount, the namespace\'s default one', async () => {
    const { target } = makeTarget({});
    expectAttach();
    let dep: any;
    expectSlotWorkload('green', (d) => (dep = d));
    expect((await target.deploySlot(request())).state).toBe('Healthy');
    expect(dep.spec.template.spec.serviceAccountName).toBeUndefined();
    expect(dep.spec.template.metadata.labels['azure.workload.identity/use']).toBeUndefined();
  });
});

test('the plan shows the cluster check, the credential PUT and the ServiceAccount before the Deployment', () => {
  const manifest = parseManifest(JSON.stringify({
    model: { name: 'diabetes', files: ['model.pkl'] },
    image: { name: 'img', runtime: 'python', entry_script: 'score.py' },
    target: { kind: 'aks', num_replicas: 1, collect_model_data: true },
    service: { name: 'diabetes' },
  }));
  const ops = planDeployment(manifest, planConfig({ AZURE_SUBSCRIPTION_ID: SUB, AZURE_RESOURCE_GROUP: RG, AKS_CLUSTER_NAME: 'aks-mdf', AKS_NAMESPACE: 'models', ...REPLICA }));
  const fic = ops.findIndex((o) => o.path === FIC);
  const sa = ops.findIndex((o) => o.path === `${SA}/mdf-replica`);
  const dep = ops.findIndex((o) => o.path === `/apis/apps/v1${NS}/deployments/diabetes-blue`);
  expect(ops[fic]).toMatchObject({ api: 'arm', method: 'PUT', apiVersion: FIC_API, body: { properties: { subject: 'system:serviceaccount:models:mdf-replica', audiences: ['api://AzureADTokenExchange'] } } });
  expect(ops[fic - 1]).toMatchObject({ api: 'arm', method: 'GET', path: MC });
  expect(fic).toBeLessThan(sa);
  expect(sa).toBeLessThan(dep);
  expect((ops[dep].body as any).spec.template.spec.serviceAccountName).toBe('mdf-replica');
});
