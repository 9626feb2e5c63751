/** Shared helpers of the runtime tests: start a server with a log collector, temp dirs, paths. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startScoringServer, type LogRecord, type ScoringServer, type StartOptions } from '../../runtime/server';
import { waitRuntimeReady } from '../../runtime/ready';

export const ROOT = path.resolve(__dirname, '../..');
export const EX = path.join(ROOT, 'examples/runtime');
/** Debian's interpreter, which has python3-numpy / python3-sklearn / python3-pandas. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/**
 * Why `SYSTEM_PYTHON` cannot run the ML tests (numpy, scikit-learn, pandas missing), or undefined when it can.
 * `.ci/run` installs Debian's packages and sets `MDF_REQUIRE_PYTHON_ML=1`: there a missing module fails the tests
 * instead of skipping them.
 */
export function pythonMlMissing(modules: string[] = ['numpy', 'sklearn', 'pandas']): string | undefined {
  const r = spawnSync(SYSTEM_PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 60000 });
  if (r.status === 0) return undefined;
  return `${SYSTEM_PYTHON} cannot import ${modules.join(', ')} (${(r.error?.message ?? r.stderr ?? '').trim().split('\n').pop()}); install python3-numpy python3-sklearn python3-pandas`;
}

/** `describe` for tests that need Python's ML modules: skipped with a printed reason when they are missing (not in CI). */
export function describeWithPythonMl(name: string, fn: () => void): void {
  const missing = process.env.MDF_REQUIRE_PYTHON_ML === '1' ? undefined : pythonMlMissing();
  if (missing) {
    // eslint-disable-next-line no-console
    console.log(`skipping "${name}": ${missing}`);
    describe.skip(name, fn);
  } else {
    describe(name, fn);
  }
}

export interface Started {
  server: ScoringServer;
  url: string;
  logs: LogRecord[];
  output: string[];
}

export async function start(options: StartOptions, waitInit = true): Promise<Started> {
  const logs: LogRecord[] = [];
  const output: string[] = [];
  const server = await startScoringServer({
    port: 0,
    ...options,
    log: (r) => logs.push(r),
    onWorkerOutput: (id, line) => output.push(`${id}:${line}`),
  });
  if (waitInit) await server.initialized;
  return { server, url: server.url, logs, output };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rt-${prefix}-`));
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : body instanceof Uint8Array ? Buffer.from(body) : JSON.stringify(body),
  });
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000, stepMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Replaces a file the way the kubelet updates a mounted Secret: a new file renamed over the old one. */
export function writeAtomically(file: string, content: string): void {
  fs.writeFileSync(`${file}.tmp`, content);
  fs.renameSync(`${file}.tmp`, file);
}

export interface KeysFileServer extends Started {
  /** The keys file the server re-reads every 50 ms (a mounted Secret's stand-in). */
  keysFile: string;
  /** Stops the server and removes the file's folder. */
  close(): Promise<void>;
}

/** The Node example scoring server with `--keys-file` holding `content` (keys or a token secret), reloaded every 50 ms. */
export async function startWithKeysFile(label: string, content: object): Promise<KeysFileServer> {
  const dir = tempDir(label);
  const keysFile = path.join(dir, 'keys.json');
  fs.writeFileSync(keysFile, JSON.stringify(content));
  try {
    const s = await start({ entryScript: path.join(EX, 'node/score.js'), keysFile, keysReloadMs: 50 });
    return {
      ...s,
      keysFile,
      close: async () => {
        await s.server.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * For the whole test file: the Application Insights exporter's own usage telemetry (statsbeat) off. An exporter built
 * in the test process would otherwise start its timers, which outlive the file and call Microsoft's endpoint.
 */
export function withoutStatsbeat(): void {
  const saved = process.env.APPLICATION_INSIGHTS_NO_STATSBEAT;
  beforeAll(() => {
    process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = 'true';
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.APPLICATION_INSIGHTS_NO_STATSBEAT;
    else process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = saved;
  });
}

/** A trivial `score.js` (answers `{n: rows}`) and an AML-style model folder `models/<model>/<version>` in a temp dir. */
export interface ScriptFixture {
  dir: string;
  scorePath: string;
  modelDir: string;
  /** Starts a server and remembers it for `close()`. */
  start(options: Omit<StartOptions, 'entryScript' | 'modelDir'>): Promise<Started>;
  /** Stops every server started here and removes the folder. */
  close(): Promise<void>;
}

export function trivialScriptFixture(label: string, model: string, version: string): ScriptFixture {
  const dir = tempDir(label);
  const modelDir = path.join(dir, 'models', model, version);
  fs.mkdirSync(modelDir, { recursive: true });
  const scorePath = path.join(dir, 'score.js');
  fs.writeFileSync(scorePath, "'use strict';\nfunction run(input) { return { n: input.data.length }; }\nmodule.exports = { run };\n");
  const started: Started[] = [];
  return {
    dir,
    scorePath,
    modelDir,
    start: async (options) => {
      const s = await start({ entryScript: scorePath, modelDir, ...options });
      started.push(s);
      return s;
    },
    close: async () => {
      for (const s of started) await s.server.stop().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A runtime or front run as its own process (as a container runs it): its URL, the child, what it printed. */
export interface ProcessServer {
  url: string;
  port: number;
  child: ChildProcess;
  out: string[];
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => (clearTimeout(kill), resolve()));
      child.kill('SIGTERM');
    });
}

/**
 * `node dist/runtime/front-cli.js` (the ACI front's process) with `env` only; waits for its `listening` line.
 * Needs `npm run build`.
 */
export async function startFrontProcess(env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<ProcessServer> {
  const cli = path.join(ROOT, 'dist/runtime/front-cli.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  const child = spawn(process.execPath, [cli], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  let port = 0;
  child.stdout!.setEncoding('utf8').on('data', (t: string) => {
    out.push(t);
    const m = /"event":"listening".*?"port":(\d+)/.exec(t);
    if (m) port = Number(m[1]);
  });
  child.stderr!.setEncoding('utf8').on('data', (t: string) => out.push(t));
  try {
    await waitFor(() => port > 0 || child.exitCode !== null, timeoutMs);
  } catch {
    /* reported below */
  }
  if (!port) {
    child.kill('SIGKILL');
    throw new Error(`front did not start: ${out.join('').slice(-2000)}`);
  }
  return { url: `http://127.0.0.1:${port}`, port, child, out, stop: stopper(child) };
}

/**
 * `node dist/runtime/cli.js` (a scoring container's entrypoint) on loopback with `args` and `env` (MDF_* settings:
 * keys, ...); its output goes to `logPath`, and its start is read there by the runtime's own `waitRuntimeReady`.
 */
export async function startRuntimeProcess(args: string[], o: { env?: NodeJS.ProcessEnv; logPath: string; timeoutMs?: number }): Promise<ProcessServer> {
  const cli = path.join(ROOT, 'dist/runtime/cli.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  const fd = fs.openSync(o.logPath, 'a');
  const child = spawn(process.execPath, [cli, '--host', '127.0.0.1', '--port', '0', ...args], { env: { PATH: process.env.PATH, ...(o.env ?? {}) }, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const started = await waitRuntimeReady({ logPath: o.logPath, alive: () => child.exitCode === null && child.signalCode === null, timeoutMs: o.timeoutMs ?? 60_000 });
  if (!started.ok) {
    child.kill('SIGKILL');
    throw new Error(`runtime did not start (${started.reason}): ${started.message}`);
  }
  return { url: `http://127.0.0.1:${started.port}`, port: started.port, child, out: [], stop: stopper(child) };
}

/**
 * Scoring scripts (Node, Python) that answer with their whole environment and their parent's (`/proc/<ppid>/environ`,
 * or null when unreadable): the env allow-list tests (test/security/worker-env.test.ts,
 * test/runtime/workload-identity.test.ts).
 */
export const ENV_DUMP_SCORE_JS = `'use strict';
const fs = require('fs');
const parentEnv = () => {
  try { return fs.readFileSync('/proc/' + process.ppid + '/environ', 'utf8').split('\\0').filter(Boolean); } catch { return null; }
};
exports.init = () => {};
exports.run = () => ({ env: { ...process.env }, parent: parentEnv() });
`;
export const ENV_DUMP_SCORE_PY = `import os
def init():
    pass
def parent_env():
    try:
        with open("/proc/%d/environ" % os.getppid(), "rb") as f:
            return [e.decode("utf-8", "replace") for e in f.read().split(b"\\0") if e]
    except OSError:
        return None
def run(raw_data):
    return {"env": dict(os.environ), "parent": parent_env()}
`;
