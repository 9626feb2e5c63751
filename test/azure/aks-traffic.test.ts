/**
 * Progressive delivery on AKS at the wire: the Gateway API HTTPRoute the target writes at each step (weights,
 * the `azureml-model-deployment` pin rules, rollback to 0 %), checked against the HTTPRoute schema of the Gateway
 * API CRDs (vendored excerpt, test/azure/schemas/httproute-v1.schema.json); the gate figures read from every pod's
 * runtime /metrics through the API server's pod proxy; and the refusals (no Gateway, bad weights, a missing slot)
 * before anything is written. The shadow phase (the service front behind the route) is in aks-shadow.test.ts.
 */
import Ajv from 'ajv';
import { AksTarget } from '../../shared/azure/aks-target';
import { slotTrafficFromMetrics } from '../../shared/azure/aks-traffic';
import { LATENCY_BOUNDS_MS, windowOf, type TrafficSnapshot } from '../../shared/rollout/traffic';
import { createHmac } from 'node:crypto';
import { FAST, FakeCredential, TOKEN, arm, q, setupNock, testClients, testConfig, nock } from './helpers';
import routeSchema from './schemas/httproute-v1.schema.json';
import { k8s, AKS_API, MC, KUBE, NS, kube, notFound, kubeconfig } from './aks-world';


const GW = `/apis/gateway.networking.k8s.io/v1${NS}`;


const validateRoute = new Ajv({ allErrors: true, strict: false }).compile(routeSchema);
const expectValidRoute = (body: unknown) => {
  const ok = validateRoute(body);
  expect(validateRoute.errors ?? []).toEqual([]);
  expect(ok).toBe(true);
};


function makeTarget() {
  const credential = new FakeCredential();
  arm().get(MC).query(q(AKS_API)).reply(200, { id: MC, name: 'aks-mdf', location: 'westeurope', properties: { provisioningState: 'Succeeded', agentPoolProfiles: [{ name: 'system', count: 3, vmSize: 'Standard_D3_v2' }] } });
  arm()
    .post(`${MC}/listClusterUserCredential`)
    .query(q(AKS_API))
    .reply(200, { kubeconfigs: [{ name: 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') }] });
  const logs: string[] = [];
  const target = new AksTarget({ clients: testClients(testConfig(), credential), config: testConfig(), timing: FAST, k8s, log: (m) => logs.push(m) });
  return { target, logs };
}

/** The runtime's /metrics text (runtime/metrics.ts) for `ok` 200s and `failed` 500s on /score, all within `le` s. */
function metrics(ok: number, failed: number, le = 0.025): string {
  const total = ok + failed;
  const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  return [
    '# HELP scoring_requests_total HTTP requests handled, by route and status.',
    '# TYPE scoring_requests_total counter',
    `scoring_requests_total{route="score",status="200"} ${ok}`,
    ...(failed ? [`scoring_requests_total{route="score",status="500"} ${failed}`] : []),
    'scoring_requests_total{route="health",status="200"} 999',
    '# TYPE scoring_request_duration_seconds histogram',
    ...buckets.map((b) => `scoring_request_duration_seconds_bucket{route="score",le="${b}"} ${b >= le ? total : 0}`),
    `scoring_request_duration_seconds_bucket{route="score",le="+Inf"} ${total}`,
    `scoring_request_duration_seconds_sum{route="score"} ${total * le}`,
    `scoring_request_duration_seconds_count{route="score"} ${total}`,
    'scoring_request_duration_seconds_bucket{route="health",le="+Inf"} 999',
    '',
  ].join('\n');
}

interface Pod {
  name: string;
  uid: string;
  restarts?: number;
  /** Not ready: listed, but not read (it takes no traffic). */
  unready?: boolean;
  text: string;
}

/**
 * The keys Secret (absent: no auth) then the slots' pods and their /metrics (one list call per slot, one proxy call
 * per running pod; with `metricsKey`, only a proxy call carrying that x-mdf-metrics-key header is answered).
 */
function expectFigures(pods: Record<string, Pod[]>, keysJson?: object, metricsKey?: string) {
  if (keysJson) kube().get(`/api/v1${NS}/secrets/diabetes-keys`).reply(200, { metadata: { name: 'diabetes-keys' }, data: { 'keys.json': Buffer.from(JSON.stringify(keysJson)).toString('base64') } });
  else kube().get(`/api/v1${NS}/secrets/diabetes-keys`).reply(404, notFound);
  for (const [slot, list] of Object.entries(pods)) {
    kube()
      .get(`/api/v1${NS}/pods`)
      .query({ labelSelector: `mdf-service=diabetes,mdf-slot=${slot}` })
      .reply(200, {
        items: list.map((p) => ({
          metadata: { name: p.name, uid: p.uid },
          spec: { containers: [{ name: 'model', image: 'x', ports: [{ name: 'http', containerPort: 5001 }] }] },
          status: { phase: 'Running', containerStatuses: [{ name: 'model', image: 'x', imageID: '', ready: !p.unready, restartCount: p.restarts ?? 0 }] },
        })),
      });
    for (const p of list.filter((x) => !x.unready)) {
      const scope = metricsKey ? nock(KUBE, { reqheaders: { authorization: `Bearer ${TOKEN}`, 'x-mdf-metrics-key': metricsKey } }) : kube();
      scope.get(`/api/v1${NS}/pods/${p.name}%3A5001/proxy/metrics`).reply(200, p.text, { 'content-type': 'text/plain; version=0.0.4' });
    }
  }
}

/** One setTrafficWeights: the slots exist, the Gateway exists, the route is read then written (then expectFigures). */
function expectStep(slots: string[], route: 'create' | 'replace', bodies: unknown[]) {
  for (const s of slots) kube().get(`/apis/apps/v1${NS}/deployments/diabetes-${s}`).reply(200, { metadata: { name: `diabetes-${s}` } });
  kube().get(`${GW}/gateways/mdf-gateway`).reply(200, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'mdf-gateway' } });
  const record = (b: unknown) => (bodies.push(b), true);
  if (route === 'create') {
    kube().get(`${GW}/httproutes/diabetes`).reply(404, notFound);
    kube().post(`${GW}/httproutes`, record).reply(201, (_u, b) => b as object);
  } else {
    kube().get(`${GW}/httproutes/diabetes`).reply(200, { ...(bodies[bodies.length - 1] as object), metadata: { ...(bodies[bodies.length - 1] as any).metadata, resourceVersion: String(bodies.length) } });
    kube().put(`${GW}/httproutes/diabetes`, record).reply(200, (_u, b) => b as object);
  }
}

const split = (route: any) => route.spec.rules.find((r: any) => !r.matches[0].headers);
const pins = (route: any) => route.spec.rules.filter((r: any) => r.matches[0].headers).map((r: any) => [r.matches[0].headers[0].name, r.matches[0].headers[0].value, r.backendRefs[0].name]);

describe('AKS progressive delivery (Gateway API HTTPRoute)', () => {
  setupNock();

  test('canary 10 → 50 → 100: one route per step with the weights and the pin rules, each valid against the HTTPRoute schema', async () => {
    const { target, logs } = makeTarget();
    const bodies: any[] = [];
    const figures = { blue: [{ name: 'diabetes-blue-a', uid: 'u-b1', text: metrics(0, 0) }], green: [{ name: 'diabetes-green-a', uid: 'u-g1', text: metrics(0, 0) }] };
    for (const [i, w] of [10, 50, 100].entries()) {
      expectStep(['blue', 'green'], i === 0 ? 'create' : 'replace', bodies);
      expectFigures(figures);
      const snap = await target.setTrafficWeights('diabetes', { blue: 100 - w, green: w });
      expect(snap.weights).toEqual({ blue: 100 - w, green: w });
      expect(snap.serving).toBe(w > 50 ? 'green' : 'blue');
    }
    expect(bodies).toHaveLength(3);
    bodies.forEach(expectValidRoute);
    expect(bodies.map((b) => split(b).backendRefs.map((r: any) => [r.name, r.weight]))).toEqual([
      [['diabetes-blue', 90], ['diabetes-green', 10]],
      [['diabetes-blue', 50], ['diabetes-green', 50]],
      [['diabetes-blue', 0], ['diabetes-green', 100]],
    ]);
    const route = bodies[0];
    expect(route.spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'mdf-gateway', namespace: 'models' }]);
    expect(split(route).matches).toEqual([{ path: { type: 'PathPrefix', value: '/services/diabetes' } }]);
    // Live requests lose any pinned mark (no caller hides its requests from the gates); pinned ones get it (the runtime
    // counts them apart: a test of the 0 % version never weighs in a gate).
    expect(split(route).filters).toEqual([
      { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } },
      { type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['x-mdf-pinned'] } },
    ]);
    for (const rule of route.spec.rules.filter((r: any) => r.matches[0].headers)) expect(rule.filters[1]).toEqual({ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-mdf-pinned', value: '1' }] } });
    expect(bodies[1].metadata.resourceVersion).toBe('1');
    expect(logs).toContain('traffic of diabetes: blue=90%, green=10%');
  });

  test('a pinned request reaches its slot at 0 %: a header match rule per slot; rollback puts the new slot back to 0', async () => {
    const { target } = makeTarget();
    const bodies: any[] = [];
    const figures = { blue: [{ name: 'diabetes-blue-a', uid: 'u-b1', text: metrics(5, 0) }], green: [{ name: 'diabetes-green-a', uid: 'u-g1', text: metrics(1, 0) }] };
    expectStep(['blue', 'green'], 'create', bodies);
    expectFigures(figures);
    await target.setTrafficWeights('diabetes', { blue: 90, green: 10 });
    expectStep(['blue', 'green'], 'replace', bodies);
    expectFigures(figures);
    const back = await target.setTrafficWeights('diabetes', { blue: 100, green: 0 });
    expect(back.weights).toEqual({ blue: 100, green: 0 });
    bodies.forEach(expectValidRoute);
    const rolledBack = bodies[1];
    expect(split(rolledBack).backendRefs.map((r: any) => [r.name, r.weight])).toEqual([['diabetes-blue', 100], ['diabetes-green', 0]]);
    expect(pins(rolledBack)).toEqual([
      ['azureml-model-deployment', 'blue', 'diabetes-blue'],
      ['azureml-model-deployment', 'green', 'diabetes-green'],
    ]);
    // Pin rules come first and have the same path plus a header: Gateway API gives them precedence.
    expect(rolledBack.spec.rules.findIndex((r: any) => !r.matches[0].headers)).toBe(2);
  });

  test('retiring a slot after the rollout takes it out of the route (never a backend without a Service)', async () => {
    const { target } = makeTarget();
    const bodies: any[] = [];
    expectStep(['blue', 'green'], 'create', bodies);
    expectFigures({ blue: [], green: [] });
    await target.setTrafficWeights('diabetes', { blue: 0, green: 100 });
    kube().get(`${GW}/httproutes/diabetes`).reply(200, { ...bodies[0], metadata: { ...bodies[0].metadata, resourceVersion: '9' } });
    kube().put(`${GW}/httproutes/diabetes`, (b) => (bodies.push(b), true)).reply(200, (_u, b) => b as object);
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-blue`).reply(404, notFound);
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-blue`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/services/diabetes-blue`).reply(200, {});
    kube().delete(`/apis/apps/v1${NS}/deployments/diabetes-blue`).query(true).reply(200, {});
    kube().get(`/api/v1${NS}/secrets/diabetes-front`).reply(404, notFound); // no service front to remove
    await target.deleteSlot('diabetes', 'blue');
    expectValidRoute(bodies[1]);
    expect(bodies[1].metadata.resourceVersion).toBe('9');
    expect(bodies[1].spec.rules.map((r: any) => r.backendRefs.map((b: any) => `${b.name}=${b.weight}`))).toEqual([['diabetes-green=1'], ['diabetes-green=100']]);
    // A slot that still has live traffic is left in the route (the rollout owns the weights).
    kube().get(`${GW}/httproutes/diabetes`).reply(200, bodies[0]);
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(404, notFound);
    kube().delete(`/apis/autoscaling/v2${NS}/horizontalpodautoscalers/diabetes-green`).reply(404, notFound);
    kube().delete(`/api/v1${NS}/services/diabetes-green`).reply(200, {});
    kube().delete(`/apis/apps/v1${NS}/deployments/diabetes-green`).query(true).reply(200, {});
    kube().get(`/api/v1${NS}/secrets/diabetes-front`).reply(404, notFound);
    await target.deleteSlot('diabetes', 'green');
    expect(bodies).toHaveLength(2);
  });

  test('the gate figures: every pod of a slot read through the pod proxy and summed; 5xx are errors; the window gives the rate and p99', async () => {
    const { target } = makeTarget();
    const route = { metadata: { name: 'diabetes', annotations: { 'model-deploy-flow/serving': 'blue' } }, spec: { rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/services/diabetes' }, headers: [{ type: 'Exact', name: 'azureml-model-deployment', value: 'blue' }] }], backendRefs: [{ name: 'diabetes-blue', port: 80, weight: 1 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/services/diabetes' }, headers: [{ type: 'Exact', name: 'azureml-model-deployment', value: 'green' }] }], backendRefs: [{ name: 'diabetes-green', port: 80, weight: 1 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/services/diabetes' } }], backendRefs: [{ name: 'diabetes-blue', port: 80, weight: 90 }, { name: 'diabetes-green', port: 80, weight: 10 }] },
    ] } };
    kube().get(`${GW}/httproutes/diabetes`).reply(200, route);
    expectFigures({ blue: [{ name: 'diabetes-blue-a', uid: 'b1', text: metrics(100, 0) }], green: [{ name: 'diabetes-green-a', uid: 'g1', text: metrics(10, 0) }, { name: 'diabetes-green-b', uid: 'g2', text: metrics(10, 0) }] });
    const start = await target.trafficSnapshot('diabetes');
    kube().get(`${GW}/httproutes/diabetes`).reply(200, route);
    expectFigures({ blue: [{ name: 'diabetes-blue-a', uid: 'b1', text: metrics(1000, 0) }], green: [{ name: 'diabetes-green-a', uid: 'g1', text: metrics(60, 3, 0.25) }, { name: 'diabetes-green-b', uid: 'g2', text: metrics(60, 2, 0.25) }] });
    const end: TrafficSnapshot = await target.trafficSnapshot('diabetes');
    expect(end.epoch).toBe(start.epoch);
    expect(end.weights).toEqual({ blue: 90, green: 10 });
    expect(end.serving).toBe('blue');
    expect(end.slots.green).toMatchObject({ requests: 125, errors: 5 });
    const g = windowOf(start, end, 'green');
    expect(g).toMatchObject({ requests: 105, errors: 5, errorRate: 5 / 105 });
    // Re-bucketed at the runtime's bucket bound (250 ms): never below the true p99.
    expect(g.p99Ms).toBeGreaterThanOrEqual(250);
    expect(g.p99Ms).toBeLessThan(250 * 1.25);
    expect(windowOf(start, end, 'blue')).toMatchObject({ requests: 900, errors: 0 });
  });

  test('a pod that restarts, a new pod once ready or a pod gone keeps the window: each pod is diffed on its own (an autoscaler never restarts a step)', async () => {
    const { target } = makeTarget();
    const route = { metadata: { name: 'diabetes' }, spec: { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/services/diabetes' } }], backendRefs: [{ name: 'diabetes-green', port: 80, weight: 100 }] }] } };
    const read = async (pods: Parameters<typeof expectFigures>[0]['green']) => {
      kube().get(`${GW}/httproutes/diabetes`).reply(200, route);
      expectFigures({ green: pods });
      return target.trafficSnapshot('diabetes');
    };
    const a = await read([{ name: 'diabetes-green-a', uid: 'g1', text: metrics(10, 0) }]);
    expect(a.epoch).toMatch(/^aks-[0-9a-f]{16}$/);
    // g1 restarted (its counters start over): counted from zero, not as 1 − 10.
    const b = await read([{ name: 'diabetes-green-a', uid: 'g1', restarts: 1, text: metrics(1, 1) }]);
    expect(b.epoch).toBe(a.epoch);
    expect(windowOf(a, b, 'green')).toMatchObject({ requests: 2, errors: 1 });
    // A second pod that is not ready yet is not read and does not count.
    const c = await read([{ name: 'diabetes-green-a', uid: 'g1', restarts: 1, text: metrics(3, 1) }, { name: 'diabetes-green-b', uid: 'g2', unready: true, text: '' }]);
    expect(c.slots.green.requests).toBe(4);
    expect(windowOf(a, c, 'green')).toMatchObject({ requests: 4, errors: 1 });
    // Once ready it counts from zero; the window goes on.
    const d = await read([{ name: 'diabetes-green-a', uid: 'g1', restarts: 1, text: metrics(4, 1) }, { name: 'diabetes-green-b', uid: 'g2', text: metrics(1, 0) }]);
    expect(d.epoch).toBe(a.epoch);
    expect(windowOf(a, d, 'green')).toMatchObject({ requests: 6, errors: 1 });
    expect(windowOf(c, d, 'green')).toMatchObject({ requests: 2, errors: 0 });
    // Scaled down: g2 is gone; g1's own difference is the window (no negative count from the sum falling).
    const e = await read([{ name: 'diabetes-green-a', uid: 'g1', restarts: 1, text: metrics(6, 1) }]);
    expect(e.slots.green.requests).toBe(7);
    expect(windowOf(d, e, 'green')).toMatchObject({ requests: 2, errors: 0 });
  });

  test('a service with key or token auth: each pod proxy call carries the metrics key derived from the mounted keys (the proxy drops Authorization)', async () => {
    const { target } = makeTarget();
    const route = { metadata: { name: 'diabetes' }, spec: { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/services/diabetes' } }], backendRefs: [{ name: 'diabetes-green', port: 80, weight: 100 }] }] } };
    // Computed here independently of runtime/auth-metrics.ts: HMAC-SHA256(secret, "mdf-metrics-v1"), base64url.
    const derive = (secret: string) => createHmac('sha256', secret).update('mdf-metrics-v1').digest('base64url');
    const keys = { primaryKey: 'primary-0123456789abcdef', secondaryKey: 'secondary-0123456789abcdef' };
    kube().get(`${GW}/httproutes/diabetes`).reply(200, route);
    expectFigures({ green: [{ name: 'diabetes-green-a', uid: 'g1', text: metrics(7, 1) }, { name: 'diabetes-green-b', uid: 'g2', text: metrics(3, 0) }] }, keys, `${derive(keys.primaryKey)}, ${derive(keys.secondaryKey)}`);
    const snap = await target.trafficSnapshot('diabetes');
    expect(snap.slots.green).toMatchObject({ requests: 11, errors: 1 });

    const token = { tokenSecret: 'token-secret-0123456789abcdef', service: 'diabetes' };
    kube().get(`${GW}/httproutes/diabetes`).reply(200, route);
    expectFigures({ green: [{ name: 'diabetes-green-a', uid: 'g1', text: metrics(2, 0) }] }, token, derive(token.tokenSecret));
    expect((await target.trafficSnapshot('diabetes')).slots.green.requests).toBe(2);

    // A keys Secret without a usable keys.json: a clear error, never its content.
    kube().get(`${GW}/httproutes/diabetes`).reply(200, route);
    kube().get(`/api/v1${NS}/secrets/diabetes-keys`).reply(200, { metadata: { name: 'diabetes-keys' }, data: { 'keys.json': Buffer.from('{"primaryKey": "half-secret').toString('base64') } });
    const broken = target.trafficSnapshot('diabetes');
    await expect(broken).rejects.toMatchObject({ code: 'RolloutNeedsMetrics' });
    await expect(broken).rejects.not.toMatchObject({ message: expect.stringContaining('half-secret') });
  });

  test('refusals before anything is written: bad weights, a missing slot, no Gateway', async () => {
    const { target } = makeTarget();
    // No Kubernetes call is expected for these two (nock refuses any).
    await expect(target.setTrafficWeights('diabetes', { blue: 80, green: 10 })).rejects.toMatchObject({ code: 'InvalidTrafficWeights', httpStatus: 400, message: expect.stringContaining('sum to 100 (got 90') });
    await expect(target.setTrafficWeights('diabetes', { blue: 90.5, green: 9.5 })).rejects.toMatchObject({ code: 'InvalidTrafficWeights' });

    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-blue`).reply(200, { metadata: { name: 'diabetes-blue' } });
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(404, notFound);
    await expect(target.setTrafficWeights('diabetes', { blue: 90, green: 10 })).rejects.toMatchObject({ code: 'SlotNotFound', httpStatus: 404 });

    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-blue`).reply(200, { metadata: { name: 'diabetes-blue' } });
    kube().get(`/apis/apps/v1${NS}/deployments/diabetes-green`).reply(200, { metadata: { name: 'diabetes-green' } });
    kube().get(`${GW}/gateways/mdf-gateway`).reply(404, { ...notFound, message: 'the server could not find the requested resource' });
    await expect(target.setTrafficWeights('diabetes', { blue: 90, green: 10 })).rejects.toMatchObject({ code: 'AksGatewayMissing', httpStatus: 400, message: expect.stringContaining('mdf-gateway') });
  });
});

test('the vendored HTTPRoute schema refuses what the API server would (so the checks above can fail)', () => {
  const good = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'd', namespace: 'models' }, spec: { rules: [{ backendRefs: [{ name: 'd-blue', port: 80, weight: 10 }] }] } };
  expect(validateRoute(good)).toBe(true);
  const bad = (rule: object) => validateRoute({ ...good, spec: { rules: [rule] } });
  expect(bad({ backendRefs: [{ name: 'd-blue', port: 80, weight: -1 }] })).toBe(false);
  expect(bad({ backendRefs: [{ name: 'd-blue', port: 80, weight: 1.5 }] })).toBe(false);
  expect(bad({ matches: [{ headers: [{ type: 'Exact', name: 'bad header', value: 'x' }] }] })).toBe(false);
  expect(bad({ matches: [{ path: { type: 'PathPrefix', value: 'no-slash' } }] })).toBe(false);
});

describe('runtime /metrics → slot figures', () => {
  test('only /score counts; statuses 5xx are errors; the histogram is re-bucketed at the upper bound', () => {
    const t = slotTrafficFromMetrics(metrics(90, 10, 0.005));
    expect(t.requests).toBe(100);
    expect(t.errors).toBe(10);
    const buckets = Object.entries(t.latency);
    expect(buckets).toHaveLength(1);
    expect(buckets[0][1]).toBe(100);
    expect(LATENCY_BOUNDS_MS[Number(buckets[0][0])]).toBeGreaterThanOrEqual(5);
  });

  test('requests pinned to the version (tests, pinned="true") are left out of its figures', () => {
    const text = [
      metrics(10, 0, 0.005),
      'scoring_requests_total{route="score",status="500",pinned="true"} 7',
      'scoring_request_duration_seconds_bucket{route="score",pinned="true",le="+Inf"} 7',
    ].join('\n');
    expect(slotTrafficFromMetrics(text)).toEqual(slotTrafficFromMetrics(metrics(10, 0, 0.005)));
  });

  test('garbage lines and negative or non-numeric values are ignored; an oversized answer is refused', () => {
    const t = slotTrafficFromMetrics('scoring_requests_total{route="score",status="200"} NaN\nscoring_requests_total{route="score",status="503"} -4\nnot a metric line at all\n{}\n');
    expect(t).toEqual({ requests: 0, errors: 0, latency: {} });
    expect(() => slotTrafficFromMetrics('#'.repeat(1024 * 1024 + 1))).toThrow(expect.objectContaining({ code: 'MetricsTooLarge' }));
  });
});


