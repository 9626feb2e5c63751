/**
 * An ACI world for the service front's tests (test/azure/aci-rollout.test.ts, test/orchestrations/rolloutAci.test.ts):
 * ARM as a small in-memory model answering through nock (container groups, an ordered request log, the PUT bodies),
 * each slot's runtime /metrics from counters, and the front's public address answered by a REAL front
 * (runtime/front-cli.ts `startFrontFromEnv`) started on loopback from the settings the target PUT in the front's
 * container group — so the signed calls are checked by the front's own code. Needs `setupNock()` in the test file
 * and `nock.enableNetConnect(/127\.0\.0\.1/)` (the forwarding to the real front).
 * Its last part serves the scripted wire tests of `AciTarget` (test/azure/aci-target.test.ts, tls-wire.test.ts):
 * the ARM paths, a slot's deploy request, a container group as ARM returns it, a target, a PUT with its operation.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AciTarget } from '../../shared/azure/aci-target';
import { frontAdminKey, frontGroupName } from '../../shared/azure/aci-front';
import type { FrontImageSource } from '../../shared/azure/front-image';
import { aciDnsLabel } from '../../shared/azure/names';
import { METRICS_KEY_HEADER, metricsHeaderValue, startFrontFromEnv, type RunningFront } from '../../runtime';
import type { DeployConfig, DeployRequest } from '../../shared/seams';
import { ARM, FAST, RG, TEST_ENV, arm, captureLog, nock, q, rgPath, testClients, testConfig } from './helpers';
import { startFrontProcess, startRuntimeProcess, type ProcessServer } from '../runtime/helpers';

export const KEYS = { primaryKey: 'PRIMARY-SECRET-KEY-1', secondaryKey: 'SECONDARY-SECRET-KEY-2' };
export const ADMIN = frontAdminKey('diabetes', 'token-secret-of-diabetes-0123456789');
export const SCOPE = `${TEST_ENV.AZURE_SUBSCRIPTION_ID}/${RG}`;
export const STABLE = aciDnsLabel('diabetes', SCOPE);
/** The public addresses in play: the service's stable name (the front's), the slots' own names. */
const HOSTS = [
  ...[STABLE, aciDnsLabel('diabetes-blue', SCOPE), 'diabetes-green-own'].map((l) => `http://${l}.westeurope.azurecontainer.io:5001`),
  ...Array.from({ length: 30 }, (_, i) => `http://20.0.0.${i + 1}:5001`),
];
export const IMAGE = (v: number) => `mdfregistry.azurecr.io/diabetesimage:${v}`;
/** The service front's own image as the worlds' targets get it (test/azure/aci-front-image.test.ts builds it for real through ACR). */
export const FRONT_IMAGE = 'mdfregistry.azurecr.io/mdf-system/front:123456789';

export type Wire = Record<string, any>;

/** The ARM side: container groups in memory, every request logged (`PUT name`, `PATCH name`, …). */
/**
 * Live groups (the loopback world): a group ARM knows a process for is reported at that process's loopback address
 * and port (its IP, FQDN and port), so the target's calls and the front's forwarding reach the real process.
 */
export interface LiveGroups {
  /** The port of the process behind group `name`, if any. */
  port(name: string): number | undefined;
  /** ARM received a PUT of group `name` (before it answers): start (or restart) its process. */
  put(name: string, body: Wire): Promise<void>;
  /** ARM deleted group `name`: stop its process. */
  deleted(name: string): Promise<void>;
}

export class FakeArm {
  constructor(private readonly live?: LiveGroups) {}
  groups = new Map<string, Wire>();
  log: string[] = [];
  puts = new Map<string, Wire[]>();
  private clock = 0;
  private ips = 0;

  /** A group as ARM returns it (secure values without their value, fqdn from the label, running). */
  add(name: string, o: { slot?: string; image?: string; label?: string; tags?: Record<string, string>; keyAuth?: boolean }): void {
    this.store(name, {
      location: 'westeurope',
      tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', ...(o.slot ? { 'mdf-slot': o.slot } : {}), ...(o.tags ?? {}) },
      properties: {
        osType: 'Linux',
        restartPolicy: 'Always',
        containers: [
          {
            name: 'model',
            properties: {
              image: o.image ?? IMAGE(3),
              ports: [{ port: 5001, protocol: 'TCP' }],
              resources: { requests: { cpu: 1, memoryInGB: 1.5 } },
              environmentVariables: [{ name: 'MDF_PORT', value: '5001' }, ...(o.keyAuth === false ? [] : [{ name: 'MDF_PRIMARY_KEY', secureValue: 'x' }, { name: 'MDF_SECONDARY_KEY', secureValue: 'x' }])],
            },
          },
        ],
        ipAddress: { type: 'Public', ports: [{ port: 5001, protocol: 'TCP' }], dnsNameLabel: o.label ?? `${name}-own` },
      },
    });
  }

  private store(name: string, body: Wire): Wire {
    const p = body.properties;
    const g: Wire = {
      id: `/subscriptions/${TEST_ENV.AZURE_SUBSCRIPTION_ID}/resourceGroups/${RG}/providers/Microsoft.ContainerInstance/containerGroups/${name}`,
      name,
      location: body.location,
      tags: body.tags,
      ...(body.identity ? { identity: body.identity } : {}),
      properties: {
        ...p,
        provisioningState: 'Succeeded',
        containers: p.containers.map((c: Wire) => ({
          name: c.name,
          properties: {
            ...c.properties,
            environmentVariables: (c.properties.environmentVariables ?? []).map((e: Wire) => (e.secureValue !== undefined ? { name: e.name } : e)),
            instanceView: { restartCount: 0, currentState: { state: 'Running', startTime: `2026-11-30T01:00:${String(++this.clock).padStart(2, '0')}Z` }, events: [] },
          },
        })),
        // A new public IP at each PUT (as ACI gives): the app calls groups by IP, the front forwards by name.
        ipAddress: this.address(name, p.ipAddress),
        instanceView: { state: 'Running', events: [] },
      },
    };
    this.groups.set(name, g);
    return g;
  }

  /** A group's address: its live process's loopback address and port, else a new public IP and its label's FQDN. */
  private address(name: string, ip: Wire): Wire {
    const port = this.live?.port(name);
    if (port !== undefined) return { ...ip, ports: [{ port, protocol: 'TCP' }], ip: '127.0.0.1', fqdn: '127.0.0.1' };
    return { ...ip, ip: `20.0.0.${++this.ips}`, fqdn: `${ip.dnsNameLabel}.westeurope.azurecontainer.io` };
  }

  fqdn(name: string): string {
    return this.groups.get(name)!.properties.ipAddress.fqdn;
  }

  /** The group answering at `host` (its DNS name or its current IP). */
  at(host: string): string | undefined {
    return [...this.groups.keys()].find((n) => this.groups.get(n)!.properties.ipAddress.fqdn === host || this.groups.get(n)!.properties.ipAddress.ip === host);
  }

  install(): void {
    const nameOf = (uri: string) => /containerGroups\/([^/?]+)/.exec(uri)?.[1] ?? '';
    const isGroup = (uri: string) => /\/containerGroups\/[^/?]+\?/.test(uri);
    const notFound = [404, { error: { code: 'ResourceNotFound', message: 'not found' } }] as const;
    arm()
      .persist()
      .get((uri) => /\/containerGroups\?/.test(uri))
      .reply(() => (this.log.push('LIST'), [200, { value: [...this.groups.values()] }]));
    arm()
      .persist()
      .get(isGroup)
      .reply((uri) => {
        const g = this.groups.get(nameOf(uri));
        return g ? [200, g] : [...notFound];
      });
    arm()
      .persist()
      .put(isGroup)
      .reply(async (uri, body) => {
        const name = nameOf(uri);
        this.log.push(`PUT ${name}`);
        this.puts.set(name, [...(this.puts.get(name) ?? []), body as Wire]);
        await this.live?.put(name, body as Wire);
        return [200, this.store(name, body as Wire)];
      });
    arm()
      .persist()
      .patch(isGroup)
      .reply((uri, body) => {
        const name = nameOf(uri);
        this.log.push(`PATCH ${name} ${JSON.stringify((body as Wire).tags)}`);
        const g = this.groups.get(name)!;
        g.tags = (body as Wire).tags;
        return [200, g];
      });
    arm()
      .persist()
      .delete(isGroup)
      .reply(async (uri) => {
        const name = nameOf(uri);
        this.log.push(`DELETE ${name}`);
        this.groups.delete(name);
        await this.live?.deleted(name);
        return [200, {}];
      });
  }
}

/** The runtime's /metrics text for `ok` 200s and `failed` 500s on /score, all within `le` s. */
export function metrics(ok: number, failed: number, le = 0.025): string {
  const total = ok + failed;
  return [
    `scoring_requests_total{route="score",status="200"} ${ok}`,
    ...(failed ? [`scoring_requests_total{route="score",status="500"} ${failed}`] : []),
    'scoring_requests_total{route="health",status="200"} 999',
    ...[0.005, 0.025, 0.1, 1].map((b) => `scoring_request_duration_seconds_bucket{route="score",le="${b}"} ${b >= le ? total : 0}`),
    `scoring_request_duration_seconds_bucket{route="score",le="+Inf"} ${total}`,
  ].join('\n');
}

/** The real ACI target of the worlds: test clients and config, fast polling, the service's keys and the front's admin key. */
function worldTarget(log: (m: string) => void, secretsAsked: string[], frontImage: FrontImageSource = { ref: async () => FRONT_IMAGE, ready: async () => FRONT_IMAGE }): AciTarget {
  return new AciTarget({
    clients: testClients(),
    config: testConfig(),
    timing: FAST,
    log,
    frontImage,
    secrets: {
      keys: async (n) => (secretsAsked.push(`keys ${n}`), KEYS),
      frontKey: async (n) => (secretsAsked.push(`front ${n}`), ADMIN),
    },
  });
}

export class AciWorld {
  arm!: FakeArm;
  front: RunningFront | undefined;
  /** Live figures each slot's runtime reports on /metrics (by slot group name). */
  counters: Record<string, { ok: number; failed: number; le?: number }> = {};
  /** The app's calls to the front and the slots, in order (`front GET`, `front PUT <weights> g<generation>`, `metrics <group> key=<ok>`). */
  readonly calls: string[] = [];
  /** Host headers of the app's calls to groups (admin, /metrics). */
  readonly hostsSeen: string[] = [];
  readonly logs = captureLog();
  readonly secretsAsked: string[] = [];
  private readonly workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-aci-front-'));

  /** Fresh ARM (blue serving with the stable name, green new), hosts and a target (`frontImage`: how it gets the front's image); call once per test. */
  setup(o: { frontImage?: FrontImageSource } = {}): AciTarget {
    this.arm = new FakeArm();
    this.arm.add('diabetes-blue', { slot: 'blue', image: IMAGE(3), label: STABLE, tags: { 'mdf-active': 'true', 'mdf-stable-label': STABLE } });
    this.arm.add('diabetes-green', { slot: 'green', image: IMAGE(4), tags: { 'mdf-stable-label': STABLE } });
    this.arm.install();
    this.counters = { 'diabetes-blue': { ok: 1000, failed: 0 }, 'diabetes-green': { ok: 0, failed: 0 } };
    this.calls.length = 0;
    this.hostsSeen.length = 0;
    this.logs.lines.length = 0;
    this.secretsAsked.length = 0;
    for (const host of HOSTS) this.installHost(host);
    return worldTarget(this.logs.log, this.secretsAsked, o.frontImage);
  }

  /** Stops the real front and removes every interceptor (after each test). */
  async reset(): Promise<void> {
    await this.front?.close();
    this.front = undefined;
    nock.cleanAll();
  }

  dispose(): void {
    fs.rmSync(this.workDir, { recursive: true, force: true });
  }

  /** Starts the real front from the settings of the front group's last PUT (as ACI would start its container). */
  async startRealFront(): Promise<RunningFront> {
    const put = this.arm.puts.get(frontGroupName('diabetes'))!.at(-1)!;
    const env: NodeJS.ProcessEnv = { MDF_FRONT_HOST: '127.0.0.1' };
    for (const e of put.properties.containers[0].properties.environmentVariables) env[e.name] = e.value ?? e.secureValue;
    env.MDF_PORT = '0';
    env.MDF_FRONT_STATE_FILE = path.join(this.workDir, `state-${Date.now()}.json`);
    await this.front?.close();
    this.front = await startFrontFromEnv(env, () => undefined);
    return this.front;
  }

  private installHost(host: string): void {
    const w = this;
    nock(host)
      .persist()
      .get('/metrics')
      .reply(function () {
        const h = String(this.req.headers.host).split(':')[0];
        w.hostsSeen.push(String(this.req.headers.host));
        const name = w.arm.at(h) ?? '?';
        w.calls.push(`metrics ${name} key=${this.req.headers[METRICS_KEY_HEADER] === metricsHeaderValue(KEYS)}`);
        const c = w.counters[name];
        return c ? [200, metrics(c.ok, c.failed, c.le)] : [404, 'no such group'];
      });
    const toFront = (method: 'GET' | 'PUT') =>
      async function (this: { req: { headers: Record<string, string | string[]> } }, uri: string, body: unknown): Promise<[number, string]> {
        w.hostsSeen.push(String(this.req.headers.host));
        if (!w.front && w.arm.puts.has(frontGroupName('diabetes'))) await w.startRealFront();
        if (!w.front) return [503, 'front not started'];
        const h = String(this.req.headers.host).split(':')[0];
        if (w.arm.at(h) !== frontGroupName('diabetes')) return [404, 'not the front'];
        const text = typeof body === 'string' ? body : body ? JSON.stringify(body) : '';
        w.calls.push(`front ${method}${method === 'PUT' ? ` ${JSON.stringify(JSON.parse(text).weights)} g${JSON.parse(text).generation}` : ''}`);
        const r = await fetch(`http://127.0.0.1:${w.front.port}${uri}`, {
          method,
          headers: { 'x-mdf-front-signature': String(this.req.headers['x-mdf-front-signature'] ?? '') },
          ...(method === 'PUT' ? { body: text } : {}),
        });
        return [r.status, await r.text()];
      };
    nock(host).persist().get('/.mdf/front/state').reply(toFront('GET') as any);
    nock(host).persist().put('/.mdf/front/state').reply(toFront('PUT') as any);
  }
}

// ---------------------------------------------------------------- scripted ARM (the wire tests of AciTarget)

export const ACI_API = '2023-05-01';
/** The ARM path of a container group, and of the resource group's list of them. */
export const CG = (name: string) => rgPath('Microsoft.ContainerInstance', `containerGroups/${name}`);
export const CG_LIST = rgPath('Microsoft.ContainerInstance', 'containerGroups');

/** A slot's deploy settings: 1 CPU, 1.5 GB, key auth, one replica, no autoscale. */
export const SLOT_CONFIG: DeployConfig = {
  cpuCores: 1,
  memoryGb: 1.5,
  authEnabled: true,
  autoscaleEnabled: false,
  autoscaleMinReplicas: 1,
  autoscaleMaxReplicas: 1,
  autoscaleTargetUtilization: 70,
  autoscaleRefreshSeconds: 1,
  replicaMaxConcurrentRequests: 1,
  scoringTimeoutMs: 60000,
  maxRequestWaitTimeMs: 500,
};
/** Slot blue of `diabetes` with image diabetesimage:3, SLOT_CONFIG and KEYS. */
export const SLOT_REQUEST: DeployRequest = {
  serviceName: 'diabetes',
  slot: 'blue',
  image: { name: 'diabetesimage', version: 3, imageRef: IMAGE(3), runtime: 'python', contextBlob: 'images/diabetesimage/3.tar.gz' },
  config: SLOT_CONFIG,
  keys: KEYS,
};

export interface ArmGroupOptions {
  state?: string;
  restarts?: number;
  detail?: string;
  provisioning?: string;
  events?: unknown[];
  /** Default: managed by the app, service diabetes, slot blue. */
  tags?: Record<string, string>;
  image?: string;
  /** DNS label and FQDN (default `<name>-lbl`). */
  label?: string;
  fqdn?: string;
  /**
   * A slot serving HTTPS as the TLS slot spec makes it: port 443, the runtime told the PEM files, the `tls` secret
   * volume mounted (as ARM returns them: secure values and secret volume contents are never returned).
   */
  tls?: boolean;
}

/** A container group of the service as ARM returns it (running and provisioned unless told otherwise). */
export function armGroup(name: string, o: ArmGroupOptions = {}): Wire {
  const port = o.tls ? 443 : 5001;
  const label = o.label ?? `${name}-lbl`;
  return {
    id: CG(name),
    name,
    location: 'westeurope',
    tags: o.tags ?? { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'blue' },
    properties: {
      provisioningState: o.provisioning ?? 'Succeeded',
      osType: 'Linux',
      ...(o.tls ? { restartPolicy: 'Always' } : {}),
      containers: [
        {
          name: 'model',
          properties: {
            image: o.image ?? SLOT_REQUEST.image.imageRef,
            resources: { requests: { cpu: 1, memoryInGB: 1.5 } },
            ...(o.tls
              ? {
                  ports: [{ port, protocol: 'TCP' }],
                  environmentVariables: [{ name: 'MDF_PORT', value: '443' }, { name: 'MDF_TLS_CERT_FILE', value: '/mnt/mdf-tls/tls.crt' }, { name: 'MDF_TLS_KEY_FILE', value: '/mnt/mdf-tls/tls.key' }, { name: 'MDF_PRIMARY_KEY' }, { name: 'MDF_SECONDARY_KEY' }],
                  volumeMounts: [{ name: 'tls', mountPath: '/mnt/mdf-tls', readOnly: true }],
                }
              : {}),
            instanceView: {
              restartCount: o.restarts ?? 0,
              currentState: { state: o.state ?? 'Running', detailStatus: o.detail ?? '' },
              events: o.events ?? [],
            },
          },
        },
      ],
      ...(o.tls ? { volumes: [{ name: 'tls', secret: {} }] } : {}),
      ipAddress: { type: 'Public', ports: [{ port, protocol: 'TCP' }], dnsNameLabel: label, fqdn: o.fqdn ?? `${label}.westeurope.azurecontainer.io` },
      instanceView: { state: o.state ?? 'Running', events: [] },
    },
  };
}

/** An AciTarget on the scripted ARM, its log captured (`now`: the clock of its deadlines). */
export function wireTarget(opts: { now?: () => number } = {}): { target: AciTarget; logs: ReturnType<typeof captureLog> } {
  const logs = captureLog();
  return { target: new AciTarget({ clients: testClients(), config: testConfig(), timing: { ...FAST, now: opts.now }, log: logs.log }), logs };
}

/**
 * The PUT of group `name`, answered 201 with `reply` and an Azure-AsyncOperation whose polls answer `polls` in turn
 * (default: Succeeded at once). Returns the PUT body once sent.
 */
export function expectGroupPut(name: string, reply: Wire, polls: Array<Record<string, unknown>> = [{ status: 'Succeeded' }]): { body?: any } {
  const seen: { body?: any } = {};
  const op = `/subscriptions/${TEST_ENV.AZURE_SUBSCRIPTION_ID}/providers/Microsoft.ContainerInstance/locations/westeurope/operations/op-${name}`;
  arm()
    .put(CG(name), (b) => ((seen.body = b), true))
    .query(q(ACI_API))
    .reply(201, reply, { 'Azure-AsyncOperation': `${ARM}${op}?api-version=${ACI_API}` });
  for (const poll of polls) arm().get(op).query(q(ACI_API)).reply(200, poll);
  return seen;
}

/**
 * The ACI world on loopback, for rollouts end to end (test/orchestrations/rolloutAci.test.ts): the same ARM model,
 * but each slot group is a REAL scoring runtime process (`dist/runtime/cli.js`, the service's keys) and the front
 * group a REAL front process (`dist/runtime/front-cli.js`) started from the settings of the front's PUT, as ACI starts
 * its container (restarted at each PUT of the front, stopped when a group is deleted). ARM reports each group at
 * its process's loopback address and port, so the target's admin calls and /metrics reads and the front's forwarding
 * and mirroring all go to the real processes; nothing but ARM is mocked. Needs `setupNock()` and
 * `nock.enableNetConnect(/127\.0\.0\.1/)` in the test file, and `npm run build`.
 */
export class LoopbackAciWorld implements LiveGroups {
  arm!: FakeArm;
  readonly logs = captureLog();
  readonly secretsAsked: string[] = [];
  /** The process behind each group (by group name). */
  readonly processes = new Map<string, ProcessServer>();
  private seq = 0;

  constructor(readonly dir: string) {}

  /**
   * Blue (serving, the stable name) and green (new) as runtime processes running `scripts` (entry script paths),
   * each with its own model folder `<dir>/<group>/model` (so test/helpers/replicas.ts finds them); a target.
   */
  async setup(scripts: { blue: string; green: string }): Promise<AciTarget> {
    this.arm = new FakeArm(this);
    for (const [slot, script] of Object.entries(scripts)) {
      const group = `diabetes-${slot}`;
      const modelDir = path.join(this.dir, group, 'model');
      fs.mkdirSync(modelDir, { recursive: true });
      this.processes.set(
        group,
        await startRuntimeProcess(['--entry-script', script, '--model-dir', modelDir], {
          env: { MDF_PRIMARY_KEY: KEYS.primaryKey, MDF_SECONDARY_KEY: KEYS.secondaryKey },
          logPath: path.join(this.dir, `${group}.log`),
        }),
      );
    }
    this.arm.add('diabetes-blue', { slot: 'blue', image: IMAGE(3), label: STABLE, tags: { 'mdf-active': 'true', 'mdf-stable-label': STABLE } });
    this.arm.add('diabetes-green', { slot: 'green', image: IMAGE(4), tags: { 'mdf-stable-label': STABLE } });
    this.arm.install();
    return worldTarget(this.logs.log, this.secretsAsked);
  }

  /** The front's URL once its group was created (where the service's stable name points). */
  frontUrl(): string | undefined {
    return this.processes.get(frontGroupName('diabetes'))?.url;
  }

  port(name: string): number | undefined {
    return this.processes.get(name)?.port;
  }

  /** A slot group's PUT (its DNS name moved) keeps its process; the front's PUT (re)starts the front from its settings. */
  async put(name: string, body: Wire): Promise<void> {
    if (name !== frontGroupName('diabetes')) return;
    await this.processes.get(name)?.stop();
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const e of body.properties.containers[0].properties.environmentVariables) env[e.name] = e.value ?? e.secureValue;
    env.MDF_PORT = '0';
    env.MDF_FRONT_HOST = '127.0.0.1';
    // The emptyDir volume: one per group, kept across restarts of its container.
    env.MDF_FRONT_STATE_FILE = path.join(this.dir, `front-state-${this.seq}.json`);
    this.processes.set(name, await startFrontProcess(env, 60_000));
  }

  async deleted(name: string): Promise<void> {
    const p = this.processes.get(name);
    this.processes.delete(name);
    if (name === frontGroupName('diabetes')) this.seq++;
    await p?.stop();
  }

  /** Stops every process and removes the interceptors. */
  async reset(): Promise<void> {
    for (const name of [...this.processes.keys()]) await this.deleted(name);
    nock.cleanAll();
  }
}
