/**
 * kill -9 of the host while it provisions a batch pool, at several moments, then a new host on the same storage and
 * work folder: no batch node process outlives its record (processes are counted by their token: the pool folder
 * their command line names), the run still completes, and at the end no node process and no pool folder is left.
 * One moment rewinds pool.json to what it said before the last node was recorded — exactly what a host killed
 * between starting a node and recording its pid leaves behind (the leak this guards against). And the start-up
 * reap never touches the pool of a host that still runs.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { ChildProcess } from 'child_process';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { kill9, startHostProcess } from '../../local/testing';
import { findProcesses, killGroup } from '../../shared/processes';
import { faultsJob, poolDirs, prepareFixture, readText, tempWorkDir, uploadJsonl, waitUntil, type Fixture } from './batch-helpers';

let azurite: AzuriteInstance;
let fx: Fixture;
let workDir: string;
let host: { url: string; proc: ChildProcess } | undefined;

/** init() takes a while, so the host can be killed while the nodes start. */
const SLOW_INIT = `'use strict';
function init() { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500); }
function run(miniBatch) { return miniBatch.map((row) => 'row-' + row.id); }
module.exports = { init, run };
`;

/** Every live process started from a pool folder under this test's work folder (nodes and their workers). */
function tokenProcesses(): Array<{ pid: number; pgid: number }> {
  const root = path.join(workDir, 'batch-pools') + path.sep;
  return findProcesses((argv) => argv.some((a) => a.startsWith(root)));
}

function poolStates(): Array<{ poolId: string; state: string; nodes: Array<{ pid: number }> }> {
  const out = [];
  for (const id of poolDirs(workDir)) {
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(workDir, 'batch-pools', id, 'pool.json'), 'utf8')));
    } catch {
      /* no pool.json (yet) */
    }
  }
  return out;
}

/** The parent of a process (0 when gone). */
function parentOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/**
 * Node processes (groups) no pool.json names and that the running host did not start — i.e. left behind by the
 * killed host. (A node the running host is starting may be unrecorded for a moment: its parent is that host.)
 */
function leftBehind(hostPid: number): number[] {
  const recorded = new Set(poolStates().flatMap((s) => s.nodes.map((n) => n.pid)));
  return tokenProcesses()
    .filter((p) => !recorded.has(p.pgid) && !recorded.has(p.pid) && parentOf(p.pgid) !== hostPid)
    .map((p) => p.pid);
}

beforeAll(async () => {
  azurite = await startAzurite();
  workDir = tempWorkDir();
  fx = await prepareFixture(azurite.connectionString);
  const code = fx.storage.container('code');
  await code.getBlockBlobClient('scripts/slowinit.js').upload(SLOW_INIT, Buffer.byteLength(SLOW_INIT));
}, 60_000);

afterAll(async () => {
  if (host) await kill9(host.proc);
  for (const p of workDir ? tokenProcesses() : []) killGroup(p.pid, 'SIGKILL');
  await azurite?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

interface Moment {
  name: string;
  reached: () => boolean;
  afterKill?: () => void;
}
const moments: Moment[] = [
  { name: 'pool.json written, no node started yet', reached: () => poolStates().some((s) => s.state === 'starting') },
  { name: 'first node process running', reached: () => tokenProcesses().length > 0 },
  {
    name: 'every node started, then pool.json rewound to before the last node was recorded',
    reached: () => poolStates().some((s) => s.state === 'starting' && s.nodes.length === 2),
    afterKill: () => {
      for (const s of poolStates()) {
        fs.writeFileSync(path.join(workDir, 'batch-pools', s.poolId, 'pool.json'), JSON.stringify({ ...s, nodes: s.nodes.slice(0, -1) }));
      }
    },
  },
];

test.each(moments)('kill -9 during pool provisioning ($name): after restart no node outlives its record; the run completes', async ({ name, reached, afterKill }) => {
  const prefix = `pc-${moments.findIndex((m) => m.name === name)}/`;
  const rows = Array.from({ length: 6 }, (_, i) => ({ id: i }));
  await uploadJsonl(fx.storage, prefix, [rows]);
  const env = { LOCAL_WORK_DIR: workDir };
  host = await startHostProcess({ connectionString: azurite.connectionString, env, pollMs: 200 });
  const res = await fetch(`${host.url}/api/batch-runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faultsJob(prefix, { entry_script: 'slowinit.js', node_count: 2, process_count_per_node: 1, error_threshold: 0 })),
  });
  expect(res.status).toBe(202);
  const id = ((await res.json()) as { id: string }).id;

  // Poll fast: the moments are short.
  const deadline = Date.now() + 60_000;
  while (!reached()) {
    if (Date.now() > deadline) throw new Error(`moment "${name}" not reached`);
    await new Promise((r) => setTimeout(r, 5));
  }
  await kill9(host.proc);
  host = undefined;
  afterKill?.();
  expect(poolStates().map((s) => s.state)).toEqual(['starting']); // killed during provisioning

  host = await startHostProcess({ connectionString: azurite.connectionString, env, pollMs: 200 });
  // The start-up reap ran before the host was ready: every node process left is named by a pool.json.
  const hostPid = host.proc.pid!;
  expect(leftBehind(hostPid)).toEqual([]);

  const final = await waitUntil(async () => {
    const r = await fetch(`${host!.url}/api/batch-runs/${id}`);
    const v = r.status === 200 ? ((await r.json()) as { state: string; output: string; counts: unknown }) : undefined;
    expect(leftBehind(hostPid)).toEqual([]); // also while the run re-provisions and scores
    return v && ['Succeeded', 'Failed', 'Terminated'].includes(v.state) ? v : undefined;
  }, 120_000, 'the run to finish after the restart');
  expect(final.state).toBe('Succeeded');
  expect((await readText(fx.storage, final.output)).trim().split('\n')).toEqual(rows.map((r) => `row-${r.id}`));
  // The pool is torn down at the end: no node process, no pool folder.
  await waitUntil(async () => tokenProcesses().length === 0 && poolDirs(workDir).length === 0, 20_000, 'pool teardown');
  await kill9(host.proc);
  host = undefined;
}, 240_000);

test("a host starting on the same work folder leaves a live host's pool alone (its record is in another account)", async () => {
  // ~30 s of scoring on one worker: the run must still be going once a second Azurite and host have started, even on
  // a loaded machine.
  const rows = Array.from({ length: 40 }, (_, i) => ({ id: i, sleep_ms: 750 }));
  await uploadJsonl(fx.storage, 'shared-dir/', [rows]);
  const env = { LOCAL_WORK_DIR: workDir };
  host = await startHostProcess({ connectionString: azurite.connectionString, env, pollMs: 200 });
  const res = await fetch(`${host.url}/api/batch-runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faultsJob('shared-dir/', { process_count_per_node: 1, error_threshold: 0 })),
  });
  expect(res.status).toBe(202);
  const id = ((await res.json()) as { id: string }).id;
  const pool = await waitUntil(async () => poolStates().find((s) => s.state === 'ready'), 60_000, 'the pool to be ready');
  const before = tokenProcesses().map((p) => p.pid).sort();

  // Another host, another storage account (so no record of that pool), the same work folder.
  const other = await startAzurite();
  let second: { url: string; proc: ChildProcess } | undefined;
  try {
    second = await startHostProcess({ connectionString: other.connectionString, env, pollMs: 200 });
    const view = (await (await fetch(`${host.url}/api/batch-runs/${id}`)).json()) as { state: string };
    expect(view.state).toBe('Running'); // still using its pool
    expect(poolStates().find((s) => s.poolId === pool.poolId)?.state).toBe('ready');
    expect(tokenProcesses().map((p) => p.pid).sort()).toEqual(expect.arrayContaining(before));
  } finally {
    if (second) await kill9(second.proc);
    await other.stop();
  }
  const final = await waitUntil(async () => {
    const r = await fetch(`${host!.url}/api/batch-runs/${id}`);
    const v = r.status === 200 ? ((await r.json()) as { state: string }) : undefined;
    return v && ['Succeeded', 'Failed', 'Terminated'].includes(v.state) ? v : undefined;
  }, 120_000, 'the run to finish');
  expect(final.state).toBe('Succeeded');
  await waitUntil(async () => tokenProcesses().length === 0 && poolDirs(workDir).length === 0, 20_000, 'pool teardown');
  await kill9(host.proc);
  host = undefined;
}, 240_000);
