/**
 * Errors a user can act on: a stable `code`, an actionable `message`, whether trying again can help (`retryable`),
 * and the HTTP status the API maps it to (read only where an HTTP response is built: `errorResponse`).
 * HTTP bodies are `{ "error": { "code", "message" } }`; messages never carry secrets (see `redactSecrets`).
 *
 * Activities never look at statuses: the activity wrapper (`registerActivity`, shared/workflow.ts) asks
 * `isRetryable` once. "It is not there" is asked with `isNotFound`, whatever said it (an SDK, the app, the disk).
 *
 * `AppError` is the scoring runtime's `RuntimeError` (runtime/errors.ts) for the app: the same three fields, the
 * same redaction, and `toErrorInfo` / `httpStatusOf` read both. Where the app calls runtime code that can throw a
 * user's mistake, `asAppError` turns the runtime's error into an `AppError` (same code, message and status).
 */
import { RuntimeError, httpStatusOf, redactSecrets, toErrorInfo } from '../runtime';
import type { ErrorInfo } from './seams';

export { httpStatusOf, redactSecrets, toErrorInfo };

export class AppError extends RuntimeError {
  /**
   * Whether the same call may work later (a service that did not answer, storage throttling): activities throw
   * these so durable retries apply. Not retryable: the user must change something; the run reports it as data.
   * Default: server-side errors (status ≥ 500) are retryable, the user's (4xx) are not.
   */
  readonly retryable: boolean;

  constructor(code: string, message: string, httpStatus = 400, opts: { retryable?: boolean } = {}) {
    super(code, message, httpStatus);
    this.name = 'AppError';
    this.retryable = opts.retryable ?? httpStatus >= 500;
  }
}

export const badRequest = (code: string, message: string) => new AppError(code, message, 400);
export const notFound = (code: string, message: string) => new AppError(code, message, 404);
export const conflict = (code: string, message: string) => new AppError(code, message, 409);
export const tooLarge = (code: string, message: string) => new AppError(code, message, 413);

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/**
 * May trying again help? An `AppError` says so itself; a scoring-runtime error is the caller's to fix unless it is
 * a server-side one; anything else (a storage or network failure, a bug) is treated as transient.
 */
export function isRetryable(e: unknown): boolean {
  if (e instanceof AppError) return e.retryable;
  if (e instanceof RuntimeError) return e.httpStatus >= 500;
  return true;
}

/** The HTTP status an SDK error carries: Azure `RestError.statusCode`, a Kubernetes `ApiException`'s numeric `code`. */
export function statusOf(e: unknown): number | undefined {
  if (!e || typeof e !== 'object') return undefined;
  const x = e as { statusCode?: unknown; code?: unknown };
  if (typeof x.statusCode === 'number') return x.statusCode;
  if (typeof x.code === 'number') return x.code;
  return undefined;
}

/**
 * "It is not there", however it was said: a 404 from a storage / Azure / Kubernetes SDK call, the app's own 404
 * errors (`BlobNotFound`, …), the durable client's answer for an unknown instance (it reports the 404 only in its
 * message), a missing local file (`ENOENT`).
 */
export function isNotFound(e: unknown): boolean {
  if (statusOf(e) === 404) return true;
  if (e instanceof RuntimeError) return e.httpStatus === 404;
  if (!(e instanceof Error)) return false;
  if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
  // The durable client ("… replied with HTTP 404 response") and HTTP client errors ("… status code 404").
  return /\b(?:HTTP|status code) 404\b/.test(e.message);
}

/** A `RuntimeError` thrown by the scoring runtime as an `AppError` (same code, message, status and stack); anything else as is. */
export function asAppError(e: unknown): unknown {
  if (!(e instanceof RuntimeError) || e instanceof AppError) return e;
  const app = new AppError(e.code, e.message, e.httpStatus);
  app.stack = e.stack;
  return app;
}

/** Runs runtime code (`f`): the `RuntimeError`s it throws or rejects with come out as `AppError`s (`asAppError`). */
export function fromRuntime<T>(f: () => T): T {
  let result: T;
  try {
    result = f();
  } catch (e) {
    throw asAppError(e);
  }
  return result instanceof Promise ? (result.catch((e: unknown) => Promise.reject(asAppError(e))) as T) : result;
}

/** The API error body: `{ "error": { "code", "message" } }`. */
export function errorBody(e: unknown): { error: ErrorInfo } {
  return { error: toErrorInfo(e) };
}

/** A ready-to-return HTTP response shape (status + JSON body) for any thrown value. */
export function errorResponse(e: unknown): { status: number; jsonBody: { error: ErrorInfo } } {
  return { status: httpStatusOf(e), jsonBody: errorBody(e) };
}
