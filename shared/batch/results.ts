/**
 * Mini-batch results: one blob per scoring call (`results/00000040-00000047a1r0.json`, `{ results: [...] }`, see
 * layout.ts) — or, in runs whose chunks were started before grouped results, one blob per mini-batch index
 * (`results/00000042.json`; re-running overwrites). `readResultsInOrder` reads either. Counted as ParallelRunConfig
 * does — one returned element per input is one success, inputs without a returned element are failed inputs (see
 * thresholds.ts for the doc references).
 */
import type { ContainerClient } from '@azure/storage-blob';
import type { ErrorInfo } from '../seams';
import { getJson, putJson } from './blobs';
import { parseResultBlobName, type ResultKey, type RunLayout } from './layout';
import type { MiniBatch } from './plan';
import type { OutcomeCounts } from './thresholds';

export type MiniBatchStatus = 'succeeded' | 'partial' | 'failed';

/** The stored result of one mini-batch (its latest attempt). */
export interface MiniBatchResult {
  index: number;
  /** `succeeded`: one element per input; `partial`: fewer elements; `failed`: run() failed, timed out, or inputs unreadable. */
  status: MiniBatchStatus;
  /** 1-based attempt number, when the caller counts attempts. */
  attempt?: number;
  itemCount: number;
  /** Elements run() returned (may exceed itemCount: AML appends every returned row). */
  returned: number;
  succeeded: number;
  failed: number;
  /** Whether another try may help (false for changed/unreadable inputs). */
  retryable: boolean;
  error?: ErrorInfo;
  /** The inputs, described for people (only when some failed): `container/blob` or `container/blob rows 1-100`. */
  failedInputs?: string[];
  /** append_row output lines, in the order run() returned them (absent for summary_only and failures). */
  rows?: string[];
  node?: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

/** The compact outcome an activity returns to the orchestrator (no rows, bounded error text). */
export interface MiniBatchOutcome extends OutcomeCounts {
  status: MiniBatchStatus;
  retryable: boolean;
  durationMs: number;
  error?: ErrorInfo;
}

/** Longest error message kept in results, outcomes and the summary. */
export const MAX_ERROR_MESSAGE = 500;

export function outcomeOf(r: MiniBatchResult): MiniBatchOutcome {
  return {
    index: r.index,
    status: r.status,
    itemCount: r.itemCount,
    succeeded: r.succeeded,
    failed: r.failed,
    miniBatchFailed: r.status !== 'succeeded',
    retryable: r.retryable,
    durationMs: r.durationMs,
    ...(r.error ? { error: capError(r.error) } : {}),
  };
}

/** Writes (overwrites) the result blob of `r.index` and returns the compact outcome. */
export async function writeMiniBatchResult(container: ContainerClient, layout: RunLayout, r: MiniBatchResult): Promise<MiniBatchOutcome> {
  await putJson(container, layout.result(r.index), r);
  return outcomeOf(r);
}

/** The blob of one grouped scoring call. */
export interface ResultGroupDoc {
  results: MiniBatchResult[];
}

/**
 * Writes the results of one scoring call as one blob (`layout.resultGroup(keys)`; a call that runs again writes the
 * same blob) and returns their compact outcomes, in order. `keys[i]` is the index, attempt and run of `results[i]`.
 */
export async function writeResultGroup(container: ContainerClient, layout: RunLayout, keys: readonly ResultKey[], results: MiniBatchResult[]): Promise<MiniBatchOutcome[]> {
  if (keys.length !== results.length || keys.some((k, i) => k.index !== results[i].index)) throw new Error('result group keys do not match its results');
  const doc: ResultGroupDoc = { results };
  await putJson(container, layout.resultGroup(keys), doc);
  return results.map(outcomeOf);
}

/** Grouped result blobs kept in memory at once while reading in order (besides those the current window needs). */
const MAX_CACHED_RESULT_BLOBS = 32;

/**
 * The latest result of each mini-batch 0..count-1, in index order (null: it never ran). One listing of `results/`
 * finds where each index's result is — the grouped blob with its largest (attempt, run), else its per-index blob —
 * then the blobs are read `concurrency` indexes at a time, each result handed out once (a blob that holds the
 * latest result of several indexes is read once while they are near each other; one evicted early is read again).
 */
export async function* readResultsInOrder(
  container: ContainerClient,
  layout: Pick<RunLayout, 'resultsPrefix' | 'result'>,
  count: number,
  concurrency = 16,
): AsyncGenerator<MiniBatchResult | null> {
  // 1. Where each index's latest result is: -1 none, -2 its per-index blob, else the grouped blob's number.
  const where = new Int32Array(count).fill(-1);
  const rank = new Float64Array(count).fill(-1);
  const groups: string[] = [];
  for await (const b of container.listBlobsFlat({ prefix: layout.resultsPrefix })) {
    const keys = parseResultBlobName(b.name.slice(layout.resultsPrefix.length));
    if (!keys) continue;
    const single = keys.length === 1 && keys[0].attempt === 0;
    const id = single ? -2 : groups.push(b.name) - 1;
    for (const k of keys) {
      if (k.index >= count) continue;
      const r = k.attempt * 1e7 + k.run;
      if (r > rank[k.index]) {
        rank[k.index] = r;
        where[k.index] = id;
      }
    }
  }
  // Indexes still to be handed out per grouped blob: a blob leaves the cache when none is left.
  const refs = new Int32Array(groups.length);
  for (let i = 0; i < count; i++) if (where[i] >= 0) refs[where[i]]++;

  // 2. In order, a window at a time; the window's blobs are read concurrently.
  const cache = new Map<number, Promise<Map<number, MiniBatchResult>>>();
  const load = (id: number): Promise<Map<number, MiniBatchResult>> => {
    let p = cache.get(id);
    if (!p) {
      p = getJson<ResultGroupDoc>(container, groups[id]).then((doc) => {
        if (!doc || !Array.isArray(doc.results)) throw new Error(`result blob ${groups[id]} is missing or not a result group`);
        return new Map(doc.results.map((r) => [r.index, r]));
      });
      cache.set(id, p);
    }
    return p;
  };
  const window = Math.max(1, concurrency);
  for (let from = 0; from < count; from += window) {
    const to = Math.min(count, from + window);
    const singles = new Map<number, Promise<MiniBatchResult | null>>();
    for (let i = from; i < to; i++) {
      if (where[i] >= 0) void load(where[i]).catch(() => undefined); // awaited below, in order
      else if (where[i] === -2) {
        const p = getJson<MiniBatchResult>(container, layout.result(i));
        p.catch(() => undefined); // awaited below, in order
        singles.set(i, p);
      }
    }
    for (let i = from; i < to; i++) {
      const id = where[i];
      if (id === -1) {
        yield null;
        continue;
      }
      let r: MiniBatchResult | null | undefined;
      if (id === -2) {
        r = await singles.get(i)!;
      } else {
        const results = await load(id);
        r = results.get(i);
        results.delete(i);
        if (--refs[id] === 0) cache.delete(id);
      }
      if (!r || r.index !== i) throw new Error(`the result of mini-batch ${i} is missing from its blob under ${layout.resultsPrefix}`);
      yield r;
    }
    // Bound what stays in memory: blobs still holding later indexes (retries grouped out of order) are dropped
    // oldest first and read again when their turn comes.
    for (const id of cache.keys()) {
      if (cache.size <= MAX_CACHED_RESULT_BLOBS) break;
      cache.delete(id);
    }
  }
}

/**
 * Counts a run() return against a mini-batch: `min(returned, inputs)` successes, the rest failed inputs.
 * `keepRows` converts the elements to output lines (append_row).
 */
export function countReturn(mb: MiniBatch, elements: unknown[], keepRows: boolean): Pick<MiniBatchResult, 'status' | 'returned' | 'succeeded' | 'failed' | 'rows' | 'failedInputs' | 'error'> {
  const succeeded = Math.min(elements.length, mb.itemCount);
  const failed = mb.itemCount - succeeded;
  return {
    status: failed === 0 ? 'succeeded' : 'partial',
    returned: elements.length,
    succeeded,
    failed,
    ...(keepRows ? { rows: elements.map(toLine) } : {}),
    ...(failed > 0
      ? {
          failedInputs: describeInputs(mb),
          error: {
            code: 'MissingResults',
            message: `run() returned ${elements.length} element(s) for ${mb.itemCount} input(s); ${failed} input(s) counted as failed`,
          },
        }
      : {}),
  };
}

/**
 * The result of a mini-batch none of whose inputs got scored (run() failed or timed out, inputs unreadable, or the
 * activity itself failed after its tries — write it with `writeMiniBatchResult` so the summary counts it).
 */
export function failedResult(
  mb: MiniBatch,
  error: ErrorInfo,
  at: { startedAt: string; finishedAt: string; attempt?: number; node?: string; retryable?: boolean },
): MiniBatchResult {
  return {
    index: mb.index,
    status: 'failed',
    ...(at.attempt !== undefined ? { attempt: at.attempt } : {}),
    itemCount: mb.itemCount,
    returned: 0,
    succeeded: 0,
    failed: mb.itemCount,
    retryable: at.retryable ?? false,
    error: capError(error),
    failedInputs: describeInputs(mb),
    ...(at.node !== undefined ? { node: at.node } : {}),
    startedAt: at.startedAt,
    finishedAt: at.finishedAt,
    durationMs: Date.parse(at.finishedAt) - Date.parse(at.startedAt),
  };
}

/** One output line per returned element: strings as they are (JSON-quoted if multi-line), anything else as JSON. */
export function toLine(el: unknown): string {
  if (typeof el === 'string') return /[\r\n]/.test(el) ? JSON.stringify(el) : el;
  const s = JSON.stringify(el);
  return s === undefined ? 'null' : s;
}

/** People-readable references to a mini-batch's inputs. */
export function describeInputs(mb: MiniBatch): string[] {
  if (mb.kind === 'files') return mb.files.map((f) => `${f.container}/${f.blob}`);
  return [`${mb.file.container}/${mb.file.blob} rows ${mb.firstRow + 1}-${mb.firstRow + mb.itemCount}`];
}

export function capError(e: ErrorInfo): ErrorInfo {
  return { code: e.code, message: e.message.length > MAX_ERROR_MESSAGE ? `${e.message.slice(0, MAX_ERROR_MESSAGE - 1)}…` : e.message };
}
