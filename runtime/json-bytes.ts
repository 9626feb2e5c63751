/**
 * Whether bytes are one JSON text (RFC 8259, what `JSON.parse` accepts), checked in place: no string made, no value
 * built (model data collection copies bodies that pass into its records as they are). Linear, no recursion; nesting
 * deeper than `maxDepth` counts as not JSON (the caller then keeps the bytes as a string).
 */

/** Result flags of a valid text (`jsonBytes` answers -1 when not JSON). */
export const JSON_RAW_LINE_BREAK = 1; // a CR or LF outside strings (whitespace): replace by a space to keep it on one line
export const JSON_NON_ASCII = 2; // bytes ≥ 0x80 inside strings (check UTF-8 before trusting them as text)

const MAX_DEPTH = 1000;
/** Open containers (1 = object, 0 = array); shared: the check never yields. */
const stack = new Uint8Array(MAX_DEPTH);
let flags = 0;

function ws(b: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = b[i];
    if (c === 0x20 || c === 0x09) i++;
    else if (c === 0x0a || c === 0x0d) {
      flags |= JSON_RAW_LINE_BREAK;
      i++;
    } else break;
  }
  return i;
}

const isHex = (c: number) => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);

/** The index after the string starting at `i` (a `"`), or -1. */
function str(b: Uint8Array, i: number, end: number): number {
  if (i >= end || b[i] !== 0x22) return -1;
  i++;
  while (i < end) {
    const c = b[i];
    if (c === 0x22) return i + 1;
    if (c < 0x20) return -1;
    if (c === 0x5c) {
      const e = b[i + 1];
      if (e === 0x75 /* u */) {
        if (i + 5 >= end || !isHex(b[i + 2]) || !isHex(b[i + 3]) || !isHex(b[i + 4]) || !isHex(b[i + 5])) return -1;
        i += 6;
      } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) i += 2;
      else return -1;
    } else {
      if (c >= 0x80) flags |= JSON_NON_ASCII;
      i++;
    }
  }
  return -1;
}

const digit = (c: number) => c >= 0x30 && c <= 0x39;

/** The index after the number starting at `i`, or -1. */
function num(b: Uint8Array, i: number, end: number): number {
  if (b[i] === 0x2d) i++;
  if (i >= end) return -1;
  if (b[i] === 0x30) i++;
  else if (digit(b[i])) while (i < end && digit(b[i])) i++;
  else return -1;
  if (i < end && b[i] === 0x2e) {
    i++;
    if (i >= end || !digit(b[i])) return -1;
    while (i < end && digit(b[i])) i++;
  }
  if (i < end && (b[i] | 0x20) === 0x65) {
    i++;
    if (i < end && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    if (i >= end || !digit(b[i])) return -1;
    while (i < end && digit(b[i])) i++;
  }
  return i;
}

function word(b: Uint8Array, i: number, end: number, w: readonly number[]): number {
  if (i + w.length > end) return -1;
  for (let k = 0; k < w.length; k++) if (b[i + k] !== w[k]) return -1;
  return i + w.length;
}
const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

/** A key and its colon (after `{` or `,` in an object): the index of the value, or -1. */
function key(b: Uint8Array, i: number, end: number): number {
  i = str(b, ws(b, i, end), end);
  if (i < 0) return -1;
  i = ws(b, i, end);
  return i < end && b[i] === 0x3a ? i + 1 : -1;
}

/** -1 when `b[start, end)` is not one JSON text, else its flags (`JSON_RAW_LINE_BREAK`, `JSON_NON_ASCII`). */
export function jsonBytes(b: Uint8Array, start = 0, end = b.length, maxDepth = MAX_DEPTH): number {
  flags = 0;
  const limit = Math.min(maxDepth, MAX_DEPTH);
  let depth = 0;
  let i = start;
  for (;;) {
    // A value at i.
    i = ws(b, i, end);
    if (i >= end) return -1;
    const c = b[i];
    if (c === 0x7b || c === 0x5b) {
      if (depth >= limit) return -1;
      const close = c === 0x7b ? 0x7d : 0x5d;
      i = ws(b, i + 1, end);
      if (i < end && b[i] === close) i++;
      else {
        stack[depth++] = c === 0x7b ? 1 : 0;
        if (c === 0x7b && (i = key(b, i, end)) < 0) return -1;
        continue;
      }
    } else if (c === 0x22) i = str(b, i, end);
    else if (c === 0x2d || digit(c)) i = num(b, i, end);
    else if (c === 0x74) i = word(b, i, end, TRUE);
    else if (c === 0x66) i = word(b, i, end, FALSE);
    else if (c === 0x6e) i = word(b, i, end, NULL);
    else return -1;
    if (i < 0) return -1;
    // After a value: a comma, the end of its containers, or the end of the text.
    for (;;) {
      i = ws(b, i, end);
      if (depth === 0) return i === end ? flags : -1;
      if (i >= end) return -1;
      const d = b[i];
      const object = stack[depth - 1] === 1;
      if (d === 0x2c) {
        i++;
        if (object && (i = key(b, i, end)) < 0) return -1;
        break;
      }
      if (d !== (object ? 0x7d : 0x5d)) return -1;
      i++;
      depth--;
    }
  }
}
