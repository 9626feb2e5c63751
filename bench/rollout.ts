/**
 * Progressive-delivery benchmark (`npm run bench:rollout`): one JSON object per line (`name`, `value`, `unit`, details):
 * per configuration `value` = its p99 (ms); `*_added` = the p50 added vs direct (ms); `*_p99_cost` = the ratio − 1.
 *
 * What the service front adds per request, and what shadow traffic costs the client:
 * - `direct`: straight to a slot (a minimal HTTP server answering a small JSON body, and batches of shadow copies
 *   as a replica does: runtime/mirror-batch.ts);
 * - `front`: through a `LocalFront` with one active slot (today's blue/green path);
 * - `split`: through a front splitting 90/10 between two slots (weighted routing);
 * - `mirror`: through a front serving one slot and copying 20 % of requests to the other (shadow), copies sent at once
 *   (`MirrorBounds.gatherMs` 0), and 100 %; `mirror20g`: 20 % with copies gathered for a batch (`gatherMs` =
 *   GATHER_MS, as the local target's fronts and the ACI/AKS front process do by default). The shadow slot runs at
 *   idle CPU priority (SCHED_IDLE), as the local target runs a shadow phase's new version; `mirror20gn` = `mirror20g`
 *   with a shadow slot at normal priority (LOCAL_SHADOW_CPU_PRIORITY=normal). The mirroring fronts send their copies
 *   from their shadow thread at idle priority (`MirrorBounds.thread`, the default); `mirror20gl` = `mirror20g` with
 *   copies sent and judged on the front's own loop; `mirror5g` (only when BENCH_CONFIGS names it) = `mirror20g` at 5 %;
 * - `idlespin`, `idlespin4` (only when BENCH_CONFIGS names them): `front`, measured while a busy loop runs at idle CPU
 *   priority all the time, or 1 ms in every 25 (about the shadow slot's CPU at 20 % mirroring): `*_p99_cost` is what
 *   work that takes only idle CPU costs the clients on this machine, with no copy at all;
 * - `front2`: a second front like `front`: `*.aa_p99_diff.*` (an A/A comparison) is how far two identical
 *   configurations' p99s differ in the same run, the noise floor under the `*_p99_cost.*` figures; with it each
 *   mirroring configuration also gets `*_p99_cost_pooled`, its cost against `front` and `front2` pooled (pooledCost).
 * The serving slot and the fronts run in one child process (this file with `serve`), the shadow slot in another
 * (`slot`, as a replica is its own process), the closed-loop load generator in this one,
 * at 1 and 32 connections (closed loops) and at a fixed rate, half what `front` answered at 32 connections (`rate50`,
 * an open loop), measurements interleaved in slices so each configuration sees the same machine load.
 *
 * The front as it runs on ACI (`rollout.aci.*`): real scoring runtimes (`dist/runtime/cli.js`, the trivial Node
 * example, key auth, one worker) behind standalone front processes (`dist/runtime/front-cli.js`, each started with
 * its state as the ACI target gives it): `direct` = the serving runtime itself; `front` = a front serving it alone;
 * `mirror20` = a front serving it and copying 20 % of requests to a second runtime, each copy sent at once while the
 * front is idle (`MDF_FRONT_MIRROR_GATHER_MS=0`); `mirror20g` = the same with the front process's default gathering;
 * `mirror20gl` (only when BENCH_CONFIGS names it) = `mirror20g` with `MDF_FRONT_MIRROR_THREAD=0`.
 * Every request carries the key.
 * Environment: BENCH_SECONDS (per configuration and concurrency, default 4), BENCH_SLICES (default 4),
 * BENCH_PARTS (`local,aci` by default: which of the two sets to measure), BENCH_SHADOW_CPUS (e.g. `1`: the shadow slot's
 * processes on these CPUs only, everything else on the others; default every core shared), BENCH_CONFIGS (e.g.
 * `front,front2,mirror20,mirror20g`: only these configurations; `front` is always measured), BENCH_LOADS (e.g. `c1,c32`;
 * default `c1,c32,rate50`; `rate50` needs `c32`), BENCH_ALT_FRONT (another build's `dist`: `alt20`, `alt20g` through its
 * front, in the same rounds; see ALT_FRONT), BENCH_SCORE_MS (ACI part: CPU per request of the runtimes; see SCORE_MS).
 * BENCH_FRONT_CPUS (ACI part: the front processes' CPUs; see FRONT_CPUS), BENCH_SERVING_PROCESS (local part: `1` = the
 * serving slot in a process of its own; see SERVING_PROCESS). Every cost line carries `ci90`: a 90 % interval of its ratio from
 * 1,000 resamplings of the rounds (a round = one slice of each configuration, adjacent in time; both configurations
 * resampled with the same rounds). Where /proc exists, each configuration's line
 * also carries the CPU time per request of the serving side (`cpu_us_per_req`: the child with the serving slot and
 * the fronts; on the ACI part the front process; `loop_cpu_us_per_req`: that process's main thread alone, without the
 * fronts' shadow threads) and, with mirroring, of the shadow slot (`shadow_cpu_us_per_req`).
 * The local mirroring lines also carry the copies of their slices: `copies_sent`, `copies_skipped` (the in-flight
 * cap) and `copy_errors`, so a change that saves CPU by shedding copies shows.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { LocalFront } from '../shared/targets/local-front';
import { answerMirrorBatch, DEFAULT_FRONT_GATHER_MS, DEFAULT_MIRROR_BOUNDS, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE } from '../runtime';
import { cpuList, onCpus, otherCpus, pin } from './cpus';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const SLICES = Number(process.env.BENCH_SLICES ?? 4);
const PARTS = (process.env.BENCH_PARTS ?? 'local,aci').split(',');
const CONFIGS = process.env.BENCH_CONFIGS ? new Set(['front', ...process.env.BENCH_CONFIGS.split(',')]) : undefined;
const LOADS = (process.env.BENCH_LOADS ?? 'c1,c32,rate50').split(',') as Array<'c1' | 'c32' | 'rate50'>;
/** How long `mirror20g`'s copies gather (the local target's and the ACI/AKS front process's default). */
const GATHER_MS = DEFAULT_FRONT_GATHER_MS;
/**
 * BENCH_ALT_FRONT: the `dist` folder of another build of this repository (e.g. a `git worktree` of another commit,
 * built): its `LocalFront` serves two more configurations, `alt20` and `alt20g` (as `mirror20` and `mirror20g`),
 * measured in the same rounds as this build's, so a change to the front is judged against the one before it in one
 * run (two runs minutes apart differ by more than a run's own interval: docs/benchmarks.md, "The shadow work on a
 * thread and in slices").
 */
const ALT_FRONT = process.env.BENCH_ALT_FRONT
  ? // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require(path.resolve(process.env.BENCH_ALT_FRONT, 'shared', 'targets', 'local-front.js')) as { LocalFront: typeof LocalFront }).LocalFront
  : undefined;
/** Configurations that mirror (their copies are drained after each slice; a cost line each). */
const isMirror = (k: string) => k.startsWith('mirror') || k.startsWith('alt');
/** Only the configurations BENCH_CONFIGS names (all by default). */
const chosen = (ports: Record<string, number>) => Object.fromEntries(Object.entries(ports).filter(([k]) => !CONFIGS || CONFIGS.has(k)));
/**
 * BENCH_SHADOW_CPUS (e.g. `1`): the shadow slot's processes run on these CPUs only and everything else (the load
 * generator, the fronts, the serving slot) on the others, as on a real target where the shadow deployment has its
 * own replicas (its own container group or pods); unset = every process shares every core.
 */
const SHADOW_CPUS = process.env.BENCH_SHADOW_CPUS ? cpuList(process.env.BENCH_SHADOW_CPUS, 'BENCH_SHADOW_CPUS') : undefined;
const spawnShadow = (args: string[], options: SpawnOptions): ChildProcess => spawn(...onCpus(SHADOW_CPUS, process.execPath, args), options);
/**
 * BENCH_FRONT_CPUS (ACI part, e.g. `1`): the front processes run on these CPUs only (default: with the load generator
 * and the serving runtime). On ACI the front is its own container group, with its own cores: with BENCH_SHADOW_CPUS=1
 * as well, the fronts share core 1 with the shadow runtime (a pessimistic stand-in for cores of their own) and the
 * serving runtime has core 0 with the load generator, so at 32 connections the front is not the saturated core's
 * third tenant.
 */
/**
 * BENCH_SERVING_PROCESS=1 (local part): the serving slot runs in a process of its own, as the local target's replicas
 * do (the fronts' process then holds only the fronts, as the host holds the service front and the slot routers); by
 * default it runs in the fronts' process. `cpu_us_per_req` is the fronts' process either way.
 */
const SERVING_PROCESS = process.env.BENCH_SERVING_PROCESS === '1';
const FRONT_CPUS = process.env.BENCH_FRONT_CPUS ? cpuList(process.env.BENCH_FRONT_CPUS, 'BENCH_FRONT_CPUS') : undefined;

async function serve(greenUrl?: string, normalGreenUrl?: string): Promise<void> {
  const slot = async (): Promise<string> => {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.from(JSON.stringify([0.5, 1.5, 2.5]));
        if (req.url === MIRROR_BATCH_PATH) {
          // Shadow copies in a batch, answered as the runtime does (runtime/mirror-batch.ts): each its own answer.
          const frame = answerMirrorBatch(Buffer.concat(chunks), () => ({ status: 200, body }));
          res.writeHead(200, { 'content-type': MIRROR_BATCH_TYPE, 'content-length': frame.length });
          res.end(frame);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  // BENCH_SERVING_PROCESS=1: the serving slot is a process of its own (BENCH_BLUE_URL), as the local target's replicas
  // are; by default it shares the fronts' process and event loop.
  const blue = process.argv[2] === 'serve' && process.env.BENCH_BLUE_URL ? process.env.BENCH_BLUE_URL : await slot();
  if (process.argv[2] === 'slot') {
    process.stdout.write(JSON.stringify({ url: blue }) + '\n');
    return new Promise(() => undefined);
  }
  // The shadow slot is another process (as a replica is): its work never shares the serving slot's event loop.
  const green = greenUrl!;
  const mirrorFronts: Record<string, LocalFront> = {};
  const front = async (setup: (f: LocalFront) => void, name?: string, gatherMs = 0, Front: typeof LocalFront = LocalFront, greenAt = green, thread = true): Promise<number> => {
    const f = new Front('bench', { keepAliveTimeoutMs: 60_000 }, { gatherMs, thread });
    if (name) mirrorFronts[name] = f;
    await f.listen(0);
    f.addSlot({ name: 'blue', url: blue });
    f.addSlot({ name: 'green', url: greenAt });
    f.switchTo('blue');
    setup(f);
    return f.port;
  };
  const ports = {
    direct: Number(new URL(blue).port),
    front: await front(() => undefined),
    split: await front((f) => f.setWeights({ blue: 90, green: 10 })),
    // The same as `front`, measured as another configuration: how far two identical ones differ (the noise floor).
    front2: await front(() => undefined),
    // The same as `front`, measured while a busy loop runs at idle CPU priority (IDLE_SPINS).
    ...Object.fromEntries(await Promise.all(Object.keys(IDLE_SPINS).filter((k) => CONFIGS?.has(k)).map(async (k) => [k, await front(() => undefined)]))),
    mirror20: await front((f) => f.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 1e-6 }), 'mirror20'),
    mirror20g: await front((f) => f.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 1e-6 }), 'mirror20g', GATHER_MS),
    // The same as mirror20g with a shadow slot at normal CPU priority (LOCAL_SHADOW_CPU_PRIORITY=normal).
    ...(normalGreenUrl
      ? { mirror20gn: await front((f) => f.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 1e-6 }), 'mirror20gn', GATHER_MS, LocalFront, normalGreenUrl) }
      : {}),
    // The same as mirror20g with the copies sent and judged on the front's own loop (`MirrorBounds.thread` false).
    ...(!CONFIGS || CONFIGS.has('mirror20gl')
      ? { mirror20gl: await front((f) => f.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 1e-6 }), 'mirror20gl', GATHER_MS, LocalFront, green, false) }
      : {}),
    mirror100: await front((f) => f.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 1e-6 }), 'mirror100'),
    ...(CONFIGS?.has('mirror5g') ? { mirror5g: await front((f) => f.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 5, tolerance: 1e-6 }), 'mirror5g', GATHER_MS) } : {}),
    // BENCH_ALT_FRONT: the same 20 % mirrors through another build's front, copies sent at once and gathered.
    ...(ALT_FRONT
      ? {
          alt20: await front((f) => f.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 1e-6 }), 'alt20', 0, ALT_FRONT),
          alt20g: await front((f) => f.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 20, tolerance: 1e-6 }), 'alt20g', GATHER_MS, ALT_FRONT),
        }
      : {}),
  };
  process.stdout.write(JSON.stringify({ ports }) + '\n');
  // Each line on stdin asks for the mirroring fronts' copy counts (cumulative): copies sent, skipped, failed; `drain`
  // first waits (at most 10 s) until no copy is pending (gathering or out).
  readline.createInterface({ input: process.stdin }).on('line', async (line) => {
    if (line === 'drain') {
      const end = Date.now() + 10_000;
      while (Date.now() < end && Object.values(mirrorFronts).some((f) => f.pendingCopies > 0)) await new Promise((r) => setTimeout(r, 5));
    }
    const of = (f: LocalFront) => {
      const s = f.snapshot().shadow?.green;
      return { mirrored: s?.mirrored ?? 0, skipped: s?.skipped ?? 0, errors: s?.errors ?? 0 };
    };
    process.stdout.write(JSON.stringify({ copies: Object.fromEntries(Object.entries(mirrorFronts).map(([k, f]) => [k, of(f)])) }) + '\n');
  });
  await new Promise(() => undefined);
}

/** How a slice loads a configuration: a closed loop of `connections`, or an open loop at a fixed rate. */
type Mode = { connections: number } | { perSecond: number };

/**
 * Loads `port` for `ms`; each answer's latency goes into `into`, returns the errors.
 * - closed loop: `connections` loops each sending the next request when the last answered (saturates the machine at
 *   32: the figure then measures capacity as much as latency);
 * - open loop: requests sent on a fixed schedule, `perSecond`, whatever the answers, each timed from its scheduled
 *   send (a late answer delays no later request's clock: no coordinated omission); connections as many as needed.
 */
async function load(port: number, mode: Mode, ms: number, agent: http.Agent, into: number[], headers: Record<string, string> = {}, leadIn?: { ms: number; then: () => void }): Promise<number> {
  const body = Buffer.from(JSON.stringify({ data: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] }));
  // The first `leadIn.ms` are load, not measured (`then` runs when measuring starts): see LEAD_IN_MS.
  const recordFrom = process.hrtime.bigint() + BigInt(Math.round((leadIn?.ms ?? 0) * 1e6));
  let started = !leadIn;
  const end = Date.now() + ms + (leadIn?.ms ?? 0);
  let errors = 0;
  const one = (t0 = process.hrtime.bigint()) =>
    new Promise<void>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/score', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => {
          if (t0 >= recordFrom) {
            if (res.statusCode !== 200) errors++;
            into.push(Number(process.hrtime.bigint() - t0) / 1e6);
          }
          resolve();
        });
      });
      req.on('error', () => {
        if (t0 >= recordFrom) errors++;
        resolve();
      });
      if (!started && t0 >= recordFrom) {
        started = true;
        leadIn!.then();
      }
      req.end(body);
    });
  if ('connections' in mode) {
    await Promise.all(
      Array.from({ length: mode.connections }, async () => {
        while (Date.now() < end) await one();
      }),
    );
    return errors;
  }
  const start = process.hrtime.bigint();
  // As the closed loop, the lead-in comes on top of the measured time (a gathering slice would else measure less).
  const total = Math.floor((mode.perSecond * (ms + (leadIn?.ms ?? 0))) / 1000);
  const gap = 1e9 / mode.perSecond;
  const pending: Promise<void>[] = [];
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = process.hrtime.bigint();
      // Every request whose scheduled time has come, each timed from that time.
      while (sent < total && start + BigInt(Math.round(sent * gap)) <= now) pending.push(one(start + BigInt(Math.round(sent++ * gap))));
      if (sent >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  await Promise.all(pending);
  return errors;
}

/**
 * Each slice runs this long before it is measured, and a slice of a mirroring configuration ends with its copies
 * drained: copies wait up to the linger (DEFAULT_MIRROR_BOUNDS.lingerMs) for a batch, so without both a
 * configuration's batches would land in the next configuration's slice, and its slice would start without the
 * batches a steady state has in flight.
 */
const LEAD_IN_MS = DEFAULT_MIRROR_BOUNDS.lingerMs + 50;
/** A configuration's lead-in: a gathering one's copies wait up to GATHER_MS. */
const leadInOf = (config: string) => (config.includes('20g') ? GATHER_MS + 50 : LEAD_IN_MS);

/**
 * Latencies as counts in bins 0.5 % wide (from 5 µs to 1,000 ms), so that a pooled percentile over any set of slices
 * is a sum of counts: what the resampling behind `ci90` needs to be fast.
 */
const BIN_BASE_MS = 0.005;
const BIN_GROWTH = Math.log(1.005);
const BINS = Math.ceil(Math.log(1000 / BIN_BASE_MS) / BIN_GROWTH) + 1;
function histogram(latencies: number[]): Uint32Array {
  const h = new Uint32Array(BINS);
  for (const v of latencies) h[Math.max(0, Math.min(BINS - 1, Math.floor(Math.log(v / BIN_BASE_MS) / BIN_GROWTH)))]++;
  return h;
}
/** The `p`th percentile of summed histograms (the bin's geometric middle). */
function pooledPct(hists: Uint32Array[], p: number): number {
  const sum = new Float64Array(BINS);
  let n = 0;
  for (const h of hists) for (let i = 0; i < BINS; i++) ((sum[i] += h[i]), (n += h[i]));
  let seen = 0;
  for (let i = 0; i < BINS; i++) if ((seen += sum[i]) > (p / 100) * n) return BIN_BASE_MS * Math.exp((i + 0.5) * BIN_GROWTH);
  return NaN;
}
/** A seeded generator of numbers in [0, 1) (mulberry32): the bench's random choices are the same from run to run. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** A 90 % interval of p99(a)/p99(b) − 1 by resampling rounds (paired: the same rounds for both); seeded, reproducible. */
function ratioInterval(a: Uint32Array[], b: Uint32Array[], resamples = 1000): [number, number] {
  const rand = seeded(0x9e3779b9);
  const rounds = Math.min(a.length, b.length);
  const ratios: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const pick = Array.from({ length: rounds }, () => Math.floor(rand() * rounds));
    ratios.push(pooledPct(pick.map((i) => a[i]), 99) / pooledPct(pick.map((i) => b[i]), 99) - 1);
  }
  ratios.sort((x, y) => x - y);
  return [+ratios[Math.floor(0.05 * resamples)].toFixed(3), +ratios[Math.floor(0.95 * resamples)].toFixed(3)];
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** The next line `lines` reads from `child`'s output; rejected if the child exits first (no listener left behind). */
function nextLine(lines: readline.Interface, child: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`server exited ${child.exitCode ?? child.signalCode}`));
    const exited = (c: number | null) => {
      lines.off('line', got);
      reject(new Error(`server exited ${c}`));
    };
    const got = (line: string) => {
      child.off('exit', exited);
      resolve(line);
    };
    lines.once('line', got);
    child.once('exit', exited);
  });
}

const firstLine = (child: ChildProcess): Promise<string> => nextLine(readline.createInterface({ input: child.stdout! }), child);

/** Per configuration, the process whose CPU the line reports (`cpu_us_per_req`), and the shadow slot's process. */
interface CpuOf {
  serving?: Record<string, number>;
  shadow?: Record<string, number>;
}

/**
 * CPU time (user + system, ms) a process used so far, from /proc (0 where there is none: not Linux, no pid); with
 * `mainThread`, only its main thread's (the event loop's: not the front's shadow thread, nor Node's helper threads).
 */
function cpuMs(pid: number | undefined, mainThread = false): number {
  if (!pid) return 0;
  try {
    const fields = fs.readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
/** USER_HZ of /proc/<pid>/stat (100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * Measures `ports` (configuration → port) at 1 and 32 connections (closed loops), then in an open loop at half the
 * rate `front` answered at 32 connections (`rate50`: a service at half its capacity, where latency is latency rather
 * than queueing behind saturated cores), each in interleaved slices; prints one line per configuration
 * (`<prefix>.<config>.<c1|c32|rate50>`) and returns the percentiles per load.
 */
type Copies = Record<string, { mirrored: number; skipped: number; errors: number }>;

/** Per configuration: percentiles of all its requests, and the p99 of each slice (in slice order). */
type Figures = Record<string, { p50: number; p99: number; p999: number; n: number; sliceP99: number[]; sliceHist: Uint32Array[] }>;

/** What runs alongside one configuration's slices only (`on` before its warm-up and each slice, `off` after). */
type Alongside = Record<string, { on(): void; off(): void }>;

async function measure(prefix: string, ports: Record<string, number>, headers: Record<string, string> = {}, cpu: CpuOf = {}, copies?: (drain?: boolean) => Promise<Copies>, alongside: Alongside = {}): Promise<Partial<Record<'c1' | 'c32' | 'rate50', Figures>>> {
  const configs = Object.keys(ports);
  const out = {} as Record<'c1' | 'c32' | 'rate50', Figures>;
  for (const label of LOADS) {
    const mode: Mode = label === 'rate50' ? { perSecond: Math.max(1, Math.round(out.c32.front.n / SECONDS / 2)) } : { connections: label === 'c1' ? 1 : 32 };
    const agents = Object.fromEntries(configs.map((k) => [k, new http.Agent({ keepAlive: true, maxSockets: 'connections' in mode ? mode.connections : 256 })]));
    const lat: Record<string, number[]> = Object.fromEntries(configs.map((k) => [k, []]));
    const errs: Record<string, number> = Object.fromEntries(configs.map((k) => [k, 0]));
    const used: Record<string, { serving: number; shadow: number; loop: number }> = Object.fromEntries(configs.map((k) => [k, { serving: 0, shadow: 0, loop: 0 }]));
    const sliceP99: Record<string, number[]> = Object.fromEntries(configs.map((k) => [k, []]));
    const sliceHist: Record<string, Uint32Array[]> = Object.fromEntries(configs.map((k) => [k, []]));
    for (const k of configs) {
      alongside[k]?.on();
      await load(ports[k], mode, 300, agents[k], [], headers); // warm-up
      alongside[k]?.off();
    }
    const copiesBefore = await copies?.();
    const rand = seeded(0x5eed);
    for (let s = 0; s < SLICES; s++) {
      // Each round in its own order (shuffled): no configuration always runs first, nor always right after the same
      // one (`direct` at 32 connections leaves the machine busier for whatever comes next, a gathering front's last
      // batch is answered just before; a fixed order, or one rotated per round, biased `front`).
      const order = [...configs];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (const k of order) {
        let before = { serving: 0, shadow: 0, loop: 0 };
        const slice: number[] = [];
        const sample = () => (before = { serving: cpuMs(cpu.serving?.[k]), shadow: cpuMs(cpu.shadow?.[k]), loop: cpuMs(cpu.serving?.[k], true) });
        alongside[k]?.on();
        errs[k] += await load(ports[k], mode, (SECONDS * 1000) / SLICES, agents[k], slice, headers, { ms: leadInOf(k), then: sample });
        alongside[k]?.off();
        for (const v of slice) lat[k].push(v);
        sliceP99[k].push(pct(slice.sort((a, b) => a - b), 99));
        sliceHist[k].push(histogram(slice));
        used[k].serving += cpuMs(cpu.serving?.[k]) - before.serving;
        used[k].shadow += cpuMs(cpu.shadow?.[k]) - before.shadow;
        used[k].loop += cpuMs(cpu.serving?.[k], true) - before.loop;
        if (isMirror(k)) {
          if (copies) await copies(true);
          else await new Promise((r) => setTimeout(r, leadInOf(k) + 100)); // the ACI front: its batches leave and come back
        }
      }
    }
    const copiesAfter = await copies?.();
    const res: Figures = {};
    for (const k of configs) {
      // Copies of this concurrency's slices (warm-up excluded): sent, skipped by the in-flight cap, failed.
      const b = copiesBefore?.[k];
      const a = copiesAfter?.[k];
      const copyFields = a && b ? { copies_sent: a.mirrored - b.mirrored, copies_skipped: a.skipped - b.skipped, copy_errors: a.errors - b.errors } : {};
      const sorted = lat[k].sort((a, b) => a - b);
      res[k] = { p50: pct(sorted, 50), p99: pct(sorted, 99), p999: pct(sorted, 99.9), n: sorted.length, sliceP99: sliceP99[k], sliceHist: sliceHist[k] };
      const p99 = +res[k].p99.toFixed(3);
      const perReq = (ms: number) => +((ms * 1000) / Math.max(1, res[k].n)).toFixed(1);
      const cpuFields = {
        ...(cpu.serving?.[k] ? { cpu_us_per_req: perReq(used[k].serving), loop_cpu_us_per_req: perReq(used[k].loop) } : {}),
        ...(cpu.shadow?.[k] ? { shadow_cpu_us_per_req: perReq(used[k].shadow) } : {}),
      };
      process.stdout.write(JSON.stringify({ name: `${prefix}.${k}.${label}`, value: p99, unit: 'ms', p50_ms: +res[k].p50.toFixed(3), p99_ms: p99, p999_ms: +res[k].p999.toFixed(3), req_per_s: Math.round(res[k].n / SECONDS), errors: errs[k], ...('perSecond' in mode ? { offered_per_s: mode.perSecond } : {}), ...cpuFields, ...copyFields }) + '\n');
    }
    for (const a of Object.values(agents)) a.destroy();
    out[label] = res;
  }
  return out;
}

/** What the front adds vs direct: value = the p50 difference (ms; the issue's target is on p50), with the p99's. */
function added(name: string, p50: number, p99: number): void {
  process.stdout.write(JSON.stringify({ name, value: p50, unit: 'ms', p50_ms: p50, p99_ms: p99, vs: 'direct' }) + '\n');
}

/** The median of `xs` (sorted here). */
function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/**
 * What mirroring costs the client: value = p99 with mirroring / p99 without − 1 (the issue's target: ≤ 0.05), over
 * all the requests of each; `slice_median` = the median over slices of the same ratio between the two configurations'
 * slices of one round (adjacent in time, so a disturbance of one round weighs on one ratio, not on the whole figure).
 * `*.aa_p99_diff.*` compares two identical fronts the same way: the noise floor the mirroring figures stand on.
 */
function cost(name: string, withMirror: Figures[string], without: Figures[string], vs = 'front without mirror'): void {
  costLine(name, {
    p99: withMirror.p99,
    p99Without: without.p99,
    p999Ratio: withMirror.p999 / without.p999 - 1,
    perSlice: withMirror.sliceP99.map((p, i) => p / without.sliceP99[i] - 1),
    hist: withMirror.sliceHist,
    histWithout: without.sliceHist,
  }, vs, { shadow_cpus: SHADOW_CPUS?.join(',') ?? 'shared', ...(FRONT_CPUS ? { front_cpus: FRONT_CPUS.join(',') } : {}) });
}

/** One cost line (cost, pooledCost): the p99 ratio − 1, its 90 % interval over rounds, the slices' median. */
function costLine(name: string, f: { p99: number; p99Without: number; p999Ratio: number; perSlice: number[]; hist: Uint32Array[]; histWithout: Uint32Array[] }, vs: string, extra: object = {}): void {
  const ratio = +(f.p99 / f.p99Without - 1).toFixed(3);
  process.stdout.write(JSON.stringify({ name, value: ratio, unit: 'ratio', ratio, ci90: ratioInterval(f.hist, f.histWithout), slice_median: +median(f.perSlice).toFixed(3), p99_ms: +f.p99.toFixed(3), p99_ms_without: +f.p99Without.toFixed(3), p999_ratio: +f.p999Ratio.toFixed(3), vs, ...extra, loadavg_1m: +os.loadavg()[0].toFixed(2) }) + '\n');
}

/**
 * `*_p99_cost_pooled`: the same cost against both fronts without mirror (`front` and `front2`, identical), their rounds'
 * requests pooled: twice the baseline's requests, and neither front's own luck (the A/A line) decides the figure.
 * p99s from the rounds' histograms on both sides (bins of BIN_GROWTH), so `p99_ms` may differ slightly from the
 * configuration's own line.
 */
function pooledCost(name: string, withMirror: Figures[string], a: Figures[string], b: Figures[string]): void {
  if (a.sliceHist.length !== b.sliceHist.length || a.sliceHist.length !== withMirror.sliceHist.length) throw new Error(`${name}: the configurations were measured in different rounds`);
  const base = a.sliceHist.map((h, i) => h.map((v, j) => v + b.sliceHist[i][j]));
  costLine(name, {
    p99: pooledPct(withMirror.sliceHist, 99),
    p99Without: pooledPct(base, 99),
    p999Ratio: pooledPct(withMirror.sliceHist, 99.9) / pooledPct(base, 99.9) - 1,
    perSlice: withMirror.sliceHist.map((h, i) => pooledPct([h], 99) / pooledPct([base[i]], 99) - 1),
    hist: withMirror.sliceHist,
    histWithout: base,
  }, 'both fronts without mirror (front and front2), pooled');
}

/** The derived lines of a part, for the configurations and loads measured: what the front adds, what mirroring costs. */
function report(prefix: string, all: Partial<Record<'c1' | 'c32' | 'rate50', Figures>>): void {
  for (const [label, res] of Object.entries(all)) {
    if (!res) continue;
    const add = (k: string, p: 'p50' | 'p99') => +(res[k][p] - res.direct[p]).toFixed(3);
    if (res.direct) for (const k of ['split', 'front'].filter((c) => res[c])) added(`${prefix}.${k}_added.${label}`, add(k, 'p50'), add(k, 'p99'));
    for (const m of Object.keys(res).filter(isMirror)) cost(`${prefix}.${m}_p99_cost.${label}`, res[m], res.front);
    if (res.front2) for (const m of Object.keys(res).filter(isMirror)) pooledCost(`${prefix}.${m}_p99_cost_pooled.${label}`, res[m], res.front, res.front2);
    if (res.front2) cost(`${prefix}.aa_p99_diff.${label}`, res.front2, res.front, 'the same front, measured again');
    for (const k of Object.keys(IDLE_SPINS).filter((c) => res[c])) cost(`${prefix}.${k}_p99_cost.${label}`, res[k], res.front, 'the same front, with a busy loop at idle CPU priority');
  }
}

const KEY = 'bench-PRIMARY-key-0123456789abcdef';

/**
 * BENCH_SCORE_MS (ACI part; default 0 = the trivial example, which answers at once): each request costs the runtime
 * this much CPU (a busy loop), as a small model's scoring does; the lines are then named `rollout.aci_<ms>ms.*`.
 * Mirroring's cost is a fixed amount of the front's and the machine's work per copy: against an answer of a few
 * hundred microseconds it is a larger share than against a real model's.
 */
const SCORE_MS = Number(process.env.BENCH_SCORE_MS ?? 0);
if (!(SCORE_MS >= 0 && SCORE_MS <= 100)) throw new Error(`BENCH_SCORE_MS must be 0 to 100 (ms); got ${process.env.BENCH_SCORE_MS}`);

/** A scoring script (`init`, `run`) spending `ms` of CPU per request, in a temporary folder removed on exit. */
function busyScript(ms: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-bench-score-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'busy.js');
  fs.writeFileSync(file, `const NS = ${Math.round(ms * 1e6)}n;\nexports.init = () => {};\nexports.run = (input) => {\n  const end = process.hrtime.bigint() + NS;\n  while (process.hrtime.bigint() < end);\n  return input;\n};\n`);
  return file;
}

/** A process printing JSON lines; resolves with the port of its first `listening` event. */
function listening(child: ChildProcess): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"event":"(listening|ready)".*?"port":(\d+)/.exec(line);
      if (m && m[1] === (child.spawnargs.some((a) => a.endsWith('front-cli.js')) ? 'listening' : 'ready')) resolve(Number(m[2]));
    });
    child.once('exit', (c) => reject(new Error(`process exited ${c}`)));
  });
}

/** The front as it runs on ACI: standalone front-cli processes in front of real runtime processes. */
async function aciPart(): Promise<void> {
  const dist = path.resolve(__dirname, '..');
  const script = SCORE_MS > 0 ? busyScript(SCORE_MS) : path.resolve(dist, '..', 'examples/runtime/node/trivial.js');
  const prefix = SCORE_MS > 0 ? `rollout.aci_${SCORE_MS}ms` : 'rollout.aci';
  const keys = { MDF_PRIMARY_KEY: KEY, MDF_SECONDARY_KEY: `${KEY}-2` };
  const children: ChildProcess[] = [];
  const pids: Record<number, number> = {};
  const run = async (args: string[], env: NodeJS.ProcessEnv, shadow = false, cpus?: number[]) => {
    const options: SpawnOptions = { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'inherit'] };
    const c = shadow ? spawnShadow(args, options) : spawn(...onCpus(cpus, process.execPath, args), options);
    children.push(c);
    const port = await listening(c);
    pids[port] = c.pid!;
    return port;
  };
  try {
    const runtime = (shadow = false) => run([path.join(dist, 'runtime/cli.js'), '--entry-script', script, '--host', '127.0.0.1', '--port', '0', '--workers', '1'], keys, shadow);
    const [blue, green] = await Promise.all([runtime(), runtime(true)]);
    const slots = { blue: `http://127.0.0.1:${blue}`, green: `http://127.0.0.1:${green}` };
    const front = (state: object, gatherMs?: number, thread = true) =>
      run([path.join(dist, 'runtime/front-cli.js')], { ...keys, MDF_PORT: '0', MDF_FRONT_HOST: '127.0.0.1', MDF_FRONT_SERVICE: 'bench', MDF_FRONT_ADMIN_KEY: 'bench-admin-key-0123456789', MDF_FRONT_STATE: JSON.stringify(state), ...(gatherMs === undefined ? {} : { MDF_FRONT_MIRROR_GATHER_MS: String(gatherMs) }), ...(thread ? {} : { MDF_FRONT_MIRROR_THREAD: '0' }) }, false, FRONT_CPUS);
    const mirrored = { generation: 1, serving: 'blue', slots, weights: { blue: 100, green: 0 }, mirror: { slot: 'green', percent: 20, tolerance: 1e-6 } };
    const single = { generation: 1, serving: 'blue', slots: { blue: slots.blue }, weights: {} };
    const ports = chosen({
      direct: blue,
      front: await front(single),
      front2: await front(single),
      mirror20: await front(mirrored, 0),
      mirror20g: await front(mirrored),
      // The same with the shadow work on the front's loop (MDF_FRONT_MIRROR_THREAD=0), only when asked for.
      ...(CONFIGS?.has('mirror20gl') ? { mirror20gl: await front(mirrored, undefined, false) } : {}),
    });
    // CPU per request of the front processes and of the shadow runtime's main process (its worker is another process).
    const fronts = Object.fromEntries(Object.entries(ports).filter(([k]) => k !== 'direct').map(([k, port]) => [k, pids[port]]));
    const res = await measure(prefix, ports, { authorization: `Bearer ${KEY}` }, { serving: fronts, shadow: { mirror20: pids[green], mirror20g: pids[green], mirror20gl: pids[green] } });
    report(prefix, res);
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  // The serving side (this process and what it starts, but the shadow) off the shadow's CPUs.
  if (SHADOW_CPUS) pin([process.pid], otherCpus(SHADOW_CPUS));
  if (PARTS.includes('local')) await localPart();
  if (PARTS.includes('aci')) await aciPart();
}

/**
 * The `idlespin*` configurations: `front`, measured while a busy loop runs at idle CPU priority this many ms in every
 * IDLE_SPIN_PERIOD_MS (`idlespin`: all the time; `idlespin4`: 1 ms in 25, about the shadow slot's CPU at 20 %
 * mirroring): what work that takes only idle CPU costs the clients.
 */
const IDLE_SPIN_PERIOD_MS = 25;
const IDLE_SPINS: Record<string, number> = { idlespin: IDLE_SPIN_PERIOD_MS, idlespin4: 1 };

/**
 * A process at idle CPU priority (SCHED_IDLE, as the shadow slot) that busy-loops `busyMs` in every `periodMs`
 * (all the time when they are equal), started stopped (SIGSTOP; SIGCONT lets it run).
 */
function idleSpinner(busyMs: number, periodMs: number): ChildProcess {
  const code = `const b = ${busyMs}, p = ${periodMs}; const tick = () => { const e = performance.now() + b; while (performance.now() < e); setTimeout(tick, Math.max(0, p - b)); }; process.kill(process.pid, 'SIGSTOP'); tick();`;
  return spawn('chrt', ['--idle', '0', process.execPath, '-e', code], { stdio: 'ignore' });
}

async function localPart(): Promise<void> {
  // The shadow slot at idle CPU priority, as the local target runs a shadow phase's new version (Linux SCHED_IDLE,
  // LOCAL_SHADOW_CPU_PRIORITY=idle, the default); a second one at normal priority for `mirror20gn`.
  const greenChild = spawn('chrt', ['--idle', '0', ...onCpus(SHADOW_CPUS, process.execPath, [__filename, 'slot']).flat()], { stdio: ['ignore', 'pipe', 'inherit'] });
  const green = JSON.parse(await firstLine(greenChild)).url as string;
  const normalChild = !CONFIGS || CONFIGS.has('mirror20gn') ? spawnShadow([__filename, 'slot'], { stdio: ['ignore', 'pipe', 'inherit'] }) : undefined;
  const normalGreen = normalChild ? (JSON.parse(await firstLine(normalChild)).url as string) : undefined;
  const blueChild = SERVING_PROCESS ? spawn(process.execPath, [__filename, 'slot'], { stdio: ['ignore', 'pipe', 'inherit'] }) : undefined;
  const blueUrl = blueChild ? (JSON.parse(await firstLine(blueChild)).url as string) : undefined;
  const spinners: ChildProcess[] = [];
  const child = spawn(process.execPath, [__filename, 'serve', green, ...(normalGreen ? [normalGreen] : [])], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...(blueUrl ? { BENCH_BLUE_URL: blueUrl } : {}) } });
  try {
    const lines = readline.createInterface({ input: child.stdout! });
    const next = () => nextLine(lines, child);
    const ports = JSON.parse(await next()).ports as Record<string, number>;
    const copies = async (drain = false): Promise<Copies> => {
      const line = next();
      child.stdin!.write(drain ? 'drain\n' : 'copies\n');
      return JSON.parse(await line).copies as Copies;
    };
    // CPU per request of the serving side (the child with the serving slot and the fronts) and of the shadow slot.
    const measured = chosen(ports);
    const alongside: Alongside = {};
    for (const [k, busyMs] of Object.entries(IDLE_SPINS)) {
      if (!measured[k]) continue;
      const spinner = idleSpinner(busyMs, IDLE_SPIN_PERIOD_MS);
      spinners.push(spinner);
      // Running only once it has stopped itself (else a SIGCONT before that would be lost).
      const stopped = () => {
        try {
          return /^\d+ \(.*\) T/.test(fs.readFileSync(`/proc/${spinner.pid}/stat`, 'utf8'));
        } catch {
          return false; // gone (no chrt, or it exited)
        }
      };
      for (let i = 0; i < 500 && !stopped(); i++) await new Promise((r) => setTimeout(r, 10));
      if (!stopped()) throw new Error(`${k}: the busy loop at idle priority did not start (it needs Linux and util-linux's chrt)`);
      alongside[k] = { on: () => spinner.kill('SIGCONT'), off: () => spinner.kill('SIGSTOP') };
    }
    const all = await measure('rollout', measured, {}, {
      serving: Object.fromEntries(Object.keys(measured).map((k) => [k, child.pid!])),
      shadow: Object.fromEntries(Object.keys(measured).filter(isMirror).map((k) => [k, k === 'mirror20gn' ? normalChild!.pid! : greenChild.pid!])),
    }, copies, alongside);
    report('rollout', all);
  } finally {
    for (const spinner of spinners) spinner.kill('SIGKILL');
    child.kill('SIGKILL');
    greenChild.kill('SIGKILL');
    normalChild?.kill('SIGKILL');
    blueChild?.kill('SIGKILL');
  }
}

if (process.argv[2] === 'serve') void serve(process.argv[3], process.argv[4]);
else if (process.argv[2] === 'slot') void serve();
else
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
