/**
 * Shadow copies on their own thread: what happens to a copy once the client has its answer. The service front
 * (front.ts) decides which requests are copied, keeps their bodies and the serving slot's answers, and hands each
 * copy over to a `worker_threads` thread (shadow-thread.ts) running a `ShadowSender`: it sends the copies to the
 * shadow slot (in batches, mirror-batch.ts, or one by one), reads the shadow's answers, compares them with the
 * serving ones and sends the front the counts. None of that runs on the front's event loop, so a batch written, its
 * answers read and compared never stall a client's request (docs/benchmarks.md, "Shadow work on its own thread").
 */
import * as http from 'node:http';
import { BATCHABLE_PATH, decodeMirrorResponse, encodeMirrorRequest, MAX_BATCH_INDEX_BYTES, MAX_BATCH_ITEMS, MAX_BATCH_TYPE_CHARS, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE } from './mirror-batch';
import { answersAgree, latencyBucket } from './traffic-counters';

/** Requests of shadow copies (batches, mirror-batch.ts, or a copy alone) out to one shadow slot at once at most; more copies wait for one. */
export const MIRROR_BATCHES_IN_FLIGHT = 2;
/**
 * Shadow copies in flight at most (sent and waiting for a batch): two full batches out and one gathering. Beyond, a
 * copy is skipped (mirroring never queues behind the client): only when the shadow answers slower than copies come.
 */
export const MAX_SHADOW_INFLIGHT = (MIRROR_BATCHES_IN_FLIGHT + 1) * MAX_BATCH_ITEMS;
/** Answers larger than this are not compared (the copy counts as mirrored, not compared). */
export const MAX_COMPARE_BYTES = 1024 * 1024;
/** Connections the front opens to the shadow slot for copies at most; more copies wait for one (bounded above). */
export const MAX_SHADOW_SOCKETS = 8;
/** Bodies of one batch at most; a larger body is copied on its own. */
const MIRROR_BATCH_BODY_BYTES = 256 * 1024;
/** Answer bytes a batch may bring back (beyond, the replica leaves answers out: those copies are not compared). */
const MIRROR_BATCH_ANSWER_BYTES = 4 * 1024 * 1024;

/** A copy handed over by the front: where it goes, what it carries, and the serving slot's answer to compare with. */
export interface ShadowCopyMessage {
  /** The shadow slot's name, URL and key (key auth: the copy carries the slot's own key). */
  slot: string;
  url: string;
  key?: string;
  /** Token auth: the caller's (verified) `Authorization`, which the copy carries as the request did; else none. */
  auth?: string;
  path: string;
  contentType: string;
  /** Numbers within this relative tolerance agree (`answersAgree`). */
  tolerance: number;
  body: Uint8Array;
  /** The serving slot's status (0: no answer) and body (absent: over MAX_COMPARE_BYTES or not kept). */
  primary: { status: number; body?: Uint8Array };
  /** Bytes the front holds for this copy (its `heldBytes` bound), given back with the copy's counts. */
  held: number;
}

/** What the copies settled since the last report changed, per shadow slot (added to the front's `ShadowTraffic`). */
export interface ShadowDelta {
  /** Copies settled (out of the front's in-flight count) and the bytes they held. */
  settled: number;
  held: number;
  compared: number;
  disagreed: number;
  errors: number;
  /** Shadow latency histogram counts to add (bucket → count). */
  latency: Record<string, number>;
}
export type ShadowReport = Record<string, ShadowDelta>;

/** One copy on its way: its request and what to do with the shadow's answer (`ms`: the shadow's latency). */
interface ShadowCopy {
  path: string;
  contentType: string;
  body: Buffer;
  auth?: string;
  done: (answer: { status: number; body?: Buffer; ms: number }) => void;
}

interface SlotTarget {
  name: string;
  target: URL;
  key?: string;
  batcher: MirrorBatcher;
}

/**
 * The copies for one shadow slot, sent in batches: with `gatherMs` 0, a copy leaves at once (on the next event-loop
 * turn, with the others of its turn); with `gatherMs` > 0, copies wait for a full batch (MAX_BATCH_ITEMS) or until the
 * oldest has waited `gatherMs`, whatever the traffic (a few batches a second cost the shadow replica a fraction of the
 * CPU of copies sent one by one). At most MIRROR_BATCHES_IN_FLIGHT requests are out; more copies wait for one to come
 * back (at most MAX_BATCH_ITEMS and MIRROR_BATCH_BODY_BYTES per batch).
 */
class MirrorBatcher {
  private pending: ShadowCopy[] = [];
  /** When each pending copy was added (performance.now()), in the same order. */
  private since: number[] = [];
  private head = 0;
  private out = 0;
  private scheduled?: NodeJS.Immediate;
  private timer?: NodeJS.Timeout;
  /**
   * Whether the slot takes batches: unknown until it answers one; `true` → a batch of one goes as a plain copy
   * (cheaper); `false` (404/405 or an answer that is not a batch: an older replica) → every copy goes one by one.
   */
  takesBatches?: boolean;

  constructor(
    private readonly send: (copies: ShadowCopy[], sent: () => void) => void,
    private readonly gatherMs: number,
  ) {}

  add(copy: ShadowCopy): void {
    this.pending.push(copy);
    this.since.push(performance.now());
    this.schedule();
  }

  private schedule(): void {
    if (this.out >= MIRROR_BATCHES_IN_FLIGHT || this.head >= this.pending.length) return;
    const full = this.pending.length - this.head >= MAX_BATCH_ITEMS;
    const wait = this.since[this.head] + this.gatherMs - performance.now();
    if (full || wait <= 0) this.scheduled ??= setImmediate(() => this.flush());
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, wait);
    }
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    while (this.out < MIRROR_BATCHES_IN_FLIGHT && this.head < this.pending.length) {
      const copies: ShadowCopy[] = [];
      let bytes = 0;
      while (this.head < this.pending.length && copies.length < MAX_BATCH_ITEMS && (copies.length === 0 || bytes + this.pending[this.head].body.length <= MIRROR_BATCH_BODY_BYTES)) {
        bytes += this.pending[this.head].body.length;
        copies.push(this.pending[this.head++]);
      }
      if (this.head >= this.pending.length) {
        this.pending = [];
        this.since = [];
        this.head = 0;
      }
      this.out++;
      let back = false;
      this.send(copies, () => {
        if (back) return;
        back = true;
        this.out--;
        this.schedule();
      });
    }
  }
}

/** Whether an answer's status is a success. */
const ok = (status: number) => status >= 200 && status < 300;

/**
 * Sends copies to their shadow slots and compares the answers (one per thread: shadow-thread.ts). `report` gets the
 * counts of the copies settled, at most once per event-loop turn.
 */
export class ShadowSender {
  private readonly slots = new Map<string, SlotTarget>();
  /** Copies never take the slot's sockets, and the shadow sees at most MAX_SHADOW_SOCKETS connections. */
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: MAX_SHADOW_SOCKETS });
  private delta: ShadowReport = {};
  private reporting?: NodeJS.Immediate;

  constructor(
    private readonly gatherMs: number,
    private readonly report: (delta: ShadowReport) => void,
  ) {}

  /** Sends one copy: in the slot's next batch when it can travel in one, else on its own; settles it when answered. */
  add(m: ShadowCopyMessage): void {
    const slot = this.slotOf(m);
    const primary = m.primary;
    const primaryBody = primary.body ? Buffer.from(primary.body.buffer, primary.body.byteOffset, primary.body.byteLength) : undefined;
    let settled = false;
    const copy: ShadowCopy = {
      path: m.path,
      contentType: m.contentType,
      body: Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength),
      ...(m.auth ? { auth: m.auth } : {}),
      done: (a) => {
        if (settled) return;
        settled = true;
        const d = this.deltaOf(m.slot);
        d.settled++;
        d.held += m.held;
        const b = String(latencyBucket(a.ms));
        d.latency[b] = (d.latency[b] ?? 0) + 1;
        if (a.status === 0 || a.status >= 500) d.errors++;
        const shadowBody = a.body && a.body.length <= MAX_COMPARE_BYTES ? a.body : undefined;
        if (ok(primary.status) && ok(a.status) && primaryBody !== undefined && shadowBody !== undefined) {
          d.compared++;
          if (!primaryBody.equals(shadowBody) && !answersAgree(primaryBody.toString('utf8'), shadowBody.toString('utf8'), m.tolerance)) d.disagreed++;
        } else if (primary.status > 0 && a.status > 0 && a.status < 500 && a.status !== 429 && a.status !== 408 && ok(primary.status) !== ok(a.status)) {
          // One version answered and the other refused the same request (e.g. 200 against 400 or 401): they disagree.
          // (A shadow that sheds load, 429/408/5xx, is not a disagreement; 5xx counts as an error above.)
          d.compared++;
          d.disagreed++;
        }
        this.reporting ??= setImmediate(() => this.flushReport());
      },
    };
    const batchable = slot.batcher.takesBatches !== false && BATCHABLE_PATH.test(copy.path) && copy.contentType.length <= MAX_BATCH_TYPE_CHARS && copy.body.length < MIRROR_BATCH_BODY_BYTES;
    if (batchable) slot.batcher.add(copy);
    else this.sendSingle(slot, copy);
  }

  close(): void {
    this.agent.destroy();
  }

  /** The slot's state, its URL and key as the latest copy gives them (a slot added again may have new ones). */
  private slotOf(m: ShadowCopyMessage): SlotTarget {
    let s = this.slots.get(m.slot);
    if (!s) {
      const created: SlotTarget = { name: m.slot, target: new URL(m.url), key: m.key, batcher: undefined as unknown as MirrorBatcher };
      created.batcher = new MirrorBatcher((copies, sent) => this.sendBatch(created, copies, sent), this.gatherMs);
      this.slots.set(m.slot, (s = created));
    } else if (s.target.href !== new URL(m.url).href || s.key !== m.key) {
      s.target = new URL(m.url);
      s.key = m.key;
    }
    return s;
  }

  private deltaOf(slot: string): ShadowDelta {
    return (this.delta[slot] ??= { settled: 0, held: 0, compared: 0, disagreed: 0, errors: 0, latency: {} });
  }

  private flushReport(): void {
    this.reporting = undefined;
    const delta = this.delta;
    this.delta = {};
    this.report(delta);
  }

  /** A POST of copies to the shadow slot, with its key, through the mirror agent (60 s without progress: destroyed). */
  private post(slot: SlotTarget, path: string, contentType: string, length: number, auth: string | undefined, onResponse: (up: http.IncomingMessage) => void): http.ClientRequest {
    // Key auth: the slot's own key; token auth: the caller's token (a batch: its latest copy's, as verified by the front).
    const authorization = slot.key ? `Bearer ${slot.key}` : auth;
    const headers: http.OutgoingHttpHeaders = {
      'content-type': contentType,
      'content-length': length,
      host: slot.target.host,
      ...(authorization ? { authorization } : {}),
    };
    const out = http.request({ host: slot.target.hostname, port: slot.target.port, method: 'POST', path, headers, agent: this.agent, timeout: 60_000 }, onResponse);
    out.on('timeout', () => out.destroy(new Error('shadow timeout')));
    return out;
  }

  /** A copy as its own request to the slot (latency: from a free connection to the end of the shadow's answer). */
  private sendSingle(slot: SlotTarget, copy: ShadowCopy): void {
    // The shadow's latency starts when its connection is free (not while queued behind the mirror agent's cap).
    let t0 = process.hrtime.bigint();
    const since = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const answer: Buffer[] = [];
    let bytes = 0;
    let out: http.ClientRequest;
    try {
      out = this.post(slot, copy.path, copy.contentType, copy.body.length, copy.auth, (up) => {
        up.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes <= MAX_COMPARE_BYTES) answer.push(c);
        });
        up.on('end', () => copy.done({ status: up.statusCode ?? 0, ...(bytes <= MAX_COMPARE_BYTES ? { body: answer.length === 1 ? answer[0] : Buffer.concat(answer) } : {}), ms: since() }));
        up.on('error', () => copy.done({ status: 0, ms: since() }));
      });
    } catch {
      // A copy the HTTP client refuses (e.g. a header it will not send) is a failed copy, never the client's problem.
      return copy.done({ status: 0, ms: 0 });
    }
    out.once('socket', () => {
      t0 = process.hrtime.bigint();
    });
    out.on('error', () => copy.done({ status: 0, ms: since() }));
    out.end(copy.body);
  }

  /**
   * Copies in one `POST /.mdf/mirror` (mirror-batch.ts): one round trip for all of them (a batch of one goes as the
   * plain copy it is). Each copy's latency is the shadow replica's own scoring time (a copy has no round trip of its
   * own). A slot that does not know the batch path (404/405, or an answer that is not a batch: a replica of an older
   * runtime) gets these copies and all later ones one by one; a batch that fails (no answer, 5xx, a bad frame) fails
   * each of its copies.
   */
  private sendBatch(slot: SlotTarget, copies: ShadowCopy[], sent: () => void): void {
    const batcher = slot.batcher;
    if (batcher.takesBatches === false) {
      // Gathered before the slot was found not to take batches: one by one, as all later copies.
      sent();
      for (const c of copies) this.sendSingle(slot, c);
      return;
    }
    if (copies.length === 1 && batcher.takesBatches) {
      // A batch of one is a plain copy (once the slot is known to take batches): no frame to build or read.
      const [copy] = copies;
      return this.sendSingle(slot, { ...copy, done: (a) => (sent(), copy.done(a)) });
    }
    let over = false;
    const fail = (status: number) => {
      sent();
      if (over) return;
      over = true;
      for (const c of copies) c.done({ status, ms: 0 });
    };
    const frame = encodeMirrorRequest(copies, MIRROR_BATCH_ANSWER_BYTES);
    const limit = 4 + MAX_BATCH_INDEX_BYTES + MIRROR_BATCH_ANSWER_BYTES;
    let out: http.ClientRequest;
    try {
      out = this.post(slot, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE, frame.length, [...copies].reverse().find((c) => c.auth)?.auth, (up) => {
        const status = up.statusCode ?? 0;
        if (status !== 200 || up.headers['content-type'] !== MIRROR_BATCH_TYPE) {
          up.resume();
          // 413: the replica's body limit is under this batch's size: these copies go one by one (each fits, as its
          // request did) and later batches are tried again (a smaller one may fit).
          if (status === 404 || status === 405 || status === 413 || (status >= 200 && status < 300)) {
            if (status !== 413) batcher.takesBatches = false;
            sent();
            over = true;
            for (const c of copies) this.sendSingle(slot, c);
          } else fail(status === 400 ? 0 : status); // 400: the frame itself was refused (BadMirrorBatch), not a copy
          return;
        }
        const answer: Buffer[] = [];
        let bytes = 0;
        up.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes <= limit) answer.push(c);
          else up.destroy();
        });
        up.on('end', () => {
          if (over) return;
          let items;
          try {
            items = decodeMirrorResponse(answer.length === 1 ? answer[0] : Buffer.concat(answer, bytes), copies.length);
          } catch {
            return fail(0);
          }
          batcher.takesBatches = true;
          sent();
          over = true;
          items.forEach((a, i) => copies[i].done({ status: a.s, ...(a.body ? { body: a.body } : {}), ms: a.ms }));
        });
        up.on('error', () => fail(0));
        up.on('close', () => fail(0));
      });
    } catch {
      return fail(0);
    }
    out.on('error', () => fail(0));
    out.end(frame);
  }
}
