/**
 * AKS at the wire: ARM (Microsoft.ContainerService managedClusters, api-version 2026-04-01) for the cluster and
 * its credentials, then the Kubernetes API for the workload: Secret, Deployment, HPA, Services, rollout watch,
 * crash loop with rollback, traffic switch by selector, deletes; the vCPU rule before any cluster creation.
 */
import { createAksCluster, attachAksCluster, checkAksCapacity } from '../../shared/azure/aks-cluster';
import { AksTarget } from '../../shared/azure/aks-target';
import type { DeployConfig, DeployRequest } from '../../shared/seams';
import { ARM, FAST, FakeCredential, TOKEN, arm, q, setupNock, testClients, testConfig, nock, validateK8s } from './helpers';
import { k8s, AKS_API, MC, KUBE, NS, kube, notFound } from './aks-world';


const KEYS = { primaryKey: 'PRIMARY-SECRET-KEY-1', secondaryKey: 'SECONDARY-SECRET-KEY-2' };

const aadKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: aks-mdf
  cluster:
    server: ${KUBE}
    certificate-authority-data: ${Buffer.from('not a real CA').toString('base64')}
contexts:
- name: aks-mdf
  context: { cluster: aks-mdf, user: clusterUser_rg-mdf_aks-mdf }
current-context: aks-mdf
users:
- name: clusterUser_rg-mdf_aks-mdf
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]
`;

const config: DeployConfig = {
  cpuCores: 0.5,
  memoryGb: 1,
  authEnabled: true,
  autoscaleEnabled: true,
  autoscaleMinReplicas: 1,
  autoscaleMaxReplicas: 4,
  autoscaleTargetUtilization: 30,
  autoscaleRefreshSeconds: 1,
  replicaMaxConcurrentRequests: 1,
  scoringTimeoutMs: 60000,
  maxRequestWaitTimeMs: 500,
};
const image = (v: number) => ({ name: 'img', version: v, imageRef: `mdfregistry.azurecr.io/img:${v}`, runtime: 'python' as const, contextBlob: `images/img/${v}.tar.gz` });
const request: DeployRequest = { serviceName: 'diabetes', slot: 'green', image: image(2), config, keys: KEYS };

function cluster(agents = 3, vmSize = 'Standard_D3_v2') {
  return { id: MC, name: 'aks-mdf', location: 'westeurope', properties: { provisioningState: 'Succeeded', agentPoolProfiles: [{ name: 'system', count: agents, vmSize }] } };
}

function expectCluster(credential: FakeCredential) {
  arm().get(MC).query(q(AKS_API)).reply(200, cluster());
  arm()
    .post(`${MC}/listClusterUserCredential`)
    .query(q(AKS_API))
    .reply(200, { kubeconfigs: [{ name: 'clusterUser', value: Buffer.from(aadKubeconfig).toString('base64') }] });
  return credential;
}

/** Kubernetes API scope: every call must carry the Entra token obtained for the AKS server app. */

function makeTarget() {
  const credential = new FakeCredential();
  const logs: string[] = [];
  const target = new AksTarget({ clients: testClients(testConfig(), credential), config: testConfig(), timing: FAST, k8s, log: (m) => logs.push(m) });
  return { target, credential, logs };
}

const echo = (status = 201) => (_uri: string, body: unknown) => [status, { ...(body as object), metadata: { ...(body as any).metadata, resourceVersion: '1', generation: 1 } }] as [number, object];

function deploymentStatus(ready: boolean, template?: object) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'diabetes-green', namespace: 'models', generation: 2, resourceVersion: '7' },
    spec: { replicas: 1, selector: { matchLabels: {} }, template: template ?? { metadata: {}, spec: { containers: [{ name: 'model', image: 'mdfregistry.azurecr.io/img:2' }] } } },
    status: ready ? { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1, readyReplicas: 1 } : { observedGeneration: 2, replicas: 1, updatedReplicas: 1, unavailableReplicas: 1 },
  };
}

const pods = (restarts: number, reason?: string) => ({
  apiVersion: 'v1',
  kind: 'PodList',
  metadata: {},
  items: [
    {
      metadata: { name: 'diabetes-green-abc', creationTimestamp: '2026-11-24T08:00:00Z' },
      status: { containerStatuses: [{ name: 'model', image: 'mdfregistry.azurecr.io/img:2', imageID: '', ready: false, restartCount: restarts, state: reason ? { waiting: { reason } } : { running: {} }, lastState: restarts ? { terminated: { exitCode: 1 } } : {} }] },
    },
  ],
});


describe('AksTarget', () => {
  setupNock();

  test('deploySlot creates the keys Secret, Deployment, HPA and slot Service, waits for the rollout and the address', async () => {
    const { target, credential, logs } = makeTarget();
    expectCluster(credential);
    const bodies: Record<string, any> = {};
    const record = (k: string) => (b: any) => ((bodies[k] = validateK8s(b)), true);
    kube().get(`/api/v1${NS}/secrets/diabetes-keys`).reply(404, notFound);
    kube().post(`/api/v1${NS}/secrets`, record('secret')).reply(echo());
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(404, notFound);
    kube().post(`/apis/apps/v1${NS}/deployments`, record('deployment')).reply(echo());
    kube().get(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`).reply(404, notFound);
    kube().post(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers`, record('hpa')).reply(echo());
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(404, notFound);
    kube().post(`/api/v1${NS}/services`, record('service')).reply(echo());
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, deploymentStatus(false));
    kube().get(`/api/v1${NS}/pods`).query({ labelSelector: 'mdf-service=diabetes,mdf-slot=green' }).reply(200, pods(0));
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, deploymentStatus(true));
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(200, { metadata: { name: 'diabetes-green' }, spec: { type: 'LoadBalancer' }, status: {} });
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(200, { metadata: { name: 'diabetes-green' }, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.1.2.3' }] } } });

    const slot = await target.deploySlot(request);

    expect(slot).toEqual({
      serviceName: 'diabetes',
      slot: 'green',
      scoringUri: 'http://20.1.2.3/score',
      swaggerUri: 'http://20.1.2.3/swagger.json',
      healthUri: 'http://20.1.2.3/',
      state: 'Healthy',
    });
    expect(credential.scopes).toContain('6dae42f8-4368-4678-94ff-3960e28e3630/.default');
    expect(bodies.secret.data).toEqual({
      'keys.json': Buffer.from(JSON.stringify(KEYS)).toString('base64'),
      primaryKey: Buffer.from(KEYS.primaryKey).toString('base64'),
      secondaryKey: Buffer.from(KEYS.secondaryKey).toString('base64'),
    });
    const d = bodies.deployment;
    expect(d.spec.replicas).toBe(1);
    expect(d.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(d.spec.selector.matchLabels).toEqual({ 'mdf-service': 'diabetes', 'mdf-slot': 'green' });
    const c = d.spec.template.spec.containers[0];
    expect(c.image).toBe('mdfregistry.azurecr.io/img:2');
    expect(c.resources).toEqual({ requests: { cpu: '500m', memory: '1024Mi' }, limits: { memory: '1024Mi' } });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/', port: 5001 });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/', port: 5001 });
    // Keys reach the runtime as a mounted Secret file it reads again (rotation without restart), never as env values.
    expect(c.env).toContainEqual({ name: 'MDF_KEYS_FILE', value: '/var/run/secrets/mdf-keys/keys.json' });
    expect(c.env.map((e: any) => e.name)).not.toContain('MDF_PRIMARY_KEY');
    expect(c.volumeMounts).toEqual([{ name: 'keys', mountPath: '/var/run/secrets/mdf-keys', readOnly: true }]);
    expect(d.spec.template.spec.volumes).toEqual([{ name: 'keys', secret: { secretName: 'diabetes-keys', items: [{ key: 'keys.json', path: 'keys.json' }], defaultMode: 0o440 } }]);
    expect(JSON.stringify(d)).not.toContain('SECRET-KEY');
    expect(bodies.hpa.spec).toMatchObject({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'diabetes-green' },
      minReplicas: 1,
      maxReplicas: 4,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 30 } } }],
      behavior: { scaleDown: { stabilizationWindowSeconds: 60 } },
    });
    expect(JSON.stringify([logs, slot])).not.toMatch(/SECRET-KEY|fake-arm-token/);
    expect(bodies.service.spec).toEqual({ type: 'LoadBalancer', selector: { 'mdf-service': 'diabetes', 'mdf-slot': 'green' }, ports: [{ name: 'http', port: 80, targetPort: 5001, protocol: 'TCP' }] });
  });

  test('num_replicas fixes the replica count and removes any autoscaler', async () => {
    const { target, credential } = makeTarget();
    expectCluster(credential);
    let dep: any;
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(404, notFound);
    kube().post(`/apis/apps/v1${NS}/deployments`, (b) => ((dep = validateK8s(b)), true)).reply(echo());
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`).reply(404, notFound);
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(404, notFound);
    kube().post(`/api/v1${NS}/services`, (b) => !!validateK8s(b)).reply(echo());
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, { ...deploymentStatus(true), spec: { replicas: 3 }, status: { observedGeneration: 2, updatedReplicas: 3, availableReplicas: 3 } });
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(200, { metadata: {}, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.1.2.4' }] } } });
    const slot = await target.deploySlot({ ...request, keys: undefined, config: { ...config, authEnabled: false, numReplicas: 3, autoscaleEnabled: false } });
    expect(slot.state).toBe('Healthy');
    expect(dep.spec.replicas).toBe(3);
    expect(dep.spec.template.spec.containers[0].env.map((e: any) => e.name)).not.toContain('MDF_PRIMARY_KEY');
  });

  test('a crash-looping rolling update is rolled back to the previous template and reported with the pod log', async () => {
    const { target, credential } = makeTarget();
    expectCluster(credential);
    const oldTemplate = { metadata: { labels: { 'mdf-slot': 'green' } }, spec: { containers: [{ name: 'model', image: 'mdfregistry.azurecr.io/img:1' }] } };
    const replaced: any[] = [];
    kube().get(`/api/v1${NS}/secrets/diabetes-keys`).reply(200, { metadata: { name: 'diabetes-keys', resourceVersion: '3' } });
    kube().put(`/api/v1${NS}/secrets/diabetes-keys`, (b) => validateK8s(b).metadata.resourceVersion === '3').reply(echo(200));
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, deploymentStatus(true, oldTemplate));
    kube().put(`/apis/apps/v1${NS}/deployments/diabetes-green`, (b) => (replaced.push(validateK8s(b)), true)).times(2).reply(echo(200));
    kube().get(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`).reply(200, { metadata: { resourceVersion: '5' } });
    kube().put(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`, (b) => !!validateK8s(b)).reply(echo(200));
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(200, { metadata: { resourceVersion: '9' }, spec: { type: 'LoadBalancer', clusterIP: '10.0.0.7', clusterIPs: ['10.0.0.7'] } });
    let svcBody: any;
    kube().put(`/api/v1${NS}/services/diabetes-green`, (b) => ((svcBody = validateK8s(b)), true)).reply(echo(200));
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, deploymentStatus(false));
    kube().get(`/api/v1${NS}/pods`).query(true).reply(200, pods(4, 'CrashLoopBackOff'));
    kube().get(`/api/v1${NS}/pods`).query(true).reply(200, pods(4, 'CrashLoopBackOff'));
    kube()
      .get(`/api/v1${NS}/pods/diabetes-green-abc/log`)
      .query({ container: 'model', tailLines: '30', previous: 'true', limitBytes: String(256 * 1024) })
      .reply(200, 'Traceback...\nValueError: model file missing\nBearer abc.def.ghi\n', { 'Content-Type': 'text/plain' });
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, deploymentStatus(false));

    const slot = await target.deploySlot(request);

    expect(slot.state).toBe('Failed');
    expect(slot.error?.code).toBe('ContainerCrashLoop');
    expect(slot.error?.message).toContain('ValueError: model file missing');
    expect(slot.error?.message).toContain('Rolled back diabetes-green to mdfregistry.azurecr.io/img:1');
    expect(slot.error?.message).not.toContain('abc.def.ghi');
    expect(replaced[0].spec.template.spec.containers[0].image).toBe('mdfregistry.azurecr.io/img:2');
    expect(replaced[1].spec.template).toEqual(oldTemplate);
    expect(svcBody.spec.clusterIP).toBe('10.0.0.7');
  });

  test('switchTraffic points the public Service selector at the slot and returns its address', async () => {
    const { target, credential } = makeTarget();
    expectCluster(credential);
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-blue`).reply(200, { metadata: { name: 'diabetes-blue' }, spec: { selector: {}, template: { spec: { containers: [{ name: 'model', ports: [{ containerPort: 5001 }] }] } } } });
    kube().get(`/api/v1${NS}/services/diabetes`).reply(200, { metadata: { name: 'diabetes', resourceVersion: '11' }, spec: { type: 'LoadBalancer', clusterIP: '10.0.0.9', selector: { 'mdf-service': 'diabetes', 'mdf-slot': 'green' } } });
    let body: any;
    kube().put(`/api/v1${NS}/services/diabetes`, (b) => ((body = validateK8s(b)), true)).reply(echo(200));
    kube().get(`/api/v1${NS}/services/diabetes`).reply(200, { metadata: {}, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.9.9.9' }] } } });
    // No rollout route: no service front to remove.
    kube().get(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/diabetes`).reply(404, notFound);
    const r = await target.switchTraffic('diabetes', 'blue');
    expect(r).toEqual({ scoringUri: 'http://20.9.9.9/score', swaggerUri: 'http://20.9.9.9/swagger.json' });
    expect(body.spec.selector).toEqual({ 'mdf-service': 'diabetes', 'mdf-slot': 'blue' });
    expect(body.metadata.resourceVersion).toBe('11');
    expect(body.metadata.labels['mdf-active']).toBe('blue');
  });

  test('logTail (GET …/logs) reads the newest pods of the slot with tailLines, prefixes each line with its pod, redacts secrets', async () => {
    const { target, credential } = makeTarget();
    expectCluster(credential);
    const pod = (name: string, created: string, restarts = 0, ready = true) => ({
      metadata: { name, creationTimestamp: created },
      status: { containerStatuses: [{ name: 'model', image: 'x', imageID: '', ready, restartCount: restarts, state: { running: {} } }] },
    });
    kube()
      .get(`/api/v1${NS}/pods`)
      .query({ labelSelector: 'mdf-service=diabetes,mdf-slot=green' })
      .reply(200, { apiVersion: 'v1', kind: 'PodList', metadata: {}, items: [pod('diabetes-green-b', '2026-11-24T09:00:00Z', 2, false), pod('diabetes-green-a', '2026-11-24T08:00:00Z')] });
    kube().get(`/api/v1${NS}/pods/diabetes-green-a/log`).query({ container: 'model', tailLines: '3', previous: 'false', limitBytes: String(256 * 1024) }).reply(200, 'a1\na2\n', { 'Content-Type': 'text/plain' });
    kube().get(`/api/v1${NS}/pods/diabetes-green-b/log`).query({ container: 'model', tailLines: '3', previous: 'true', limitBytes: String(256 * 1024) }).reply(200, 'b1\nAuthorization: Bearer abc.def\nb3\n', { 'Content-Type': 'text/plain' });
    const text = await target.logTail('diabetes', 'green', 3);
    expect(text.split('\n')).toEqual(['[pod diabetes-green-a] a2', '[pod diabetes-green-b] b1', '[pod diabetes-green-b] Authorization: Bearer ***', '[pod diabetes-green-b] b3'].slice(-3));
    // No pods: empty, not an error.
    kube().get(`/api/v1${NS}/pods`).query(true).reply(200, { apiVersion: 'v1', kind: 'PodList', metadata: {}, items: [] });
    expect(await target.logTail('diabetes', 'green', 3)).toBe('');
  });

  test('updateKeys (key regeneration) replaces the keys Secret the pods mount; unchanged keys or no Secret → no write', async () => {
    const { target, credential, logs } = makeTarget();
    expectCluster(credential);
    const NEW = { primaryKey: 'PRIMARY-SECRET-KEY-NEW', secondaryKey: KEYS.secondaryKey };
    const data = (k: typeof KEYS) => ({
      'keys.json': Buffer.from(JSON.stringify(k)).toString('base64'),
      primaryKey: Buffer.from(k.primaryKey).toString('base64'),
      secondaryKey: Buffer.from(k.secondaryKey).toString('base64'),
    });
    kube().get(`/api/v1${NS}/secrets/diabetes-keys`).reply(200, { metadata: { name: 'diabetes-keys', resourceVersion: '4' }, data: data(KEYS) });
    let body: any;
    kube().put(`/api/v1${NS}/secrets/diabetes-keys`, (b) => ((body = validateK8s(b)), true)).reply(echo(200));
    await target.updateKeys('diabetes', NEW);
    expect(body.metadata.resourceVersion).toBe('4');
    expect(JSON.parse(Buffer.from(body.data['keys.json'], 'base64').toString())).toEqual(NEW);
    // Same keys again: read only (nock fails on an unexpected PUT).
    kube().get(`/api/v1${NS}/secrets/diabetes-keys`).reply(200, { metadata: { name: 'diabetes-keys', resourceVersion: '5' }, data: data(NEW) });
    await target.updateKeys('diabetes', NEW);
    // A service without auth has no Secret: nothing is created.
    kube().get(`/api/v1${NS}/secrets/diabetes-keys`).reply(404, notFound);
    await target.updateKeys('diabetes', NEW);
    expect(JSON.stringify(logs)).not.toContain('SECRET-KEY');
  });

  test('token auth: the Secret holds {tokenSecret, service} for the runtime, pods mount it (validated against the Kubernetes schema)', async () => {
    const { slotDeployment, keysSecret } = await import('../../shared/azure/aks-manifests');
    const { Deployment } = await import('kubernetes-models/apps/v1');
    const { Secret } = await import('kubernetes-models/v1');
    const tokenKeys = { ...KEYS, tokenSecret: 'TOKEN-SECRET-0123456789' };
    const d = slotDeployment({ ...request, config: { ...config, authEnabled: false, tokenAuthEnabled: true }, keys: tokenKeys }, 'models');
    new Deployment(d as any).validate();
    const c = d.spec!.template.spec!.containers[0];
    expect(c.env).toContainEqual({ name: 'MDF_KEYS_FILE', value: '/var/run/secrets/mdf-keys/keys.json' });
    expect(c.volumeMounts).toEqual([{ name: 'keys', mountPath: '/var/run/secrets/mdf-keys', readOnly: true }]);
    const secret = keysSecret('diabetes', 'models', tokenKeys);
    new Secret(secret as any).validate();
    expect(JSON.parse(Buffer.from(secret.data!['keys.json'], 'base64').toString())).toEqual({ tokenSecret: tokenKeys.tokenSecret, service: 'diabetes' });
    // Without auth: no mount, no keys file.
    const open = slotDeployment({ ...request, config: { ...config, authEnabled: false } }, 'models');
    new Deployment(open as any).validate();
    expect(open.spec!.template.spec!.volumes).toBeUndefined();
    expect(JSON.stringify(open)).not.toContain('MDF_KEYS_FILE');
    // A token-auth slot without its secret is refused before any call.
    const { target } = makeTarget();
    await expect(target.deploySlot({ ...request, config: { ...config, authEnabled: false, tokenAuthEnabled: true } })).rejects.toMatchObject({ code: 'DeployKeysMissing' });
  });

  test('deleteSlot tolerates absent objects; deleteService deletes everything labelled with the service', async () => {
    const { target, credential } = makeTarget();
    expectCluster(credential);
    kube().get(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/diabetes`).reply(404, notFound);
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-blue`).reply(404, notFound);
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-blue`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/services/diabetes-blue`).reply(404, notFound);
    kube().delete(`/apis/apps/v1${NS}/deployments/diabetes-blue`).query(true).reply(404, notFound);
    await target.deleteSlot('diabetes', 'blue');

    const sel = { labelSelector: 'mdf-service=diabetes,mdf-managed-by=model-deploy-flow' };
    kube().get(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers`).query(sel).reply(200, { items: [{ metadata: { name: 'diabetes-green' } }] });
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`).reply(200, {});
    kube().get(`/api/v1${NS}/services`).query(sel).reply(200, { items: [{ metadata: { name: 'diabetes' } }, { metadata: { name: 'diabetes-green' } }] });
    kube().delete(`/api/v1${NS}/services/diabetes`).reply(200, {});
    kube().delete(`/api/v1${NS}/services/diabetes-green`).reply(200, {});
    kube().get(`/apis/apps/v1${NS}/deployments`).query(sel).reply(200, { items: [{ metadata: { name: 'diabetes-green' } }] });
    kube().delete(`/apis/apps/v1${NS}/deployments/diabetes-green`).query(true).reply(200, {});
    kube().delete(`/api/v1${NS}/secrets/diabetes-keys`).reply(200, {});
    kube().delete(`/apis/policy/v1${NS}/poddisruptionbudgets/diabetes-front`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/secrets/diabetes-front`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/secrets/diabetes-tls`).reply(404, { kind: 'Status', code: 404 });
    kube().delete(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/diabetes`).reply(404, notFound);
    await target.deleteService('diabetes');
  });

  test('Kubernetes 403 maps to AzureAuthorizationFailed with the API server message', async () => {
    const { target, credential } = makeTarget();
    expectCluster(credential);
    kube()
      .get(`/apis/apps/v1${NS}/deployments/diabetes-blue`)
      .reply(403, { kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403, message: 'deployments.apps "diabetes-blue" is forbidden: User "mdf" cannot get resource' });
    await expect(target.switchTraffic('diabetes', 'blue')).rejects.toMatchObject({ code: 'AzureAuthorizationFailed', message: expect.stringContaining('is forbidden') });
  });

  test('a manifest naming another namespace or cluster is rejected before any call', async () => {
    const { target } = makeTarget();
    await expect(target.deploySlot({ ...request, config: { ...config, extra: { namespace: 'prod' } } })).rejects.toMatchObject({ code: 'AksNamespaceMismatch' });
    await expect(target.deploySlot({ ...request, config: { ...config, extra: { computeTargetName: 'aks-other' } } })).rejects.toMatchObject({ code: 'AksClusterMismatch' });
  });
});

describe('AKS clusters', () => {
  setupNock();
  const o = () => ({ clients: testClients(), config: testConfig(), timing: FAST });

  test("the seed's rule: agent_count × vCPUs ≥ 12, checked before calling ARM", async () => {
    expect(checkAksCapacity(3, 'Standard_D3_v2')).toBe(12);
    expect(() => checkAksCapacity(2, 'Standard_D3_v2')).toThrow(/at least 3/);
    expect(() => checkAksCapacity(1, 'Standard_Weird')).toThrow(expect.objectContaining({ code: 'AksVmSizeUnknown' }));
    expect(checkAksCapacity(2, 'Standard_Weird', 6)).toBe(12);
    // No interceptor: an ARM call would fail with a network error instead of AksClusterTooSmall.
    await expect(createAksCluster(o(), { agentCount: 2, vmSize: 'Standard_D3_v2' })).rejects.toMatchObject({ code: 'AksClusterTooSmall' });
  });

  test('createAksCluster PUTs the managed cluster and follows the Azure-AsyncOperation', async () => {
    let body: any;
    const op = `${ARM}/subscriptions/x/providers/Microsoft.ContainerService/locations/westeurope/operations/op9?api-version=${AKS_API}`;
    arm()
      .put(MC, (b) => ((body = b), true))
      .query(q(AKS_API))
      .reply(201, { ...cluster(), properties: { ...cluster().properties, provisioningState: 'Creating' } }, { 'Azure-AsyncOperation': op });
    arm().get('/subscriptions/x/providers/Microsoft.ContainerService/locations/westeurope/operations/op9').query(q(AKS_API)).reply(200, { status: 'InProgress' });
    arm().get('/subscriptions/x/providers/Microsoft.ContainerService/locations/westeurope/operations/op9').query(q(AKS_API)).reply(200, { status: 'Succeeded' });
    arm().get(MC).query(q(AKS_API)).reply(200, cluster());
    const c = await createAksCluster(o(), { agentCount: 3, vmSize: 'Standard_D3_v2' });
    expect(c.provisioningState).toBe('Succeeded');
    expect(body.location).toBe('westeurope');
    expect(body.identity).toEqual({ type: 'SystemAssigned' });
    expect(body.properties.agentPoolProfiles).toEqual([{ name: 'system', mode: 'System', osType: 'Linux', count: 3, vmSize: 'Standard_D3_v2', type: 'VirtualMachineScaleSets' }]);
    expect(body.properties.dnsPrefix).toBe('aks-mdf');
  });

  test('attaching a cluster below 12 vCPUs, or not provisioned, is refused', async () => {
    arm().get(MC).query(q(AKS_API)).reply(200, cluster(2, 'Standard_D2_v2'));
    await expect(attachAksCluster(o())).rejects.toMatchObject({ code: 'AksClusterTooSmall' });
    arm().get(MC).query(q(AKS_API)).reply(200, { ...cluster(), properties: { ...cluster().properties, provisioningState: 'Updating' } });
    await expect(attachAksCluster(o())).rejects.toMatchObject({ code: 'AksClusterNotReady' });
    arm().get(MC).query(q(AKS_API)).reply(404, { error: { code: 'ResourceNotFound', message: "The Resource 'Microsoft.ContainerService/managedClusters/aks-mdf' was not found." } });
    await expect(attachAksCluster(o())).rejects.toMatchObject({ code: 'AzureResourceNotFound', message: expect.stringContaining('ResourceNotFound') });
  });
});
