/**
 * A service front's shadow copies on a thread of their own at idle CPU priority (Linux `SCHED_IDLE`): the thread sends
 * each batch to the shadow slot, reads the answers and judges them (shadow-sender.ts, the same code the front's own
 * loop runs otherwise), and hands back one small array of verdicts per batch. The front's loop keeps what decides and
 * counts, and posts a batch at most a few times a second (copies gather, front.ts), so the thread wakes that often; at
 * idle priority it runs only on a core nothing else wants, and gives it up at once when the front's clients need it.
 * Copies' kernel work (the loopback writes, reading the answers) is then done by this thread, not on the clients' path.
 *
 * The thread lowers its own priority with util-linux's `chrt` (a thread may always lower itself; only raising needs a
 * privilege). Where it cannot (not Linux, no `chrt`), it says so in its first message, and the front sends its later
 * copies from its own loop instead: at normal priority the thread's wake-ups cost the clients more than the copies
 * do on the loop (docs/benchmarks.md, "The shadow work on a thread and in slices").
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { packageRoot } from './launch';
import { LOST_COPY, ShadowSender, type CopyResult, type ShadowHandlers, type ShadowTarget, type WireCopy } from './shadow-sender';

/** A batch for the thread: the copies' metadata, and their bodies and serving answers in one transferred buffer. */
interface BatchMessage {
  id: number;
  target: ShadowTarget;
  /** Per copy: path, content type, auth, body length, serving status, serving answer's length (-1: none), tolerance. */
  items: Array<{ p: string; t: string; a?: string; n: number; s: number; m: number; tol: number }>;
  buf: ArrayBuffer;
  /** Whether the slot takes batches, as far as the front knows. */
  b?: boolean;
}
/** The thread's answer to a batch: RESULT_FIELDS numbers per copy (status, ms, flags: 1 error, 2 compared, 4 disagreed, 8 refused). */
interface DoneMessage {
  kind: 'done';
  id: number;
  r: Float64Array;
  /** Whether the slot takes batches (ShadowSender.send), when known. */
  b?: boolean;
}
/** The thread's word that a batch's request is over (ShadowHandlers.sent), before its copies are all settled. */
interface SentMessage {
  kind: 'sent';
  id: number;
  b?: boolean;
}
/** The thread's first message: the priority it runs at, and why not idle when it could not lower it. */
interface ReadyMessage {
  kind: 'ready';
  priority: 'idle' | 'normal';
  why?: string;
}
const RESULT_FIELDS = 3;
/** Shadow threads that may die before a front sends its copies from its own loop instead. */
const MAX_THREAD_DEATHS = 3;
const THREAD_MARK = 'mdf-shadow-thread';

export const shadowThreadPath = (): string => path.join(packageRoot(), 'dist', 'runtime', 'shadow-thread.js');

/** The scheduling policy of the calling thread (`/proc/thread-self/stat`, field 41; 5 = SCHED_IDLE). */
function ownPolicy(): number {
  const stat = fs.readFileSync('/proc/thread-self/stat', 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
}

/** Lowers the calling thread to SCHED_IDLE; says whether it runs there now, and why not. */
function lowerOwnPriority(): ReadyMessage {
  if (process.platform !== 'linux') return { kind: 'ready', priority: 'normal', why: `not Linux (${process.platform})` };
  try {
    const tid = fs.readlinkSync('/proc/thread-self').split('/').pop() ?? '';
    if (!/^\d+$/.test(tid)) return { kind: 'ready', priority: 'normal', why: 'no thread id in /proc/thread-self' };
    const r = spawnSync('chrt', ['--idle', '-p', '0', tid], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdio: 'ignore', timeout: 5000 });
    if (ownPolicy() === 5) return { kind: 'ready', priority: 'idle' };
    return { kind: 'ready', priority: 'normal', why: r.error ? `chrt: ${r.error.message}` : `chrt exited with ${r.status ?? r.signal}` };
  } catch (e) {
    return { kind: 'ready', priority: 'normal', why: (e as Error).message };
  }
}

/**
 * The front's side of the thread: `send` as ShadowSender's. The thread starts with the first batch; a thread that
 * dies fails the copies it held (status 0, as a shadow that did not answer) and the next batch starts another. One
 * that did not start at all, or runs at normal priority, makes `usable` false: the front then sends later copies
 * from its own loop.
 */
export class ShadowThread {
  constructor(
    private readonly file = shadowThreadPath(),
    /** Called once, with `why`, when later batches should go elsewhere (`usable` turns false). */
    private readonly onUnusable?: (why: string) => void,
  ) {}

  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { n: number; to: ShadowHandlers }>();
  /** The thread's priority, once it said (undefined until then). */
  priority?: 'idle' | 'normal';
  /** Why the thread could not run at idle priority (with `priority` 'normal'). */
  why?: string;

  /** Threads that died so far; after MAX_THREAD_DEATHS the front sends its copies from its own loop. */
  private deaths = 0;

  /** Whether later batches should come here: not once the thread said it runs at normal priority (or could not run). */
  get usable(): boolean {
    return this.priority !== 'normal';
  }

  /**
   * Posts one batch to the thread (ShadowSender.send's contract, frames only: a batch the slot refuses as a batch
   * comes back `refused`). Each copy's body and serving answer are copied into the transferred buffer; the caller
   * keeps its own until the batch is settled (to send refused copies itself): at most the batches in flight, twice.
   */
  send(target: ShadowTarget, copies: WireCopy[], to: ShadowHandlers, how: { takesBatches?: boolean } = {}): void {
    const worker = (this.worker ??= this.start());
    let total = 0;
    for (const c of copies) total += c.body.length + (c.primary.body?.length ?? 0);
    const buf = new ArrayBuffer(total);
    const view = Buffer.from(buf);
    let at = 0;
    const items = copies.map((c) => {
      c.body.copy(view, at);
      at += c.body.length;
      if (c.primary.body) {
        c.primary.body.copy(view, at);
        at += c.primary.body.length;
      }
      const item = { p: c.path, t: c.contentType, ...(c.auth ? { a: c.auth } : {}), n: c.body.length, s: c.primary.status, m: c.primary.body ? c.primary.body.length : -1, tol: c.tolerance };
      return item;
    });
    const id = this.nextId++;
    this.pending.set(id, { n: copies.length, to });
    worker.postMessage({ id, target, items, buf, ...(how.takesBatches === undefined ? {} : { b: how.takesBatches }) } satisfies BatchMessage, [buf]);
  }

  /** Ends the thread; the copies it held are lost (ShadowHandlers get them as `lost`). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.fail();
    if (w) await w.terminate();
  }

  /** The copies of every batch out are lost: counted as skipped by the front, never against the new version. */
  private fail(): void {
    const held = [...this.pending.values()];
    this.pending.clear();
    for (const b of held) {
      b.to.sent(undefined);
      b.to.done(Array.from({ length: b.n }, () => LOST_COPY));
    }
  }

  /**
   * Later batches go elsewhere (the front's loop), for `why`. Returns what tells `onUnusable`, once (undefined when
   * already said), for the caller to call after its own clean-up; a callback that throws never breaks the copies.
   */
  private unusable(why: string): (() => void) | undefined {
    if (this.priority === 'normal') return undefined;
    this.priority = 'normal';
    this.why = why;
    return () => {
      try {
        this.onUnusable?.(why);
      } catch {
        /* a notice that fails changes nothing here */
      }
    };
  }

  private start(): Worker {
    const worker = new Worker(this.file, { workerData: { mark: THREAD_MARK }, env: { PATH: process.env.PATH ?? '' }, stdout: false, stderr: false });
    worker.unref();
    worker.on('message', (m: DoneMessage | SentMessage | ReadyMessage) => {
      if (m.kind === 'ready') {
        if (m.priority === 'normal') this.unusable(m.why ?? 'the shadow thread runs at normal CPU priority')?.();
        else this.priority = m.priority;
        return;
      }
      const batch = this.pending.get(m.id);
      if (!batch) return;
      if (m.kind === 'sent') return batch.to.sent(m.b);
      this.pending.delete(m.id);
      // A thread that said it runs at normal priority gets no more batches: it ends once it has none.
      if (!this.usable && this.pending.size === 0 && this.worker === worker) {
        this.worker = undefined;
        void worker.terminate();
      }
      const results: CopyResult[] = [];
      for (let i = 0; i < m.r.length; i += RESULT_FIELDS) {
        const flags = m.r[i + 2];
        results.push({ status: m.r[i], ms: m.r[i + 1], error: (flags & 1) !== 0, compared: (flags & 2) !== 0, disagreed: (flags & 4) !== 0, ...(flags & 8 ? { refused: true } : {}) });
      }
      batch.to.sent(m.b);
      batch.to.done(results);
    });
    const lost = (e?: unknown) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      // A thread that could not start (its file missing, a bad install), or died too often: later copies go on the
      // front's loop.
      const tell =
        this.priority === undefined
          ? this.unusable(`the shadow thread did not start: ${e instanceof Error ? e.message : `it exited (${String(e)})`}`)
          : ++this.deaths >= MAX_THREAD_DEATHS
            ? this.unusable(`the shadow thread ended ${this.deaths} times`)
            : undefined;
      this.fail();
      tell?.();
    };
    worker.on('error', lost);
    worker.on('exit', lost);
    return worker;
  }
}

/** The thread's side: lower its priority, then send and judge each batch the front posts. */
function runThread(): void {
  const port = parentPort!;
  // A batch of one is framed too: its latency is then the replica's own, not this idle thread's reading of it.
  const sender = new ShadowSender(undefined, true);
  port.postMessage(lowerOwnPriority());
  port.on('message', (m: BatchMessage) => {
    const view = Buffer.from(m.buf);
    let at = 0;
    const copies: WireCopy[] = m.items.map((x) => {
      const body = view.subarray(at, (at += x.n));
      const primaryBody = x.m >= 0 ? view.subarray(at, (at += x.m)) : undefined;
      return { path: x.p, contentType: x.t, body, ...(x.a ? { auth: x.a } : {}), primary: { status: x.s, ...(primaryBody ? { body: primaryBody } : {}) }, tolerance: x.tol };
    });
    let b: boolean | undefined;
    let settled = false;
    sender.send(m.target, copies, {
      // Said at once when the batch's request is over before its copies are all settled (they then go one by one).
      sent: (takesBatches) => {
        b = takesBatches;
        // (`done` follows at once when the copies are all settled: then no message of its own.)
        queueMicrotask(() => {
          if (!settled) port.postMessage({ kind: 'sent', id: m.id, ...(takesBatches === undefined ? {} : { b: takesBatches }) } satisfies SentMessage);
        });
      },
      done: (results) => {
        settled = true;
        const r = new Float64Array(results.length * RESULT_FIELDS);
        results.forEach((x, i) => r.set([x.status, x.ms, (x.error ? 1 : 0) | (x.compared ? 2 : 0) | (x.disagreed ? 4 : 0) | (x.refused ? 8 : 0)], i * RESULT_FIELDS));
        port.postMessage({ kind: 'done', id: m.id, r, ...(b === undefined ? {} : { b }) } satisfies DoneMessage, [r.buffer]);
      },
    }, m.b === undefined ? {} : { takesBatches: m.b });
  });
}

if (!isMainThread && (workerData as { mark?: string } | null)?.mark === THREAD_MARK) runThread();
