/** Where the runtime's own files are, and how a worker process of each kind is started. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RuntimeError } from './errors';
import { workerEnv } from './child-env';
import { findOnnxModel } from './onnx';
import type { ServerOptions } from './options';
import type { WorkerLaunch } from './pool';

/** The kind of scoring runtime: a Python or Node entry script, or an ONNX model served with no script. */
export type RuntimeKind = 'python' | 'node' | 'onnx';

/** The package root (the folder with package.json), from either `runtime/` (ts) or `dist/runtime/` (js). */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new RuntimeError('RuntimeFilesMissing', `No package.json above ${__dirname}`, 500);
    dir = up;
  }
}

export const pythonAssetsDir = (): string => path.join(packageRoot(), 'runtime', 'python');
export const nodeWorkerPath = (): string => path.join(packageRoot(), 'dist', 'runtime', 'node-worker.js');

export function detectRuntime(options: ServerOptions): RuntimeKind {
  if (options.runtime) return options.runtime;
  if (!options.entryScript) return 'onnx';
  const ext = path.extname(options.entryScript).toLowerCase();
  if (ext === '.py') return 'python';
  if (['.js', '.cjs', '.mjs', '.ts'].includes(ext)) return 'node';
  throw new RuntimeError('UnsupportedEntryScript', `Cannot tell the runtime of ${path.basename(options.entryScript)}: use a .py, .js, .cjs, .mjs or .ts entry script, or pass --runtime`, 400);
}

/** onnxruntime intra-op threads per run: `--onnx-threads`, else the machine's cores shared by the workers. */
export function onnxThreads(options: Pick<ServerOptions, 'onnxThreads' | 'workers'>): number {
  return options.onnxThreads || Math.max(1, Math.floor(os.availableParallelism() / options.workers));
}

/** How the model of `options` runs; `onnxModel` is set for an ONNX model (served in-process unless `--onnx-worker-processes`). */
export function workerLaunch(options: ServerOptions): { kind: RuntimeKind; launch: WorkerLaunch; onnxModel?: string } {
  const kind = detectRuntime(options);
  const modelDir = options.modelDir ? path.resolve(options.modelDir) : undefined;
  if (modelDir && !fs.existsSync(modelDir)) throw new RuntimeError('ModelDirNotFound', `The model folder ${modelDir} does not exist`, 400);
  // The allow-listed environment only (child-env.ts): never the front's settings, credentials or keys.
  const env = (vars: Record<string, string>): NodeJS.ProcessEnv => workerEnv({
    AML_MAX_CONCURRENT: String(options.maxConcurrent),
    AML_DEBUG: options.debug ? '1' : '0',
    // ModelDataCollector records are sent to the front only when collection is on (collector.ts).
    AML_COLLECT_MODEL_DATA: options.collectModelData ? '1' : '0',
    ...(modelDir ? { AZUREML_MODEL_DIR: modelDir } : {}),
    ...vars,
  }, options.env);
  if (kind === 'onnx') {
    const source = options.entryScript ? undefined : modelDir;
    const model = source ? findOnnxModel(source) : undefined;
    if (!model) throw new RuntimeError('OnnxModelNotFound', `No ONNX model: pass --model-dir with model.onnx (or a single .onnx file) when no --entry-script is given`, 400);
    return {
      kind,
      onnxModel: model,
      launch: { command: process.execPath, args: [nodeWorkerPath()], env: env({
        AML_ONNX_MODEL: model, AML_ONNX_THREADS: String(onnxThreads(options)),
        AML_MAX_BATCH_SIZE: String(options.maxBatchSize), AML_MAX_BATCH_DELAY_MS: String(options.maxBatchDelayMs),
      }) },
    };
  }
  const script = path.resolve(options.entryScript!);
  if (!fs.existsSync(script)) throw new RuntimeError('EntryScriptNotFound', `The entry script ${script} does not exist`, 400);
  if (kind === 'python') {
    return {
      kind,
      launch: {
        command: options.python,
        args: ['-u', path.join(pythonAssetsDir(), 'amlworker.py')],
        env: env({ AML_ENTRY_SCRIPT: script, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' }),
      },
    };
  }
  return { kind, launch: { command: process.execPath, args: [nodeWorkerPath()], env: env({ AML_ENTRY_SCRIPT: script }) } };
}
