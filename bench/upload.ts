/**
 * `npm run bench:upload`: what an upload costs the host. Prints one JSON object per line (name, value, unit + details).
 *
 * The host runs as its own process (`node dist/local/cli.js`, the real app, HTTP streaming on) over Azurite (a child
 * process, data on disk), so its memory is measured alone: its peak RSS (`VmHWM` in /proc/<pid>/status, reset with
 * /proc/<pid>/clear_refs before each measured request) against its RSS just before the request.
 *
 *   upload.model_300mb.peak_rss_delta_mb  peak RSS growth while a 300 MB model file is POSTed to /api/deployments
 *                                         (multipart, generated on the fly by this process), until its 202 (target ≤ 64)
 *   upload.model_300mb.mb_per_s           that upload's throughput (request start → 202)
 *   upload.manifest_10mb.ms_to_refusal    a 10 MB manifest part (over the 1 MB bound), request start → answer (p50 of 5;
 *                                         target ≤ 100 ms), with the status it got
 *   upload.manifest_invalid.ms_to_400     an invalid manifest part followed by a 300 MB file: request start → 400 (p50 of 5)
 *   upload.manifest_10mb_json.ms_to_refusal  a 10 MB JSON manifest body (application/json), request start → answer (p50 of 5)
 *
 * Environment: BENCH_UPLOAD_MB (default 300).
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { startAzurite } from '../local/azurite';

const UPLOAD_MB = Number(process.env.BENCH_UPLOAD_MB ?? 300);
const root = path.resolve(__dirname, '../..');
const example = path.join(root, 'examples/models/diabetes-node');
const BOUNDARY = 'bench-upload-boundary-5b1c';

function emit(name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra, load1: Number(os.loadavg()[0].toFixed(2)), cores: os.cpus().length })}\n`);
}

function procStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]);
}

const partHeader = (name: string, filename?: string) =>
  Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ''}\r\nContent-Type: application/octet-stream\r\n\r\n`);

/** POSTs a multipart body written part by part (big parts generated in 1 MB chunks, honouring backpressure). */
function postMultipart(base: string, parts: Array<{ name: string; filename?: string; data?: Buffer; generatedMb?: number }>, headers: Record<string, string> = {}): Promise<{ status: number; body: string; ms: number }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/api/deployments`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, ...headers } });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', (e) => (answered ? undefined : reject(e)));
    const chunk = Buffer.alloc(1024 * 1024, 0x5a);
    void (async () => {
      const write = (b: Buffer) => (answered || req.destroyed ? Promise.resolve() : new Promise<void>((r) => (req.write(b) ? r() : req.once('drain', () => r()))));
      for (const p of parts) {
        await write(partHeader(p.name, p.filename));
        if (p.data) await write(p.data);
        for (let i = 0; i < (p.generatedMb ?? 0) && !answered; i++) await write(chunk);
        await write(Buffer.from('\r\n'));
      }
      await write(Buffer.from(`--${BOUNDARY}--\r\n`));
      if (!req.destroyed) req.end();
    })();
  });
}

function postJson(base: string, body: Buffer): Promise<{ status: number; ms: number }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/api/deployments`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-bench-upload-'));
  const azurite = await startAzurite({ location: path.join(dir, 'azurite') });
  let host: ChildProcess | undefined;
  try {
    host = spawn(process.execPath, [path.join(root, 'dist/local/cli.js'), '--port', '0', '--app', root], {
      env: { ...process.env, AzureWebJobsStorage: azurite.connectionString, LOCAL_WORK_DIR: path.join(dir, 'work'), MAX_UPLOAD_BYTES: String((UPLOAD_MB + 10) * 1024 * 1024) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const base = await new Promise<string>((resolve, reject) => {
      let out = '';
      host!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /\{"event":"ready","url":"([^"]+)"\}/.exec(out);
        if (m) resolve(m[1]);
      });
      host!.stderr!.on('data', () => undefined);
      host!.once('exit', (code) => reject(new Error(`host exited (${code}): ${out.slice(-2000)}`)));
    });
    const pid = host.pid!;
    const files = Object.fromEntries(['deploy.json', 'model.json', 'score.js', 'package.json'].map((f) => [f, fs.readFileSync(path.join(example, f))]));
    const manifest = (service: string, extraModelFile?: string) => {
      const m = JSON.parse(files['deploy.json'].toString());
      return Buffer.from(JSON.stringify({ ...m, model: { ...m.model, files: [...m.model.files, ...(extraModelFile ? [extraModelFile] : [])] }, service: { name: service } }));
    };
    const smallParts = ['model.json', 'score.js', 'package.json'].map((f) => ({ name: f, filename: f, data: files[f] }));

    // Warm-up: a small deployment through the same path (module loading, first blob/table calls).
    const warm = await postMultipart(base, [{ name: 'manifest', filename: 'deploy.json', data: manifest('bench-warm') }, ...smallParts]);
    if (warm.status !== 202) throw new Error(`warm-up: ${warm.status} ${warm.body}`);
    await new Promise((r) => setTimeout(r, 3000));

    // The 300 MB model upload.
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const before = procStatusKb(pid, 'VmRSS');
    const big = await postMultipart(base, [{ name: 'manifest', filename: 'deploy.json', data: manifest('bench-big', 'weights.bin') }, ...smallParts, { name: 'weights.bin', filename: 'weights.bin', generatedMb: UPLOAD_MB }]);
    const peak = procStatusKb(pid, 'VmHWM');
    if (big.status !== 202) throw new Error(`300 MB upload: ${big.status} ${big.body}`);
    const runId = JSON.parse(big.body).runId as string;
    await new Promise<void>((r) => http.request(`${base}/runtime/webhooks/durabletask/instances/${runId}/terminate?reason=bench`, { method: 'POST' }, (res) => (res.resume(), res.on('end', r))).end());
    emit(`upload.model_${UPLOAD_MB}mb.peak_rss_delta_mb`, (peak - before) / 1024, 'MB', { rss_before_mb: Math.round(before / 1024), peak_rss_mb: Math.round(peak / 1024), target: '<= 64' });
    emit(`upload.model_${UPLOAD_MB}mb.mb_per_s`, UPLOAD_MB / (big.ms / 1000), 'MB/s', { seconds: Number((big.ms / 1000).toFixed(2)) });

    // Refused manifests.
    const tenMb = Buffer.alloc(10 * 1024 * 1024, 0x20);
    const refusals: Array<{ name: string; run: () => Promise<{ status: number; ms: number }> }> = [
      { name: 'upload.manifest_10mb.ms_to_refusal', run: () => postMultipart(base, [{ name: 'manifest', filename: 'deploy.json', data: tenMb }, ...smallParts]) },
      { name: 'upload.manifest_invalid.ms_to_400', run: () => postMultipart(base, [{ name: 'manifest', filename: 'deploy.json', data: Buffer.from('{"model": 1}') }, { name: 'weights.bin', filename: 'weights.bin', generatedMb: UPLOAD_MB }]) },
      { name: 'upload.manifest_10mb_json.ms_to_refusal', run: () => postJson(base, tenMb) },
    ];
    for (const r of refusals) {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
      const rssBefore = procStatusKb(pid, 'VmRSS');
      const results = [];
      for (let i = 0; i < 5; i++) results.push(await r.run());
      emit(r.name, p50(results.map((x) => x.ms)), 'ms', { statuses: [...new Set(results.map((x) => x.status))], max_ms: Number(Math.max(...results.map((x) => x.ms)).toFixed(1)), peak_rss_delta_mb: Math.round((procStatusKb(pid, 'VmHWM') - rssBefore) / 1024), target: '<= 100' });
    }
  } finally {
    if (host && host.exitCode === null) {
      const exited = new Promise((r) => host!.once('exit', r));
      host.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (host.exitCode === null) host.kill('SIGKILL');
    }
    await azurite.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
