/**
 * Client-side helpers of the demo and `bench:pipeline`: example folders, uploads, step timings, comparing
 * predictions. Calls to the API (runs, services, keys, scoring) go through the shared client, `client/api.ts`.
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
