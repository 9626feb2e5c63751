/**
 * Batch pool records, sweeping and start-up reaping. The pool provider of a kind (`local` = runtime processes on
 * this machine, `aci` = container groups) and the kind a run uses (`DEFAULT_TARGET`: `local` → local pools,
 * `aci` / `aks` → ACI pools) are chosen in `shared/platform/compose.ts`.
 *
 * Every provisioned pool is also recorded in blob `batch-pools/<poolId>.json` ({ poolId, runId, kind, keys }) until it is
 * torn down, so pools of runs that ended without their teardown step — a terminated orchestration runs no
 * `finally` — can be found and removed by `sweepBatchPools` (called by the batch HTTP API, the terminate endpoint
 * and a timer). At app start, `reapLocalPools` also removes pools whose provisioning a killed host interrupted, pools
 * without a record, and node processes no pool names (providers with `reap`, i.e. local pools).
 */
import { createHash, randomBytes } from 'crypto';
import type { DurableClient } from 'durable-functions';
import type { AppConfig } from '../config';
import { isNotFound, toErrorInfo } from '../errors';
import { batchPoolKind, getBatchPoolProvider, type BatchPoolKind } from '../platform/compose';
import type { ErrorInfo, ServiceKeys } from '../seams';
import type { StorageClients } from '../storage';
import { getJson, putJson } from './blobs';

export { batchPoolKind, getBatchPoolProvider, type BatchPoolKind };

/** Container of the pool records. */
export const BATCH_POOLS_CONTAINER = 'batch-pools';

export interface PoolRecord {
  poolId: string;
  runId: string;
  kind: BatchPoolKind;
  createdAt: string;
  /**
   * The keys the pool's nodes require (`Authorization: Bearer`). A secret: it lives only here (and in the nodes'
   * environment); orchestrations pass the pool id and the scoring activity reads the keys (`poolKeys`).
   */
  keys?: ServiceKeys;
}

/** Two fresh random keys (256 bits each, base64url). */
export function generatePoolKeys(): ServiceKeys {
  return { primaryKey: randomBytes(32).toString('base64url'), secondaryKey: randomBytes(32).toString('base64url') };
}

const keysCache = new Map<string, Promise<ServiceKeys | null>>();

/**
 * The keys of a recorded pool (null: no record, or a pool recorded without keys). Cached per process (a pool's
 * keys never change while it lives); `forgetPoolKeys` drops the entry (e.g. after a 401).
 */
export function poolKeys(storage: StorageClients, poolId: string): Promise<ServiceKeys | null> {
  let p = keysCache.get(poolId);
  if (!p) {
    if (keysCache.size >= 64) keysCache.delete(keysCache.keys().next().value as string);
    p = getPoolRecord(storage, poolId).then((r) => r?.keys ?? null);
    keysCache.set(poolId, p);
    // Only a pool with keys is cached: a missing record may appear later, a failed read is retried.
    p.then((k) => (k ? undefined : keysCache.delete(poolId)), () => keysCache.delete(poolId));
  }
  return p;
}

export function forgetPoolKeys(poolId: string): void {
  keysCache.delete(poolId);
}

/** The pool id of a run: deterministic, short, valid as a folder, ACI group and DNS label prefix. */
export function poolIdFor(runId: string): string {
  return `bp-${createHash('sha256').update(runId).digest('hex').slice(0, 20)}`;
}

export async function recordPool(storage: StorageClients, record: PoolRecord): Promise<void> {
  const c = await storage.ensureContainer(BATCH_POOLS_CONTAINER);
  await putJson(c, `${record.poolId}.json`, record);
}

export async function forgetPool(storage: StorageClients, poolId: string): Promise<void> {
  forgetPoolKeys(poolId);
  await storage.container(BATCH_POOLS_CONTAINER).getBlockBlobClient(`${poolId}.json`).deleteIfExists().catch((e) => {
    if (!isNotFound(e)) throw e;
  });
}

export function getPoolRecord(storage: StorageClients, poolId: string): Promise<PoolRecord | null> {
  return getJson<PoolRecord>(storage.container(BATCH_POOLS_CONTAINER), `${poolId}.json`);
}

export async function listPoolRecords(storage: StorageClients): Promise<PoolRecord[]> {
  const c = storage.container(BATCH_POOLS_CONTAINER);
  const out: PoolRecord[] = [];
  try {
    for await (const b of c.listBlobsFlat()) {
      const r = await getJson<PoolRecord>(c, b.name);
      if (r) out.push(r);
    }
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  return out;
}

/** Tears a pool down and forgets its record (idempotent). */
export async function teardownPool(config: AppConfig, storage: StorageClients, poolId: string, kind: BatchPoolKind): Promise<void> {
  await getBatchPoolProvider(kind, config, storage).teardown(poolId);
  await forgetPool(storage, poolId);
}

/**
 * App start (before the durable engine resumes anything): the configured pool provider's `reap` (local pools; Azure
 * pools have none and are swept by the timer), keeping the ready pools that still have a pool record (a storage
 * error keeps the pool: never reap on doubt). Undefined when the provider has nothing to reap.
 */
export async function reapLocalPools(config: AppConfig, storage: StorageClients): Promise<{ removed: string[]; strays: number } | undefined> {
  const provider = getBatchPoolProvider(batchPoolKind(config), config, storage);
  if (!provider.reap) return undefined;
  return provider.reap(async (poolId) => (await getPoolRecord(storage, poolId).catch(() => true)) !== null);
}

const TERMINAL = new Set(['Completed', 'Failed', 'Terminated', 'Canceled']);

export function isTerminalStatus(runtimeStatus: string | undefined): boolean {
  return runtimeStatus !== undefined && TERMINAL.has(String(runtimeStatus));
}

/** `client.getStatus`, with "no such instance" (the client throws on HTTP 404) as undefined. */
export async function statusOrUndefined<T extends Pick<DurableClient, 'getStatus'>>(
  client: T,
  instanceId: string,
  options?: Parameters<DurableClient['getStatus']>[1],
): Promise<Awaited<ReturnType<DurableClient['getStatus']>> | undefined> {
  try {
    return await client.getStatus(instanceId, options);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export interface SweepResult {
  tornDown: string[];
  errors: Array<{ poolId: string; error: ErrorInfo }>;
}

/**
 * Tears down every recorded pool whose run is over (completed, failed, terminated, or gone). Pools of running
 * runs are left alone. `onlyRunId` limits the sweep to one run.
 */
export async function sweepBatchPools(
  client: Pick<DurableClient, 'getStatus'>,
  config: AppConfig,
  storage: StorageClients,
  opts: { onlyRunId?: string } = {},
): Promise<SweepResult> {
  const result: SweepResult = { tornDown: [], errors: [] };
  for (const r of await listPoolRecords(storage)) {
    if (opts.onlyRunId !== undefined && r.runId !== opts.onlyRunId) continue;
    try {
      const status = (await statusOrUndefined(client, r.runId))?.runtimeStatus;
      if (status !== undefined && !TERMINAL.has(String(status))) continue;
      await teardownPool(config, storage, r.poolId, r.kind);
      result.tornDown.push(r.poolId);
    } catch (e) {
      result.errors.push({ poolId: r.poolId, error: toErrorInfo(e) });
    }
  }
  return result;
}
