/**
 * Forwarding one HTTP request to an upstream and streaming the answer back — what the replica router
 * (runtime/autoscale.ts) and the service front (front.ts) both do.
 *
 * - The body limit is the forwarder's own: a `Content-Length` over `maxBodyBytes` is answered 413 before anything
 *   is forwarded, a chunked body as soon as its count passes the limit (the upstream exchange is then aborted).
 * - A client that goes away (closes mid-body, or before the answer is complete) aborts the upstream exchange, so
 *   abandoned requests never hold upstream sockets or replica capacity.
 * - An upstream that answers (e.g. 413 early, while the body is still being sent) and then closes has its answer
 *   passed on as it sent it; only an upstream that could not be reached at all is `onUnreachable`.
 */
import * as http from 'node:http';
import { dropBody, sendPayloadTooLarge } from './http-limits';

export interface ForwardOptions {
  target: { hostname: string; port: number | string };
  agent: http.Agent;
  /** Headers to send (default: the request's own). */
  headers?: http.OutgoingHttpHeaders;
  /** Bodies larger than this are answered 413 `PayloadTooLarge` here, never forwarded whole (default: no limit). */
  maxBodyBytes?: number;
  /** Called exactly once, when the exchange is over (answered, failed or the client went away). */
  onDone: () => void;
  /** Answer the client when the upstream cannot be reached (only called before any byte was sent). */
  onUnreachable: (res: http.ServerResponse, error: Error) => void;
  /** Optional: sees the upstream's answer as it is passed on (e.g. to read a copy of its body); must not consume it. */
  onResponse?: (up: http.IncomingMessage) => void;
}

/** Connection-level headers of the upstream's answer: they describe the upstream connection, not the client's. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection'];

export function forwardRequest(req: http.IncomingMessage, res: http.ServerResponse, opts: ForwardOptions): void {
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    opts.onDone();
  };
  const limit = opts.maxBodyBytes ?? Number.POSITIVE_INFINITY;
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  if (declared !== undefined && declared > limit) {
    finish();
    sendPayloadTooLarge(req, res, limit, declared);
    return;
  }

  let sending = true;
  /** Nothing more goes upstream; whatever the client still sends is read and dropped (bounded: `dropBody`). */
  const stopSending = () => {
    if (!sending) return;
    sending = false;
    dropBody(req);
  };
  /** Set once the client got (or is getting) an answer that is not the upstream's. */
  let answeredHere = false;
  let response: http.IncomingMessage | undefined;
  const upstream = http.request(
    { host: opts.target.hostname, port: opts.target.port, method: req.method, path: req.url, headers: opts.headers ?? req.headers, agent: opts.agent },
    (up) => {
      response = up;
      if (answeredHere || res.destroyed) {
        up.destroy();
        return;
      }
      const headers: http.OutgoingHttpHeaders = { ...up.headers };
      for (const h of HOP_BY_HOP) delete headers[h];
      // An upstream that answers mid-body and closes (e.g. 408) ends this client's request too: its connection is
      // closed after the answer, rather than left open for the rest of a body nobody reads.
      if (/\bclose\b/i.test(String(up.headers.connection ?? '')) && !req.complete) headers.connection = 'close';
      res.writeHead(up.statusCode ?? 502, headers);
      opts.onResponse?.(up);
      up.pipe(res);
      up.on('end', () => {
        finish();
        // Answered before the whole body was sent (an early 413...): the upstream exchange is over (node:http stops
        // draining it), so it is closed and the rest of the body dropped here.
        if (sending && !req.complete) {
          stopSending();
          upstream.destroy();
        }
      });
      // The upstream died mid-answer: the client must see a cut answer, not a short one that looks complete.
      up.on('error', () => {
        finish();
        res.destroy();
      });
    },
  );
  upstream.on('error', (e) => {
    stopSending();
    // It answered, then its side of the exchange broke (it closed while the body was still being sent): what it
    // answered is passed on as received.
    if (response || answeredHere) return;
    finish();
    if (res.destroyed) return;
    if (!res.headersSent) opts.onUnreachable(res, e);
    else res.destroy();
  });

  // The client went away: abort the upstream exchange.
  res.on('close', () => {
    finish();
    if (!res.writableFinished) {
      upstream.destroy();
      response?.destroy();
    }
  });
  req.on('close', () => {
    if (!req.complete) upstream.destroy();
  });
  req.on('error', () => upstream.destroy());

  // The body, counted while it is forwarded (backpressure: the client is paused while the upstream is busy).
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    if (!sending) return;
    size += chunk.length;
    if (size > limit) {
      sending = false;
      answeredHere = true;
      upstream.destroy();
      finish();
      sendPayloadTooLarge(req, res, limit);
      return;
    }
    if (!upstream.write(chunk)) req.pause();
  });
  upstream.on('drain', () => {
    if (sending) req.resume();
  });
  req.on('end', () => {
    if (sending) upstream.end();
  });
}
