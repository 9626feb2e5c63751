/**
 * Progressive delivery on ACI at the wire: the service front (shared/azure/aci-front.ts) as ARM sees it — the
 * stable DNS name taken off the serving group, the front's container group (front-cli.js from the scoring image,
 * secure admin key / state / keys, an emptyDir for its saved state, no probes) — and the rollout's calls: a signed
 * state write per step (only when it changes), the gate figures read from each slot's own runtime /metrics with
 * the metrics key, the shadow figures from the front, the promotion as a front switch (no gap, no DNS move), the
 * rollback (weights back, the new slot taken out of the front, then deleted) and key rotation of the front.
 *
 * ARM is a small in-memory model answering through nock (ordered request log). The front's public address is
 * answered by a REAL front (runtime/front-cli.ts `startFrontFromEnv`) started on loopback from the settings the
 * target PUT in the front's container group, so the signed calls are checked by the front's own code.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AciTarget } from '../../shared/azure/aci-target';
import { frontAdminKey, frontGroupName } from '../../shared/azure/aci-front';
import { aciDnsLabel } from '../../shared/azure/names';
import { METRICS_KEY_HEADER, metricsHeaderValue, startFrontFromEnv, type RunningFront } from '../../runtime';
import { shadowWindowOf, windowOf } from '../../shared/rollout/traffic';
import { FAST, RG, TEST_ENV, arm, captureLog, nock, setupNock, testClients, testConfig } from './helpers';

const KEYS = { primaryKey: 'PRIMARY-SECRET-KEY-1', secondaryKey: 'SECONDARY-SECRET-KEY-2' };
const ADMIN = frontAdminKey('diabetes', 'token-secret-of-diabetes-0123456789');
const SCOPE = `${TEST_ENV.AZURE_SUBSCRIPTION_ID}/${RG}`;
const STABLE = aciDnsLabel('diabetes', SCOPE);
/** The public addresses in play: the service's stable name (the front's), the slots' own names. */
const HOSTS = [
  ...[STABLE, aciDnsLabel('diabetes-blue', SCOPE), 'diabetes-green-own'].map((l) => `http://${l}.westeurope.azurecontainer.io:5001`),
  ...Array.from({ length: 30 }, (_, i) => `http://20.0.0.${i + 1}:5001`),
];
const IMAGE = (v: number) => `mdfregistry.azurecr.io/diabetesimage:${v}`;

type Wire = Record<string, any>;

/** The ARM side: container groups in memory, every request logged (`PUT name`, `PATCH name`, …). */
class FakeArm {
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
        ipAddress: { ...p.ipAddress, ip: `20.0.0.${++this.ips}`, fqdn: `${p.ipAddress.dnsNameLabel}.westeurope.azurecontainer.io` },
        instanceView: { state: 'Running', events: [] },
      },
    };
    this.groups.set(name, g);
    return g;
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
      .reply((uri, body) => {
        const name = nameOf(uri);
        this.log.push(`PUT ${name}`);
        this.puts.set(name, [...(this.puts.get(name) ?? []), body as Wire]);
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
      .reply((uri) => {
        const name = nameOf(uri);
        this.log.push(`DELETE ${name}`);
        this.groups.delete(name);
        return [200, {}];
      });
  }
}

/** The runtime's /metrics text for `ok` 200s and `failed` 500s on /score, all within `le` s. */
function metrics(ok: number, failed: number, le = 0.025): string {
  const total = ok + failed;
  return [
    `scoring_requests_total{route="score",status="200"} ${ok}`,
    ...(failed ? [`scoring_requests_total{route="score",status="500"} ${failed}`] : []),
    'scoring_requests_total{route="health",status="200"} 999',
    ...[0.005, 0.025, 0.1, 1].map((b) => `scoring_request_duration_seconds_bucket{route="score",le="${b}"} ${b >= le ? total : 0}`),
    `scoring_request_duration_seconds_bucket{route="score",le="+Inf"} ${total}`,
  ].join('\n');
}

describe('ACI progressive delivery through the service front', () => {
  setupNock();
  describe('', () => {
  let workDir: string;
  let front: RunningFront | undefined;
  let arm0: FakeArm;
  /** Live figures each slot's runtime reports on /metrics (by slot group name). */
  let counters: Record<string, { ok: number; failed: number; le?: number }>;
  const calls: string[] = [];
  /** Host headers of the app's calls to groups (admin, /metrics). */
  const hostsSeen: string[] = [];

  beforeAll(() => {
    nock.enableNetConnect(/127\.0\.0\.1/);
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-aci-front-'));
  });
  afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));
  afterEach(async () => {
    await front?.close();
    front = undefined;
    nock.cleanAll();
  });

  /** Starts the real front from the settings of the front group's last PUT (as ACI would start its container). */
  async function startRealFront(): Promise<RunningFront> {
    const put = arm0.puts.get(frontGroupName('diabetes'))!.at(-1)!;
    const env: NodeJS.ProcessEnv = { MDF_FRONT_HOST: '127.0.0.1' };
    for (const e of put.properties.containers[0].properties.environmentVariables) env[e.name] = e.value ?? e.secureValue;
    env.MDF_PORT = '0';
    env.MDF_FRONT_STATE_FILE = path.join(workDir, `state-${Date.now()}.json`);
    await front?.close();
    front = await startFrontFromEnv(env, () => undefined);
    return front;
  }

  /** The slots' and the front's public addresses: /metrics from `counters`, the front's admin routes to the real front. */
  function installHosts(): void {
    for (const host of HOSTS) installHost(host);
  }

  function installHost(host: string): void {
    nock(host)
      .persist()
      .get('/metrics')
      .reply(function () {
        const host = String(this.req.headers.host).split(':')[0];
        hostsSeen.push(String(this.req.headers.host));
        const name = arm0.at(host) ?? '?';
        calls.push(`metrics ${name} key=${this.req.headers[METRICS_KEY_HEADER] === metricsHeaderValue(KEYS)}`);
        const c = counters[name];
        return c ? [200, metrics(c.ok, c.failed, c.le)] : [404, 'no such group'];
      });
    const toFront = (method: 'GET' | 'PUT') =>
      async function (this: { req: { headers: Record<string, string | string[]> } }, uri: string, body: unknown): Promise<[number, string]> {
        hostsSeen.push(String(this.req.headers.host));
        if (!front && arm0.puts.has(frontGroupName('diabetes'))) await startRealFront();
        if (!front) return [503, 'front not started'];
        const host = String(this.req.headers.host).split(':')[0];
        if (arm0.at(host) !== frontGroupName('diabetes')) return [404, 'not the front'];
        const text = typeof body === 'string' ? body : body ? JSON.stringify(body) : '';
        calls.push(`front ${method}${method === 'PUT' ? ` ${JSON.stringify(JSON.parse(text).weights)} g${JSON.parse(text).generation}` : ''}`);
        const r = await fetch(`http://127.0.0.1:${front.port}${uri}`, {
          method,
          headers: { 'x-mdf-front-signature': String(this.req.headers['x-mdf-front-signature'] ?? '') },
          ...(method === 'PUT' ? { body: text } : {}),
        });
        return [r.status, await r.text()];
      };
    nock(host).persist().get('/.mdf/front/state').reply(toFront('GET') as any);
    nock(host).persist().put('/.mdf/front/state').reply(toFront('PUT') as any);
  }

  function setup() {
    arm0 = new FakeArm();
    arm0.add('diabetes-blue', { slot: 'blue', image: IMAGE(3), label: STABLE, tags: { 'mdf-active': 'true', 'mdf-stable-label': STABLE } });
    arm0.add('diabetes-green', { slot: 'green', image: IMAGE(4), tags: { 'mdf-stable-label': STABLE } });
    arm0.install();
    counters = { 'diabetes-blue': { ok: 1000, failed: 0 }, 'diabetes-green': { ok: 0, failed: 0 } };
    calls.length = 0;
    hostsSeen.length = 0;
    installHosts();
    const logs = captureLog();
    const secretsAsked: string[] = [];
    const target = new AciTarget({
      clients: testClients(),
      config: testConfig(),
      timing: FAST,
      log: logs.log,
      secrets: {
        keys: async (n) => (secretsAsked.push(`keys ${n}`), KEYS),
        frontKey: async (n) => (secretsAsked.push(`front ${n}`), ADMIN),
      },
    });
    return { target, logs, secretsAsked };
  }

  /** The first setTrafficWeights creates the front (the real front starts at its first admin call, from ARM's copy). */
  const firstStep = (target: AciTarget, weights: Record<string, number>, mirror?: { slot: string; percent: number; tolerance: number }) =>
    target.setTrafficWeights('diabetes', weights, mirror ? { mirror } : {});

  test('canary 10 → 50 → 100 with a shadow phase: the front is created once (stable name moved to it), each step is one signed state write, gates read each slot\'s /metrics, promotion is a front switch', async () => {
    const { target, logs, secretsAsked } = setup();
    const blueOwn = aciDnsLabel('diabetes-blue', SCOPE);

    // Shadow phase: all live traffic on blue, 20 % copied to green.
    const s0 = await firstStep(target, { blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 1e-6 });
    expect(arm0.log).toEqual(['PUT diabetes-blue', 'PUT diabetes-front']);
    // 1. The stable name is taken off the serving group: same group, its own name, its keys given again.
    const bluePut = arm0.puts.get('diabetes-blue')![0];
    expect(bluePut.properties.ipAddress.dnsNameLabel).toBe(blueOwn);
    expect(bluePut.properties.containers[0].properties.environmentVariables).toEqual([
      { name: 'MDF_PORT', value: '5001' },
      { name: 'MDF_PRIMARY_KEY', secureValue: KEYS.primaryKey },
      { name: 'MDF_SECONDARY_KEY', secureValue: KEYS.secondaryKey },
    ]);
    // 2. The front: the new version's image running front-cli.js, on the stable name and the service's port.
    const fp = arm0.puts.get('diabetes-front')![0];
    const c = fp.properties.containers[0].properties;
    expect(c.image).toBe(IMAGE(4));
    expect(c.command).toEqual(['node', '/var/azureml-app/app/dist/runtime/front-cli.js']);
    expect(c.livenessProbe).toBeUndefined();
    expect(c.volumeMounts).toEqual([{ name: 'state', mountPath: '/var/mdf-front' }]);
    expect(fp.properties.volumes).toEqual([{ name: 'state', emptyDir: {} }]);
    expect(fp.properties.ipAddress).toMatchObject({ type: 'Public', dnsNameLabel: STABLE, ports: [{ port: 5001, protocol: 'TCP' }] });
    expect(fp.properties.imageRegistryCredentials).toEqual([{ server: 'mdfregistry.azurecr.io', identity: TEST_ENV.MANAGED_IDENTITY_RESOURCE_ID }]);
    expect(fp.tags).toMatchObject({ 'mdf-service': 'diabetes', 'mdf-role': 'front', 'mdf-stable-label': STABLE, 'mdf-managed-by': 'model-deploy-flow' });
    expect(fp.tags['mdf-active']).toBeUndefined();
    const env = Object.fromEntries(c.environmentVariables.map((e: Wire) => [e.name, e]));
    expect(env.MDF_FRONT_SERVICE).toEqual({ name: 'MDF_FRONT_SERVICE', value: 'diabetes' });
    expect(env.MDF_FRONT_STATE_FILE).toEqual({ name: 'MDF_FRONT_STATE_FILE', value: '/var/mdf-front/state.json' });
    // Secrets are secure values only.
    expect(env.MDF_FRONT_ADMIN_KEY).toEqual({ name: 'MDF_FRONT_ADMIN_KEY', secureValue: ADMIN });
    expect(env.MDF_PRIMARY_KEY).toEqual({ name: 'MDF_PRIMARY_KEY', secureValue: KEYS.primaryKey });
    expect(JSON.parse(env.MDF_FRONT_STATE.secureValue)).toEqual({ generation: 1, serving: 'blue', slots: { blue: `http://${blueOwn}.westeurope.azurecontainer.io:5001` }, weights: {} });
    // 3. The state of the shadow phase, signed; the figures: both slots' /metrics with the metrics key.
    expect(calls).toEqual(['front GET', 'front PUT {"blue":100,"green":0} g2', 'metrics diabetes-blue key=true', 'metrics diabetes-green key=true']);
    expect(s0).toMatchObject({ weights: { blue: 100, green: 0 }, serving: 'blue', mirror: { slot: 'green', percent: 20 }, slots: { blue: { requests: 1000, errors: 0 }, green: { requests: 0 } } });
    expect(s0.epoch).toMatch(/^aci-[0-9a-f]{16}$/);
    expect(front!.state().slots).toEqual({ blue: `http://${blueOwn}.westeurope.azurecontainer.io:5001`, green: `http://${arm0.fqdn('diabetes-green')}:5001` });

    // End of the bake: the window's figures (green saw the copies on its /metrics; the front has the comparison).
    counters['diabetes-blue'].ok += 500;
    counters['diabetes-green'].ok += 100;
    calls.length = 0;
    const s0end = await target.trafficSnapshot('diabetes');
    expect(calls).toEqual(['front GET', 'metrics diabetes-blue key=true', 'metrics diabetes-green key=true']);
    expect(s0end.epoch).toBe(s0.epoch);
    expect(windowOf(s0, s0end, 'blue')).toMatchObject({ requests: 500, errors: 0, p99Ms: expect.any(Number) });
    expect(shadowWindowOf(s0, s0end, 'green')).toMatchObject({ mirrored: 0, compared: 0 });

    // Steps 10 → 50 → 100: one signed write each, no ARM write; a retried step writes nothing.
    const steps: Array<[number, ReturnType<typeof windowOf>]> = [];
    for (const w of [10, 50, 100]) {
      calls.length = 0;
      const start = await target.setTrafficWeights('diabetes', { blue: 100 - w, green: w });
      expect(calls[1]).toBe(`front PUT {"blue":${100 - w},"green":${w}} g${w === 10 ? 3 : w === 50 ? 4 : 5}`);
      calls.length = 0;
      await target.setTrafficWeights('diabetes', { blue: 100 - w, green: w });
      expect(calls.filter((x) => x.startsWith('front PUT'))).toEqual([]);
      counters['diabetes-green'].ok += w * 10;
      counters['diabetes-blue'].ok += (100 - w) * 10;
      const end = await target.trafficSnapshot('diabetes');
      steps.push([w, windowOf(start, end, 'green')]);
    }
    expect(steps.map(([w, f]) => [w, f.requests, f.errors])).toEqual([
      [10, 100, 0],
      [50, 500, 0],
      [100, 1000, 0],
    ]);
    expect(arm0.log).toEqual(['PUT diabetes-blue', 'PUT diabetes-front']);

    // Promotion: the front serves green alone (no DNS move, no restart), tags follow; the scoring URI is the front's.
    calls.length = 0;
    const uris = await target.switchTraffic('diabetes', 'green', KEYS);
    expect(uris).toEqual({ scoringUri: `http://${STABLE}.westeurope.azurecontainer.io:5001/score`, swaggerUri: `http://${STABLE}.westeurope.azurecontainer.io:5001/swagger.json` });
    expect(front!.state()).toMatchObject({ serving: 'green', slots: { green: `http://${arm0.fqdn('diabetes-green')}:5001` }, weights: {} });
    expect(arm0.log.slice(2)).toEqual(['LIST', expect.stringMatching(/^PATCH diabetes-green .*"mdf-active":"true"/), expect.stringMatching(/^PATCH diabetes-blue /)]);
    expect(arm0.groups.get('diabetes-blue')!.tags['mdf-active']).toBeUndefined();
    // Retiring blue: the front no longer lists it, so only its group goes.
    await target.deleteSlot('diabetes', 'blue');
    expect(arm0.log.at(-1)).toBe('DELETE diabetes-blue');
    expect(arm0.groups.has('diabetes-front')).toBe(true);
    expect(secretsAsked.every((s) => s.endsWith(' diabetes'))).toBe(true);
    // The app calls the front and the slots by their current IP (a just-moved DNS name may not resolve yet).
    expect(hostsSeen.length).toBeGreaterThan(10);
    expect(hostsSeen.filter((h) => !/^20\.0\.0\.\d+:5001$/.test(h))).toEqual([]);
    expect(logs.lines.join('\n')).not.toMatch(/SECRET-KEY|token-secret/);
    expect(logs.lines.join('\n')).not.toContain(ADMIN);
  });

  test('a failing canary is rolled back: weights back to 0 %, the new slot taken out of the front, then deleted; the serving slot keeps the traffic', async () => {
    const { target } = setup();
    const start = await firstStep(target, { blue: 90, green: 10 });
    expect(front!.state().weights).toEqual({ blue: 90, green: 10 });
    // 5 % of green's requests fail in the window: the max_error_rate gate (0.01) fails.
    counters['diabetes-green'] = { ok: 95, failed: 5 };
    counters['diabetes-blue'].ok += 900;
    const end = await target.trafficSnapshot('diabetes');
    expect(windowOf(start, end, 'green')).toMatchObject({ requests: 100, errors: 5, errorRate: 0.05 });
    calls.length = 0;
    await target.setTrafficWeights('diabetes', { blue: 100, green: 0 });
    expect(calls[1]).toBe('front PUT {"blue":100,"green":0} g3');
    expect(front!.state()).toMatchObject({ serving: 'blue', weights: { blue: 100, green: 0 } });
    // The deploy saga's rollback: traffic on the serving slot, then the new slot removed.
    arm0.log.length = 0;
    calls.length = 0;
    await target.switchTraffic('diabetes', 'blue');
    await target.deleteSlot('diabetes', 'green');
    expect(front!.state()).toMatchObject({ serving: 'blue', slots: { blue: expect.any(String) }, weights: {} });
    expect(Object.keys(front!.state().slots)).toEqual(['blue']);
    expect(arm0.log.filter((l) => !l.startsWith('LIST') && !l.startsWith('PATCH'))).toEqual(['DELETE diabetes-green']);
    expect(arm0.groups.get('diabetes-blue')!.tags['mdf-active']).toBe('true');
  });

  test('a slot still weighted is never taken out of the front; a restarted slot changes the epoch; key rotation restarts the front with its current state', async () => {
    const { target } = setup();
    const start = await firstStep(target, { blue: 50, green: 50 });
    calls.length = 0;
    await target.deleteSlot('diabetes', 'green');
    expect(calls.filter((x) => x.startsWith('front PUT'))).toEqual([]);
    expect(front!.state().weights).toEqual({ blue: 50, green: 50 });
    // (the group itself was deleted: ACI's own answer now; put it back for the rest)
    arm0.add('diabetes-green', { slot: 'green', image: IMAGE(4) });
    arm0.groups.get('diabetes-green')!.properties.containers[0].properties.instanceView.restartCount = 1;
    const after = await target.trafficSnapshot('diabetes');
    expect(after.epoch).not.toBe(start.epoch);

    // New keys: the front group is PUT again in place with them, its admin key and the state in force.
    const NEW = { primaryKey: 'PRIMARY-SECRET-KEY-NEW', secondaryKey: KEYS.secondaryKey };
    arm0.log.length = 0;
    await target.updateKeys('diabetes', NEW);
    expect(arm0.log).toEqual(['LIST', 'PUT diabetes-front', 'PUT diabetes-blue']);
    const put = arm0.puts.get('diabetes-front')!.at(-1)!;
    const env = Object.fromEntries(put.properties.containers[0].properties.environmentVariables.map((e: Wire) => [e.name, e]));
    expect(env.MDF_PRIMARY_KEY).toEqual({ name: 'MDF_PRIMARY_KEY', secureValue: NEW.primaryKey });
    expect(env.MDF_FRONT_ADMIN_KEY).toEqual({ name: 'MDF_FRONT_ADMIN_KEY', secureValue: ADMIN });
    expect(JSON.parse(env.MDF_FRONT_STATE.secureValue)).toMatchObject({ generation: 2, weights: { blue: 50, green: 50 } });
    expect(put.properties.volumes).toEqual([{ name: 'state', emptyDir: {} }]);
    expect(put.properties.ipAddress.dnsNameLabel).toBe(STABLE);
    expect(put.tags['mdf-keys-digest']).toMatch(/^[0-9a-f]{32}$/);
    // Same keys again: nothing is PUT.
    arm0.log.length = 0;
    await target.updateKeys('diabetes', NEW);
    expect(arm0.log).toEqual(['LIST']);
  });

  test('a front that does not start puts the stable name back on the serving group and fails the step with the reason', async () => {
    const { target } = setup();
    // ACI reports the front's container crash-looping.
    const orig = (arm0 as unknown as { store: (n: string, b: Wire) => Wire }).store.bind(arm0);
    (arm0 as unknown as { store: (n: string, b: Wire) => Wire }).store = (n, b) => {
      const g = orig(n, b);
      if (n === 'diabetes-front') g.properties.containers[0].properties.instanceView = { restartCount: 5, currentState: { state: 'Waiting', detailStatus: 'CrashLoopBackOff' }, events: [] };
      return g;
    };
    arm().persist().get((uri) => uri.includes('/containerGroups/diabetes-front/containers/model/logs?')).reply(200, { content: 'Error: Cannot find module front-cli.js' });
    const failure = await target.setTrafficWeights("diabetes", { blue: 90, green: 10 }).catch((e) => e);
    expect({ code: failure.code, message: failure.message }).toMatchObject({ code: "FrontStartFailed", message: expect.stringMatching(/keeps crashing[^]*Cannot find module front-cli.js[^]*back on diabetes-blue/) });
    expect(arm0.log).toEqual(['PUT diabetes-blue', 'PUT diabetes-front', 'DELETE diabetes-front', 'PUT diabetes-blue']);
    expect(arm0.groups.get('diabetes-blue')!.properties.ipAddress.dnsNameLabel).toBe(STABLE);
    expect(arm0.groups.has('diabetes-front')).toBe(false);
  });

  test('a slot that does not exist is SlotNotFound before anything is written; bad weights are refused', async () => {
    const { target } = setup();
    arm0.groups.delete('diabetes-green');
    await expect(target.setTrafficWeights('diabetes', { blue: 90, green: 10 })).rejects.toMatchObject({ code: 'SlotNotFound' });
    await expect(target.setTrafficWeights('diabetes', { blue: 90, green: 20 })).rejects.toMatchObject({ code: 'InvalidTrafficWeights' });
    await expect(target.trafficSnapshot('diabetes')).rejects.toMatchObject({ code: 'FrontNotFound' });
    expect(arm0.log).toEqual([]);
  });
});
});
