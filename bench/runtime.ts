/**
 * Scoring runtime benchmark (`npm run bench:runtime`): one JSON object per line.
 *
 * - a trivial Node run() at 1 and 32 connections;
 * - a small ONNX model over HTTP vs the raw in-process onnxruntime loop on the same input (ratio);
 * - a Python score.py through this runtime vs the same script behind Flask + gunicorn (the AML inference
 *   server's stack: Debian python3-flask + gunicorn) and behind FastAPI + uvicorn (the stack of KServe's Python
 *   model server, MLServer and BentoML: Debian python3-fastapi + python3-uvicorn), same worker count, measured in
 *   one run in interleaved slices (ratios, p99 of each);
 * - RSS of one replica (front + workers);
 * - model data collection (`--collect-model-data`, writing to a fresh Azurite) on vs off: the same Node script at c32,
 *   servers measured in interleaved slices (target: ≥ 90 % of the req/s, ≤ 1.2× the p99 of collection off), plus a
 *   third collecting server whose storage refuses connections (records dropped: p99 with storage down).
 * Servers run as child processes (the CLI / gunicorn); the load generator is this process (keep-alive
 * connections, closed loop, fixed duration). Environment: BENCH_SECONDS (default 3), BENCH_WORKERS (default 2),
 * BENCH_ONLY (comma list of `node`, `onnx`, `python`, `collect`; default all), BENCH_ONNX_THREADS (`--onnx-threads`, default 0 =
 * cores / workers; the raw loop uses the same), BENCH_ONNX_WORKER_PROCESSES=1 (`--onnx-worker-processes`),
 * BENCH_MAX_BATCH_SIZE (`--max-batch-size` of the batching ONNX server; default the runtime's), BENCH_RAW_BATCH
 * (requests per run of the raw batched loop, default 16), BENCH_BASELINE_ROOT (another build's root: its ONNX server
 * is measured in the same interleaved slices, `…vs_baseline.ratio`), BENCH_NODE_OPTIONS (NODE_OPTIONS of the servers and
 * their workers), BENCH_NODE_ARGS (Node flags of the front process only, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 * BENCH_COLLECT_SECONDS (collect row: measured seconds per server, default 20: the collecting server uploads once per
 * 4,000 records, so its p99 is decided by its uploads: 6 s per server held about 15 of them and the p99 ratio swung
 * from 1.19 to 1.41 between two consecutive runs; docs/benchmarks.md, "Longer collect runs").
 * BENCH_STORAGE_CPUS (collect row: the storage emulator on these CPUs only, the servers and the load generator on the
 * others, from the end of the warm-up, as in Azure, where the storage account never runs on a replica's cores; default
 * the last CPU where there are 2+ and `taskset`; `shared` = every process on every core, as before 2026-11-30).
 * BENCH_COLLECT_BATCH / BENCH_COLLECT_MAX_RECORDS (collect row: the collecting server's `--model-data-batch-records` /
 * `--model-data-max-records`; default the runtime's).
 * BENCH_STORAGE_NICE (collect row: the storage emulator's CPU priority, e.g. 19: Azure Storage does not share a replica's
 * cores, Azurite here does; default unchanged). BENCH_TRACE_DIR (collect row: writes `load-{on,off,down}.json` there, each request's completion time in epoch ms and
 * its latency, to line slow requests up with the servers' own events, e.g. GC or uploads, recorded by a `--require` preload).
 * Every point is measured in slices of 0.5 s and reports, besides its rate and latencies, the spread of the
 * slices' rates (min, max, coefficient of variation) and the machine's 1-minute load average over its slices.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { mlpOnnx, writeLinearOnnx } from '../examples/runtime/onnx-model';
import { startAzurite } from '../local/azurite';
import { OnnxModel, onnxThreads, packageRoot, settle } from '../runtime';
import { canPin, cpuList, otherCpus, pin } from './cpus';

const ROOT = packageRoot();
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const COLLECT_SECONDS = Number(process.env.BENCH_COLLECT_SECONDS ?? 20);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'node,onnx,python,collect').split(',').map((x) => x.trim()).filter(Boolean));
/** `--onnx-threads` of the ONNX runs (0 = the runtime's default, cores / workers). */
const ONNX_THREADS = Number(process.env.BENCH_ONNX_THREADS ?? 0);
/** `--max-batch-size` of the batching ONNX server ('' = the runtime's default); a second server runs with 1. */
const MAX_BATCH_SIZE = process.env.BENCH_MAX_BATCH_SIZE ?? '';
/** Requests per run of the raw batched loop (c32 spread over the workers). */
const RAW_BATCH = Number(process.env.BENCH_RAW_BATCH ?? 16);
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ name, value: Math.round(value * 1000) / 1000, unit, ...extra }) + '\n');
}

interface Spread { n: number; min: number; max: number; mean: number; cv: number }
interface LoadResult { reqPerS: number; p50: number; p99: number; errors: number; requests: number; spread: Spread; loadavg1m: Spread; cpuMsPerReq?: number }

const CLOCK_TICK_MS = 10; // USER_HZ = 100 on Linux
/** CPU time (user + system, all threads) a process used so far, in ms; undefined off Linux. */
function cpuMs(pid: number): number | undefined {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
  } catch {
    return undefined;
  }
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** min / max / mean / coefficient of variation of repeated measurements. */
function spreadOf(xs: number[]): Spread {
  const n = xs.length;
  if (!n) return { n: 0, min: NaN, max: NaN, mean: NaN, cv: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return { n, min: r3(Math.min(...xs)), max: r3(Math.max(...xs)), mean: r3(mean), cv: r3(mean ? sd / mean : NaN) };
}

/** Slice length of every measurement (points measured together alternate slices). */
const SLICE_S = 0.5;
const ROUNDS = Math.max(1, Math.round(SECONDS / SLICE_S));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Closed-loop load: `connections` loops, each sending the next request when the last one answered. Keeps its
 * keep-alive connections between `slice()` calls, so a measurement can be split into slices interleaved
 * with another one (both then see the same machine load).
 */
class Load {
  private readonly agent: http.Agent;
  private readonly latencies: number[] = [];
  /** BENCH_TRACE_DIR: each request's completion time (epoch ms) and latency, for correlating slow requests. */
  readonly trace: number[] | undefined = process.env.BENCH_TRACE_DIR ? [] : undefined;
  private errors = 0;
  private elapsed = 0;
  /** Successful requests per second of each slice, and the 1-minute load average at its end. */
  private readonly rates: number[] = [];
  private readonly loads: number[] = [];

  /** CPU ms the server process (`pid`) used during the slices, and the successful requests they served. */
  private cpu = 0;
  private served = 0;

  /** `tree`: the CPU time counted is that of `pid` and all its descendants (a server's front and workers). */
  constructor(private readonly port: number, private readonly pathName: string, private readonly body: Buffer, readonly connections: number, private readonly pid?: number, private readonly tree = false) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  }

  private once(): Promise<number> {
    return new Promise<number>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: this.port, path: this.pathName, method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': this.body.length } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end(this.body);
    });
  }

  /** Opens the connections and lets the server JIT / cache (not measured). */
  async warm(ms = 500): Promise<void> {
    const end = Date.now() + ms;
    await Promise.all(Array.from({ length: this.connections }, async () => { while (Date.now() < end) await this.once(); }));
  }

  async slice(seconds: number): Promise<void> {
    const start = process.hrtime.bigint();
    const end = Date.now() + seconds * 1000;
    const cpu0 = this.serverCpuMs();
    let ok = 0;
    await Promise.all(Array.from({ length: this.connections }, async () => {
      while (Date.now() < end) {
        const t0 = process.hrtime.bigint();
        const status = await this.once();
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        this.latencies.push(ms);
        this.trace?.push(performance.timeOrigin + performance.now(), ms);
        if (status !== 200) this.errors++;
        else ok++;
      }
    }));
    const took = Number(process.hrtime.bigint() - start) / 1e9;
    this.elapsed += took;
    this.rates.push(ok / took);
    this.loads.push(os.loadavg()[0]);
    const cpu1 = this.serverCpuMs();
    if (cpu0 !== undefined && cpu1 !== undefined) {
      this.cpu += cpu1 - cpu0;
      this.served += ok;
    }
  }

  private serverCpuMs(): number | undefined {
    if (!this.pid) return undefined;
    if (!this.tree) return cpuMs(this.pid);
    let total = 0;
    try {
      for (const p of [this.pid, ...descendants(this.pid)]) {
        const ms = cpuMs(p);
        if (ms === undefined) return undefined;
        total += ms;
      }
    } catch {
      return undefined; // a process of the tree went away while it was read
    }
    return total;
  }

  result(): LoadResult {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return {
      reqPerS: (sorted.length - this.errors) / this.elapsed, p50: percentile(sorted, 50), p99: percentile(sorted, 99), errors: this.errors, requests: sorted.length,
      spread: spreadOf(this.rates), loadavg1m: spreadOf(this.loads),
      ...(this.served ? { cpuMsPerReq: this.cpu / this.served } : {}),
    };
  }

  close(): void {
    this.agent.destroy();
  }
}

async function load(port: number, pathName: string, body: Buffer, connections: number): Promise<LoadResult> {
  const l = new Load(port, pathName, body, connections);
  try {
    await l.warm();
    for (let i = 0; i < ROUNDS; i++) await l.slice(SLICE_S);
    return l.result();
  } finally {
    l.close();
  }
}

function report(prefix: string, conns: number, r: LoadResult): void {
  const extra = { connections: conns, requests: r.requests, errors: r.errors, slice_req_per_s: r.spread, loadavg_1m: r.loadavg1m };
  // CPU time of the server process per request (all its threads; Linux clock ticks of 10 ms summed over the
  // slices): its per-request cost, much less sensitive to the machine's load than req/s.
  if (r.cpuMsPerReq !== undefined) emit(`${prefix}.c${conns}.cpu_ms_per_req`, r.cpuMsPerReq, 'ms', extra);
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

/**
 * Another build of the project (its root, with `dist/` built) whose ONNX server is measured in the same
 * interleaved slices as this one (`BENCH_BASELINE_ROOT`, e.g. an export of the previous commit): before/after
 * comparisons in one run.
 */
const BASELINE_ROOT = process.env.BENCH_BASELINE_ROOT;

/** Starts the runtime CLI (of `root`, default this build; with `env`, that environment) and waits for its "ready" line. */
async function startRuntime(args: string[], root = ROOT, env?: NodeJS.ProcessEnv): Promise<Child> {
  // BENCH_NODE_ARGS: Node flags of the front process itself (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof, which NODE_OPTIONS refuses).
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, path.join(root, 'dist/runtime/cli.js'), '--port', '0', '--no-access-log', ...args], { stdio: ['ignore', 'pipe', 'inherit'], ...(env ? { env } : {}) });
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

/**
 * The stack of KServe's Python model server, MLServer and BentoML (FastAPI on uvicorn, one process per worker,
 * gunicorn as the process manager).
 * An `async def` route calling run() directly: the fastest FastAPI variant for a short run() (a plain `def`
 * route would add a thread-pool hop per request).
 */
const FASTAPI_APP = `
import importlib.util, json, os
from fastapi import FastAPI, Request
from fastapi.responses import Response, PlainTextResponse
spec = importlib.util.spec_from_file_location("score", os.environ["SCORE_PY"])
score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score)
score.init()
app = FastAPI()

@app.get("/")
async def health():
    return PlainTextResponse("Healthy")

@app.post("/score")
async def run(request: Request):
    body = (await request.body()).decode("utf-8")
    try:
        result = score.run(body)
        return Response(json.dumps(result), status_code=200, media_type="application/json")
    except Exception as e:
        return Response(json.dumps({"error": {"code": "RunFailed", "message": str(e)}}), status_code=500, media_type="application/json")
`;

type PeerKind = 'flask_gunicorn' | 'fastapi_uvicorn';

/** A Python peer server on a free port serving `scorePy` with `workers` processes. */
async function startPeer(kind: PeerKind, scorePy: string, modelDir: string, workers: number): Promise<Child & { dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-${kind}-`));
  const port = await freePort();
  let args: string[];
  if (kind === 'flask_gunicorn') {
    fs.writeFileSync(path.join(dir, 'flask_app.py'), FLASK_APP);
    args = ['-m', 'gunicorn', '-w', String(workers), '-b', `127.0.0.1:${port}`, '--chdir', dir, '--log-level', 'warning', 'flask_app:app'];
  } else {
    fs.writeFileSync(path.join(dir, 'fastapi_app.py'), FASTAPI_APP);
    // uvicorn's workers under gunicorn (uvicorn.workers.UvicornWorker), uvicorn's documented production setup: Debian's
    // uvicorn 0.17.6 with its own `--workers 2` answered each request of a single connection in ~44 ms (Nagle /
    // delayed-ACK pattern), which would make this peer look far worse than it is.
    args = ['-m', 'gunicorn', '-k', 'uvicorn.workers.UvicornWorker', '-w', String(workers), '-b', `127.0.0.1:${port}`, '--chdir', dir, '--log-level', 'warning', 'fastapi_app:app'];
  }
  const proc = spawn(PYTHON, args, {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, SCORE_PY: scorePy, AZUREML_MODEL_DIR: modelDir, PYTHONPATH: path.join(ROOT, 'runtime/python') },
  });
  try {
    await waitHttp(port);
  } catch (e) {
    await stopChild(proc);
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
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

/** CPU time (user + system) of processes, seconds (processes gone meanwhile count 0). */
function cpuSeconds(pids: number[]): number {
  const hz = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* gone */ }
  }
  return ticks / hz;
}

/** `scoring_batch_size` sum and count of a server's /metrics (requests served by model runs, runs). */
async function batchCounters(port: number): Promise<{ requests: number; runs: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return { requests: num(/^scoring_batch_size_sum (\S+)$/m), runs: num(/^scoring_batch_size_count (\S+)$/m) };
}

/**
 * Raw in-process loop (JSON → tensors → session.run → JSON values, one call after the other) vs HTTP at c1 and
 * c32 on the same input, with dynamic batching (the runtime's default, `BENCH_MAX_BATCH_SIZE`) and without it
 * (a second server with `--max-batch-size 1`). For honesty also a raw *batched* loop: `RAW_BATCH` copies of the
 * request stacked into one run by the same code the server uses (`runFeedsMany`), counted per request. All are
 * measured in interleaved slices of 0.5 s (raw, raw batched, c1, c32, c32 unbatched, raw, …; the servers idle
 * outside their slices) so that the shared machine's changing load hits all of them alike.
 */
async function benchOnnx(prefix: string, writeModel: (file: string) => void, input: unknown, note: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-onnx-'));
  const file = path.join(dir, 'model.onnx');
  writeModel(file);
  // Same session options as the server will use (intra-op threads = cores / workers unless BENCH_ONNX_THREADS).
  const threads = onnxThreads({ onnxThreads: ONNX_THREADS, workers: WORKERS });
  const model = await OnnxModel.load(file, { threads });
  const workerProcesses = process.env.BENCH_ONNX_WORKER_PROCESSES === '1';
  const common = ['--model-dir', dir, '--workers', String(WORKERS), '--max-concurrent', '16', '--max-wait-ms', '10000',
    '--onnx-threads', String(threads), ...(workerProcesses ? ['--onnx-worker-processes'] : [])];
  const rt = await startRuntime([...common, ...(MAX_BATCH_SIZE ? ['--max-batch-size', MAX_BATCH_SIZE] : [])]);
  const rtOff = await startRuntime([...common, '--max-batch-size', '1']);
  const rtBase = BASELINE_ROOT ? await startRuntime([...common, ...(MAX_BATCH_SIZE ? ['--max-batch-size', MAX_BATCH_SIZE] : [])], BASELINE_ROOT) : undefined;
  const body = Buffer.from(JSON.stringify(input));
  const c1 = new Load(rt.port, '/score', body, 1);
  const c32 = new Load(rt.port, '/score', body, 32, rt.proc.pid);
  const c32off = new Load(rtOff.port, '/score', body, 32, rtOff.proc.pid);
  const c32base = rtBase ? new Load(rtBase.port, '/score', body, 32, rtBase.proc.pid) : undefined;
  const batchOf = Array.from({ length: RAW_BATCH }, () => input);
  const rawBatched = async () => {
    const many = await model.runFeedsMany(batchOf.map((p) => settle(() => model.feeds(p))));
    if (many.runs.length !== 1) throw new Error(`raw batched loop: expected one run, got ${many.runs.join(',')}`);
  };
  try {
    const rawWarm = Date.now() + 500;
    while (Date.now() < rawWarm) { await model.run(input); await rawBatched(); }
    await c1.warm();
    await c32.warm();
    await c32off.warm();
    await c32base?.warm();
    let rawCalls = 0;
    let rawSeconds = 0;
    let batchedRequests = 0;
    let batchedSeconds = 0;
    const batches = { requests: 0, runs: 0 };
    const slice = SLICE_S;
    for (let round = 0; round < ROUNDS; round++) {
      let t0 = process.hrtime.bigint();
      let end = Date.now() + slice * 1000;
      while (Date.now() < end) { await model.run(input); rawCalls++; }
      rawSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
      t0 = process.hrtime.bigint();
      end = Date.now() + slice * 1000;
      while (Date.now() < end) { await rawBatched(); batchedRequests += RAW_BATCH; }
      batchedSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
      await c1.slice(slice);
      const before = await batchCounters(rt.port);
      await c32.slice(slice);
      const after = await batchCounters(rt.port);
      batches.requests += after.requests - before.requests;
      batches.runs += after.runs - before.runs;
      await c32off.slice(slice);
      await c32base?.slice(slice);
    }
    const raw = rawCalls / rawSeconds;
    const rawB = batchedRequests / batchedSeconds;
    const how = `${WORKERS} workers, ${workerProcesses ? 'worker processes' : 'in-process'}, intra-op threads ${threads}, --max-concurrent 16`;
    emit(`${prefix}.raw.req_per_s`, raw, 'req/s', { note: `in-process OnnxModel.run loop, 1 at a time; ${note}`, intra_op_threads: threads });
    emit(`${prefix}.raw_batched${RAW_BATCH}.req_per_s`, rawB, 'req/s', { note: `in-process loop, ${RAW_BATCH} requests stacked per run (runFeedsMany); ${note}`, intra_op_threads: threads });
    const r1 = c1.result();
    const r32 = c32.result();
    const r32off = c32off.result();
    report(prefix, 1, r1);
    report(prefix, 32, r32);
    report(`${prefix}.unbatched`, 32, r32off);
    const batching = `dynamic batching, --max-batch-size ${MAX_BATCH_SIZE || 'default (32)'}`;
    emit(`${prefix}.c32.mean_batch_size`, batches.runs ? batches.requests / batches.runs : NaN, 'requests/run', { runs: batches.runs, requests: batches.requests });
    emit(`${prefix}.http_over_raw.ratio`, r32.reqPerS / raw, 'ratio', { target: 0.6, http: `c32, ${how}, ${batching}`, raw: 'sequential loop', note, interleaved_slices_s: slice });
    emit(`${prefix}.http_unbatched_over_raw.ratio`, r32off.reqPerS / raw, 'ratio', { http: `c32, ${how}, --max-batch-size 1`, raw: 'sequential loop', note, interleaved_slices_s: slice });
    emit(`${prefix}.http_c1_over_raw.ratio`, r1.reqPerS / raw, 'ratio', { http: `c1, ${how}`, raw: 'sequential loop', note, interleaved_slices_s: slice });
    emit(`${prefix}.http_over_raw_batched.ratio`, r32.reqPerS / rawB, 'ratio', { http: `c32, ${how}, ${batching}`, raw: `loop of ${RAW_BATCH}-request batches`, note, interleaved_slices_s: slice });
    if (c32base) {
      const rb = c32base.result();
      report(`${prefix}.baseline`, 32, rb);
      emit(`${prefix}.baseline.http_over_raw.ratio`, rb.reqPerS / raw, 'ratio', { baseline: BASELINE_ROOT, http: `c32, ${how}, ${batching}`, note, interleaved_slices_s: slice });
      emit(`${prefix}.vs_baseline.ratio`, r32.reqPerS / rb.reqPerS, 'ratio', { baseline: BASELINE_ROOT, connections: 32, interleaved_slices_s: slice });
      if (r32.cpuMsPerReq !== undefined && rb.cpuMsPerReq !== undefined) {
        emit(`${prefix}.cpu_per_req_vs_baseline.ratio`, r32.cpuMsPerReq / rb.cpuMsPerReq, 'ratio', { baseline: BASELINE_ROOT, connections: 32, note: 'server CPU ms per request, this build / baseline (< 1 = cheaper)' });
      }
    }
  } finally {
    c1.close();
    c32.close();
    c32off.close();
    c32base?.close();
    await model.close();
    await rt.stop();
    await rtOff.stop();
    await rtBase?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The same score.py through this runtime, Flask + gunicorn and FastAPI + uvicorn, each with `WORKERS` worker
 * processes, all started at once and measured in interleaved 0.5 s slices (c1 and c32 of each server in turn, the
 * order rotated every round) so that the shared machine's load hits all of them alike.
 */
async function benchPython(): Promise<void> {
  const scorePy = path.join(ROOT, 'examples/runtime/python/json-model/score.py');
  const modelDir = path.join(ROOT, 'examples/runtime/python/json-model/model');
  const body = Buffer.from(JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] }));
  const servers: Array<{ prefix: string; stop(): Promise<void>; dir?: string; port: number; pid?: number }> = [];
  const skipped: Record<string, string> = {};
  try {
    const rt = await startRuntime(['--entry-script', scorePy, '--model-dir', modelDir, '--workers', String(WORKERS), '--python', PYTHON, '--max-wait-ms', '10000']);
    servers.push({ prefix: 'runtime.python', port: rt.port, stop: rt.stop, pid: rt.proc.pid });
    for (const kind of ['flask_gunicorn', 'fastapi_uvicorn'] as const) {
      try {
        const peer = await startPeer(kind, scorePy, modelDir, WORKERS);
        servers.push({ prefix: `${kind}.python`, port: peer.port, dir: peer.dir, stop: peer.stop, pid: peer.proc.pid });
      } catch (e) {
        skipped[kind] = `${kind} not available: ${(e as Error).message}`;
      }
    }
    // c32 also reports each server's CPU time per request (its process and all its workers): what it costs, far
    // less disturbed by the machine's load than req/s.
    const loads = servers.map((sv) => ({ sv, c1: new Load(sv.port, '/score', body, 1), c32: new Load(sv.port, '/score', body, 32, sv.pid, true) }));
    try {
      for (const l of loads) {
        await l.c1.warm();
        await l.c32.warm();
      }
      const points = loads.flatMap((l) => [l.c1, l.c32]);
      for (let round = 0; round < ROUNDS; round++) {
        for (let k = 0; k < points.length; k++) await points[(k + round) % points.length].slice(SLICE_S);
      }
      const results = new Map<string, { c1: LoadResult; c32: LoadResult }>();
      for (const l of loads) {
        const c1 = l.c1.result();
        const c32 = l.c32.result();
        results.set(l.sv.prefix, { c1, c32 });
        report(l.sv.prefix, 1, c1);
        report(l.sv.prefix, 32, c32);
      }
      const ours = results.get('runtime.python')!.c32;
      const targets: Record<PeerKind, number> = { flask_gunicorn: 2.0, fastapi_uvicorn: 1.5 };
      for (const kind of ['flask_gunicorn', 'fastapi_uvicorn'] as const) {
        const theirs = results.get(`${kind}.python`)?.c32;
        if (!theirs) {
          emit(`runtime.python.vs_${kind}.ratio`, NaN, 'ratio', { skipped: skipped[kind] });
          continue;
        }
        emit(`runtime.python.vs_${kind}.ratio`, ours.reqPerS / theirs.reqPerS, 'ratio', {
          target: targets[kind], connections: 32, workers: WORKERS, interleaved_slices_s: SLICE_S,
          p99_ms: { runtime: r3(ours.p99), [kind]: r3(theirs.p99) }, p99_no_worse: ours.p99 <= theirs.p99,
          loadavg_1m: spreadOf([...ours.loadavg1m.n ? [ours.loadavg1m.mean] : [], ...theirs.loadavg1m.n ? [theirs.loadavg1m.mean] : []]).mean,
        });
      }
    } finally {
      for (const l of loads) {
        l.c1.close();
        l.c32.close();
      }
    }
  } finally {
    for (const sv of servers) {
      await sv.stop();
      if (sv.dir) fs.rmSync(sv.dir, { recursive: true, force: true });
    }
  }
}

async function benchOnnxModels(): Promise<void> {
  const row = Array.from({ length: 64 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
  await benchOnnx('runtime.onnx', (f) => fs.writeFileSync(f, mlpOnnx([64, 1024, 1024, 10])), { data: [row] }, 'MLP 64-1024-1024-10 (1.1 M params), 1 row');
  await benchOnnx('runtime.onnx_tiny', writeLinearOnnx, { data: [[5.1, 3.5, 1.4, 0.2]] }, 'linear 4-3 (15 params): pure overhead');
}

/**
 * Model data collection on vs off (same script, same workers, same run): slices of 0.5 s alternate between the two
 * servers so both see the same machine load. The collecting server writes to a fresh in-memory Azurite.
 */
async function benchCollect(): Promise<void> {
  const azurite = await startAzurite();
  const args = ['--entry-script', path.join(ROOT, 'examples/runtime/node/trivial.js'), '--workers', String(WORKERS), '--max-concurrent', '16', '--max-wait-ms', '10000'];
  // BENCH_NODE_OPTIONS: Node flags for both servers (e.g. a larger young generation, --max-semi-space-size=32).
  const nodeEnv = process.env.BENCH_NODE_OPTIONS ? { ...process.env, NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : process.env;
  const off = await startRuntime(args, ROOT, nodeEnv);
  const on = await startRuntime([...args, '--collect-model-data', '--service-name', 'bench', '--model-name', 'trivial', '--model-version', '1', ...(process.env.BENCH_COLLECT_BATCH ? ['--model-data-batch-records', process.env.BENCH_COLLECT_BATCH] : []), ...(process.env.BENCH_COLLECT_MAX_RECORDS ? ['--model-data-max-records', process.env.BENCH_COLLECT_MAX_RECORDS] : [])], ROOT, { ...nodeEnv, MDF_MODEL_DATA_CONNECTION_STRING: azurite.connectionString });
  // Storage down: a collecting server whose container URL refuses connections (buffer fills, records are dropped).
  const closed = await freePort();
  const down = await startRuntime([...args, '--collect-model-data', '--model-data-url', `http://127.0.0.1:${closed}/devstoreaccount1/modeldata?sv=2025-01-05&sig=bench`], ROOT, nodeEnv);
  const body = Buffer.from(JSON.stringify({ data: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] }));
  const lOn = new Load(on.port, '/score', body, 32);
  const lOff = new Load(off.port, '/score', body, 32);
  const lDown = new Load(down.port, '/score', body, 32);
  const slice = 0.5;
  try {
    await lOn.warm();
    await lOff.warm();
    await lDown.warm();
    // Steady state before measuring: the collecting server has written a batch (its first upload creates the
    // container and JITs the upload path: once per process, not per record) and the storage-down one drops records
    // (its buffer is full). All three servers get the same warm-up (so none is JIT-warmer than another), in rounds of
    // 0.5 s each, at most 40.
    const outcomeCount = async (port: number, outcome: string) => Number(new RegExp(`scoring_model_data_records_total\\{outcome="${outcome}"\\} (\\d+)`).exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1] ?? 0);
    for (let i = 0; i < 40 && ((await outcomeCount(on.port, 'written')) === 0 || (await outcomeCount(down.port, 'dropped')) === 0); i++) {
      await lOn.warm();
      await lOff.warm();
      await lDown.warm();
    }
    const warmed = { written: await outcomeCount(on.port, 'written'), dropped: await outcomeCount(down.port, 'dropped') };
    // BENCH_STORAGE_NICE: the storage emulator's CPU priority (e.g. 19). Azurite shares this machine's cores with the
    // servers; Azure Storage does not run on a replica's cores. Default: unchanged (same priority as the servers).
    const storageNice = process.env.BENCH_STORAGE_NICE === undefined ? undefined : Number(process.env.BENCH_STORAGE_NICE);
    // CPU seconds of each side (front + workers) and of Azurite (the bench's other children), over the measurement.
    const tree = (pid: number) => [pid, ...descendants(pid)];
    const others = () => descendants(process.pid).filter((p) => ![on, off, down].some((c) => tree(c.proc.pid!).includes(p)));
    if (storageNice !== undefined) for (const pid of others()) os.setPriority(pid, storageNice);
    // BENCH_STORAGE_CPUS: the storage emulator on these CPUs only, the servers and the load generator on the others, as
    // in Azure, where the storage account never runs on a replica's cores. Default: the last CPU (where there are 2+
    // and taskset); `shared` = every process on every core.
    const storageSpec = process.env.BENCH_STORAGE_CPUS ?? (canPin() ? String(os.cpus().length - 1) : 'shared');
    const storageCpus = storageSpec === 'shared' ? undefined : cpuList(storageSpec, 'BENCH_STORAGE_CPUS');
    if (storageCpus) {
      pin(others(), storageCpus);
      pin([process.pid, ...[on, off, down].flatMap((c) => tree(c.proc.pid!))], otherCpus(storageCpus));
    }
    const load0 = os.loadavg()[0];
    const cpu0 = { on: cpuSeconds(tree(on.proc.pid!)), off: cpuSeconds(tree(off.proc.pid!)), storage: cpuSeconds(others()), onFront: cpuSeconds([on.proc.pid!]), offFront: cpuSeconds([off.proc.pid!]), downFront: cpuSeconds([down.proc.pid!]) };
    for (let t = 0; t < COLLECT_SECONDS; t += slice) {
      await lOff.slice(slice);
      await lOn.slice(slice);
      await lDown.slice(slice);
    }
    const cpu = {
      on: cpuSeconds(tree(on.proc.pid!)) - cpu0.on, off: cpuSeconds(tree(off.proc.pid!)) - cpu0.off, storage: cpuSeconds(others()) - cpu0.storage,
      onFront: cpuSeconds([on.proc.pid!]) - cpu0.onFront, offFront: cpuSeconds([off.proc.pid!]) - cpu0.offFront, downFront: cpuSeconds([down.proc.pid!]) - cpu0.downFront,
    };
    const rOn = lOn.result();
    const rOff = lOff.result();
    if (process.env.BENCH_TRACE_DIR) {
      for (const [k, l, c] of [['on', lOn, on], ['off', lOff, off], ['down', lDown, down]] as const) {
        fs.writeFileSync(path.join(process.env.BENCH_TRACE_DIR, `load-${k}.json`), JSON.stringify({ pid: c.proc.pid, trace: l.trace }));
      }
    }
    const metrics = await (await fetch(`http://127.0.0.1:${on.port}/metrics`)).text();
    const count = (outcome: string) => Number(new RegExp(`scoring_model_data_records_total\\{outcome="${outcome}"\\} (\\d+)`).exec(metrics)?.[1] ?? NaN);
    report('runtime.collect_on', 32, rOn);
    report('runtime.collect_off', 32, rOff);
    const common = {
      connections: 32, workers: WORKERS, interleaved_slices_s: slice, seconds_per_server: COLLECT_SECONDS, loadavg_1m: [load0, os.loadavg()[0]], warmed_until: warmed, storage_nice: storageNice ?? 0, storage_cpus: storageCpus?.join(',') ?? 'shared', collected: count('collected'), written: count('written'), dropped: count('dropped'),
      cpu_s: { on: Math.round(cpu.on * 100) / 100, off: Math.round(cpu.off * 100) / 100, azurite: Math.round(cpu.storage * 100) / 100 },
      cpu_us_per_request: { on: Math.round((cpu.on / rOn.requests) * 1e6), off: Math.round((cpu.off / rOff.requests) * 1e6) },
      // The front process alone (the collector runs there; workers run the same script either way).
      front_cpu_us_per_request: { on: Math.round((cpu.onFront / rOn.requests) * 1e6), off: Math.round((cpu.offFront / rOff.requests) * 1e6) },
      requests: { on: rOn.requests, off: rOff.requests },
    };
    emit('runtime.collect.req_per_s.ratio', rOn.reqPerS / rOff.reqPerS, 'ratio', { target: '>= 0.9', ...common });
    emit('runtime.collect.p99.ratio', rOn.p99 / rOff.p99, 'ratio', { target: '<= 1.2', ...common });
    const rDown = lDown.result();
    const downMetrics = await (await fetch(`http://127.0.0.1:${down.port}/metrics`)).text();
    const downCount = (outcome: string) => Number(new RegExp(`scoring_model_data_records_total\\{outcome="${outcome}"\\} (\\d+)`).exec(downMetrics)?.[1] ?? NaN);
    report('runtime.collect_storage_down', 32, rDown);
    emit('runtime.collect_storage_down.p99.ratio', rDown.p99 / rOff.p99, 'ratio', {
      note: 'collection on, storage refusing connections, vs collection off (same interleaved run)', errors: rDown.errors,
      req_per_s_ratio: Math.round((rDown.reqPerS / rOff.reqPerS) * 1000) / 1000, collected: downCount('collected'), dropped: downCount('dropped'), written: downCount('written'),
      front_cpu_us_per_request: { down: Math.round((cpu.downFront / rDown.requests) * 1e6), off: Math.round((cpu.offFront / rOff.requests) * 1e6) },
    });
  } finally {
    lOn.close();
    lOff.close();
    lDown.close();
    await on.stop();
    await off.stop();
    await down.stop();
    await azurite.stop();
  }
}

async function main(): Promise<void> {
  emit('runtime.bench.machine.cpus', os.cpus().length, 'cores', { seconds_per_point: SECONDS, workers: WORKERS, node: process.version, only: [...ONLY], loadavg_1m: os.loadavg()[0] });
  if (ONLY.has('node')) await benchNode();
  if (ONLY.has('onnx')) await benchOnnxModels();
  if (ONLY.has('python')) await benchPython();
  if (ONLY.has('collect')) await benchCollect();
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
