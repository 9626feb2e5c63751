/**
 * The smoke test a deployment must pass before traffic switches (seed: `service.run(test_sample)`):
 * 1. liveness: `GET /` until 200, bounded (a 503 `InitFailed` ends the wait at once with the script's error);
 * 2. swagger: fetched when the service has a schema (`GET /swagger.json`; 404 = no schema);
 * 3. scoring: `POST /score` with the test sample — or one generated from the input sample (manifest or swagger);
 * 4. checks: status 200, a JSON body, and the expected output (numeric tolerance) or the output sample's shape.
 * A failure carries a reason and, when a log source is given, the slot's last log lines.
 * `stopIf` is asked before each liveness probe and on failure: when it names a reason (e.g. the service was
 * deleted meanwhile), the test ends at once with that code instead of waiting out the liveness window.
 */
import { redactSecrets } from '../errors';
import { currentTraceparent } from '../telemetry';

export interface SmokeTestRequest {
  healthUri: string;
  scoringUri: string;
  swaggerUri?: string;
  /** Sent as `Authorization: Bearer <key>` (never logged, never in the result). */
  key?: string;
  /** Request body: any JSON value (a string is sent as raw text). */
  sample?: unknown;
  /** Raw request bytes (base64), sent as `application/octet-stream` instead of `sample`. */
  sampleBase64?: string;
  expectedOutput?: unknown;
  /**
   * `json` (default): the body must be JSON, compared with tolerance; `text`: the body as UTF-8 text must equal
   * `expectedOutput`; `base64`: the body's bytes must equal the bytes `expectedOutput` encodes (raw `@rawhttp` services).
   */
  expectedOutputFormat?: 'json' | 'text' | 'base64';
  /** Absolute/relative tolerance for numbers in `expectedOutput` (default 1e-6). */
  tolerance?: number;
  inputSample?: unknown;
  outputSample?: unknown;
  livenessTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Last lines of the slot's log, fetched only on failure. */
  logTail?: () => Promise<string>;
  /** Why the test must stop now (checked between probes and on failure), or undefined to go on. */
  stopIf?: () => Promise<{ code: string; message: string } | undefined>;
}

export interface SmokeTestResult {
  ok: boolean;
  reason?: string;
  /** Error code of a failure that is not the slot's fault (`stopIf`), e.g. `ServiceDeleted`. */
  code?: string;
  status?: number;
  /** Scoring-call latency (ms). */
  latencyMs?: number;
  livenessMs?: number;
  swagger: 'present' | 'absent' | 'error' | 'skipped';
  /** Output of the scoring call (truncated to 2 KB of JSON). */
  output?: unknown;
  checks: string[];
  logTail?: string;
}

/** The run's trace context for the scoring call (inside the smoke test step): the replica's request span joins the run's trace. */
function traceHeader(): Record<string, string> {
  const tp = currentTraceparent();
  return tp ? { traceparent: tp } : {};
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fetchWithTimeout(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    return await fetch(url, { ...init, signal: ctl.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** True when `actual` equals `expected`, numbers within tolerance (absolute or relative). */
export function matchesExpected(actual: unknown, expected: unknown, tolerance = 1e-6): boolean {
  if (typeof expected === 'number' && typeof actual === 'number') {
    return Math.abs(actual - expected) <= tolerance || Math.abs(actual - expected) <= tolerance * Math.abs(expected);
  }
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => matchesExpected(actual[i], e, tolerance));
  }
  if (expected && typeof expected === 'object') {
    if (!actual || typeof actual !== 'object' || Array.isArray(actual)) return false;
    const ek = Object.keys(expected).sort();
    const ak = Object.keys(actual).sort();
    return ek.length === ak.length && ek.every((k, i) => k === ak[i] && matchesExpected((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k], tolerance));
  }
  return actual === expected;
}

/** Why `actual` does not have the shape of `sample` (types, nesting, object keys; array lengths may differ), or undefined. */
export function shapeMismatch(actual: unknown, sample: unknown, at = 'output'): string | undefined {
  const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (kind(sample) !== kind(actual)) return `${at} is ${kind(actual)}, the output sample has ${kind(sample)}`;
  if (Array.isArray(sample) && Array.isArray(actual)) {
    if (sample.length === 0 || actual.length === 0) return undefined;
    return shapeMismatch(actual[0], sample[0], `${at}[0]`);
  }
  if (sample && typeof sample === 'object') {
    for (const k of Object.keys(sample)) {
      if (!(k in (actual as object))) return `${at}.${k} is missing`;
      const why = shapeMismatch((actual as Record<string, unknown>)[k], (sample as Record<string, unknown>)[k], `${at}.${k}`);
      if (why) return why;
    }
  }
  return undefined;
}

function truncate(v: unknown): unknown {
  const s = JSON.stringify(v);
  return s !== undefined && s.length > 2048 ? `${s.slice(0, 2048)}…` : v;
}

export async function runSmokeTest(req: SmokeTestRequest): Promise<SmokeTestResult> {
  const checks: string[] = [];
  const result: SmokeTestResult = { ok: false, swagger: 'skipped', checks };
  const auth: Record<string, string> = req.key ? { authorization: `Bearer ${req.key}` } : {};
  const requestTimeout = req.requestTimeoutMs ?? 30_000;
  const stopped = async () => (req.stopIf ? req.stopIf().catch(() => undefined) : undefined);
  const fail = async (reason: string): Promise<SmokeTestResult> => {
    result.ok = false;
    // A failure caused by the deletion (connection refused...) reports the deletion, not the symptom.
    const stop = await stopped();
    if (stop) return stopWith(stop);
    result.reason = redactSecrets(req.key ? reason.split(req.key).join('***') : reason);
    if (req.logTail) {
      try {
        result.logTail = redactSecrets(await req.logTail());
      } catch {
        /* no log */
      }
    }
    return result;
  };
  const stopWith = (stop: { code: string; message: string }): SmokeTestResult => {
    result.ok = false;
    result.code = stop.code;
    result.reason = redactSecrets(stop.message);
    return result;
  };

  // 1. Liveness (bounded).
  const started = Date.now();
  const deadline = started + (req.livenessTimeoutMs ?? 60_000);
  let delay = 50;
  let lastProblem = 'no answer';
  for (;;) {
    const stop = await stopped();
    if (stop) return stopWith(stop);
    try {
      const res = await fetchWithTimeout(req.healthUri, { method: 'GET' }, Math.min(requestTimeout, 10_000));
      const text = await res.text();
      if (res.status === 200) break;
      lastProblem = `GET / answered ${res.status}`;
      try {
        const err = JSON.parse(text) as { error?: { code?: string; message?: string } };
        if (err.error?.message) lastProblem += `: ${err.error.message}`;
        if (err.error?.code === 'InitFailed') return fail(`The service is not live: ${err.error.message}`);
      } catch {
        /* plain text */
      }
    } catch (e) {
      lastProblem = (e as Error).message;
    }
    if (Date.now() + delay > deadline) {
      return fail(`The service did not answer GET / with 200 within ${req.livenessTimeoutMs ?? 60_000} ms (last: ${lastProblem}).`);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 1000);
  }
  result.livenessMs = Date.now() - started;
  checks.push(`liveness ok in ${result.livenessMs} ms`);

  // 2. Swagger.
  let swaggerInput: unknown;
  let swaggerOutput: unknown;
  if (req.swaggerUri) {
    try {
      const res = await fetchWithTimeout(req.swaggerUri, { headers: auth }, requestTimeout);
      if (res.status === 200) {
        const doc = (await res.json()) as { definitions?: Record<string, { example?: unknown }> };
        result.swagger = 'present';
        swaggerInput = doc.definitions?.ServiceInput?.example;
        swaggerOutput = doc.definitions?.ServiceOutput?.example;
        checks.push('swagger.json present');
      } else if (res.status === 404) {
        result.swagger = 'absent';
        await res.text();
        checks.push('no swagger (the script declares no schema)');
      } else {
        result.swagger = 'error';
        await res.text();
        return fail(`GET /swagger.json answered ${res.status}.`);
      }
    } catch (e) {
      result.swagger = 'error';
      return fail(`GET /swagger.json failed: ${(e as Error).message}`);
    }
  }

  // 3. Scoring call.
  const raw = req.sampleBase64 !== undefined ? Buffer.from(req.sampleBase64, 'base64') : undefined;
  const sample = raw ?? (req.sample !== undefined ? req.sample : req.inputSample !== undefined ? req.inputSample : swaggerInput);
  if (sample === undefined) {
    checks.push('no test sample, input sample or swagger example: liveness only');
    result.ok = true;
    return result;
  }
  const body: string | Buffer = raw ?? (typeof sample === 'string' ? sample : JSON.stringify(sample));
  const contentType = raw ? 'application/octet-stream' : typeof sample === 'string' ? 'text/plain' : 'application/json';
  // A 503 with Retry-After (every worker busy, e.g. with a call a killed host abandoned) is retried within the
  // request timeout; any other answer counts.
  const scoreDeadline = Date.now() + requestTimeout;
  let t0: number;
  let res: Response;
  let text: string;
  let bytes: Buffer;
  for (let retryDelay = 250; ; retryDelay = Math.min(retryDelay * 2, 2_000)) {
    t0 = performance.now();
    try {
      res = await fetchWithTimeout(
        req.scoringUri,
        { method: 'POST', headers: { 'content-type': contentType, ...auth, ...traceHeader() }, body: typeof body === 'string' ? body : new Uint8Array(body) },
        Math.max(1, scoreDeadline - Date.now()),
      );
      bytes = Buffer.from(await res.arrayBuffer());
      text = bytes.toString('utf8');
    } catch (e) {
      return fail(`POST /score failed: ${(e as Error).name === 'AbortError' ? `no answer within ${requestTimeout} ms` : (e as Error).message}`);
    }
    const transient = res.status === 503 && res.headers.has('retry-after') && !text.includes('"InitFailed"');
    if (!transient || Date.now() + retryDelay >= scoreDeadline) break;
    await sleep(retryDelay);
  }
  result.latencyMs = Math.round((performance.now() - t0) * 100) / 100;
  result.status = res.status;
  if (res.status !== 200) {
    let detail = text.slice(0, 500);
    try {
      const err = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (err.error) detail = `${err.error.code}: ${err.error.message}`;
    } catch {
      /* raw */
    }
    return fail(`POST /score answered ${res.status}: ${detail}`);
  }
  checks.push(`POST /score 200 in ${result.latencyMs} ms`);
  // Raw services (`@rawhttp`): the body is text or bytes, compared as such.
  const format = req.expectedOutputFormat ?? 'json';
  if (format !== 'json') {
    result.output = format === 'text' ? truncate(text) : truncate(bytes.toString('base64'));
    if (req.expectedOutput !== undefined) {
      const same = format === 'text' ? text === req.expectedOutput : bytes.equals(Buffer.from(String(req.expectedOutput), 'base64'));
      if (!same) {
        const shown = format === 'text' ? JSON.stringify(text.slice(0, 200)) : `${bytes.length} bytes (base64 ${bytes.toString('base64').slice(0, 120)})`;
        return fail(`The ${format} output ${shown} differs from the expected ${format} output.`);
      }
      checks.push(`output matches the expected ${format} output`);
    }
    result.ok = true;
    return result;
  }
  let output: unknown;
  try {
    output = JSON.parse(text);
  } catch {
    return fail(`POST /score answered 200 but the body is not JSON: ${text.slice(0, 200)}`);
  }
  // AML scripts often return json.dumps(...): a JSON string holding JSON. Compare its content.
  if (typeof output === 'string') {
    try {
      output = JSON.parse(output);
      checks.push('output is a JSON-encoded string (json.dumps in run()); compared its content');
    } catch {
      /* a plain string result */
    }
  }
  result.output = truncate(output);

  // 4. Expected output or output shape.
  if (req.expectedOutput !== undefined) {
    if (!matchesExpected(output, req.expectedOutput, req.tolerance ?? 1e-6)) {
      return fail(`The output ${JSON.stringify(truncate(output))} differs from the expected ${JSON.stringify(truncate(req.expectedOutput))}.`);
    }
    checks.push('output matches the expected output');
  } else {
    const shape = req.outputSample !== undefined ? req.outputSample : swaggerOutput;
    if (shape !== undefined) {
      const why = shapeMismatch(output, shape);
      if (why) return fail(`The output does not have the output sample's shape: ${why}.`);
      checks.push("output has the output sample's shape");
    }
  }
  result.ok = true;
  return result;
}
