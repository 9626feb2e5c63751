/**
 * Errors a user can act on: a stable `code`, an actionable `message`, and the HTTP status the API maps it to.
 * HTTP bodies are `{ "error": { "code", "message" } }`; messages never carry secrets (see `redactSecrets`).
 *
 * `AppError` is the scoring runtime's `RuntimeError` (runtime/errors.ts) for the app: the same three fields, the
 * same redaction, and `toErrorInfo` / `httpStatusOf` read both. Where the app calls runtime code that can throw a
 * user's mistake, `asAppError` turns the runtime's error into an `AppError` (same code, message and status).
 */
import { RuntimeError, httpStatusOf, redactSecrets, toErrorInfo } from '../runtime';
import type { ErrorInfo } from './seams';

export { httpStatusOf, redactSecrets, toErrorInfo };

export class AppError extends RuntimeError {
  constructor(code: string, message: string, httpStatus = 400) {
    super(code, message, httpStatus);
    this.name = 'AppError';
  }
}

export const badRequest = (code: string, message: string) => new AppError(code, message, 400);
export const notFound = (code: string, message: string) => new AppError(code, message, 404);
export const conflict = (code: string, message: string) => new AppError(code, message, 409);
export const tooLarge = (code: string, message: string) => new AppError(code, message, 413);

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
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
