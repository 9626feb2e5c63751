/**
 * Input listing and deterministic partitioning into mini-batches.
 *
 * Inputs are listed page by page (blob listings are in lexicographic name order; an explicit list keeps its
 * order), so the same inputs always give the same mini-batches with the same indexes:
 * - `files`: consecutive runs of `mini_batch_size` files (the last one may be shorter);
 * - `tabular`: each file is scanned once for record boundaries and cut into row ranges of at most
 *   `mini_batch_size` bytes (a range always holds at least one row) or rows; a mini-batch never spans two files.
 * A mini-batch is described by reference (blob names, etags, byte and row ranges), never by its data.
 *
 * Descriptors are stored in plan chunks of PLAN_CHUNK_SIZE (see layout.ts). `planInputsPage` handles one listing
 * page per call and returns a small cursor, so an orchestrator can drive planning through an activity per page;
 * re-running a page with the same cursor rewrites the same chunks (idempotent).
 */
import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { AppError, isNotFound } from '../errors';
import { blobNameReason } from '../manifest/names';
import { getJson, isConditionFailed, mapLimit, putJson } from './blobs';
import type { BatchJob, TabularFormat } from './job';
import { chunkOf, PLAN_CHUNK_SIZE, RunLayout } from './layout';
import { formatOf, RangeLimit, TabularPartitioner } from './tabular';

/** One input blob, pinned to the version that was planned (etag). */
export interface BlobInput {
  container: string;
  blob: string;
  size: number;
  etag: string;
}

export interface FilesMiniBatch {
  index: number;
  kind: 'files';
  files: BlobInput[];
  /** Inputs in this mini-batch (files). */
  itemCount: number;
  bytes: number;
}

export interface TabularMiniBatch {
  index: number;
  kind: 'tabular';
  file: BlobInput;
  format: TabularFormat;
  /** The CSV header is bytes [0, headerEnd) of the file (0 = no header). */
  headerEnd: number;
  /** Data records are bytes [start, end). */
  start: number;
  end: number;
  /** 0-based data row index of the first row (header excluded). */
  firstRow: number;
  /** Inputs in this mini-batch (rows). */
  itemCount: number;
  bytes: number;
}

export type MiniBatch = FilesMiniBatch | TabularMiniBatch;

/** Planning state between pages. Small: no descriptors, at most one mini-batch's worth of pending files. */
export interface PlanCursor {
  /** Listing pages done. */
  pages: number;
  /** Prefix listing: the service's continuation token for the next page. */
  continuationToken?: string;
  /** Explicit blob list: offset of the next page. */
  listOffset?: number;
  nextIndex: number;
  /** `files` only: files listed but not yet in a mini-batch (fewer than mini_batch_size). */
  pendingFiles: BlobInput[];
  itemCount: number;
  bytes: number;
  inputFileCount: number;
}

export interface PlanSummary {
  miniBatchCount: number;
  /** Total inputs: files for `files`, rows for `tabular`. */
  itemCount: number;
  bytes: number;
  inputFileCount: number;
  chunkCount: number;
  chunkSize: number;
  inputKind: BatchJob['inputKind'];
}

export interface PlanPageResult {
  done: boolean;
  /** Pass back to the next call while `done` is false. */
  cursor: PlanCursor;
  /** Set when done (also written to `layout.planSummary`). */
  plan?: PlanSummary;
}

export interface PlanOptions {
  /** Blobs per listing page (default: 5000 for files, 100 for tabular, which scans every file). */
  pageSize?: number;
  /** Parallel file scans / property reads within a page (default 8). */
  concurrency?: number;
}

const INITIAL_CURSOR: PlanCursor = { pages: 0, nextIndex: 0, pendingFiles: [], itemCount: 0, bytes: 0, inputFileCount: 0 };

/**
 * Lists one page of inputs, partitions it, and writes its descriptors into the plan chunks.
 * Errors: `InputNotFound` (container missing, no blob under the prefix, or a listed URI missing),
 * `InputChanged` (a blob changed while it was being scanned).
 */
export async function planInputsPage(
  service: Pick<BlobServiceClient, 'getContainerClient'>,
  job: BatchJob,
  layout: RunLayout,
  cursor: PlanCursor = INITIAL_CURSOR,
  opts: PlanOptions = {},
): Promise<PlanPageResult> {
  const pageSize = opts.pageSize ?? (job.inputKind === 'files' ? 5000 : 100);
  const concurrency = opts.concurrency ?? 8;
  const out = service.getContainerClient(layout.container);
  if (cursor.pages === 0) await out.createIfNotExists();

  const { inputs, more, next } = await listPage(service, job, cursor, pageSize);
  const c: PlanCursor = { ...cursor, pages: cursor.pages + 1, pendingFiles: [...cursor.pendingFiles], ...next };
  const batches: MiniBatch[] = [];

  if (job.inputKind === 'files') {
    if (job.miniBatchSize.unit !== 'files') throw new Error('files input needs a files mini_batch_size');
    const per = job.miniBatchSize.files;
    for (const f of inputs) {
      c.pendingFiles.push(f);
      if (c.pendingFiles.length === per) batches.push(filesBatch(c.nextIndex + batches.length, c.pendingFiles.splice(0)));
    }
    if (!more && c.pendingFiles.length > 0) batches.push(filesBatch(c.nextIndex + batches.length, c.pendingFiles.splice(0)));
    for (const f of inputs) c.bytes += f.size;
    c.itemCount += inputs.length;
  } else {
    const limit: RangeLimit = job.miniBatchSize.unit === 'rows' ? { rows: job.miniBatchSize.rows } : { bytes: (job.miniBatchSize as { bytes: number }).bytes };
    const parts = await mapLimit(inputs, concurrency, (f) => scanTabular(service.getContainerClient(f.container), f, formatOf(f.blob, job.inputFormat), job.csvHeader, limit));
    inputs.forEach((f, i) => {
      const p = parts[i];
      const format = formatOf(f.blob, job.inputFormat);
      for (const r of p.ranges) {
        batches.push({
          index: c.nextIndex + batches.length,
          kind: 'tabular',
          file: f,
          format,
          headerEnd: p.headerEnd,
          start: r.start,
          end: r.end,
          firstRow: r.firstRow,
          itemCount: r.rowCount,
          bytes: r.end - r.start,
        });
      }
      c.itemCount += p.rowCount;
      c.bytes += f.size;
    });
  }
  c.inputFileCount += inputs.length;

  await writeChunks(out, layout, cursor.nextIndex, batches);
  c.nextIndex += batches.length;

  if (more) return { done: false, cursor: c };
  const plan: PlanSummary = {
    miniBatchCount: c.nextIndex,
    itemCount: c.itemCount,
    bytes: c.bytes,
    inputFileCount: c.inputFileCount,
    chunkCount: Math.ceil(c.nextIndex / PLAN_CHUNK_SIZE),
    chunkSize: PLAN_CHUNK_SIZE,
    inputKind: job.inputKind,
  };
  await putJson(out, layout.planSummary, plan);
  return { done: true, cursor: c, plan };
}

/** The descriptors of one plan chunk (indexes chunk*PLAN_CHUNK_SIZE ...), in index order. */
export async function readPlanChunk(container: ContainerClient, layout: RunLayout, chunk: number): Promise<MiniBatch[]> {
  const doc = await getJson<{ miniBatches: MiniBatch[] }>(container, layout.planChunk(chunk));
  if (!doc) throw new AppError('PlanNotFound', `Plan chunk ${chunk} of ${layout.root} is missing: plan the inputs first`, 404);
  return doc.miniBatches;
}

/** One mini-batch descriptor by index. */
export async function readMiniBatch(container: ContainerClient, layout: RunLayout, index: number): Promise<MiniBatch> {
  const chunk = await readPlanChunk(container, layout, chunkOf(index));
  const mb = chunk[index - chunkOf(index) * PLAN_CHUNK_SIZE];
  if (!mb || mb.index !== index) throw new AppError('PlanNotFound', `Mini-batch ${index} is not in the plan of ${layout.root}`, 404);
  return mb;
}

/** The plan totals, or null before planning completed. */
export function readPlanSummary(container: ContainerClient, layout: RunLayout): Promise<PlanSummary | null> {
  return getJson<PlanSummary>(container, layout.planSummary);
}

// ---------------------------------------------------------------- internals

function filesBatch(index: number, files: BlobInput[]): FilesMiniBatch {
  return { index, kind: 'files', files, itemCount: files.length, bytes: files.reduce((s, f) => s + f.size, 0) };
}

async function listPage(
  service: Pick<BlobServiceClient, 'getContainerClient'>,
  job: BatchJob,
  cursor: PlanCursor,
  pageSize: number,
): Promise<{ inputs: BlobInput[]; more: boolean; next: Partial<PlanCursor> }> {
  const src = job.inputs;
  if (src.kind === 'blobs') {
    const from = cursor.listOffset ?? 0;
    const slice = src.blobs.slice(from, from + pageSize);
    const inputs = await mapLimit(slice, 16, async (ref) => {
      try {
        const p = await service.getContainerClient(ref.container).getBlobClient(ref.blob).getProperties();
        return { container: ref.container, blob: ref.blob, size: p.contentLength ?? 0, etag: p.etag ?? '' };
      } catch (e) {
        if (isNotFound(e)) throw new AppError('InputNotFound', `Input blob "${ref.container}/${ref.blob}" does not exist: upload it or remove it from inputs.uris`, 400);
        throw e;
      }
    });
    const to = from + slice.length;
    return { inputs, more: to < src.blobs.length, next: { listOffset: to } };
  }

  const container = service.getContainerClient(src.container);
  let page;
  try {
    const iter = container.listBlobsFlat({ prefix: src.prefix }).byPage({ maxPageSize: pageSize, continuationToken: cursor.continuationToken });
    page = (await iter.next()).value;
  } catch (e) {
    if (isNotFound(e)) throw new AppError('InputNotFound', `Input container "${src.container}" does not exist: create it and upload the inputs, or fix inputs.container`, 400);
    throw e;
  }
  const items = page?.segment?.blobItems ?? [];
  const token: string | undefined = page?.continuationToken || undefined;
  if (cursor.pages === 0 && items.length === 0 && !token) {
    throw new AppError(
      'InputNotFound',
      `No blobs under "${src.container}/${src.prefix}": upload the inputs there or fix inputs.prefix (blob names are case-sensitive)`,
      400,
    );
  }
  const inputs: BlobInput[] = [];
  for (const b of items) {
    if (b.name.endsWith('/')) continue; // folder marker: "the prefix exists" but is not an input
    // A listed name is read back by name: one the SDK would send as another path (`..`, `%2F`) is refused.
    const why = blobNameReason(b.name);
    if (why) throw new AppError('InvalidInputName', `Input blob "${src.container}/${b.name.slice(0, 300)}" cannot be read safely: its name ${why}; rename it or narrow inputs.prefix`, 400);
    inputs.push({ container: src.container, blob: b.name, size: b.properties.contentLength ?? 0, etag: b.properties.etag ?? '' });
  }
  return { inputs, more: !!token, next: { continuationToken: token } };
}

async function scanTabular(container: ContainerClient, f: BlobInput, format: TabularFormat, header: boolean, limit: RangeLimit) {
  const p = new TabularPartitioner(format, header, limit);
  if (f.size > 0) {
    try {
      const res = await container.getBlobClient(f.blob).download(0, undefined, { conditions: { ifMatch: f.etag } });
      for await (const chunk of res.readableStreamBody as AsyncIterable<Buffer>) p.scanner.push(chunk);
    } catch (e) {
      if (isConditionFailed(e) || isNotFound(e)) throw inputChanged(f);
      throw e;
    }
  }
  const part = p.finish();
  if (part.size !== f.size) throw inputChanged(f);
  return part;
}

export function inputChanged(f: BlobInput): AppError {
  return new AppError('InputChanged', `Input blob "${f.container}/${f.blob}" changed or disappeared during the run: inputs must not change while a batch run is in progress; start a new run`, 409);
}

/** Writes descriptors [first, first + batches.length) into their chunks, keeping earlier entries of a partial chunk. */
async function writeChunks(out: ContainerClient, layout: RunLayout, first: number, batches: MiniBatch[]): Promise<void> {
  let i = 0;
  while (i < batches.length) {
    const index = first + i;
    const chunk = chunkOf(index);
    const chunkStart = chunk * PLAN_CHUNK_SIZE;
    const take = Math.min(batches.length - i, chunkStart + PLAN_CHUNK_SIZE - index);
    let existing: MiniBatch[] = [];
    if (index > chunkStart) {
      const doc = await getJson<{ miniBatches: MiniBatch[] }>(out, layout.planChunk(chunk));
      // Keep only entries before `index`: a re-run of this page must not duplicate what it wrote the first time.
      existing = (doc?.miniBatches ?? []).filter((m) => m.index < index);
      if (existing.length !== index - chunkStart) throw new AppError('PlanCorrupt', `Plan chunk ${chunk} of ${layout.root} is incomplete: restart planning`, 500);
    }
    await putJson(out, layout.planChunk(chunk), { chunk, miniBatches: [...existing, ...batches.slice(i, i + take)] });
    i += take;
  }
}
