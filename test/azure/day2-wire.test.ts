/**
 * Day-2 deployments on ACI and AKS at the wire: the door's code (`resolveRegistered`, `updateRunInput`) and the deploy
 * steps the run's activities call (test/helpers/deploy.ts runs them in the run's order), with the registries on
 * Azurite and every call to Azure answered by nock — so the test asserts exactly what reaches ARM, ACR, the
 * Kubernetes API and the scoring endpoint:
 * - a registered image (`image: "name:version"`) deploys with that image's reference and no build call;
 * - a registered model (`model: {id}`) registers no model version; the new image embedding it is built by ACR Tasks;
 * - `PATCH` of tags/description runs in place: no call to Azure at all, the serving endpoint smoke-tested with the
 *   deployment's sample; of the replica count on AKS: the serving Deployment scaled, its pod template untouched; any
 *   other field is blue/green: a new slot with the same image, the switch, the old slot removed.
 */
import { randomUUID } from 'crypto';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { AciTarget } from '../../shared/azure/aci-target';
import { AksTarget } from '../../shared/azure/aks-target';
import { AcrTaskImageBuilder, blobIoFromStorage } from '../../shared/azure';
import type { DeployRunInput, ImageSummary } from '../../shared/deploy/contract';
import { imageSummary, resolveRegistered } from '../../shared/deploy/registered';
import { deployServiceInput } from '../../shared/deploy/run-status';
import type { DeployContext } from '../../shared/deploy/steps';
import { parseServicePatch, servingChecks, updateRunInput } from '../../shared/deploy/update';
import { ImageRegistry, imageRequestFromManifest } from '../../shared/images/image-registry';
import { validateManifest } from '../../shared/manifest/schema';
import { ModelRegistry } from '../../shared/registry/models';
import { ServiceRegistry } from '../../shared/registry/services';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { deployService } from '../helpers/deploy';
import { ARM, FAST, FakeCredential, TEST_ENV, arm, nock, q, rgPath, testClients, testConfig, validateK8s } from './helpers';
import { k8s, AKS_API, MC, NS, kube, notFound, kubeconfig } from './aks-world';


const SAMPLE = { data: [[1, 2, 3]] };
const EXPECTED = [6];
const ACI_API = '2023-05-01';
const TASKS_API = '2019-06-01-preview';
const CG = (name: string) => rgPath('Microsoft.ContainerInstance', `containerGroups/${name}`);
const CG_LIST = rgPath('Microsoft.ContainerInstance', 'containerGroups');
const REG = rgPath('Microsoft.ContainerRegistry', 'registries/mdfregistry');

let azurite: AzuriteInstance;
let storage: StorageClients;
let models: ModelRegistry;
let images: ImageRegistry;
let services: ServiceRegistry;
/** Every request nock saw that no interceptor answered, other than Azurite's (which it lets through). */
const unmatched: string[] = [];
/** Run inputs by run id: what the durable client would hold (servingChecks reads the serving run's input). */
const runs = new Map<string, DeployRunInput>();
const runClient = { getStatus: async (instanceId: string) => ({ instanceId, runtimeStatus: 'Completed', input: runs.get(instanceId) }) };
let builtImage: ImageSummary;
const savedStorageSetting = process.env.AzureWebJobsStorage;
/**
 * nock intercepts `fetch` in the realm it was loaded in (Node's, see helpers.ts); Jest's sandbox has its own copy
 * of `fetch`, taken before. The smoke test's calls go through the intercepted one while this file runs.
 */
const outerGlobal = (process as unknown as { getBuiltinModule(m: string): typeof import('vm') }).getBuiltinModule('vm').runInThisContext('globalThis') as typeof globalThis;
const sandboxFetch = globalThis.fetch;

beforeAll(async () => {
  azurite = await startAzurite();
  // The door's code reads the registries through the app's services, from the app's storage setting.
  process.env.AzureWebJobsStorage = azurite.connectionString;
  storage = storageFromConnectionString(azurite.connectionString);
  models = new ModelRegistry(storage);
  images = new ImageRegistry(storage, models, new AcrTaskImageBuilder({ clients: testClients(), config: testConfig(), blobs: blobIoFromStorage(storage), timing: FAST }));
  services = new ServiceRegistry(storage);
  const staging = await storage.ensureContainer('staging');
  await staging.getBlockBlobClient('wire/score.py').uploadData(Buffer.from('def init():\n    pass\n\ndef run(data):\n    return [sum(r) for r in data["data"]]\n'));
  if (!nock.isActive()) nock.activate();
  nock.disableNetConnect();
  nock.enableNetConnect(/^(127\.0\.0\.1|localhost)(:\d+)?$/);
  nock.emitter.on('no match', onNoMatch);
  globalThis.fetch = (...args: Parameters<typeof fetch>) => outerGlobal.fetch(...args);

  // The image every test deploys: built once by ACR Tasks (as a first deployment would have).
  const { model } = await models.register({ name: 'wire-model', files: [{ path: 'model.json', content: '{"w":1}' }], source: { kind: 'api', eventId: 'wire-model-1' } });
  const build = expectAcrBuild('wireimage:1');
  const { image } = await images.create({ name: 'wireimage', runtime: 'python', models: [model.id], entryScript: { path: 'score.py', blob: 'staging/wire/score.py' }, eventId: 'wire-image-1' });
  expect(build.body?.imageNames).toEqual(['wireimage:1']);
  expect(image).toMatchObject({ state: 'Succeeded', imageRef: 'mdfregistry.azurecr.io/wireimage:1' });
  builtImage = imageSummary(image);
  expect(nock.pendingMocks()).toEqual([]);
}, 120_000);

afterAll(async () => {
  nock.emitter.removeListener('no match', onNoMatch);
  globalThis.fetch = sandboxFetch;
  nock.cleanAll();
  nock.enableNetConnect();
  nock.restore();
  if (savedStorageSetting === undefined) delete process.env.AzureWebJobsStorage;
  else process.env.AzureWebJobsStorage = savedStorageSetting;
  await azurite?.stop();
});

afterEach(() => {
  const pending = nock.pendingMocks();
  const extra = unmatched.splice(0);
  nock.cleanAll();
  expect(pending).toEqual([]);
  expect(extra).toEqual([]);
});

function onNoMatch(req: { hostname?: string; host?: string; method?: string; path?: string; options?: { hostname?: string; host?: string } }): void {
  const host = String(req.hostname ?? req.host ?? req.options?.hostname ?? req.options?.host ?? '');
  if (/^(127\.0\.0\.1|localhost)(:\d+)?$/.test(host)) return;
  unmatched.push(`${req.method ?? ''} ${host}${req.path ?? ''}`);
}

/** ACR Tasks: upload URL, SAS upload, scheduleRun (recorded), run Succeeded, log copy. */
function expectAcrBuild(tag: string): { body?: any } {
  const seen: { body?: any } = {};
  const runId = `cb-${tag.replace(/\W/g, '')}`;
  arm().post(`${REG}/listBuildSourceUploadUrl`).query(q(TASKS_API)).reply(200, { uploadUrl: 'https://acrupload.blob.core.windows.net/c/src.tar.gz?sig=S', relativePath: 'src.tar.gz' });
  nock('https://acrupload.blob.core.windows.net').put('/c/src.tar.gz').query(true).reply(201, '');
  arm()
    .post(`${REG}/scheduleRun`, (b) => ((seen.body = b), true))
    .query(q(TASKS_API))
    .reply(200, { id: `${REG}/runs/${runId}`, name: runId, properties: { runId, status: 'Queued' } });
  arm().get(`${REG}/runs/${runId}`).query(q(TASKS_API)).reply(200, { id: `${REG}/runs/${runId}`, name: runId, properties: { runId, status: 'Succeeded' } });
  arm().post(`${REG}/runs/${runId}/listLogSasUrl`).query(q(TASKS_API)).reply(200, { logLink: `https://acrlogs.blob.core.windows.net/logs/${runId}.log?sig=L` });
  nock('https://acrlogs.blob.core.windows.net')
    .get(`/logs/${runId}.log`)
    .query(true)
    .reply(200, 'Successfully pushed\n', { 'Content-Length': '20', 'Content-Type': 'text/plain', ETag: '"0x1"', 'Last-Modified': 'Tue, 24 Nov 2026 08:00:00 GMT', 'x-ms-blob-type': 'AppendBlob' });
  return seen;
}

/** The scoring endpoint at `base`: liveness, no swagger, one POST /score (its body recorded) answering the expected output. */
function expectSmokeTest(base: string): { body?: unknown; authorization?: string } {
  const seen: { body?: unknown; authorization?: string } = {};
  nock(base).get('/').reply(200, { status: 'Healthy' });
  nock(base).get('/swagger.json').reply(404, { error: { code: 'NotFound', message: 'no schema' } });
  nock(base)
    .post('/score', (b) => ((seen.body = b), true))
    .reply(function () {
      seen.authorization = String(this.req.headers.authorization ?? '');
      return [200, EXPECTED];
    });
  return seen;
}

function ctxFor(target: DeployContext['target']): DeployContext {
  return { services, images, target, livenessTimeoutMs: 5_000, requestTimeoutMs: 5_000 };
}

/** `POST /api/deployments` from here on: the door resolves what the manifest names, then the run's steps. */
async function deployManifest(ctx: DeployContext, raw: Record<string, unknown>, files: DeployRunInput['files'] = { model: [] }) {
  const manifest = validateManifest(raw);
  const runId = `deploy-wire-${randomUUID()}`;
  const input = await resolveRegistered({ source: { kind: 'http', eventId: runId }, model: manifest.model, files, manifest });
  runs.set(runId, input);
  let image = input.registered?.image;
  if (!image) {
    const modelId = input.registered?.model && input.registered.model !== 'none' ? input.registered.model.id : '';
    image = imageSummary((await images.create(imageRequestFromManifest(input.manifest!, input.files, modelId ? [modelId] : [], `${runId}/image`))).image);
  }
  return { runId, input, out: await deployService(ctx, deployServiceInput(runId, input.manifest!, image)) };
}

/** `PATCH /api/services/{name}`: the door's input, then the run's steps (in place or blue/green as the input says). */
async function patchService(ctx: DeployContext, name: string, body: unknown) {
  const record = await services.get(name);
  const runId = `deploy-wire-${randomUUID()}`;
  const input = await updateRunInput(record, parseServicePatch(body), runId, await servingChecks(runClient, record));
  runs.set(runId, input);
  const out = await deployService(ctx, deployServiceInput(runId, input.manifest!, input.registered!.image!, input.update?.mode === 'inPlace'));
  return { input, out };
}

// ---------------------------------------------------------------- ACI

function aciGroup(name: string, opts: { slot: string; active?: boolean; image?: string; cpu?: number } = { slot: 'blue' }) {
  return {
    id: CG(name),
    name,
    location: 'westeurope',
    tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': name.replace(/-(blue|green)$/, ''), 'mdf-slot': opts.slot, ...(opts.active ? { 'mdf-active': 'true' } : {}) },
    properties: {
      provisioningState: 'Succeeded',
      osType: 'Linux',
      containers: [{ name: 'model', properties: { image: opts.image ?? builtImage.imageRef, resources: { requests: { cpu: opts.cpu ?? 0.1, memoryInGB: 0.5 } }, instanceView: { restartCount: 0, currentState: { state: 'Running' }, events: [] } } }],
      ipAddress: { type: 'Public', ports: [{ port: 5001, protocol: 'TCP' }], dnsNameLabel: `${name}-lbl`, fqdn: `${name}-lbl.westeurope.azurecontainer.io` },
      instanceView: { state: 'Running', events: [] },
    },
  };
}

/** A new container group `name`: absent, PUT (recorded) + LRO, then running. */
function expectAciCreate(name: string, slot: string): { body?: any } {
  const seen: { body?: any } = {};
  const op = `/subscriptions/${TEST_ENV.AZURE_SUBSCRIPTION_ID}/providers/Microsoft.ContainerInstance/locations/westeurope/operations/op-${name}`;
  arm().get(CG(name)).query(q(ACI_API)).reply(404, { error: { code: 'ResourceNotFound', message: 'not found' } });
  arm()
    .put(CG(name), (b) => ((seen.body = b), true))
    .query(q(ACI_API))
    .reply(201, { ...aciGroup(name, { slot }), properties: { ...aciGroup(name, { slot }).properties, provisioningState: 'Creating' } }, { 'Azure-AsyncOperation': `${ARM}${op}?api-version=${ACI_API}` });
  arm().get(op).query(q(ACI_API)).reply(200, { status: 'Succeeded' });
  arm().get(CG(name)).query(q(ACI_API)).times(2).reply(200, () => aciGroup(name, { slot, image: seen.body?.properties?.containers?.[0]?.properties?.image }));
  return seen;
}

/** The switch to `name` (tag active, the previously active group deleted). */
function expectAciSwitch(name: string, slot: string, previous?: ReturnType<typeof aciGroup>): { tags?: any } {
  const seen: { tags?: any } = {};
  const g = aciGroup(name, { slot });
  arm().get(CG(name)).query(q(ACI_API)).reply(200, g);
  arm().get(CG_LIST).query(q(ACI_API)).reply(200, { value: previous ? [previous, g] : [g] });
  arm()
    .patch(CG(name), (b) => ((seen.tags = b.tags), true))
    .query(q(ACI_API))
    .reply(200, g);
  if (previous) arm().delete(CG(previous.name)).query(q(ACI_API)).reply(200, previous);
  return seen;
}

describe('ACI', () => {
  const aci = () => ctxFor(new AciTarget({ clients: testClients(), config: testConfig(), timing: FAST }));

  test('a registered image deploys with its own image reference: one container group, no build, no model registered', async () => {
    const modelsBefore = (await models.list()).length;
    const put = expectAciCreate('wire-aci-blue', 'blue');
    const smoke = expectSmokeTest('http://wire-aci-blue-lbl.westeurope.azurecontainer.io:5001');
    const sw = expectAciSwitch('wire-aci-blue', 'blue');
    const { out, input } = await deployManifest(aci(), { image: builtImage.id, target: { kind: 'aci', cpu_cores: 0.1, memory_gb: 0.5 }, service: { name: 'wire-aci', tags: { team: 'a' } }, smoke_test: { sample: SAMPLE, expected_output: EXPECTED } });
    expect([out.outcome, out.error]).toEqual(['Deployed', undefined]);
    expect(input.registered?.image?.id).toBe(builtImage.id);
    expect(put.body.properties.containers[0].properties.image).toBe('mdfregistry.azurecr.io/wireimage:1');
    expect(put.body.tags).toMatchObject({ 'mdf-service': 'wire-aci', 'mdf-slot': 'blue', 'mdf-image': builtImage.id });
    expect(smoke.body).toEqual(SAMPLE);
    expect(sw.tags).toMatchObject({ 'mdf-active': 'true' });
    expect((await models.list()).length).toBe(modelsBefore);
    expect(await services.get('wire-aci')).toMatchObject({ image: builtImage.id, activeSlot: 'blue', scoringUri: 'http://wire-aci-blue-lbl.westeurope.azurecontainer.io:5001/score' });
  });

  test('PATCH tags/description in place: no call to Azure, the serving endpoint smoke-tested with the deployment sample', async () => {
    const smoke = expectSmokeTest('http://wire-aci-blue-lbl.westeurope.azurecontainer.io:5001');
    const { input, out } = await patchService(aci(), 'wire-aci', { tags: { team: 'b' }, description: 'in place' });
    expect(input.update).toEqual({ mode: 'inPlace', fields: ['description', 'tags'] });
    expect(out.outcome).toBe('Updated');
    expect(smoke.body).toEqual(SAMPLE);
    expect(await services.get('wire-aci')).toMatchObject({ activeSlot: 'blue', tags: { team: 'b' }, description: 'in place', image: builtImage.id });
  });

  test('PATCH cpu_cores blue/green: a green group with the same image and the new size, the switch, blue removed', async () => {
    const put = expectAciCreate('wire-aci-green', 'green');
    const smoke = expectSmokeTest('http://wire-aci-green-lbl.westeurope.azurecontainer.io:5001');
    expectAciSwitch('wire-aci-green', 'green', aciGroup('wire-aci-blue', { slot: 'blue', active: true }));
    // Retire: no service front (test/azure/aci-rollout.test.ts has the fronted case), then the group goes.
    arm().get(CG('wire-aci-front')).query(q(ACI_API)).reply(404, { error: { code: 'ResourceNotFound', message: 'not found' } });
    arm().delete(CG('wire-aci-blue')).query(q(ACI_API)).reply(204);
    const { input, out } = await patchService(aci(), 'wire-aci', { cpu_cores: 0.5 });
    expect(input.update).toEqual({ mode: 'blueGreen', fields: ['cpu_cores'] });
    expect(out.outcome).toBe('Updated');
    const c = put.body.properties.containers[0].properties;
    expect([c.image, c.resources.requests.cpu]).toEqual(['mdfregistry.azurecr.io/wireimage:1', 0.5]);
    expect(smoke.body).toEqual(SAMPLE);
    expect(await services.get('wire-aci')).toMatchObject({ activeSlot: 'green', tags: { team: 'b' }, description: 'in place', config: { cpuCores: 0.5 } });
  });

  test('a registered model: no new model version; ACR Tasks builds the image embedding it, and the group runs that image', async () => {
    const modelsBefore = (await models.list()).length;
    const build = expectAcrBuild('wireimage:2');
    const put = expectAciCreate('wire-aci-model-blue', 'blue');
    expectSmokeTest('http://wire-aci-model-blue-lbl.westeurope.azurecontainer.io:5001');
    expectAciSwitch('wire-aci-model-blue', 'blue');
    const { out, input } = await deployManifest(
      aci(),
      { model: { id: builtImage.models[0] }, image: { name: 'wireimage', runtime: 'python', entry_script: 'score.py' }, target: { kind: 'aci', cpu_cores: 0.1, memory_gb: 0.5 }, service: { name: 'wire-aci-model' }, smoke_test: { sample: SAMPLE, expected_output: EXPECTED } },
      { model: [], entryScript: { path: 'score.py', blob: 'staging/wire/score.py' } },
    );
    expect(out.outcome).toBe('Deployed');
    expect(input.registered?.model).toMatchObject({ id: builtImage.models[0] });
    expect(build.body.imageNames).toEqual(['wireimage:2']);
    expect(put.body.properties.containers[0].properties.image).toBe('mdfregistry.azurecr.io/wireimage:2');
    expect((await models.list()).length).toBe(modelsBefore);
    expect((await images.get('wireimage', 2)).models).toEqual(builtImage.models);
  });
});

// ---------------------------------------------------------------- AKS

const echo = (status = 201) => (_uri: string, body: unknown) => [status, { ...(body as object), metadata: { ...(body as any).metadata, resourceVersion: '1', generation: 1 } }] as [number, object];

/** A slot's Deployment (recorded), no autoscaler (num_replicas), its Service, the rollout done, its address. */
function expectAksSlot(slot: string, ip: string): { deployment?: any } {
  const seen: { deployment?: any } = {};
  const name = `wire-aks-${slot}`;
  // Key auth (AKS's default): the keys Secret the pods mount is written (created, then replaced as it is).
  if (!secret) {
    kube().get(`/api/v1${NS}/secrets/wire-aks-keys`).reply(404, notFound);
    kube().post(`/api/v1${NS}/secrets`, (b) => ((secret = validateK8s(b)), true)).reply(echo());
  } else {
    kube().get(`/api/v1${NS}/secrets/wire-aks-keys`).reply(200, () => ({ ...secret, metadata: { ...secret.metadata, resourceVersion: '2' } }));
    kube().put(`/api/v1${NS}/secrets/wire-aks-keys`, (b) => validateK8s(b).metadata.resourceVersion === '2').reply(echo(200));
  }
  kube().get(`/apis/apps/v1${NS}/deployments/${name}`).reply(404, notFound);
  kube().post(`/apis/apps/v1${NS}/deployments`, (b) => ((seen.deployment = validateK8s(b)), true)).reply(echo());
  kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/${name}`).reply(404, notFound);
  kube().get(`/api/v1${NS}/services/${name}`).reply(404, notFound);
  kube().post(`/api/v1${NS}/services`, (b) => !!validateK8s(b)).reply(echo());
  kube()
    .get(`/apis/apps/v1${NS}/deployments/${name}`)
    .reply(200, () => ({ ...seen.deployment, metadata: { ...seen.deployment.metadata, generation: 1 }, status: { observedGeneration: 1, updatedReplicas: seen.deployment.spec.replicas, availableReplicas: seen.deployment.spec.replicas } }));
  kube().get(`/api/v1${NS}/services/${name}`).reply(200, { metadata: { name }, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip }] } } });
  return seen;
}

/** The keys Secret as written (the runtime's keys.json). */
let secret: any;

/** The public Service's selector moved to `slot` (recorded), its address; then the keys Secret checked (unchanged: no write). */
function expectAksSwitch(slot: string, exists: boolean): { selector?: any } {
  const seen: { selector?: any } = {};
  kube().get(`/apis/apps/v1${NS}/deployments/wire-aks-${slot}`).reply(200, { metadata: { name: `wire-aks-${slot}` }, spec: { selector: {}, template: { spec: { containers: [{ name: 'model', ports: [{ containerPort: 5001 }] }] } } } });
  if (exists) {
    kube().get(`/api/v1${NS}/services/wire-aks`).reply(200, { metadata: { name: 'wire-aks', resourceVersion: '3' }, spec: { type: 'LoadBalancer', clusterIP: '10.0.0.9' } });
    kube().put(`/api/v1${NS}/services/wire-aks`, (b) => ((seen.selector = validateK8s(b).spec.selector), true)).reply(echo(200));
  } else {
    kube().get(`/api/v1${NS}/services/wire-aks`).reply(404, notFound);
    kube().post(`/api/v1${NS}/services`, (b) => ((seen.selector = validateK8s(b).spec.selector), true)).reply(echo());
  }
  kube().get(`/api/v1${NS}/services/wire-aks`).reply(200, { metadata: {}, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.0.0.1' }] } } });
  kube().get(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/wire-aks`).reply(404, notFound); // no rollout route: no service front
  kube().get(`/api/v1${NS}/secrets/wire-aks-keys`).reply(200, () => secret);
  return seen;
}

describe('AKS', () => {
  const credential = new FakeCredential();
  const target = new AksTarget({ clients: testClients(testConfig(), credential), config: testConfig(), timing: FAST, k8s });
  const aks = () => ctxFor(target);
  /** The blue slot's Deployment as the first deployment sent it. */
  let blue: any;

  test('a registered image deploys with its own image reference (a Deployment that passes the Kubernetes schema), no build', async () => {
    arm().get(MC).query(q(AKS_API)).reply(200, { id: MC, name: 'aks-mdf', location: 'westeurope', properties: { provisioningState: 'Succeeded', agentPoolProfiles: [{ name: 'system', count: 3, vmSize: 'Standard_D4s_v3' }] } });
    arm().post(`${MC}/listClusterUserCredential`).query(q(AKS_API)).reply(200, { kubeconfigs: [{ name: 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') }] });
    const slot = expectAksSlot('blue', '20.0.0.2');
    const smoke = expectSmokeTest('http://20.0.0.2');
    const sw = expectAksSwitch('blue', false);
    const { out } = await deployManifest(aks(), { image: builtImage.id, target: { kind: 'aks', num_replicas: 1 }, service: { name: 'wire-aks' }, smoke_test: { sample: SAMPLE, expected_output: EXPECTED } });
    expect(out.outcome).toBe('Deployed');
    expect(slot.deployment.spec.template.spec.containers[0].image).toBe('mdfregistry.azurecr.io/wireimage:1');
    blue = slot.deployment;
    expect(smoke.body).toEqual(SAMPLE);
    const keys = await services.getKeys('wire-aks');
    expect(smoke.authorization).toBe(`Bearer ${keys.primaryKey}`);
    expect(JSON.parse(Buffer.from(secret.data['keys.json'], 'base64').toString())).toEqual({ primaryKey: keys.primaryKey, secondaryKey: keys.secondaryKey });
    expect(sw.selector).toEqual({ 'mdf-service': 'wire-aks', 'mdf-slot': 'blue' });
    expect(await services.get('wire-aks')).toMatchObject({ activeSlot: 'blue', scoringUri: 'http://20.0.0.1/score' });
  });

  test('PATCH tags/description in place: no call to the cluster, the public endpoint smoke-tested with the deployment sample', async () => {
    const smoke = expectSmokeTest('http://20.0.0.1');
    const { input, out } = await patchService(aks(), 'wire-aks', { description: 'scorer', tags: { tier: 'gold' } });
    expect(input.update?.mode).toBe('inPlace');
    expect(out.outcome).toBe('Updated');
    expect(smoke.body).toEqual(SAMPLE);
    expect(smoke.authorization).toBe(`Bearer ${(await services.getKeys('wire-aks')).primaryKey}`);
    expect(await services.get('wire-aks')).toMatchObject({ activeSlot: 'blue', description: 'scorer', tags: { tier: 'gold' } });
  });

  test('PATCH num_replicas in place: the serving Deployment scaled (same pod template: no pod restarted), no new slot', async () => {
    let scaled: any;
    kube().get(`/apis/apps/v1${NS}/deployments/wire-aks-blue`).reply(200, { ...blue, metadata: { ...blue.metadata, resourceVersion: '4', generation: 1 } });
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/wire-aks-blue`).reply(404, notFound);
    kube().put(`/apis/apps/v1${NS}/deployments/wire-aks-blue`, (b) => ((scaled = validateK8s(b)), true)).reply(echo(200));
    kube()
      .get(`/apis/apps/v1${NS}/deployments/wire-aks-blue`)
      .reply(200, () => ({ ...scaled, metadata: { ...scaled.metadata, generation: 2 }, status: { observedGeneration: 2, updatedReplicas: 3, availableReplicas: 3 } }));
    kube().get(`/api/v1${NS}/services/wire-aks-blue`).reply(200, { metadata: { name: 'wire-aks-blue' }, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.0.0.2' }] } } });
    const smoke = expectSmokeTest('http://20.0.0.2');
    const { input, out } = await patchService(aks(), 'wire-aks', { num_replicas: 3 });
    expect(input.update).toEqual({ mode: 'inPlace', fields: ['num_replicas'] });
    expect(out.outcome).toBe('Updated');
    expect(scaled.spec.replicas).toBe(3);
    expect(scaled.metadata.resourceVersion).toBe('4');
    expect(scaled.spec.template).toEqual(blue.spec.template);
    expect(smoke.body).toEqual(SAMPLE);
    expect(await services.get('wire-aks')).toMatchObject({ activeSlot: 'blue', config: { numReplicas: 3 } });
  });

  test('an abandoned in-place resize is put back at takeover (resetSlotPool): the serving Deployment scaled to the record\'s size, same pod template', async () => {
    const rec = await services.get('wire-aks');
    let scaled: any;
    kube().get(`/apis/apps/v1${NS}/deployments/wire-aks-blue`).reply(200, { ...blue, spec: { ...blue.spec, replicas: 3 }, metadata: { ...blue.metadata, resourceVersion: '7', generation: 2 } });
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/wire-aks-blue`).reply(404, notFound);
    kube().put(`/apis/apps/v1${NS}/deployments/wire-aks-blue`, (b) => ((scaled = validateK8s(b)), true)).reply(echo(200));
    kube()
      .get(`/apis/apps/v1${NS}/deployments/wire-aks-blue`)
      .reply(200, () => ({ ...scaled, metadata: { ...scaled.metadata, generation: 3 }, status: { observedGeneration: 3, updatedReplicas: 1, availableReplicas: 1 } }));
    kube().get(`/api/v1${NS}/services/wire-aks-blue`).reply(200, { metadata: { name: 'wire-aks-blue' }, spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '20.0.0.2' }] } } });
    // Returns at once (the caller is the request taking the service over); the writes follow.
    expect(target.resetSlotPool('wire-aks', 'blue', { ...rec.config, numReplicas: 1 })).toBeUndefined();
    for (let i = 0; i < 400 && nock.pendingMocks().length > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(nock.pendingMocks()).toEqual([]);
    expect(scaled.spec.replicas).toBe(1);
    expect(scaled.metadata.resourceVersion).toBe('7');
    expect(scaled.spec.template).toEqual(blue.spec.template);
  });

  test('PATCH cpu_cores blue/green: a green Deployment of the same image with the new request, the selector switch, blue deleted', async () => {
    const slot = expectAksSlot('green', '20.0.0.3');
    const smoke = expectSmokeTest('http://20.0.0.3');
    const sw = expectAksSwitch('green', true);
    kube().get(`/apis/gateway.networking.k8s.io/v1${NS}/httproutes/wire-aks`).reply(404, notFound);
    kube().get(`/apis/apps/v1${NS}/deployments/wire-aks-blue`).reply(404, notFound); // read for its TLS Secret (none)
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/wire-aks-blue`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/services/wire-aks-blue`).reply(200, {});
    kube().delete(`/apis/apps/v1${NS}/deployments/wire-aks-blue`).query(true).reply(200, {});
    const { input, out } = await patchService(aks(), 'wire-aks', { cpu_cores: 1 });
    expect(input.update).toEqual({ mode: 'blueGreen', fields: ['cpu_cores'] });
    expect(out.outcome).toBe('Updated');
    const c = slot.deployment.spec.template.spec.containers[0];
    expect([slot.deployment.spec.replicas, c.image, c.resources.requests.cpu]).toEqual([3, 'mdfregistry.azurecr.io/wireimage:1', '1000m']);
    expect(smoke.body).toEqual(SAMPLE);
    expect(sw.selector).toEqual({ 'mdf-service': 'wire-aks', 'mdf-slot': 'green' });
    expect(await services.get('wire-aks')).toMatchObject({ activeSlot: 'green', description: 'scorer', config: { numReplicas: 3, cpuCores: 1 } });
  });
});
