/**
 * Reading a scoring runtime process's start from its log. The CLI (cli.ts) prints JSON lines on stdout:
 * `{"event":"listening","port":N,...}` once the port is bound, then `{"event":"ready",...}` or
 * `{"event":"init_failed","message":...}`, or `{"event":"error","code":...,"message":...}` when it cannot start.
 * Whoever runs the CLI as a process (the local deploy target's replicas, the local batch pool's nodes) waits for
 * those lines here, so they are parsed in one place.
 */
import * as fs from 'node:fs';
import { MAX_LINE_BYTES } from './lines';

/** One event line of the runtime CLI (other fields, such as `url` or `pid`, may follow). */
export interface RuntimeEvent {
  event: string;
  port?: number;
  message?: string;
  code?: string;
}

/** The event of a line the runtime CLI printed, or undefined for any other line (access log, worker output...). */
export function parseRuntimeEvent(line: string): RuntimeEvent | undefined {
  if (!line.startsWith('{"event"')) return undefined;
  let ev: unknown;
  try {
    ev = JSON.parse(line);
  } catch {
    return undefined;
  }
  return ev && typeof ev === 'object' && typeof (ev as RuntimeEvent).event === 'string' ? (ev as RuntimeEvent) : undefined;
}

/** How a scoring runtime's start ended. */
export type RuntimeStart =
  | { ok: true; port: number }
  | { ok: false; reason: 'init_failed' | 'error' | 'exited' | 'timeout'; code?: string; message: string };

export interface WaitRuntimeReadyOptions {
  /** The file the process's stdout and stderr are appended to. */
  logPath: string;
  /** Whether the process still runs (checked before each read, so its last lines are read after it exited). */
  alive: () => boolean;
  timeoutMs: number;
  /** Where this start's lines begin in the log (its size when the process was spawned); default 0. */
  fromOffset?: number;
}

/** Lines of the log kept for the `exited` message. */
const TAIL_LINES = 5;
/** Bytes read from the log per step. */
const READ_BYTES = 1024 * 1024;

/**
 * Waits until the runtime printed `listening` + `ready` (→ its port), `init_failed` or `error`, exited (→ the last
 * lines of its log in the message), or `timeoutMs` passed. Reads the log incrementally from `fromOffset`.
 */
export async function waitRuntimeReady(opts: WaitRuntimeReadyOptions): Promise<RuntimeStart> {
  const { logPath, alive: isAlive, timeoutMs } = opts;
  const deadline = Date.now() + timeoutMs;
  let offset = opts.fromOffset ?? 0;
  let partial = '';
  let port: number | undefined;
  let tail: string[] = [];
  for (;;) {
    const alive = isAlive();
    try {
      const fh = await fs.promises.open(logPath, 'r');
      try {
        const { size } = await fh.stat();
        if (size > offset) {
          const buf = Buffer.alloc(Math.min(size - offset, READ_BYTES));
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          offset += bytesRead;
          const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          // An unfinished line longer than any event line is output, not an event: keep its start for the tail only.
          if (partial.length > MAX_LINE_BYTES) partial = partial.slice(0, 500);
          for (const line of lines) {
            if (line.trim()) tail = [...tail.slice(1 - TAIL_LINES), line];
            const ev = parseRuntimeEvent(line);
            if (!ev) continue;
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
    if (!alive) {
      const last = [...tail, partial].filter((l) => l.trim()).slice(-TAIL_LINES);
      return { ok: false, reason: 'exited', message: `exited before it was ready${last.length ? `: ${last.join(' | ').slice(0, 500)}` : ''}` };
    }
    if (Date.now() > deadline) return { ok: false, reason: 'timeout', message: `not ready within ${timeoutMs} ms` };
    await new Promise((r) => setTimeout(r, 50));
  }
}
