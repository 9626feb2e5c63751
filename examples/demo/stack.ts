/**
 * The whole stack on embedded defaults, for the demo and `bench:pipeline`: Azurite (data in a folder, free
 * ports — never the well-known 10000-10002) and the local Functions host as a child process
 * (`dist/local/cli.js`, its output in `<workDir>/host.log`, so the caller's stdout stays readable).
 * `stop()` stops the host (which stops its scoring processes), reaps any scoring process a killed host left
 * behind, then stops Azurite.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { isListening, startAzurite, type AzuriteInstance } from '../../local/azurite';
import { splitLines } from '../../runtime';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { LocalDeployTarget } from '../../shared/targets/local';

/** The repository root (this file compiles to dist/examples/demo/stack.js). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', fs.existsSync(path.resolve(__dirname, '..', '..', 'package.json')) ? '' : '..');

export interface StackOptions {
  /** Folder for Azurite's data, the local target's work dir and host.log (the caller creates and removes it). */
  workDir: string;
  /** Host HTTP port (0 = a free one). */
  port?: number;
  /** Blob/queue trigger poll interval of the host. */
  pollMs?: number;
  /** Extra app settings for the host. */
  settings?: Record<string, string>;
  /** Also copy the host's output to this callback (line by line). */
  onHostLine?: (line: string) => void;
  /** Bound on the host's start. */
  startTimeoutMs?: number;
}

export interface Stack {
  baseUrl: string;
  connectionString: string;
  storage: StorageClients;
  azurite: AzuriteInstance;
  hostPid: number;
  hostLog: string;
  /** Last lines of the host's output (for error reports). */
  hostLogTail(lines?: number): string;
  /** Undefined while the host runs; why it ended otherwise. */
  hostExit(): string | undefined;
  stop(): Promise<void>;
}

export class StackError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function tailOf(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const cli = path.join(REPO_ROOT, 'dist', 'local', 'cli.js');
  if (!fs.existsSync(cli)) throw new StackError('NotBuilt', `${cli} does not exist: run "npm run build" first.`);
  const workDir = path.resolve(opts.workDir);
  const hostLog = path.join(workDir, 'host.log');
  const azurite = await startAzurite({ location: path.join(workDir, 'azurite') });
  const storage = storageFromConnectionString(azurite.connectionString);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // The demo's own storage and a local-only chain, whatever local.settings.json says.
    AzureWebJobsStorage: azurite.connectionString,
    IMAGE_BUILDER: 'local',
    DEFAULT_TARGET: 'local',
    EVENTS_TOPIC_NAME: '',
    LOCAL_WORK_DIR: path.join(workDir, 'local'),
    ...(opts.settings ?? {}),
  };
  const log = fs.createWriteStream(hostLog, { flags: 'a' });
  const child = spawn(process.execPath, [cli, '--port', String(opts.port ?? 0), '--app', REPO_ROOT, '--poll-ms', String(opts.pollMs ?? 200)], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a terminal's Ctrl+C reaches the caller only, which then stops the host in order.
    detached: true,
  });

  let baseUrl: string | undefined;
  let ready: () => void = () => undefined;
  const readyPromise = new Promise<void>((resolve) => (ready = resolve));
  const onLine = (stream: 'out' | 'err') => (line: string) => {
    opts.onHostLine?.(line);
    if (stream === 'out' && !baseUrl && line.startsWith('{')) {
      try {
        const ev = JSON.parse(line) as { event?: string; url?: string };
        if (ev.event === 'ready' && ev.url) {
          baseUrl = ev.url;
          ready();
        }
      } catch {
        /* an ordinary log line */
      }
    }
  };
  for (const [stream, name] of [[child.stdout!, 'out'], [child.stderr!, 'err']] as const) {
    stream.on('data', (d: Buffer) => log.write(d));
    splitLines(stream, onLine(name));
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      // Without storage (Azurite killed by a terminal's Ctrl+C, which reaches its process group) the host's
      // clean stop only retries: give it a short grace, then kill it and reap its scoring processes below.
      const storageUp = await isListening(azurite.blobPort);
      child.kill('SIGTERM');
      if (!(await waitExit(child, storageUp ? 20_000 : 2_000))) {
        child.kill('SIGKILL');
        await waitExit(child, 5_000);
      }
    }
    // A host that did not stop cleanly leaves its detached scoring processes: kill them from their slot.json.
    await new LocalDeployTarget(storage, { workDir: path.join(workDir, 'local') }).reapOrphans().catch(() => 0);
    await azurite.stop();
    await new Promise<void>((resolve) => log.end(() => resolve()));
  };

  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    readyPromise.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    await stop();
    const why = outcome === 'exited' ? `exited with code ${child.exitCode}` : `did not print its ready line within ${timeoutMs / 1000} s`;
    throw new StackError('HostStartFailed', `The local Functions host ${why}. Its last output:\n${tailOf(hostLog, 15)}`);
  }
  child.once('exit', (code, signal) => {
    if (!stopped) log.write(`[stack] the host exited unexpectedly (${signal ?? `code ${code}`})\n`);
  });

  return {
    baseUrl: baseUrl!,
    connectionString: azurite.connectionString,
    storage,
    azurite,
    hostPid: child.pid!,
    hostLog,
    hostLogTail: (lines = 20) => tailOf(hostLog, lines),
    hostExit: () => (child.exitCode !== null || child.signalCode !== null ? String(child.signalCode ?? `code ${child.exitCode}`) : undefined),
    stop,
  };
}
