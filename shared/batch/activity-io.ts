/**
 * How the batch activities (activities/batch-*.ts) report errors (their inputs and outputs: contract.ts):
 * - a problem the user must fix (an AppError with a 4xx status: missing inputs, unknown model...) comes back as
 *   `{ ok: false, error }` — retrying would not help, so the activity does not throw;
 * - anything else is thrown as `[Code] message`, so durable retries apply and the orchestrator can still tell the
 *   code (`errorInfoOfTask`).
 */
import { AppError, toErrorInfo } from '../errors';
import type { ErrorInfo } from '../seams';
import type { ActivityResult } from './contract';

/** Runs `fn`: user errors → `{ ok: false }`, other errors thrown with their code in the message. */
export async function asActivityResult<T>(fn: () => Promise<T>): Promise<ActivityResult<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof AppError && e.httpStatus < 500) return { ok: false, error: e.toInfo() };
    throw asThrowable(e);
  }
}

/** An Error whose message carries the code: `[Code] message` (secrets removed). */
export function asThrowable(e: unknown): Error {
  const info = toErrorInfo(e);
  return new Error(`[${info.code}] ${info.message}`);
}

/** The `{ code, message }` of a failed task / thrown error (`[Code] message` → code), for orchestrators. */
export function errorInfoOfTask(e: unknown, fallbackCode = 'InternalError'): ErrorInfo {
  const message = e instanceof Error ? e.message : String(e);
  const m = /\[([A-Z][A-Za-z]+)\] ([\s\S]*)$/.exec(message);
  return m ? { code: m[1], message: m[2].slice(0, 1000) } : { code: fallbackCode, message: message.slice(0, 1000) };
}
