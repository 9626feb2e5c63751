/**
 * The shadow phase on AKS at the wire (docs/azure.md, "Progressive delivery on AKS"): the service front as a
 * Deployment + ClusterIP Service behind the HTTPRoute (shared/azure/aks-front.ts), running the front's own image
 * (shared/azure/front-image.ts, built through ACR before anything is written) — its manifests checked against the
 * Kubernetes schema, the signed state writes to each of its two pods through the API server's pod proxy checked by a REAL front per pod started
 * from the Deployment the target wrote (test/azure/aks-front-world.ts) and by the front's verifier, the shadow figures
 * read back for the gate after real requests went through that front to local stand-ins of the slots, the route on
 * the front during the shadow phase and back on the slots' weights after, a retried step writing nothing, and the
 * front removed at promotion, rollback, retirement and deleteService, never while the route still points at it.
 */
import { makeFrontVerifier, FRONT_STATE_PATH } from '../../runtime/front-admin';
import { shadowWindowOf } from '../../shared/rollout/traffic';
import { FrontImage, frontImageVersion } from '../../shared/azure/front-image';
import { AcrTaskImageBuilder } from '../../shared/azure/acr-builder';
import { sha256Hex } from '../../shared/storage';
import { FRONT_IMAGE } from './aci-world';
import { AksFrontWorld, ADMIN, KEYS, type Wire } from './aks-front-world';
import { expectFrontBuild } from './front-image-build';
import { FAST, captureLog, memoryBlobs, nock, setupNock, testClients, testConfig } from './helpers';

const MIRROR = { slot: 'green', percent: 20, tolerance: 1e-6 };
const split = (route: Wire) => route.spec.rules.find((r: Wire) => !r.matches[0].headers);
const pins = (route: Wire) => route.spec.rules.filter((r: Wire) => r.matches[0].headers).map((r: Wire) => [r.matches[0].headers[0].value, r.backendRefs[0].name]);

describe('AKS shadow phase through the service front', () => {
  setupNock();
  describe('', () => {
    const w = new AksFrontWorld();
    /** Local stand-ins of the slots' Services: blue answers y = 2x, green too except for inputs ≥ `greenWrongFrom`. */
    let greenWrongFrom = Infinity;
    let stands: Awaited<ReturnType<AksFrontWorld['standIns']>>;
    let hits: Record<string, Array<string | undefined>>;
    beforeAll(async () => {
      stands = await w.standIns((slot, x) => ({ y: slot === 'green' && x >= greenWrongFrom ? -1 : 2 * x }));
      hits = stands.hits;
      nock.enableNetConnect((host) => host.startsWith('127.0.0.1') || host.includes('.svc.cluster.local'));
    });
    afterAll(async () => {
      w.dispose();
      await stands.close();
    });
    afterEach(async () => {
      greenWrongFrom = Infinity;
      hits.blue.length = 0;
      hits.green.length = 0;
      await w.reset();
    });

    /** Live requests through the real front; the client always gets the serving slot's answer. */
    async function traffic(n: number): Promise<void> {
      const answers = await w.traffic(n);
      expect(answers).toEqual(answers.map((_a, x) => ({ y: 2 * x })));
    }

    test('the shadow step: front Secret, Deployment and Service (schema-valid), PodDisruptionBudget, signed reads through the pod proxy of each of its two pods, then the route on the front; a retried step writes nothing; a new routing written to each pod', async () => {
      const target = w.setup();
      const snap = await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      // The front's own image was asked for before anything was written.
      expect(w.frontImageAsked).toEqual([0]);
      expect(w.log).toEqual([
        'POST secrets diabetes-front',
        'POST deployments diabetes-front',
        'POST poddisruptionbudgets diabetes-front',
        'POST services diabetes-front',
        // Signed, through each pod's proxy: both pods run and check keys; their state (from creation) is already right.
        'front a GET',
        'front b GET',
        'POST httproutes diabetes',
      ]);
      // The Secret: the admin key only (derived from the service's token secret, never the token secret itself).
      expect(w.get('secrets', 'diabetes-front')!.data).toEqual({ adminKey: Buffer.from(ADMIN).toString('base64') });
      // The Deployment: two replicas (spread over nodes) of the front's own image (neither blue's nor green's) running front-cli.js, the keys Secret mounted as the slots do.
      const dep = w.get('deployments', 'diabetes-front')!;
      expect(dep.metadata.labels).toMatchObject({ 'mdf-service': 'diabetes', 'mdf-role': 'front', 'mdf-managed-by': 'model-deploy-flow' });
      expect(dep.spec.replicas).toBe(2);
      expect(dep.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm).toEqual({
        topologyKey: 'kubernetes.io/hostname',
        labelSelector: { matchLabels: { 'mdf-service': 'diabetes', 'mdf-role': 'front' } },
      });
      // The PodDisruptionBudget: a drain evicts a front pod only while the other one serves.
      expect(w.get('poddisruptionbudgets', 'diabetes-front')!.spec).toEqual({ minAvailable: 1, selector: { matchLabels: { 'mdf-service': 'diabetes', 'mdf-role': 'front' } } });
      expect(dep.spec.selector.matchLabels).toEqual({ 'mdf-service': 'diabetes', 'mdf-role': 'front' });
      const pod = dep.spec.template.spec;
      expect(pod.automountServiceAccountToken).toBe(false);
      const c = pod.containers[0];
      expect([c.name, c.image, c.command]).toEqual(['front', FRONT_IMAGE, ['node', '/var/azureml-app/app/dist/runtime/front-cli.js']]);
      expect(c.readinessProbe).toEqual({ tcpSocket: { port: 5001 }, periodSeconds: 2, failureThreshold: 3 });
      expect(c.livenessProbe).toBeUndefined();
      const env = Object.fromEntries(c.env.map((e: Wire) => [e.name, e.value ?? e.valueFrom]));
      expect(env.MDF_FRONT_ADMIN_KEY).toEqual({ secretKeyRef: { name: 'diabetes-front', key: 'adminKey' } });
      expect(env.MDF_KEYS_FILE).toBe('/var/run/secrets/mdf-keys/keys.json');
      expect(env.MDF_PRIMARY_KEY).toBeUndefined();
      expect(JSON.parse(env.MDF_FRONT_STATE)).toMatchObject({ generation: 1, serving: 'blue', mirror: MIRROR });
      expect(JSON.stringify(dep)).not.toContain(ADMIN);
      expect(JSON.stringify(dep)).not.toContain(KEYS.primaryKey);
      expect(pod.volumes).toEqual([{ name: 'state', emptyDir: {} }, { name: 'keys', secret: { secretName: 'diabetes-keys', items: [{ key: 'keys.json', path: 'keys.json' }], defaultMode: 0o440 } }]);
      // The Service: ClusterIP, port 80 to the front's 5001.
      expect(w.get('services', 'diabetes-front')!.spec).toEqual({ type: 'ClusterIP', selector: { 'mdf-service': 'diabetes', 'mdf-role': 'front' }, ports: [{ name: 'http', port: 80, targetPort: 5001, protocol: 'TCP' }] });
      // The state each real front pod holds: the slots by their Services' cluster names, all live traffic on blue, 20 % copied.
      expect(w.runningFronts).toHaveLength(2);
      for (const f of w.runningFronts) expect(f.state()).toEqual({
        generation: 1,
        serving: 'blue',
        slots: { blue: 'http://diabetes-blue.models.svc.cluster.local', green: 'http://diabetes-green.models.svc.cluster.local' },
        weights: { blue: 100, green: 0 },
        mirror: MIRROR,
      });
      // Signed with the admin key over the front's own path (the proxy forwards it): the verifier accepts it, a
      // verifier with another key does not.
      const get = w.signed[0];
      expect([get.method, get.path, get.body]).toEqual(['GET', FRONT_STATE_PATH, '']);
      expect(makeFrontVerifier(ADMIN)('GET', get.path, get.body, get.header)).toBe(true);
      expect(makeFrontVerifier('another-admin-key-0123456789')('GET', get.path, get.body, get.header)).toBe(false);
      // The route: all live traffic to the front; pinned requests still straight to each slot.
      const route = w.get('httproutes', 'diabetes')!;
      expect(split(route).backendRefs).toEqual([{ group: '', kind: 'Service', name: 'diabetes-front', port: 80, weight: 1 }]);
      expect(pins(route)).toEqual([['blue', 'diabetes-blue'], ['green', 'diabetes-green']]);
      expect(route.metadata.annotations).toEqual({ 'model-deploy-flow/serving': 'blue', 'model-deploy-flow/front-weights': 'blue=100,green=0' });
      // The figures: the front's weights and mirror, each slot's /metrics.
      expect(snap).toMatchObject({ weights: { blue: 100, green: 0 }, serving: 'blue', mirror: { slot: 'green', percent: 20 }, slots: { blue: { requests: 1000 }, green: { requests: 0 } } });
      expect(snap.epoch).toMatch(/^aks-[0-9a-f]{16}$/);
      expect(w.logs.lines).toContain('traffic of diabetes: blue=100%, green=0%, 20% mirrored to green through the service front');
      expect(w.logs.lines.join('\n')).not.toContain(ADMIN);

      // The activity retried (the same step again): nothing written, the same epoch.
      const again = await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      expect(w.log.slice(7)).toEqual(['front a GET', 'front b GET']);
      expect(again.epoch).toBe(snap.epoch);

      // Another routing for the same front (here a larger share): one signed PUT, generation + 1, nothing else written
      // (the Deployment's digest leaves the state at creation out: the front is not restarted).
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: { ...MIRROR, percent: 50 } });
      expect(w.log.slice(9)).toEqual(['front a GET', 'front b GET', 'front a PUT g2 {"blue":100,"green":0} mirror green 50%', 'front b PUT g2 {"blue":100,"green":0} mirror green 50%']);
      for (const f of w.runningFronts) expect(f.state()).toMatchObject({ generation: 2, mirror: { slot: 'green', percent: 50 } });
      const put = w.signed.find((x) => x.method === 'PUT')!;
      expect(put.path).toBe(FRONT_STATE_PATH);
      expect(makeFrontVerifier(ADMIN)('PUT', put.path, put.body, put.header)).toBe(true);
      expect(makeFrontVerifier(ADMIN)('PUT', put.path, put.body.replace('"percent":50', '"percent":90'), put.header)).toBe(false);
      expect(makeFrontVerifier('another-admin-key-0123456789')('PUT', put.path, put.body, put.header)).toBe(false);
    });

    test('the shadow figures for the gate: live requests through both front pods, 20 % copied to green and compared off the client path; read back from each pod and summed', async () => {
      const target = w.setup();
      const start = await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      greenWrongFrom = 20; // green answers wrong for x ≥ 20
      await traffic(50);
      // The front forwards with the primary key; the client's own key never reaches a slot.
      expect(new Set(hits.blue)).toEqual(new Set([`Bearer ${KEYS.primaryKey}`]));
      const end = await target.trafficSnapshot('diabetes');
      expect(end.epoch).toBe(start.epoch);
      const shadow = shadowWindowOf(start, end, 'green');
      // Each pod got 25 requests (in turn) and copied its 5th, 10th, …: x = 8, 18, …, 48 and 9, 19, …, 49; those from
      // 28 on disagree (3 per pod). The figures are both pods' counts summed.
      const own = w.runningFronts.map((f) => f.front.snapshot().shadow!.green);
      expect(own.map((o) => [o.mirrored, o.disagreed])).toEqual([[5, 3], [5, 3]]);
      expect(shadow).toMatchObject({ mirrored: 10, compared: 10, disagreed: 6, disagreement: 0.6, errors: 0 });
      expect(hits.green).toHaveLength(10);
      expect(end.slots.blue.requests - start.slots.blue.requests).toBe(50);
      expect(w.changes).toHaveLength(5); // reading figures writes nothing
    });

    test('replaced front pods (new pods, no saved state) count from zero: the epoch changes, the step set again finds the shadow state already in force (from the Deployment) and writes nothing', async () => {
      const target = w.setup();
      const first = await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      // The kubelet starts new pods from the Deployment.
      await w.replaceFrontPod('diabetes-front-a', 'diabetes-front-c');
      await w.replaceFrontPod('diabetes-front-b', 'diabetes-front-d');
      const after = await target.trafficSnapshot('diabetes');
      expect(after.epoch).not.toBe(first.epoch);
      const n = w.changes.length;
      const again = await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      expect(w.changes.slice(n)).toEqual([]);
      expect(again).toMatchObject({ epoch: after.epoch, mirror: { slot: 'green', percent: 20 } });
      for (const f of w.runningFronts) expect(f.state()).toMatchObject({ generation: 1, serving: 'blue', mirror: MIRROR });
    });

    test('a front pod replaced mid-phase (a node drain) starts with the state at creation: the next read gives it the current state (it alone), the window starts over, and the figures are both pods\' again', async () => {
      const target = w.setup();
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      // The shadow share raised: both pods written (generation 2); the Deployment keeps the state at creation (20 %).
      const raised = { ...MIRROR, percent: 50 };
      const before = await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: raised });
      await w.traffic(20);
      await w.replaceFrontPod('diabetes-front-b', 'diabetes-front-c');
      const n = w.log.length;
      const start = await target.trafficSnapshot('diabetes');
      // Only the new pod was written: the newest state among the pods (a's, generation 2), as its generation 1 + 1.
      expect(w.log.slice(n)).toEqual(['front a GET', 'front c GET', 'front c PUT g2 {"blue":100,"green":0} mirror green 50%']);
      expect(w.runningFronts.map((f) => f.state())).toEqual([expect.objectContaining({ generation: 2, mirror: raised }), expect.objectContaining({ generation: 2, mirror: raised })]);
      expect(start.epoch).not.toBe(before.epoch);
      expect(start).toMatchObject({ mirror: { slot: 'green', percent: 50 } });
      // A read again writes nothing; live traffic through both pods: half copied by each, summed.
      greenWrongFrom = 100;
      await w.traffic(40, 100);
      const end = await target.trafficSnapshot('diabetes');
      expect(w.log.slice(n + 3)).toEqual(['front a GET', 'front c GET']);
      expect(end.epoch).toBe(start.epoch);
      expect(shadowWindowOf(start, end, 'green')).toMatchObject({ mirrored: 20, compared: 20, disagreed: 20, errors: 0 });
    });

    test('after the shadow phase the steps go back to weights on the route; promotion then retirement remove the front (route first)', async () => {
      const target = w.setup();
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      const n = w.changes.length;
      const step = await target.setTrafficWeights('diabetes', { blue: 90, green: 10 });
      expect(w.changes.slice(n)).toEqual(['PUT httproutes diabetes']);
      const route = w.get('httproutes', 'diabetes')!;
      expect(split(route).backendRefs.map((b: Wire) => [b.name, b.weight])).toEqual([['diabetes-blue', 90], ['diabetes-green', 10]]);
      expect(route.metadata.annotations).toEqual({ 'model-deploy-flow/serving': 'blue' });
      expect(step.mirror).toBeUndefined();
      expect(step.shadow).toBeUndefined();
      // The front stays (idle) until the rollout ends: the Gateway may still send a request there for a moment.
      expect(w.get('deployments', 'diabetes-front')).toBeDefined();
      await target.setTrafficWeights('diabetes', { blue: 0, green: 100 });
      const m = w.changes.length;
      await target.switchTraffic('diabetes', 'green');
      expect(w.changes.slice(m)).toEqual(['PUT services diabetes', 'DELETE services diabetes-front', 'DELETE deployments diabetes-front', 'DELETE poddisruptionbudgets diabetes-front', 'DELETE secrets diabetes-front']);
      await target.deleteSlot('diabetes', 'blue');
      expect(w.changes.slice(m + 5)).toEqual(['PUT httproutes diabetes', 'DELETE services diabetes-blue', 'DELETE deployments diabetes-blue']);
      expect(split(w.get('httproutes', 'diabetes')!).backendRefs.map((b: Wire) => b.name)).toEqual(['diabetes-green']);
    });

    test('rollback from the shadow phase: the weights back on the slots (the route leaves the front), then the switch back removes the front and the new slot goes', async () => {
      const target = w.setup();
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      const n = w.changes.length;
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 });
      await target.switchTraffic('diabetes', 'blue');
      await target.deleteSlot('diabetes', 'green');
      expect(w.changes.slice(n)).toEqual([
        'PUT httproutes diabetes',
        'PUT services diabetes',
        'DELETE services diabetes-front',
        'DELETE deployments diabetes-front',
        'DELETE poddisruptionbudgets diabetes-front',
        'DELETE secrets diabetes-front',
        'PUT httproutes diabetes',
        'DELETE services diabetes-green',
        'DELETE deployments diabetes-green',
      ]);
      expect(split(w.get('httproutes', 'diabetes')!).backendRefs.map((b: Wire) => [b.name, b.weight])).toEqual([['diabetes-blue', 100]]);
    });

    test('a rollback whose weights never reached the route: deleting the new slot puts the route on the serving slot before the front goes', async () => {
      const target = w.setup();
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      const n = w.changes.length;
      await target.deleteSlot('diabetes', 'green');
      expect(w.changes.slice(n)).toEqual(['PUT httproutes diabetes', 'DELETE services diabetes-front', 'DELETE deployments diabetes-front', 'DELETE poddisruptionbudgets diabetes-front', 'DELETE secrets diabetes-front', 'DELETE services diabetes-green', 'DELETE deployments diabetes-green']);
      const route = w.get('httproutes', 'diabetes')!;
      expect(split(route).backendRefs.map((b: Wire) => [b.name, b.weight])).toEqual([['diabetes-blue', 100]]);
      expect(route.metadata.annotations['model-deploy-flow/front-weights']).toBeUndefined();
    });

    test('deleteService during a shadow phase removes the front (Deployment and Service by the service label, its PodDisruptionBudget and Secret by name) and the route', async () => {
      const target = w.setup();
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      await target.deleteService('diabetes');
      expect([...w.objects.keys()].filter((k) => k.includes('diabetes-front') || k === 'httproutes/diabetes')).toEqual([]);
    });

    test('a front that cannot pull its image never gets traffic: FrontStartFailed, the front removed, no route written; one that stops pulling later fails the gate read with FrontImageUnavailable', async () => {
      const target = w.setup();
      w.frontPullFails = true;
      await expect(target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR })).rejects.toMatchObject({
        code: 'FrontStartFailed',
        retryable: false,
        message: expect.stringMatching(/image mdfregistry\.azurecr\.io\/mdf-system\/front:123456789.*ImagePullFailed.*cannot pull.*the serving version keeps serving/s),
      });
      expect(w.changes).toEqual(['POST secrets diabetes-front', 'POST deployments diabetes-front', 'POST poddisruptionbudgets diabetes-front', 'POST services diabetes-front', 'DELETE services diabetes-front', 'DELETE deployments diabetes-front', 'DELETE poddisruptionbudgets diabetes-front', 'DELETE secrets diabetes-front']);
      expect(w.get('httproutes', 'diabetes')).toBeUndefined();

      w.frontPullFails = false;
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      w.frontPullFails = true; // the pod rescheduled, its image gone from the registry (forced deletion)
      await expect(target.trafficSnapshot('diabetes')).rejects.toMatchObject({ code: 'FrontImageUnavailable', retryable: false, message: expect.stringMatching(/rolls back.*mdf-system\/front.*AcrPull/s) });
    });

    test('the first front of a runtime version builds mdf-system/front:<n> through ACR before anything is written, whatever image the serving slot runs; a failed build leaves the service as it was', async () => {
      const blobs = memoryBlobs();
      const images = () => new FrontImage({ builder: new AcrTaskImageBuilder({ clients: testClients(), config: testConfig(), blobs, timing: FAST, log: captureLog().log }), blobs });
      // A failed build: FrontImageBuildFailed with the build's log, nothing written to the cluster, no route.
      expectFrontBuild('ak1', 'Failed');
      let target = w.setup({ frontImage: images() });
      const failure = await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR }).catch((e) => e);
      expect(failure.code).toBe('FrontImageBuildFailed');
      expect(failure.message).toMatch(/mdf-system\/front:\d+ did not build: ACR run ak1 [^]*npm ERR! network unreachable/);
      expect(w.log).toEqual([]);
      expect([...w.objects.keys()].filter((k) => k.includes('diabetes-front') || k.startsWith('httproutes/'))).toEqual([]);
      await w.reset();

      // A build that succeeds (a fresh record: another build's context blob): the front's Deployment runs that image.
      const ok = memoryBlobs();
      const seen = expectFrontBuild('ak2', 'Succeeded');
      target = w.setup({ frontImage: new FrontImage({ builder: new AcrTaskImageBuilder({ clients: testClients(), config: testConfig(), blobs: ok, timing: FAST, log: captureLog().log }), blobs: ok }) });
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      const version = frontImageVersion(sha256Hex(seen.uploaded!));
      expect(seen.run?.imageNames).toEqual([`mdf-system/front:${version}`]);
      expect(w.frontImageAsked).toEqual([0]);
      expect(w.get('deployments', 'diabetes-front')!.spec.template.spec.containers[0].image).toBe(`mdfregistry.azurecr.io/mdf-system/front:${version}`);
      expect(w.front!.state()).toMatchObject({ serving: 'blue', mirror: MIRROR });
      expect(split(w.get('httproutes', 'diabetes')!).backendRefs.map((b: Wire) => b.name)).toEqual(['diabetes-front']);
    });

    test('a shadow step with a mirror outside the weighted slots or a bad share is refused before any call', async () => {
      const target = w.setup();
      for (const mirror of [{ ...MIRROR, slot: 'purple' }, { ...MIRROR, percent: 0 }, { ...MIRROR, percent: 101 }, { ...MIRROR, percent: 2.5 }, { ...MIRROR, tolerance: -1 }]) {
        await expect(target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror })).rejects.toMatchObject({ code: 'InvalidTrafficWeights', httpStatus: 400 });
      }
      expect(w.log).toEqual([]);
    });

    test('a front that does not say what it checks of callers is refused before any traffic moves; a service without auth gets a front without keys', async () => {
      let target = w.setup();
      w.legacyFront = true;
      await expect(target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR })).rejects.toMatchObject({ code: 'FrontStartFailed', message: expect.stringContaining('does not say what it checks of callers') });
      expect(w.get('deployments', 'diabetes-front')).toBeUndefined();
      expect(w.get('httproutes', 'diabetes')).toBeUndefined();
      await w.reset();

      target = w.setup({ auth: false });
      await target.setTrafficWeights('diabetes', { blue: 100, green: 0 }, { mirror: MIRROR });
      const dep = w.get('deployments', 'diabetes-front')!;
      expect(dep.spec.template.spec.volumes).toEqual([{ name: 'state', emptyDir: {} }]);
      expect(dep.spec.template.spec.containers[0].env.map((e: Wire) => e.name)).not.toContain('MDF_KEYS_FILE');
      expect(w.front!.front.auth).toBe('none');
    });
  });
});
