/**
 * Shadow copies in batches: the wire format between a service front (front.ts) and a replica (server.ts) for
 * `POST /.mdf/mirror`. A front that mirrors traffic sends the copies gathered while it was busy in one request
 * (front.ts, `MirrorBatcher`); the replica scores each as its own `POST /score` (same scorer,
 * metrics, collection) and answers all of them in one response. One round trip per batch instead of one per copy: the copy's cost on the serving side was
 * the HTTP round trip itself (docs/benchmarks.md, "Where a shadow copy's cost goes").
 *
 * Frame (request and response alike): a 4-byte big-endian length L, L bytes of a JSON index, then the items' bodies
 * back to back, in index order. The index says each body's length (`n`), so bodies travel as raw bytes (no base64,
 * no JSON escaping).
 * - request index: `{ "v": 1, "answerBytes": N, "items": [{ "p": "/score?x=1", "t": "<content-type>", "n": <bytes> }] }`
 * - response index: `{ "v": 1, "items": [{ "s": <status>, "t": "<content-type>", "n": <bytes>, "ms": <scoring ms>, "over"?: true }] }`
 *   (`over`: the answer was left out because the batch's answers would exceed `answerBytes`; the copy counts as
 *   mirrored, not compared, as a single copy whose answer is over the compare bound).
 * Bounded before anything is parsed: the index length and nesting, then the item count, each body's and the total
 * length.
 */
import { z } from 'zod';
import { RuntimeError } from './errors';
import { jsonNestingDepth } from './json-depth';

/** The replica's path for batched shadow copies (under the service's own `/.mdf/`, never a scoring script's). */
export const MIRROR_BATCH_PATH = '/.mdf/mirror';
/** Content type of both frames. */
export const MIRROR_BATCH_TYPE = 'application/x-mdf-mirror-batch';
/** Copies per batch at most. */
export const MAX_BATCH_ITEMS = 32;
/** Index bytes at most. */
export const MAX_BATCH_INDEX_BYTES = 64 * 1024;
/** Nesting of an index at most (it has 3: the object, its items, an item). */
const MAX_INDEX_DEPTH = 3;

/** Targets a batch may carry: `/score` with any query (the front sends other copies one by one). */
export const BATCHABLE_PATH = /^\/score(\?[^\s#]*)?$/;
/** Content type of a copy at most (characters); a copy with a longer one goes on its own. */
export const MAX_BATCH_TYPE_CHARS = 256;

const ItemPath = z.string().max(2048).regex(BATCHABLE_PATH, 'only POST /score copies are batched');
const RequestIndex = z.object({
  v: z.literal(1),
  answerBytes: z.number().int().min(0).max(64 * 1024 * 1024),
  items: z
    .array(z.object({ p: ItemPath, t: z.string().max(MAX_BATCH_TYPE_CHARS), n: z.number().int().min(0) }).strict())
    .min(1)
    .max(MAX_BATCH_ITEMS),
}).strict();
const ResponseIndex = z.object({
  v: z.literal(1),
  items: z
    .array(z.object({ s: z.number().int().min(0).max(999), t: z.string().max(MAX_BATCH_TYPE_CHARS), n: z.number().int().min(0), ms: z.number().min(0), over: z.literal(true).optional() }).strict())
    .max(MAX_BATCH_ITEMS),
}).strict();

export type MirrorRequestItem = z.infer<typeof RequestIndex>['items'][number] & { body: Buffer };
export type MirrorAnswerItem = z.infer<typeof ResponseIndex>['items'][number] & { body?: Buffer };

/** The frame in one buffer (written with one call: one syscall, where a write per body would cost one each). */
function encode(index: object, bodies: Buffer[]): Buffer {
  const json = JSON.stringify(index);
  const jsonBytes = Buffer.byteLength(json);
  let size = 4 + jsonBytes;
  for (const b of bodies) size += b.length;
  const frame = Buffer.allocUnsafe(size);
  frame.writeUInt32BE(jsonBytes, 0);
  let at = 4 + frame.write(json, 4);
  for (const b of bodies) at += b.copy(frame, at);
  return frame;
}

function decode<T extends { items: Array<{ n: number }> }>(frame: Buffer, schema: z.ZodType<T>, what: string): { index: T; bodies: Buffer[] } {
  const bad = (why: string) => new RuntimeError('BadMirrorBatch', `The ${what} is not a shadow-copy batch: ${why}`, 400);
  if (frame.length < 4) throw bad('shorter than its 4-byte header');
  const len = frame.readUInt32BE(0);
  if (len > MAX_BATCH_INDEX_BYTES || 4 + len > frame.length) throw bad(`its index length (${len} bytes) is over ${MAX_BATCH_INDEX_BYTES} or past the end`);
  const text = frame.toString('utf8', 4, 4 + len);
  // An index nests 3 deep (object, items, item): anything deeper is refused before the parser sees it.
  if (jsonNestingDepth(text, MAX_INDEX_DEPTH) > MAX_INDEX_DEPTH) throw bad(`its index nests deeper than ${MAX_INDEX_DEPTH} levels`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('its index is not JSON');
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw bad(`its index is invalid (${parsed.error.issues[0]?.path.join('.') || 'index'}: ${parsed.error.issues[0]?.message})`);
  const bodies: Buffer[] = [];
  let at = 4 + len;
  for (const item of parsed.data.items) {
    if (at + item.n > frame.length) throw bad('a body runs past the end');
    bodies.push(frame.subarray(at, at + item.n));
    at += item.n;
  }
  if (at !== frame.length) throw bad(`${frame.length - at} bytes follow the last body`);
  return { index: parsed.data, bodies };
}

/** The front's request: the copies' targets, content types and bodies, and the answer bytes it will read. */
export function encodeMirrorRequest(items: Array<{ path: string; contentType: string; body: Buffer }>, answerBytes: number): Buffer {
  return encode(
    { v: 1, answerBytes, items: items.map((i) => ({ p: i.path, t: i.contentType, n: i.body.length })) },
    items.map((i) => i.body),
  );
}

/** The replica's reading of a request frame (400 `BadMirrorBatch` for anything else). */
export function decodeMirrorRequest(frame: Buffer): { answerBytes: number; items: MirrorRequestItem[] } {
  const { index, bodies } = decode(frame, RequestIndex, 'request');
  return { answerBytes: index.answerBytes, items: index.items.map((x, i) => ({ ...x, body: bodies[i] })) };
}

/**
 * The replica's answer: one entry per request item, in order; answers are left out (`over`) once their total would
 * pass `answerBytes`.
 */
export function encodeMirrorResponse(answers: Array<{ status: number; contentType: string; body: Buffer; ms: number }>, answerBytes: number): Buffer {
  let budget = answerBytes;
  const bodies: Buffer[] = [];
  const items = answers.map((a) => {
    const fits = a.body.length <= budget;
    if (fits) {
      budget -= a.body.length;
      bodies.push(a.body);
    }
    return { s: a.status, t: a.contentType.slice(0, MAX_BATCH_TYPE_CHARS), n: fits ? a.body.length : 0, ms: Math.round(a.ms * 1000) / 1000, ...(fits ? {} : { over: true as const }) };
  });
  return encode({ v: 1, items }, bodies);
}

/** The front's reading of a response frame: `expected` items, in order (throws `BadMirrorBatch` otherwise). */
export function decodeMirrorResponse(frame: Buffer, expected: number): MirrorAnswerItem[] {
  const { index, bodies } = decode(frame, ResponseIndex, 'answer');
  if (index.items.length !== expected) throw new RuntimeError('BadMirrorBatch', `The answer has ${index.items.length} items for ${expected} copies`, 400);
  return index.items.map((x, i) => (x.over ? x : { ...x, body: bodies[i] }));
}

/**
 * A whole batch answered at once by `score` (each copy's status, content type and body): what a stand-in replica
 * needs (the benchmark's minimal slot, tests' fake slots). The runtime itself scores copies concurrently (server.ts).
 */
export function answerMirrorBatch(frame: Buffer, score: (body: Buffer, path: string) => { status: number; contentType?: string; body: Buffer }): Buffer {
  const batch = decodeMirrorRequest(frame);
  const answers = batch.items.map((item) => {
    const started = process.hrtime.bigint();
    const a = score(item.body, item.p);
    return { status: a.status, contentType: a.contentType ?? 'application/json', body: a.body, ms: Number(process.hrtime.bigint() - started) / 1e6 };
  });
  return encodeMirrorResponse(answers, batch.answerBytes);
}
