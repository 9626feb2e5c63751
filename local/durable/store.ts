/**
 * Durable state in Azure Storage (Azurite locally, a real account when configured).
 *
 * Layout — one table `<hub>LocalInstances` (not the Durable extension's `<hub>Instances`), partition key = instance id (the instance id rules are exactly
 * the partition key rules), so an instance's record and its history commit in one atomic batch:
 *   - RowKey `meta`                 : the instance record (name, status, times, input/output/custom
 *                                     status, generation, history count, parent link, engine state);
 *   - RowKey `h<gen:6>-<seq:8>`     : a page of history events (JSON array, ≤ ~30 K characters) of execution
 *                                     generation `gen`, starting at sequence number `seq`
 *                                     (continue-as-new starts a new generation; old ones are deleted).
 * Values over ~30 K characters go to the blob container `<hub>-large` and the row keeps a reference.
 * A commit writes its history pages and then the record in the same batch (≤ 100 operations); a longer
 * commit is split and the record goes last, so after a crash any history beyond the record's
 * `historyCount` is ignored (and overwritten by the re-run, whose pages start at the same numbers).
 */
import { createHash } from 'crypto';
import { TableClient, TableTransaction, odata, TableEntity } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import type { HostStorage } from '../storage';

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated' | 'ContinuedAsNew' | 'Suspended';
export const TERMINAL: ReadonlySet<RuntimeStatus> = new Set(['Completed', 'Failed', 'Terminated']);

export interface HistoryEvent {
  EventType: number;
  EventId: number;
  IsPlayed: boolean;
  Timestamp: string;
  [key: string]: unknown;
}

export interface InstanceMeta {
  instanceId: string;
  name: string;
  status: RuntimeStatus;
  createdTime: string;
  lastUpdatedTime: string;
  /** JSON text (or undefined). */
  input?: string;
  output?: string;
  customStatus?: string;
  generation: number;
  /** Identifies this run of the instance id (new for every start and every continue-as-new). */
  executionId: string;
  historyCount: number;
  parentInstanceId?: string;
  parentTaskId?: number;
  parentExecutionId?: string;
  /** Engine bookkeeping (JSON text): sequence numbers, retry state. */
  engine: string;
}

const LARGE = 30_000;
const META = 'meta';

export function historyRowKey(generation: number, seq: number): string {
  return `h${String(generation).padStart(6, '0')}-${String(seq).padStart(8, '0')}`;
}

export class DurableStore {
  private constructor(
    private readonly table: TableClient,
    private readonly large: ContainerClient,
  ) {}

  static async open(storage: HostStorage, hubName: string): Promise<DurableStore> {
    // Not `<hub>Instances`: that is the Durable extension's own table, and the local host may share an account with Azure.
    const tableName = `${hubName.replace(/[^A-Za-z0-9]/g, '')}LocalInstances`;
    const table = storage.table(tableName);
    const large = storage.blobService.getContainerClient(`${hubName.toLowerCase().replace(/[^a-z0-9]/g, '')}-large`);
    await table.createTable().catch((err: { statusCode?: number }) => {
      if (err.statusCode !== 409) throw err;
    });
    await large.createIfNotExists();
    return new DurableStore(table, large);
  }

  /** Large values already in blobs, by `<instance>/<row>/<field>`: re-used while unchanged, deleted once replaced. */
  private readonly largeBlobs = new Map<string, { hash: string; blob: string }>();

  /**
   * A value for a row: inline, or (over ~30 K characters) in a blob. A blob is never overwritten: each new value
   * gets a new name, so a failed table write leaves the committed row pointing at its own, intact blob.
   */
  private async pack(instanceId: string, rowKey: string, field: string, value: string | undefined, replaced: string[]): Promise<Record<string, string>> {
    if (value === undefined) return {};
    if (value.length <= LARGE) return { [field]: value };
    const key = `${instanceId}/${rowKey}/${field}`;
    const hash = createHash('sha256').update(value).digest('hex');
    const known = this.largeBlobs.get(key);
    if (known?.hash === hash) return { [`${field}Blob`]: known.blob };
    const name = `${encodeURIComponent(instanceId)}/${rowKey}.${field}.${hash.slice(0, 16)}.json`;
    await this.large.getBlockBlobClient(name).upload(value, Buffer.byteLength(value));
    if (known) replaced.push(known.blob);
    this.largeBlobs.set(key, { hash, blob: name });
    return { [`${field}Blob`]: name };
  }

  private async dropBlobs(names: string[]): Promise<void> {
    await Promise.all(names.map((n) => this.large.deleteBlob(n).catch(() => undefined)));
  }

  private async unpack(entity: Record<string, unknown>, field: string): Promise<string | undefined> {
    if (typeof entity[field] === 'string') return entity[field] as string;
    const blob = entity[`${field}Blob`];
    if (typeof blob !== 'string') return undefined;
    const buf = await this.large.getBlockBlobClient(blob).downloadToBuffer();
    return buf.toString('utf8');
  }

  private async metaEntity(meta: InstanceMeta, replaced: string[] = []): Promise<TableEntity> {
    const { input, output, customStatus, engine, ...rest } = meta;
    const entity: TableEntity = { partitionKey: meta.instanceId, rowKey: META, ...rest };
    delete (entity as Record<string, unknown>).instanceId;
    for (const [k, v] of Object.entries({ input, output, customStatus, engine })) {
      Object.assign(entity, await this.pack(meta.instanceId, META, k, v, replaced));
    }
    for (const k of Object.keys(entity)) if ((entity as Record<string, unknown>)[k] === undefined) delete (entity as Record<string, unknown>)[k];
    return entity;
  }

  private async toMeta(e: Record<string, unknown>): Promise<InstanceMeta> {
    return {
      instanceId: e.partitionKey as string,
      name: e.name as string,
      status: e.status as RuntimeStatus,
      createdTime: e.createdTime as string,
      lastUpdatedTime: e.lastUpdatedTime as string,
      input: await this.unpack(e, 'input'),
      output: await this.unpack(e, 'output'),
      customStatus: await this.unpack(e, 'customStatus'),
      generation: Number(e.generation ?? 0),
      executionId: String(e.executionId ?? ''),
      historyCount: Number(e.historyCount ?? 0),
      parentInstanceId: (e.parentInstanceId as string) || undefined,
      parentTaskId: e.parentTaskId === undefined ? undefined : Number(e.parentTaskId),
      parentExecutionId: (e.parentExecutionId as string) || undefined,
      engine: (await this.unpack(e, 'engine')) ?? '{}',
    };
  }

  async getMeta(instanceId: string): Promise<InstanceMeta | undefined> {
    try {
      const e = await this.table.getEntity(instanceId, META);
      return await this.toMeta(e);
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  /** Create the record of a new instance; false if one exists already. */
  async tryCreate(meta: InstanceMeta): Promise<boolean> {
    try {
      await this.table.createEntity(await this.metaEntity(meta));
      return true;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 409) return false;
      throw err;
    }
  }

  /** Replace the record of an instance (e.g. re-using the id of a finished one) and drop its old history. */
  async replace(meta: InstanceMeta): Promise<void> {
    await this.deleteRows(meta.instanceId, (rk) => rk !== META);
    await this.table.upsertEntity(await this.metaEntity(meta), 'Replace');
  }

  async loadHistory(meta: InstanceMeta): Promise<HistoryEvent[]> {
    const from = historyRowKey(meta.generation, 0);
    const to = historyRowKey(meta.generation + 1, 0);
    const rows = this.table.listEntities({
      queryOptions: { filter: odata`PartitionKey eq ${meta.instanceId} and RowKey ge ${from} and RowKey lt ${to}` },
    });
    const events: HistoryEvent[] = [];
    for await (const row of rows) {
      // Pages come in key order; only a page that starts where the accepted history ends belongs to it. A page
      // left behind by a commit that failed half-way (and was redone with other page boundaries) is skipped.
      const start = Number(String(row.rowKey).slice(8));
      if (start !== events.length || start >= meta.historyCount) continue;
      const page = JSON.parse((await this.unpack(row, 'e')) ?? '[]') as HistoryEvent[];
      for (const e of page) {
        if (events.length < meta.historyCount) events.push(e);
      }
    }
    let present = 0;
    for (let i = 0; i < events.length; i++) if (events[i]) present++;
    if (events.length !== meta.historyCount || present !== meta.historyCount) {
      throw new Error(`History of instance '${meta.instanceId}' is incomplete (${present}/${meta.historyCount} events).`);
    }
    return events;
  }

  /**
   * Append `events` (numbered from `fromSeq`) to the current generation and write the record.
   * Events are packed into pages of up to ~30 K characters (one row each, keyed by the sequence
   * number of its first event), so a fan-out of 1,000 activities is a handful of rows, not 1,000.
   */
  async commit(meta: InstanceMeta, events: HistoryEvent[], fromSeq: number): Promise<void> {
    const ops: TableEntity[] = [];
    const replaced: string[] = [];
    let pageStart = fromSeq;
    let parts: string[] = [];
    let size = 0;
    const flush = async () => {
      if (!parts.length) return;
      const rk = historyRowKey(meta.generation, pageStart);
      ops.push({ partitionKey: meta.instanceId, rowKey: rk, ...(await this.pack(meta.instanceId, rk, 'e', `[${parts.join(',')}]`, replaced)) });
      pageStart += parts.length;
      parts = [];
      size = 0;
    };
    for (const event of events) {
      const json = JSON.stringify(event);
      if (parts.length && size + json.length + 1 > LARGE) await flush();
      parts.push(json);
      size += json.length + 1;
    }
    await flush();
    ops.push(await this.metaEntity(meta, replaced));
    for (let start = 0; start < ops.length; start += 100) {
      const tx = new TableTransaction();
      for (const op of ops.slice(start, start + 100)) tx.upsertEntity(op, 'Replace');
      await this.table.submitTransaction(tx.actions);
    }
    await this.dropBlobs(replaced);
  }

  /** Delete the history rows of generations before `generation` (after continue-as-new). */
  async dropGenerationsBefore(instanceId: string, generation: number): Promise<void> {
    const limit = historyRowKey(generation, 0);
    await this.deleteRows(instanceId, (rk) => rk !== META && rk < limit);
  }

  async purge(instanceId: string): Promise<void> {
    await this.deleteRows(instanceId, () => true);
    for await (const b of this.large.listBlobsFlat({ prefix: `${encodeURIComponent(instanceId)}/` })) {
      await this.large.deleteBlob(b.name).catch(() => undefined);
    }
  }

  private async deleteRows(instanceId: string, shouldDelete: (rk: string) => boolean): Promise<void> {
    const keys: string[] = [];
    for await (const row of this.table.listEntities({
      queryOptions: { filter: odata`PartitionKey eq ${instanceId}`, select: ['RowKey'] },
    })) {
      if (shouldDelete(String(row.rowKey))) keys.push(String(row.rowKey));
    }
    for (let start = 0; start < keys.length; start += 100) {
      const tx = new TableTransaction();
      for (const rk of keys.slice(start, start + 100)) tx.deleteEntity(instanceId, rk);
      await this.table.submitTransaction(tx.actions);
    }
  }

  /** All instance records matching a status filter (a scan: fine for one host's task hub). */
  async listMetas(filter: { statuses?: RuntimeStatus[]; createdFrom?: Date; createdTo?: Date } = {}): Promise<InstanceMeta[]> {
    const out: InstanceMeta[] = [];
    // The filter goes to the table (as the Azure Storage provider's instance query does): only matching rows come back.
    // createdTime is an ISO 8601 UTC string, so its order is the string order.
    const conditions = [odata`RowKey eq ${META}`];
    if (filter.createdFrom) conditions.push(odata`createdTime ge ${filter.createdFrom.toISOString()}`);
    if (filter.createdTo) conditions.push(odata`createdTime le ${filter.createdTo.toISOString()}`);
    if (filter.statuses && filter.statuses.length) conditions.push(`(${filter.statuses.map((st) => odata`status eq ${st}`).join(' or ')})`);
    for await (const row of this.table.listEntities({ queryOptions: { filter: conditions.join(' and ') } })) {
      const status = row.status as RuntimeStatus;
      if (filter.statuses && filter.statuses.length && !filter.statuses.includes(status)) continue;
      const created = new Date(String(row.createdTime));
      if (filter.createdFrom && created < filter.createdFrom) continue;
      if (filter.createdTo && created > filter.createdTo) continue;
      out.push(await this.toMeta(row));
    }
    return out;
  }
}

export type { TableEntity };
