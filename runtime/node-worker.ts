/**
 * Node scoring worker: one process per worker, started by the pool (runtime/pool.ts) with fds 3 (requests in)
 * and 4 (replies out). Serves either a Node entry script (`score.js` / `score.cjs` / `score.mjs` / `score.ts`
 * exporting `init()` and `run(input)`, sync or async) or, with `--onnx-worker-processes`, an ONNX model with no
 * script (by default ONNX models run on threads of the front process: in-process.ts).
 *
 * Entry script contract (see runtime/README.md): `run(input)` receives the parsed JSON body and its return
 * value is sent back as JSON. Optional exports: `raw = true` (run receives the request, see `RawRequest`),
 * `inputSample` / `outputSample` (swagger), and batch scripts receive `run(miniBatch)`.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RuntimeError } from './errors';
import { BatchQueue } from './batcher';
import { handleRequest, handleRequests, onnxHandler, parseJson, type Handler } from './handler';
import { encodeFrame, FrameDecoder, type ScriptSchema, type WorkerRequestHeader } from './protocol';
import { inputSchemaFromSamples, schemaFromSample } from './schema';
import { setCollectSink, withRequest } from './monitoring';

/** `require('azureml-monitoring')` in an entry script → the runtime's ModelDataCollector (monitoring.ts). */
function registerMonitoringModule(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Module = require('node:module') as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolve = Module._resolveFilename;
  const target = require.resolve('./monitoring');
  Module._resolveFilename = function (request: string, ...rest: unknown[]) {
    return request === 'azureml-monitoring' ? target : resolve.call(this, request, ...rest);
  };
}

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
    throw new RuntimeError('TypeScriptUnavailable', 'score.ts needs the "typescript" package next to the runtime; install it or ship score.js', 500);
  }
  require.extensions['.ts'] = (module, filename) => {
    const source = require('node:fs').readFileSync(filename, 'utf8') as string;
    const out = ts.transpileModule(source, {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    if (!canCompile(module)) throw new RuntimeError('TypeScriptUnavailable', 'this Node.js has no Module#_compile to load score.ts; ship score.js', 500);
    module._compile(out.outputText, filename);
  };
}

/** Node's CommonJS module internals a `require.extensions` handler compiles through (not in @types/node). */
interface CompilableModule {
  _compile(code: string, filename: string): void;
}

function canCompile(m: object): m is CompilableModule {
  return '_compile' in m && typeof m._compile === 'function';
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

async function main(): Promise<void> {
  const input = new net.Socket({ fd: 3, readable: true, writable: false });
  const output = new net.Socket({ fd: 4, readable: false, writable: true });
  const send = (header: object, body?: Buffer) => output.write(encodeFrame(header, body));
  registerMonitoringModule();
  if (process.env.AML_COLLECT_MODEL_DATA === '1') setCollectSink((header, body) => send(header, body));
  let handler: Handler;
  try {
    const script = process.env.AML_ENTRY_SCRIPT;
    const onnx = process.env.AML_ONNX_MODEL;
    if (script) handler = await scriptHandler(script);
    else if (onnx) handler = await onnxHandler(onnx, { threads: Number(process.env.AML_ONNX_THREADS) || undefined });
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
    const { id, ...request } = header;
    const reply = await withRequest(request.requestId, () => handleRequest(handler, request, body, debug));
    send({ t: 'res', id, status: reply.status, contentType: reply.contentType, headers: reply.headers }, reply.body);
  };
  const decoder = new FrameDecoder<WorkerRequestHeader>();
  // An ONNX model batches the requests that queue up while it runs (dynamic batching, batcher.ts).
  const maxBatchSize = Number(process.env.AML_MAX_BATCH_SIZE) || 1;
  const queue = handler.batchable && maxBatchSize > 1
    ? new BatchQueue<{ header: WorkerRequestHeader; body: Buffer }>({
        get maxBatchSize() { return handler.batchable?.() ? maxBatchSize : 1; },
        maxBatchDelayMs: Number(process.env.AML_MAX_BATCH_DELAY_MS) || 0,
        batchable: (f) => f.header.kind === 'score' && !f.header.warmup,
        process: async (frames) => {
          const done = await handleRequests(handler, frames.map((f) => ({ input: f.header, body: f.body })), debug);
          frames.forEach((f, i) => {
            const reply = done.replies[i];
            send({ t: 'res', id: f.header.id, status: reply.status, contentType: reply.contentType, headers: reply.headers }, reply.body);
          });
          send({ t: 'batch', runs: done.runs, fallbacks: done.fallbacks });
        },
      })
    : undefined;
  input.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      if (queue) queue.push(frame);
      else void handle(frame.header, frame.body);
    }
  });
  input.on('end', () => process.exit(0));
}

void main();
