/**
 * `npm run demo`: the whole deployment chain on embedded defaults — no cloud, no Docker.
 *
 *   node dist/examples/demo.js [--runtimes node,onnx] [--keep] [--port N] [--verbose] [--timeout-s 120]
 *
 * 1. starts Azurite (data in a temp folder, free ports) and the local Functions host (child process);
 * 2. drops an example model folder into `incoming/<example>/` (deploy.json last): the blob trigger starts the
 *    `deployModel` run, followed step by step through `GET /api/runs/{id}`;
 * 3. scores the new endpoint with the manifest's sample and checks the prediction;
 * 4. deploys the next example to the same service (an update: blue/green) while a client keeps scoring, and
 *    shows the new version serving with no failed request;
 * 5. prints a timings table and the management API URLs, then stops everything (`--keep`: until Ctrl+C).
 * Exit code 0 on success, 1 on a failure (with the reason and the host log's tail), 2 on bad options.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runIdFor } from '../shared/deploy/run-status';
import { CONTAINERS } from '../shared/storage';
import { isBatchRun, MdfClient } from '../client/api';
import { secs, StepProgress } from '../cli/progress';
import { closeTo, formatTable, loadExample, numbersOf, runTimings, shapeOf, uploadFolder, type Example, type RunView } from './demo/run';
import { startStack, type Stack } from './demo/stack';

const RUNTIME_EXAMPLES: Record<string, string> = { node: 'diabetes-node', onnx: 'diabetes-onnx', python: 'diabetes-python' };
const SERVICE = 'diabetes';
const USAGE = `Usage: node dist/examples/demo.js [options]   (npm run demo -- [options])
  --runtimes a,b     examples to deploy, in order: the first deploys the service, each next one updates it
                     (node | onnx | python; default node,onnx; python needs python3 with numpy)
  --keep             leave everything running at the end (Ctrl+C stops it and removes the temp data)
  --port N           port of the local Functions host (default: a free port)
  --timeout-s S      bound on each run (default 120)
  --verbose          copy the host's log to stderr
  --help             this text
`;

interface Options {
  runtimes: string[];
  keep: boolean;
  port: number;
  timeoutMs: number;
  verbose: boolean;
}

class DemoError extends Error {}

function parseArgs(argv: string[]): Options | 'help' {
  const o: Options = { runtimes: ['node', 'onnx'], keep: false, port: 0, timeoutMs: 120_000, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new DemoError(`${a} needs a value.`);
      return v;
    };
    if (a === '--help' || a === '-h') return 'help';
    else if (a === '--keep') o.keep = true;
    else if (a === '--verbose') o.verbose = true;
    else if (a === '--runtimes') o.runtimes = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--port') o.port = Number(value());
    else if (a === '--timeout-s') o.timeoutMs = Number(value()) * 1000;
    else throw new DemoError(`Unknown option ${a}.`);
  }
  const bad = o.runtimes.filter((r) => !(r in RUNTIME_EXAMPLES));
  if (!o.runtimes.length || bad.length) throw new DemoError(`--runtimes takes node, onnx or python (comma-separated); got "${o.runtimes.join(',')}".`);
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new DemoError('--port takes a port number (0 = a free port).');
  if (!(o.timeoutMs > 0)) throw new DemoError('--timeout-s takes a positive number of seconds.');
  return o;
}

// ---------------------------------------------------------------- output

const started = performance.now();
function say(message = ''): void {
  const t = `${((performance.now() - started) / 1000).toFixed(1)}s`.padStart(6);
  process.stdout.write(message ? `[${t}] ${message}\n` : '\n');
}
function heading(title: string): void {
  process.stdout.write(`\n== ${title}\n`);
}
/** Compact JSON with numbers rounded for display. */
function show(value: unknown, max = 140): string {
  const s = JSON.stringify(value, (_k, v) => (typeof v === 'number' ? Number(v.toFixed(3)) : v)) ?? String(value);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** One line per step change (the same step lines as `mdf deploy --wait`), after a first line naming the run. */
class Progress {
  private announced = false;
  private readonly steps = new StepProgress({ line: (text) => say(text) });

  constructor(private readonly runId: string) {}

  update(view: RunView): void {
    if (!this.announced) {
      this.announced = true;
      say(`run ${this.runId} started by the blob trigger`);
    }
    this.steps.update(view);
  }
}

// ---------------------------------------------------------------- the demo

interface DemoRun {
  example: Example;
  runtime: string;
  view: RunView;
  clientMs: number;
  /** The endpoint's answer to the manifest's sample right after the run. */
  answer?: unknown;
}

/** Scoring traffic during an update: sequential requests until stopped, counted by answer format. */
class Traffic {
  readonly formats = new Map<string, number>();
  failed = 0;
  total = 0;
  firstFailure?: string;
  private stopped = false;
  private loop?: Promise<void>;

  start(uri: string, body: unknown, key?: string): void {
    this.loop = (async () => {
      while (!this.stopped) {
        this.total++;
        try {
          const r = await MdfClient.scoreUri(uri, body, key);
          if (r.status === 200) this.formats.set(shapeOf(r.body), (this.formats.get(shapeOf(r.body)) ?? 0) + 1);
          else {
            this.failed++;
            this.firstFailure ??= `HTTP ${r.status} ${show(r.body, 200)}`;
          }
        } catch (e) {
          this.failed++;
          this.firstFailure ??= (e as Error).message;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** The demo's client of the management API (the same one `mdf` uses). */
const api = (stack: Stack) => new MdfClient({ baseUrl: stack.baseUrl });

async function scoringKey(stack: Stack, service: string): Promise<string | undefined> {
  return (await api(stack).scoringTarget(service)).key;
}

async function deployFolder(stack: Stack, example: Example, folder: string, opts: Options): Promise<{ view: RunView; clientMs: number }> {
  const manifest = { ...example.manifest, service: { ...(example.manifest.service ?? {}), name: SERVICE } };
  const files = { ...example.files, 'deploy.json': Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) };
  const t0 = performance.now();
  const etag = await uploadFolder(stack.storage, CONTAINERS.incoming, folder, files);
  say(`uploaded incoming/${folder}/: ${Object.keys(files).filter((f) => f !== 'deploy.json').join(', ')}, then deploy.json`);
  const runId = runIdFor('blob', `incoming/${folder}/deploy.json@${etag}`);
  const progress = new Progress(runId);
  const errorBlob = stack.storage.container(CONTAINERS.incoming).getBlockBlobClient(`${folder}/deploy.error.json`);
  let lastCheck = 0;
  const ended = await api(stack).waitForRun(runId, {
    timeoutMs: opts.timeoutMs,
    pollMs: 100,
    onPoll: async (v) => {
      const exit = stack.hostExit();
      if (exit) throw new DemoError(`The local Functions host stopped (${exit}).`);
      if (v && isBatchRun(v)) throw new DemoError(`Run ${runId} is a batch run, not a deployment.`);
      if (v) return progress.update(v);
      if (performance.now() - lastCheck < 1000) return;
      lastCheck = performance.now();
      // The blob trigger rejects a bad manifest with a report beside it instead of starting a run.
      if (await errorBlob.exists()) {
        const report = JSON.parse((await errorBlob.downloadToBuffer()).toString('utf8'));
        throw new DemoError(`incoming/${folder}/deploy.json was rejected: ${report.error?.code}: ${report.error?.message}`);
      }
    },
  });
  const clientMs = performance.now() - t0;
  if (isBatchRun(ended)) throw new DemoError(`Run ${runId} is a batch run, not a deployment.`);
  const view: RunView = ended;
  progress.update(view);
  if (view.state !== 'Succeeded') {
    throw new DemoError(`Run ${runId} ended ${view.state}: ${view.error ? `${view.error.code}: ${view.error.message}` : 'no reason given'}`);
  }
  say(`run Succeeded (${view.result?.outcome}) in ${secs(runTimings(view).total)} s; upload → serving ${secs(clientMs)} s`);
  return { view, clientMs };
}

async function scoreAndCheck(stack: Stack, run: DemoRun): Promise<unknown> {
  const smoke = run.example.manifest.smoke_test ?? {};
  const uri = run.view.result?.scoringUri;
  if (!uri) throw new DemoError(`Run ${run.view.id} has no scoring URI.`);
  const key = await scoringKey(stack, SERVICE);
  const r = await MdfClient.scoreUri(uri, smoke.sample, key);
  if (r.status !== 200) throw new DemoError(`POST ${uri} answered ${r.status}: ${show(r.body, 300)}`);
  say(`POST ${uri}  ${show(smoke.sample, 60)}`);
  say(`prediction: ${show(r.body)}  (${r.ms.toFixed(1)} ms)`);
  if (smoke.expected_output !== undefined) {
    const tol = Number(smoke.tolerance ?? 1e-5);
    if (!closeTo(r.body, smoke.expected_output, tol)) throw new DemoError(`The prediction ${show(r.body)} differs from the expected ${show(smoke.expected_output)} (tolerance ${tol}).`);
    say(`matches the expected output ${show(numbersOf(smoke.expected_output))} (tolerance ${tol})`);
  }
  return r.body;
}

async function runDemo(opts: Options, stack: Stack): Promise<DemoRun[]> {
  const runs: DemoRun[] = [];
  const folders = new Set<string>();
  for (const [i, runtime] of opts.runtimes.entries()) {
    const example = loadExample(RUNTIME_EXAMPLES[runtime]);
    let folder = example.name;
    for (let n = 2; folders.has(folder); n++) folder = `${example.name}-${n}`;
    folders.add(folder);
    const previous = runs[runs.length - 1];
    heading(
      i === 0
        ? `${i + 1}. Deploy examples/models/${example.name} (runtime ${runtime}) as service "${SERVICE}"`
        : `${i + 1}. Update "${SERVICE}" to examples/models/${example.name} (runtime ${runtime}): blue/green, while a client keeps scoring`,
    );
    let traffic: Traffic | undefined;
    if (previous) {
      traffic = new Traffic();
      traffic.start(previous.view.result!.scoringUri!, previous.example.manifest.smoke_test?.sample, await scoringKey(stack, SERVICE));
    }
    let deployed: { view: RunView; clientMs: number };
    try {
      deployed = await deployFolder(stack, example, folder, opts);
    } finally {
      await traffic?.stop();
    }
    const run: DemoRun = { example, runtime, ...deployed };
    runs.push(run);
    run.answer = await scoreAndCheck(stack, run);
    if (traffic && previous) {
      const oldShape = shapeOf(previous.answer);
      const newShape = shapeOf(run.answer);
      const parts = [...traffic.formats.entries()].map(([shape, n]) => {
        if (shape === newShape && shape !== oldShape) return `${n} by ${run.view.result?.image} (new format)`;
        if (shape !== newShape) return `${n} by ${previous.view.result?.image} (old format)`;
        return `${n} answered (old and new versions share one output format)`;
      });
      say(`client during the update: ${traffic.total} requests, ${traffic.failed} failed${parts.length ? `; ${parts.join(', ')}` : ''}`);
      if (traffic.failed) throw new DemoError(`${traffic.failed} scoring request(s) failed during the update (first: ${traffic.firstFailure}).`);
    }
    const svc = await api(stack).service(SERVICE);
    if (svc.state !== 'Healthy' || svc.image !== run.view.result?.image) {
      throw new DemoError(`Service ${SERVICE} should be Healthy on ${run.view.result?.image}; it is ${svc.state} on ${svc.image}.`);
    }
    say(`service "${SERVICE}": ${svc.state}, image ${svc.image}, model ${(svc.models ?? []).join(', ')}, runtime ${svc.runtime ?? runtime}`);
  }
  return runs;
}

function printSummary(stack: Stack, runs: DemoRun[]): void {
  heading('Timings (seconds; register/build/deploy/smoke/promote/total from the run\'s own step times)');
  const rows = runs.map((r, i) => {
    const t = runTimings(r.view);
    return [`${i + 1}. ${i === 0 ? 'deploy' : 'update'} ${r.view.result?.image} (${r.runtime})`, secs(t.register), secs(t.build), secs(t.deploy), secs(t.smoke), secs(t.promote), secs(t.total), secs(r.clientMs)];
  });
  process.stdout.write(`${formatTable(['run', 'register', 'build', 'deploy', 'smoke', 'promote', 'total', 'upload→serving'], rows)}\n`);
  process.stdout.write('(deploy = prepare + start the new slot; upload→serving = first blob written → run Succeeded, seen by this client)\n');

  const last = runs[runs.length - 1].view.result!;
  const b = stack.baseUrl;
  heading('Management API');
  const lines: Array<[string, string]> = [
    ...runs.map((r, i): [string, string] => [`GET  ${b}/api/runs/${r.view.id}`, `run ${i + 1}: state, steps and times, result`]),
    [`GET  ${b}/api/services/${SERVICE}`, 'the service: state, image, scoring and swagger URIs'],
    [`GET  ${b}/api/services/${SERVICE}/keys`, 'its keys (only here, never in listings)'],
    [`GET  ${b}/api/models`, `registered models (${[...new Set(runs.map((r) => r.view.result?.model))].join(', ')})`],
    [`GET  ${b}/api/images`, `images (${runs.map((r) => r.view.result?.image).join(', ')})`],
    [`POST ${b}/api/deployments`, 'start a deployment from a manifest (JSON/YAML, ?folder=container/path, or multipart)'],
    [`POST ${last.scoringUri}`, 'the scoring endpoint'],
    [`GET  ${last.swaggerUri}`, 'its swagger.json'],
  ];
  const w = Math.max(...lines.map(([u]) => u.length));
  for (const [u, d] of lines) process.stdout.write(`  ${u.padEnd(w)}  ${d}\n`);
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    const parsed = parseArgs(process.argv.slice(2));
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    opts = parsed;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (opts.runtimes.includes('python')) {
    const python = process.env.LOCAL_PYTHON || 'python3';
    try {
      execFileSync(python, ['-c', 'import numpy'], { stdio: 'ignore' });
    } catch {
      process.stderr.write(`Demo failed: the python example needs ${python} with numpy (Debian: apt-get install python3-numpy); or run --runtimes node,onnx.\n`);
      return 1;
    }
  }

  process.stdout.write(`Model Deploy Flow demo: register → build → deploy → smoke test → promote, on embedded defaults (Azurite + local host + local target)\n`);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-demo-'));
  let stack: Stack | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      if (stack) say('stopping the host, its scoring processes and Azurite…');
      await stack?.stop().catch((e) => process.stderr.write(`stopping failed: ${(e as Error).message}\n`));
      fs.rmSync(workDir, { recursive: true, force: true });
      if (stack) say('stopped; temp data removed');
    })());
  let interrupted: ((signal: string) => void) | undefined;
  const interruptedP = new Promise<string>((resolve) => (interrupted = resolve));
  let signals = 0;
  let keeping = false;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      process.stderr.write(`${signal} again: exiting without waiting for the clean-up (temp data: ${workDir})\n`);
      process.exit(130);
    }
    interrupted?.(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const work = async (): Promise<number> => {
    say(`temp data in ${workDir} (Azurite, local services, host.log; removed at exit)`);
    stack = await startStack({
      workDir,
      port: opts.port,
      pollMs: 200,
      ...(opts.verbose ? { onHostLine: (l: string) => process.stderr.write(`[host] ${l}\n`) } : {}),
    });
    say(`Azurite on 127.0.0.1 ports ${stack.azurite.blobPort} (blob), ${stack.azurite.queuePort} (queue), ${stack.azurite.tablePort} (table)`);
    say(`local Functions host on ${stack.baseUrl} (pid ${stack.hostPid})`);
    const runs = await runDemo(opts, stack);
    printSummary(stack, runs);
    if (opts.keep) {
      const last = runs[runs.length - 1];
      heading('Still running (--keep): Ctrl+C stops everything');
      process.stdout.write(`  curl -s -X POST ${last.view.result?.scoringUri} -H 'content-type: application/json' -d '${JSON.stringify(last.example.manifest.smoke_test?.sample)}'\n`);
      process.stdout.write(`  another model: POST ${stack.baseUrl}/api/deployments (multipart: a "manifest" part first, then one part per file), or its files then deploy.json\n`);
      process.stdout.write(`  under incoming/<name>/ in this Azurite (blob endpoint http://127.0.0.1:${stack.azurite.blobPort}/devstoreaccount1, Azurite's well-known dev account)\n`);
      keeping = true;
      await interruptedP;
    }
    return 0;
  };

  let code: number;
  try {
    code = await Promise.race([work(), interruptedP.then((s) => (say(`${s}: stopping`), keeping ? 0 : 130))]);
  } catch (e) {
    const message = e instanceof DemoError || !opts.verbose ? (e as Error).message ?? String(e) : (e as Error).stack ?? String(e);
    process.stderr.write(`\nDemo failed: ${message}\n`);
    const tail = stack?.hostLogTail(25);
    if (tail) process.stderr.write(`Last lines of the host log:\n${tail}\n`);
    code = 1;
  }
  await cleanup();
  if (code === 0) process.stdout.write('\nDemo finished: every run Succeeded.\n');
  return code;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`Demo failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
