/**
 * Node scoring worker: one process per worker, started by the pool (runtime/pool.ts) with fds 3 (requests in)
 * and 4 (replies out). Serves either a Node entry script (`score.js` / `score.cjs` / `score.mjs` / `score.ts`
 * exporting `init()` and `run(input)`, sync or async) or an ONNX model with no script.
 *
 * Entry script contract (see runtime/README.md): `run(input)` receives the parsed JSON body and its return
 * value is sent back as JSON. Optional exports: `raw = true` (run receives the request, see `RawRequest`),
 * `inputSample` / `outputSample` (swagger), and batch scripts receive `run(miniBatch)`.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { AppError } from '../shared/errors';
import { OnnxModel } from './onnx';
import { encodeFrame, FrameDecoder, type ScriptSchema, type WorkerRequestHeader } from './protocol';
import { inputSchemaFromSamples, schemaFromSample } from './schema';

const debug = process.env.AML_DEBUG === '1';

export interface RawRequest {
  method: string;
  path: string;
  fullPath: string;
  query: string;
  headers: Record<string, string>;
  body: Buffer;
  text(): string;
  json(): unknown;
}

interface Handler {
  rawHttp: boolean;
  schema: ScriptSchema | null;
  score(header: WorkerRequestHeader, body: Buffer): Promise<unknown>;
  batch(miniBatch: unknown[]): Promise<unknown>;
}

interface ScriptModule {
  init?: () => unknown;
  run?: (input: unknown) => unknown;
  raw?: boolean;
  inputSample?: unknown;
  outputSample?: unknown;
  default?: ScriptModule;
}

const dynamicImport = new Function('u', 'return import(u)') as (u: string) => Promise<ScriptModule>;

function registerTypeScript(): void {
  if (require.extensions['.ts']) return;
  let ts: typeof import('typescript');
  try {
    ts = require('typescript') as typeof import('typescript');
  } catch {
    throw new AppError('TypeScriptUnavailable', 'score.ts needs the "typescript" package next to the runtime; install it or ship score.js', 500);
  }
  require.extensions['.ts'] = (module, filename) => {
    const source = require('node:fs').readFileSync(filename, 'utf8') as string;
    const out = ts.transpileModule(source, {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    (module as unknown as { _compile(code: string, file: string): void })._compile(out.outputText, filename);
  };
}

async function loadScript(file: string): Promise<ScriptModule> {
  const abs = path.resolve(file);
  process.chdir(path.dirname(abs));
  let mod: ScriptModule;
  if (abs.endsWith('.mjs')) mod = await dynamicImport(pathToFileURL(abs).href);
  else {
    if (abs.endsWith('.ts')) registerTypeScript();
    mod = require(abs) as ScriptModule;
  }
  if (typeof mod.run !== 'function' && mod.default && typeof mod.default.run === 'function') mod = mod.default;
  return mod;
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new AppError('InvalidInput', `The request body is not valid JSON: ${(e as Error).message}`, 400);
  }
}

async function scriptHandler(file: string): Promise<Handler> {
  const mod = await loadScript(file);
  const run = mod.run;
  if (typeof run !== 'function') throw new Error(`${path.basename(file)} exports no run() function`);
  if (typeof mod.init === 'function') await mod.init();
  const schema: ScriptSchema | null =
    mod.inputSample !== undefined || mod.outputSample !== undefined
      ? {
          input: mod.inputSample === undefined ? null
            : mod.inputSample && typeof mod.inputSample === 'object' && !Array.isArray(mod.inputSample)
              ? inputSchemaFromSamples(mod.inputSample as Record<string, unknown>) : schemaFromSample(mod.inputSample),
          output: mod.outputSample === undefined ? null : schemaFromSample(mod.outputSample),
        }
      : null;
  const rawHttp = mod.raw === true;
  return {
    rawHttp,
    schema,
    async score(header, body) {
      if (rawHttp) {
        const req: RawRequest = {
          method: header.method,
          path: header.path,
          fullPath: header.query ? `${header.path}?${header.query}` : header.path,
          query: header.query,
          headers: header.headers,
          body,
          text: () => body.toString('utf8'),
          json: () => parseJson(body),
        };
        return run(req);
      }
      return run(parseJson(body));
    },
    async batch(miniBatch) {
      return run(miniBatch);
    },
  };
}

async function onnxHandler(file: string): Promise<Handler> {
  const model = await OnnxModel.load(file);
  return {
    rawHttp: false,
    schema: model.schema(),
    score: (_h, body) => model.run(parseJson(body)),
    batch: (rows) => model.runBatch(rows),
  };
}

/** A raw script may answer `{ status, body, headers? }`; anything else is JSON. */
function toReply(result: unknown, rawHttp: boolean): { status: number; contentType: string; headers: Record<string, string>; body: Buffer } {
  if (rawHttp && result && typeof result === 'object' && !Buffer.isBuffer(result) && typeof (result as { status?: unknown }).status === 'number') {
    const r = result as { status: number; body?: unknown; headers?: Record<string, string> };
    const headers = { ...(r.headers ?? {}) };
    let contentType = '';
    for (const k of Object.keys(headers)) if (k.toLowerCase() === 'content-type') { contentType = headers[k]; delete headers[k]; }
    const body = r.body === undefined || r.body === null ? Buffer.alloc(0)
      : Buffer.isBuffer(r.body) ? r.body
      : r.body instanceof Uint8Array ? Buffer.from(r.body)
      : typeof r.body === 'string' ? Buffer.from(r.body, 'utf8')
      : Buffer.from(JSON.stringify(r.body), 'utf8');
    contentType ||= Buffer.isBuffer(r.body) || r.body instanceof Uint8Array ? 'application/octet-stream' : typeof r.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json';
    return { status: r.status, contentType, headers, body };
  }
  if (rawHttp && (Buffer.isBuffer(result) || result instanceof Uint8Array)) {
    return { status: 200, contentType: 'application/octet-stream', headers: {}, body: Buffer.from(result) };
  }
  return { status: 200, contentType: 'application/json', headers: {}, body: Buffer.from(JSON.stringify(result ?? null), 'utf8') };
}

function errorReply(e: unknown, fallbackCode: string): { status: number; body: Buffer } {
  const status = e instanceof AppError ? e.httpStatus : 500;
  const code = e instanceof AppError ? e.code : fallbackCode;
  const err = e as Error;
  const error: Record<string, string> = { code, message: e instanceof AppError ? err.message : `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}` };
  if (debug && err?.stack) error.stack = err.stack;
  return { status, body: Buffer.from(JSON.stringify({ error }), 'utf8') };
}

async function main(): Promise<void> {
  const input = new net.Socket({ fd: 3, readable: true, writable: false });
  const output = new net.Socket({ fd: 4, readable: false, writable: true });
  const send = (header: object, body?: Buffer) => output.write(encodeFrame(header, body));
  let handler: Handler;
  try {
    const script = process.env.AML_ENTRY_SCRIPT;
    const onnx = process.env.AML_ONNX_MODEL;
    if (script) handler = await scriptHandler(script);
    else if (onnx) handler = await onnxHandler(onnx);
    else throw new Error('Neither AML_ENTRY_SCRIPT nor AML_ONNX_MODEL is set');
  } catch (e) {
    const err = e as Error;
    console.error(err?.stack ?? String(e));
    send({ t: 'init_error', message: `init() failed: ${err?.message ?? String(e)}`, ...(debug && err?.stack ? { stack: err.stack } : {}) });
    output.end(() => process.exit(3));
    return;
  }
  send({ t: 'ready', pid: process.pid, rawHttp: handler.rawHttp, schema: handler.schema });

  const handle = async (header: WorkerRequestHeader, body: Buffer) => {
    try {
      if (header.kind === 'batch') {
        const payload = parseJson(body) as { mini_batch?: unknown };
        if (!payload || !Array.isArray(payload.mini_batch)) throw new AppError('InvalidMiniBatch', 'Send {"mini_batch": [...]}: mini_batch must be a list', 400);
        let results = await handler.batch(payload.mini_batch);
        if (!Array.isArray(results)) results = [results];
        const list = results as unknown[];
        send({ t: 'res', id: header.id, status: 200, contentType: 'application/json' }, Buffer.from(JSON.stringify({ results: list, count: list.length })));
        return;
      }
      const reply = toReply(await handler.score(header, body), handler.rawHttp);
      send({ t: 'res', id: header.id, status: reply.status, contentType: reply.contentType, headers: reply.headers }, reply.body);
    } catch (e) {
      const r = errorReply(e, 'RunFailed');
      send({ t: 'res', id: header.id, status: r.status, contentType: 'application/json' }, r.body);
    }
  };
  const decoder = new FrameDecoder<WorkerRequestHeader>();
  input.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) void handle(frame.header, frame.body);
  });
  input.on('end', () => process.exit(0));
}

void main();
