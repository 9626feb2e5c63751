/**
 * `npm run bench:pipeline`: manifest upload → smoke-tested, serving endpoint, for each example runtime.
 *
 * The stack of the demo (Azurite on disk in a temp folder, the local Functions host as a child process, the
 * local target). One measured run = `POST /api/deployments` (multipart: the example's deploy.json + its files)
 * → `GET /api/runs/{id}` polled every 25 ms until the run has Succeeded (registered, built, deployed, smoke
 * tested, promoted). Every run is a fresh deployment: a new service name (`bench-<runtime>-<n>`), a new model
 * version and a new image version, so nothing is reused from an earlier run. Untimed after each run: one scoring
 * call checked against the manifest's expected output, then `DELETE /api/services/<name>` (so replicas do not
 * pile up). Runtimes are interleaved (node, onnx, python, node, …) so machine load hits them alike; one
 * warm-up run per runtime is not counted.
 *
 * Prints JSON lines: `pipeline.<runtime>.p50_ms`, `pipeline.<runtime>.p95_ms` (client-observed, nearest rank),
 * plus per-step medians from the run's own step times and the POST → 202 latency.
 * Env: BENCH_RUNS (default 10), BENCH_ONLY (e.g. "node,onnx"), BENCH_WARMUP (default 1).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isBatchRun, MdfClient } from '../client/api';
import { closeTo, loadExample, runTimings, type Example, type RunTimings } from '../examples/demo/run';
import { startStack, type Stack } from '../examples/demo/stack';

const EXAMPLES: Record<string, string> = { node: 'diabetes-node', onnx: 'diabetes-onnx', python: 'diabetes-python' };

function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ name, value: Number(value.toFixed(1)), unit, ...extra })}\n`);
}

/** Nearest-rank percentile (p95 of 10 samples = the largest). */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

interface Sample {
  clientMs: number;
  acceptMs: number;
  steps: RunTimings;
}

async function deployOnce(stack: Stack, example: Example, serviceName: string): Promise<Sample> {
  const manifest = { ...example.manifest, service: { ...(example.manifest.service ?? {}), name: serviceName } };
  const files = Object.entries(example.files).filter(([name]) => name !== 'deploy.json').map(([name, data]) => ({ path: name, data }));
  const api = new MdfClient({ baseUrl: stack.baseUrl });

  const t0 = performance.now();
  const accepted = await api.deploy({ text: JSON.stringify(manifest), fileName: 'deploy.json' }, files);
  const acceptMs = performance.now() - t0;
  const view = await api.waitForRun(accepted.runId, { pollMs: 25, timeoutMs: 120_000 });
  const clientMs = performance.now() - t0;
  if (isBatchRun(view)) throw new Error(`Run ${view.id} is a batch run`);
  if (view.state !== 'Succeeded') throw new Error(`Run ${view.id} (${serviceName}) ended ${view.state}: ${JSON.stringify(view.error)}\n${stack.hostLogTail(20)}`);

  // Untimed: the endpoint really serves the model, then the service goes away.
  const smoke = example.manifest.smoke_test;
  const scored = await MdfClient.scoreUri(view.result!.scoringUri!, smoke.sample);
  if (scored.status !== 200 || !closeTo(scored.body, smoke.expected_output, Number(smoke.tolerance ?? 1e-5))) {
    throw new Error(`${serviceName}: scoring answered ${scored.status} ${JSON.stringify(scored.body)}, expected ${JSON.stringify(smoke.expected_output)}`);
  }
  await api.deleteService(serviceName);
  return { clientMs, acceptMs, steps: runTimings(view) };
}

function pythonHasNumpy(): boolean {
  try {
    execFileSync(process.env.LOCAL_PYTHON || 'python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 10);
  const warmup = Number(process.env.BENCH_WARMUP ?? 1);
  let runtimes = (process.env.BENCH_ONLY ?? 'node,onnx,python').split(',').map((s) => s.trim()).filter((r) => r in EXAMPLES);
  if (runtimes.includes('python') && !pythonHasNumpy()) {
    process.stderr.write('bench:pipeline: python3 has no numpy (Debian: python3-numpy); the python runtime is skipped\n');
    runtimes = runtimes.filter((r) => r !== 'python');
  }
  const examples = Object.fromEntries(runtimes.map((r) => [r, loadExample(EXAMPLES[r])]));
  const load = () => os.loadavg().map((x) => Number(x.toFixed(2)));
  emit('pipeline.machine.cores', os.cpus().length, 'cores', { cpu: os.cpus()[0]?.model, node: process.version, loadavg_start: load() });

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-bench-pipeline-'));
  const stack = await startStack({ workDir, pollMs: 1000 });
  const samples: Record<string, Sample[]> = Object.fromEntries(runtimes.map((r) => [r, []]));
  try {
    for (let i = 0; i < warmup + runs; i++) {
      for (const rt of runtimes) {
        const s = await deployOnce(stack, examples[rt], `bench-${rt}-${i + 1}`);
        if (i >= warmup) samples[rt].push(s);
        process.stderr.write(`${rt} ${i < warmup ? 'warm-up' : `run ${i - warmup + 1}/${runs}`}: ${s.clientMs.toFixed(0)} ms\n`);
      }
    }
  } finally {
    await stack.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
  }

  for (const rt of runtimes) {
    const ss = samples[rt];
    const client = ss.map((s) => s.clientMs);
    const extra = { runs: ss.length, min_ms: Number(Math.min(...client).toFixed(1)), max_ms: Number(Math.max(...client).toFixed(1)) };
    emit(`pipeline.${rt}.p50_ms`, percentile(client, 50), 'ms', extra);
    emit(`pipeline.${rt}.p95_ms`, percentile(client, 95), 'ms', extra);
    emit(`pipeline.${rt}.accept.p50_ms`, percentile(ss.map((s) => s.acceptMs), 50), 'ms', { what: 'POST /api/deployments → 202 (multipart upload, validation, run started)' });
    for (const step of ['register', 'build', 'deploy', 'smoke', 'promote', 'total'] as const) {
      const v = ss.map((s) => s.steps[step]).filter((x): x is number => x !== undefined);
      if (v.length) emit(`pipeline.${rt}.step.${step}.p50_ms`, percentile(v, 50), 'ms', { source: "the run's own step times" });
    }
  }
  emit('pipeline.machine.loadavg_1m_end', load()[0], 'load');
}

main().catch((err) => {
  process.stderr.write(`bench:pipeline failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
