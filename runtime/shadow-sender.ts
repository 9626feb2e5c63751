/**
 * How a service front's shadow copies travel and are judged: the copies of one batch (or a copy alone) go to the
 * shadow slot over HTTP, and each copy's answer is compared with the serving version's answer it carries. The front
 * (front.ts) runs this either on its own event loop or on a thread of its own at idle CPU priority (shadow-thread.ts),
 * with the same code: what the front keeps is only what decides and counts (which request is copied, the bounds,
 * the batches' timing, the counters).
 */
import * as http from 'node:http';
import { BATCHABLE_PATH, decodeMirrorResponse, encodeMirrorRequest, MAX_BATCH_INDEX_BYTES, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE } from './mirror-batch';
import { answersAgree } from './traffic-counters';

/** Answers larger than this are not compared (the copy counts as mirrored, not compared). */
export const MAX_COMPARE_BYTES = 1024 * 1024;
/** Connections the front opens to the shadow slot for copies at most; more copies wait for one (bounded above). */
export const MAX_SHADOW_SOCKETS = 8;
/** Answer bytes a batch may bring back (beyond, the replica leaves answers out: those copies are not compared). */
const MIRROR_BATCH_ANSWER_BYTES = 4 * 1024 * 1024;

/** Where copies go: the shadow slot's router, with the slot's key (absent: the copy carries the caller's token). */
export interface ShadowTarget {
  hostname: string;
  port: number;
  /** The `Host` header (`hostname:port`). */
  host: string;
  key?: string;
}

/** An answer: status (0 = none, the connection failed) and the body when it is within MAX_COMPARE_BYTES. */
export interface Answer {
  status: number;
  body?: Buffer;
}

/** One copy: the client's request, and the serving version's answer to compare the shadow's with. */
export interface WireCopy {
  path: string;
  contentType: string;
  body: Buffer;
  /** Token auth: the caller's (verified) `Authorization`, which the copy carries as the request did; else none. */
  auth?: string;
  primary: Answer;
  tolerance: number;
}

/** What became of one copy: the shadow's status and latency, and the verdict. */
export interface CopyResult {
  status: number;
  ms: number;
  /** The shadow failed (no answer, or 5xx). */
  error: boolean;
  /** Both answers were compared (both 2xx and within bounds, or one answered and the other refused). */
  compared: boolean;
  disagreed: boolean;
  /** The copy was lost by the front itself (its shadow thread died or did not start): counted as skipped, not against the new version. */
  lost?: boolean;
  /** Not sent: its batch was refused as a batch (an older replica, or over its body limit), and this sender sends no copy alone. */
  refused?: boolean;
}

/** What became of a copy the front itself lost (its shadow thread died, or the front closed): skipped, never a verdict. */
export const LOST_COPY: Readonly<CopyResult> = Object.freeze({ status: 0, ms: 0, error: false, compared: false, disagreed: false, lost: true });

/**
 * The verdict on one copy. Both 2xx: compared (byte-equal, else within `tolerance` for numbers, exact otherwise). One
 * version answered and the other refused the same request (e.g. 200 against 400 or 401): they disagree. A shadow that
 * sheds load (429, 408, 5xx) is no disagreement; 5xx or no answer counts as an error.
 */
export function judge(primary: Answer, shadow: Answer & { ms: number }, tolerance: number): CopyResult {
  const result: CopyResult = { status: shadow.status, ms: shadow.ms, error: shadow.status === 0 || shadow.status >= 500, compared: false, disagreed: false };
  const ok = (x: Answer) => x.status >= 200 && x.status < 300;
  const a = primary.body;
  const b = shadow.body && shadow.body.length <= MAX_COMPARE_BYTES ? shadow.body : undefined;
  if (ok(primary) && ok(shadow)) {
    if (a !== undefined && b !== undefined) {
      result.compared = true;
      result.disagreed = !a.equals(b) && !answersAgree(a.toString('utf8'), b.toString('utf8'), tolerance);
    }
  } else if (primary.status > 0 && shadow.status > 0 && shadow.status < 500 && shadow.status !== 429 && shadow.status !== 408 && ok(primary) !== ok(shadow)) {
    result.compared = true;
    result.disagreed = true;
  }
  return result;
}

/** What becomes of one batch (ShadowSender.send). */
export interface ShadowHandlers {
  sent(takesBatches: boolean | undefined): void;
  done(results: CopyResult[]): void;
}

/**
 * Sends copies to shadow slots and judges their answers: a batch as one `POST /.mdf/mirror` (mirror-batch.ts), a copy
 * alone as the plain request it was. A slot that does not know the batch path (404/405, or an answer that is not a
 * batch: a replica of an older runtime) gets that batch's copies and all later ones one by one; a batch of one goes
 * as a plain copy once the slot is known to take batches. All copies go through one agent of its own (at most
 * MAX_SHADOW_SOCKETS connections), never the slots' agents.
 */
export class ShadowSender {
  private agent?: http.Agent;
  /** Per slot (`host`): whether it takes batches (unknown until it answers one). */
  private readonly takesBatches = new Map<string, boolean>();

  /**
   * `defer`: where judging runs (the front's budgeted deferred work on its loop; at once on the shadow thread).
   * `framesOnly` (the shadow thread, which may read an answer late at idle priority): every batch goes as a frame,
   * a batch of one too, so that each copy's latency is the replica's own scoring time, never measured here; a batch
   * the slot refuses as a batch comes back `refused` (the front sends those copies one by one from its loop, through
   * its one agent for single copies).
   */
  constructor(
    private readonly defer: (fn: () => void) => void = (fn) => fn(),
    private readonly framesOnly = false,
  ) {}

  /**
   * Sends `copies` (one batch) to `target`. `to.sent` is called once the batch's request is over (or, for copies sent
   * one by one, once all are answered), with whether the slot takes batches (`false`: an older replica; later copies
   * may go one by one at once); `to.done` gets one result per copy, in order, once all are settled.
   */
  send(target: ShadowTarget, copies: WireCopy[], to: ShadowHandlers, how: { alone?: boolean; takesBatches?: boolean } = {}): void {
    const results: CopyResult[] = new Array<CopyResult>(copies.length);
    let left = copies.length;
    let over = false;
    const sent = () => {
      if (over) return;
      over = true;
      to.sent(this.takesBatches.get(target.host));
    };
    const settle = (i: number, answer: Answer & { ms: number; refused?: boolean }) => {
      this.defer(() => {
        results[i] = answer.refused ? { status: 0, ms: 0, error: false, compared: false, disagreed: false, refused: true } : judge(copies[i].primary, answer, copies[i].tolerance);
        if (--left > 0) return;
        sent();
        to.done(results);
      });
    };
    // What the caller learned (from another sender) counts until this one learns for itself.
    if (how.takesBatches !== undefined && !this.takesBatches.has(target.host)) this.takesBatches.set(target.host, how.takesBatches);
    const known = this.takesBatches.get(target.host);
    // A batch of one goes as the plain copy it is once the slot is known to take batches (no frame to build or read).
    const framed = !how.alone && known !== false && (copies.length > 1 || known === undefined || this.framesOnly) && copies.every((c) => BATCHABLE_PATH.test(c.path));
    if (!framed) copies.forEach((c, i) => this.single(target, c, (a) => settle(i, a)));
    else this.batch(target, copies, settle, sent);
  }

  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  /** A POST of copies to the shadow slot, with its key, through the shadow agent (60 s without progress: destroyed). */
  private post(target: ShadowTarget, path: string, contentType: string, length: number, auth: string | undefined, onResponse: (up: http.IncomingMessage) => void): http.ClientRequest {
    // Key auth: the slot's own key; token auth: the caller's token (a batch: its latest copy's, as verified by the front).
    const authorization = target.key ? `Bearer ${target.key}` : auth;
    const headers: http.OutgoingHttpHeaders = {
      'content-type': contentType,
      'content-length': length,
      host: target.host,
      ...(authorization ? { authorization } : {}),
    };
    this.agent ??= new http.Agent({ keepAlive: true, maxSockets: MAX_SHADOW_SOCKETS });
    const out = http.request({ host: target.hostname, port: target.port, method: 'POST', path, headers, agent: this.agent, timeout: 60_000 }, onResponse);
    out.on('timeout', () => out.destroy(new Error('shadow timeout')));
    return out;
  }

  /** A copy as its own request to the slot (latency: from a free connection to the end of the shadow's answer). */
  private single(target: ShadowTarget, copy: WireCopy, done: (a: Answer & { ms: number }) => void): void {
    // The shadow's latency starts when its connection is free (not while queued behind the agent's cap).
    let t0 = process.hrtime.bigint();
    const since = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const answer: Buffer[] = [];
    let bytes = 0;
    let over = false;
    const finish = (a: Answer) => {
      if (over) return;
      over = true;
      done({ ...a, ms: since() });
    };
    let out: http.ClientRequest;
    try {
      out = this.post(target, copy.path, copy.contentType, copy.body.length, copy.auth, (up) => {
        up.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes <= MAX_COMPARE_BYTES) answer.push(c);
        });
        up.on('end', () => finish({ status: up.statusCode ?? 0, ...(bytes <= MAX_COMPARE_BYTES ? { body: answer.length === 1 ? answer[0] : Buffer.concat(answer) } : {}) }));
        up.on('error', () => finish({ status: 0 }));
      });
    } catch {
      // A copy the HTTP client refuses (e.g. a header it will not send) is a failed copy, never the client's problem.
      return done({ status: 0, ms: 0 });
    }
    out.once('socket', () => {
      t0 = process.hrtime.bigint();
    });
    out.on('error', () => finish({ status: 0 }));
    out.end(copy.body);
  }

  /**
   * Copies in one `POST /.mdf/mirror`: one round trip for all of them. Each copy's latency is the shadow replica's own
   * scoring time (a copy has no round trip of its own). A batch that fails (no answer, 5xx, a bad frame) fails each of
   * its copies; one refused as a frame (400) counts its copies as errors (status 0), not disagreements.
   */
  private batch(target: ShadowTarget, copies: WireCopy[], settle: (i: number, a: Answer & { ms: number; refused?: boolean }) => void, sent: () => void): void {
    let over = false;
    const fail = (status: number) => {
      if (over) return;
      over = true;
      copies.forEach((_, i) => settle(i, { status, ms: 0 }));
    };
    const oneByOne = () => {
      over = true;
      sent();
      if (this.framesOnly) copies.forEach((_, i) => settle(i, { status: 0, ms: 0, refused: true }));
      else copies.forEach((c, i) => this.single(target, c, (a) => settle(i, a)));
    };
    const frame = encodeMirrorRequest(copies, MIRROR_BATCH_ANSWER_BYTES);
    const limit = 4 + MAX_BATCH_INDEX_BYTES + MIRROR_BATCH_ANSWER_BYTES;
    let out: http.ClientRequest;
    try {
      out = this.post(target, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE, frame.length, [...copies].reverse().find((c) => c.auth)?.auth, (up) => {
        const status = up.statusCode ?? 0;
        if (status !== 200 || up.headers['content-type'] !== MIRROR_BATCH_TYPE) {
          up.resume();
          // 413: the replica's body limit is under this batch's size: these copies go one by one (each fits, as its
          // request did) and later batches are tried again (a smaller one may fit).
          if (over) return;
          if (status === 404 || status === 405 || status === 413 || (status >= 200 && status < 300)) {
            if (status !== 413) this.takesBatches.set(target.host, false);
            oneByOne();
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
          this.takesBatches.set(target.host, true);
          over = true;
          items.forEach((a, i) => settle(i, { status: a.s, body: a.body, ms: a.ms }));
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
