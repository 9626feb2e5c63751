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

/** Answer bytes a front may ask for at most. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

interface RequestIndex {
  v: 1;
  answerBytes: number;
  items: Array<{ p: string; t: string; n: number }>;
}
interface ResponseIndex {
  v: 1;
  items: Array<{ s: number; t: string; n: number; ms: number; over?: true }>;
}
export type MirrorRequestItem = RequestIndex['items'][number] & { body: Buffer };
export type MirrorAnswerItem = ResponseIndex['items'][number] & { body?: Buffer };

/*
 * The two indexes are checked by hand, not with zod as the service's other inputs are: a batch is read a few dozen
 * times a second, so its code seldom runs hot, and there the schemas cost most of a frame's reading. Reading a
 * 32-copy frame, first 100 times in a fresh process: request 255 → 131 µs, answer 243 → 80 µs; once hot 52 → 38 µs
 * (docs/benchmarks.md, "Bigger batches under load"). The checks are as strict as the schemas were: exact fields,
 * types, bounds.
 */
const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isCount = (x: unknown, max = Number.MAX_SAFE_INTEGER): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= max;
/** Whether `o` has fields other than `keys` (an index with an unknown field is not one). */
const hasOtherKeys = (o: Record<string, unknown>, keys: readonly string[]) => Object.keys(o).some((k) => !keys.includes(k));
const isType = (x: unknown): x is string => typeof x === 'string' && x.length <= MAX_BATCH_TYPE_CHARS;

/** The items of an index: `min` to MAX_BATCH_ITEMS objects with exactly `keys`, each read by `item`; or what is wrong. */
function checkItems<T>(items: unknown, min: number, keys: readonly string[], item: (x: Record<string, unknown>) => T | string): T[] | string {
  if (!Array.isArray(items) || items.length < min || items.length > MAX_BATCH_ITEMS) return `items: ${min} to ${MAX_BATCH_ITEMS} copies`;
  const out: T[] = [];
  for (let i = 0; i < items.length; i++) {
    const x: unknown = items[i];
    if (!isRecord(x) || hasOtherKeys(x, keys)) return `items.${i}: an object with ${keys.join(', ')} only`;
    const read = item(x);
    if (typeof read === 'string') return `items.${i}.${read}`;
    out.push(read);
  }
  return out;
}

function checkRequestIndex(raw: unknown): RequestIndex | string {
  if (!isRecord(raw) || hasOtherKeys(raw, ['v', 'answerBytes', 'items'])) return 'index: an object with v, answerBytes and items only';
  const { v, answerBytes } = raw;
  if (v !== 1) return 'v: must be 1';
  if (!isCount(answerBytes, MAX_ANSWER_BYTES)) return `answerBytes: an integer from 0 to ${MAX_ANSWER_BYTES}`;
  const items = checkItems(raw.items, 1, ['p', 't', 'n'], (x) => {
    const { p, t, n } = x;
    if (typeof p !== 'string' || p.length > 2048 || !BATCHABLE_PATH.test(p)) return 'p: only POST /score copies are batched';
    if (!isType(t)) return `t: a string of at most ${MAX_BATCH_TYPE_CHARS} characters`;
    if (!isCount(n)) return 'n: a byte count';
    return x as RequestIndex['items'][number]; // exactly these fields, checked: the parsed object itself
  });
  return typeof items === 'string' ? items : { v, answerBytes, items };
}

function checkResponseIndex(raw: unknown): ResponseIndex | string {
  if (!isRecord(raw) || hasOtherKeys(raw, ['v', 'items'])) return 'index: an object with v and items only';
  const { v } = raw;
  if (v !== 1) return 'v: must be 1';
  const items = checkItems(raw.items, 0, ['s', 't', 'n', 'ms', 'over'], (x) => {
    const { s, t, n, ms, over } = x;
    if (!isCount(s, 999)) return 's: an HTTP status';
    if (!isType(t)) return `t: a string of at most ${MAX_BATCH_TYPE_CHARS} characters`;
    if (!isCount(n)) return 'n: a byte count';
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return 'ms: a duration';
    if (over !== undefined && over !== true) return 'over: true or absent';
    return x as ResponseIndex['items'][number]; // exactly these fields, checked: the parsed object itself
  });
  return typeof items === 'string' ? items : { v, items };
}

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

function decode<T extends { items: Array<{ n: number }> }>(frame: Buffer, check: (raw: unknown) => T | string, what: string): { index: T; bodies: Buffer[] } {
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
  const index = check(raw);
  if (typeof index === 'string') throw bad(`its index is invalid (${index})`);
  const bodies: Buffer[] = [];
  let at = 4 + len;
  for (const item of index.items) {
    if (at + item.n > frame.length) throw bad('a body runs past the end');
    bodies.push(frame.subarray(at, at + item.n));
    at += item.n;
  }
  if (at !== frame.length) throw bad(`${frame.length - at} bytes follow the last body`);
  return { index, bodies };
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
  const { index, bodies } = decode(frame, checkRequestIndex, 'request');
  const items = index.items as MirrorRequestItem[];
  for (let i = 0; i < items.length; i++) items[i].body = bodies[i];
  return { answerBytes: index.answerBytes, items };
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
  const { index, bodies } = decode(frame, checkResponseIndex, 'answer');
  if (index.items.length !== expected) throw new RuntimeError('BadMirrorBatch', `The answer has ${index.items.length} items for ${expected} copies`, 400);
  const items = index.items as MirrorAnswerItem[];
  for (let i = 0; i < items.length; i++) if (!items[i].over) items[i].body = bodies[i];
  return items;
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
