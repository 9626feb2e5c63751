/**
 * Readiness of a runtime process (runtime/ready.ts): the real CLI, its stdout and stderr appended to a log file as
 * the local deploy target and the local batch pool run it, read with waitRuntimeReady.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseRuntimeEvent, waitRuntimeReady, type RuntimeStart } from '../../runtime/ready';
import { EX, ROOT, tempDir } from './helpers';

const CLI = path.join(ROOT, 'dist/runtime/cli.js');

const alive = (pid: number) => () => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Starts the CLI with `args`, output appended to `log` (kept from `fromOffset`), and waits for its start. */
async function startLogged(log: string, args: string[], timeoutMs = 30_000): Promise<{ started: RuntimeStart; pid: number }> {
  const fd = fs.openSync(log, 'a');
  const fromOffset = fs.fstatSync(fd).size;
  const child = spawn(process.execPath, [CLI, '--port', '0', '--no-access-log', ...args], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  let exited = false;
  child.once('exit', () => (exited = true));
  const isAlive = alive(child.pid!);
  const started = await waitRuntimeReady({ logPath: log, alive: () => !exited && isAlive(), timeoutMs, fromOffset });
  return { started, pid: child.pid! };
}

describe('parseRuntimeEvent', () => {
  it('reads the CLI event lines and nothing else', () => {
    expect(parseRuntimeEvent('{"event":"listening","port":5001,"host":"127.0.0.1"}')).toMatchObject({ event: 'listening', port: 5001 });
    expect(parseRuntimeEvent('{"event":"init_failed","port":1,"message":"boom"}')).toMatchObject({ event: 'init_failed', message: 'boom' });
    for (const line of ['', 'ready', '[worker 1] {"event":"ready"}', '{"event":"ready"', '{"event":3}', '{"time":"x","event":"ready"}']) {
      expect(parseRuntimeEvent(line)).toBeUndefined();
    }
  });
});

describe('waitRuntimeReady', () => {
  const dir = tempDir('ready');
  const killed: number[] = [];
  afterAll(() => {
    for (const pid of killed) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives the port of a runtime that printed listening + ready, reading only its own lines of a shared log', async () => {
    const log = path.join(dir, 'replica.log');
    // An earlier start's lines in the same log are not this start's.
    fs.writeFileSync(log, '{"event":"listening","port":1}\n{"event":"ready","port":1}\n');
    const { started, pid } = await startLogged(log, ['--entry-script', path.join(EX, 'node/trivial.js')]);
    killed.push(pid);
    expect(started.ok).toBe(true);
    const port = (started as { port: number }).port;
    expect(port).not.toBe(1);
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(res.status).toBe(200);
  });

  it('reports a failing init() as init_failed with its message', async () => {
    const { started, pid } = await startLogged(path.join(dir, 'bad.log'), ['--entry-script', path.join(EX, 'python/faults/score.py'), '--env', 'FAIL_INIT=1']);
    killed.push(pid);
    expect(started).toEqual({ ok: false, reason: 'init_failed', message: 'init() failed: RuntimeError: model file is corrupt' });
  });

  it('reports a runtime that could not start as error with its code', async () => {
    const { started } = await startLogged(path.join(dir, 'args.log'), ['--workers', 'two']);
    expect(started).toMatchObject({ ok: false, reason: 'error', code: 'InvalidArguments' });
  });

  it('reports a process that exited without an event line as exited, with the end of its log', async () => {
    const log = path.join(dir, 'exit.log');
    const fd = fs.openSync(log, 'a');
    const child = spawn(process.execPath, ['-e', 'console.log("first"); process.stdout.write("no newline at the end")'], { stdio: ['ignore', fd, 'ignore'] });
    fs.closeSync(fd);
    let exited = false;
    child.once('exit', () => (exited = true));
    const started = await waitRuntimeReady({ logPath: log, alive: () => !exited, timeoutMs: 30_000 });
    expect(started).toEqual({ ok: false, reason: 'exited', message: 'exited before it was ready: first | no newline at the end' });
  });

  it('gives up after timeoutMs while the process runs silently', async () => {
    const started = await waitRuntimeReady({ logPath: path.join(dir, 'never-written.log'), alive: () => true, timeoutMs: 100 });
    expect(started).toEqual({ ok: false, reason: 'timeout', message: 'not ready within 100 ms' });
  });
});
