/**
 * The virtual module `@azure/functions-core`, as the Azure Functions Node worker provides it.
 *
 * `@azure/functions` (v4) requires this module, calls `setProgrammingModel()` once and
 * `registerFunction(metadata, handler)` for every `app.http(...)`, `df.app.orchestration(...)`, ...
 * The local host provides the same object so that it learns every function of the unchanged app.
 *
 * It is installed twice, for the two ways a module can be loaded here:
 *  - plain Node (the `npm start` host): a `Module._resolveFilename` hook maps the name to `functionsCoreModule.js`;
 *  - Jest (tests load the app in-process through Jest's own module registry): `moduleNameMapper`
 *    maps the name to the same file.
 * Both return the single instance kept on `globalThis`, so a Jest test and the host share registrations.
 */
import Module = require('module');
import * as path from 'path';
import { createLogger } from '../runtime';

export interface RpcBindingInfo {
  type?: string | null;
  direction?: 'in' | 'out' | 'inout' | null;
  [key: string]: unknown;
}

export interface FunctionMetadata {
  name: string;
  bindings: Record<string, RpcBindingInfo>;
  retryOptions?: unknown;
}

export type FunctionCallback = (...args: unknown[]) => unknown;

export interface RegisteredFunction {
  metadata: FunctionMetadata;
  callback: FunctionCallback;
  triggerName: string;
  trigger: RpcBindingInfo;
}

export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(coreCtx: unknown): {
    getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
    invokeFunction(context: unknown, inputs: unknown[], handler: FunctionCallback): Promise<unknown>;
    getResponse(context: unknown, result: unknown): Promise<RpcInvocationResponse>;
  };
  getCapabilities?(capabilities: Record<string, string>): Promise<Record<string, string>>;
}

export interface RpcTypedData {
  string?: string | null;
  json?: string | null;
  bytes?: Uint8Array | null;
  http?: Record<string, unknown> | null;
  int?: number | null;
  double?: number | null;
  [key: string]: unknown;
}

export interface RpcInvocationResponse {
  invocationId?: string;
  outputData?: { name: string; data?: RpcTypedData | null }[];
  returnValue?: RpcTypedData | null;
}

export type HookName = 'preInvocation' | 'postInvocation' | 'appStart' | 'appTerminate';
export type HookCallback = (context: Record<string, unknown>) => unknown;
export type LogSink = (level: string, category: string, message: string) => void;

export interface CoreApi {
  version: string;
  registerFunction(metadata: FunctionMetadata, callback: FunctionCallback): { dispose(): void };
  setProgrammingModel(model: ProgrammingModel): void;
  getProgrammingModel(): ProgrammingModel;
  registerHook(name: HookName, callback: HookCallback): { dispose(): void };
  log(level: string, category: string, message: string): void;
  Disposable: typeof Disposable;
}

class Disposable {
  #fn?: () => void;
  constructor(fn: () => void) {
    this.#fn = fn;
  }
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((i) => i.dispose()));
  }
  dispose(): void {
    this.#fn?.();
    this.#fn = undefined;
  }
}

/** What the host reads back: registrations, the programming model, hooks. */
export interface CoreState {
  api: CoreApi;
  functions: Map<string, RegisteredFunction>;
  model?: ProgrammingModel;
  hooks: Record<HookName, HookCallback[]>;
  logSink: LogSink;
  /** Data for extra input bindings by binding type (e.g. `durableClient`), set by the running host. */
  bindingData?: (type: string) => RpcTypedData | undefined;
  /**
   * What the programming model answered to `getCapabilities` (asked once per process, as the worker does at init).
   * `HttpUri` set = the app enabled HTTP streaming: the host forwards each HTTP request there (see host.ts).
   */
  capabilities?: Record<string, string>;
  /** The HTTP proxy server the programming model started for streaming (the host unrefs it so it never keeps a process alive). */
  httpProxyServer?: import('http').Server;
}

const KEY = Symbol.for('model-deploy-flow.functions-core');
type GlobalWithCore = typeof globalThis & { [KEY]?: CoreState };

const TRIGGER_SUFFIX = /trigger$/i;

const appLogOut = createLogger();
const appLogErr = createLogger({ stream: process.stderr });

/** The process-wide core state (created on first use). */
export function coreState(): CoreState {
  const g = globalThis as GlobalWithCore;
  if (g[KEY]) return g[KEY];
  const state: Omit<CoreState, 'api'> = {
    functions: new Map(),
    hooks: { preInvocation: [], postInvocation: [], appStart: [], appTerminate: [] },
    logSink: (level, category, message) => {
      if (category === 'system' && (level === 'debug' || level === 'trace')) return;
      // The app's context.log lines: JSON records like the host's own (runtime/log.ts), errors and warnings on stderr.
      const lvl = level === 'error' || level === 'critical' ? 'error' : level === 'warning' ? 'warn' : level === 'debug' || level === 'trace' ? 'debug' : 'info';
      (lvl === 'error' || lvl === 'warn' ? appLogErr : appLogOut)({ event: 'function', level: lvl, category, message });
    },
  };
  const api: CoreApi = {
    version: '3.10.1',
    Disposable,
    registerFunction(metadata, callback) {
      if (state.functions.has(metadata.name)) {
        throw new Error(`A function with the name "${metadata.name}" has already been registered.`);
      }
      const entry = Object.entries(metadata.bindings).find(([, b]) => TRIGGER_SUFFIX.test(String(b.type ?? '')));
      if (!entry) throw new Error(`Function "${metadata.name}" has no trigger binding.`);
      state.functions.set(metadata.name, { metadata, callback, triggerName: entry[0], trigger: entry[1] });
      return new Disposable(() => state.functions.delete(metadata.name));
    },
    setProgrammingModel(model) {
      state.model = model;
    },
    getProgrammingModel() {
      if (!state.model) throw new Error('No programming model has been set.');
      return state.model;
    },
    registerHook(name, callback) {
      state.hooks[name].push(callback);
      return new Disposable(() => {
        const list = state.hooks[name];
        const i = list.indexOf(callback);
        if (i >= 0) list.splice(i, 1);
      });
    },
    log(level, category, message) {
      state.logSink(level, category, message);
    },
  };
  const core: CoreState = Object.assign(state, { api });
  g[KEY] = core;
  return core;
}

/** Node's CommonJS loader internals the hook below replaces (not in @types/node). */
interface ModuleLoader {
  _resolveFilename: (request: string, ...rest: unknown[]) => string;
  __mdfCoreInstalled?: boolean;
}

function isModuleLoader(m: object): m is ModuleLoader {
  return '_resolveFilename' in m && typeof m._resolveFilename === 'function';
}

/** Make `require('@azure/functions-core')` resolve to this state in plain Node. Idempotent. */
export function installCoreModule(): void {
  const M: object = Module;
  if (!isModuleLoader(M)) throw new Error('This Node.js has no Module._resolveFilename: cannot provide @azure/functions-core.');
  coreState();
  if (M.__mdfCoreInstalled) return;
  const target = path.join(__dirname, 'functionsCoreModule.js');
  const original = M._resolveFilename;
  M._resolveFilename = function (request: string, ...rest: unknown[]) {
    if (request === '@azure/functions-core') return target;
    return original.call(this, request, ...rest);
  };
  M.__mdfCoreInstalled = true;
}
