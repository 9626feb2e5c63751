/**
 * Reading HTTP request bodies with a size bound, the same way in both HTTP modes of `@azure/functions` (a
 * streamed request and a buffered one both expose `request.body` as a web ReadableStream): the declared
 * `Content-Length` is checked first, then the bytes are counted as they arrive and reading stops at the bound —
 * a body is never read whole before it is known to be small enough. Every handler that reads a body uses this.
 */
import { Readable } from 'stream';
import type { ReadableStream } from 'stream/web';
import { discardRest } from '../runtime';
import { AppError, tooLarge } from './errors';
import { checkDeclaredSize, MAX_INPUT_BYTES, tooLargeError, type ParseBounds } from './parse';

/** Bodies of small JSON/YAML requests (job definitions, model updates, key regeneration). */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;

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
 * A JSON/YAML document sent as the whole body (a manifest, a batch job definition): past `bounds.maxBytes` it is
 * refused the way its parser refuses an oversize document (400 `InputTooLarge`), from `Content-Length` before reading
 * or as soon as the streamed bytes pass the bound.
 */
export async function readDocumentText(request: BodySource, bounds: ParseBounds): Promise<string> {
  const max = bounds.maxBytes ?? MAX_INPUT_BYTES;
  checkDeclaredSize(request.headers.get('content-length'), bounds);
  try {
    return await readBodyText(request, max, bounds.what);
  } catch (e) {
    if (e instanceof AppError && e.code === 'PayloadTooLarge') throw tooLargeError(bounds, max);
    throw e;
  }
}
