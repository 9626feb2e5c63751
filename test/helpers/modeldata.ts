/** Reading collected model data back from blob storage (the `modeldata` container), as a user of the data would. */
import { BlobServiceClient } from '@azure/storage-blob';

export interface CollectedBlob {
  name: string;
  records: Record<string, any>[];
}

/** Every blob under `prefix` of the `modeldata` container with its JSON-lines records ([] when the container is absent). */
export async function readModelData(connectionString: string, prefix = ''): Promise<CollectedBlob[]> {
  const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient('modeldata');
  if (!(await container.exists())) return [];
  const out: CollectedBlob[] = [];
  for await (const b of container.listBlobsFlat({ prefix })) {
    const text = (await container.getBlockBlobClient(b.name).downloadToBuffer()).toString('utf8');
    out.push({ name: b.name, records: text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l)) });
  }
  return out;
}

/** How many times each value of `key` occurs in the records. */
export function countBy(records: Record<string, any>[], key: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of records) m.set(String(r[key]), (m.get(String(r[key])) ?? 0) + 1);
  return m;
}

/** Runs `task(i)` for i in [0, total) with at most `concurrency` at once. */
export async function runConcurrent<T>(total: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(total);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (next < total) {
      const i = next++;
      results[i] = await task(i);
    }
  }));
  return results;
}
