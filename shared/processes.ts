/**
 * Process helpers for the local target and local batch pools (processes started in their own groups).
 * Waiting for a scoring runtime process to be ready is the runtime's own `waitRuntimeReady` (runtime/ready.ts).
 */
import { execFile } from 'child_process';
import * as fs from 'fs';

/**
 * The fields of `/proc/<path>/stat` after the command name (field 3, the state, first: field n is at index n − 3), or
 * undefined when it cannot be read (gone; not Linux).
 */
function statFields(procPath: string): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${procPath}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Running (a zombie — exited, not yet reaped by an adoptive parent — counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  const fields = statFields(String(pid));
  return fields ? fields[0] !== 'Z' : process.platform !== 'linux';
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
  return statFields(String(pid))?.[19];
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
  const out: FoundProcess[] = [];
  for (const pid of processIds()) {
    if (pid === process.pid) continue;
    const argv = processArgs(pid);
    if (!argv || !match(argv)) continue;
    const pgid = liveGroupOf(pid);
    if (pgid !== undefined) out.push({ pid, pgid });
  }
  return out;
}

/** The ids of the processes /proc lists (Linux only: elsewhere none). */
function processIds(): number[] {
  try {
    return fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
  } catch {
    return [];
  }
}

/** A process's group, or undefined when it is gone or a zombie. */
function liveGroupOf(pid: number): number | undefined {
  const fields = statFields(String(pid)); // state ppid pgrp ...
  return fields && fields[0] !== 'Z' ? Number(fields[2]) : undefined;
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

/**
 * A process's CPU priority: `idle` = Linux `SCHED_IDLE` (it runs only on a core nothing else of normal priority
 * wants, and gives it up at once when something does), `normal` = `SCHED_OTHER` at its nice value.
 */
export type CpuPriority = 'idle' | 'normal';

/** The live members of the process groups (each thread group once), read from /proc (Linux only: elsewhere none). */
export function groupMembers(pgids: number[]): number[] {
  const groups = new Set(pgids);
  return processIds().filter((pid) => groups.has(liveGroupOf(pid) ?? -1));
}

/** `chrt` with `args`: done, refused (or not installed), or killed at its time limit (a starved idle process). */
const chrt = (args: string[]) =>
  new Promise<'ok' | 'failed' | 'timeout'>((resolve) => {
    try {
      execFile('chrt', args, { timeout: 5_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }, (err) => resolve(!err ? 'ok' : err.killed ? 'timeout' : 'failed'));
    } catch {
      resolve('failed');
    }
  });

let settable: Promise<boolean> | undefined;
/**
 * Whether this host can both lower a process to `idle` and bring it back to `normal`: Linux with util-linux's `chrt`,
 * and the right to raise a process's priority again (root, `CAP_SYS_NICE` in the host's effective and ambient sets,
 * or an `RLIMIT_NICE` that allows nice 0; an unprivileged user can lower a process, never raise it back). Probed with
 * a `chrt` started at `idle` that sets itself back to `normal`; the answer is kept, but for a probe that timed out
 * (starved on a busy host), which is asked again next time.
 */
export function canSetCpuPriority(): Promise<boolean> {
  if (process.platform !== 'linux') return Promise.resolve(false);
  return (settable ??= chrt(['--idle', '0', 'chrt', '--other', '0', 'true']).then((r) => {
    if (r === 'timeout') settable = undefined;
    return r === 'ok';
  }));
}

/** One thread of a process: its process, its thread id and its scheduling policy (`idle`, `normal`, else the number). */
export interface TaskPriority {
  pid: number;
  tid: number;
  priority: CpuPriority | string;
}

/** Every thread of every live member of the process groups, with its scheduling policy (/proc; elsewhere none). */
export function groupTasks(pgids: number[]): TaskPriority[] {
  return groupMembers(pgids).flatMap(processTasks);
}

/** Every thread of one process, with its scheduling policy (/proc; none when it is gone, or elsewhere). */
export function processTasks(pid: number): TaskPriority[] {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // exited meanwhile
  }
  const out: TaskPriority[] = [];
  for (const tid of tids) {
    const policy = statFields(`${pid}/task/${tid}`)?.[38]; // field 41: policy; undefined: exited meanwhile
    if (policy !== undefined) out.push({ pid, tid: Number(tid), priority: policy === '5' ? 'idle' : policy === '0' ? 'normal' : policy });
  }
  return out;
}

/**
 * Sets the CPU priority of every thread of every member of the process groups (children and threads started later
 * inherit it), then reads it back. Returns the threads still not at `priority` (those that exited are not counted).
 */
export async function setGroupsCpuPriority(pgids: number[], priority: CpuPriority): Promise<number[]> {
  const flag = priority === 'idle' ? '--idle' : '--other';
  for (const pid of groupMembers(pgids)) await chrt(['--all-tasks', '--pid', flag, '0', String(pid)]);
  // `chrt --all-tasks` stops at the first thread it cannot set (one that exited meanwhile): any left is set alone.
  for (const t of groupTasks(pgids).filter((t) => t.priority !== priority)) await chrt(['--pid', flag, '0', String(t.tid)]);
  return [...new Set(groupTasks(pgids).filter((t) => t.priority !== priority).map((t) => t.tid))];
}
