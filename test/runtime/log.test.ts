/**
 * Structured logs (runtime/log.ts): JSON lines with the event first, a level and a time (the readiness lines stay
 * parseable by ready.ts), LOG_LEVEL honoured — through the runtime's CLI and the local host's CLI — and
 * human-readable lines on a terminal.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { startAzurite } from '../../local/azurite';
import { kill9, startHostProcess } from '../../local/testing';
import { inheritedEnv } from '../../runtime/child-env';
import { createLogger, logLevelOf } from '../../runtime/log';
import { parseRuntimeEvent, waitRuntimeReady } from '../../runtime/ready';
import { EX, post, ROOT, tempDir } from './helpers';

function sink(isTTY: boolean): { stream: Writable & { isTTY?: boolean }; lines: string[] } {
  const lines: string[] = [];
  const stream = Object.assign(new Writable({ write(chunk, _e, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb(); } }), { isTTY });
  return { stream, lines };
}

test('records: JSON with event, level, time first; below LOG_LEVEL dropped except the readiness events; human-readable on a terminal', () => {
  const json = sink(false);
  const log = createLogger({ stream: json.stream, level: 'warn' });
  log({ event: 'access', requestId: 'r1', status: 200 });
  log({ event: 'listening', port: 5 });
  log({ event: 'ready', port: 5 });
  log({ event: 'worker_exit', worker: 1 });
  log({ event: 'custom', level: 'error', message: 'boom' });
  expect(json.lines.map((l) => JSON.parse(l))).toEqual([
    { event: 'listening', level: 'info', time: expect.any(String), port: 5 },
    { event: 'ready', level: 'info', time: expect.any(String), port: 5 },
    { event: 'worker_exit', level: 'warn', time: expect.any(String), worker: 1 },
    { event: 'custom', level: 'error', time: expect.any(String), message: 'boom' },
  ]);
  expect(json.lines.every((l) => parseRuntimeEvent(l) !== undefined)).toBe(true);

  const tty = sink(true);
  createLogger({ stream: tty.stream, level: 'info' })({ event: 'access', time: '2026-01-01T00:00:00.000Z', requestId: 'r1', status: 200, path: '/score' });
  expect(tty.lines).toEqual(['2026-01-01T00:00:00.000Z INFO  access requestId=r1 status=200 path=/score']);

  expect(['debug', 'INFO', 'Warning', 'error', 'nonsense', undefined].map(logLevelOf)).toEqual(['debug', 'info', 'warn', 'error', 'info', 'info']);
});

test('the runtime CLI with LOG_LEVEL=warn: still ready (readiness parsed from its log), no access lines; with the default level, access lines as JSON', async () => {
  const dir = tempDir('log');
  try {
    const run = async (level: string | undefined) => {
      const logPath = path.join(dir, `cli-${level ?? 'default'}.log`);
      const fd = fs.openSync(logPath, 'w');
      const child = spawn(process.execPath, [path.join(ROOT, 'dist/runtime/cli.js'), '--entry-script', path.join(EX, 'node/score.js'), '--port', '0'], {
        stdio: ['ignore', fd, fd], env: { ...inheritedEnv(), ...(level ? { LOG_LEVEL: level } : {}) },
      });
      fs.closeSync(fd);
      const exited = new Promise((r) => child.once('exit', r));
      try {
        const ready = await waitRuntimeReady({ logPath, alive: () => child.exitCode === null, timeoutMs: 60_000 });
        if (!ready.ok) throw new Error(ready.message);
        expect((await post(`http://127.0.0.1:${ready.port}/score`, { data: [[1, 2]] })).status).toBeLessThan(500);
        child.kill('SIGTERM');
        await exited;
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      return fs.readFileSync(logPath, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    };
    const quiet = await run('warn');
    expect(quiet.map((r) => r.event)).toEqual(expect.arrayContaining(['listening', 'ready', 'stopping']));
    expect(quiet.some((r) => r.event === 'access')).toBe(false);
    const normal = await run(undefined);
    expect(normal.find((r) => r.event === 'access')).toMatchObject({ level: 'info', method: 'POST', path: '/score', requestId: expect.any(String), time: expect.any(String) });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

test('the local host\'s CLI logs JSON lines (ready, stopping) with level and time', async () => {
  const azurite = await startAzurite();
  try {
    const { proc } = await startHostProcess({ connectionString: azurite.connectionString });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
    const stopping = out.split('\n').filter((l) => l.startsWith('{"event":"stopping"')).map((l) => JSON.parse(l));
    expect(stopping).toEqual([{ event: 'stopping', level: 'info', time: expect.any(String), message: 'SIGTERM: stopping', signal: 'SIGTERM' }]);
    await kill9(proc);
  } finally {
    await azurite.stop();
  }
}, 120_000);
