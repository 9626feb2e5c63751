/**
 * Mini-batch sizes as Azure ML's ParallelRunConfig accepts them.
 *
 * ParallelRunConfig.mini_batch_size (azureml-pipeline-steps, ParallelRunConfig docstring):
 *   "For FileDataset input, this field is the number of files a user script can process in one run() call.
 *    For TabularDataset input, this field is the approximate size of data the user script can process in one
 *    run() call. Example values are 1024, 1024KB, 10MB, and 1GB. (optional, default value is 10 files for
 *    FileDataset and 1MB for TabularDataset.)"
 * https://learn.microsoft.com/en-us/python/api/azureml-pipeline-steps/azureml.pipeline.steps.parallelrunconfig
 *
 * This project also accepts a row count for tabular input ("500 rows").
 * Units are binary (1KB = 1024 bytes), a bare number is bytes for tabular input (as in AML).
 */

export type MiniBatchSize =
  | { unit: 'files'; files: number }
  | { unit: 'bytes'; bytes: number }
  | { unit: 'rows'; rows: number };

export const DEFAULT_FILES_PER_MINI_BATCH = 10;
export const DEFAULT_TABULAR_MINI_BATCH_BYTES = 1024 * 1024;

const UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** Parses a tabular mini_batch_size: `1024`, `"1024"`, `"512KB"`, `"1 MB"`, `"1GB"`, `"500 rows"`. Returns a message on error. */
export function parseTabularSize(value: number | string): MiniBatchSize | string {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 1 ? { unit: 'bytes', bytes: value } : 'must be a positive whole number of bytes';
  }
  const m = /^\s*(\d+)\s*(B|KB|MB|GB|rows?)?\s*$/i.exec(value);
  if (!m) return `"${value}" is not a size: use a byte size such as "1MB", "512KB", "1024" or a row count such as "500 rows"`;
  const n = Number(m[1]);
  const unit = (m[2] ?? 'B').toUpperCase();
  if (!Number.isSafeInteger(n) || n < 1) return 'must be at least 1';
  if (unit.startsWith('ROW')) return { unit: 'rows', rows: n };
  const bytes = n * UNITS[unit];
  if (!Number.isSafeInteger(bytes)) return 'is too large';
  return { unit: 'bytes', bytes };
}

/** Parses a files mini_batch_size: a whole number of files (`10` or `"10"`). Returns a message on error. */
export function parseFilesSize(value: number | string): MiniBatchSize | string {
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) return `must be a whole number of files (at least 1) for input_kind "files", got ${JSON.stringify(value)}`;
  return { unit: 'files', files: n };
}

/** `1048576` → `"1MB"`, for messages and summaries. */
export function formatBytes(bytes: number): string {
  for (const u of ['GB', 'MB', 'KB'] as const) {
    if (bytes >= UNITS[u] && bytes % UNITS[u] === 0) return `${bytes / UNITS[u]}${u}`;
  }
  return `${bytes}B`;
}
