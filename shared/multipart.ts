/**
 * `multipart/form-data` read as a stream of parts (busboy), one part at a time, with its bounds enforced while the
 * bytes arrive: the parser only moves on when the caller has consumed the current part, so at most a few of its
 * buffers are in memory whatever the size of the upload.
 *
 * - A part is a file part when it has a filename, else a text field (buffered up to `maxFieldBytes`).
 * - `countBytes` wraps a part's stream with the per-part and total bounds (413 as soon as one is crossed).
 * - A malformed body (no boundary, truncated, bad headers) is 400 `InvalidMultipart`; too many parts is 413.
 */
import busboy from 'busboy';
import { createHash, type Hash } from 'crypto';
import { Readable, Transform, type TransformCallback } from 'stream';
import { AppError, badRequest, tooLarge } from './errors';
import { discardRest } from '../runtime';

export interface MultipartLimits {
  /** Largest text field (a part without filename), bytes. */
  maxFieldBytes: number;
  /** Most parts in one body. */
  maxParts: number;
}

export interface MultipartPart {
  field: string;
  /** File parts: the stream of its bytes (must be consumed, or the reader stops: see `skip`). */
  stream?: Readable;
  fileName?: string;
  /** Text fields: the value (`truncated` when longer than `maxFieldBytes`). */
  value?: string;
  truncated?: boolean;
}

function invalid(detail: string): AppError {
  return badRequest('InvalidMultipart', `The multipart/form-data body is malformed: ${detail}. Send a well-formed multipart body (e.g. curl -F).`);
}

/** The parts of `source`, in order. Leaving the loop early stops parsing (the rest of the body is not read). */
export async function* multipartParts(source: Readable, contentType: string, limits: MultipartLimits): AsyncGenerator<MultipartPart> {
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { 'content-type': contentType },
      limits: { fieldSize: limits.maxFieldBytes, parts: limits.maxParts },
      // Part names are file paths, in UTF-8 as browsers and curl send them (busboy's default reads them as latin1).
      defParamCharset: 'utf8',
      fileHwm: 256 * 1024,
    });
  } catch (e) {
    throw invalid((e as Error).message.replace(/^Multipart: /, '').replace(/\.$/, ''));
  }
  const queue: MultipartPart[] = [];
  let finished = false;
  let failure: AppError | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const fail = (e: AppError) => {
    failure ??= e;
    notify();
  };
  // RFC 7578: every part is named (Content-Disposition: form-data; name="…"); busboy gives a nameless one as undefined.
  const nameless = () => fail(invalid('a part has no name (each part needs Content-Disposition: form-data; name="<path>")'));
  parser.on('file', (field, stream, info) => {
    // A part's stream fails when the request breaks (the client went away, the parser stopped): its consumer hears of
    // it through its own listener (for await, ByteBudget.count), but a part not read yet — still queued, refused by
    // the caller, or left behind when the caller stopped early — has none, and an 'error' without a listener would
    // be an uncaught exception of the whole host. The failure is the request's; every part keeps this listener.
    stream.on('error', () => undefined);
    if (typeof field !== 'string') {
      stream.resume();
      return nameless();
    }
    queue.push({ field, stream, fileName: info.filename });
    notify();
  });
  parser.on('field', (field, value, info) => {
    if (typeof field !== 'string') return nameless();
    queue.push({ field, value, truncated: info.valueTruncated });
    notify();
  });
  parser.on('partsLimit', () => fail(tooLarge('TooManyParts', `The multipart body has more than ${limits.maxParts} parts.`)));
  parser.on('error', (e: Error) => fail(invalid(String(e.message).replace(/\.$/, '').toLowerCase())));
  parser.on('close', () => {
    finished = true;
    notify();
  });
  const onSourceError = (e: Error) => {
    const err = invalid(`the request stream failed (${e.message})`);
    fail(err);
    // pipe() does not pass errors on: stop the parser, which fails the part being read (its consumer stops too).
    parser.destroy(err);
  };
  source.on('error', onSourceError);
  source.pipe(parser);
  try {
    for (;;) {
      if (queue.length) {
        yield queue.shift()!;
        continue;
      }
      if (failure) throw failure;
      if (finished) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    if (!finished) {
      // Stop parsing; the rest of the body is read and dropped (bounded) so that its connection can serve the next request.
      source.unpipe(parser);
      parser.removeAllListeners('file');
      parser.on('error', () => undefined);
      source.off('error', onSourceError);
      // Parts parsed but never handed out: their bytes are dropped (nobody will read them).
      for (const p of queue.splice(0)) p.stream?.resume();
      discardRest(source);
    }
  }
}

/** Counts the bytes of a part across all parts of a request, refusing (413) past either bound. */
export class ByteBudget {
  total = 0;
  constructor(
    readonly maxPartBytes: number,
    readonly maxTotalBytes: number,
    private readonly messages: { part: (field: string) => string; total: () => string },
  ) {}

  /** `stream` through the bounds (and a SHA-256 of its bytes); a truncated source is 400 `InvalidMultipart`. */
  count(field: string, stream: Readable): { stream: Transform; result: () => { bytes: number; sha256: string } } {
    const hash: Hash = createHash('sha256');
    let bytes = 0;
    const budget = this;
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        bytes += chunk.length;
        budget.total += chunk.length;
        if (budget.total > budget.maxTotalBytes) return cb(tooLarge('PayloadTooLarge', budget.messages.total()));
        if (bytes > budget.maxPartBytes) return cb(tooLarge('PartTooLarge', budget.messages.part(field)));
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    stream.on('error', (e: Error) => out.destroy(invalid(`part "${field}" is incomplete (${String(e.message).replace(/\.$/, '').toLowerCase()})`)));
    out.on('error', () => stream.unpipe(out));
    stream.pipe(out);
    return { stream: out, result: () => ({ bytes, sha256: hash.digest('hex') }) };
  }
}

/** Reads a whole (small) part into memory, at most `limit` bytes (`onTooLarge` beyond). */
export async function readPart(part: MultipartPart, limit: number, onTooLarge: () => AppError): Promise<Buffer> {
  if (part.value !== undefined) {
    if (part.truncated || Buffer.byteLength(part.value) > limit) throw onTooLarge();
    return Buffer.from(part.value, 'utf8');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of part.stream! as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw onTooLarge();
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw invalid(`part "${part.field}" is incomplete (${String((e as Error).message).replace(/\.$/, '').toLowerCase()})`);
  }
  return Buffer.concat(chunks, size);
}

/** A field value as a stream (text fields are files too when the caller says so). */
export function partStream(part: MultipartPart): Readable {
  return part.stream ?? Readable.from([Buffer.from(part.value ?? '', 'utf8')]);
}
