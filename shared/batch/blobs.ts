/** Small blob helpers used by the batch modules (JSON documents, streams, bounded concurrency). */
import type { ContainerClient } from '@azure/storage-blob';
import { isNotFound } from '../errors';

export async function putJson(container: ContainerClient, name: string, value: unknown): Promise<void> {
  const body = Buffer.from(JSON.stringify(value));
  await container.getBlockBlobClient(name).upload(body, body.length, {
    blobHTTPHeaders: { blobContentType: 'application/json' },
  });
}

/** The parsed JSON document, or null when the blob does not exist (one GET: `downloadToBuffer()` would HEAD first). */
export async function getJson<T>(container: ContainerClient, name: string): Promise<T | null> {
  try {
    const res = await container.getBlobClient(name).download();
    const buf = await readAll(res.readableStreamBody);
    return JSON.parse(buf.toString('utf8')) as T;
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

/** The whole body of a download response (cheaper than `downloadToBuffer` for small blobs and ranges). */
export async function readAll(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  if (!stream) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

export function isConditionFailed(e: unknown): boolean {
  return !!e && typeof e === 'object' && (e as { statusCode?: number }).statusCode === 412;
}

/** `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

