/**
 * Shared setup of the batch e2e tests: the real app on the local host (in-process or as a child process), input
 * data, a registered model, entry scripts in blob storage, and helpers to submit jobs and watch pools.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { generateBatchData } from '../../bench/batch-data';
import { parseResultBlobName, runLayout } from '../../shared/batch/layout';
import { readResultsInOrder } from '../../shared/batch/results';
import type { MiniBatchResult } from '../../shared/batch/results';
import { ModelRegistry } from '../../shared/registry/models';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';

export const root = path.resolve(__dirname, '../..');
export const exampleDir = path.join(root, 'examples/batch');

/** Entry scripts used by the tests (Node runtime: fast to start). */
export const SCRIPTS: Record<string, string> = {
  // The example's iris classifier.
  'iris.js': fs.readFileSync(path.join(exampleDir, 'score.js'), 'utf8'),
  /**
   * Rows are JSON objects (JSONL inputs). Behaviour per row:
   *   { drop: true }                       → left out of the result (a failed input)
   *   { fail: true }                       → run() raises (the whole mini-batch fails, every try)
   *   { fail_times: n, state: "<file>" }   → run() raises on the first n tries of this mini-batch, then succeeds
   *   { sleep_ms: n }                      → run() sleeps first (slow mini-batches for crash/terminate tests)
   */
  'faults.js': `'use strict';
const fs = require('fs');
function init() {}
function run(miniBatch) {
  const out = [];
  for (const row of miniBatch) {
    if (row.sleep_ms) { const until = Date.now() + row.sleep_ms; while (Date.now() < until) {} }
    if (row.fail) throw new Error('row ' + row.id + ' cannot be scored');
    if (row.fail_times) {
      let n = 0;
      try { n = Number(fs.readFileSync(row.state, 'utf8')); } catch {}
      fs.writeFileSync(row.state, String(n + 1));
      if (n < row.fail_times) throw new Error('transient failure ' + (n + 1) + ' of mini-batch with row ' + row.id);
    }
    if (row.drop) continue;
    out.push('row-' + row.id);
  }
  return out;
}
module.exports = { init, run };
`,
};

export interface Fixture {
  storage: StorageClients;
  workDir: string;
}

/** Registers the example model and uploads the entry scripts under `code/scripts/`. */
export async function prepareFixture(connectionString: string): Promise<Fixture> {
  const storage = storageFromConnectionString(connectionString);
  await new ModelRegistry(storage).register({
    name: 'iris-linear',
    files: [{ path: 'model.json', content: fs.readFileSync(path.join(exampleDir, 'model/model.json')) }],
    source: { kind: 'api', eventId: 'batch-e2e-model' },
  });
  const code = await storage.ensureContainer('code');
  for (const [name, text] of Object.entries(SCRIPTS)) await code.getBlockBlobClient(`scripts/${name}`).upload(text, Buffer.byteLength(text));
  return { storage, workDir: '' };
}

export async function uploadIris(storage: StorageClients, prefix: string, files: number, rows: number): Promise<void> {
  await generateBatchData(storage.container('batch-data'), { files, rows, prefix });
}

/** JSONL files `<prefix>part-<i>.jsonl` with the given rows each. */
export async function uploadJsonl(storage: StorageClients, prefix: string, files: Array<Array<Record<string, unknown>>>): Promise<void> {
  const c = await storage.ensureContainer('batch-data');
  await Promise.all(
    files.map((rows, i) => {
      const text = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
      return c.getBlockBlobClient(`${prefix}part-${String(i).padStart(3, '0')}.jsonl`).upload(text, Buffer.byteLength(text));
    }),
  );
}

export function faultsJob(prefix: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: 'iris-linear',
    entry_script: 'faults.js',
    source_directory: 'code/scripts',
    inputs: { container: 'batch-data', prefix },
    input_kind: 'tabular',
    mini_batch_size: '1 rows',
    process_count_per_node: 2,
    output: { container: 'batch-output', prefix: `out/${prefix}` },
    ...extra,
  };
}

export async function readText(storage: StorageClients, ref: string): Promise<string> {
  const i = ref.indexOf('/');
  return (await storage.container(ref.slice(0, i)).getBlobClient(ref.slice(i + 1)).downloadToBuffer()).toString('utf8');
}

export async function readJson<T = any>(storage: StorageClients, ref: string): Promise<T> {
  return JSON.parse(await readText(storage, ref)) as T;
}

/** The latest result of mini-batch `index` of a run (`count` mini-batches), read as the merge reads it. */
export async function readResult(storage: StorageClients, output: { container: string; prefix: string }, runId: string, index: number, count: number): Promise<MiniBatchResult | null> {
  const layout = runLayout({ output, appendRowFileName: 'parallel_run_step.txt' }, runId);
  let i = 0;
  for await (const r of readResultsInOrder(storage.container(output.container), layout, count)) if (i++ === index) return r;
  return null;
}

/** Mini-batches of a run that have a result blob so far (grouped blobs name theirs). */
export async function resultCount(storage: StorageClients, output: { container: string; prefix: string }, runId: string): Promise<number> {
  const prefix = `${output.prefix}${runId}/results/`;
  const indexes = new Set<number>();
  for await (const b of storage.container(output.container).listBlobsFlat({ prefix })) {
    for (const k of parseResultBlobName(b.name.slice(prefix.length)) ?? []) indexes.add(k.index);
  }
  return indexes.size;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil<T>(fn: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export { isAlive } from '../../shared/processes';

/** Every pid recorded by any pool under `workDir` (still running or not). */
export function poolPids(workDir: string): number[] {
  const dir = path.join(workDir, 'batch-pools');
  if (!fs.existsSync(dir)) return [];
  const pids: number[] = [];
  for (const p of fs.readdirSync(dir)) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(dir, p, 'pool.json'), 'utf8')) as { nodes: Array<{ pid: number }> };
      pids.push(...s.nodes.map((n) => n.pid));
    } catch {
      /* no pool.json */
    }
  }
  return pids;
}

export function poolDirs(workDir: string): string[] {
  const dir = path.join(workDir, 'batch-pools');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/** Test cleanup: kill whatever a pool left behind (only pids recorded under this test's work dir). */
export function killPools(workDir: string): void {
  for (const pid of poolPids(workDir)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/**
 * A fresh `LOCAL_WORK_DIR` for a host in a child process (`startHostProcess`), which the test removes; an in-process
 * host takes `startTestEnvironment({ tempWorkDir: 'mdf-batch-e2e-' })` instead (its `env.workDir`, removed by `stop()`).
 */
export function tempWorkDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-batch-e2e-'));
}

