/**
 * `npm run bench:runs`: what one poll of the runs list costs when the task hub holds many runs. The real app on the
 * local host (in-process, Azurite on disk); BENCH_RUNS ended deployment runs (default 300: orchestrations started
 * with an empty input, which end Failed at once). Prints one JSON object per line:
 *
 *   runs.list_window.ms          GET /api/runs?top=50 (reads the whole 30-day window), p50 of the rounds
 *   runs.list_changed.ms         GET /api/runs?changedSince=<asOf> (runs created since + runs not ended), p50
 *   runs.list_window_over_changed.time_ratio   the two, measured interleaved in one run
 *
 * Environment: BENCH_RUNS (default 300), BENCH_ROUNDS (default 15).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startAzurite } from '../local/azurite';
import { startTestEnvironment } from '../local/testing';
import { DEPLOY } from '../shared/deploy/contract';

const RUNS = Number(process.env.BENCH_RUNS ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);

function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra, load1: Number(os.loadavg()[0].toFixed(2)), cores: os.cpus().length })}\n`);
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-bench-runs-'));
  const azurite = await startAzurite({ location: dir });
  const env = await startTestEnvironment({ azurite, verbose: false, settings: { LOCAL_WORK_DIR: path.join(dir, 'work') } });
  try {
    // Ended runs, in batches (bounded concurrency).
    for (let i = 0; i < RUNS; i += 50) {
      const ids = await Promise.all(Array.from({ length: Math.min(50, RUNS - i) }, () => env.startOrchestration(DEPLOY.run.name, {})));
      for (const id of ids) await env.waitFor(id, { timeoutMs: 120_000 });
    }
    const first = await env.request('GET', '/api/runs?top=50');
    if (first.status !== 200) throw new Error(`GET /api/runs → ${first.status} ${first.text}`);
    // Past the 5 s margin changedSince allows, so that the ended runs are outside every poll's window.
    await new Promise((r) => setTimeout(r, 6000));
    let asOf: string = (await env.request('GET', '/api/runs?top=1')).body.asOf;
    const window: number[] = [];
    const changed: number[] = [];
    let listed = 0;
    let changedCount = 0;
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = process.hrtime.bigint();
      const a = await env.request('GET', '/api/runs?top=50');
      window.push(Number(process.hrtime.bigint() - t0) / 1e6);
      listed = a.body.value.length;
      t0 = process.hrtime.bigint();
      const b = await env.request('GET', `/api/runs?top=100&changedSince=${encodeURIComponent(asOf)}`);
      changed.push(Number(process.hrtime.bigint() - t0) / 1e6);
      changedCount = b.body.value.length;
      asOf = b.body.asOf;
    }
    emit('runs.list_window.ms', p50(window), 'ms', { instances: RUNS, listed, rounds: ROUNDS });
    emit('runs.list_changed.ms', p50(changed), 'ms', { instances: RUNS, changed: changedCount, rounds: ROUNDS });
    emit('runs.list_window_over_changed.time_ratio', p50(window) / p50(changed), 'ratio');
  } finally {
    await env.stop();
    await azurite.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
