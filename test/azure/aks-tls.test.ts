/**
 * ssl_enabled on AKS at the wire: the service's `kubernetes.io/tls` Secret (the PEM the deploy step read), the pods
 * mounting it and terminating TLS (the runtime's MDF_TLS_*_FILE name the files; https probes; the certificate's
 * digest on the pod template so a new certificate rolls the pods), the slot and public LoadBalancer Services on 443,
 * and https scoring URIs naming `ssl_cname`. Every object is validated against the Kubernetes schema.
 */
import { AksTarget } from '../../shared/azure/aks-target';
import { tlsSecretName } from '../../shared/azure/aks-manifests';
import type { DeployConfig, DeployRequest } from '../../shared/seams';
import { makeCert } from '../helpers/tls';
import { FakeCredential, FAST, arm, nock, q, setupNock, testClients, testConfig, validateK8s } from './helpers';
import { k8s, AKS_API, MC, NS, kube, notFound, kubeconfig } from './aks-world';


const PEM = makeCert(['scoring.contoso.test']);
const KEY_LINE = PEM.key.split('\n')[1];

const config: DeployConfig = {
  cpuCores: 0.5,
  memoryGb: 1,
  authEnabled: false,
  numReplicas: 2,
  autoscaleEnabled: false,
  autoscaleMinReplicas: 1,
  autoscaleMaxReplicas: 4,
  autoscaleTargetUtilization: 70,
  autoscaleRefreshSeconds: 1,
  replicaMaxConcurrentRequests: 1,
  scoringTimeoutMs: 60000,
  maxRequestWaitTimeMs: 500,
  tls: { cert: { blob: 'certs/svc/tls.crt' }, key: { keyVault: 'https://mdfvault.vault.azure.net/secrets/tls-key' }, cname: 'scoring.contoso.test' },
};
const request: DeployRequest = {
  serviceName: 'diabetes',
  slot: 'green',
  image: { name: 'img', version: 2, imageRef: 'mdfregistry.azurecr.io/img:2', runtime: 'python', contextBlob: 'images/img/2.tar.gz' },
  config,
  tls: PEM,
};
const echo = (status = 201) => (_uri: string, body: unknown) => [status, { ...(body as object), metadata: { ...(body as any).metadata, resourceVersion: '1', generation: 1 } }] as [number, object];

function makeTarget() {
  const credential = new FakeCredential();
  arm().get(MC).query(q(AKS_API)).reply(200, { id: MC, name: 'aks-mdf', location: 'westeurope', properties: { provisioningState: 'Succeeded', agentPoolProfiles: [{ name: 'system', count: 3, vmSize: 'Standard_D3_v2' }] } });
  arm()
    .post(`${MC}/listClusterUserCredential`)
    .query(q(AKS_API))
    .reply(200, { kubeconfigs: [{ name: 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') }] });
  const logs: string[] = [];
  return { target: new AksTarget({ clients: testClients(testConfig(), credential), config: testConfig(), timing: FAST, k8s, log: (m) => logs.push(m) }), logs };
}

describe('AKS with ssl_enabled', () => {
  setupNock();

  test('deploySlot writes the kubernetes.io/tls Secret, pods that mount it and serve HTTPS, a slot Service on 443; https direct URI', async () => {
    const { target, logs } = makeTarget();
    const bodies: Record<string, any> = {};
    const record = (k: string) => (b: any) => ((bodies[k] = validateK8s(b)), true);
    kube().get(`/api/v1${NS}/secrets/${tlsSecretName('diabetes', PEM)}`).reply(404, notFound);
    kube().post(`/api/v1${NS}/secrets`, record('secret')).reply(echo());
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(404, notFound);
    kube().post(`/apis/apps/v1${NS}/deployments`, record('deployment')).reply(echo());
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`).reply(404, notFound);
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(404, notFound);
    kube().post(`/api/v1${NS}/services`, record('service')).reply(echo());
    kube()
      .get(`/apis/apps/v1${NS}/deployments/diabetes-green`)
      .reply(200, { metadata: { name: 'diabetes-green', generation: 1 }, spec: { replicas: 2, selector: {}, template: { spec: { containers: [{ name: 'model' }] } } }, status: { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2, readyReplicas: 2 } });
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(200, { metadata: { name: 'diabetes-green' }, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.1.2.3' }] } } });

    const slot = await target.deploySlot(request);
    expect(slot).toMatchObject({ state: 'Healthy', scoringUri: 'https://20.1.2.3/score', swaggerUri: 'https://20.1.2.3/swagger.json' });

    const secret = bodies.secret;
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(secret.metadata.name).toMatch(/^diabetes-tls-[0-9a-f]{16}$/);
    expect(secret.immutable).toBe(true);
    expect(Buffer.from(secret.data['tls.crt'], 'base64').toString()).toBe(PEM.cert);
    expect(Buffer.from(secret.data['tls.key'], 'base64').toString()).toBe(PEM.key);

    const pod = bodies.deployment.spec.template;
    const c = pod.spec.containers[0];
    expect(c.ports).toEqual([{ name: 'https', containerPort: 5001 }]);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/', port: 5001, scheme: 'HTTPS' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/', port: 5001, scheme: 'HTTPS' });
    expect(c.env).toEqual(expect.arrayContaining([{ name: 'MDF_TLS_CERT_FILE', value: '/var/run/secrets/mdf-tls/tls.crt' }, { name: 'MDF_TLS_KEY_FILE', value: '/var/run/secrets/mdf-tls/tls.key' }]));
    expect(c.volumeMounts).toEqual([{ name: 'tls', mountPath: '/var/run/secrets/mdf-tls', readOnly: true }]);
    expect(pod.spec.volumes).toEqual([{ name: 'tls', secret: { secretName: secret.metadata.name, defaultMode: 0o440 } }]);
    expect(pod.metadata.annotations['model-deploy-flow/tls-host']).toBe('scoring.contoso.test');
    expect(pod.metadata.annotations['model-deploy-flow/tls-digest']).toMatch(/^[0-9a-f]{32}$/);
    // The PEM is only in the Secret: not in the Deployment (env or otherwise), the Service, logs or the result.
    for (const text of [JSON.stringify(bodies.deployment), JSON.stringify(bodies.service), logs.join('\n'), JSON.stringify(slot)]) {
      expect(text).not.toContain(KEY_LINE);
      expect(text).not.toContain(secret.data['tls.key']);
    }
    expect(bodies.service.spec.ports).toEqual([{ name: 'https', port: 443, targetPort: 5001, protocol: 'TCP' }]);
  });

  test('a new certificate changes the pod template (the pods read it at start, so they roll); missing material is refused', async () => {
    const { slotDeployment } = await import('../../shared/azure/aks-manifests');
    const a = slotDeployment(request, 'models');
    const b = slotDeployment({ ...request, tls: makeCert(['scoring.contoso.test']) }, 'models');
    const digest = (d: any) => d.spec.template.metadata.annotations['model-deploy-flow/tls-digest'];
    expect(digest(a)).not.toBe(digest(b));
    expect(digest(slotDeployment(request, 'models'))).toBe(digest(a));
    const { target } = makeTarget();
    const { tls: _tls, ...bare } = request;
    await expect(target.deploySlot(bare)).rejects.toMatchObject({ code: 'TlsMaterialMissing' });
    nock.cleanAll(); // the cluster reads of makeTarget are not reached
  });

  test('blue/green with a new certificate: each slot mounts its own immutable Secret; the old one is never rewritten, and is deleted with the slot that mounted it', async () => {
    const { slotDeployment } = await import('../../shared/azure/aks-manifests');
    const NEW = makeCert(['scoring.contoso.test']);
    const mounted = (d: any) => d.spec.template.spec.volumes[0].secret.secretName;
    const blue = slotDeployment({ ...request, slot: 'blue' }, 'models');
    const oldSecret = mounted(blue);
    const { target } = makeTarget();
    const bodies: Record<string, any> = {};
    const record = (k: string) => (b: any) => ((bodies[k] = validateK8s(b)), true);
    // The old certificate's Secret exists (blue mounts it); green gets a new Secret beside it. No replace of any
    // Secret is expected: nock fails the call if one is made.
    kube().get(`/api/v1${NS}/secrets/${tlsSecretName('diabetes', NEW)}`).reply(404, notFound);
    kube().post(`/api/v1${NS}/secrets`, record('secret')).reply(echo());
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(404, notFound);
    kube().post(`/apis/apps/v1${NS}/deployments`, record('deployment')).reply(echo());
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`).reply(404, notFound);
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(404, notFound);
    kube().post(`/api/v1${NS}/services`).reply(echo());
    kube()
      .get(`/apis/apps/v1${NS}/deployments/diabetes-green`)
      .reply(200, { metadata: { name: 'diabetes-green', generation: 1 }, spec: { replicas: 2, selector: {}, template: { spec: { containers: [{ name: 'model' }] } } }, status: { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2, readyReplicas: 2 } });
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(200, { metadata: { name: 'diabetes-green' }, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.1.2.3' }] } } });
    await target.deploySlot({ ...request, tls: NEW });
    const newSecret = bodies.secret.metadata.name;
    expect(newSecret).not.toBe(oldSecret);
    expect(mounted(bodies.deployment)).toBe(newSecret);
    expect(Buffer.from(bodies.secret.data['tls.crt'], 'base64').toString()).toBe(NEW.cert);

    // The same certificate again (a redeploy): the Secret exists, nothing is written.
    kube().get(`/api/v1${NS}/secrets/${newSecret}`).reply(200, { ...bodies.secret, metadata: { ...bodies.secret.metadata, resourceVersion: '3' } });
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, { ...bodies.deployment, metadata: { ...bodies.deployment.metadata, resourceVersion: '4' } });
    kube().put(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, (_u, b) => b as object);
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`).reply(404, notFound);
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(200, { metadata: { name: 'diabetes-green', resourceVersion: '5' }, spec: { type: 'LoadBalancer', clusterIP: '10.0.0.9' } });
    kube().put(`/api/v1${NS}/services/diabetes-green`).reply(200, (_u, b) => b as object);
    kube()
      .get(`/apis/apps/v1${NS}/deployments/diabetes-green`)
      .reply(200, { metadata: { name: 'diabetes-green', generation: 2 }, spec: { replicas: 2, selector: {}, template: { spec: { containers: [{ name: 'model' }] } } }, status: { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2, readyReplicas: 2 } });
    kube().get(`/api/v1${NS}/services/diabetes-green`).reply(200, { metadata: { name: 'diabetes-green' }, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.1.2.3' }] } } });
    await target.deploySlot({ ...request, tls: NEW });

    // Blue retired after the promotion: its Secret goes with it (green mounts another one); green's stays.
    const green = { ...bodies.deployment, metadata: { ...bodies.deployment.metadata, name: 'diabetes-green' } };
    const deleted: string[] = [];
    kube().get(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/diabetes`).reply(404, notFound);
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-blue`).reply(200, blue);
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-blue`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/services/diabetes-blue`).reply(200, {});
    kube().delete(`/apis/apps/v1${NS}/deployments/diabetes-blue`).query(true).reply(200, {});
    kube()
      .get(`/apis/apps/v1${NS}/deployments`)
      .query(true)
      .reply(200, { items: [green, { ...blue, metadata: { ...blue.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } }] });
    kube().delete(`/api/v1${NS}/secrets/${oldSecret}`).reply(function (uri) {
      deleted.push(uri.split('/').pop()!);
      return [200, {}];
    });
    await target.deleteSlot('diabetes', 'blue');
    expect(deleted).toEqual([oldSecret]);

    // A slot retired while the other slot mounts the same certificate keeps the Secret.
    const sameAsGreen = { ...green, metadata: { ...green.metadata, name: 'diabetes-blue' } };
    kube().get(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/diabetes`).reply(404, notFound);
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-blue`).reply(200, sameAsGreen);
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-blue`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/services/diabetes-blue`).reply(200, {});
    kube().delete(`/apis/apps/v1${NS}/deployments/diabetes-blue`).query(true).reply(200, {});
    kube().get(`/apis/apps/v1${NS}/deployments`).query(true).reply(200, { items: [green] });
    await target.deleteSlot('diabetes', 'blue');
    expect(deleted).toEqual([oldSecret]);

    // Deleting the service deletes the Secrets its slots mount, and the single Secret of earlier releases.
    const sel = { labelSelector: 'mdf-service=diabetes,mdf-managed-by=model-deploy-flow' };
    kube().get(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers`).query(sel).reply(200, { items: [] });
    kube().get(`/api/v1${NS}/services`).query(sel).reply(200, { items: [] });
    kube().get(`/apis/apps/v1${NS}/deployments`).query(sel).reply(200, { items: [green] });
    kube().delete(`/apis/apps/v1${NS}/deployments/diabetes-green`).query(true).reply(200, {});
    kube().delete(`/api/v1${NS}/secrets/diabetes-keys`).reply(404, notFound);
    kube().delete(`/apis/policy/v1${NS}/poddisruptionbudgets/diabetes-front`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/secrets/diabetes-front`).reply(404, notFound);
    for (const name of [newSecret, 'diabetes-tls']) {
      kube().delete(`/api/v1${NS}/secrets/${name}`).reply(function (uri) {
        deleted.push(uri.split('/').pop()!);
        return [200, {}];
      });
    }
    kube().delete(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/diabetes`).reply(404, notFound);
    await target.deleteService('diabetes');
    expect(deleted.slice(1).sort()).toEqual([newSecret, 'diabetes-tls'].sort());
  });

  test('switchTraffic: the public Service on 443 to the TLS pods; the URI names ssl_cname over https', async () => {
    const { target } = makeTarget();
    kube()
      .get(`/apis/apps/v1${NS}/deployments/diabetes-blue`)
      .reply(200, {
        metadata: { name: 'diabetes-blue' },
        spec: { selector: {}, template: { metadata: { annotations: { 'model-deploy-flow/tls-host': 'scoring.contoso.test' } }, spec: { containers: [{ name: 'model', ports: [{ name: 'https', containerPort: 5001 }] }] } } },
      });
    kube().get(`/api/v1${NS}/services/diabetes`).reply(404, notFound);
    let body: any;
    kube().post(`/api/v1${NS}/services`, (b) => ((body = validateK8s(b)), true)).reply(echo());
    kube().get(`/api/v1${NS}/services/diabetes`).reply(200, { metadata: {}, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.9.9.9' }] } } });
    kube().get(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/diabetes`).reply(404, notFound);
    const r = await target.switchTraffic('diabetes', 'blue');
    expect(r).toEqual({ scoringUri: 'https://scoring.contoso.test/score', swaggerUri: 'https://scoring.contoso.test/swagger.json' });
    expect(body.spec.ports).toEqual([{ name: 'https', port: 443, targetPort: 5001, protocol: 'TCP' }]);
    expect(body.spec.selector).toEqual({ 'mdf-service': 'diabetes', 'mdf-slot': 'blue' });
  });
});
