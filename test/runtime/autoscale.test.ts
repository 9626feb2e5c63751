/** Replica planner (the seed's formula) and the autoscale router over local replicas. */
import * as path from 'node:path';
import { desiredReplicas, planReplicas, startLocalReplicas, type AutoscaleRouter } from '../../runtime/autoscale';
import { EX, post, waitFor } from './helpers';

describe('planReplicas', () => {
  it("implements ceil(targetRps × requestSeconds / targetUtilization / maxConcurrentPerReplica)", () => {
    // The seed guide's example: 20 rps, 10 s per request, 70 %, 1 request per container → 286.
    expect(planReplicas({ targetRps: 20, requestSeconds: 10, targetUtilization: 0.7, maxConcurrentPerReplica: 1 })).toBe(286);
    expect(planReplicas({ targetRps: 20, requestSeconds: 10, targetUtilization: 70, maxConcurrentPerReplica: 1 })).toBe(286);
    expect(planReplicas({ targetRps: 20, requestSeconds: 10, targetUtilization: 0.7, maxConcurrentPerReplica: 4 })).toBe(72);
    expect(planReplicas({ targetRps: 7, requestSeconds: 1, targetUtilization: 0.7, maxConcurrentPerReplica: 1 })).toBe(10);
    expect(planReplicas({ targetRps: 0, requestSeconds: 1, targetUtilization: 0.7, maxConcurrentPerReplica: 1 })).toBe(1);
    expect(planReplicas({ targetRps: 100, requestSeconds: 1, targetUtilization: 0.7, maxConcurrentPerReplica: 1, minReplicas: 2, maxReplicas: 10 })).toBe(10);
  });

  it('rejects impossible inputs with a code', () => {
    expect(() => planReplicas({ targetRps: 1, requestSeconds: 1, targetUtilization: 0, maxConcurrentPerReplica: 1 })).toThrow(expect.objectContaining({ code: 'InvalidUtilization' }));
    expect(() => planReplicas({ targetRps: 1, requestSeconds: 1, targetUtilization: 0.5, maxConcurrentPerReplica: 0 })).toThrow(expect.objectContaining({ code: 'InvalidPlan' }));
  });

  it('desiredReplicas keeps busy/replicas under the target, within min/max', () => {
    expect(desiredReplicas(0, 0.7, 1, 4)).toBe(1);
    expect(desiredReplicas(1, 0.7, 1, 4)).toBe(2);
    expect(desiredReplicas(3, 0.7, 1, 10)).toBe(5);
    expect(desiredReplicas(7, 70, 1, 10)).toBe(10);
    expect(desiredReplicas(9, 0.7, 1, 4)).toBe(4);
  });
});

describe('AutoscaleRouter over local replicas', () => {
  const script = path.join(EX, 'node/score.mjs');
  let router: AutoscaleRouter | undefined;
  afterEach(async () => {
    await router?.stop();
    router = undefined;
  });

  it('scales up when busy replicas / replicas exceeds the target, and back down after the delay', async () => {
    router = await startLocalReplicas(
      { entryScript: script, workers: 1, maxConcurrent: 4, maxWaitMs: 2000, accessLog: false, log: () => undefined },
      { minReplicas: 1, maxReplicas: 3, targetUtilization: 0.7, refreshMs: 50, scaleUpDelayMs: 0, scaleDownDelayMs: 600 },
    );
    expect(router.replicaCount).toBe(1);
    expect((await fetch(`${router.url}/`)).status).toBe(200);
    // Keep the only replica busy: 1/1 = 100 % > 70 % → ceil(1 / 0.7) = 2 replicas.
    const load = Array.from({ length: 2 }, () => post(`${router!.url}/score`, { action: 'sleep', ms: 1500 }));
    await waitFor(() => router!.replicaCount === 2);
    expect(router.events[0]).toMatchObject({ event: 'scale_up', from: 1, to: 2 });
    // A request now goes to the idle new replica and is answered at once (2 busy of 2 may add a third).
    expect(await (await post(`${router.url}/score`, { text: 'new' })).json()).toEqual({ upper: 'NEW' });
    expect(router.replicaCount).toBeLessThanOrEqual(3);
    expect((await Promise.all(load)).map((r) => r.status)).toEqual([200, 200]);
    // Idle: 0 busy → desired 1 (the minimum); removed only after the scale-down delay.
    await waitFor(() => router!.replicaCount === 1);
    const last = router.events[router.events.length - 1];
    expect(last).toMatchObject({ event: 'scale_down', to: 1, busy: 0 });
    expect(Math.max(...router.events.map((e) => e.to))).toBeLessThanOrEqual(3);
    expect((await post(`${router.url}/score`, { text: 'still' })).status).toBe(200);
  });

  it('does not scale down while busy / replicas stays at or under the target; then shrinks to min', async () => {
    router = await startLocalReplicas(
      { entryScript: script, workers: 1, maxConcurrent: 2, maxWaitMs: 2000, accessLog: false, log: () => undefined },
      { minReplicas: 1, maxReplicas: 2, initialReplicas: 2, targetUtilization: 0.7, refreshMs: 50, scaleDownDelayMs: 400 },
    );
    expect(router.replicaCount).toBe(2);
    // 1 busy of 2 = 50 % ≤ 70 %, but ceil(1 / 0.7) = 2 are still needed: no scale-down.
    const long = post(`${router.url}/score`, { action: 'sleep', ms: 1200 });
    await waitFor(() => router!.busyReplicas === 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(router.replicaCount).toBe(2);
    expect(router.events).toEqual([]);
    expect((await long).status).toBe(200);
    await waitFor(() => router!.replicaCount === 1);
    expect(router.events).toEqual([expect.objectContaining({ event: 'scale_down', from: 2, to: 1 })]);
  });

  it('resize: the pool grows and shrinks in place (the replicas that stay are the same servers; idle ones leave first, a request in flight is answered)', async () => {
    router = await startLocalReplicas(
      { entryScript: script, workers: 1, maxConcurrent: 2, maxWaitMs: 2000, accessLog: false, log: () => undefined },
      { minReplicas: 1, maxReplicas: 1, autoscale: false },
    );
    const first = router.replicaUrls[0];
    await router.resize({ minReplicas: 3, maxReplicas: 3, autoscale: false, replicas: 3 });
    expect(router.replicaCount).toBe(3);
    expect(router.replicaUrls[0]).toBe(first);
    // Shrink while one replica is busy: the idle ones leave; the busy one stays and answers.
    const busy = post(`${router.url}/score`, { action: 'sleep', ms: 600 });
    await waitFor(() => router!.busyReplicas === 1);
    await router.resize({ minReplicas: 1, maxReplicas: 1, autoscale: false });
    expect(router.replicaCount).toBe(1);
    expect((await busy).status).toBe(200);
    expect((await post(`${router.url}/score`, { text: 'one' })).status).toBe(200);
    // Autoscale bounds: at least the new minimum now, scaled by load from there.
    await router.resize({ minReplicas: 2, maxReplicas: 3, autoscale: true, targetUtilization: 0.7, refreshMs: 50 });
    expect(router.replicaCount).toBe(2);
    await expect(router.resize({ minReplicas: 2, maxReplicas: 1, autoscale: false })).rejects.toMatchObject({ code: 'InvalidReplicaRange' });
    expect(router.replicaCount).toBe(2);
  });

  it('spreads requests over fixed replicas (autoscale off)', async () => {
    router = await startLocalReplicas(
      { entryScript: script, workers: 1, maxConcurrent: 1, maxWaitMs: 2000, accessLog: false, log: () => undefined },
      { minReplicas: 1, maxReplicas: 3, initialReplicas: 3, autoscale: false },
    );
    await Promise.all(Array.from({ length: 3 }, () => post(`${router!.url}/score`, { action: 'sleep', ms: 200 })));
    const perReplica = router.replicaHandles.map((h) => h.server!.metrics.requests.get({ route: 'score', status: '200' }));
    expect(perReplica).toEqual([1, 1, 1]);
  });
});
