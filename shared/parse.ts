/**
 * Bounded parsing of user-supplied JSON and YAML (manifests, batch job files, training messages, request bodies,
 * schema samples). Every parse goes through here: first a size limit, then a cheap linear pre-scan of the nesting
 * depth (brackets/braces outside strings for JSON; the YAML lexer's flow levels plus block indentation levels for
 * YAML) that refuses deep input BEFORE the recursive parts of a parser run, then the parse (YAML with
 * `maxAliasCount` against alias bombs), then an iterative walk of the result bounding depth and node count (aliases
 * and merges can deepen or grow a document). Errors are 400 `InputTooLarge` / `InputTooDeep`, naming what was parsed.
 */
import { jsonNestingDepth, jsonSyntaxMessage } from '../runtime';
import YAML from 'yaml';
import { AppError, badRequest } from './errors';

/** Deepest nesting accepted anywhere in user JSON/YAML (objects and arrays). */
export const MAX_INPUT_DEPTH = 64;
/** Most values (objects, arrays, scalars) one parsed document may hold. */
export const MAX_INPUT_NODES = 1_000_000;
/** Default size limit of one document (bytes of UTF-8). */
export const MAX_INPUT_BYTES = 1024 * 1024;
/** Alias resolutions allowed per YAML document (yaml's own default; stops "billion laughs"). */
export const MAX_YAML_ALIASES = 100;

export interface ParseBounds {
  /** What is parsed, for messages ("deploy.json", "training-completed message"). */
  what: string;
  maxBytes?: number;
  maxDepth?: number;
  maxNodes?: number;
}

export { jsonNestingDepth, jsonSyntaxMessage };

export function tooDeep(what: string, maxDepth: number): AppError {
  return badRequest('InputTooDeep', `${what} is nested more than ${maxDepth} levels deep; flatten it (at most ${maxDepth} levels of objects/arrays are accepted).`);
}

export function tooLargeError(bounds: ParseBounds, max: number): AppError {
  return badRequest('InputTooLarge', `${bounds.what} is larger than ${max} bytes; make it smaller (large data belongs in blobs that it references).`);
}

/** 400 `InputTooLarge` when a declared length (an HTTP `Content-Length`) is over the limit: refused before reading the body. */
export function checkDeclaredSize(declared: string | null | undefined, bounds: ParseBounds): void {
  const n = Number(declared);
  const max = bounds.maxBytes ?? MAX_INPUT_BYTES;
  if (declared && Number.isFinite(n) && n > max) throw tooLargeError(bounds, max);
}

/** 400 `InputTooLarge` when `text` is longer than `maxBytes` (UTF-8). */
export function checkInputSize(text: string | Buffer, bounds: ParseBounds): void {
  const max = bounds.maxBytes ?? MAX_INPUT_BYTES;
  // A string's UTF-8 size is at most 3 bytes per UTF-16 unit: count exactly only when that matters.
  const size = Buffer.isBuffer(text) ? text.length : text.length * 3 <= max ? 0 : text.length > max ? max + 1 : Buffer.byteLength(text);
  if (size > max) throw tooLargeError(bounds, max);
}


/**
 * Upper estimate of the nesting depth of a YAML text without composing it: the lexer (linear, not recursive)
 * gives flow collection levels exactly (quoted and block scalars are single tokens), and block levels are counted
 * from indentation (a stack of columns) plus one level per `-`/`?`/`:` indicator followed by content on its line.
 * Stops counting beyond `limit`.
 */
export function yamlNestingDepth(text: string, limit = Infinity): number {
  const stack: number[] = [];
  let flow = 0;
  let max = 0;
  let col = 0;
  let lineStart = true;
  let afterIndicator = false;
  for (const tok of new YAML.Lexer().lex(text)) {
    if (tok.length === 1 && tok.charCodeAt(0) < 0x20 && tok !== '\n' && tok !== '\t') continue; // control tokens: zero width
    const nl = tok.lastIndexOf('\n');
    if (/^[ \t]*\r?\n?$/.test(tok) || tok === '\r\n') {
      // whitespace / line break
      if (nl >= 0) {
        col = tok.length - nl - 1;
        lineStart = true;
        afterIndicator = false;
      } else col += tok.length;
      continue;
    }
    if (tok.startsWith('#')) {
      col += tok.length;
      continue;
    }
    const start = col + (tok.length - tok.trimStart().length);
    if (flow === 0) {
      if (lineStart) {
        while (stack.length && stack[stack.length - 1] > start) stack.pop();
        if (!stack.length || stack[stack.length - 1] < start) stack.push(start);
      } else if (afterIndicator && (!stack.length || stack[stack.length - 1] < start)) stack.push(start);
    }
    lineStart = false;
    if (tok === '[' || tok === '{') flow++;
    else if (tok === ']' || tok === '}') flow = Math.max(0, flow - 1);
    afterIndicator = flow === 0 && (tok === '-' || tok === '?' || tok === ':');
    const depth = stack.length + flow;
    if (depth > max) {
      max = depth;
      if (max > limit) return max;
    }
    col = nl >= 0 ? tok.length - nl - 1 : col + tok.length;
    if (nl >= 0) lineStart = false;
  }
  return max;
}

/**
 * Depth and node count of an already-parsed value, walked iteratively (no recursion); 400 `InputTooDeep` /
 * `InputTooLarge` beyond the bounds. Use it on values that arrive parsed (e.g. a message the Functions library
 * already turned into an object) and after every parse.
 */
export function assertValueBounds(value: unknown, bounds: ParseBounds): void {
  const maxDepth = bounds.maxDepth ?? MAX_INPUT_DEPTH;
  const maxNodes = bounds.maxNodes ?? MAX_INPUT_NODES;
  const stack: Array<[unknown, number]> = [[value, 0]];
  let nodes = 0;
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (++nodes > maxNodes) throw badRequest('InputTooLarge', `${bounds.what} holds more than ${maxNodes} values; make it smaller.`);
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > maxDepth) throw tooDeep(bounds.what, maxDepth);
    if (Buffer.isBuffer(v) || ArrayBuffer.isView(v)) continue;
    const children = Array.isArray(v) ? v : Object.values(v as Record<string, unknown>);
    for (const c of children) if (c !== null && typeof c === 'object') stack.push([c, depth + 1]);
    else if (++nodes > maxNodes) throw badRequest('InputTooLarge', `${bounds.what} holds more than ${maxNodes} values; make it smaller.`);
  }
}

function parseFailure(e: unknown, bounds: ParseBounds, kind: string): never {
  if (e instanceof AppError) throw e;
  if (e instanceof RangeError) throw tooDeep(bounds.what, bounds.maxDepth ?? MAX_INPUT_DEPTH); // belt and braces: a stack overflow
  throw badRequest('Malformed', `${bounds.what} is not valid ${kind}: ${String((e as Error)?.message ?? e).split('\n')[0].slice(0, 500)}`);
}

/**
 * JSON text → value, bounded (size, depth before parsing, nodes after). A syntax error throws 400 with code
 * `malformedCode` (default `Malformed`) and the parser's message, without any piece of the input (`jsonSyntaxMessage`).
 */
export function parseJsonBounded(text: string, bounds: ParseBounds & { malformedCode?: string }): unknown {
  checkInputSize(text, bounds);
  const maxDepth = bounds.maxDepth ?? MAX_INPUT_DEPTH;
  if (jsonNestingDepth(text, maxDepth) > maxDepth) throw tooDeep(bounds.what, maxDepth);
  let value: unknown;
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    if (e instanceof SyntaxError) throw badRequest(bounds.malformedCode ?? 'Malformed', `${bounds.what} is not valid JSON: ${jsonSyntaxMessage(e)}`);
    parseFailure(e, bounds, 'JSON');
  }
  assertValueBounds(value, bounds);
  return value;
}

/**
 * YAML text → `YAML.Document` (not yet converted), after the size and depth checks; the document's own errors are
 * left to the caller. Convert with `yamlToJs` (alias-bounded, node-bounded).
 */
export function parseYamlDocumentBounded(text: string, bounds: ParseBounds, options: YAML.ParseOptions & YAML.DocumentOptions & YAML.SchemaOptions = {}): YAML.Document.Parsed {
  checkInputSize(text, bounds);
  const maxDepth = bounds.maxDepth ?? MAX_INPUT_DEPTH;
  let depth: number;
  try {
    depth = yamlNestingDepth(text, maxDepth);
  } catch (e) {
    parseFailure(e, bounds, 'YAML');
  }
  if (depth > maxDepth) throw tooDeep(bounds.what, maxDepth);
  try {
    return YAML.parseDocument(text, options);
  } catch (e) {
    parseFailure(e, bounds, 'YAML');
  }
}

/** A parsed YAML document → plain value: at most MAX_YAML_ALIASES alias resolutions, then depth/node bounds. */
export function yamlToJs(doc: YAML.Document.Parsed, bounds: ParseBounds): unknown {
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (e) {
    if (e instanceof ReferenceError && /alias/i.test(e.message)) {
      throw badRequest('InputTooLarge', `${bounds.what} uses YAML aliases too often (more than ${MAX_YAML_ALIASES} resolutions, an "alias bomb"?); write the values out.`);
    }
    parseFailure(e, bounds, 'YAML');
  }
  assertValueBounds(value, bounds);
  return value;
}

/** YAML text → value, bounded; a syntax error throws 400 `malformedCode` (default `Malformed`). */
export function parseYamlBounded(text: string, bounds: ParseBounds & { malformedCode?: string }): unknown {
  const doc = parseYamlDocumentBounded(text, bounds);
  if (doc.errors.length) throw badRequest(bounds.malformedCode ?? 'Malformed', `${bounds.what} is not valid YAML: ${doc.errors[0].message.split('\n')[0].slice(0, 500)}`);
  return yamlToJs(doc, bounds);
}
