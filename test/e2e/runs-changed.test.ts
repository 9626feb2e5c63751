/**
 * `GET /api/runs?changedSince=<asOf>`: what a poller (the console) reads instead of the whole window — the runs
 * created since its previous answer and the runs not ended yet; an ended run is not read again. Through the real
 * host (Azurite + in-process host + local target); the instance queries it makes are checked on a recording client.
 * Run `npm run build` first.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString } from '../../shared/storage';
import { CHANGED_SINCE_MARGIN_MS, listRuns, parseRunsQuery, type ListedInstance, type RunsClient } from '../../shared/deploy/runs-list';
import { EXAMPLE, uploadExample } from '../helpers/gated';
import { waitRun } from '../helpers/runs';

test('changedSince reads two narrow instance queries (created since, not ended), not the window', async () => {
  const asked: Array<Record<string, unknown>> = [];
  const instance = (id: string, status: string, created: string): ListedInstance => ({ name: 'deployModel', instanceId: id, runtimeStatus: status, createdTime: created, lastUpdatedTime: created, input: { manifest: { service: { name: 's' }, image: { name: 'i' } } } });
  const client: RunsClient = {
    async getStatus(id, options) {
      asked.push({ id, ...options });
      return instance(id, 'Running', '2026-11-01T00:00:00.000Z');
    },
    async getStatusBy(filter) {
      asked.push({ ...filter });
      if (filter.runtimeStatus) return [{ ...instance('running-old', 'Running', '2026-11-01T00:00:00.000Z'), input: undefined }, { ...instance('new-one', 'Running', '2026-11-20T10:00:01.000Z'), input: undefined }];
      return [instance('new-one', 'Running', '2026-11-20T10:00:01.000Z'), instance('new-done', 'Completed', '2026-11-20T10:00:00.500Z')];
    },
  };
  const q = new URLSearchParams({ changedSince: '2026-11-20T10:00:00.000Z' });
  const filter = parseRunsQuery(q, Date.parse('2026-11-20T10:00:02.000Z'));
  const page = await listRuns(client, filter);
  expect(asked).toEqual([
    { createdTimeFrom: new Date(Date.parse('2026-11-20T10:00:00.000Z') - CHANGED_SINCE_MARGIN_MS), showInput: true },
    { createdTimeFrom: filter.since, runtimeStatus: ['Pending', 'Running', 'ContinuedAsNew'], showInput: false },
    // Only the running run the created-since query did not answer is read by id, with its input.
    { id: 'running-old', showInput: true },
  ]);
  // Merged by id, newest first.
  expect(page.value.map((r) => r.id)).toEqual(['new-one', 'new-done', 'running-old']);
  expect(page.asOf).toEqual(expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/));
  // Without changedSince: the window, read newest first in time slices down to `since` (runs-list.test.ts).
  asked.length = 0;
  const window = parseRunsQuery(new URLSearchParams());
  await listRuns(client, window);
  expect(asked[0]).toEqual({ createdTimeFrom: expect.any(Date), showInput: true });
  for (const a of asked.slice(1)) expect(a).toEqual({ createdTimeFrom: expect.any(Date), createdTimeTo: expect.any(Date), showInput: true });
  expect(asked[asked.length - 1].createdTimeFrom).toEqual(window.since);
  for (const bad of ['yesterday', '2026-11-20', '2026-11-20T10:00:00', `2026-11-20T10:00:00.000Z${'0'.repeat(40)}`]) {
    expect(() => parseRunsQuery(new URLSearchParams({ changedSince: bad }))).toThrow(expect.objectContaining({ code: 'InvalidChangedSince' }));
  }
});

describe('through the local host', () => {
  let env: TestEnvironment;
  let gate: string;

  beforeAll(async () => {
    env = await startTestEnvironment({ tempWorkDir: 'mdf-runs-changed-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
    gate = path.join(env.workDir, 'gate');
    const staging = await storageFromConnectionString(env.connectionString).ensureContainer('staging');
    await uploadExample(staging, 'plain');
    await uploadExample(staging, 'gated', gate);
  }, 120_000);
  afterAll(async () => {
    await env?.stop();
  });

  const manifest = (service: string) => ({ ...JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8')), service: { name: service } });
  const deploy = async (service: string, folder: string): Promise<string> => {
    const r = await env.request('POST', `/api/deployments?folder=staging/${folder}`, manifest(service), { 'content-type': 'application/json' });
    expect(r.status).toBe(202);
    return r.body.runId;
  };
  const ids = (r: { body: { value: Array<{ id: string }> } }) => r.body.value.map((x) => x.id);

  test('a poll returns the runs created since and those still running; an ended run is not read again', async () => {
    const done = await deploy('changed-a', 'plain');
    expect((await waitRun(env, done)).state).toBe('Succeeded');
    // Past the margin changedSince allows for clocks, so that the ended run is older than any poll's window.
    await new Promise((r) => setTimeout(r, CHANGED_SINCE_MARGIN_MS + 500));

    const first = await env.request('GET', '/api/runs?top=50');
    expect(first.status).toBe(200);
    expect(ids(first)).toContain(done);
    const asOf1: string = first.body.asOf;
    expect(Date.parse(asOf1)).toBeGreaterThan(0);

    // A run that stays Running (its replicas wait for the gate) is started after the first read.
    const running = await deploy('changed-b', 'gated');
    const second = await env.request('GET', `/api/runs?changedSince=${encodeURIComponent(asOf1)}`);
    expect(second.status).toBe(200);
    expect(ids(second)).toContain(running);
    expect(second.body.value.find((r: { id: string }) => r.id === running)).toMatchObject({ type: 'deployment', serviceName: 'changed-b', state: expect.stringMatching(/^(Pending|Running)$/) });

    // A poll later (past the margin after its creation): the ended run is not in it (it has not changed); the
    // running one stays while it runs, though it was created before the time given.
    await new Promise((r) => setTimeout(r, CHANGED_SINCE_MARGIN_MS + 500));
    const third = await env.request('GET', `/api/runs?changedSince=${encodeURIComponent(second.body.asOf)}`);
    expect(ids(third)).toEqual([running]);
    expect(third.body.value[0].state).toBe('Running');

    // It ends: the next poll no longer lists it (the poller reads it once by id), and the full list has both.
    fs.writeFileSync(gate, 'open');
    const ended = await waitRun(env, running);
    expect(ended.state).toBe('Succeeded');
    await new Promise((r) => setTimeout(r, CHANGED_SINCE_MARGIN_MS + 500));
    const fourth = await env.request('GET', `/api/runs?changedSince=${encodeURIComponent(third.body.asOf)}`);
    expect(ids(fourth)).toEqual([]);
    expect(ids(await env.request('GET', '/api/runs?top=50'))).toEqual(expect.arrayContaining([running, done]));

    // Filters apply to the changes too; a bad changedSince is a 400 with a code.
    const again = await deploy('changed-c', 'plain');
    const filtered = await env.request('GET', `/api/runs?changedSince=${encodeURIComponent(fourth.body.asOf)}&service=changed-a`);
    expect(ids(filtered)).toEqual([]);
    expect(ids(await env.request('GET', `/api/runs?changedSince=${encodeURIComponent(fourth.body.asOf)}&service=changed-c`))).toEqual([again]);
    const bad = await env.request('GET', '/api/runs?changedSince=yesterday');
    expect([bad.status, bad.body.error.code]).toEqual([400, 'InvalidChangedSince']);
    await waitRun(env, again);
    for (const s of ['changed-a', 'changed-b', 'changed-c']) await env.request('DELETE', `/api/services/${s}?force=true`);
  }, 240_000);
});
