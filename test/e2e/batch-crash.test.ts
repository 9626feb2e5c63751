/**
 * kill -9 of the host (a child process running the real app) in the middle of a batch run, then a new host on the
 * same storage: the run completes, the output has every row exactly once and in order, the pool (independent
 * processes) survived the crash and is torn down at the end.
 */
import * as fs from 'fs';
import type { ChildProcess } from 'child_process';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { kill9, startHostProcess } from '../../local/testing';
import {
  faultsJob,
  isAlive,
  killPools,
  poolDirs,
  poolPids,
  prepareFixture,
  readText,
  resultCount,
  tempWorkDir,
  uploadJsonl,
  waitUntil,
  type Fixture,
} from './batch-helpers';

let azurite: AzuriteInstance;
let fx: Fixture;
let workDir: string;
let host: { url: string; proc: ChildProcess } | undefined;

beforeAll(async () => {
  azurite = await startAzurite();
  workDir = tempWorkDir();
  fx = await prepareFixture(azurite.connectionString);
}, 60_000);

afterAll(async () => {
  if (host) await kill9(host.proc);
  killPools(workDir);
  await azurite?.stop();
  fs.rmSync(workDir, { recursive: true, force: true });
});

async function view(id: string): Promise<any> {
  const r = await fetch(`${host!.url}/api/batch-runs/${id}`);
  return r.status === 200 ? r.json() : undefined;
}

test('SIGKILL of the host mid-job, restart: completes, every row exactly once, in order', async () => {
  const rows = Array.from({ length: 40 }, (_, i) => ({ id: i, sleep_ms: 120 }));
  await uploadJsonl(fx.storage, 'crash/', [rows.slice(0, 25), rows.slice(25)]);
  const settings = { LOCAL_WORK_DIR: workDir };
  host = await startHostProcess({ connectionString: azurite.connectionString, env: settings, pollMs: 200 });
  const res = await fetch(`${host.url}/api/batch-runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faultsJob('crash/', { process_count_per_node: 2, error_threshold: 0 })),
  });
  expect(res.status).toBe(202);
  const id = ((await res.json()) as { id: string }).id;

  // Let some mini-batches finish, then kill the host while others are in flight.
  const countResults = () => resultCount(fx.storage, { container: 'batch-output', prefix: 'out/crash/' }, id);
  await waitUntil(async () => (await countResults()) >= 8, 60_000, '8 mini-batch results');
  const pidsBefore = poolPids(workDir);
  expect(pidsBefore).toHaveLength(1);
  await kill9(host.proc);
  const doneAtCrash = await countResults();
  expect(doneAtCrash).toBeLessThan(40);
  expect(isAlive(pidsBefore[0])).toBe(true); // the pool outlives the host

  host = await startHostProcess({ connectionString: azurite.connectionString, env: settings, pollMs: 200 });
  expect(poolPids(workDir)).toEqual(pidsBefore); // reused, not provisioned again
  const final = await waitUntil(async () => {
    const v = await view(id);
    return v && ['Succeeded', 'Failed', 'Terminated'].includes(v.state) ? v : undefined;
  }, 90_000, 'the run to finish after the restart');
  expect(final.state).toBe('Succeeded');
  expect(final.counts.items).toEqual({ total: 40, succeeded: 40, failed: 0, notRun: 0 });
  const lines = (await readText(fx.storage, final.output)).trim().split('\n');
  expect(lines).toEqual(rows.map((r) => `row-${r.id}`));
  // The same pool served before and after the crash, and is gone now.
  await waitUntil(async () => poolDirs(workDir).length === 0 && !isAlive(pidsBefore[0]), 15_000, 'pool teardown');
}, 180_000);
