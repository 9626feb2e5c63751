/**
 * Client-side helpers of the demo and `bench:pipeline`: example folders, uploads, following a run through
 * `GET /api/runs/{id}`, step timings, and scoring calls.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { RunStep, RunView } from '../../shared/deploy/run-status';
import type { StorageClients } from '../../shared/storage';
import { REPO_ROOT } from './stack';

export type { RunStep, RunView };

// ---------------------------------------------------------------- examples and uploads

export interface Example {
  /** Folder name under examples/models/. */
  name: string;
  files: Record<string, Buffer>;
  /** The parsed deploy.json. */
  manifest: Record<string, any>;
}

export const EXAMPLES_DIR = path.join(REPO_ROOT, 'examples', 'models');

export function loadExample(name: string): Example {
  const dir = path.join(EXAMPLES_DIR, name);
  if (!fs.existsSync(path.join(dir, 'deploy.json'))) throw new Error(`examples/models/${name}/deploy.json does not exist.`);
  const files: Record<string, Buffer> = {};
  for (const f of fs.readdirSync(dir).sort()) if (fs.statSync(path.join(dir, f)).isFile()) files[f] = fs.readFileSync(path.join(dir, f));
  return { name, files, manifest: JSON.parse(files['deploy.json'].toString('utf8')) };
}

/** Uploads files under `<container>/<prefix>/`, the manifest (`deploy.json`) last. Returns the manifest blob's ETag. */
export async function uploadFolder(storage: StorageClients, container: string, prefix: string, files: Record<string, Buffer>, manifestName = 'deploy.json'): Promise<string> {
  const c = await storage.ensureContainer(container);
  const names = Object.keys(files).filter((n) => n !== manifestName);
  if (!(manifestName in files)) throw new Error(`The upload has no ${manifestName}.`);
  await Promise.all(names.map((n) => c.getBlockBlobClient(`${prefix}/${n}`).uploadData(files[n])));
  const r = await c.getBlockBlobClient(`${prefix}/${manifestName}`).uploadData(files[manifestName], { blobHTTPHeaders: { blobContentType: 'application/json' } });
  return String(r.etag ?? '').replace(/"/g, '');
}

// ---------------------------------------------------------------- HTTP

export async function requestJson(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface WaitOptions {
  timeoutMs?: number;
  pollMs?: number;
  /** Called on every poll with the current view (undefined while the run does not exist yet). */
  onPoll?: (view: RunView | undefined) => void | Promise<void>;
}

/** Polls `GET /api/runs/{id}` until the run leaves `Running` (a 404 means "not started yet"). */
export async function waitForRun(baseUrl: string, runId: string, opts: WaitOptions = {}): Promise<RunView> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  let last: RunView | undefined;
  for (;;) {
    const r = await requestJson('GET', `${baseUrl}/api/runs/${encodeURIComponent(runId)}`);
    if (r.status === 200) last = r.body as RunView;
    else if (r.status !== 404) throw new Error(`GET /api/runs/${runId} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 500)}`);
    await opts.onPoll?.(last);
    if (last && last.state !== 'Running') return last;
    if (Date.now() > deadline) {
      throw new Error(`Run ${runId} did not finish within ${(opts.timeoutMs ?? 120_000) / 1000} s (${last ? `still at step ${last.currentStep ?? '?'}` : 'it never started'}).`);
    }
    await sleep(opts.pollMs ?? 100);
  }
}

// ---------------------------------------------------------------- timings

export interface RunTimings {
  register?: number;
  build?: number;
  /** prepare (claim the service, choose the slot) + deploy (start the slot's replicas). */
  deploy?: number;
  smoke?: number;
  promote?: number;
  /** First step's start → last step's end, as recorded by the run. */
  total?: number;
}

const stepMs = (s: RunStep) => (s.endedTime ? Date.parse(s.endedTime) - Date.parse(s.startedTime) : undefined);

export function runTimings(view: RunView): RunTimings {
  const sum = (...names: string[]) => {
    const ms = view.steps.filter((s) => names.includes(s.name)).map(stepMs).filter((x): x is number => x !== undefined);
    return ms.length ? ms.reduce((a, b) => a + b, 0) : undefined;
  };
  const starts = view.steps.map((s) => Date.parse(s.startedTime));
  const ends = view.steps.map((s) => (s.endedTime ? Date.parse(s.endedTime) : NaN)).filter((x) => !Number.isNaN(x));
  const t: RunTimings = {};
  const set = (k: keyof RunTimings, v: number | undefined) => {
    if (v !== undefined) t[k] = v;
  };
  set('register', sum('register'));
  set('build', sum('image'));
  set('deploy', sum('prepare', 'deploy'));
  set('smoke', sum('smokeTest'));
  set('promote', sum('promote'));
  set('total', starts.length && ends.length ? Math.max(...ends) - Math.min(...starts) : undefined);
  return t;
}

/** A plain-text table (first column left-aligned, the others right-aligned). */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------- scoring

/** Every number in a JSON value, depth first (a prediction list, `{"output": [[y], ...]}`, ...). */
export function numbersOf(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.flatMap(numbersOf);
  if (value && typeof value === 'object') return Object.values(value).flatMap(numbersOf);
  return [];
}

/** The JSON structure with every number replaced by 0 (tells two output formats apart). */
export function shapeOf(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'number' ? 0 : v));
}

export function closeTo(actual: unknown, expected: unknown, tolerance: number): boolean {
  const a = numbersOf(actual);
  const e = numbersOf(expected);
  return a.length === e.length && a.every((x, i) => Math.abs(x - e[i]) <= tolerance * Math.max(1, Math.abs(e[i])));
}

export async function score(scoringUri: string, body: unknown, key?: string): Promise<{ status: number; body: any; ms: number }> {
  const t0 = performance.now();
  const r = await requestJson('POST', scoringUri, body, key ? { authorization: `Bearer ${key}` } : {});
  return { ...r, ms: performance.now() - t0 };
}
