/**
 * An AKS world for the shadow phase's tests (test/azure/aks-shadow.test.ts, test/orchestrations/rolloutAks.test.ts):
 * the cluster's API server as a small in-memory model answering through nock — Deployments (reported available),
 * Services, Secrets, PodDisruptionBudgets, HTTPRoutes, the Gateway, each slot's pods and their /metrics through the
 * pod proxy, every write logged and validated against the Kubernetes schema (kubernetes-models) or the HTTPRoute
 * schema — and the pod proxy of each of the front's pods answered by a REAL front per pod (runtime/front-cli.ts
 * `startFrontFromEnv`) started on loopback from the Deployment the target wrote (its env, the admin key from the
 * Secret it names, the keys Secret as the mounted keys file), so the signed calls are checked by the front's own code. The front reaches the slots by
 * their cluster DNS names: `routeClusterDns()` sends connections for `*.svc.cluster.local` to local stand-ins.
 * Needs `setupNock()` in the test file and `nock.enableNetConnect(...)` for loopback (and the cluster names).
 */
import Ajv from 'ajv';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { AksTarget } from '../../shared/azure/aks-target';
import { frontAdminKey } from '../../shared/azure/aci-front';
import { startFrontFromEnv, type RunningFront } from '../../runtime';
import { answerMirrorBatch, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE } from '../../runtime/mirror-batch';
import { FRONT_IMAGE, metrics } from './aci-world';
import type { FrontImageSource } from '../../shared/azure/front-image';
import { k8s, AKS_API, MC, KUBE, kubeconfig, notFound } from './aks-world';
import { FAST, FakeCredential, TOKEN, arm, captureLog, nock, q, testClients, testConfig, validateK8s } from './helpers';
import routeSchema from './schemas/httproute-v1.schema.json';

export const KEYS = { primaryKey: 'PRIMARY-SECRET-KEY-1', secondaryKey: 'SECONDARY-SECRET-KEY-2' };
export const ADMIN = frontAdminKey('diabetes', 'token-secret-of-diabetes-0123456789');
export const IMAGE = (v: number) => `mdfregistry.azurecr.io/diabetesimage:${v}`;
const NSP = '/namespaces/models';
const validateRoute = new Ajv({ allErrors: true, strict: false }).compile(routeSchema);

export type Wire = Record<string, any>;

/** A slot Deployment as the deploy step writes it (the parts the shadow phase reads: image, keys volume). */
function slotDeployment(slot: string, image: string, auth: boolean): Wire {
  const sel = { 'mdf-service': 'diabetes', 'mdf-slot': slot };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `diabetes-${slot}`, namespace: 'models', labels: { 'mdf-managed-by': 'model-deploy-flow', ...sel } },
    spec: {
      replicas: 1,
      selector: { matchLabels: sel },
      template: {
        metadata: { labels: sel },
        spec: {
          containers: [{ name: 'model', image, ports: [{ name: 'http', containerPort: 5001 }], ...(auth ? { volumeMounts: [{ name: 'keys', mountPath: '/var/run/secrets/mdf-keys', readOnly: true }] } : {}) }],
          ...(auth ? { volumes: [{ name: 'keys', secret: { secretName: 'diabetes-keys' } }] } : {}),
        },
      },
    },
  };
}

export class AksFrontWorld {
  /** Objects by `<kind>/<name>` (kinds: deployments, services, secrets, poddisruptionbudgets, httproutes). */
  objects = new Map<string, Wire>();
  /** Writes and front calls, in order: `POST deployments diabetes-front`, `PUT httproutes diabetes`, `front a PUT g2 …` (a: pod diabetes-front-a). */
  readonly log: string[] = [];
  /** Bodies written, by `<kind>/<name>`, in order. */
  readonly writes = new Map<string, Wire[]>();
  /** Live figures each slot's runtime reports on /metrics (by slot). */
  counters: Record<string, { ok: number; failed: number }> = {};
  /** The front's pod cannot pull its image (ImagePullBackOff; the service proxy answers 503: no endpoints). */
  frontPullFails = false;
  /** The front's pods (as the kubelet runs them): their names, and the real front each runs once started. */
  frontPodNames: string[] = [];
  readonly fronts = new Map<string, { front: RunningFront; generation: number }>();
  private started = 0;
  /** The front's admin calls as the front received them (method, path, body, signature header). */
  readonly signed: Array<{ method: string; path: string; body: string; header: string }> = [];
  /** Answer as a front of an earlier release would (no `auth` in its admin answers). */
  legacyFront = false;
  /** For each time the target asked for the front's image: how many writes (and front calls) the log held then. */
  readonly frontImageAsked: number[] = [];
  private rv = 0;
  readonly logs = captureLog();
  private readonly workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-aks-front-'));
  private restoreDns?: () => void;

  /**
   * Fresh cluster: blue serving (image 3), green new (image 4), both with key auth unless `auth: false`; a target
   * (`frontImage`: how it gets the front's own image; by default the built FRONT_IMAGE of test/azure/aci-world.ts).
   */
  setup(o: { auth?: boolean; frontImage?: FrontImageSource } = {}): AksTarget {
    const auth = o.auth ?? true;
    this.objects.clear();
    this.log.length = 0;
    this.writes.clear();
    this.logs.lines.length = 0;
    this.frontPullFails = false;
    this.legacyFront = false;
    this.signed.length = 0;
    this.frontImageAsked.length = 0;
    this.frontPodNames = ['diabetes-front-a', 'diabetes-front-b'];
    this.counters = { blue: { ok: 1000, failed: 0 }, green: { ok: 0, failed: 0 } };
    this.put('deployments', slotDeployment('blue', IMAGE(3), auth));
    this.put('deployments', slotDeployment('green', IMAGE(4), auth));
    for (const slot of ['blue', 'green']) this.put('services', { apiVersion: 'v1', kind: 'Service', metadata: { name: `diabetes-${slot}` }, spec: { type: 'LoadBalancer' } });
    this.put('services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'diabetes' }, spec: { type: 'LoadBalancer', selector: { 'mdf-service': 'diabetes', 'mdf-slot': 'blue' } } });
    if (auth) {
      this.put('secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'diabetes-keys' }, data: { 'keys.json': Buffer.from(JSON.stringify(KEYS)).toString('base64') } });
    }
    this.install();
    const credential = new FakeCredential();
    arm().get(MC).query(q(AKS_API)).reply(200, { id: MC, name: 'aks-mdf', location: 'westeurope', properties: { provisioningState: 'Succeeded', agentPoolProfiles: [{ name: 'system', count: 3, vmSize: 'Standard_D3_v2' }] } });
    arm()
      .post(`${MC}/listClusterUserCredential`)
      .query(q(AKS_API))
      .reply(200, { kubeconfigs: [{ name: 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') }] });
    return new AksTarget({
      clients: testClients(testConfig(), credential),
      config: testConfig(),
      timing: FAST,
      k8s,
      log: this.logs.log,
      secrets: { frontKey: async () => ADMIN },
      frontImage: {
        ref: async () => (this.frontImageAsked.push(this.log.length), o.frontImage ? o.frontImage.ref() : FRONT_IMAGE),
        ready: async () => (o.frontImage ? o.frontImage.ready() : FRONT_IMAGE),
      },
    });
  }

  get(kind: string, name: string): Wire | undefined {
    return this.objects.get(`${kind}/${name}`);
  }

  /** The writes of the log (everything but the front's reads). */
  get changes(): string[] {
    return this.log.filter((l) => !/^front \S+ GET$/.test(l));
  }

  /** The real front of the first front pod (started once the target called it). */
  get front(): RunningFront | undefined {
    return this.fronts.get(this.frontPodNames[0])?.front;
  }

  /** The real fronts running now, in pod order. */
  get runningFronts(): RunningFront[] {
    return this.frontPodNames.map((n) => this.fronts.get(n)?.front).filter((f): f is RunningFront => !!f);
  }

  /** A front pod replaced by a new one (a node drain, a reschedule): its process and state gone, the new pod starts from the Deployment. */
  async replaceFrontPod(name: string, by: string): Promise<void> {
    await this.fronts.get(name)?.front.close();
    this.fronts.delete(name);
    this.frontPodNames = this.frontPodNames.map((n) => (n === name ? by : n));
  }

  async reset(): Promise<void> {
    for (const f of this.fronts.values()) await f.front.close();
    this.fronts.clear();
    nock.cleanAll();
  }

  dispose(): void {
    this.restoreDns?.();
    fs.rmSync(this.workDir, { recursive: true, force: true });
  }

  /**
   * Connections to `<name>.models.svc.cluster.local` (the front forwarding to a slot's Service) go to the local
   * stand-in `ports[name]` instead (an Agent override: the front's own code runs unchanged).
   */
  routeClusterDns(ports: Record<string, number>): void {
    const proto = http.Agent.prototype as unknown as { createConnection: (o: net.NetConnectOpts & { host?: string; port?: number }, cb?: unknown) => net.Socket };
    const original = proto.createConnection;
    proto.createConnection = function (options, cb) {
      const m = /^([a-z0-9-]+)\.models\.svc\.cluster\.local$/.exec(String(options.host ?? ''));
      const port = m ? ports[m[1]] : undefined;
      return original.call(this, port ? { ...options, host: '127.0.0.1', port } : options, cb);
    };
    this.restoreDns = () => {
      proto.createConnection = original;
    };
  }

  /**
   * Local stand-ins of the slots' Services (the front's forwards reach them: `routeClusterDns`): each answers
   * `answer(slot, x, n)` to `{"x": …}` (n: its own count of requests, from 1; shadow copies in batches as the
   * runtime takes them, each copy one request), counts the request on the slot's
   * /metrics and records the Authorization it got. Returns the hits and a closer.
   */
  async standIns(answer: (slot: string, x: number, n: number) => unknown): Promise<{ hits: Record<string, Array<string | undefined>>; close: () => Promise<void> }> {
    const hits: Record<string, Array<string | undefined>> = { blue: [], green: [] };
    const servers = ['blue', 'green'].map((slot) =>
      http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const one = (body: Buffer) => {
            hits[slot].push(req.headers.authorization);
            const x = Number((JSON.parse(body.toString() || '{"x":0}') as { x: number }).x);
            (this.counters[slot] ??= { ok: 0, failed: 0 }).ok++;
            return Buffer.from(JSON.stringify(answer(slot, x, hits[slot].length)));
          };
          if (req.url === MIRROR_BATCH_PATH) {
            // Shadow copies in a batch, as the runtime takes them: each one a scoring request.
            const frame = answerMirrorBatch(Buffer.concat(chunks), (body) => ({ status: 200, body: one(body) }));
            res.writeHead(200, { 'content-type': MIRROR_BATCH_TYPE });
            res.end(frame);
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(one(Buffer.concat(chunks)));
        });
      }),
    );
    for (const s of servers) await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    this.routeClusterDns({ 'diabetes-blue': (servers[0].address() as net.AddressInfo).port, 'diabetes-green': (servers[1].address() as net.AddressInfo).port });
    return { hits, close: async () => void (await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))) };
  }

  /**
   * Live requests through the real front, as the Gateway sends them (with the service key): `{"x": from + i}`; waits
   * until the front has settled every copy it made (compared, failed or skipped). Returns the answers.
   */
  async traffic(n: number, from = 0): Promise<unknown[]> {
    const out: unknown[] = [];
    const fronts = this.runningFronts;
    for (let i = 0; i < n; i++) {
      // The front's Service spreads requests over its pods (here in turn).
      const r = await fetch(`http://127.0.0.1:${fronts[i % fronts.length].port}/score`, { method: 'POST', body: JSON.stringify({ x: from + i }), headers: { authorization: `Bearer ${KEYS.secondaryKey}`, 'content-type': 'application/json' } });
      out.push(await r.json());
    }
    const settled = () =>
      fronts.every((f) => {
        const sh = f.front.snapshot().shadow?.green;
        return !sh || sh.compared + sh.errors + sh.skipped >= sh.mirrored;
      });
    for (let i = 0; i < 400 && !settled(); i++) await new Promise((r) => setTimeout(r, 25));
    return out;
  }

  private put(kind: string, obj: Wire): Wire {
    const name = obj.metadata.name;
    const prev = this.objects.get(`${kind}/${name}`);
    const generation = (prev?.metadata?.generation ?? 0) + 1;
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv), generation } };
    this.objects.set(`${kind}/${name}`, stored);
    return stored;
  }

  /** How the API server answers a read: Deployments available, LoadBalancer Services with an address. */
  private view(kind: string, o: Wire): Wire {
    if (kind === 'deployments') {
      const n = o.spec?.replicas ?? 1;
      const failing = this.frontPullFails && o.metadata.name === 'diabetes-front';
      return { ...o, status: { observedGeneration: o.metadata.generation, replicas: n, updatedReplicas: n, ...(failing ? { unavailableReplicas: n } : { availableReplicas: n, readyReplicas: n }) } };
    }
    if (kind === 'services' && o.spec?.type !== 'ClusterIP') return { ...o, spec: { ...o.spec, clusterIP: '10.0.0.9' }, status: { loadBalancer: { ingress: [{ ip: '20.0.0.1' }] } } };
    return o;
  }

  private pods(selector: string): Wire[] {
    const labels = Object.fromEntries(selector.split(',').map((kv) => kv.split('=')));
    if (labels['mdf-role'] === 'front') {
      if (!this.get('deployments', 'diabetes-front')) return [];
      const image = this.get('deployments', 'diabetes-front')!.spec.template.spec.containers[0].image;
      const state = this.frontPullFails ? { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` } } : { running: {} };
      return this.frontPodNames.map((name) => ({
        metadata: { name, uid: `u-${name}` },
        status: { phase: this.frontPullFails ? 'Pending' : 'Running', containerStatuses: [{ name: 'front', image, imageID: '', ready: !this.frontPullFails, restartCount: 0, state }] },
      }));
    }
    const slot = labels['mdf-slot'];
    if (!this.get('deployments', `diabetes-${slot}`)) return [];
    return [
      {
        metadata: { name: `diabetes-${slot}-a`, uid: `u-${slot}` },
        spec: { containers: [{ name: 'model', ports: [{ containerPort: 5001 }] }] },
        status: { phase: 'Running', containerStatuses: [{ name: 'model', image: 'x', imageID: '', ready: true, restartCount: 0, state: { running: {} } }] },
      },
    ];
  }

  /** Starts pod `pod`'s real front from the front Deployment as written (as the kubelet would), once per generation. */
  private async ensureRealFront(pod: string): Promise<RunningFront | undefined> {
    const dep = this.get('deployments', 'diabetes-front');
    if (!dep || this.frontPullFails || !this.frontPodNames.includes(pod)) return undefined;
    const cur = this.fronts.get(pod);
    if (cur && cur.generation === dep.metadata.generation) return cur.front;
    const env: NodeJS.ProcessEnv = {};
    for (const e of dep.spec.template.spec.containers[0].env) {
      if (e.value !== undefined) env[e.name] = e.value;
      else {
        const ref = e.valueFrom.secretKeyRef;
        env[e.name] = Buffer.from(this.get('secrets', ref.name)!.data[ref.key], 'base64').toString('utf8');
      }
    }
    if (env.MDF_KEYS_FILE) {
      const file = path.join(this.workDir, `keys-${dep.metadata.generation}.json`);
      fs.writeFileSync(file, Buffer.from(this.get('secrets', 'diabetes-keys')!.data['keys.json'], 'base64'));
      env.MDF_KEYS_FILE = file;
    }
    // MDF_FRONT_MIRROR_THREAD=0: copies go from the front's loop, whose connections `routeClusterDns` reroutes (a
    // shadow thread has its own module instances; the thread is tested in local-front-split.test.ts).
    Object.assign(env, { MDF_PORT: '0', MDF_FRONT_HOST: '127.0.0.1', MDF_FRONT_STATE_FILE: path.join(this.workDir, `state-${pod}-${++this.started}.json`), MDF_FRONT_MIRROR_THREAD: '0' });
    await cur?.front.close();
    const front = await startFrontFromEnv(env, () => undefined);
    this.fronts.set(pod, { front, generation: dep.metadata.generation });
    return front;
  }

  private async serve(method: string, uri: string, body: unknown, headers: Record<string, string | string[] | undefined>): Promise<[number, any, Record<string, string>?]> {
    const u = new URL(uri, KUBE);
    const p = u.pathname;
    const text = typeof body === 'string' ? body : body ? JSON.stringify(body) : '';
    // A front pod through the API server's pod proxy: Authorization is dropped, other headers pass.
    const proxy = /^\/api\/v1\/namespaces\/models\/pods\/(diabetes-front-[a-z0-9]+)(?::|%3A)5001\/proxy(\/.*)$/.exec(p);
    if (proxy) {
      const [, pod, frontPath] = proxy;
      const front = await this.ensureRealFront(pod);
      if (!front) return [503, { kind: 'Status', code: 503, message: `error trying to reach service: pod ${pod} is not running` }];
      const st = text ? JSON.parse(text) : undefined;
      this.log.push(`front ${pod.slice('diabetes-front-'.length)} ${method}${st ? ` g${st.generation} ${JSON.stringify(st.weights)}${st.mirror ? ` mirror ${st.mirror.slot} ${st.mirror.percent}%` : ''}` : ''}`);
      this.signed.push({ method, path: frontPath, body: text, header: String(headers['x-mdf-front-signature'] ?? '') });
      const r = await fetch(`http://127.0.0.1:${front.port}${frontPath}`, {
        method,
        headers: { 'x-mdf-front-signature': String(headers['x-mdf-front-signature'] ?? ''), ...(text ? { 'content-type': 'application/json' } : {}) },
        ...(method === 'PUT' ? { body: text } : {}),
      });
      const answer = await r.text();
      if (this.legacyFront && r.status === 200) {
        const { auth: _auth, ...rest } = JSON.parse(answer) as Wire;
        return [200, JSON.stringify(rest), { 'content-type': 'application/json' }];
      }
      return [r.status, answer, { 'content-type': 'application/json' }];
    }
    const metricsOf = /^\/api\/v1\/namespaces\/models\/pods\/diabetes-([a-z]+)-a(?::|%3A)5001\/proxy\/metrics$/.exec(p);
    if (metricsOf) {
      const c = this.counters[metricsOf[1]] ?? { ok: 0, failed: 0 };
      return [200, metrics(c.ok, c.failed), { 'content-type': 'text/plain; version=0.0.4' }];
    }
    if (p === `/api/v1${NSP}/pods`) return [200, { apiVersion: 'v1', kind: 'PodList', metadata: {}, items: this.pods(u.searchParams.get('labelSelector') ?? '') }];
    if (/\/pods\/[^/]+\/log$/.test(p)) return [200, '', { 'content-type': 'text/plain' }];
    if (p === `/apis/gateway.networking.k8s.io/v1${NSP}/gateways/mdf-gateway`) return [200, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'mdf-gateway' } }];
    const m = /^\/(?:api\/v1|apis\/apps\/v1|apis\/autoscaling\/v2|apis\/policy\/v1|apis\/gateway\.networking\.k8s\.io\/v1)\/namespaces\/models\/([a-z]+)(?:\/([^/]+))?$/.exec(p);
    if (!m) return [404, notFound];
    const [, kind, name] = m;
    if (kind === 'horizontalpodautoscalers') return method === 'GET' && !name ? [200, { items: [] }] : [404, notFound];
    const key = `${kind}/${name}`;
    if (method === 'GET' && name) return this.objects.has(key) ? [200, this.view(kind, this.objects.get(key)!)] : [404, notFound];
    if (method === 'GET') {
      const sel = u.searchParams.get('labelSelector') ?? '';
      const want = Object.fromEntries(sel.split(',').filter(Boolean).map((kv) => kv.split('=')));
      const items = [...this.objects.entries()].filter(([k, o]) => k.startsWith(`${kind}/`) && Object.entries(want).every(([l, v]) => o.metadata.labels?.[l] === v)).map(([, o]) => this.view(kind, o));
      return [200, { items }];
    }
    if (method === 'DELETE') {
      if (!this.objects.has(key)) return [404, notFound];
      this.log.push(`DELETE ${kind} ${name}`);
      this.objects.delete(key);
      return [200, {}];
    }
    const obj = JSON.parse(text) as Wire;
    if (kind === 'httproutes') {
      if (!validateRoute(obj)) throw new Error(`HTTPRoute refused by its schema: ${JSON.stringify(validateRoute.errors)}`);
    } else validateK8s(obj);
    const target = name ?? obj.metadata.name;
    if (method === 'POST' && this.objects.has(`${kind}/${target}`)) return [409, { kind: 'Status', code: 409, reason: 'AlreadyExists' }];
    if (method === 'PUT') {
      const cur = this.objects.get(key);
      if (!cur) return [404, notFound];
      if (obj.metadata.resourceVersion !== cur.metadata.resourceVersion) return [409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' }];
    }
    this.log.push(`${method} ${kind} ${target}`);
    this.writes.set(`${kind}/${target}`, [...(this.writes.get(`${kind}/${target}`) ?? []), obj]);
    return [method === 'POST' ? 201 : 200, this.put(kind, obj)];
  }

  private install(): void {
    const w = this;
    for (const method of ['GET', 'POST', 'PUT', 'DELETE'] as const) {
      const scope = nock(KUBE, { reqheaders: { authorization: `Bearer ${TOKEN}` } }).persist();
      const i = method === 'GET' ? scope.get(() => true) : method === 'POST' ? scope.post(() => true) : method === 'PUT' ? scope.put(() => true) : scope.delete(() => true);
      i.reply(async function (this: { req: { headers: Record<string, string | string[] | undefined> } }, uri: string, body: unknown) {
        return w.serve(method, uri, body, this.req.headers);
      } as any);
    }
  }
}
