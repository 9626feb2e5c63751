/**
 * The service front's shadow thread (started by shadow-thread.ts, one per front while it mirrors): sends the copies
 * of mirrored requests to the shadow slot, reads its answers and compares them with the serving slot's, so none of
 * that work runs on the front's event loop. The front posts the copies of one event-loop turn in one message (their
 * bytes in one transferred buffer); the thread posts back, once per turn of its own, one record per copy (its id, the
 * shadow's status, its latency, the verdict) in one transferred Float64Array. The front keeps every counter.
 *
 * Each copy is sent exactly as the front sent it itself before (same headers, one agent of at most
 * MAX_SHADOW_SOCKETS connections to the shadow slot, 60 s timeout, the latency measured from the moment the copy has
 * a connection, answers over MAX_COMPARE_BYTES not compared).
 */
import * as http from 'node:http';
import { parentPort } from 'node:worker_threads';
import { MAX_COMPARE_BYTES, MAX_SHADOW_SOCKETS, SHADOW_TIMEOUT_MS, type ShadowBatch, VERDICT } from './shadow-thread';
import { answersAgree } from './traffic-counters';

const agent = new http.Agent({ keepAlive: true, maxSockets: MAX_SHADOW_SOCKETS });
/** Results of this turn: [id, status, latency ms (-1: none), verdict] per copy. */
let outbox: number[] = [];
let flushing: NodeJS.Immediate | undefined;

function report(id: number, status: number, latencyMs: number, verdict: number): void {
  outbox.push(id, status, latencyMs, verdict);
  flushing ??= setImmediate(() => {
    flushing = undefined;
    const results = Float64Array.from(outbox);
    outbox = [];
    parentPort!.postMessage(results, [results.buffer]);
  });
}

function sendCopy(job: ShadowBatch['jobs'][number], body: Buffer, primary: Buffer | undefined): void {
  let settled = false;
  const settle = (status: number, latencyMs: number, answer: Buffer | undefined) => {
    if (settled) return;
    settled = true;
    const ok = (s: number) => s >= 200 && s < 300;
    let verdict: number = VERDICT.none;
    if (ok(job.primaryStatus) && ok(status) && primary !== undefined && answer !== undefined) {
      verdict = primary.equals(answer) || answersAgree(primary.toString('utf8'), answer.toString('utf8'), job.tolerance) ? VERDICT.agreed : VERDICT.disagreed;
    }
    report(job.id, status, latencyMs, verdict);
  };
  const headers: http.OutgoingHttpHeaders = {
    'content-type': job.contentType,
    'content-length': body.length,
    host: job.host,
    ...(job.authorization ? { authorization: job.authorization } : {}),
  };
  // The shadow's latency starts when its connection is free (not while queued behind the agent's cap).
  let t0 = process.hrtime.bigint();
  const answer: Buffer[] = [];
  let bytes = 0;
  let out: http.ClientRequest;
  try {
    out = http.request({ host: job.hostname, port: job.port, method: 'POST', path: job.path, headers, agent, timeout: SHADOW_TIMEOUT_MS }, (up) => {
      up.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes <= MAX_COMPARE_BYTES) answer.push(c);
      });
      up.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        settle(up.statusCode ?? 0, ms, bytes <= MAX_COMPARE_BYTES ? (answer.length === 1 ? answer[0] : Buffer.concat(answer)) : undefined);
      });
      up.on('error', () => settle(0, -1, undefined));
    });
  } catch {
    // A copy the HTTP client refuses (e.g. a header it will not send) is a failed copy, never the client's problem.
    return settle(0, -1, undefined);
  }
  out.once('socket', () => {
    t0 = process.hrtime.bigint();
  });
  out.on('timeout', () => out.destroy(new Error('shadow timeout')));
  out.on('error', () => settle(0, -1, undefined));
  out.end(body);
}

parentPort!.on('message', (batch: ShadowBatch) => {
  const bytes = Buffer.from(batch.bytes);
  let at = 0;
  const take = (n: number) => {
    const b = bytes.subarray(at, at + n);
    at += n;
    return b;
  };
  for (const job of batch.jobs) {
    const body = take(job.bodyBytes);
    const primary = job.primaryBytes >= 0 ? take(job.primaryBytes) : undefined;
    sendCopy(job, body, primary);
  }
});
