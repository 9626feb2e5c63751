/**
 * "Every accepted field has an effect" (issue #11): each deploy-configuration field the manifest accepts is either
 * honoured — its effect asserted here on what the service records or in the request sent to Azure (nock) — or
 * refused with a clear 400. Kubernetes objects are validated against the Kubernetes schema (validateK8s).
 */
import { AciTarget } from '../../shared/azure/aci-target';
import { slotDeployment } from '../../shared/azure/aks-manifests';
import { validateManifest } from '../../shared/manifest/schema';
import type { DeployRequest } from '../../shared/seams';
import { ARM, FAST, TEST_ENV, arm, q, rgPath, setupNock, testClients, testConfig, validateK8s } from './helpers';

const base = { model: { name: 'm', files: ['model.json'] }, image: { runtime: 'python', entry_script: 'score.py' }, service: { name: 'svc' } };
const manifest = (over: Record<string, unknown>) => validateManifest({ ...base, ...over });
const refused = (over: Record<string, unknown>) => {
  try {
    manifest(over);
  } catch (e) {
    return e as { code: string; message: string; status?: number };
  }
  throw new Error('accepted');
};

describe('target.tags / target.description: the service\'s own (AML Webservice tags and description)', () => {
  test('merged into the service record the deployment writes; a conflict is refused, not silently resolved', () => {
    const m = manifest({ target: { kind: 'aks', tags: { team: 'risk', tier: 'gold' }, description: 'Diabetes scorer' }, service: { name: 'svc', tags: { tier: 'gold', owner: 'ana' } } });
    expect(m.service).toEqual({ name: 'svc', description: 'Diabetes scorer', tags: { team: 'risk', tier: 'gold', owner: 'ana' } });
    const local = manifest({ target: { kind: 'local', tags: { a: '1' } } });
    expect(local.service.tags).toEqual({ a: '1' });
    expect(refused({ target: { kind: 'aci', description: 'x' }, service: { name: 'svc', description: 'y' } })).toMatchObject({ code: 'InvalidManifest', message: expect.stringContaining('target.description and service.description differ') });
    expect(refused({ target: { kind: 'local', tags: { tier: 'gold' } }, service: { name: 'svc', tags: { tier: 'silver' } } }).message).toContain('tag "tier" has different values');
  });
});

describe('AKS: probe settings and cpu/memory limits (AML AksWebservice.deploy_configuration)', () => {
  test('reach the Deployment sent to Kubernetes (schema-valid); limits below requests are refused', () => {
    const m = manifest({
      target: { kind: 'aks', cpu_cores: 0.5, memory_gb: 1, cpu_cores_limit: 2, memory_gb_limit: 3, period_seconds: 7, initial_delay_seconds: 45, timeout_seconds: 4, success_threshold: 2, failure_threshold: 6 },
    });
    expect(m.deployConfig).toMatchObject({ cpuCoresLimit: 2, memoryGbLimit: 3, probe: { periodSeconds: 7, initialDelaySeconds: 45, timeoutSeconds: 4, successThreshold: 2, failureThreshold: 6 } });
    const request: DeployRequest = { serviceName: 'svc', slot: 'blue', image: { name: 'i', version: 1, imageRef: 'r.azurecr.io/i:1', runtime: 'python', contextBlob: 'images/i/1.tar.gz' }, config: { ...m.deployConfig, authEnabled: false } };
    const d = validateK8s(slotDeployment(request, 'models'));
    const c = d.spec!.template.spec!.containers[0];
    expect(c.resources).toEqual({ requests: { cpu: '500m', memory: '1024Mi' }, limits: { cpu: '2000m', memory: '3072Mi' } });
    expect(c.livenessProbe).toEqual({ httpGet: { path: '/', port: 5001 }, initialDelaySeconds: 45, periodSeconds: 7, timeoutSeconds: 4, failureThreshold: 6 });
    // Kubernetes requires successThreshold 1 on liveness probes: AML's success_threshold applies to readiness.
    expect(c.readinessProbe).toEqual({ httpGet: { path: '/', port: 5001 }, initialDelaySeconds: 5, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3, successThreshold: 2 });
    // Without them: the previous defaults (no cpu limit, memory limit = request).
    const plain = validateK8s(slotDeployment({ ...request, config: manifest({ target: 'aks' }).deployConfig }, 'models')).spec!.template.spec!.containers[0];
    expect(plain.resources!.limits).toEqual({ memory: '512Mi' });
    expect(plain.livenessProbe).toMatchObject({ initialDelaySeconds: 30, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 });
    expect(refused({ target: { kind: 'aks', cpu_cores: 1, cpu_cores_limit: 0.5 } })).toMatchObject({ code: 'InvalidDeployConfig', message: expect.stringContaining('cpu_cores_limit (0.5) is less than cpu_cores (1)') });
    expect(refused({ target: { kind: 'aks', memory_gb_limit: 0.25 } }).message).toContain('memory_gb_limit (0.25) is less than memory_gb (0.5)');
    // Not AKS fields: refused on other targets (named), never dropped.
    expect(refused({ target: { kind: 'aci', period_seconds: 5 } }).message).toContain('target.period_seconds: unknown field');
    expect(refused({ target: { kind: 'local', cpu_cores_limit: 1 } }).message).toContain('target.cpu_cores_limit: unknown field');
  });
});

describe('image.base_image_registry: app identity or a Key Vault reference, never a password', () => {
  test('address or { address, username, password_secret } is kept for the build; a password is a 400', () => {
    const kv = 'https://kv-mdf.vault.azure.net/secrets/reg-password';
    const a = manifest({ image: { ...base.image, base_image: 'Other.Example.io/base/py:3', base_image_registry: 'https://other.example.io/' } });
    expect(a.image).toMatchObject({ baseImageRegistry: 'other.example.io' });
    expect(a.image.baseImageRegistryAuth).toBeUndefined();
    const b = manifest({ image: { ...base.image, base_image: 'other.example.io/base/py:3', base_image_registry: { address: 'other.example.io', username: 'puller', password_secret: kv } } });
    expect(b.image).toMatchObject({ baseImageRegistry: 'other.example.io', baseImageRegistryAuth: { username: 'puller', passwordSecret: kv } });
    const e = refused({ image: { ...base.image, base_image: 'other.example.io/base/py:3', base_image_registry: { address: 'other.example.io', username: 'puller', password: 'hunter2-SECRET' } } });
    expect(e).toMatchObject({ code: 'SecretInManifest', message: expect.stringContaining('password_secret') });
    expect(e.message).not.toContain('hunter2');
    expect(refused({ image: { ...base.image, base_image: 'other.example.io/base/py:3', base_image_registry: { address: 'other.example.io', username: 'puller', password_secret: 'https://evil.example/x' } } }).message).toContain('Key Vault secret URI');
    expect(refused({ image: { ...base.image, base_image: 'other.example.io/base/py:3', base_image_registry: { address: 'other.example.io', username: 'puller' } } }).message).toContain('username and password_secret together');
    expect(refused({ image: { ...base.image, base_image: 'python:3.11', base_image_registry: 'other.example.io' } }).message).toContain('is pulled from "docker.io"');
    expect(refused({ image: { ...base.image, base_image_registry: 'other.example.io' } }).message).toContain('image.base_image is not');
  });
});

describe('ACI location', () => {
  setupNock();
  const API = '2023-05-01';
  const CG = (name: string) => rgPath('Microsoft.ContainerInstance', `containerGroups/${name}`);

  test('the container group is created in the manifest\'s region (normalised), and its URI is in that region', async () => {
    const m = manifest({ target: { kind: 'aci', location: 'North Europe' } });
    expect(m.deployConfig.extra).toEqual({ location: 'North Europe' });
    const name = 'svc-blue';
    const group = (provisioningState: string, state: string) => ({
      id: CG(name),
      name,
      location: 'northeurope',
      properties: {
        provisioningState,
        osType: 'Linux',
        containers: [{ name: 'model', properties: { image: 'mdfregistry.azurecr.io/i:1', resources: { requests: { cpu: 0.1, memoryInGB: 0.5 } }, instanceView: { restartCount: 0, currentState: { state }, events: [] } } }],
        ipAddress: { type: 'Public', ports: [{ port: 5001, protocol: 'TCP' }], dnsNameLabel: 'svc-blue-abc123' },
        instanceView: { state, events: [] },
      },
    });
    let body: any;
    const op = `/subscriptions/${TEST_ENV.AZURE_SUBSCRIPTION_ID}/providers/Microsoft.ContainerInstance/locations/northeurope/operations/op1`;
    arm().get(CG(name)).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'not found' } });
    arm().put(CG(name), (b) => ((body = b), true)).query(q(API)).reply(201, group('Creating', 'Waiting'), { 'Azure-AsyncOperation': `${ARM}${op}?api-version=${API}` });
    arm().get(op).query(q(API)).reply(200, { status: 'Succeeded' });
    arm().get(CG(name)).query(q(API)).times(2).reply(200, group('Succeeded', 'Running'));
    const target = new AciTarget({ clients: testClients(), config: testConfig(), timing: FAST });
    const slot = await target.deploySlot({ serviceName: 'svc', slot: 'blue', image: { name: 'i', version: 1, imageRef: 'mdfregistry.azurecr.io/i:1', runtime: 'python', contextBlob: 'images/i/1.tar.gz' }, config: m.deployConfig });
    expect(body.location).toBe('northeurope');
    expect(slot.state).toBe('Healthy');
    expect(slot.scoringUri).toMatch(/^http:\/\/svc-blue-abc123\.northeurope\.azurecontainer\.io:5001\/score$/);
    await expect(new AciTarget({ clients: testClients(), config: testConfig(), timing: FAST }).deploySlot({ serviceName: 'svc', slot: 'blue', image: { name: 'i', version: 1, imageRef: 'x', runtime: 'python', contextBlob: 'c' }, config: { ...m.deployConfig, extra: { location: 'west/../europe' } } })).rejects.toMatchObject({ code: 'DeployConfigInvalid' });
  });
});
