/**
 * Scoring runtime benchmark (`npm run bench:runtime`): one JSON object per line.
 *
 * - a trivial Node run() at 1 and 32 connections;
 * - a small ONNX model over HTTP vs the raw in-process onnxruntime loop on the same input (ratio);
 * - a Python score.py through this runtime vs the same script behind Flask + gunicorn (the AML inference
 *   server's stack: Debian python3-flask + gunicorn), same worker count, measured in one run (ratio);
 * - RSS of one replica (front + workers).
 * Servers run as child processes (the CLI / gunicorn); the load generator is this process (keep-alive
 * connections, closed loop, fixed duration). Environment: BENCH_SECONDS (default 3), BENCH_WORKERS (default 2),
 * BENCH_ONLY (comma list of `node`, `onnx`, `python`; default all).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { mlpOnnx, writeLinearOnnx } from '../examples/runtime/onnx-model';
import { packageRoot } from '../runtime/launch';
import { OnnxModel } from '../runtime/onnx';

const ROOT = packageRoot();
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'node,onnx,python').split(',').map((x) => x.trim()).filter(Boolean));
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ name, value: Math.round(value * 1000) / 1000, unit, ...extra }) + '\n');
}

interface LoadResult { reqPerS: number; p50: number; p99: number; errors: number; requests: number }

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Closed-loop load: `connections` loops, each sending the next request when the last one answered. */
async function load(port: number, pathName: string, body: Buffer, connections: number, seconds = SECONDS): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const once = () => new Promise<number>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathName, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
  // Warm-up: open the connections and let the workers JIT / cache.
  const warmEnd = Date.now() + 500;
  await Promise.all(Array.from({ length: connections }, async () => { while (Date.now() < warmEnd) await once(); }));
  const latencies: number[] = [];
  let errors = 0;
  const start = process.hrtime.bigint();
  const end = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      const status = await once();
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (status !== 200) errors++;
    }
  }));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { reqPerS: (latencies.length - errors) / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors, requests: latencies.length };
}

function report(prefix: string, conns: number, r: LoadResult): void {
  const extra = { connections: conns, requests: r.requests, errors: r.errors };
  emit(`${prefix}.c${conns}.req_per_s`, r.reqPerS, 'req/s', extra);
  emit(`${prefix}.c${conns}.p50_ms`, r.p50, 'ms', extra);
  emit(`${prefix}.c${conns}.p99_ms`, r.p99, 'ms', extra);
}

interface Child { proc: ChildProcess; port: number; stop(): Promise<void> }

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => { clearTimeout(t); resolve(); });
    proc.kill('SIGTERM');
  });
}

/** Starts the runtime CLI and waits for its "ready" line. */
async function startRuntime(args: string[]): Promise<Child> {
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist/runtime/cli.js'), '--port', '0', '--no-access-log', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: proc.stdout! });
  let port = 0;
  for await (const line of rl) {
    const rec = JSON.parse(line);
    if (rec.event === 'listening') port = rec.port;
    if (rec.event === 'ready') break;
    if (rec.event === 'init_failed' || rec.event === 'error') throw new Error(`runtime failed: ${line}`);
  }
  proc.stdout!.resume();
  return { proc, port, stop: () => stopChild(proc) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitHttp(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      if (res.status === 200) return;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`nothing answered on port ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The AML inference server's way of serving score.py (Flask app, gunicorn sync workers). */
const FLASK_APP = `
import importlib.util, json, os, sys
from flask import Flask, request, Response
spec = importlib.util.spec_from_file_location("score", os.environ["SCORE_PY"])
score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score)
score.init()
app = Flask(__name__)

@app.route("/", methods=["GET"])
def health():
    return "Healthy"

@app.route("/score", methods=["POST"])
def run():
    try:
        result = score.run(request.get_data(as_text=True))
        return Response(json.dumps(result), status=200, mimetype="application/json")
    except Exception as e:
        return Response(json.dumps({"error": {"code": "RunFailed", "message": str(e)}}), status=500, mimetype="application/json")
`;

async function startGunicorn(scorePy: string, modelDir: string, workers: number): Promise<Child & { dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-flask-'));
  fs.writeFileSync(path.join(dir, 'flask_app.py'), FLASK_APP);
  const port = await freePort();
  const proc = spawn(PYTHON, ['-m', 'gunicorn', '-w', String(workers), '-b', `127.0.0.1:${port}`, '--chdir', dir, '--log-level', 'warning', 'flask_app:app'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, SCORE_PY: scorePy, AZUREML_MODEL_DIR: modelDir, PYTHONPATH: path.join(ROOT, 'runtime/python') },
  });
  await waitHttp(port);
  return { proc, port, dir, stop: () => stopChild(proc) };
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    const children = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    for (const c of children ? children.split(/\s+/).map(Number) : []) out.push(c, ...descendants(c));
  }
  return out;
}

async function benchNode(): Promise<void> {
  const rt = await startRuntime(['--entry-script', path.join(ROOT, 'examples/runtime/node/trivial.js'), '--workers', String(WORKERS), '--max-concurrent', '16', '--max-wait-ms', '10000']);
  try {
    const body = Buffer.from(JSON.stringify({ data: [1, 2, 3] }));
    report('runtime.node_trivial', 1, await load(rt.port, '/score', body, 1));
    report('runtime.node_trivial', 32, await load(rt.port, '/score', body, 32));
    const pids = [rt.proc.pid!, ...descendants(rt.proc.pid!)];
    emit('runtime.replica.rss_mb', pids.reduce((s, p) => s + rssMb(p), 0), 'MB', { processes: pids.length, workers: WORKERS, runtime: 'node', note: 'front + workers, after load' });
  } finally {
    await rt.stop();
  }
}

/** Raw in-process loop (JSON → tensors → session.run → JSON, one call after the other), then HTTP at c1 / c32. */
async function benchOnnx(prefix: string, writeModel: (file: string) => void, input: unknown, note: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-onnx-'));
  const file = path.join(dir, 'model.onnx');
  writeModel(file);
  const model = await OnnxModel.load(file);
  const rawEnd = Date.now() + 500;
  while (Date.now() < rawEnd) await model.run(input);
  let n = 0;
  const t0 = process.hrtime.bigint();
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end) { await model.run(input); n++; }
  const raw = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  await model.close();
  emit(`${prefix}.raw.req_per_s`, raw, 'req/s', { note: `in-process OnnxModel.run loop, 1 at a time; ${note}` });
  const rt = await startRuntime(['--model-dir', dir, '--workers', String(WORKERS), '--max-concurrent', '16', '--max-wait-ms', '10000']);
  try {
    const body = Buffer.from(JSON.stringify(input));
    const c1 = await load(rt.port, '/score', body, 1);
    report(prefix, 1, c1);
    const c32 = await load(rt.port, '/score', body, 32);
    report(prefix, 32, c32);
    emit(`${prefix}.http_over_raw.ratio`, c32.reqPerS / raw, 'ratio', { target: 0.5, http: `c32, ${WORKERS} workers`, raw: 'sequential loop', note });
    emit(`${prefix}.http_c1_over_raw.ratio`, c1.reqPerS / raw, 'ratio', { http: 'c1', raw: 'sequential loop', note });
  } finally {
    await rt.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function benchPython(): Promise<void> {
  const scorePy = path.join(ROOT, 'examples/runtime/python/json-model/score.py');
  const modelDir = path.join(ROOT, 'examples/runtime/python/json-model/model');
  const body = Buffer.from(JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] }));
  const rt = await startRuntime(['--entry-script', scorePy, '--model-dir', modelDir, '--workers', String(WORKERS), '--python', PYTHON, '--max-wait-ms', '10000']);
  let ours: LoadResult;
  try {
    report('runtime.python', 1, await load(rt.port, '/score', body, 1));
    ours = await load(rt.port, '/score', body, 32);
    report('runtime.python', 32, ours);
  } finally {
    await rt.stop();
  }
  let gunicorn: (Child & { dir: string }) | undefined;
  try {
    gunicorn = await startGunicorn(scorePy, modelDir, WORKERS);
  } catch (e) {
    emit('runtime.python.vs_flask_gunicorn.ratio', NaN, 'ratio', { skipped: `gunicorn/flask not available: ${(e as Error).message}` });
    return;
  }
  try {
    report('flask_gunicorn.python', 1, await load(gunicorn.port, '/score', body, 1));
    const theirs = await load(gunicorn.port, '/score', body, 32);
    report('flask_gunicorn.python', 32, theirs);
    emit('runtime.python.vs_flask_gunicorn.ratio', ours.reqPerS / theirs.reqPerS, 'ratio', { target: 1.5, connections: 32, workers: WORKERS });
  } finally {
    await gunicorn.stop();
    fs.rmSync(gunicorn.dir, { recursive: true, force: true });
  }
}

async function benchOnnxModels(): Promise<void> {
  const row = Array.from({ length: 64 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
  await benchOnnx('runtime.onnx', (f) => fs.writeFileSync(f, mlpOnnx([64, 1024, 1024, 10])), { data: [row] }, 'MLP 64-1024-1024-10 (1.1 M params), 1 row');
  await benchOnnx('runtime.onnx_tiny', writeLinearOnnx, { data: [[5.1, 3.5, 1.4, 0.2]] }, 'linear 4-3 (15 params): pure overhead');
}

async function main(): Promise<void> {
  emit('runtime.bench.machine.cpus', os.cpus().length, 'cores', { seconds_per_point: SECONDS, workers: WORKERS, node: process.version, only: [...ONLY], loadavg_1m: os.loadavg()[0] });
  if (ONLY.has('node')) await benchNode();
  if (ONLY.has('onnx')) await benchOnnxModels();
  if (ONLY.has('python')) await benchPython();
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
