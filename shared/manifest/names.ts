/**
 * Name and path rules shared by the manifest, the registry, images and services. Every check throws an
 * `AppError` (400) whose message names the offending field and the rule.
 */
import { badRequest } from '../errors';

/** Model names (AML): 1–255 letters, digits, `-`, `_`, `.`, starting with a letter or digit. */
export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
/** Image names (Docker repository compatible): 1–63 lowercase letters, digits, `-`, `_`, `.`, starting with a letter or digit. */
export const IMAGE_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** Service names (AML): 3–32 lowercase letters, digits and dashes, starting with a letter (and not ending with a dash). */
export const SERVICE_NAME_RE = /^[a-z][a-z0-9-]{1,30}[a-z0-9]$/;

export const MODEL_NAME_RULE = '1–255 characters: letters, digits, "-", "_", ".", starting with a letter or digit';
export const IMAGE_NAME_RULE = '1–63 characters: lowercase letters, digits, "-", "_", ".", starting with a letter or digit';
/** A rejected value as an error message quotes it: its first 64 characters (a route parameter can be kilobytes). */
function quoted(v: unknown): string {
  const text = String(v);
  return `"${text.slice(0, 64)}${text.length > 64 ? '…' : ''}"`;
}

export const SERVICE_NAME_RULE = '3–32 characters: lowercase letters, digits and "-", starting with a letter and not ending with "-"';

export function checkModelName(name: string, field = 'model.name'): string {
  if (typeof name !== 'string' || !MODEL_NAME_RE.test(name)) {
    throw badRequest('InvalidModelName', `${field} ${quoted(name)} is not a valid model name (${MODEL_NAME_RULE}).`);
  }
  return name;
}

export function checkImageName(name: string, field = 'image.name'): string {
  if (typeof name !== 'string' || !IMAGE_NAME_RE.test(name)) {
    throw badRequest('InvalidImageName', `${field} ${quoted(name)} is not a valid image name (${IMAGE_NAME_RULE}).`);
  }
  return name;
}

export function checkServiceName(name: string, field = 'service.name'): string {
  if (typeof name !== 'string' || !SERVICE_NAME_RE.test(name)) {
    throw badRequest('InvalidServiceName', `${field} ${quoted(name)} is not a valid service name (${SERVICE_NAME_RULE}).`);
  }
  return name;
}

/**
 * Why a relative file path is unsafe, or undefined when it is fine: no absolute paths (`/x`, `C:\x`, `\\server`),
 * then the blob name rules (`blobNameReason`: no `..` or `.` segments, no empty segments, no backslashes, no `%` —
 * a blob name with `%xx` would name another blob —, no control characters, at most 1024 characters), because every
 * such path becomes part of a blob name.
 */
export function unsafePathReason(p: string): string | undefined {
  if (typeof p !== 'string' || p.length === 0) return 'is empty';
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p) || p.startsWith('\\')) return 'is absolute (use a path relative to the manifest)';
  return blobNameReason(p);
}

export function checkRelativePath(p: string, field: string): string {
  const why = unsafePathReason(p);
  if (why) {
    const text = String(p);
    // eslint-disable-next-line no-control-regex
    const shown = (text.length > 300 ? `${text.slice(0, 300)}…` : text).replace(/[\x00-\x1f\x7f]/g, '?');
    throw badRequest('InvalidPath', `${field} "${shown}" ${why}.`);
  }
  return p;
}

/** Run ids (deployment and batch runs, as the service makes them): 1–200 letters, digits, ".", "_", ":", "-", starting with a letter or digit. */
export const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;

/**
 * A run id given by a user (a route parameter): 400 `InvalidRunId` unless it has the shape of the ids the service
 * makes, before it is used anywhere (the durable client puts it in its request URLs as it is).
 */
export function checkRunId(id: string, what = 'Run id'): string {
  if (typeof id !== 'string' || !RUN_ID_RE.test(id)) {
    const shown = String(id).slice(0, 80) + (String(id).length > 80 ? '…' : '');
    throw badRequest('InvalidRunId', `${what} ${JSON.stringify(shown)} is not a run id (1–200 letters, digits, ".", "_", ":" or "-", starting with a letter or digit); use the id returned when the run was started.`);
  }
  return id;
}

/** Highest model/image version a reference may name (versions are counters; 9 digits, as in batch job refs). */
export const MAX_VERSION = 999_999_999;

/** A version given as text (`"3"`): a whole number 1…MAX_VERSION, else 400 `InvalidVersion` naming `field`. */
export function parseVersion(v: string, field = 'version'): number {
  if (!/^[0-9]{1,9}$/.test(v) || Number(v) < 1) {
    throw badRequest('InvalidVersion', `${field} ${quoted(v)} must be a whole number from 1 to ${MAX_VERSION}.`);
  }
  return Number(v);
}

/** Longest blob name Azure accepts, and its most path segments. */
const MAX_BLOB_NAME = 1024;
const MAX_BLOB_SEGMENTS = 254;

/**
 * Why a (decoded) blob name, or blob prefix with `prefix`, is not canonical, or undefined when it is: no empty, `.`
 * or `..` segments, no `\`, no `%` (the storage SDK sends `%xx` in a name as an escape, so a `%` would name another
 * blob), no control characters, at most 1024 characters and 254 segments. A prefix may be `""` or end with `/`.
 */
export function blobNameReason(name: string, opts: { prefix?: boolean } = {}): string | undefined {
  if (typeof name !== 'string') return 'is not a string';
  if (opts.prefix && name === '') return undefined;
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_BLOB_NAME) return `is longer than ${MAX_BLOB_NAME} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return 'contains control characters';
  if (name.includes('\\')) return 'contains "\\" (use "/" as the separator)';
  if (name.includes('%')) return 'contains "%" (percent-encoding is decoded once, in blob URLs only; give the plain name)';
  if (name.startsWith('/')) return 'starts with "/"';
  const segments = (opts.prefix && name.endsWith('/') ? name.slice(0, -1) : name).split('/');
  if (segments.length > MAX_BLOB_SEGMENTS) return `has more than ${MAX_BLOB_SEGMENTS} segments`;
  if (segments.some((s) => s === '..')) return 'contains ".." (path traversal is not allowed)';
  if (segments.some((s) => s === '.')) return 'contains a "." segment';
  if (segments.some((s) => s === '')) return 'contains an empty segment ("//" or a trailing "/")';
  return undefined;
}
