/**
 * The front's side of its shadow thread (shadow-worker.ts): the copies of mirrored requests are handed to a worker
 * thread, which sends them to the shadow slot, reads and compares the answers, and reports one small record per copy.
 * The front's event loop keeps only what decides and counts (which request is copied, the in-flight cap, the
 * counters): sending, parsing the shadow's HTTP answer and comparing run on the thread, in parallel with the client
 * traffic. The copies of one event-loop turn go in one message (the bytes in one transferred buffer, after the
 * turn's pending I/O: setImmediate), the results of one turn of the thread come back in one message.
 *
 * The thread starts with the first copy and stops when the front stops mirroring (once its copies are answered) or
 * closes. A thread that dies (a crash, an exit nobody asked for) never touches a client's answer: the copies it held
 * are reported lost (`done(undefined)`), and the next copy starts a new thread.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

/** Answers larger than this are not compared (the copy counts as mirrored, not compared). */
export const MAX_COMPARE_BYTES = 1024 * 1024;
/** Connections the front opens to the shadow slot for copies at most; more copies wait for one (bounded by the in-flight cap). */
export const MAX_SHADOW_SOCKETS = 8;
/** A copy the shadow slot has not answered within this is a failed copy. */
export const SHADOW_TIMEOUT_MS = 60_000;

/** The verdict of a copy: not compared (a non-2xx answer, a body over the bound), agreed, disagreed. */
export const VERDICT = { none: 0, agreed: 1, disagreed: 2 } as const;

/** One copy to send, as the front hands it to the thread. */
export interface ShadowJob {
  /** The shadow slot (`host` is the Host header). */
  hostname: string;
  port: string;
  host: string;
  path: string;
  contentType: string;
  authorization?: string;
  /** The request's body (complete, within MAX_COMPARE_BYTES). */
  body: Buffer;
  /** The serving slot's answer: its status (0: none), its body (absent: over MAX_COMPARE_BYTES). */
  primaryStatus: number;
  primaryBody?: Buffer;
  tolerance: number;
}

/** What the shadow slot did with a copy: its status (0: no answer, failed or timed out), its latency, the verdict. */
export interface ShadowResult {
  status: number;
  /** Absent when the shadow did not answer completely. */
  latencyMs?: number;
  verdict: (typeof VERDICT)[keyof typeof VERDICT];
}

/** The message of one turn: the jobs (without their bytes) and all their bytes, each body then its serving answer. */
export interface ShadowBatch {
  jobs: Array<Omit<ShadowJob, 'body' | 'primaryBody'> & { id: number; bodyBytes: number; primaryBytes: number }>;
  bytes: ArrayBuffer;
}

/** The compiled worker: next to this file in dist/, or dist/runtime/ when this file runs from source (ts-jest). */
function workerPath(): string {
  const here = path.join(__dirname, 'shadow-worker.js');
  return fs.existsSync(here) ? here : path.join(__dirname, '..', 'dist', 'runtime', 'shadow-worker.js');
}

type Done = (r: ShadowResult | undefined) => void;

export class ShadowThread {
  /** The running thread and the copies handed to it, not yet reported. */
  private current?: { worker: Worker; pending: Map<number, Done> };
  /** Copies of this turn, not yet posted. */
  private outbox: Array<{ id: number; job: ShadowJob; done: Done }> = [];
  private flushing?: NodeJS.Immediate;
  private nextId = 1;
  /** Set by `stopWhenIdle` (the front stopped mirroring): the thread ends once its copies are answered. */
  private idleStop = false;
  /** Threads that died without being asked to (each one's copies were reported lost). */
  crashes = 0;

  /** Hands a copy to the thread (posted on this turn's flush); `done` gets its result, or undefined if it was lost. */
  send(job: ShadowJob, done: Done): void {
    this.idleStop = false;
    this.outbox.push({ id: this.nextId++, job, done });
    this.flushing ??= setImmediate(() => this.flush());
  }

  /** The front stopped mirroring: end the thread once nothing is pending (a new copy cancels this). */
  stopWhenIdle(): void {
    this.idleStop = true;
    this.stopIfIdle();
  }

  /** The running thread (diagnostics; tests stop it to see that a crash costs the clients nothing). */
  get thread(): Worker | undefined {
    return this.current?.worker;
  }

  /** Ends the thread now; copies still pending are dropped without a result (the front is closing). */
  close(): void {
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = undefined;
    this.outbox = [];
    const c = this.current;
    this.current = undefined;
    if (c) {
      c.pending.clear();
      void c.worker.terminate();
    }
  }

  private stopIfIdle(): void {
    const c = this.current;
    if (!this.idleStop || !c || c.pending.size || this.outbox.length) return;
    this.current = undefined;
    void c.worker.terminate();
  }

  private start(): { worker: Worker; pending: Map<number, Done> } {
    const worker = new Worker(workerPath());
    worker.unref();
    const pending = new Map<number, Done>();
    const me = { worker, pending };
    worker.on('message', (results: Float64Array) => {
      for (let i = 0; i + 3 < results.length; i += 4) {
        const done = pending.get(results[i]);
        if (!done) continue;
        pending.delete(results[i]);
        const latency = results[i + 2];
        done({ status: results[i + 1], ...(latency >= 0 ? { latencyMs: latency } : {}), verdict: results[i + 3] as ShadowResult['verdict'] });
      }
      this.stopIfIdle();
    });
    // An uncaught error in the thread ends it ('error', then 'exit'); an exit nobody asked for as well. Its copies
    // are lost; the next copy starts a new thread.
    const died = () => {
      if (this.current === me) {
        this.current = undefined;
        this.crashes++;
      }
      const lost = [...pending.values()];
      pending.clear();
      for (const done of lost) done(undefined);
    };
    worker.on('error', died);
    worker.on('exit', died);
    return me;
  }

  private flush(): void {
    this.flushing = undefined;
    const batch = this.outbox;
    this.outbox = [];
    if (!batch.length) return;
    const c = (this.current ??= this.start());
    let total = 0;
    for (const { job } of batch) total += job.body.length + (job.primaryBody?.length ?? 0);
    const bytes = new Uint8Array(total);
    let at = 0;
    const jobs: ShadowBatch['jobs'] = [];
    for (const { id, job, done } of batch) {
      const { body, primaryBody, ...meta } = job;
      bytes.set(body, at);
      at += body.length;
      if (primaryBody) {
        bytes.set(primaryBody, at);
        at += primaryBody.length;
      }
      jobs.push({ ...meta, id, bodyBytes: body.length, primaryBytes: primaryBody ? primaryBody.length : -1 });
      c.pending.set(id, done);
    }
    const message: ShadowBatch = { jobs, bytes: bytes.buffer };
    try {
      c.worker.postMessage(message, [bytes.buffer]);
    } catch {
      // A thread that cannot take the message: its copies are lost, as in a crash.
      for (const { id, done } of batch) {
        c.pending.delete(id);
        done(undefined);
      }
    }
  }
}
