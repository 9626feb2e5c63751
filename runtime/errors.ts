/**
 * The scoring runtime's errors: a stable `code`, an actionable `message` (secrets removed) and the HTTP status the
 * runtime answers with (`{ "error": { "code", "message" } }`). The app's `AppError` (shared/errors.ts) extends it.
 */

/** `{ code, message }` of an error, as the runtime answers and logs it. */
export interface RuntimeErrorInfo {
  code: string;
  message: string;
}

export class RuntimeError extends Error {
  readonly code: string;
  readonly httpStatus: number;

  constructor(code: string, message: string, httpStatus = 400) {
    super(redactSecrets(message));
    this.name = 'RuntimeError';
    this.code = code;
    this.httpStatus = httpStatus;
  }

  toInfo(): RuntimeErrorInfo {
    return { code: this.code, message: this.message };
  }
}

/** Any thrown value as `{ code, message }` (unknown errors become `InternalError`, secrets removed). */
export function toErrorInfo(e: unknown, fallbackCode = 'InternalError'): RuntimeErrorInfo {
  if (e instanceof RuntimeError) return e.toInfo();
  if (e && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string' && /^[A-Z][A-Za-z]+$/.test((e as { code: string }).code)) {
    // Azure SDK RestErrors carry a service code such as `ContainerNotFound`.
    return { code: (e as { code: string }).code, message: redactSecrets(String((e as Error).message ?? e)) };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: fallbackCode, message: redactSecrets(message) };
}

/** HTTP status for a thrown value (a RuntimeError → its own; otherwise 500). */
export function httpStatusOf(e: unknown): number {
  return e instanceof RuntimeError ? e.httpStatus : 500;
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
