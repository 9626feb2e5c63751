/**
 * Progressive delivery on ACI at the wire: the service front (shared/azure/aci-front.ts) as ARM sees it — the
 * stable DNS name taken off the serving group, the front's container group (front-cli.js from its own image,
 * secure admin key / state / keys, an emptyDir for its saved state, no probes) — and the rollout's calls: a signed
 * state write per step (only when it changes), the gate figures read from each slot's own runtime /metrics with
 * the metrics key, the shadow figures from the front, the promotion as a front switch (no gap, no DNS move), the
 * rollback (weights back, the new slot taken out of the front, then deleted) and key rotation of the front.
 *
 * ARM is a small in-memory model answering through nock, and the front's public address a REAL front started from
 * the settings the target PUT in its container group (test/azure/aci-world.ts).
 */
import type { AciTarget } from '../../shared/azure/aci-target';
import { aciDnsLabel } from '../../shared/azure/names';
import { shadowWindowOf, windowOf } from '../../shared/rollout/traffic';
import { AciWorld, ADMIN, FRONT_IMAGE, IMAGE, KEYS, SCOPE, STABLE, type Wire } from './aci-world';
import { TEST_ENV, arm, nock, setupNock } from './helpers';

describe('ACI progressive delivery through the service front', () => {
  setupNock();
  describe('', () => {
  const w = new AciWorld();
  beforeAll(() => nock.enableNetConnect(/127\.0\.0\.1/));
  afterAll(() => w.dispose());
  afterEach(() => w.reset());

  function setup() {
    const target = w.setup();
    return { target, logs: w.logs, secretsAsked: w.secretsAsked };
  }

  /** The first setTrafficWeights creates the front (the real front starts at its first admin call, from ARM's copy). */
  const firstStep = (target: AciTarget, weights: Record<string, number>, mirror?: { slot: string; percent: number; tolerance: number }) =>
    target.setTrafficWeights('diabetes', weights, mirror ? { mirror } : {});

  test('canary 10 → 50 → 100 with a shadow phase: the front is created once (stable name moved to it), each step is one signed state write, gates read each slot\'s /metrics, promotion is a front switch', async () => {
    const { target, logs, secretsAsked } = setup();
    const blueOwn = aciDnsLabel('diabetes-blue', SCOPE);

    // Shadow phase: all live traffic on blue, 20 % copied to green.
    const s0 = await firstStep(target, { blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 1e-6 });
    expect(w.arm.log).toEqual(['PUT diabetes-blue', 'PUT diabetes-front']);
    // 1. The stable name is taken off the serving group: same group, its own name, its keys given again.
    const bluePut = w.arm.puts.get('diabetes-blue')![0];
    expect(bluePut.properties.ipAddress.dnsNameLabel).toBe(blueOwn);
    expect(bluePut.properties.containers[0].properties.environmentVariables).toEqual([
      { name: 'MDF_PORT', value: '5001' },
      { name: 'MDF_PRIMARY_KEY', secureValue: KEYS.primaryKey },
      { name: 'MDF_SECONDARY_KEY', secureValue: KEYS.secondaryKey },
    ]);
    // 2. The front: its own image (the runtime alone: test/azure/aci-front-image.test.ts) running front-cli.js, on the stable name and the service's port.
    const fp = w.arm.puts.get('diabetes-front')![0];
    const c = fp.properties.containers[0].properties;
    expect(c.image).toBe(FRONT_IMAGE);
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
    expect(w.calls).toEqual(['front GET', 'front PUT {"blue":100,"green":0} g2', 'metrics diabetes-blue key=true', 'metrics diabetes-green key=true']);
    expect(s0).toMatchObject({ weights: { blue: 100, green: 0 }, serving: 'blue', mirror: { slot: 'green', percent: 20 }, slots: { blue: { requests: 1000, errors: 0 }, green: { requests: 0 } } });
    // The epoch is the front's (a new front starts its counters again); each slot's container is a part.
    expect(s0.epoch).toBe(`aci-${w.front!.front.epoch}`);
    expect(Object.values(s0.parts ?? {}).map((p) => p.slot).sort()).toEqual(['blue', 'green']);
    expect(w.front!.state().slots).toEqual({ blue: `http://${blueOwn}.westeurope.azurecontainer.io:5001`, green: `http://${w.arm.fqdn('diabetes-green')}:5001` });

    // End of the bake: the window's figures (green saw the copies on its /metrics; the front has the comparison).
    w.counters['diabetes-blue'].ok += 500;
    w.counters['diabetes-green'].ok += 100;
    w.calls.length = 0;
    const s0end = await target.trafficSnapshot('diabetes');
    expect(w.calls).toEqual(['front GET', 'metrics diabetes-blue key=true', 'metrics diabetes-green key=true']);
    expect(s0end.epoch).toBe(s0.epoch);
    expect(windowOf(s0, s0end, 'blue')).toMatchObject({ requests: 500, errors: 0, p99Ms: expect.any(Number) });
    expect(shadowWindowOf(s0, s0end, 'green')).toMatchObject({ mirrored: 0, compared: 0 });

    // Steps 10 → 50 → 100: one signed write each, no ARM write; a retried step writes nothing.
    const steps: Array<[number, ReturnType<typeof windowOf>]> = [];
    for (const pct of [10, 50, 100]) {
      w.calls.length = 0;
      const start = await target.setTrafficWeights('diabetes', { blue: 100 - pct, green: pct });
      expect(w.calls[1]).toBe(`front PUT {"blue":${100 - pct},"green":${pct}} g${pct === 10 ? 3 : pct === 50 ? 4 : 5}`);
      w.calls.length = 0;
      await target.setTrafficWeights('diabetes', { blue: 100 - pct, green: pct });
      expect(w.calls.filter((x) => x.startsWith('front PUT'))).toEqual([]);
      w.counters['diabetes-green'].ok += pct * 10;
      w.counters['diabetes-blue'].ok += (100 - pct) * 10;
      const end = await target.trafficSnapshot('diabetes');
      steps.push([pct, windowOf(start, end, 'green')]);
    }
    expect(steps.map(([w, f]) => [w, f.requests, f.errors])).toEqual([
      [10, 100, 0],
      [50, 500, 0],
      [100, 1000, 0],
    ]);
    expect(w.arm.log).toEqual(['PUT diabetes-blue', 'PUT diabetes-front']);

    // Promotion: the front serves green alone (no DNS move, no restart), tags follow; the scoring URI is the front's.
    w.calls.length = 0;
    const uris = await target.switchTraffic('diabetes', 'green', KEYS);
    expect(uris).toEqual({ scoringUri: `http://${STABLE}.westeurope.azurecontainer.io:5001/score`, swaggerUri: `http://${STABLE}.westeurope.azurecontainer.io:5001/swagger.json` });
    expect(w.front!.state()).toMatchObject({ serving: 'green', slots: { green: `http://${w.arm.fqdn('diabetes-green')}:5001` }, weights: {} });
    expect(w.arm.log.slice(2)).toEqual(['LIST', expect.stringMatching(/^PATCH diabetes-green .*"mdf-active":"true"/), expect.stringMatching(/^PATCH diabetes-blue /)]);
    expect(w.arm.groups.get('diabetes-blue')!.tags['mdf-active']).toBeUndefined();
    // Retiring blue: the front no longer lists it, so only its group goes.
    await target.deleteSlot('diabetes', 'blue');
    expect(w.arm.log.at(-1)).toBe('DELETE diabetes-blue');
    expect(w.arm.groups.has('diabetes-front')).toBe(true);
    expect(secretsAsked.every((s) => s.endsWith(' diabetes'))).toBe(true);
    // The app w.calls the front and the slots by their current IP (a just-moved DNS name may not resolve yet).
    expect(w.hostsSeen.length).toBeGreaterThan(10);
    expect(w.hostsSeen.filter((h) => !/^20\.0\.0\.\d+:5001$/.test(h))).toEqual([]);
    expect(logs.lines.join('\n')).not.toMatch(/SECRET-KEY|token-secret/);
    expect(logs.lines.join('\n')).not.toContain(ADMIN);
  });

  test('a failing canary is rolled back: weights back to 0 %, the new slot taken out of the front, then deleted; the serving slot keeps the traffic', async () => {
    const { target } = setup();
    const start = await firstStep(target, { blue: 90, green: 10 });
    expect(w.front!.state().weights).toEqual({ blue: 90, green: 10 });
    // 5 % of green's requests fail in the window: the max_error_rate gate (0.01) fails.
    w.counters['diabetes-green'] = { ok: 95, failed: 5 };
    w.counters['diabetes-blue'].ok += 900;
    const end = await target.trafficSnapshot('diabetes');
    expect(windowOf(start, end, 'green')).toMatchObject({ requests: 100, errors: 5, errorRate: 0.05 });
    w.calls.length = 0;
    await target.setTrafficWeights('diabetes', { blue: 100, green: 0 });
    expect(w.calls[1]).toBe('front PUT {"blue":100,"green":0} g3');
    expect(w.front!.state()).toMatchObject({ serving: 'blue', weights: { blue: 100, green: 0 } });
    // The deploy saga's rollback: traffic on the serving slot, then the new slot removed.
    w.arm.log.length = 0;
    w.calls.length = 0;
    await target.switchTraffic('diabetes', 'blue');
    await target.deleteSlot('diabetes', 'green');
    expect(w.front!.state()).toMatchObject({ serving: 'blue', slots: { blue: expect.any(String) }, weights: {} });
    expect(Object.keys(w.front!.state().slots)).toEqual(['blue']);
    expect(w.arm.log.filter((l) => !l.startsWith('LIST') && !l.startsWith('PATCH'))).toEqual(['DELETE diabetes-green']);
    expect(w.arm.groups.get('diabetes-blue')!.tags['mdf-active']).toBe('true');
  });

  test('a slot still weighted is never taken out of the front; a restarted slot counts from zero in the window, which goes on; key rotation restarts the front with its current state', async () => {
    const { target } = setup();
    const start = await firstStep(target, { blue: 50, green: 50 });
    w.counters['diabetes-green'].ok = 40;
    const mid = await target.trafficSnapshot('diabetes');
    expect(windowOf(start, mid, 'green')).toMatchObject({ requests: 40 });
    w.calls.length = 0;
    await target.deleteSlot('diabetes', 'green');
    expect(w.calls.filter((x) => x.startsWith('front PUT'))).toEqual([]);
    expect(w.front!.state().weights).toEqual({ blue: 50, green: 50 });
    // (the group itself was deleted: ACI's own answer now; put it back for the rest)
    w.arm.add('diabetes-green', { slot: 'green', image: IMAGE(4) });
    w.arm.groups.get('diabetes-green')!.properties.containers[0].properties.instanceView.restartCount = 1;
    // Its runtime started again: its counters too (7 requests since). The epoch is the front's: the window goes on,
    // the restarted container is a new part that counts from zero (not 7 − 40), the other slot as before.
    w.counters['diabetes-green'] = { ok: 7, failed: 0 };
    w.counters['diabetes-blue'].ok += 25;
    const after = await target.trafficSnapshot('diabetes');
    expect(after.epoch).toBe(start.epoch);
    expect(windowOf(mid, after, 'green')).toMatchObject({ requests: 7, errors: 0 });
    expect(windowOf(mid, after, 'blue')).toMatchObject({ requests: 25 });
    expect(windowOf(start, after, 'green')).toMatchObject({ requests: 7 });

    // New keys: the front group is PUT again in place with them, its admin key and the state in force.
    const NEW = { primaryKey: 'PRIMARY-SECRET-KEY-NEW', secondaryKey: KEYS.secondaryKey };
    w.arm.log.length = 0;
    await target.updateKeys('diabetes', NEW);
    expect(w.arm.log).toEqual(['LIST', 'PUT diabetes-front', 'PUT diabetes-blue']);
    const put = w.arm.puts.get('diabetes-front')!.at(-1)!;
    const env = Object.fromEntries(put.properties.containers[0].properties.environmentVariables.map((e: Wire) => [e.name, e]));
    expect(env.MDF_PRIMARY_KEY).toEqual({ name: 'MDF_PRIMARY_KEY', secureValue: NEW.primaryKey });
    expect(env.MDF_FRONT_ADMIN_KEY).toEqual({ name: 'MDF_FRONT_ADMIN_KEY', secureValue: ADMIN });
    expect(JSON.parse(env.MDF_FRONT_STATE.secureValue)).toMatchObject({ generation: 2, weights: { blue: 50, green: 50 } });
    expect(put.properties.volumes).toEqual([{ name: 'state', emptyDir: {} }]);
    expect(put.properties.ipAddress.dnsNameLabel).toBe(STABLE);
    expect(put.tags['mdf-keys-digest']).toMatch(/^[0-9a-f]{32}$/);
    // Same keys again: nothing is PUT.
    w.arm.log.length = 0;
    await target.updateKeys('diabetes', NEW);
    expect(w.arm.log).toEqual(['LIST']);
  });

  test('a front that does not start puts the stable name back on the serving group and fails the step with the reason', async () => {
    const { target } = setup();
    // ACI reports the front's container crash-looping.
    const orig = (w.arm as unknown as { store: (n: string, b: Wire) => Wire }).store.bind(w.arm);
    (w.arm as unknown as { store: (n: string, b: Wire) => Wire }).store = (n, b) => {
      const g = orig(n, b);
      if (n === 'diabetes-front') g.properties.containers[0].properties.instanceView = { restartCount: 5, currentState: { state: 'Waiting', detailStatus: 'CrashLoopBackOff' }, events: [] };
      return g;
    };
    arm().persist().get((uri) => uri.includes('/containerGroups/diabetes-front/containers/model/logs?')).reply(200, { content: 'Error: Cannot find module front-cli.js' });
    const failure = await target.setTrafficWeights("diabetes", { blue: 90, green: 10 }).catch((e) => e);
    expect({ code: failure.code, message: failure.message }).toMatchObject({ code: "FrontStartFailed", message: expect.stringMatching(/keeps crashing[^]*Cannot find module front-cli.js[^]*back on diabetes-blue/) });
    expect(w.arm.log).toEqual(['PUT diabetes-blue', 'PUT diabetes-front', 'DELETE diabetes-front', 'PUT diabetes-blue']);
    expect(w.arm.groups.get('diabetes-blue')!.properties.ipAddress.dnsNameLabel).toBe(STABLE);
    expect(w.arm.groups.has('diabetes-front')).toBe(false);
  });

  test('a slot that does not exist is SlotNotFound before anything is written; bad weights are refused', async () => {
    const { target } = setup();
    w.arm.groups.delete('diabetes-green');
    await expect(target.setTrafficWeights('diabetes', { blue: 90, green: 10 })).rejects.toMatchObject({ code: 'SlotNotFound' });
    await expect(target.setTrafficWeights('diabetes', { blue: 90, green: 20 })).rejects.toMatchObject({ code: 'InvalidTrafficWeights' });
    await expect(target.trafficSnapshot('diabetes')).rejects.toMatchObject({ code: 'FrontNotFound' });
    expect(w.arm.log).toEqual([]);
  });
});
});
