/** The command line: --help, --port 0 with the "listening" line, keys file, bad arguments, SIGTERM. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { CLI_OPTIONS } from '../../runtime/options';
import { EX, ROOT, tempDir } from './helpers';

const CLI = path.join(ROOT, 'dist/runtime/cli.js');

function lines(child: ChildProcess): AsyncIterableIterator<string> {
  return readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
}

async function nextEvent(it: AsyncIterableIterator<string>, event: string): Promise<Record<string, unknown>> {
  for (;;) {
    const { value, done } = await it.next();
    if (done) throw new Error(`stdout ended before ${event}`);
    const rec = JSON.parse(value);
    if (rec.event === event) return rec;
  }
}

describe('runtime CLI', () => {
  it('--help lists every option', () => {
    const r = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const o of CLI_OPTIONS) expect(r.stdout).toContain(o.flag);
    expect(r.stdout).toContain('"event":"listening"');
  });

  it('exits 2 with a coded error on a bad option', () => {
    const r = spawnSync(process.execPath, [CLI, '--workers', 'two'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ event: 'error', code: 'InvalidArguments' });
    const unknown = spawnSync(process.execPath, [CLI, '--wat'], { encoding: 'utf8' });
    expect(JSON.parse(unknown.stdout.trim()).message).toContain('Unknown option --wat');
  });

  it('does not echo a malformed keys file', () => {
    const dir = tempDir('keys');
    fs.writeFileSync(path.join(dir, 'keys.json'), 'primaryKey=super-secret-value');
    const r = spawnSync(process.execPath, [CLI, '--entry-script', path.join(EX, 'node/score.js'), '--keys-file', path.join(dir, 'keys.json')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout.trim()).code).toBe('InvalidKeysFile');
    expect(r.stdout + r.stderr).not.toContain('super-secret-value');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--port 0 prints the chosen port, serves with the keys file, and stops on SIGTERM', async () => {
    const dir = tempDir('cli');
    const keysFile = path.join(dir, 'keys.json');
    fs.writeFileSync(keysFile, JSON.stringify({ primaryKey: 'cli-primary-key', secondaryKey: 'cli-secondary-key' }));
    const child = spawn(process.execPath, [CLI, '--entry-script', path.join(EX, 'python/json-model/score.py'), '--model-dir', path.join(EX, 'python/json-model/model'),
      '--port', '0', '--workers', '2', '--keys-file', keysFile, '--max-concurrent', '1', '--max-wait-ms', '500', '--timeout-ms', '60000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const out = lines(child);
      const listening = await nextEvent(out, 'listening');
      expect(listening).toMatchObject({ runtime: 'python', host: '127.0.0.1' });
      const port = listening.port as number;
      expect(port).toBeGreaterThan(0);
      expect(await nextEvent(out, 'ready')).toMatchObject({ event: 'ready', level: 'info', port });
      const url = `http://127.0.0.1:${port}`;
      expect((await fetch(`${url}/`)).status).toBe(200);
      expect((await fetch(`${url}/score`, { method: 'POST', body: '{"data":[[1,1,1]]}' })).status).toBe(401);
      const ok = await fetch(`${url}/score`, { method: 'POST', body: '{"data":[[1,1,1]]}', headers: { authorization: 'Bearer cli-secondary-key' } });
      expect(JSON.parse(await ok.json())).toEqual([2.5]);
      const access = await nextEvent(out, 'access');
      expect(access).toMatchObject({ method: 'GET', path: '/', status: 200 });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an ONNX model directory needs no script; a failing init() is reported as init_failed', async () => {
    const dir = tempDir('cli-onnx');
    const { writeLinearOnnx } = await import('../../examples/runtime/onnx-model');
    writeLinearOnnx(path.join(dir, 'model.onnx'));
    const onnx = spawn(process.execPath, [CLI, '--model-dir', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Workers inherit only an allow-list (runtime/child-env.ts): the script's variable is passed explicitly.
    const bad = spawn(process.execPath, [CLI, '--entry-script', path.join(EX, 'python/faults/score.py'), '--port', '0', '--env', 'FAIL_INIT=1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const out = lines(onnx);
      const { port, runtime } = await nextEvent(out, 'listening');
      expect(runtime).toBe('onnx');
      await nextEvent(out, 'ready');
      const res = await fetch(`http://127.0.0.1:${port}/score`, { method: 'POST', body: '{"data":[[0,0,0,0]]}' });
      expect((await res.json()).output[0][2]).toBeCloseTo(0.3, 5);
      const failed = await nextEvent(lines(bad), 'init_failed');
      expect(failed.message).toBe('init() failed: RuntimeError: model file is corrupt');
    } finally {
      onnx.kill('SIGKILL');
      bad.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
