#!/usr/bin/env node
/**
 * `mdf`: the command-line face of the management API (verbs after `az ml model|image|service`), built on the
 * shared client (`client/api.ts`) — no back door: everything goes through `/api/...`.
 *
 *   mdf deploy <folder|deploy.json> [--service name] [--target local|aci|aks] [--wait]
 *   mdf models|images|services [list|show|delete]      mdf runs [list] | show|watch|approve|reject|abort <id>
 *   mdf models register <files…> --name n | download <name:version> [-o file|-] | update <name:version> --tag k=v
 *   mdf images tag <name:version> --tag k=v | log <name:version>     mdf services metrics <name> [--interval s]
 *   mdf logs <service> [--tail N] [--follow]            mdf token <service>
 *   mdf keys <service> [--regenerate primary|secondary] mdf score <service> --data @file.json|-|'<json>'
 *   mdf batch <batch.json|folder> [--wait]              mdf health
 *
 * Global: `--url` / `MDF_URL` (default http://127.0.0.1:7071), `--key` / `MDF_FUNCTION_KEY` (sent as
 * `x-functions-key`), `--json` (machine-readable output). Exit codes: see `EXIT` below and docs/reference.md.
 */
import { Command, CommanderError, Option } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { ApiError, ConnectionError, isBatchRun, TooLarge, MdfClient, WaitTimeout, type AnyRunView, type BatchRunView, type RunView, type UploadFile } from '../client/api';
import { checkSiteId, resolveAzureApp } from '../client/azure';
import { parseYamlBounded } from '../shared/parse';
import { BatchProgressView, secs, StepProgress, type Out } from './progress';

/** Exit codes (documented in docs/reference.md, "CLI"). */
export const EXIT = {
  ok: 0,
  /** The run failed, rolled back, was not promoted or was terminated; `health`: Unhealthy. */
  failed: 1,
  /** Bad arguments or an unreadable/invalid local file (nothing was sent). */
  usage: 2,
  /** The API answered with an error (`{ code, message }` printed). */
  api: 3,
  /** The API (or the scoring endpoint) could not be reached. */
  unreachable: 4,
  /** `--wait` / `watch` gave up after `--timeout` seconds; the run goes on. */
  timeout: 5,
} as const;

export const DEFAULT_URL = 'http://127.0.0.1:7071';

/** Bounds on what the CLI reads from disk before sending it (the API has its own limits). */
const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_JOB_BYTES = 16 * 1024 * 1024;
const MAX_DATA_BYTES = 100 * 1024 * 1024;
const MAX_UPLOAD_FILES = 999;
const MAX_FOLDER_DEPTH = 16;
/** `models download`: the largest archive kept in memory and written. */
const MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024;
/** `runs list --all`: pages followed at most. */
const MAX_RUN_PAGES = 100;
/** `logs --follow` polls the widest tail the API gives. */
const MAX_LOG_TAIL = 1000;
const MANIFEST_NAMES = ['deploy.json', 'deploy.yaml', 'deploy.yml'];
const BATCH_NAMES = ['batch.json', 'batch.yaml', 'batch.yml'];

/** A mistake in the command line or a local file: exit 2, nothing sent. */
class UsageError extends Error {}

/** The run ended in a failed state (exit 1; the view is printed). */
class RunFailed extends Error {
  constructor(readonly view: AnyRunView) {
    super(`Run ${view.id} ended ${view.state}`);
  }
}

interface GlobalOptions {
  url: string;
  key?: string;
  azureApp?: string;
  json?: boolean;
}

interface Io {
  stdout: Out;
  stderr: Out;
  stdin: NodeJS.ReadableStream;
}

// ---------------------------------------------------------------- output helpers

function printJson(io: Io, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const tagsText = (tags: Record<string, string> | undefined) =>
  Object.entries(tags ?? {})
    .map(([k, v]) => (v ? `${k}=${v}` : k))
    .join(',');

/** `name`, `name:version` or `name` `version` (two arguments) → its parts (the version a whole number). */
function nameVersion(ref: string, separate?: string): { name: string; version?: number } {
  const whole = (v: string, how: string) => {
    if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw new UsageError(`"${ref}${separate !== undefined ? ` ${separate}` : ''}": ${how} must be a whole number from 1 (name:version or name version).`);
    return Number(v);
  };
  const i = ref.lastIndexOf(':');
  if (separate !== undefined) {
    if (i >= 0) throw new UsageError(`"${ref} ${separate}": give the version once (name:version or name version).`);
    return { name: ref, version: whole(separate, 'the version') };
  }
  if (i < 0) return { name: ref };
  return { name: ref.slice(0, i), version: whole(ref.slice(i + 1), 'the version after ":"') };
}

/** `nameVersion` where the version is required. */
function nameAndVersion(ref: string, separate?: string): { name: string; version: number } {
  const r = nameVersion(ref, separate);
  if (r.version === undefined) throw new UsageError(`"${ref}": give the version (name:version or name version).`);
  return { name: r.name, version: r.version };
}

/** `--tag k=v` (repeatable) → a map; `k` alone is an empty value when `bare` allows it. */
function pairs(flag: string, bare = false) {
  return (v: string, prev: Record<string, string> = {}): Record<string, string> => {
    const i = v.indexOf('=');
    if (i === 0 || (i < 0 && !bare)) throw new UsageError(`--${flag} "${v.slice(0, 80)}": write key=value.`);
    return { ...prev, [i < 0 ? v : v.slice(0, i)]: i < 0 ? '' : v.slice(i + 1) };
  };
}

/** A whole number from `min` to `max` (an option's value). */
function wholeNumber(flag: string, min: number, max: number) {
  return (v: string): number => {
    if (!/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}; got "${v.slice(0, 20)}".`);
    return Number(v);
  };
}

/**
 * The lines of `now` after those already printed (`seen`): the longest suffix of `seen` that starts `now` marks
 * where new output begins; with no overlap (the output moved on by more than a window, or restarted) all of `now`.
 */
export function newLines(seen: string[], now: string[]): string[] {
  for (let k = Math.min(seen.length, now.length); k > 0; k--) {
    let same = true;
    for (let i = 0; i < k && same; i++) same = seen[seen.length - k + i] === now[i];
    if (same) return now.slice(k);
  }
  return now;
}

/** Reads a local file with a size bound (checked before reading). */
function readBounded(file: string, max: number, what: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new UsageError(`${what} ${file} does not exist.`);
  }
  if (!st.isFile()) throw new UsageError(`${what} ${file} is not a file.`);
  if (st.size > max) throw new UsageError(`${what} ${file} is ${st.size} bytes; at most ${max} are accepted.`);
  return fs.readFileSync(file);
}

/** Writes bytes to stdout (or a test's stream) and waits until they are handed on. */
function writeOut(out: Out, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = out as Out & { write(b: Buffer, cb?: (e?: Error | null) => void): unknown };
    try {
      w.write(data, (e?: Error | null) => (e ? reject(e) : resolve()));
    } catch (e) {
      reject(e);
    }
  });
}

async function readStdin(stream: NodeJS.ReadableStream, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > max) throw new UsageError(`The data on stdin is over ${max} bytes.`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------- deploy: a local folder → multipart

interface DeployFolder {
  folder: string;
  manifestName: string;
  manifestText: string;
  files: UploadFile[];
}

/** The manifest (`deploy.json|yaml|yml` in the folder, or the file given) and every other file of its folder. */
export function readDeployFolder(target: string): DeployFolder {
  const abs = path.resolve(target);
  let folder: string;
  let manifestName: string;
  if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) {
    folder = abs;
    const found = MANIFEST_NAMES.find((n) => fs.existsSync(path.join(abs, n)));
    if (!found) throw new UsageError(`${target} has no ${MANIFEST_NAMES.join(' / ')}: give the model's folder (with its manifest) or the manifest file.`);
    manifestName = found;
  } else {
    if (!fs.existsSync(abs)) throw new UsageError(`${target} does not exist.`);
    folder = path.dirname(abs);
    manifestName = path.basename(abs);
  }
  const manifestText = readBounded(path.join(folder, manifestName), MAX_MANIFEST_BYTES, 'The manifest').toString('utf8');
  const files = readFolderFiles(folder, (name) => MANIFEST_NAMES.includes(name) || name === 'deploy.error.json');
  return { folder, manifestName, manifestText, files };
}

/**
 * Every file below `folder` (sub-folders included, paths relative to it with "/"), without hidden files, installed
 * packages and the top-level files `skipTop` names; at most MAX_UPLOAD_FILES files, MAX_FOLDER_DEPTH levels.
 */
function readFolderFiles(folder: string, skipTop: (name: string) => boolean = () => false, files: UploadFile[] = [], prefix = ''): UploadFile[] {
  const walk = (dir: string, rel: string, depth: number) => {
    if (depth > MAX_FOLDER_DEPTH) throw new UsageError(`${dir} is nested more than ${MAX_FOLDER_DEPTH} folders deep below ${folder}.`);
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      // Hidden files and folders, installed packages and the manifests/error reports themselves are not model files.
      if (entry.name.startsWith('.') || entry.name === 'node_modules' || entry.name === '__pycache__') continue;
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      if (!rel && skipTop(entry.name)) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full, relPath, depth + 1);
      else if (entry.isFile()) {
        if (files.length >= MAX_UPLOAD_FILES) throw new UsageError(`${folder} holds more than ${MAX_UPLOAD_FILES} files; reference large folders from blob storage.`);
        files.push({ path: relPath, data: fs.readFileSync(full) });
      }
    }
  };
  walk(folder, prefix, 0);
  return files;
}


/** The manifest with `--service` / `--target` applied (sent as JSON then), or unchanged. */
export function withOverrides(text: string, fileName: string, o: { service?: string; target?: string }): { text: string; fileName: string } {
  if (!o.service && !o.target) return { text, fileName };
  let doc: unknown;
  try {
    // The app's bounded parser (size, depth and aliases checked before and after parsing); YAML reads JSON too.
    doc = parseYamlBounded(text, { what: fileName, maxBytes: MAX_MANIFEST_BYTES });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`${fileName} is not a manifest object.`);
  const m = { ...(doc as Record<string, unknown>) };
  if (o.service) {
    const svc = m.service && typeof m.service === 'object' && !Array.isArray(m.service) ? m.service : {};
    m.service = { ...svc, name: o.service };
  }
  if (o.target) {
    // `target: local` or `{ kind, ...settings }`: the settings of another kind would not apply, so a new kind starts bare.
    const t = m.target && typeof m.target === 'object' && !Array.isArray(m.target) ? (m.target as Record<string, unknown>) : undefined;
    m.target = t && t.kind === o.target ? t : o.target;
  }
  return { text: `${JSON.stringify(m, null, 2)}\n`, fileName: 'deploy.json' };
}

// ---------------------------------------------------------------- following runs

const FAILED_STATES = new Set(['Failed', 'RolledBack', 'NotPromoted', 'Terminated']);

interface FollowOptions {
  timeoutS: number;
  pollMs?: number;
}

/** Follows a run until it ends, drawing its progress (nothing with --json); the final view. */
async function follow(api: MdfClient, io: Io, g: GlobalOptions, runId: string, o: FollowOptions): Promise<AnyRunView> {
  const tty = !g.json && io.stdout.isTTY ? io.stdout : undefined;
  const line = (text: string) => {
    if (!g.json) io.stdout.write(`${text}\n`);
  };
  const steps = new StepProgress({ line, ...(tty ? { tty } : {}) });
  const batch = new BatchProgressView({ line, ...(tty ? { tty } : {}) });
  try {
    return await api.waitForRun(runId, {
      timeoutMs: o.timeoutS * 1000,
      pollMs: o.pollMs ?? (tty ? 200 : 500),
      onPoll: (v) => {
        if (!v || g.json) return;
        if (isBatchRun(v)) batch.update(v);
        else steps.update(v);
      },
    });
  } finally {
    steps.clearLive();
    batch.stop();
  }
}

/** The end of a followed run: a summary (or the view with --json); `RunFailed` when it did not succeed. */
function finish(io: Io, g: GlobalOptions, view: AnyRunView): void {
  if (g.json) printJson(io, view);
  else if (isBatchRun(view)) printBatchEnd(io, view);
  else printDeployEnd(io, view);
  if (FAILED_STATES.has(view.state)) throw new RunFailed(view);
}

function printDeployEnd(io: Io, view: RunView): void {
  const started = view.steps.map((s) => Date.parse(s.startedTime));
  const ended = view.steps.map((s) => (s.endedTime ? Date.parse(s.endedTime) : NaN)).filter((x) => !Number.isNaN(x));
  const total = started.length && ended.length ? Math.max(...ended) - Math.min(...started) : undefined;
  const r = view.result;
  io.stdout.write(`run ${view.id} ${view.state}${r?.outcome ? ` (${r.outcome})` : ''} in ${secs(total)} s\n`);
  if (r?.serviceName) io.stdout.write(`  service   ${r.serviceName}${r.image ? `  image ${r.image}` : ''}${r.model ? `  model ${r.model}` : ''}\n`);
  if (view.state === 'Succeeded' && r?.scoringUri) io.stdout.write(`  scoring   ${r.scoringUri}\n  swagger   ${r.swaggerUri ?? '-'}\n`);
  for (const n of r?.notes ?? []) io.stdout.write(`  note: ${n}\n`);
}

function printBatchEnd(io: Io, view: BatchRunView): void {
  const c = view.counts as Record<string, unknown> | undefined;
  io.stdout.write(`batch run ${view.id} ${view.state}\n`);
  if (c) io.stdout.write(`  counts    ${Object.entries(c).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ')}\n`);
  if (view.threshold) io.stdout.write(`  threshold ${view.threshold.message}\n`);
  if (view.output) io.stdout.write(`  output    ${view.output}\n`);
  io.stdout.write(`  summary   ${view.summary}\n`);
}

/** Why a run failed, on stderr: its error, the failed step's detail, the last error of a batch run. */
function reportFailure(io: Io, view: AnyRunView): void {
  const lines = [`mdf: run ${view.id} ${view.state}${view.error ? `: ${view.error.code}: ${view.error.message}` : ''}`];
  if (isBatchRun(view)) {
    const last = view.progress?.lastError;
    if (last && last.message !== view.error?.message) lines.push(`  last failure${last.miniBatch !== undefined ? ` (mini-batch ${last.miniBatch})` : ''}: ${last.code}: ${last.message}`);
  } else {
    for (const s of view.steps.filter((x) => x.state === 'Failed' && x.detail)) lines.push(`  step ${s.name} failed: ${s.detail}`);
  }
  io.stderr.write(`${lines.join('\n')}\n`);
}

// ---------------------------------------------------------------- the program

function positiveSeconds(v: string): number {
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`a positive number of seconds is needed (got "${v}").`);
  return n;
}

export function buildProgram(io: Io, env: NodeJS.ProcessEnv = process.env): Command {
  const program = new Command('mdf');
  program
    .description('Model Deploy Flow: deploy, score and manage models through the management API.')
    .addOption(new Option('--url <url>', 'the app (Functions host) base URL').env('MDF_URL').default(DEFAULT_URL))
    .addOption(new Option('--key <key>', 'function key, sent as x-functions-key (Azure)').env('MDF_FUNCTION_KEY'))
    .addOption(new Option('--azure-app <resourceId>', 'Azure: the Function App resource id; its URL and default function key are read through ARM with DefaultAzureCredential (az login, managed identity)').env('MDF_AZURE_APP'))
    .option('--json', 'machine-readable JSON output (no progress)')
    .showHelpAfterError('(run mdf --help for usage)')
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .exitOverride();

  const ctx = async (cmd: Command) => {
    const g = cmd.optsWithGlobals() as GlobalOptions;
    if (g.azureApp) {
      // --url / MDF_URL and --key / MDF_FUNCTION_KEY, when given, win over what ARM says.
      let siteId: string;
      try {
        siteId = checkSiteId(g.azureApp);
      } catch (e) {
        throw new UsageError(`--azure-app: ${(e as Error).message}`);
      }
      let app: { url: string; key: string };
      try {
        const { DefaultAzureCredential } = await import('@azure/identity');
        app = await resolveAzureApp(siteId, new DefaultAzureCredential(), { ...(env.MDF_ARM_ENDPOINT ? { armEndpoint: env.MDF_ARM_ENDPOINT } : {}) });
      } catch (e) {
        if (e instanceof ApiError || e instanceof ConnectionError) throw e;
        // No credential (not signed in, no managed identity): the credential's own reason.
        throw new ApiError(401, 'AzureCredentialFailed', `${(e as Error).message.split('\n')[0].slice(0, 500)} (sign in with az login, or run where a managed identity is available)`, 'DefaultAzureCredential');
      }
      if (program.getOptionValueSource('url') === 'default') g.url = app.url;
      g.key ??= app.key;
    }
    let url: URL;
    try {
      url = new URL(g.url);
    } catch {
      throw new UsageError(`--url "${g.url}" is not a URL (e.g. ${DEFAULT_URL}).`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be http:// or https:// (got ${url.protocol}).`);
    return { g, api: new MdfClient({ baseUrl: url.origin + url.pathname.replace(/\/+$/, ''), ...(g.key ? { functionKey: g.key } : {}) }) };
  };

  // -------------------------------------------------------------- health
  program
    .command('health')
    .description('is the app loaded and its storage reachable (exit 1 when Unhealthy)')
    .action(async (_o, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const r = await api.health();
      if (g.json) printJson(io, r.body);
      else io.stdout.write(`${r.body.status}${r.body.storage?.latencyMs !== undefined ? ` (storage ${r.body.storage.latencyMs} ms)` : ''}${r.body.error ? `: ${r.body.error.code}: ${r.body.error.message}` : ''}\n`);
      if (r.body.status !== 'Healthy') process.exitCode = EXIT.failed;
    });

  // -------------------------------------------------------------- deploy
  program
    .command('deploy')
    .description('deploy a model folder (its deploy.json/yaml and every file beside it, uploaded as multipart)')
    .argument('<path>', 'the model folder, or its manifest file')
    .option('--service <name>', 'service name (overrides the manifest)')
    .addOption(new Option('--target <kind>', 'deployment target (overrides the manifest)').choices(['local', 'aci', 'aks']))
    .option('--wait', 'follow the run until it ends; exit 1 if it fails')
    .option('--timeout <seconds>', 'with --wait: give up after this long (exit 5)', positiveSeconds, 600)
    .option('--idempotency-key <key>', 'makes a retried request safe (the same key answers the same run)')
    .action(async (target: string, o: { service?: string; target?: string; wait?: boolean; timeout: number; idempotencyKey?: string }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const local = readDeployFolder(target);
      const manifest = withOverrides(local.manifestText, local.manifestName, o);
      const accepted = await api.deploy(manifest, local.files, o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {});
      if (!o.wait) {
        if (g.json) printJson(io, accepted);
        else io.stdout.write(`run ${accepted.runId} ${accepted.started ? 'started' : 'already exists'}: service ${accepted.serviceName ?? '-'}, model ${accepted.model ?? '-'}\n  status: ${accepted.statusUri}\n  follow: mdf runs watch ${accepted.runId}\n`);
        return;
      }
      if (!g.json) {
        const bytes = local.files.reduce((n, f) => n + f.data.length, 0);
        io.stdout.write(`deploying ${path.relative(process.cwd(), local.folder) || '.'} (${local.files.length} files, ${(bytes / 1024).toFixed(1)} KB) as service ${accepted.serviceName ?? '-'}\n`);
        io.stdout.write(`run ${accepted.runId} ${accepted.started ? 'started' : 'already exists'}\n`);
      }
      finish(io, g, await follow(api, io, g, accepted.runId, { timeoutS: o.timeout }));
    });

  // -------------------------------------------------------------- models / images / services
  const registry = (noun: 'models' | 'images') => {
    const c = program.command(noun).description(noun === 'models' ? 'registered models (list, show, delete, register, download)' : 'images (list, show, delete, tag)');
    const list = c
      .command('list', { isDefault: true })
      .description(`list ${noun}`)
      .action(async (o: { tag?: string[]; latest?: boolean; model?: string }, cmd: Command) => {
        const { g, api } = await ctx(cmd);
        if (noun === 'models') {
          const r = await api.listModels({ ...(o.tag ? { tags: o.tag } : {}), ...(o.latest ? { latest: true } : {}) });
          if (g.json) return printJson(io, r);
          io.stdout.write(`${table(['MODEL', 'STATE', 'CREATED', 'TAGS'], r.value.map((m) => [m.id, m.state, m.createdTime, tagsText(m.tags)]))}\n`);
        } else {
          const r = await api.listImages(o.model ? { model: o.model } : {});
          if (g.json) return printJson(io, r);
          io.stdout.write(`${table(['IMAGE', 'STATE', 'RUNTIME', 'CREATED', 'MODELS'], r.value.map((i) => [i.id, i.state, i.runtime, i.createdTime, i.models.join(',')]))}\n`);
        }
      });
    if (noun === 'models') {
      list.option('--tag <k[=v]>', 'only models with this tag (repeatable)', (v: string, prev: string[] = []) => [...prev, v]).option('--latest', 'only the latest version of each model');
    } else list.option('--model <name[:version]>', 'only images embedding this model');
    c.command('show')
      .description(`one ${noun.slice(0, -1)} (name: every version; name:version or name version: that one)`)
      .argument('<name[:version]>')
      .argument('[version]')
      .action(async (ref: string, v: string | undefined, _o, cmd: Command) => {
        const { api } = await ctx(cmd);
        const { name, version } = nameVersion(ref, v);
        const r = noun === 'models' ? (version === undefined ? await api.model(name) : await api.model(name, version)) : version === undefined ? await api.image(name) : await api.image(name, version);
        printJson(io, r);
      });
    c.command('delete')
      .description(`delete a ${noun.slice(0, -1)} (every version without :version); in use → 409 unless --force`)
      .argument('<name[:version]>')
      .argument('[version]')
      .option('--force', 'delete even when in use')
      .action(async (ref: string, v: string | undefined, o: { force?: boolean }, cmd: Command) => {
        const { g, api } = await ctx(cmd);
        const { name, version } = nameVersion(ref, v);
        const r = noun === 'models' ? await api.deleteModel(name, version, { force: !!o.force }) : await api.deleteImage(name, version, { force: !!o.force });
        if (g.json) printJson(io, r);
        else io.stdout.write(`deleted ${ref}: ${JSON.stringify(r)}\n`);
      });
  };
  registry('models');
  registry('images');

  const models = program.commands.find((c) => c.name() === 'models')!;
  models
    .command('register')
    .description('register a model version from local files (multipart POST /api/models); a folder adds its files by relative path')
    .argument('<files...>', 'files or folders')
    .requiredOption('--name <name>', 'model name')
    .option('--tag <k=v>', 'a tag (repeatable)', pairs('tag', true))
    .option('--property <k=v>', 'a property (repeatable)', pairs('property'))
    .option('--description <text>', 'description')
    .option('--idempotency-key <key>', 'makes a retried request safe (the same key answers the same version)')
    .action(async (targets: string[], o: { name: string; tag?: Record<string, string>; property?: Record<string, string>; description?: string; idempotencyKey?: string }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const files: UploadFile[] = [];
      for (const t of targets) {
        const abs = path.resolve(t);
        if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) readFolderFiles(abs, () => false, files);
        else {
          if (files.length >= MAX_UPLOAD_FILES) throw new UsageError(`More than ${MAX_UPLOAD_FILES} files; reference large folders from blob storage.`);
          files.push({ path: path.basename(abs), data: readBounded(abs, MAX_DATA_BYTES, 'The file') });
        }
      }
      const dup = files.find((f, i) => files.findIndex((x) => x.path === f.path) !== i);
      if (dup) throw new UsageError(`Two files would be registered as "${dup.path}"; give their folder instead.`);
      if (!files.length) throw new UsageError('No files to register (the folders given are empty).');
      const meta = { name: o.name, ...(o.description !== undefined ? { description: o.description } : {}), ...(o.tag ? { tags: o.tag } : {}), ...(o.property ? { properties: o.property } : {}) };
      const m = await api.registerModel(meta, files, o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {});
      if (g.json) return printJson(io, m);
      io.stdout.write(`registered ${m.id} (${m.files.length} files: ${m.files.map((f) => f.path).join(', ')})\n`);
    });
  models
    .command('download')
    .description('download a model version\'s files as a tar.gz (-o - writes it to stdout)')
    .argument('<name[:version]>', 'name:version, or the name followed by the version')
    .argument('[version]')
    .option('-o, --output <file>', 'where to write it (default <name>-<version>.tar.gz; - for stdout)')
    .action(async (ref: string, v: string | undefined, o: { output?: string }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const { name, version } = nameAndVersion(ref, v);
      if (o.output === '-' && io.stdout.isTTY) throw new UsageError('-o - writes a binary archive to stdout, which is a terminal: redirect it (> model.tar.gz, | tar -xz) or give a file.');
      const r = await api.downloadModel(name, version, MAX_DOWNLOAD_BYTES);
      if (o.output === '-') {
        // The archive alone on stdout (for a pipe); what was written goes to stderr.
        await writeOut(io.stdout, r.data);
        if (!g.json) io.stderr.write(`wrote ${name}:${version} to stdout (${r.data.length} bytes)\n`);
        return;
      }
      const file = path.resolve(o.output ?? r.fileName ?? `${name}-${version}.tar.gz`);
      fs.writeFileSync(file, r.data);
      if (g.json) printJson(io, { model: `${name}:${version}`, file, bytes: r.data.length });
      else io.stdout.write(`wrote ${path.relative(process.cwd(), file) || file} (${r.data.length} bytes)\n`);
    });
  models
    .command('update')
    .description('tags, properties (add-only) and description of a model version (PATCH /api/models/{name}/{version})')
    .argument('<name[:version]>')
    .argument('[version]')
    .option('--tag <k=v>', 'a tag to set (repeatable)', pairs('tag', true))
    .option('--remove <k>', 'a tag to remove (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--property <k=v>', 'a property to add (repeatable; existing ones cannot change)', pairs('property'))
    .option('--description <text>', 'the description')
    .action(async (ref: string, v: string | undefined, o: { tag?: Record<string, string>; remove?: string[]; property?: Record<string, string>; description?: string }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const { name, version } = nameAndVersion(ref, v);
      if (!o.tag && !o.remove && !o.property && o.description === undefined) throw new UsageError('Give --tag k=v, --remove k, --property k=v and/or --description.');
      const m = await api.updateModel(name, version, { ...(o.tag ? { tags: o.tag } : {}), ...(o.remove ? { remove_tags: o.remove } : {}), ...(o.property ? { properties: o.property } : {}), ...(o.description !== undefined ? { description: o.description } : {}) });
      if (g.json) return printJson(io, m);
      io.stdout.write(`${m.id} tags: ${tagsText(m.tags) || '-'}; properties: ${tagsText(m.properties) || '-'}${m.description !== undefined ? `; description: ${m.description}` : ''}\n`);
    });

  const images = program.commands.find((c) => c.name() === 'images')!;
  images
    .command('tag')
    .description('add or overwrite tags of an image version (--remove removes one)')
    .argument('<name[:version]>')
    .argument('[version]')
    .option('--tag <k=v>', 'a tag to set (repeatable)', pairs('tag', true))
    .option('--remove <k>', 'a tag to remove (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .action(async (ref: string, v: string | undefined, o: { tag?: Record<string, string>; remove?: string[] }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const { name, version } = nameAndVersion(ref, v);
      if (!o.tag && !o.remove) throw new UsageError('Give --tag k=v and/or --remove k.');
      const img = await api.updateImage(name, version, { ...(o.tag ? { tags: o.tag } : {}), ...(o.remove ? { remove_tags: o.remove } : {}) });
      if (g.json) return printJson(io, img);
      io.stdout.write(`${img.id} tags: ${tagsText(img.tags) || '-'}\n`);
    });

  images
    .command('log')
    .description("an image version's build log (GET /api/images/{name}/{version}/log: its last MiB, secrets redacted)")
    .argument('<name[:version]>')
    .argument('[version]')
    .action(async (ref: string, v: string | undefined, _o, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const { name, version } = nameAndVersion(ref, v);
      const log = await api.imageLog(name, version);
      if (g.json) return printJson(io, { image: `${name}:${version}`, ...(log.state ? { state: log.state } : {}), truncated: log.truncated, lines: log.text.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1) });
      if (log.truncated) io.stderr.write(`(the log is longer: its last 1 MiB follows)\n`);
      io.stdout.write(log.text.endsWith('\n') || !log.text ? log.text : `${log.text}\n`);
      if (log.state && log.state !== 'Succeeded') io.stderr.write(`image ${name}:${version} is ${log.state}\n`);
    });

  const services = program.command('services').description('deployed services (list, show, update, delete)');
  services
    .command('list', { isDefault: true })
    .description('list services')
    .action(async (_o, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const r = await api.listServices();
      if (g.json) return printJson(io, r);
      io.stdout.write(`${table(['SERVICE', 'STATE', 'TARGET', 'IMAGE', 'SCORING URI'], r.value.map((s) => [s.name, s.state, s.target, s.image ?? '-', s.scoringUri ?? '-']))}\n`);
    });
  services
    .command('show')
    .description('one service (state, image, target, config, scoring URI; never keys)')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => printJson(io, await (await ctx(cmd)).api.service(name)));
  services
    .command('metrics')
    .description("a service's scoring counters (GET /api/services/{name}/metrics); --interval: req/s, errors and mean latency between two samples")
    .argument('<name>')
    .option('--interval <seconds>', 'take two samples this far apart and print the rates', positiveSeconds)
    .action(async (name: string, o: { interval?: number }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const a = await api.metrics(name);
      if (o.interval === undefined) {
        if (g.json) return printJson(io, a);
        return void io.stdout.write(`${a.service} slot ${a.slot ?? '-'}: ${a.score.requests} scored, ${a.score.serverErrors} server errors, ${a.score.clientErrors} client errors, ${a.workersReady}/${a.workers} workers, ${a.inflight} in flight\n`);
      }
      await new Promise((r) => setTimeout(r, o.interval! * 1000));
      const b = await api.metrics(name);
      const dt = (Date.parse(b.sampledTime) - Date.parse(a.sampledTime)) / 1000;
      const dReq = b.score.requests - a.score.requests;
      const dErr = b.score.serverErrors - a.score.serverErrors;
      const dCount = b.score.durationCount - a.score.durationCount;
      // A counter that went down (a replica restarted) gives no rate.
      const ok = dt > 0 && dReq >= 0 && dErr >= 0 && dCount >= 0;
      const rates = ok ? { requestsPerSecond: dReq / dt, errorRate: dReq > 0 ? dErr / dReq : 0, meanLatencyMs: dCount > 0 ? (1000 * (b.score.durationSecondsSum - a.score.durationSecondsSum)) / dCount : null } : null;
      if (g.json) return printJson(io, { ...b, interval: { seconds: dt, ...(rates ? { rates } : { rates: null }) } });
      io.stdout.write(rates ? `${b.service}: ${rates.requestsPerSecond.toFixed(2)} req/s, errors ${(100 * rates.errorRate).toFixed(1)} %, mean latency ${rates.meanLatencyMs === null ? '-' : `${rates.meanLatencyMs.toFixed(1)} ms`} over ${dt.toFixed(1)} s\n` : `${b.service}: no rate over these ${dt.toFixed(1)} s (the counters restarted); ${b.score.requests} scored\n`);
    });
  services
    .command('update')
    .description('update a service (AML service.update): deploy-configuration fields and/or another image; a deployment run (smoke test, rollback) — in place for tags and description, and the replica count on local/AKS (same slot, no replica restarted), blue/green otherwise')
    .argument('<name>')
    .option('--set <field=value>', 'a deploy-configuration field of the manifest\'s target, e.g. num_replicas=2, autoscale_enabled=false (repeatable; numbers and true/false are typed)', pairs('set'))
    .option('--tag <k=v>', 'a service tag to set (repeatable)', pairs('tag', true))
    .option('--description <text>', 'the service\'s description')
    .option('--image <name:version>', 'another built image to serve')
    .option('--wait', 'follow the run until it ends; exit 1 if it fails')
    .option('--timeout <seconds>', 'with --wait: give up after this long (exit 5)', positiveSeconds, 600)
    .action(async (name: string, o: { set?: Record<string, string>; tag?: Record<string, string>; description?: string; image?: string; wait?: boolean; timeout: number }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const patch: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(o.set ?? {})) patch[k] = v === 'true' ? true : v === 'false' ? false : v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
      if (o.tag) patch.tags = o.tag;
      if (o.description !== undefined) patch.description = o.description;
      if (o.image) patch.image = o.image;
      if (!Object.keys(patch).length) throw new UsageError('Give what to change: --set field=value, --tag k=v, --description or --image.');
      const accepted = await api.updateService(name, patch);
      const how = accepted.update
        ? `  ${accepted.update.mode === 'inPlace' ? 'in place: same slot, no replica restarted' : 'blue/green: a new slot, then the switch'} (${accepted.update.fields.join(', ')})\n`
        : '';
      if (!o.wait) {
        if (g.json) printJson(io, accepted);
        else io.stdout.write(`run ${accepted.runId} ${accepted.started ? 'started' : 'already exists'}: update of service ${name}\n${how}  status: ${accepted.statusUri}\n  follow: mdf runs watch ${accepted.runId}\n`);
        return;
      }
      if (!g.json) io.stdout.write(`updating service ${name}: run ${accepted.runId}\n${how}`);
      finish(io, g, await follow(api, io, g, accepted.runId, { timeoutS: o.timeout }));
    });
  services
    .command('delete')
    .description('delete a service (during a deployment → 409 unless --force, which stops it)')
    .argument('<name>')
    .option('--force', 'delete even while a deployment runs')
    .action(async (name: string, o: { force?: boolean }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const r = await api.deleteService(name, { force: !!o.force });
      if (g.json) printJson(io, r);
      else io.stdout.write(`deleted ${r.deleted.join(', ')}\n`);
    });

  // -------------------------------------------------------------- runs
  const runs = program.command('runs').description('deployment and batch runs (list, show, watch, approve, reject, abort)');
  runs
    .command('show')
    .description('a run: state, steps and times, result (deployment) or progress and counts (batch)')
    .argument('<id>')
    .action(async (id: string, _o, cmd: Command) => printJson(io, await (await ctx(cmd)).api.run(id)));
  runs
    .command('watch')
    .description('follow a run until it ends (exit 1 if it fails)')
    .argument('<id>')
    .option('--timeout <seconds>', 'give up after this long (exit 5)', positiveSeconds, 600)
    .action(async (id: string, o: { timeout: number }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      if (!g.json) io.stdout.write(`run ${id}\n`);
      finish(io, g, await follow(api, io, g, id, { timeoutS: o.timeout }));
    });
  runs
    .command('list', { isDefault: true })
    .description('runs, newest first (one page; --all follows the pages)')
    .addOption(new Option('--type <type>', 'deployment or batch').choices(['deployment', 'batch']))
    .option('--status <state>', 'Pending, Running, Succeeded, Failed, RolledBack, NotPromoted, Registered or Terminated')
    .option('--service <name>', 'only runs of this service')
    .option('--model <name>', 'only runs of this model')
    .option('--since <date>', 'ISO 8601 date or time (the API\'s default: 30 days ago)')
    .option('--top <n>', 'runs per page (1–100)', wholeNumber('top', 1, 100))
    .option('--all', `follow the pages to the end (at most ${MAX_RUN_PAGES} pages)`)
    .action(async (o: { type?: 'deployment' | 'batch'; status?: string; service?: string; model?: string; since?: string; top?: number; all?: boolean }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const q = { ...(o.type ? { type: o.type } : {}), ...(o.status ? { status: o.status } : {}), ...(o.service ? { service: o.service } : {}), ...(o.model ? { model: o.model } : {}), ...(o.since ? { since: o.since } : {}), ...(o.top ? { top: o.top } : {}) };
      let page = await api.listRuns(q);
      const value = [...page.value];
      for (let n = 1; o.all && page.continuationToken && n < MAX_RUN_PAGES; n++) {
        page = await api.listRuns({ ...q, continuationToken: page.continuationToken });
        value.push(...page.value);
      }
      const more = page.continuationToken;
      if (g.json) return printJson(io, { value, ...(more ? { continuationToken: more } : {}) });
      const when = (t?: string) => (t ? t.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
      io.stdout.write(`${table(['RUN', 'TYPE', 'STATE', 'CREATED', 'SERVICE', 'MODEL', 'STEP / ERROR'], value.map((r) => [r.id, r.type, r.state, when(r.createdTime), r.serviceName ?? '-', r.model ?? '-', r.error ? `${r.error.code}` : (r.currentStep ?? '')]))}\n`);
      if (more && !o.all) io.stderr.write(`more runs: mdf runs list --all (or a narrower --since / --status)\n`);
    });
  for (const action of ['approve', 'reject'] as const) {
    runs
      .command(action)
      .description(`${action} a rollout waiting at its approval gate${action === 'reject' ? ' (it rolls back; --reason is required)' : ''}`)
      .argument('<id>')
      [action === 'reject' ? 'requiredOption' : 'option']('--reason <text>', 'why (recorded with the decision)')
      .option('--by <name>', 'who (defaults to the authenticated principal in Azure)')
      .action(async (id: string, o: { reason?: string; by?: string }, cmd: Command) => {
        const { g, api } = await ctx(cmd);
        const r = await api.decideRollout(id, action, o);
        if (g.json) return printJson(io, r);
        io.stdout.write(`run ${id}: ${action === 'approve' ? 'approved' : 'rejected'}${r.by ? ` by ${r.by}` : ''} at ${r.at}; follow: mdf runs watch ${id}\n`);
      });
  }
  runs
    .command('abort')
    .description('abort a run: a deployment\'s rollout (traffic goes back to the serving version) or a batch run (its pool torn down)')
    .argument('<id>')
    .option('--reason <text>', 'recorded with the abort')
    .option('--by <name>', 'who (deployment runs; defaults to the authenticated principal in Azure)')
    .action(async (id: string, o: { reason?: string; by?: string }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const view = await api.run(id);
      if (!isBatchRun(view)) {
        const r = await api.decideRollout(id, 'abort', o);
        if (g.json) return printJson(io, r);
        return void io.stdout.write(`run ${id}: rollout aborted at ${r.at}; follow: mdf runs watch ${id}\n`);
      }
      const r = await api.terminateBatch(id, o.reason);
      if (g.json) printJson(io, r);
      else io.stdout.write(`batch run ${id}: ${r.terminated ? 'terminated' : 'had already ended'}; pool ${r.pool.poolId} removed\n`);
    });

  // -------------------------------------------------------------- logs and token
  program
    .command('logs')
    .description("a service's scoring replicas' recent output (--follow: keep printing new lines; Ctrl-C ends)")
    .argument('<service>')
    .option('--tail <n>', 'lines (1–1000, default 100)', wholeNumber('tail', 1, 1000))
    .addOption(new Option('--slot <slot>', 'blue or green (default: the active slot)').choices(['blue', 'green']))
    .option('--follow', 'poll and print new lines until Ctrl-C or --timeout')
    .option('--interval <seconds>', 'with --follow: seconds between polls', positiveSeconds, 2)
    .option('--timeout <seconds>', 'with --follow: stop after this long (exit 0)', positiveSeconds, 3600)
    .action(async (service: string, o: { tail?: number; slot?: string; follow?: boolean; interval: number; timeout: number }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const q = { ...(o.tail ? { tail: o.tail } : {}), ...(o.slot ? { slot: o.slot } : {}) };
      const first = await api.logs(service, q);
      if (g.json && !o.follow) return printJson(io, first);
      const print = (lines: string[]) => {
        for (const line of lines) io.stdout.write(g.json ? `${JSON.stringify({ line })}\n` : `${line}\n`);
      };
      print(first.lines);
      if (!o.follow) return;
      // Polls the tail (the widest window) and prints what follows the lines already seen; bounded in time.
      let seen = first.lines;
      let stop = false;
      let wake: (() => void) | undefined;
      const onInt = () => {
        stop = true;
        wake?.();
      };
      process.once('SIGINT', onInt);
      process.once('SIGTERM', onInt);
      const deadline = Date.now() + o.timeout * 1000;
      try {
        while (!stop && Date.now() < deadline) {
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, Math.min(o.interval * 1000, Math.max(0, deadline - Date.now())));
          });
          if (stop) break;
          const now = await api.logs(service, { ...q, tail: MAX_LOG_TAIL });
          print(newLines(seen, now.lines));
          seen = now.lines;
        }
      } finally {
        process.removeListener('SIGINT', onInt);
        process.removeListener('SIGTERM', onInt);
      }
    });

  program
    .command('token')
    .description('a Bearer token for a service with token auth (prints the token; --json: with its expiry)')
    .argument('<service>')
    .action(async (service: string, _o, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const t = await api.token(service);
      if (g.json) return printJson(io, t);
      io.stdout.write(`${t.accessToken}\n`);
    });

  // -------------------------------------------------------------- keys and scoring
  program
    .command('keys')
    .description("a service's keys; --regenerate replaces one first")
    .argument('<service>')
    .addOption(new Option('--regenerate <which>', 'regenerate this key first').choices(['primary', 'secondary']))
    .action(async (service: string, o: { regenerate?: 'primary' | 'secondary' }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      const keys = o.regenerate ? await api.regenerateKey(service, o.regenerate === 'primary' ? 'Primary' : 'Secondary') : await api.keys(service);
      if (g.json) return printJson(io, keys);
      io.stdout.write(`${o.regenerate ? `regenerated the ${o.regenerate} key\n` : ''}primaryKey    ${keys.primaryKey}\nsecondaryKey  ${keys.secondaryKey}\n`);
    });

  program
    .command('score')
    .description('score a service: finds its scoring URI and key, posts the data, prints the answer')
    .argument('<service>')
    .requiredOption('--data <data>', "@file.json, - (stdin) or the JSON text itself")
    .action(async (service: string, o: { data: string }, cmd: Command) => {
      const { api } = await ctx(cmd);
      const raw = o.data === '-' ? await readStdin(io.stdin, MAX_DATA_BYTES) : o.data.startsWith('@') ? readBounded(o.data.slice(1), MAX_DATA_BYTES, 'The data file') : Buffer.from(o.data);
      const text = raw.toString('utf8');
      // Sent as is (the endpoint validates it); only an obvious slip is caught here.
      if (!/^\s*[[{]/.test(text)) throw new UsageError(`--data is not a JSON object or array${o.data.startsWith('@') || o.data === '-' ? '' : ` (a file? write --data @${o.data.slice(0, 80)})`}.`);
      const r = await api.score(service, text);
      if (r.status >= 400) {
        const e = (r.body as { error?: { code?: string; message?: string } } | undefined)?.error;
        throw new ApiError(r.status, e?.code ?? `Http${r.status}`, e?.message ?? JSON.stringify(r.body ?? '').slice(0, 500), `POST ${r.scoringUri}`);
      }
      io.stdout.write(`${JSON.stringify(r.body)}\n`);
    });

  // -------------------------------------------------------------- batch
  program
    .command('batch')
    .description('start a batch scoring run from a job definition (batch.json/yaml, or a folder holding one)')
    .argument('<path>', 'the job file, or a folder with batch.json|yaml')
    .option('--wait', 'follow the run with a progress bar until it ends; exit 1 if it fails')
    .option('--timeout <seconds>', 'with --wait: give up after this long (exit 5)', positiveSeconds, 3600)
    .option('--idempotency-key <key>', 'makes a retried request safe')
    .action(async (target: string, o: { wait?: boolean; timeout: number; idempotencyKey?: string }, cmd: Command) => {
      const { g, api } = await ctx(cmd);
      let file = path.resolve(target);
      if (fs.existsSync(file) && fs.statSync(file).isDirectory()) {
        const found = BATCH_NAMES.find((n) => fs.existsSync(path.join(file, n)));
        if (!found) throw new UsageError(`${target} has no ${BATCH_NAMES.join(' / ')}.`);
        file = path.join(file, found);
      }
      const text = readBounded(file, MAX_JOB_BYTES, 'The job definition').toString('utf8');
      const accepted = await api.startBatch(text, { yaml: /\.ya?ml$/i.test(file), ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}) });
      if (!o.wait) {
        if (g.json) printJson(io, accepted);
        else io.stdout.write(`batch run ${accepted.id} ${accepted.started ? 'started' : 'already exists'}\n  status: ${accepted.statusUri}\n  follow: mdf runs watch ${accepted.id}\n`);
        return;
      }
      if (!g.json) io.stdout.write(`batch run ${accepted.id} ${accepted.started ? 'started' : 'already exists'}\n`);
      finish(io, g, await follow(api, io, g, accepted.id, { timeoutS: o.timeout }));
    });

  return program;
}

/** Runs `mdf` with `argv` (without `node mdf`); resolves with the exit code. */
export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }): Promise<number> {
  const program = buildProgram(io);
  const json = argv.includes('--json');
  const fail = (code: number, text: string, error?: { code: string; message: string }) => {
    io.stderr.write(`${text}\n`);
    if (json && error) io.stdout.write(`${JSON.stringify({ error })}\n`);
    return code;
  };
  try {
    process.exitCode = undefined;
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help / --version end "with an error" that is none.
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version' ? EXIT.ok : EXIT.usage;
    }
    if (e instanceof UsageError) return fail(EXIT.usage, `mdf: ${e.message}`, { code: 'UsageError', message: e.message });
    if (e instanceof RunFailed) {
      reportFailure(io, e.view);
      return EXIT.failed;
    }
    if (e instanceof ApiError) return fail(EXIT.api, `mdf: ${e.code}: ${e.message} (${e.request} → ${e.status})`, { code: e.code, message: e.message });
    if (e instanceof TooLarge) return fail(EXIT.failed, `mdf: ${e.message}`, { code: 'TooLarge', message: e.message });
    if (e instanceof ConnectionError) return fail(EXIT.unreachable, `mdf: ${e.message} Is the host running (npm start), and is --url / MDF_URL right?`, { code: 'Unreachable', message: e.message });
    if (e instanceof WaitTimeout) return fail(EXIT.timeout, `mdf: ${e.message} It goes on: mdf runs watch ${e.runId}`, { code: 'WaitTimeout', message: e.message });
    return fail(EXIT.failed, `mdf: ${(e as Error).stack ?? String(e)}`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`mdf: ${(e as Error).stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
