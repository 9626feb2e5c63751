/**
 * Checks a build context the way a Docker build would fail early: the entry script exists and compiles for its
 * runtime (`python3 -m py_compile`, `node --check`), an ONNX image has a model, and the environment file parses.
 * Returns the log lines; throws `ImageBuildFailed` with an actionable message.
 */
import { spawn } from 'child_process';
import * as fs from 'fs/promises';
import * as os from 'os';
import * as path from 'path';
import { inheritedEnv } from '../../runtime';
import { AppError } from '../errors';
import { parseJsonBounded, parseYamlBounded } from '../parse';
import type { ImageMetadata } from './context';

export interface CommandResult {
  code: number | null;
  output: string;
  timedOut: boolean;
}

/**
 * Runs a command (no shell), capturing combined output (last 16 KB), bounded by `timeoutMs`. It reads user files, so
 * its environment is the allow-list of runtime/child-env.ts unless `env` is given (never the host's settings).
 */
export function runCommand(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? inheritedEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const add = (d: Buffer) => (output = (output + d.toString()).slice(-16_384));
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, output: output + String(e.message), timedOut });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    });
  });
}

const fail = (message: string) => new AppError('ImageBuildFailed', message, 422);

/** The last lines of a tool's output without stack frames. */
function tail(text: string, lines = 8): string {
  return text
    .trim()
    .split('\n')
    .filter((l) => !/^\s+at /.test(l) && l.trim() !== '')
    .slice(-lines)
    .join('\n');
}

const REQUIREMENT_RE =
  /^(-[A-Za-z-]+(\s+\S+)?|(git\+|https?:\/\/|file:).+|[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.\s-]*\])?\s*((===|==|!=|~=|<=|>=|<|>)\s*[^,;\s]+(\s*,\s*(===|==|!=|~=|<=|>=|<|>)\s*[^,;\s]+)*)?\s*(;.*)?(\s+@\s+\S+)?)$/;

/** Parses an environment file; throws `ImageBuildFailed` naming the problem. */
export function checkEnvironmentFile(kind: 'conda' | 'requirements' | 'npm', text: string, name: string): string {
  if (kind === 'conda') {
    let doc: unknown;
    try {
      doc = parseYamlBounded(text, { what: `Environment file ${name}` });
    } catch (e) {
      throw fail((e as Error).message.split('\n')[0]);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw fail(`Environment file ${name} must be a conda environment (a mapping with "dependencies").`);
    const deps = (doc as { dependencies?: unknown }).dependencies;
    if (deps !== undefined && !Array.isArray(deps)) throw fail(`Environment file ${name}: "dependencies" must be a list.`);
    return `conda environment ${name}: ${Array.isArray(deps) ? deps.length : 0} dependencies`;
  }
  if (kind === 'requirements') {
    const lines = text.split(/\r?\n/).map((l) => l.replace(/(^|\s)#.*$/, '').trim()).filter(Boolean);
    lines.forEach((l, i) => {
      if (!REQUIREMENT_RE.test(l)) throw fail(`Environment file ${name}, line "${l.slice(0, 80)}" (requirement ${i + 1}) is not a pip requirement.`);
    });
    return `requirements ${name}: ${lines.length} requirements`;
  }
  let pkg: unknown;
  try {
    pkg = parseJsonBounded(text, { what: `Environment file ${name}` });
  } catch (e) {
    throw fail((e as Error).message);
  }
  if (!pkg || typeof pkg !== 'object' || Array.isArray(pkg)) throw fail(`Environment file ${name} must be a package.json object.`);
  for (const field of ['dependencies', 'optionalDependencies'] as const) {
    const deps = (pkg as Record<string, unknown>)[field];
    if (deps === undefined) continue;
    if (!deps || typeof deps !== 'object' || Array.isArray(deps) || Object.values(deps).some((v) => typeof v !== 'string')) {
      throw fail(`Environment file ${name}: "${field}" must map package names to version strings.`);
    }
  }
  return `package.json ${name}: ${Object.keys(((pkg as Record<string, unknown>).dependencies as object) ?? {}).length} dependencies`;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Validates an extracted context. `python` is the interpreter used for `py_compile`. */
export async function validateContext(dir: string, meta: ImageMetadata, python: string): Promise<string[]> {
  const log: string[] = [];
  if (!(await exists(path.join(dir, meta.runtimeEntry)))) throw fail(`The build context lacks the scoring runtime (${meta.runtimeEntry}).`);
  if (!(await exists(path.join(dir, meta.modelDir)))) throw fail(`The build context lacks the model folder ${meta.modelDir}.`);
  log.push(`runtime ${meta.runtime}, models ${meta.models.join(', ')}`);

  // The environment first: a broken package.json beside a Node script would otherwise surface as a script error.
  if (meta.environmentFile) {
    const envPath = path.join(dir, meta.environmentFile.path);
    if (!(await exists(envPath))) throw fail(`The environment file ${path.basename(envPath)} is not in the build context.`);
    log.push(checkEnvironmentFile(meta.environmentFile.kind, await fs.readFile(envPath, 'utf8'), path.basename(envPath)));
  }

  if (meta.entryScript) {
    const script = path.join(dir, meta.entryScript);
    const name = path.basename(meta.entryScript);
    if (!(await exists(script))) throw fail(`The entry script ${name} is not in the build context; add it beside deploy.json or fix image.entry_script.`);
    if (meta.runtime === 'python' || script.endsWith('.py')) {
      const cache = await fs.mkdtemp(path.join(os.tmpdir(), 'mdf-pyc-'));
      try {
        const r = await runCommand(python, ['-m', 'py_compile', script], { env: { ...inheritedEnv(), PYTHONPYCACHEPREFIX: cache }, timeoutMs: 60_000 });
        if (r.code === null && !r.timedOut) throw fail(`Cannot run ${python} to check ${name}: ${tail(r.output, 2)}`);
        if (r.code !== 0) throw fail(`The entry script ${name} does not compile: ${tail(r.output.split(dir + path.sep).join(''))}`);
      } finally {
        await fs.rm(cache, { recursive: true, force: true });
      }
      log.push(`${name}: python3 -m py_compile ok`);
    } else if (/\.(c?js|mjs)$/.test(script)) {
      const r = await runCommand(process.execPath, ['--check', script], { timeoutMs: 60_000 });
      if (r.code !== 0) throw fail(`The entry script ${name} does not parse: ${tail(r.output.split(dir + path.sep).join(''))}`);
      log.push(`${name}: node --check ok`);
    } else {
      log.push(`${name}: TypeScript, checked when the runtime loads it`);
    }
  } else {
    const files = await fs.readdir(path.join(dir, meta.modelDir), { recursive: true });
    if (!files.some((f) => String(f).endsWith('.onnx'))) {
      throw fail(`The image has no entry script and no .onnx model in ${meta.modelDir}; add image.entry_script or an ONNX model.`);
    }
    log.push('onnx model present (served with no script)');
  }

  return log;
}
