/**
 * kill -9 of the host process in the middle of a fan-out and of a timer, then restart on the same
 * storage: every run completes, completed activities are not run again, the in-flight ones are.
 */
import { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { AzuriteInstance, startAzurite } from '../../local/azurite';
import { DurableStore } from '../../local/durable/store';
import { HostStorage } from '../../local/storage';
import { kill9, startHostProcess } from '../../local/testing';

const appRoot = path.resolve(__dirname, '../fixtures/durable-app');
let azurite: AzuriteInstance;
let countFile: string;
let child: ChildProcess | undefined;

async function startHost(): Promise<{ url: string; proc: ChildProcess }> {
  const host = await startHostProcess({ connectionString: azurite.connectionString, appRoot, env: { MDF_TEST_COUNT_FILE: countFile } });
  child = host.proc;
  return host;
}

function executions(): Map<string, number> {
  const counts = new Map<string, number>();
  if (!fs.existsSync(countFile)) return counts;
  for (const line of fs.readFileSync(countFile, 'utf8').split('\n')) {
    if (line) counts.set(line, (counts.get(line) ?? 0) + 1);
  }
  return counts;
}

async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function status(url: string, id: string): Promise<{ runtimeStatus: string; output: unknown }> {
  const r = await fetch(`${url}/runtime/webhooks/durabletask/instances/${id}`);
  return r.json() as Promise<{ runtimeStatus: string; output: unknown }>;
}

beforeAll(async () => {
  azurite = await startAzurite();
  countFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-crash-')), 'runs.log');
});
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) await kill9(child);
});
afterAll(async () => {
  await azurite?.stop();
});

test('SIGKILL in the middle of a fan-out: resumes, completes, re-runs only unfinished activities', async () => {
  const n = 60;
  let host = await startHost();
  const start = await fetch(`${host.url}/runtime/webhooks/durabletask/orchestrators/FanOut/crash-fanout`, {
    method: 'POST',
    body: JSON.stringify({ n, ms: 150, prefix: 'f' }),
  });
  expect(start.status).toBe(202);
  await waitUntil(() => [...executions().keys()].filter((k) => k.startsWith('Work:f')).length >= 20, 30000, '20 activities');
  // ...and at least one completion persisted (on a busy machine the first commit can lag the executions).
  await waitUntil(
    async () => {
      const r = await fetch(`${host.url}/runtime/webhooks/durabletask/instances/crash-fanout?showHistory=true`);
      const body = (await r.json()) as { historyEvents?: { EventType: string }[] };
      return (body.historyEvents ?? []).some((e) => e.EventType === 'TaskCompleted');
    },
    30000,
    'a persisted completion',
  );
  await kill9(host.proc);

  // What the durable store says had completed at the moment of the crash.
  const store = await DurableStore.open(new HostStorage({ kind: 'connectionString', connectionString: azurite.connectionString }), 'FixtureHub');
  const meta = await store.getMeta('crash-fanout');
  expect(meta?.status).toBe('Running');
  const history = await store.loadHistory(meta!);
  const keyOf = new Map(history.filter((e) => e.EventType === 4).map((e) => [e.EventId, JSON.parse(String(e.Input)).key]));
  const completedBeforeCrash = history.filter((e) => e.EventType === 5).map((e) => keyOf.get(Number(e.TaskScheduledId)));
  expect(completedBeforeCrash.length).toBeGreaterThan(0);
  expect(completedBeforeCrash.length).toBeLessThan(n);

  host = await startHost();
  await waitUntil(async () => (await status(host.url, 'crash-fanout')).runtimeStatus === 'Completed', 60000, 'completion');
  expect((await status(host.url, 'crash-fanout')).output).toBe(n);

  const counts = executions();
  for (let i = 0; i < n; i++) expect(counts.get(`Work:f${i}`) ?? 0).toBeGreaterThanOrEqual(1);
  for (const key of completedBeforeCrash) expect(counts.get(`Work:${key}`)).toBe(1);
  // The final history holds exactly one completion per activity.
  const final = await store.loadHistory((await store.getMeta('crash-fanout'))!);
  expect(final.filter((e) => e.EventType === 5)).toHaveLength(n);
  await kill9(host.proc);
}, 120000);

test('SIGKILL while a timer is pending: the timer is re-armed and fires after restart', async () => {
  let host = await startHost();
  await fetch(`${host.url}/runtime/webhooks/durabletask/orchestrators/Timer/crash-timer`, { method: 'POST', body: JSON.stringify({ seconds: 2 }) });
  await waitUntil(async () => (await status(host.url, 'crash-timer')).runtimeStatus === 'Running', 10000, 'timer scheduled');
  await kill9(host.proc);
  host = await startHost();
  await waitUntil(async () => (await status(host.url, 'crash-timer')).runtimeStatus === 'Completed', 30000, 'timer completion');
  const out = (await status(host.url, 'crash-timer')).output as { firedAfter: string; fireAt: string };
  expect(Date.parse(out.firedAfter)).toBeGreaterThanOrEqual(Date.parse(out.fireAt));
  await kill9(host.proc);
}, 60000);

test('SIGKILL during a sequence with sub-orchestrations: no instance lost or duplicated', async () => {
  let host = await startHost();
  await fetch(`${host.url}/runtime/webhooks/durabletask/orchestrators/FanOutSub/crash-sub`, { method: 'POST', body: JSON.stringify({ n: 300, chunk: 100 }) });
  await waitUntil(async () => (await status(host.url, 'crash-sub')).runtimeStatus === 'Running', 10000, 'parent running');
  await new Promise((r) => setTimeout(r, 150));
  await kill9(host.proc);
  host = await startHost();
  await waitUntil(async () => (await status(host.url, 'crash-sub')).runtimeStatus === 'Completed', 60000, 'parent completion');
  expect((await status(host.url, 'crash-sub')).output).toBe(300);
  const list = (await (await fetch(`${host.url}/runtime/webhooks/durabletask/instances`)).json()) as { instanceId: string; name: string }[];
  // Children are named as DTFx names them (`<parent execution id>:<task id>`): exactly one per sub-orchestration call.
  const children = list.filter((i) => i.name === 'FanOutRange');
  expect(children).toHaveLength(3);
  expect(new Set(children.map((c) => c.instanceId.replace(/^[0-9a-f]{32}:/, ''))).size).toBe(3);
  expect(new Set(children.map((c) => c.instanceId.split(':')[0])).size).toBe(1);
  await kill9(host.proc);
}, 90000);
