/**
 * Generates the batch benchmark's inputs: CSV files of iris-like rows (columns id, sepal_length, sepal_width,
 * petal_length, petal_width — what examples/batch/model scores), by default 200 files / 10,000 rows, uploaded to
 * `<container>/<prefix>part-000.csv` ... Deterministic (seeded), so every run scores the same data.
 *
 * As a module: `generateBatchData(containerClient, options)`. As a tool:
 *   node dist/bench/batch-data.js [--files 200] [--rows 10000] [--container batch-data] [--prefix iris/] [--seed 1]
 * with the storage connection string in AzureWebJobsStorage. Prints one JSON line (name, value, unit, ...).
 */
import type { ContainerClient } from '@azure/storage-blob';
import { redactSecrets } from '../shared/errors';

export interface BatchDataOptions {
  files?: number;
  rows?: number;
  prefix?: string;
  seed?: number;
  /** Uploads in flight (default 16). */
  concurrency?: number;
}

export interface BatchDataResult {
  files: number;
  rows: number;
  bytes: number;
  /** Blob names in order. */
  blobs: string[];
}

export const BATCH_DATA_HEADER = 'id,sepal_length,sepal_width,petal_length,petal_width';

/** mulberry32: a tiny seeded PRNG (deterministic data, no dependency). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Species-like clusters so that the example model predicts all three classes. */
const CENTERS = [
  [5.0, 3.4, 1.5, 0.25],
  [5.9, 2.8, 4.3, 1.3],
  [6.6, 3.0, 5.6, 2.0],
];

/** The CSV texts (header + rows) of every file, without uploading: rows are spread evenly, ids are global. */
export function batchDataFiles(opts: BatchDataOptions = {}): Array<{ name: string; text: string; rows: number }> {
  const files = opts.files ?? 200;
  const rows = opts.rows ?? 10_000;
  const prefix = opts.prefix ?? 'iris/';
  if (!Number.isInteger(files) || files < 1 || !Number.isInteger(rows) || rows < 0) throw new RangeError('files must be >= 1 and rows >= 0 (whole numbers)');
  const rand = prng(opts.seed ?? 1);
  const out: Array<{ name: string; text: string; rows: number }> = [];
  let id = 0;
  // Names sort in file order (the plan lists inputs by name): 3 digits up to 1,000 files, more beyond.
  const width = Math.max(3, String(files - 1).length);
  for (let f = 0; f < files; f++) {
    const n = Math.floor(rows / files) + (f < rows % files ? 1 : 0);
    const lines = [BATCH_DATA_HEADER];
    for (let r = 0; r < n; r++) {
      const c = CENTERS[Math.floor(rand() * CENTERS.length)];
      const v = c.map((x) => (x + (rand() - 0.5) * 0.6).toFixed(2));
      lines.push(`${id++},${v.join(',')}`);
    }
    out.push({ name: `${prefix}part-${String(f).padStart(width, '0')}.csv`, text: lines.join('\n') + '\n', rows: n });
  }
  return out;
}

/** Uploads the generated files into `container` (created if absent); existing blobs of the same names are replaced. */
export async function generateBatchData(container: ContainerClient, opts: BatchDataOptions = {}): Promise<BatchDataResult> {
  await container.createIfNotExists();
  const files = batchDataFiles(opts);
  const limit = Math.max(1, opts.concurrency ?? 16);
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++];
      const body = Buffer.from(f.text);
      bytes += body.length;
      await container.getBlockBlobClient(f.name).upload(body, body.length, { blobHTTPHeaders: { blobContentType: 'text/csv' } });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, files.length) }, worker));
  return { files: files.length, rows: files.reduce((s, f) => s + f.rows, 0), bytes, blobs: files.map((f) => f.name) };
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(argv: string[]): Promise<void> {
  const cs = process.env.AzureWebJobsStorage;
  if (!cs) {
    console.error('Set AzureWebJobsStorage to the storage connection string (e.g. the Azurite one printed by npm start).');
    process.exit(2);
  }
  const { BlobServiceClient } = await import('@azure/storage-blob');
  const container = BlobServiceClient.fromConnectionString(cs).getContainerClient(arg(argv, 'container') ?? 'batch-data');
  const num = (name: string) => (arg(argv, name) !== undefined ? Number(arg(argv, name)) : undefined);
  const started = Date.now();
  const r = await generateBatchData(container, { files: num('files'), rows: num('rows'), prefix: arg(argv, 'prefix'), seed: num('seed') });
  console.log(
    JSON.stringify({ name: 'batch.data.rows', value: r.rows, unit: 'rows', files: r.files, bytes: r.bytes, container: container.containerName, ms: Date.now() - started }),
  );
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`batch-data failed: ${redactSecrets((e as Error).message)}`);
    process.exit(1);
  });
}
