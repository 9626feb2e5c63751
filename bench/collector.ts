/**
 * `npm run bench:collector`: what model data collection costs per record, in isolation from the HTTP path and the
 * machine's noise (the `BENCH_ONLY=collect` row of bench/runtime.ts measures it end to end). One process captures
 * records the way the front does (`captureRequest` with the runtime bench's body as input and output, 32 per turn,
 * ≈ 10,000 per second) through the real blob sink into a fresh in-memory Azurite, and measures the same loop without
 * capturing; the difference is collection's CPU. Prints one JSON object per line:
 *
 *   collector.front_us_per_record     this process's CPU (capture, batching, the upload's client side), per record
 *   collector.azurite_us_per_record   Azurite's CPU, per record written
 *   collector.gc_us_per_record        garbage-collection pauses, per record
 *
 * Environment: BENCH_RECORDS (default 60000), BENCH_ROUNDS (default 2), BENCH_COLLECT_BATCH (records per upload;
 * default the collector's), BENCH_BASELINE_ROOT (another built tree: its collector is measured in the same run,
 * alternating, as `…baseline…` with the ratio new/baseline).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { startAzurite } from '../local/azurite';
import { blobSink, ModelDataCollector } from '../runtime';

/** The collector of a build: this one, or another tree's `dist/runtime/collector` (BENCH_BASELINE_ROOT). */
interface CollectorModule {
  ModelDataCollector: typeof ModelDataCollector;
  blobSink: typeof blobSink;
}

const RECORDS = Number(process.env.BENCH_RECORDS ?? 60_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const BATCH = process.env.BENCH_COLLECT_BATCH ? Number(process.env.BENCH_COLLECT_BATCH) : undefined;

function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra, load1: Number(os.loadavg()[0].toFixed(2)), cores: os.cpus().length })}\n`);
}

/** CPU ms (user + system) of a process so far, from /proc (Linux). */
function cpuMs(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

function children(pid: number): number[] {
  return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

const body = Buffer.from(JSON.stringify({ data: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] }));

/** CPU of capturing `n` records (or only making what the front makes per request anyway, when `c` is undefined). */
async function loop(n: number, azurite: number, c?: ModelDataCollector): Promise<{ front: number; azurite: number; gc: number }> {
  const g0 = gcMs;
  const a0 = cpuMs(azurite);
  const s0 = process.cpuUsage();
  for (let i = 0; i < n; i += 32) {
    for (let k = 0; k < 32; k++) {
      // What the front has per request whether it collects or not: a request id and both bodies.
      const requestId = randomUUID();
      const input = Buffer.from(body);
      const output = Buffer.from(body);
      c?.captureRequest({ requestId, status: 200, input, inputType: 'application/json', output, outputType: 'application/json' });
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  const s = process.cpuUsage(s0);
  return { front: (s.user + s.system) / n, azurite: ((cpuMs(azurite) - a0) * 1000) / n, gc: ((gcMs - g0) * 1000) / n };
}

async function main(): Promise<void> {
  const azurite = await startAzurite();
  try {
    const pid = children(process.pid)[0];
    const trees: Array<{ label: string; mod: CollectorModule }> = [{ label: 'collector', mod: { ModelDataCollector, blobSink } }];
    const base = process.env.BENCH_BASELINE_ROOT;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (base) trees.unshift({ label: 'collector_baseline', mod: require(path.resolve(base, 'dist/runtime/collector')) as CollectorModule });
    const results = new Map<string, Array<{ front: number; azurite: number; gc: number }>>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of trees) {
        const c = new t.mod.ModelDataCollector({ sink: t.mod.blobSink({ connectionString: azurite.connectionString }), service: 'bench', slot: 'default', model: 'trivial', modelVersion: '1', ...(BATCH ? { batchRecords: BATCH } : {}) });
        await loop(Math.min(RECORDS, 20_000), pid, c); // warm: loads the SDK, creates the container
        const off = await loop(RECORDS, pid);
        const on = await loop(RECORDS, pid, c);
        await c.close();
        if (c.stats.dropped) throw new Error(`${c.stats.dropped} records dropped`);
        const list = results.get(t.label) ?? [];
        list.push({ front: on.front - off.front, azurite: on.azurite - off.azurite, gc: on.gc - off.gc });
        results.set(t.label, list);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    for (const [label, list] of results) {
      for (const k of ['front', 'azurite', 'gc'] as const) {
        emit(`${label}.${k}_us_per_record`, median(list.map((r) => r[k])), 'µs', { rounds: list.map((r) => Number(r[k].toFixed(2))), records: RECORDS, batch: BATCH ?? 'default' });
      }
    }
    if (base) {
      for (const k of ['front', 'azurite'] as const) {
        const a = median(results.get('collector_baseline')!.map((r) => r[k]));
        const b = median(results.get('collector')!.map((r) => r[k]));
        emit(`collector.${k}_us_per_record.vs_baseline.ratio`, b / a, 'ratio', { baseline: Number(a.toFixed(2)), new: Number(b.toFixed(2)) });
      }
    }
  } finally {
    await azurite.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
