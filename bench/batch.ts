/**
 * `npm run bench:batch`: batch scoring through the service vs the same run() in one process, in one run.
 * Prints one JSON object per line (name, value, unit + details).
 *
 * Data: 10,000 iris rows over 200 generated CSV files (bench/batch-data.ts, seeded). Model: examples/batch/mlp
 * (a small CPU-bound MLP, score.js). The service: the real app on the local host (in-process) with Azurite, the job
 * submitted with POST /api/batch-runs (tabular, one mini-batch per file = 200 mini-batches, node_count 1 ×
 * process_count_per_node 2 = 2 workers), timed from the POST to the run's completion (pool provisioning, planning,
 * scoring, merge and teardown included; the image is built by a warm-up run first).
 * The baseline: the same score.js loaded in this process, looping over the same 200 blobs: download, parse the rows
 * exactly as the service does (shared/batch/tabular.ts), run().
 *
 *   batch.rows_per_s                  rows / end-to-end seconds through the service
 *   batch.single_process.rows_per_s   rows / seconds of the single-process loop
 *   batch.vs_single_process.ratio     the two (target ≥ 1.8, issue #15)
 *   batch.overhead_per_minibatch_ms   what a mini-batch costs the service beyond run(): the same 200 mini-batches with
 *                                     a trivial run() (examples/batch/score.js), scoring-phase wall time / mini-batches
 *                                     (first scoring step start → last finish, from the result blobs; target ≤ 3 ms, issue #15)
 *
 * Scale point (BENCH_BATCH_SCALE=1: runs this instead of the above): the same job (trivial run() by default,
 * BENCH_BATCH_SCALE_SCRIPT=mlp.js for the MLP) over 10,000 rows / 200 files and 100,000 rows / 2,000 files, in one run:
 *
 *   batch.scale.10k.seconds / batch.scale.100k.seconds   end to end, POST → completion
 *   batch.scale.time_ratio            time(100k) / time(10k) (target ≤ 11: linear plus the fixed cost)
 *   batch.scale.100k.peak_rss_mb      the host's peak RSS during the 100k run (VmHWM of this process — the host runs
 *                                     in it; Azurite and the pool's workers are child processes — reset through
 *                                     /proc/self/clear_refs before each run; target ≤ 400); also for 10k
 * Each run's merged output is read back and must hold exactly one line per input row, in input order (line i starts
 * with row id i); if not, the bench exits non-zero.
 *
 * BENCH_BATCH_ONLY=overhead runs only point 3 (e.g. under `node --cpu-prof`).
 *
 * Environment: BENCH_BATCH_FILES / BENCH_BATCH_ROWS (default 200 / 10000), BENCH_BATCH_WORKERS (2),
 * BENCH_BATCH_TIMEOUT_S (per run, default 1800: a run that takes longer fails the bench).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../local/testing';
import { parseCsvHeader, parseRows } from '../shared/batch/tabular';
import { runLayout } from '../shared/batch/layout';
import { readResultsInOrder } from '../shared/batch/results';
import { ModelRegistry } from '../shared/registry/models';
import { storageFromConnectionString, type StorageClients } from '../shared/storage';
import { generateBatchData, type BatchDataResult } from './batch-data';

const FILES = Number(process.env.BENCH_BATCH_FILES ?? 200);
const ROWS = Number(process.env.BENCH_BATCH_ROWS ?? 10_000);
const WORKERS = Number(process.env.BENCH_BATCH_WORKERS ?? 2);
const RUN_TIMEOUT_MS = Number(process.env.BENCH_BATCH_TIMEOUT_S ?? 1800) * 1000;
/** Bound on the merged output read back by the scale point's check (100,000 rows are ≈ 1.5 MB). */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
const examples = path.resolve(__dirname, '../../examples/batch');

/** Every line carries the 1-minute load average when it was measured (the machine is shared: read results with it). */
function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra, load1: Number(os.loadavg()[0].toFixed(2)), cores: os.cpus().length })}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runJob(env: TestEnvironment, job: Record<string, unknown>): Promise<{ seconds: number; view: any }> {
  const t0 = process.hrtime.bigint();
  const r = await env.request('POST', '/api/batch-runs', job);
  if (r.status !== 202) throw new Error(`submit failed: ${r.status} ${r.text}`);
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`run ${r.body.id} did not finish in ${RUN_TIMEOUT_MS / 1000} s`);
    const s = await env.status(r.body.id);
    if (s && ['Completed', 'Failed', 'Terminated'].includes(s.runtimeStatus)) {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const view = (await env.request('GET', `/api/batch-runs/${r.body.id}`)).body;
      if (view.state !== 'Succeeded') throw new Error(`run ${r.body.id} ended ${view.state}: ${JSON.stringify(view.error)}`);
      return { seconds, view };
    }
    await sleep(50); // the bench's own polling runs in the host's process: not too often
  }
}

/** Scoring-phase span (first mini-batch start → last finish) and summed run time, from the result blobs (each mini-batch's latest result). */
async function scoringSpan(storage: StorageClients, view: any): Promise<{ spanMs: number; sumMs: number; count: number }> {
  const [container, ...rest] = String(view.summary).split('/');
  const root = rest.slice(0, -1).join('/') + '/';
  const layout = runLayout({ output: { container, prefix: root.slice(0, root.length - `${view.id}/`.length) }, appendRowFileName: 'parallel_run_step.txt' }, String(view.id));
  if (layout.root !== root) throw new Error(`unexpected run layout: ${root} vs ${layout.root}`);
  let first = Infinity;
  let last = 0;
  let sum = 0;
  let count = 0;
  for await (const r of readResultsInOrder(storage.container(container), layout, Number(view.counts.miniBatches.total))) {
    if (!r) continue;
    first = Math.min(first, Date.parse(r.startedAt));
    last = Math.max(last, Date.parse(r.finishedAt));
    sum += r.durationMs;
    count++;
  }
  return { spanMs: last - first, sumMs: sum, count };
}

function procStatusKb(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]);
}

/**
 * The merged output of a run must hold exactly one line per input row, in input order: line i is `<id i>,<label>`
 * (the bench data's ids are global and rise with the file order; both example scripts answer `${row.id},${label}`).
 * Returns a description of the first mismatch, or null.
 */
async function checkMergedOutput(storage: StorageClients, view: any, rows: number): Promise<string | null> {
  const ref = String(view.output ?? '');
  const slash = ref.indexOf('/');
  if (slash < 0) return `no merged output in the run view (${JSON.stringify(view.output)})`;
  const blob = storage.container(ref.slice(0, slash)).getBlobClient(ref.slice(slash + 1));
  const size = (await blob.getProperties()).contentLength ?? 0;
  if (size > MAX_OUTPUT_BYTES) return `merged output is ${size} bytes (over the check's bound of ${MAX_OUTPUT_BYTES})`;
  const text = (await blob.downloadToBuffer()).toString('utf8');
  if (rows > 0 && !text.endsWith('\n')) return 'merged output does not end with a newline';
  let line = 0;
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    const l = text.slice(start, end < 0 ? text.length : end);
    if (line >= rows) return `merged output has more than ${rows} lines (line ${line + 1}: ${JSON.stringify(l.slice(0, 80))})`;
    if (!l.startsWith(`${line},`)) return `merged output line ${line + 1} is ${JSON.stringify(l.slice(0, 80))}, expected row id ${line} first`;
    line++;
    start = end < 0 ? text.length : end + 1;
  }
  return line === rows ? null : `merged output has ${line} lines for ${rows} input rows`;
}

/** BENCH_BATCH_SCALE=1: 10k rows / 200 files, then 100k rows / 2,000 files, in one run (see the header). */
async function scalePoint(env: TestEnvironment, storage: StorageClients): Promise<void> {
  const script = process.env.BENCH_BATCH_SCALE_SCRIPT ?? 'iris.js';
  if (script !== 'iris.js' && script !== 'mlp.js') throw new Error('BENCH_BATCH_SCALE_SCRIPT must be iris.js or mlp.js');
  await runJob(env, job('warmup/', script));
  const points = [
    { label: '10k', rows: 10_000, files: 200 },
    { label: '100k', rows: 100_000, files: 2_000 },
  ];
  const seconds: Record<string, number> = {};
  let failed = false;
  for (const p of points) {
    const prefix = `scale-${p.label}/`;
    const data = await generateBatchData(storage.container('batch-data'), { files: p.files, rows: p.rows, prefix });
    if (global.gc) global.gc();
    const rssBefore = procStatusKb('VmRSS');
    fs.writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
    const r = await runJob(env, job(prefix, script, { output: { container: 'batch-output', prefix: `scale/${p.label}/` } }));
    const peakKb = procStatusKb('VmHWM');
    // With --expose-gc: what stays live after the run (retention vs. a heap that was merely allowed to grow).
    if (global.gc) global.gc();
    const heapAfterMb = Math.round(process.memoryUsage().heapUsed / 1024 / 1024);
    seconds[p.label] = r.seconds;
    const items = r.view.counts.items;
    const problem = items.succeeded !== data.rows ? `service scored ${items.succeeded} of ${data.rows} rows` : await checkMergedOutput(storage, r.view, data.rows);
    if (problem) failed = true;
    emit(`batch.scale.${p.label}.seconds`, r.seconds, 's', {
      rows: data.rows,
      files: data.files,
      miniBatches: r.view.counts.miniBatches.total,
      workers: WORKERS,
      script,
      rowsPerS: Math.round(data.rows / r.seconds),
      outputCheck: problem ?? 'ok: one line per input row, in order',
    });
    emit(`batch.scale.${p.label}.peak_rss_mb`, peakKb / 1024, 'MB', { rssBeforeMb: Math.round(rssBefore / 1024), growthMb: Math.round((peakKb - rssBefore) / 1024), ...(global.gc ? { heapAfterGcMb: heapAfterMb } : {}), target: '<= 400', what: 'VmHWM of the bench process (in-process host; Azurite and pool workers are child processes)' });
  }
  emit('batch.scale.time_ratio', seconds['100k'] / seconds['10k'], 'ratio', { target: '<= 11', rowsRatio: 10 });
  if (failed) throw new Error('the merged output check failed (see outputCheck above)');
}

function job(prefix: string, script: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: script === 'mlp.js' ? 'iris-mlp' : 'iris-linear',
    entry_script: script,
    source_directory: 'code/bench',
    inputs: { container: 'batch-data', prefix },
    input_kind: 'tabular',
    mini_batch_size: '1MB', // a mini-batch never spans two files: one per file here
    node_count: 1,
    process_count_per_node: WORKERS,
    error_threshold: 0,
    output: { container: 'batch-output', prefix: `bench/${script}/` },
    ...extra,
  };
}

/** Points 1 and 2: the MLP in this process over the same blobs, then through the service. */
async function compareWithSingleProcess(env: TestEnvironment, storage: StorageClients, data: BatchDataResult): Promise<void> {
  process.env.AZUREML_MODEL_DIR = path.join(examples, 'mlp');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const script = require(path.join(examples, 'mlp/score.js')) as { init(): void; run(rows: unknown[]): string[] };
  script.init();
  const input = storage.container('batch-data');
  const t0 = process.hrtime.bigint();
  let scored = 0;
  for (const name of data.blobs) {
    const buf = await input.getBlobClient(name).downloadToBuffer();
    const headerEnd = buf.indexOf(0x0a) + 1;
    const rows = parseRows(buf.subarray(headerEnd), 'csv', parseCsvHeader(buf.subarray(0, headerEnd)));
    scored += script.run(rows).length;
  }
  const singleS = Number(process.hrtime.bigint() - t0) / 1e9;
  if (scored !== data.rows) throw new Error(`single-process loop scored ${scored} of ${data.rows} rows`);
  emit('batch.single_process.rows_per_s', data.rows / singleS, 'rows/s', { seconds: singleS, rows: data.rows, files: data.files });

  // 2. Through the service.
  const svc = await runJob(env, job('bench/', 'mlp.js'));
  const items = svc.view.counts.items;
  if (items.succeeded !== data.rows) throw new Error(`service scored ${items.succeeded} of ${data.rows} rows`);
  const span = await scoringSpan(storage, svc.view);
  emit('batch.rows_per_s', data.rows / svc.seconds, 'rows/s', {
    seconds: svc.seconds,
    rows: data.rows,
    miniBatches: svc.view.counts.miniBatches.total,
    workers: WORKERS,
    scoringPhaseSeconds: span.spanMs / 1000,
    scoringPhaseRowsPerS: Math.round(data.rows / (span.spanMs / 1000)),
  });
  emit('batch.vs_single_process.ratio', singleS / svc.seconds, 'ratio', { target: '>= 1.8', scoringPhaseRatio: Number((singleS / (span.spanMs / 1000)).toFixed(3)) });
}

/** The warm-up inputs, the two models and their scripts (`code/bench/<script>`). */
async function registerBenchModels(storage: StorageClients): Promise<void> {
  await generateBatchData(storage.container('batch-data'), { files: 2, rows: 20, prefix: 'warmup/' });
  const models = new ModelRegistry(storage);
  for (const [name, file] of [['iris-mlp', 'mlp/model.json'], ['iris-linear', 'model/model.json']]) {
    await models.register({ name, files: [{ path: 'model.json', content: fs.readFileSync(path.join(examples, file)) }], source: { kind: 'api', eventId: `bench-${name}` } });
  }
  const code = await storage.ensureContainer('code');
  for (const [name, file] of [['mlp.js', 'mlp/score.js'], ['iris.js', 'score.js']]) {
    const text = fs.readFileSync(path.join(examples, file));
    await code.getBlockBlobClient(`bench/${name}`).upload(text, text.length);
  }
}

async function main(): Promise<void> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-bench-batch-'));
  const env = await startTestEnvironment({ settings: { LOCAL_WORK_DIR: workDir }, verbose: false });
  const storage = storageFromConnectionString(env.connectionString);
  try {
    if (process.env.BENCH_BATCH_SCALE === '1') {
      await registerBenchModels(storage);
      await scalePoint(env, storage);
      return;
    }
    const data = await generateBatchData(storage.container('batch-data'), { files: FILES, rows: ROWS, prefix: 'bench/' });
    await registerBenchModels(storage);
    // Warm-up: builds the two images (reused by the measured runs) and loads every code path once.
    const overheadOnly = process.env.BENCH_BATCH_ONLY === 'overhead';
    if (!overheadOnly) await runJob(env, job('warmup/', 'mlp.js'));
    await runJob(env, job('warmup/', 'iris.js'));

    // 1. The same run() in one process over the same blobs, 2. through the service.
    if (!overheadOnly) await compareWithSingleProcess(env, storage, data);
    // 3. Orchestration overhead per mini-batch: the same 200 mini-batches, trivial run().
    const triv = await runJob(env, job('bench/', 'iris.js'));
    const tspan = await scoringSpan(storage, triv.view);
    const n = triv.view.counts.miniBatches.total;
    emit('batch.overhead_per_minibatch_ms', tspan.spanMs / n, 'ms', {
      target: '<= 3',
      miniBatches: n,
      scoringPhaseMs: tspan.spanMs,
      endToEndSeconds: triv.seconds,
      // Per scoring step (read inputs + POST /batch, node queueing included), as the activity measured it.
      meanScoringStepMs: Number((tspan.sumMs / tspan.count).toFixed(2)),
      workerSlotMsPerMiniBatch: Number(((tspan.spanMs * WORKERS) / n).toFixed(3)),
    });
  } finally {
    await env.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench:batch failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
