/**
 * The bounds every HTTP server of the project puts on slow and abandoned connections: the scoring runtime
 * (server.ts), the replica router (autoscale.ts), the service front (front.ts) and the
 * local Functions host (local/host.ts) all listen through `createBoundedServer`.
 *
 * - headers not received within `headersTimeoutMs` (slowloris) → 408 `RequestTimeout`, connection closed;
 * - a request (headers and body) not received within `requestTimeoutMs` → 408 `RequestTimeout`, closed;
 * - a connection that never sends a request is closed after `headersTimeoutMs` of silence, a kept-alive one after
 *   `keepAliveTimeoutMs`;
 * - a client that reads nothing of an answer under way for `headersTimeoutMs` (its bytes wait in the socket) is
 *   disconnected: a reader that never reads does not hold a connection and the answer's memory forever;
 * - more than `maxConnections` open connections → the newest gets 503 `TooManyConnections` and is closed;
 * - malformed requests → 400 `BadRequest`, oversized headers → 431 `HeadersTooLarge`.
 * Errors are the project's JSON shape `{"error": {"code", "message"}}`.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import type { TlsMaterial } from './tls';
import type { Readable } from 'stream';
import { RuntimeError } from './errors';

export interface HttpLimits {
  /** Longest time to receive a request's headers (and the silence allowed before a first request). */
  headersTimeoutMs: number;
  /** Longest time to receive a whole request, headers and body (not the time to answer it). */
  requestTimeoutMs: number;
  /** How long an idle kept-alive connection stays open. */
  keepAliveTimeoutMs: number;
  /** Open connections at most. */
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 120_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1_000,
};

/** `given` over `defaults`, checked: positive integers; a headers timeout over the request timeout is cut to it. */
export function resolveHttpLimits(given: Partial<HttpLimits> = {}, defaults: HttpLimits = DEFAULT_HTTP_LIMITS): HttpLimits {
  const out = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof HttpLimits)[]) {
    const v = given[key];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1) throw new RuntimeError('InvalidOptions', `HTTP limit ${key} must be a positive integer; got ${v}`, 400);
    out[key] = v;
  }
  out.headersTimeoutMs = Math.min(out.headersTimeoutMs, out.requestTimeoutMs);
  return out;
}

/** A complete HTTP/1.1 error response written straight to a socket (no `ServerResponse` exists for it). */
function rawError(status: number, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** An HTTP or HTTPS server of the project (both have the same bounds). */
export type BoundedServer = http.Server | https.Server;

/**
 * An `http.Server` with `limits` applied (see the file comment); with `tls` (a checked certificate and key:
 * runtime/tls.ts) an `https.Server` with the same bounds, whose TLS handshake must also finish within
 * `headersTimeoutMs`. A client speaking plain HTTP (or a failed handshake) to a TLS server is refused: its
 * connection is closed without an answer (nothing is served in clear text on a TLS port).
 */
export function createBoundedServer(limits: HttpLimits, handler: http.RequestListener, tls?: TlsMaterial): BoundedServer {
  const l = resolveHttpLimits(limits);
  // How often node:http looks for expired requests (its default, 30 s, would stretch short timeouts).
  const checkEveryMs = Math.max(50, Math.min(1_000, Math.floor(l.headersTimeoutMs / 2)));
  const options: http.ServerOptions = {
    headersTimeout: l.headersTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    connectionsCheckingInterval: checkEveryMs,
  };
  const server: BoundedServer = tls
    ? https.createServer({ ...options, cert: tls.cert, key: tls.key, handshakeTimeout: l.headersTimeoutMs, minVersion: 'TLSv1.2' }, handler)
    : http.createServer(options, handler);
  // A failed handshake (plain HTTP on the TLS port, a client that refuses the certificate): the socket is closed.
  if (tls) server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  server.keepAliveTimeout = l.keepAliveTimeoutMs;
  // The latest request of each connection, so the bounds below can tell a silent connection from one being answered.
  const current = new WeakMap<Socket, { req: http.IncomingMessage; res: http.ServerResponse }>();
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => current.set(req.socket, { req, res }));
  const answering = (socket: Socket) => {
    const cur = current.get(socket);
    return !!cur && !cur.res.writableFinished && !cur.res.destroyed;
  };

  // Socket silence: a connection that sent nothing yet (no parser timer covers it) or an idle kept-alive one is closed.
  // A request being answered (a long scoring run) is not a silent connection: it is left alone.
  // Two checking periods later than the headers timeout: a request whose headers never end is answered 408 by that
  // check (clientError below) before this silence timer, which would close it without a word, can fire.
  server.timeout = l.headersTimeoutMs + 2 * checkEveryMs;
  server.on('timeout', (socket: Socket) => {
    // node:net emits 'timeout' only after a whole period in which nothing moved (a write making progress postpones
    // it): an answer under way whose bytes still wait in the socket is a client that stopped reading (slow read).
    const cur = current.get(socket);
    const stalled = !!cur && cur.res.headersSent && socket.writableLength > 0;
    if (!answering(socket) || stalled) socket.destroy();
  });

  let open = 0;
  server.on('connection', (socket: Socket) => {
    if (open >= l.maxConnections) {
      socket.on('error', () => undefined);
      socket.end(rawError(503, 'TooManyConnections', `The server holds its limit of ${l.maxConnections} open connections; retry shortly.`));
      socket.destroySoon();
      return;
    }
    open++;
    socket.once('close', () => open--);
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const cur = current.get(socket);
    /** A request whose headers arrived and whose body is still coming. */
    const inBody = !!cur && !cur.req.complete;
    let reply: [number, string, string] | undefined;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      if (inBody && !cur.res.headersSent) reply = [408, 'RequestTimeout', `The request body was not received within ${l.requestTimeoutMs} ms; send it at once, or raise the request timeout.`];
      else if (!inBody && !answering(socket)) reply = [408, 'RequestTimeout', `The request headers were not received within ${l.headersTimeoutMs} ms.`];
      // Else the request was answered already (e.g. 413 early) and only its unwanted body was late: no second answer.
    } else if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE' && !(cur && cur.res.headersSent && !cur.res.writableFinished)) {
      reply = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'HeadersTooLarge', 'The request headers are too large.'] : [400, 'BadRequest', 'The request is not valid HTTP/1.1.'];
    }
    if (reply && socket.writable) socket.write(rawError(...reply));
    // An answer already under way is let finish (briefly), then the connection is closed.
    if (cur && cur.res.headersSent && !cur.res.writableFinished && !cur.res.destroyed && socket.writable) {
      const close = () => socket.destroy();
      cur.res.once('finish', close);
      setTimeout(close, 5_000).unref();
      return;
    }
    socket.destroy();
  });
  return server;
}

/** Reads and drops the rest of `req`'s body; past `DISCARD_REST_BYTES` the connection is closed. */
export function dropBody(req: http.IncomingMessage): void {
  discardRest(req, DISCARD_REST_BYTES, () => req.socket.destroy());
}

/** Answers 413 `PayloadTooLarge`; the rest of the body is dropped (`dropBody`), never forwarded nor kept. */
export function sendPayloadTooLarge(req: http.IncomingMessage, res: http.ServerResponse, limit: number, declared?: number): void {
  if (!res.headersSent && !res.destroyed) {
    const body = JSON.stringify({
      error: {
        code: 'PayloadTooLarge',
        message: `The request body${declared !== undefined ? ` (${declared} bytes)` : ''} is over the limit of ${limit} bytes.`,
      },
    });
    res.writeHead(413, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
  dropBody(req);
}

/**
 * Most bytes of an unwanted request body (after an early answer) read and dropped before its connection is closed
 * instead. Reading on for a while, rather than closing at once, lets the client see the answer (a socket closed with
 * unread data resets the connection) and keeps a pooled connection usable.
 */
export const DISCARD_REST_BYTES = 4 * 1024 * 1024;

/**
 * After a request is answered without its whole body being read (refused early: too large, malformed, a bad part):
 * reads and drops the rest, so that the connection it came on can carry the next request. In the app that
 * connection is the host's pooled one to the app's HTTP proxy (streaming, kept alive): a body left half-read there
 * blocks whatever request is sent next on it, someone else's. Past `maxBytes` it stops reading and calls `close`
 * (default: destroy the stream, which closes its connection; the answer is out by then). A client that sends the
 * rest slowly is bounded by the front's request timeout.
 */
export function discardRest(source: Readable, maxBytes = DISCARD_REST_BYTES, close: () => void = () => source.destroy()): void {
  if (source.readableEnded || source.destroyed) return;
  let dropped = 0;
  source.on('error', () => undefined);
  source.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > maxBytes) close();
  });
  source.resume();
}
