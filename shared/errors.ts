/**
 * Errors a user can act on: a stable `code`, an actionable `message`, and the HTTP status the API maps it to.
 * HTTP bodies are `{ "error": { "code", "message" } }`; messages never carry secrets (see `redactSecrets`).
 */
import type { ErrorInfo } from './seams';

export class AppError extends Error {
  readonly code: string;
  readonly httpStatus: number;

  constructor(code: string, message: string, httpStatus = 400) {
    super(redactSecrets(message));
    this.name = 'AppError';
    this.code = code;
    this.httpStatus = httpStatus;
  }

  toInfo(): ErrorInfo {
    return { code: this.code, message: this.message };
  }
}

export const badRequest = (code: string, message: string) => new AppError(code, message, 400);
export const notFound = (code: string, message: string) => new AppError(code, message, 404);
export const conflict = (code: string, message: string) => new AppError(code, message, 409);
export const tooLarge = (code: string, message: string) => new AppError(code, message, 413);

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/** Any thrown value as `{ code, message }` (unknown errors become `InternalError`, secrets removed). */
export function toErrorInfo(e: unknown, fallbackCode = 'InternalError'): ErrorInfo {
  if (e instanceof AppError) return e.toInfo();
  if (e && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string' && /^[A-Z][A-Za-z]+$/.test((e as { code: string }).code)) {
    // Azure SDK RestErrors carry a service code such as `ContainerNotFound`.
    return { code: (e as { code: string }).code, message: redactSecrets(String((e as Error).message ?? e)) };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: fallbackCode, message: redactSecrets(message) };
}

/** HTTP status for a thrown value (AppError → its own; otherwise 500). */
export function httpStatusOf(e: unknown): number {
  return e instanceof AppError ? e.httpStatus : 500;
}

/** The API error body: `{ "error": { "code", "message" } }`. */
export function errorBody(e: unknown): { error: ErrorInfo } {
  return { error: toErrorInfo(e) };
}

/** A ready-to-return HTTP response shape (status + JSON body) for any thrown value. */
export function errorResponse(e: unknown): { status: number; jsonBody: { error: ErrorInfo } } {
  return { status: httpStatusOf(e), jsonBody: errorBody(e) };
}

const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // Storage / Service Bus connection string parts.
  [/(AccountKey|SharedAccessKey|SharedAccessSignature)=[^;'"\s]+/gi, '$1=***'],
  // SAS query parameters.
  [/([?&](sig|se|sv|sp|st|srt|ss|skoid|sktid|sks|skv|sr)=)[^&'"\s]+/gi, '$1***'],
  // Bearer tokens and Authorization headers.
  [/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, '$1***'],
  [/("?(primaryKey|secondaryKey|password|token|accessKey)"?\s*[:=]\s*"?)[^"',}\s]+/gi, '$1***'],
];

/** Removes keys, SAS signatures, tokens and connection-string secrets from a text. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const [re, repl] of SECRET_PATTERNS) out = out.replace(re, repl);
  return out;
}
