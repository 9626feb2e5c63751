/**
 * The environment of every process that runs user code (scoring and batch workers, the scoring runtime the local
 * target and local batch pools start, the build checks of an entry script): an explicit allow-list, never the
 * parent's whole environment. The host's settings and credentials (`AzureWebJobsStorage`, connection strings,
 * `AZURE_CLIENT_SECRET`, managed identity endpoints, Application Insights, `FUNCTIONS_*`, `WEBSITE_*`, …) and the
 * service's own auth keys (`MDF_PRIMARY_KEY` / `MDF_SECONDARY_KEY`) are therefore never inherited.
 * Documented in runtime/README.md ("Worker environment") and docs/reference.md.
 */
import * as path from 'node:path';

/** Variables passed through from the parent by exact name: what interpreters and native libraries need to run. */
export const INHERITED_ENV_NAMES: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'TMP',
  'TEMP',
  'NODE_PATH',
  'PYTHONPATH',
  'PYTHONHOME',
  'VIRTUAL_ENV',
  'CONDA_PREFIX',
  'CONDA_DEFAULT_ENV',
  'LD_LIBRARY_PATH',
  'OMP_NUM_THREADS',
  'MKL_NUM_THREADS',
  'OPENBLAS_NUM_THREADS',
  'SYSTEMROOT',
];

/** Variables passed through by prefix (locale categories). */
export const INHERITED_ENV_PREFIXES: readonly string[] = ['LC_'];

/** Whether a parent variable may reach a process that runs user code. */
export function isInheritedEnvName(name: string): boolean {
  return INHERITED_ENV_NAMES.includes(name) || INHERITED_ENV_PREFIXES.some((p) => name.startsWith(p) && name.length > p.length);
}

/** The allow-listed part of `source` (default: this process's environment). */
export function inheritedEnv(source: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(source)) {
    if (value !== undefined && isInheritedEnvName(name)) out[name] = value;
  }
  return out;
}

/**
 * The environment of a worker running the entry script: the allow-listed parent variables, then the variables
 * its caller sets explicitly (`env` of the runtime's programmatic options), then the runtime's own `AML_*` /
 * `AZUREML_*` contract variables (which win).
 */
export function workerEnv(runtimeVars: Record<string, string>, explicit: Record<string, string> = {}, source: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...inheritedEnv(source), ...explicit, ...runtimeVars };
}

/**
 * The environment of a scoring runtime process started by the host (local target replica, local batch node): the
 * allow-listed variables plus `NODE_PATH` with the app's `node_modules` first (so an image's script resolves the
 * packages the app ships). Its keys, if any, are added by the caller (`MDF_PRIMARY_KEY`/`MDF_SECONDARY_KEY`);
 * its workers do not get them (see `workerEnv`).
 */
export function runtimeProcessEnv(nodeModules: string, source: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...inheritedEnv(source), NODE_PATH: [nodeModules, source.NODE_PATH].filter(Boolean).join(path.delimiter) };
}
