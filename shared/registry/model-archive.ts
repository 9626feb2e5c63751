/**
 * A model version's files as a tar.gz stream, built as it is sent: each file's tar header (node-tar's `Header`, the
 * same fields `tar.c({ portable: true, mtime: FIXED_MTIME })` writes for a staged file), then the blob's download
 * stream as the entry's body, hashed on the way. Nothing is staged on disk and at most a few chunks are in memory.
 *
 * A blob that does not match its registered sha256 (or size) fails the stream: the entries before it have been sent,
 * but the end of the archive and the gzip trailer never are, so the client sees a failed download, never a silently
 * wrong archive. The first blob is opened before the stream is returned, so a missing first file is still a plain
 * 404 `BlobNotFound` answer.
 */
import { createHash } from 'crypto';
import { Readable, pipeline } from 'stream';
import { createGzip } from 'zlib';
import { Header, Pax } from 'tar';
import { conflict, isNotFound, notFound } from '../errors';
import { FIXED_MTIME } from '../images/archive';
import { canonicalBlobRef, type StorageClients } from '../storage';
import type { ModelFile, ModelRecord } from './models';

const BLOCK = 512;
/** The mode `tar.c({ portable: true })` gives a file written with the default umask. */
const FILE_MODE = 0o644;
/** Two zero blocks end a tar archive. */
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/** The header block(s) of one file entry: a pax header first when the path does not fit the ustar fields. */
export function fileHeader(file: { path: string; size: number }): Buffer[] {
  const header = new Header({ path: file.path, mode: FILE_MODE, size: file.size, mtime: FIXED_MTIME, type: 'File' });
  const needPax = header.encode();
  if (!header.block) throw new Error(`tar header of ${file.path} was not encoded`);
  return needPax ? [new Pax({ path: file.path, size: file.size, mtime: FIXED_MTIME }).encode(), header.block] : [header.block];
}

async function openBlob(storage: StorageClients, file: ModelFile): Promise<NodeJS.ReadableStream> {
  const { container, blob } = canonicalBlobRef(file.blob, { storage });
  try {
    const res = await storage.container(container).getBlockBlobClient(blob).download(0);
    if (!res.readableStreamBody) throw new Error(`blob ${container}/${blob} has no body`);
    return res.readableStreamBody;
  } catch (e) {
    if (isNotFound(e)) throw notFound('BlobNotFound', `Blob ${container}/${blob} does not exist; upload it first or fix the reference.`);
    throw e;
  }
}

const corrupt = (model: ModelRecord, file: ModelFile) =>
  conflict('ModelFileCorrupt', `File ${file.path} of ${model.id} does not match its recorded sha256; re-register the model.`);

/**
 * The tar.gz stream of `model`'s files (paths as registered). `onCorrupt` is told (before the stream fails) which file
 * did not match its sha256 or size.
 */
export async function modelArchiveStream(storage: StorageClients, model: ModelRecord, onCorrupt: (file: ModelFile) => void): Promise<Readable> {
  const files = model.files;
  const first = files.length > 0 ? await openBlob(storage, files[0]) : undefined;
  async function* entries(): AsyncGenerator<Buffer> {
    for (let i = 0; i < files.length; i++) {
      const file = files[i];
      const body = i === 0 && first ? first : await openBlob(storage, file);
      yield* fileHeader(file);
      const hash = createHash('sha256');
      let seen = 0;
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          seen += chunk.length;
          // Never more bytes than the header announced: the archive would be wrong from here on.
          if (seen > file.size) break;
          hash.update(chunk);
          yield chunk;
        }
      } finally {
        (body as Readable).destroy?.();
      }
      if (seen !== file.size || hash.digest('hex') !== file.sha256) {
        onCorrupt(file);
        throw corrupt(model, file);
      }
      const pad = (BLOCK - (file.size % BLOCK)) % BLOCK;
      if (pad) yield Buffer.alloc(pad);
    }
    yield END_OF_ARCHIVE;
  }
  const gz = createGzip();
  // A failure anywhere (a blob read, a sha256 mismatch) destroys the gzip stream with that error: the response fails.
  pipeline(Readable.from(entries(), { objectMode: false }), gz, () => undefined);
  // A response abandoned before its first entry was read: the first blob's download is not left open.
  gz.once('close', () => (first as Readable | undefined)?.destroy?.());
  return gz;
}
