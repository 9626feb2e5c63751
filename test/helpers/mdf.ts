/**
 * The built `mdf` CLI (`bin/mdf.js` → dist/cli/mdf.js) as a child process against a test host, as a user runs it:
 * stdout a pipe, or (`tty`) a pseudo-terminal from util-linux `script`. Shared by the CLI tests.
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '../..');
export const MDF_BIN = path.join(ROOT, 'bin/mdf.js');

export interface MdfResult {
  code: number | null;
  stdout: string;
  /** stdout as bytes (a binary download with `-o -`). */
  stdoutBytes: Buffer;
  stderr: string;
}

export interface MdfOptions {
  /** Written to stdin (then closed); without it stdin is closed from the start. */
  input?: string;
  /** Under a pseudo-terminal (`script -qfec`): stdout is a terminal; stdout and stderr then come back together, \r\n line ends. */
  tty?: boolean;
  /** More environment (MDF_URL is the host's unless given here). */
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Sees the output so far as it comes (e.g. to interrupt the child). */
  onStdout?: (soFar: string, child: ChildProcess) => void;
}

/** The host the CLI talks to: read when a command runs (tests start it in beforeAll). */
export interface MdfHost {
  baseUrl: string;
  logs: string[];
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `mdf(args)` (any exit) and `ok(args)` (must exit 0; its stdout) against the host `host()` returns. */
export function mdfRunner(host: () => MdfHost) {
  const hostTail = () => `host log tail:\n${host().logs.slice(-15).join('\n')}`;

  function mdf(args: string[], o: MdfOptions = {}): Promise<MdfResult> {
    if (!fs.existsSync(path.join(ROOT, 'dist/cli/mdf.js'))) throw new Error('dist/cli/mdf.js is missing: run "npm run build" first.');
    // The caller's own function key is never sent to the test host.
    const { MDF_FUNCTION_KEY: _callersKey, ...inherited } = process.env;
    const childEnv: NodeJS.ProcessEnv = { ...inherited, MDF_URL: host().baseUrl, ...(o.env ?? {}) };
    const child = o.tty
      ? spawn('script', ['-qfec', [process.execPath, MDF_BIN, ...args].map(quote).join(' '), '/dev/null'], { env: { ...childEnv, TERM: 'xterm', COLUMNS: '160' }, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [MDF_BIN, ...args], { env: childEnv, stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (o.input !== undefined) child.stdin!.end(o.input);
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      out.push(d);
      if (o.onStdout) o.onStdout(Buffer.concat(out).toString('utf8'), child);
    });
    child.stderr!.on('data', (d) => (stderr += d));
    const timeoutMs = o.timeoutMs ?? 120_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`mdf ${args.join(' ')} did not end within ${timeoutMs} ms\n${Buffer.concat(out).toString('utf8')}\n${stderr}\n${hostTail()}`));
      }, timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        const stdoutBytes = Buffer.concat(out);
        resolve({ code, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr });
      });
    });
  }

  /** `mdf` that must exit 0: its stdout. */
  async function ok(args: string[], o: MdfOptions = {}): Promise<string> {
    const r = await mdf(args, o);
    if (r.code !== 0) throw new Error(`mdf ${args.join(' ')} exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}\n${hostTail()}`);
    return r.stdout;
  }

  return { mdf, ok };
}
