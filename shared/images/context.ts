/**
 * The image build context (`ContainerImage.create`): model files + entry script + environment file + the
 * scoring runtime (compiled JS and Python assets of this repo's `runtime/`) + a generated Dockerfile.
 *
 * Layout inside the archive:
 * ```
 * Dockerfile
 * image.json                     what to run: runtime, entry script, model dir, environment file
 * app/package.json               the runtime's npm dependencies
 * app/dist/runtime/*.js          the compiled runtime (it requires nothing outside dist/runtime)
 * app/runtime/python/**          the runtime's Python worker and AML compatibility modules
 * app/code/<entry script>        the user's script and environment file
 * models/<name>/<version>/<file> every model the image embeds
 * ```
 * Nothing time- or version-dependent goes in, so identical inputs give an identical archive digest.
 */
import * as fs from 'fs';
import * as path from 'path';
import { builtinModules } from 'module';
import { AppError } from '../errors';
import type { EnvironmentKind } from '../manifest/schema';
import type { RuntimeKind } from '../seams';
import { packageRoot, pythonAssetsDir } from '../../runtime';
import type { ArchiveEntry } from './archive';

export const IMAGE_METADATA_FILE = 'image.json';
export const RUNTIME_ENTRY = 'app/dist/runtime/cli.js';

/** `image.json`: how a target runs the context (the local target reads it; the Dockerfile mirrors it). */
export interface ImageMetadata {
  schemaVersion: 1;
  runtime: RuntimeKind;
  /** Path in the context of the runtime's CLI. */
  runtimeEntry: string;
  /** Path in the context of the entry script (absent: ONNX served with no script). */
  entryScript?: string;
  /** Path in the context given to `--model-dir` (one model: its version folder; several: `models`). */
  modelDir: string;
  models: string[];
  environmentFile?: { path: string; kind: EnvironmentKind };
  baseImage?: string;
}

export interface ContextInput {
  runtime: RuntimeKind;
  /** Model id → files (path inside the model → bytes). */
  models: Array<{ name: string; version: number; files: Map<string, Buffer> }>;
  entryScript?: { path: string; data: Buffer };
  environmentFile?: { path: string; kind: EnvironmentKind; data: Buffer };
  baseImage?: string;
}

// ---------------------------------------------------------------- runtime files

const RUNTIME_ROOTS = ['dist/runtime'];

function walk(dir: string, filter: (rel: string) => boolean, root = dir, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name === '__pycache__' || entry.name === 'node_modules') continue;
      walk(full, filter, root, out);
    } else if (entry.isFile()) {
      const rel = path.relative(root, full).split(path.sep).join('/');
      if (filter(rel)) out.push(full);
    }
  }
  return out;
}

const REQUIRE_RE = /require\((["'])([^"']+)\1\)/g;

/**
 * The runtime's files from this package (compiled JS closure + Python assets) and the npm dependencies they need.
 * Throws `RuntimeNotBuilt` when `dist/runtime/cli.js` is missing (run `npm run build`).
 */
export function collectRuntimeFiles(root = packageRoot()): { entries: ArchiveEntry[]; dependencies: Record<string, string> } {
  const cli = path.join(root, 'dist', 'runtime', 'cli.js');
  if (!fs.existsSync(cli)) {
    throw new AppError('RuntimeNotBuilt', `The scoring runtime is not compiled (${cli} is missing); run "npm run build".`, 500);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const files = new Set<string>();
  const queue: string[] = [];
  for (const r of RUNTIME_ROOTS) queue.push(...walk(path.join(root, r), (rel) => rel.endsWith('.js')));
  const externals = new Set<string>();
  while (queue.length) {
    const f = queue.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    const src = fs.readFileSync(f, 'utf8');
    for (const m of src.matchAll(REQUIRE_RE)) {
      const spec = m[2];
      if (spec.startsWith('.')) {
        const base = path.resolve(path.dirname(f), spec);
        const candidate = [base, `${base}.js`, path.join(base, 'index.js')].find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
        if (candidate && candidate.startsWith(path.join(root, 'dist') + path.sep)) queue.push(candidate);
        else if (spec.endsWith('.json') && fs.existsSync(base)) files.add(base);
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec.split('/')[0])) {
        externals.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
      }
    }
  }
  const entries: ArchiveEntry[] = [...files].map((f) => ({
    path: `app/${path.relative(root, f).split(path.sep).join('/')}`,
    data: fs.readFileSync(f),
  }));
  const py = pythonAssetsDir();
  if (fs.existsSync(py)) {
    for (const f of walk(py, (rel) => !rel.endsWith('.pyc'))) {
      entries.push({ path: `app/runtime/python/${path.relative(py, f).split(path.sep).join('/')}`, data: fs.readFileSync(f) });
    }
  }
  const dependencies: Record<string, string> = {};
  for (const name of [...externals].sort()) {
    const v = pkg.dependencies?.[name];
    if (v) dependencies[name] = v;
  }
  return { entries, dependencies };
}

// ---------------------------------------------------------------- Dockerfile

const DEFAULT_BASE: Record<RuntimeKind, string> = {
  // AML's own inference base (Ubuntu + conda + Python); Node is copied in for the scoring front.
  python: 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest',
  node: 'node:20-bookworm-slim',
  onnx: 'node:20-bookworm-slim',
};

/** The Dockerfile for a runtime kind (custom base image honoured). Deterministic text. */
export function generateDockerfile(meta: ImageMetadata): string {
  const base = meta.baseImage ?? DEFAULT_BASE[meta.runtime];
  const lines = [
    '# Generated by model-deploy-flow: the scoring runtime + the model + the entry script.',
    `FROM ${base}`,
    'USER root',
    'WORKDIR /var/azureml-app',
  ];
  if (meta.runtime === 'python') {
    lines.push('COPY --from=node:20-bookworm-slim /usr/local/bin/node /usr/local/bin/node');
  }
  lines.push('COPY app/package.json /var/azureml-app/app/package.json', 'RUN cd /var/azureml-app/app && npm install --omit=dev --no-audit --no-fund || true');
  const env = meta.environmentFile;
  if (env) {
    lines.push(`COPY ${env.path} /var/azureml-app/${env.path}`);
    if (env.kind === 'conda') lines.push(`RUN conda env update -n base -f /var/azureml-app/${env.path} && conda clean -afy`);
    else if (env.kind === 'requirements') lines.push(`RUN python3 -m pip install --no-cache-dir -r /var/azureml-app/${env.path}`);
    else lines.push(`RUN cd /var/azureml-app/${path.posix.dirname(env.path)} && npm install --omit=dev --no-audit --no-fund`);
  }
  // The port, mode, limits and keys come from MDF_* variables (runtime/env.ts) that ACI/AKS set per deployment.
  lines.push('COPY . /var/azureml-app/', `ENV AZUREML_MODEL_DIR=/var/azureml-app/${meta.modelDir} MDF_PORT=5001`, 'EXPOSE 5001');
  const cmd = ['node', `/var/azureml-app/${meta.runtimeEntry}`, '--host', '0.0.0.0', '--model-dir', `/var/azureml-app/${meta.modelDir}`, '--runtime', meta.runtime];
  if (meta.entryScript) cmd.push('--entry-script', `/var/azureml-app/${meta.entryScript}`);
  lines.push(`ENTRYPOINT ${JSON.stringify(cmd)}`);
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- assembly

/** All entries of a build context (not yet archived). */
export function buildContextEntries(input: ContextInput, runtimeRoot?: string): { entries: ArchiveEntry[]; metadata: ImageMetadata } {
  if (input.models.length === 0 && input.runtime === 'onnx') throw new AppError('ImageModelsMissing', 'An onnx image needs a model.', 400);
  const runtime = collectRuntimeFiles(runtimeRoot);
  const entries: ArchiveEntry[] = [...runtime.entries];
  entries.push({
    path: 'app/package.json',
    data: Buffer.from(JSON.stringify({ name: 'scoring-runtime', private: true, version: '1.0.0', dependencies: runtime.dependencies }, null, 2) + '\n'),
  });
  for (const m of input.models) {
    for (const [p, data] of [...m.files.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      entries.push({ path: `models/${m.name}/${m.version}/${p}`, data });
    }
  }
  // A script without a model still gets its (empty) model folder: AZUREML_MODEL_DIR always names a folder.
  if (input.models.length === 0) entries.push({ path: 'models/NO_MODEL.txt', data: Buffer.from('This image embeds no model: its entry script needs none.\n') });
  if (input.entryScript) entries.push({ path: `app/code/${input.entryScript.path}`, data: input.entryScript.data });
  if (input.environmentFile) {
    const p = `app/code/${input.environmentFile.path}`;
    if (input.entryScript && p === `app/code/${input.entryScript.path}`) {
      throw new AppError('InvalidManifest', 'image.environment_file and image.entry_script are the same file.', 400);
    }
    entries.push({ path: p, data: input.environmentFile.data });
  }
  const single = input.models.length === 1 ? input.models[0] : undefined;
  const metadata: ImageMetadata = {
    schemaVersion: 1,
    runtime: input.runtime,
    runtimeEntry: RUNTIME_ENTRY,
    ...(input.entryScript ? { entryScript: `app/code/${input.entryScript.path}` } : {}),
    modelDir: single ? `models/${single.name}/${single.version}` : 'models',
    models: input.models.map((m) => `${m.name}:${m.version}`),
    ...(input.environmentFile ? { environmentFile: { path: `app/code/${input.environmentFile.path}`, kind: input.environmentFile.kind } } : {}),
    ...(input.baseImage ? { baseImage: input.baseImage } : {}),
  };
  entries.push({ path: IMAGE_METADATA_FILE, data: Buffer.from(JSON.stringify(metadata, null, 2) + '\n') });
  entries.push({ path: 'Dockerfile', data: Buffer.from(generateDockerfile(metadata)) });
  return { entries, metadata };
}
