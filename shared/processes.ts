/** Process helpers for the local target and local batch pools (processes started in their own groups). */
import * as fs from 'fs';

/** Running (a zombie — exited, not yet reaped by an adoptive parent — counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

/** Signal a process group (the process and its workers), or the process alone when it has no group. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Start time of a process (`/proc/<pid>/stat` field 22, clock ticks since boot), or undefined when unknown.
 * A pid plus its start time names one process: a reused pid has another start time.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The command line of a process (argv), or undefined when it is gone or unreadable. */
export function processArgs(pid: number): string[] | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return text ? text.split('\0').filter((a, i, all) => i < all.length - 1 || a !== '') : undefined;
  } catch {
    return undefined;
  }
}

/** A process found by `findProcesses`: its id and its process group. */
export interface FoundProcess {
  pid: number;
  pgid: number;
}

/**
 * The live processes whose command line satisfies `match` — how processes are recognised by a token they carry
 * (e.g. a folder only they are started from), never by a recorded pid alone (pids are reused). Linux (/proc) only:
 * elsewhere the list is empty.
 */
export function findProcesses(match: (argv: string[]) => boolean): FoundProcess[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const out: FoundProcess[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    const argv = processArgs(pid);
    if (!argv || !match(argv)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp ...
      if (fields[0] === 'Z') continue;
      out.push({ pid, pgid: Number(fields[2]) });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** SIGTERM the process groups, SIGKILL what still runs after `graceMs`; resolves once all are gone (bounded). */
export async function terminateGroups(pids: number[], graceMs = 5_000): Promise<void> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const live = () => pids.filter(isAlive);
  for (const pid of live()) killGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (live().length && Date.now() < deadline) await sleep(25);
  for (const pid of live()) killGroup(pid, 'SIGKILL');
  const hard = Date.now() + 2_000;
  while (live().length && Date.now() < hard) await sleep(20);
}

/** How a scoring runtime's start ended, read from the JSON lines of its log (`listening`, `ready`, `init_failed`, `error`). */
export type RuntimeStart =
  | { ok: true; port: number }
  | { ok: false; reason: 'init_failed' | 'error' | 'exited' | 'timeout'; code?: string; message: string };

/**
 * Waits until the runtime `pid` (stdout and stderr appended to `logPath`) printed `listening` + `ready`, failed,
 * exited, or `timeoutMs` passed. Reads the log incrementally from `fromOffset` (the file's size at spawn time).
 */
export async function waitRuntimeStart(pid: number, logPath: string, timeoutMs: number, fromOffset = 0): Promise<RuntimeStart> {
  const deadline = Date.now() + timeoutMs;
  let offset = fromOffset;
  let partial = '';
  let port: number | undefined;
  let tail: string[] = [];
  for (;;) {
    const alive = isAlive(pid);
    try {
      const fh = await fs.promises.open(logPath, 'r');
      try {
        const { size } = await fh.stat();
        if (size > offset) {
          const buf = Buffer.alloc(Math.min(size - offset, 1024 * 1024));
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          offset += bytesRead;
          const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) {
            if (line.trim()) tail = [...tail.slice(-4), line];
            if (!line.startsWith('{"event"')) continue;
            let ev: { event?: string; port?: number; message?: string; code?: string };
            try {
              ev = JSON.parse(line);
            } catch {
              continue;
            }
            if (ev.event === 'listening') port = ev.port;
            else if (ev.event === 'ready' && port !== undefined) return { ok: true, port };
            else if (ev.event === 'init_failed') return { ok: false, reason: 'init_failed', message: ev.message ?? 'init() failed' };
            else if (ev.event === 'error') return { ok: false, reason: 'error', ...(ev.code ? { code: ev.code } : {}), message: ev.message ?? 'the scoring runtime failed to start' };
          }
          if (size > offset) continue; // more to read
        }
      } finally {
        await fh.close();
      }
    } catch {
      /* not created yet */
    }
    if (!alive) return { ok: false, reason: 'exited', message: `exited before it was ready${tail.length ? `: ${tail.join(' | ').slice(0, 500)}` : ''}` };
    if (Date.now() > deadline) return { ok: false, reason: 'timeout', message: `not ready within ${timeoutMs} ms` };
    await new Promise((r) => setTimeout(r, 50));
  }
}
