/**
 * `npm run bench:durable`: the local host's durable engine with state persisted to Azurite (on disk).
 * Prints one JSON object per line: name, value, unit (+ details).
 *   - fan-out/fan-in of 1,000 no-op activities;
 *   - fan-out/fan-in of 10,000 no-op activities through sub-orchestrations of 500;
 *   - 100 concurrent orchestrations × 5 sequential activities.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startAzurite } from '../local/azurite';
import { startTestEnvironment } from '../local/testing';

function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra })}\n`);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-bench-durable-'));
  const azurite = await startAzurite({ location: dir });
  const env = await startTestEnvironment({
    appRoot: path.resolve(__dirname, '../../test/fixtures/durable-app'),
    azurite,
    verbose: false,
  });
  const timed = async (name: string, input: unknown): Promise<number> => {
    const t0 = process.hrtime.bigint();
    const id = await env.startOrchestration(name, input);
    const s = await env.waitFor(id, { timeoutMs: 600_000 });
    if (s.runtimeStatus !== 'Completed') throw new Error(`${name} ended ${s.runtimeStatus}: ${JSON.stringify(s.output)}`);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  try {
    await timed('FanOut', { n: 100 }); // warm-up
    const t1k = await timed('FanOut', { n: 1000 });
    emit('durable.fanout_1k.activities_per_s', 1000 / t1k, 'activities/s', { seconds: t1k });
    const t10k = await timed('FanOutSub', { n: 10000, chunk: 500 });
    emit('durable.fanout_10k.activities_per_s', 10000 / t10k, 'activities/s', { seconds: t10k, subOrchestrations: 20 });
    emit('durable.fanout_10k_over_1k.time_ratio', t10k / t1k, 'ratio');
    const t0 = process.hrtime.bigint();
    const ids = await Promise.all(Array.from({ length: 100 }, () => env.startOrchestration('SequentialN', 5)));
    for (const id of ids) {
      const s = await env.waitFor(id, { timeoutMs: 600_000 });
      if (s.runtimeStatus !== 'Completed') throw new Error(`SequentialN ended ${s.runtimeStatus}`);
    }
    const tseq = Number(process.hrtime.bigint() - t0) / 1e9;
    emit('durable.sequential_100x5.activities_per_s', 500 / tseq, 'activities/s', { seconds: tseq });
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
