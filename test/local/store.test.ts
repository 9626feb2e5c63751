/** The durable store's history pages: a page left behind by a commit that failed half-way is never read back. */
import { TableTransaction } from '@azure/data-tables';
import { AzuriteInstance, startAzurite } from '../../local/azurite';
import { DurableStore, historyRowKey, HistoryEvent, InstanceMeta } from '../../local/durable/store';
import { HostStorage } from '../../local/storage';

let azurite: AzuriteInstance;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => azurite?.stop());

const ev = (n: number, tag = 'ok'): HistoryEvent => ({ EventType: 5, EventId: -1, IsPlayed: false, Timestamp: new Date(0).toISOString(), TaskScheduledId: n, Result: JSON.stringify(tag) });

test('stale pages beyond a commit boundary are skipped; large values live in blobs that are never overwritten', async () => {
  const storage = new HostStorage({ kind: 'connectionString', connectionString: azurite.connectionString });
  const store = await DurableStore.open(storage, 'StoreTest');
  const meta: InstanceMeta = { instanceId: 'i1', name: 'x', status: 'Running', createdTime: '', lastUpdatedTime: '', generation: 0, executionId: 'e1', historyCount: 3, engine: '{}' };
  await store.commit(meta, [ev(0), ev(1), ev(2)], 0);
  // A commit that wrote a page at 5 and then failed (its record never said more than 3 events).
  const table = storage.table('StoreTestLocalInstances');
  const tx = new TableTransaction();
  tx.upsertEntity({ partitionKey: 'i1', rowKey: historyRowKey(0, 5), e: JSON.stringify([ev(5, 'stale'), ev(6, 'stale')]) }, 'Replace');
  await table.submitTransaction(tx.actions);
  // The redo writes events 3..6 as one page starting at 3.
  await store.commit({ ...meta, historyCount: 7 }, [ev(3), ev(4), ev(5), ev(6)], 3);
  const history = await store.loadHistory({ ...meta, historyCount: 7 });
  expect(history.map((e) => JSON.parse(String(e.Result)))).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);

  // Large engine state: each new value is a new blob; the record always points at its own.
  const big = (c: string) => JSON.stringify({ pad: c.repeat(40_000) });
  await store.commit({ ...meta, historyCount: 7, engine: big('a') }, [], 7);
  const first = await store.getMeta('i1');
  await store.commit({ ...meta, historyCount: 7, engine: big('b') }, [], 7);
  const second = await store.getMeta('i1');
  expect(JSON.parse(first!.engine).pad[0]).toBe('a');
  expect(JSON.parse(second!.engine).pad[0]).toBe('b');
});
