/**
 * `--plan` (dry run): the operations printed for a manifest, and — for ACI — the printed PUT body is exactly the
 * body the target sends on the wire (captured with nock), so the plan cannot drift from the implementation.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { AciTarget } from '../../shared/azure/aci-target';
import { main, planConfig, planDeployment, API_VERSIONS } from '../../shared/azure/plan';
import { parseManifest } from '../../shared/manifest';
import { FAST, TEST_ENV, arm, q, rgPath, setupNock, testClients, testConfig, validateK8s } from './helpers';

const manifest = (target: unknown) =>
  JSON.stringify({
    model: { name: 'diabetes', files: 'model.pkl' },
    image: { name: 'diabetesimage', runtime: 'python', entry_script: 'score.py' },
    target,
    service: { name: 'diabetes' },
  });

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-plan-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = TEST_ENV): { code: number; out: string } {
  const lines: string[] = [];
  const code = main(args, env, (s) => lines.push(s));
  return { code, out: lines.join('\n') };
}

describe('plan (dry run)', () => {
  setupNock();

  test('ACI: prints the ACR build and the container group operations with api-versions; secrets masked', () => {
    const file = path.join(dir, 'aci.json');
    fs.writeFileSync(file, manifest({ kind: 'aci', cpu_cores: 1, memory_gb: 1, auth_enabled: true }));
    const { code, out } = run([file, '--version', '3', '--slot', 'green']);
    expect(code).toBe(0);
    expect(out).toContain(`POST /subscriptions/${TEST_ENV.AZURE_SUBSCRIPTION_ID}/resourceGroups/rg-mdf/providers/Microsoft.ContainerRegistry/registries/mdfregistry/scheduleRun?api-version=2019-06-01-preview`);
    expect(out).toContain('"imageNames": [\n         "diabetesimage:3"');
    expect(out).toContain(`PUT /subscriptions/${TEST_ENV.AZURE_SUBSCRIPTION_ID}/resourceGroups/rg-mdf/providers/Microsoft.ContainerInstance/containerGroups/diabetes-green?api-version=2023-05-01`);
    expect(out).toContain('"secureValue": "***"');
    expect(out).not.toContain('<generated>');
    expect(out).toContain('DELETE');
  });

  test('ACI with a canary and a shadow phase: the service front (its group, masked secrets), one signed state write and one gate read per phase, the switch through the front', () => {
    const file = path.join(dir, 'aci-rollout.json');
    const m = JSON.parse(manifest({ kind: 'aci', cpu_cores: 1, memory_gb: 1, auth_enabled: true }));
    m.rollout = { strategy: 'canary', steps: [10, 100], mirror_percent: 20, gates: { max_disagreement: 0.05 } };
    fs.writeFileSync(file, JSON.stringify(m));
    const { code, out } = run([file, '--json', '--slot', 'green']);
    expect(code).toBe(0);
    const ops = JSON.parse(out) as Array<{ api: string; method: string; path: string; purpose: string; body?: any }>;
    const aci = ops.filter((o) => o.api === 'arm' || o.api === 'front').map((o) => `${o.api} ${o.method} ${o.path.replace(/^.*containerGroups\//, 'cg/').replace(/\?.*$/, '')}`);
    expect(aci.slice(-13)).toEqual([
      'arm GET cg/diabetes-front',
      expect.stringMatching(/^arm POST .*\/registries\/mdfregistry\/scheduleRun$/),
      'arm PUT cg/diabetes-blue',
      'arm PUT cg/diabetes-front',
      expect.stringMatching(/^front PUT http:\/\/diabetes-[0-9a-f]{6}\.westeurope\.azurecontainer\.io:5001\/\.mdf\/front\/state$/),
      expect.stringMatching(/^front GET .*\/metrics$/),
      expect.stringMatching(/^front PUT .*\/\.mdf\/front\/state$/),
      expect.stringMatching(/^front GET .*\/metrics$/),
      expect.stringMatching(/^front PUT .*\/\.mdf\/front\/state$/),
      expect.stringMatching(/^front GET .*\/metrics$/),
      expect.stringMatching(/^front PUT .*\/\.mdf\/front\/state$/),
      'arm PATCH cg/diabetes-green',
      'arm DELETE cg/diabetes-blue',
    ]);
    const frontPut = ops.find((o) => o.method === 'PUT' && o.path.endsWith('/containerGroups/diabetes-front'))!;
    const c = frontPut.body.properties.containers[0].properties;
    expect(c.command).toEqual(['node', '/var/azureml-app/app/dist/runtime/front-cli.js']);
    // The front runs its own image (the runtime alone), never the model's.
    expect(c.image).toBe('mdfregistry.azurecr.io/mdf-system/front:<runtime version>');
    expect(c.environmentVariables.filter((e: any) => e.secureValue !== undefined).map((e: any) => [e.name, e.secureValue])).toEqual([
      ['MDF_FRONT_ADMIN_KEY', '***'],
      ['MDF_FRONT_STATE', '***'],
      ['MDF_PRIMARY_KEY', '***'],
      ['MDF_SECONDARY_KEY', '***'],
    ]);
    const shadow = ops.find((o) => o.api === 'front' && o.purpose.startsWith('rollout shadow'))!;
    expect(shadow.body).toMatchObject({ serving: 'blue', weights: { blue: 100, green: 0 }, mirror: { slot: 'green', percent: 20 } });
    expect(out).not.toContain('<generated>');
  });

  test('AKS --json: cluster credentials, then Secret, Deployment, HPA, slot and public Services', () => {
    const file = path.join(dir, 'aks.json');
    fs.writeFileSync(file, manifest({ kind: 'aks', autoscale_min_replicas: 2, autoscale_max_replicas: 5, autoscale_target_utilization: 30 }));
    const { code, out } = run([file, '--json']);
    expect(code).toBe(0);
    const ops = JSON.parse(out) as Array<{ api: string; method: string; path: string; apiVersion?: string; body?: any }>;
    const k8s = ops.filter((o) => o.api === 'kubernetes').map((o) => `${o.method} ${o.path}`);
    expect(k8s).toEqual([
      'PUT /api/v1/namespaces/models/secrets/diabetes-keys',
      'PUT /apis/apps/v1/namespaces/models/deployments/diabetes-blue',
      'PUT /apis/autoscaling/v2/namespaces/models/horizontalpodautoscalers/diabetes-blue',
      'PUT /api/v1/namespaces/models/services/diabetes-blue',
      'GET /apis/apps/v1/namespaces/models/deployments/diabetes-blue',
      'PUT /api/v1/namespaces/models/services/diabetes',
    ]);
    expect(ops.find((o) => o.path.endsWith('/listClusterUserCredential'))?.apiVersion).toBe(API_VERSIONS.containerService);
    const hpa = ops.find((o) => o.path.includes('horizontalpodautoscalers'))?.body;
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 5 });
    expect(ops.find((o) => o.path.includes('/deployments/') && o.method === 'PUT')?.body.spec.replicas).toBe(2);
    expect(ops.find((o) => o.path.endsWith('/services/diabetes'))?.body.spec.selector).toEqual({ 'mdf-service': 'diabetes', 'mdf-slot': 'blue' });
  });

  test('AKS with a canary rollout: the Gateway check, one HTTPRoute per step (weights of the previous and new slot), the gate reads', () => {
    const file = path.join(dir, 'aks-canary.json');
    const m = JSON.parse(manifest({ kind: 'aks', auth_enabled: false, num_replicas: 2 }));
    fs.writeFileSync(file, JSON.stringify({ ...m, rollout: { strategy: 'canary', steps: [10, 50, 100], bake_seconds: 60 } }));
    const { code, out } = run([file, '--json', '--slot', 'green']);
    expect(code).toBe(0);
    const ops = JSON.parse(out) as Array<{ api: string; method: string; path: string; body?: any }>;
    const k8s = ops.filter((o) => o.api === 'kubernetes').map((o) => `${o.method} ${o.path}`);
    expect(k8s.slice(-8)).toEqual([
      'GET /apis/gateway.networking.k8s.io/v1/namespaces/models/gateways/mdf-gateway',
      'PUT /apis/gateway.networking.k8s.io/v1/namespaces/models/httproutes/diabetes',
      'GET /api/v1/namespaces/models/pods/<pod>:5001/proxy/metrics',
      'PUT /apis/gateway.networking.k8s.io/v1/namespaces/models/httproutes/diabetes',
      'GET /api/v1/namespaces/models/pods/<pod>:5001/proxy/metrics',
      'PUT /apis/gateway.networking.k8s.io/v1/namespaces/models/httproutes/diabetes',
      'GET /api/v1/namespaces/models/pods/<pod>:5001/proxy/metrics',
      'PUT /api/v1/namespaces/models/services/diabetes',
    ]);
    const routes = ops.filter((o) => o.path.includes('/httproutes/')).map((o) => o.body.spec.rules[2].backendRefs.map((b: any) => `${b.name}=${b.weight}`));
    expect(routes).toEqual([['diabetes-blue=90', 'diabetes-green=10'], ['diabetes-blue=50', 'diabetes-green=50'], ['diabetes-blue=0', 'diabetes-green=100']]);
  });

  test('AKS with a shadow phase: the front\'s Secret, Deployment (schema-valid) and Service, its state through the service proxy, the route on the front, then the steps; the front removed at the switch', () => {
    const file = path.join(dir, 'aks-shadow.json');
    const m = JSON.parse(manifest({ kind: 'aks', auth_enabled: true, num_replicas: 2 }));
    fs.writeFileSync(file, JSON.stringify({ ...m, rollout: { strategy: 'canary', steps: [50, 100], mirror_percent: 20, gates: { max_disagreement: 0.05 } } }));
    const { code, out } = run([file, '--json', '--slot', 'green']);
    expect(code).toBe(0);
    const ops = JSON.parse(out) as Array<{ api: string; method: string; path: string; body?: any }>;
    const k8s = ops.filter((o) => o.api === 'kubernetes').map((o) => `${o.method} ${o.path}`);
    const from = k8s.indexOf('GET /apis/gateway.networking.k8s.io/v1/namespaces/models/gateways/mdf-gateway');
    expect(k8s.slice(from + 1, from + 9)).toEqual([
      'PUT /api/v1/namespaces/models/secrets/diabetes-front',
      'PUT /apis/apps/v1/namespaces/models/deployments/diabetes-front',
      'PUT /apis/policy/v1/namespaces/models/poddisruptionbudgets/diabetes-front',
      'PUT /api/v1/namespaces/models/services/diabetes-front',
      // Each front pod through the pod proxy (each holds its own state).
      'GET /api/v1/namespaces/models/pods/<pod>:5001/proxy/.mdf/front/state',
      'PUT /api/v1/namespaces/models/pods/<pod>:5001/proxy/.mdf/front/state',
      'PUT /apis/gateway.networking.k8s.io/v1/namespaces/models/httproutes/diabetes',
      'GET /api/v1/namespaces/models/pods/<pod>:5001/proxy/.mdf/front/state',
    ]);
    expect(k8s.slice(-5)).toEqual([
      'PUT /api/v1/namespaces/models/services/diabetes',
      'DELETE /api/v1/namespaces/models/services/diabetes-front',
      'DELETE /apis/apps/v1/namespaces/models/deployments/diabetes-front',
      'DELETE /apis/policy/v1/namespaces/models/poddisruptionbudgets/diabetes-front',
      'DELETE /api/v1/namespaces/models/secrets/diabetes-front',
    ]);
    validateK8s(ops.find((o) => o.path.endsWith('/poddisruptionbudgets/diabetes-front') && o.method === 'PUT')!.body);
    const dep = ops.find((o) => o.path.endsWith('/deployments/diabetes-front'))!.body;
    validateK8s(dep);
    validateK8s(ops.find((o) => o.path.endsWith('/services/diabetes-front'))!.body);
    // The front runs its own image (the ACI front's), built before anything of the front is written.
    expect(dep.spec.template.spec.containers[0].image).toBe('mdfregistry.azurecr.io/mdf-system/front:<runtime version>');
    const frontBuild = ops.findIndex((o) => o.path.endsWith('/scheduleRun') && (o as { purpose?: string }).purpose!.includes('mdf-system/front'));
    expect(frontBuild).toBeGreaterThan(-1);
    expect(frontBuild).toBeLessThan(ops.findIndex((o) => o.path.endsWith('/secrets/diabetes-front')));
    expect(dep.spec.template.spec.containers[0].env.map((e: any) => e.name)).toContain('MDF_KEYS_FILE');
    expect(ops.find((o) => o.method === 'PUT' && o.path.endsWith('/proxy/.mdf/front/state'))!.body).toMatchObject({ serving: 'blue', weights: { blue: 100, green: 0 }, mirror: { slot: 'green', percent: 20 } });
    const routes = ops.filter((o) => o.path.includes('/httproutes/')).map((o) => o.body.spec.rules[2].backendRefs.map((b: any) => `${b.name}=${b.weight}`));
    expect(routes).toEqual([['diabetes-front=1'], ['diabetes-blue=50', 'diabetes-green=50'], ['diabetes-blue=0', 'diabetes-green=100']]);
    expect(out).not.toMatch(/PRIMARY|SECRET-KEY/);
  });

  test('missing settings become placeholders; an invalid manifest is an error with a code', () => {
    const file = path.join(dir, 'aci2.json');
    fs.writeFileSync(file, manifest('aci'));
    const { code, out } = run([file], {});
    expect(code).toBe(0);
    expect(out).toContain('/subscriptions/<AZURE_SUBSCRIPTION_ID>/resourceGroups/<AZURE_RESOURCE_GROUP>/');
    expect(out).toContain('<ACR_NAME>.azurecr.io/diabetesimage:1');

    fs.writeFileSync(file, '{"model": {}}');
    const bad = run([file]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out).error.code).toBe('InvalidManifest');
    expect(run([]).code).toBe(2);
  });

  test('the planned ACI PUT body is the body AciTarget sends', async () => {
    const m = parseManifest(manifest({ kind: 'aci', cpu_cores: 1, memory_gb: 1.5, auth_enabled: true }));
    const planned = planDeployment(m, planConfig(TEST_ENV), { version: 3, slot: 'blue' }).find((o) => o.method === 'PUT' && o.api === 'arm')!.body as any;

    const CG = rgPath('Microsoft.ContainerInstance', 'containerGroups/diabetes-blue');
    let sent: any;
    arm().get(CG).query(q('2023-05-01')).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    arm()
      .put(CG, (b) => ((sent = b), true))
      .query(q('2023-05-01'))
      .reply(400, { error: { code: 'Stop', message: 'captured' } });
    const target = new AciTarget({ clients: testClients(), config: testConfig(), timing: FAST });
    await target.deploySlot({
      serviceName: 'diabetes',
      slot: 'blue',
      image: { name: 'diabetesimage', version: 3, imageRef: 'mdfregistry.azurecr.io/diabetesimage:3', runtime: 'python', contextBlob: 'images/diabetesimage/3.tar.gz' },
      config: m.deployConfig,
      keys: { primaryKey: 'p', secondaryKey: 's' },
    });
    for (const e of sent.properties.containers[0].properties.environmentVariables) if (e.secureValue) e.secureValue = '***';
    expect(sent.tags['mdf-keys-digest']).toMatch(/^[0-9a-f]{32}$/);
    expect(planned.tags['mdf-keys-digest']).toBe('<sha256 of the keys>'); // keys are generated at deployment time
    expect(planned).toEqual({ ...sent, tags: { ...sent.tags, 'mdf-keys-digest': '<sha256 of the keys>' } });
  });
});
