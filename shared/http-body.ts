/**
 * Reading HTTP request bodies with a size bound, the same way in both HTTP modes of `@azure/functions` (a
 * streamed request and a buffered one both expose `request.body` as a web ReadableStream): the declared
 * `Content-Length` is checked first, then the bytes are counted as they arrive and reading stops at the bound —
 * a body is never read whole before it is known to be small enough. Every handler that reads a body uses this.
 */
import { Readable } from 'stream';
import type { ReadableStream } from 'stream/web';
import { tooLarge } from './errors';

/** Bodies of small JSON/YAML requests (job definitions, model updates, key regeneration). */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;
/** A deployment manifest: a JSON/YAML body, or the `manifest` part of a multipart upload. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** The parts of an `HttpRequest` the reader needs (both HTTP modes). */
export interface BodySource {
  headers: { get(name: string): string | null };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: ReadableStream<any> | null;
}

const mb = (n: number) => (n >= 1024 * 1024 ? `${+(n / 1024 / 1024).toFixed(1)} MB` : `${n} bytes`);

/** 413 `PayloadTooLarge` when the declared length is over `limit` (nothing read). */
export function checkDeclaredLength(request: BodySource, limit: number, what: string, setting?: string): void {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    throw tooLarge('PayloadTooLarge', `${what} is ${declared} bytes; the limit is ${mb(limit)}${setting ? ` (${setting})` : ''}.`);
  }
}

/** The body's bytes, at most `limit` of them (413 `PayloadTooLarge` beyond: reading stops there). */
export async function readBodyBytes(request: BodySource, limit: number, what = 'The request body', setting?: string): Promise<Buffer> {
  checkDeclaredLength(request, limit, what, setting);
  if (!request.body) return Buffer.alloc(0);
  const reader = request.body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const bytes = value as Uint8Array;
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    size += chunk.length;
    if (size > limit) {
      reader.releaseLock();
      discardRest(Readable.fromWeb(request.body));
      throw tooLarge('PayloadTooLarge', `${what} is larger than ${mb(limit)}${setting ? ` (${setting})` : ''}.`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** The body as UTF-8 text, at most `limit` bytes (see `readBodyBytes`). */
export async function readBodyText(request: BodySource, limit: number, what?: string, setting?: string): Promise<string> {
  return (await readBodyBytes(request, limit, what, setting)).toString('utf8');
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
