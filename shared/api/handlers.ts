/**
 * The pieces every management route of functions/ shares (functions/management.ts, functions/day2.ts): the error
 * wrapper (an AppError becomes its `{ "error": { "code", "message" } }` answer; anything else is logged first), the
 * route's name and version parameters checked as the manifest checks them, a small JSON body, tag changes, and
 * answers that must not be cached (keys, tokens, logs, metrics).
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { AppError, badRequest, errorResponse, notFound, toErrorInfo } from '../errors';
import { MAX_JSON_BODY_BYTES, readBodyText } from '../http-body';
import { parseVersion } from '../manifest/names';
import { parseJsonBounded } from '../parse';

export type Handler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;

/** `fn`, answering its errors: an AppError as itself, anything else logged (as `<name> failed: …`) and answered 500. */
export function safe(name: string, fn: Handler): Handler {
  return async (request, context) => {
    try {
      return await fn(request, context);
    } catch (e) {
      if (!(e instanceof AppError)) context.error(`${name} failed: ${toErrorInfo(e).message}`);
      return errorResponse(e);
    }
  };
}

/** The route's `{name}`, trimmed, then checked by `check` (checkServiceName, checkModelName, …) as `field`. */
export function nameParam(request: HttpRequest, check: (name: string, field: string) => string, field: string): string {
  return check(String(request.params.name ?? '').trim(), field);
}

/** The route's `{version}` (required). */
export function versionParam(request: HttpRequest): number {
  return parseVersion(String(request.params.version ?? ''), 'Version');
}

/** The route's optional `{version?}`: undefined when absent. */
export function optionalVersionParam(request: HttpRequest): number | undefined {
  const v = request.params.version;
  if (v === undefined || v === '') return undefined;
  return parseVersion(v, 'Version');
}

/**
 * `?force=` of the delete routes: true, 1 or yes; false, 0, no or absent/empty. Anything else is 400 `InvalidForce`
 * (a typo such as `?force=ture` is not silently a delete without force).
 */
export function forceParam(request: HttpRequest): boolean {
  const raw = (request.query.get('force') ?? '').trim();
  if (/^(1|true|yes)$/i.test(raw)) return true;
  if (raw === '' || /^(0|false|no)$/i.test(raw)) return false;
  throw badRequest('InvalidForce', `force must be true or false; got "${raw.slice(0, 20)}${raw.length > 20 ? '…' : ''}".`);
}

/** A small JSON body (at most MAX_JSON_BODY_BYTES; an empty body is `{}`); 400 `InvalidJson` when it is not JSON. */
export async function readJsonBody(request: HttpRequest): Promise<unknown> {
  return parseJsonBounded((await readBodyText(request, MAX_JSON_BODY_BYTES)) || '{}', { what: 'The body', malformedCode: 'InvalidJson' });
}

/** The registries' tag change from a PATCH body's `tags` (added or overwritten) and `remove_tags`. */
export function tagChange(tags: Record<string, string> | undefined, removeTags: string[] | undefined): { add?: Record<string, string>; remove?: string[] } {
  return { ...(tags ? { add: tags } : {}), ...(removeTags ? { remove: removeTags } : {}) };
}

/** A JSON answer that no cache may keep (secrets, live figures). */
export function noStore(jsonBody: unknown): HttpResponseInit {
  return { jsonBody, headers: { 'cache-control': 'no-store' } };
}

/** A versioned registry as the `{name}/{version?}` routes use it (models, images). */
export interface VersionedRegistry {
  get(name: string, version?: number): Promise<unknown>;
  list(filter: { name: string }): Promise<unknown[]>;
  delete(name: string, version?: number, opts?: { force?: boolean }): Promise<unknown>;
}

/**
 * `GET|DELETE /api/<kind>s/{name}/{version?}`: DELETE removes the version (or every version, `?force=true` for those
 * in use); GET answers the version, or `{ latest, value }` of every version (404 `notFoundCode` when there is none).
 */
export function byNameHandler(name: string, registry: () => VersionedRegistry, check: (name: string, field: string) => string, notFoundCode: string, kind: string): Handler {
  return safe(name, async (request) => {
    const reg = registry();
    const itemName = nameParam(request, check, kind.toLowerCase());
    const version = optionalVersionParam(request);
    if (request.method === 'DELETE') return { jsonBody: await reg.delete(itemName, version, { force: forceParam(request) }) };
    if (version !== undefined) return { jsonBody: await reg.get(itemName, version) };
    const all = await reg.list({ name: itemName });
    if (!all.length) throw notFound(notFoundCode, `${kind} "${itemName}" does not exist.`);
    return { jsonBody: { latest: all[0], value: all } };
  });
}
