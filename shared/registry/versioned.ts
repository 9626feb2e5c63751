/**
 * Versioned records in Azure Tables, shared by the model registry and the image registry.
 *
 * Per name (PartitionKey) the table holds:
 * - one row per version, RowKey = zero-padded version (`0000000003`), so a partition lists in version order;
 * - a counter row (`~counter`, property `last`);
 * - one receipt row per triggering event (`~event|<sha256(eventId)>`, property `version`).
 *
 * A new version is allocated by ONE entity-group transaction: update the counter conditioned on its ETag
 * (or create it), create the receipt, create the version row. Concurrent allocations for one name collide on
 * the counter's ETag (412) or its creation (409), retry, and so get distinct consecutive versions; the same
 * event twice collides on the receipt and returns the version the first delivery got. No gaps, no duplicates.
 */
import type { TableClient, TableEntityResult } from '@azure/data-tables';
import { conflict, isNotFound, statusOf } from '../errors';
import { sha256Hex } from '../storage';

export const COUNTER_ROW = '~counter';
const RECEIPT_PREFIX = '~event|';

export function versionRowKey(version: number): string {
  return String(version).padStart(10, '0');
}

export function receiptRowKey(eventId: string): string {
  return RECEIPT_PREFIX + sha256Hex(eventId);
}

export function isVersionRow(rowKey: string): boolean {
  return /^\d{10}$/.test(rowKey);
}

/** Reads an entity or returns undefined on 404. */
export async function getEntityOrUndefined<T extends object>(
  table: TableClient,
  partitionKey: string,
  rowKey: string,
): Promise<TableEntityResult<T> | undefined> {
  try {
    return await table.getEntity<T>(partitionKey, rowKey);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** The version row an event allocated (through its receipt); undefined when the event allocated none. */
export async function versionRowOfEvent<T extends object>(table: TableClient, partitionKey: string, eventId: string): Promise<TableEntityResult<T> | undefined> {
  const receipt = await getEntityOrUndefined<{ version: number }>(table, partitionKey, receiptRowKey(eventId));
  return receipt ? getEntityOrUndefined<T>(table, partitionKey, versionRowKey(Number(receipt.version))) : undefined;
}

export interface Allocation {
  version: number;
  /** False when the event had already allocated this version (re-delivery). */
  created: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Allocates the next version of `partitionKey` for `eventId`, writing `row(version)` as the version row in the
 * same transaction. Same `eventId` → same version. Throws `VersionAllocationContended` after `maxAttempts`.
 */
export async function allocateVersion(
  table: TableClient,
  partitionKey: string,
  eventId: string,
  row: (version: number) => Record<string, unknown>,
  maxAttempts = 200,
): Promise<Allocation> {
  const receiptKey = receiptRowKey(eventId);
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const receipt = await getEntityOrUndefined<{ version: number }>(table, partitionKey, receiptKey);
    if (receipt) return { version: Number(receipt.version), created: false };

    const counter = await getEntityOrUndefined<{ last: number }>(table, partitionKey, COUNTER_ROW);
    const version = (counter ? Number(counter.last) : 0) + 1;
    const counterEntity = { partitionKey, rowKey: COUNTER_ROW, last: version };
    try {
      await table.submitTransaction([
        counter ? ['update', counterEntity, 'Replace', { etag: counter.etag }] : ['create', counterEntity],
        ['create', { partitionKey, rowKey: receiptKey, version, eventId: eventId.slice(0, 1000) }],
        ['create', { ...row(version), version, partitionKey, rowKey: versionRowKey(version) }],
      ]);
      return { version, created: true };
    } catch (e) {
      const s = statusOf(e);
      if (s !== 409 && s !== 412) throw e;
      // Lost the race: back off a little (randomised so parallel writers spread out) and retry.
      await sleep(Math.floor(Math.random() * Math.min(50, 5 + attempt * 2)));
    }
  }
  throw conflict(
    'VersionAllocationContended',
    `Could not allocate a version for "${partitionKey}" after ${maxAttempts} attempts; retry the operation.`,
  );
}

/** All version rows of one name, in version order. */
export async function listVersionRows<T extends object>(table: TableClient, partitionKey: string): Promise<Array<TableEntityResult<T>>> {
  const out: Array<TableEntityResult<T>> = [];
  const pk = partitionKey.replace(/'/g, "''");
  for await (const e of table.listEntities<T>({ queryOptions: { filter: `PartitionKey eq '${pk}' and RowKey lt '~'` } })) {
    if (isVersionRow(e.rowKey as string)) out.push(e);
  }
  return out;
}

/** All version rows of every name (small registries; a full scan). */
export async function listAllVersionRows<T extends object>(table: TableClient): Promise<Array<TableEntityResult<T>>> {
  const out: Array<TableEntityResult<T>> = [];
  for await (const e of table.listEntities<T>({ queryOptions: { filter: `RowKey lt '~'` } })) {
    if (isVersionRow(e.rowKey as string)) out.push(e);
  }
  return out;
}

/**
 * Read-modify-write of one row conditioned on its ETag (retried on 412), so concurrent tag updates never lose
 * each other's changes. `change` returns the new properties to merge, or undefined to leave the row as is.
 */
export async function updateRowWithEtag<T extends object>(
  table: TableClient,
  partitionKey: string,
  rowKey: string,
  change: (current: TableEntityResult<T>) => Record<string, unknown> | undefined,
  onMissing: () => Error,
  maxAttempts = 50,
): Promise<TableEntityResult<T>> {
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const current = await getEntityOrUndefined<T>(table, partitionKey, rowKey);
    if (!current) throw onMissing();
    const patch = change(current);
    if (!patch) return current;
    try {
      await table.updateEntity({ partitionKey, rowKey, ...patch }, 'Merge', { etag: current.etag });
      return { ...current, ...patch } as TableEntityResult<T>;
    } catch (e) {
      if (statusOf(e) !== 412) throw e;
      await sleep(Math.floor(Math.random() * 20));
    }
  }
  throw conflict('UpdateContended', `Could not update ${partitionKey}/${rowKey}; retry the operation.`);
}
