import { startAzurite, type AzuriteInstance } from '../../../local/azurite';
import { storageFromConnectionString, CONTAINERS, sha256Hex, type StorageClients } from '../../../shared/storage';
import { ModelRegistry, parseModelRef } from '../../../shared/registry';

let azurite: AzuriteInstance;
let storage: StorageClients;
let registry: ModelRegistry;

beforeAll(async () => {
  azurite = await startAzurite();
  storage = storageFromConnectionString(azurite.connectionString);
  registry = new ModelRegistry(storage);
});
afterAll(async () => {
  await azurite?.stop();
});

const src = (eventId: string) => ({ kind: 'api' as const, eventId });

test('registers version 1 with sha256 and size per file, then version 2', async () => {
  const r1 = await registry.register({
    name: 'diabetes',
    files: [
      { path: 'model.json', content: '{"coef":[1,2]}' },
      { path: 'sub/extra.bin', content: Buffer.from([1, 2, 3]) },
    ],
    tags: { area: 'diabetes' },
    properties: { r2: '0.5' },
    description: 'linear',
    source: src('e1'),
  });
  expect(r1.created).toBe(true);
  expect(r1.model.id).toBe('diabetes:1');
  expect(r1.model.state).toBe('Registered');
  expect(r1.model.files).toEqual([
    { path: 'model.json', size: 14, sha256: sha256Hex('{"coef":[1,2]}'), blob: 'models/diabetes/1/model.json' },
    { path: 'sub/extra.bin', size: 3, sha256: sha256Hex(Buffer.from([1, 2, 3])), blob: 'models/diabetes/1/sub/extra.bin' },
  ]);
  const stored = await storage.container(CONTAINERS.models).getBlockBlobClient('diabetes/1/model.json').downloadToBuffer();
  expect(stored.toString()).toBe('{"coef":[1,2]}');
  const r2 = await registry.register({ name: 'diabetes', files: [{ path: 'model.json', content: 'x' }], source: src('e2') });
  expect(r2.model.version).toBe(2);
  expect((await registry.get('diabetes')).version).toBe(2);
  expect((await registry.resolve('diabetes:1')).description).toBe('linear');
  expect(new Date((await registry.get('diabetes', 1)).createdTime).getTime()).toBeGreaterThan(0);
});

test('the same event twice yields one version', async () => {
  const a = await registry.register({ name: 'idem', files: [{ path: 'm', content: 'a' }], source: src('evt-same') });
  const b = await registry.register({ name: 'idem', files: [{ path: 'm', content: 'a' }], source: src('evt-same') });
  expect(a.created).toBe(true);
  expect(b.created).toBe(false);
  expect(b.model.version).toBe(a.model.version);
  expect((await registry.list({ name: 'idem' })).length).toBe(1);
});

test('20 concurrent registrations get 20 distinct versions 1..20', async () => {
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      registry.register({ name: 'parallel', files: [{ path: 'm.txt', content: `v${i}` }], source: src(`par-${i}`) }),
    ),
  );
  const versions = results.map((r) => r.model.version).sort((a, b) => a - b);
  expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
});

test('the same event delivered concurrently 5 times yields one version', async () => {
  const results = await Promise.all(
    Array.from({ length: 5 }, () => registry.register({ name: 'dupes', files: [{ path: 'm', content: 'x' }], source: src('dup') })),
  );
  expect(new Set(results.map((r) => r.model.version))).toEqual(new Set([1]));
  expect(results.filter((r) => r.created).length).toBe(1);
});

test('copies from blob references and rejects missing files without consuming a version', async () => {
  const inc = await storage.ensureContainer('incoming');
  await inc.getBlockBlobClient('fromblob/model.json').uploadData(Buffer.from('{"a":1}'));
  await expect(
    registry.register({ name: 'fromblob', files: [{ path: 'missing.json', blob: 'incoming/fromblob/missing.json' }], source: src('fb0') }),
  ).rejects.toMatchObject({ code: 'ModelFileNotFound', httpStatus: 404 });
  const r = await registry.register({ name: 'fromblob', files: [{ path: 'model.json', blob: 'incoming/fromblob/model.json' }], source: src('fb1') });
  expect(r.model.version).toBe(1);
  expect(r.model.files[0].sha256).toBe(sha256Hex('{"a":1}'));
});

test('name and path rules', async () => {
  await expect(registry.register({ name: '-bad', files: [{ path: 'm', content: 'x' }], source: src('n1') })).rejects.toMatchObject({ code: 'InvalidModelName' });
  await expect(registry.register({ name: 'a/b', files: [{ path: 'm', content: 'x' }], source: src('n2') })).rejects.toMatchObject({ code: 'InvalidModelName' });
  await expect(registry.register({ name: 'x'.repeat(256), files: [{ path: 'm', content: 'x' }], source: src('n3') })).rejects.toMatchObject({ code: 'InvalidModelName' });
  await expect(registry.register({ name: 'ok', files: [{ path: '../etc/passwd', content: 'x' }], source: src('n4') })).rejects.toMatchObject({ code: 'InvalidPath' });
  await expect(registry.register({ name: 'ok', files: [{ path: '/abs', content: 'x' }], source: src('n5') })).rejects.toMatchObject({ code: 'InvalidPath' });
  expect(parseModelRef('my.model_1:3')).toEqual({ name: 'my.model_1', version: 3 });
  expect(parseModelRef('m:latest')).toEqual({ name: 'm', version: undefined });
});

test('tags are mutable and filterable, properties are add-only', async () => {
  await registry.register({ name: 'tagged', files: [{ path: 'm', content: 'x' }], tags: { stage: 'dev' }, properties: { p: '1' }, source: src('t1') });
  await registry.register({ name: 'tagged', files: [{ path: 'm', content: 'y' }], tags: { stage: 'prod', team: 'a' }, source: src('t2') });
  expect((await registry.list({ tags: ['stage=prod'] })).map((m) => m.id)).toEqual(['tagged:2']);
  expect((await registry.list({ tags: ['stage'], name: 'tagged' })).map((m) => m.id)).toEqual(['tagged:2', 'tagged:1']);
  const u = await registry.updateTags('tagged', 1, { add: { stage: 'prod', x: 'y' }, remove: ['nope'] });
  expect(u.tags).toEqual({ stage: 'prod', x: 'y' });
  expect((await registry.updateTags('tagged', 1, { remove: ['x'] })).tags).toEqual({ stage: 'prod' });
  expect((await registry.list({ tags: ['stage=prod'] })).map((m) => m.id)).toEqual(['tagged:2', 'tagged:1']);
  expect((await registry.list({ name: 'tagged', latestOnly: true })).map((m) => m.id)).toEqual(['tagged:2']);
  expect((await registry.addProperties('tagged', 1, { q: '2', p: '1' })).properties).toEqual({ p: '1', q: '2' });
  await expect(registry.addProperties('tagged', 1, { p: 'changed' })).rejects.toMatchObject({ code: 'PropertyImmutable', httpStatus: 409 });
  await expect(registry.get('tagged', 9)).rejects.toMatchObject({ code: 'ModelNotFound', httpStatus: 404 });
});

test('delete is refused while an image uses the model, unless forced; versions are never reused', async () => {
  await registry.register({ name: 'del', files: [{ path: 'm', content: 'x' }], source: src('d1') });
  await registry.register({ name: 'del', files: [{ path: 'm', content: 'y' }], source: src('d2') });
  await registry.addUsage('del', 1, 'image:img:1');
  await expect(registry.delete('del', 1)).rejects.toMatchObject({ code: 'ModelInUse', httpStatus: 409 });
  await expect(registry.delete('del')).rejects.toMatchObject({ code: 'ModelInUse' });
  expect(await registry.delete('del', 2)).toEqual({ deleted: ['del:2'] });
  await registry.removeUsage('del', 1, 'image:img:1');
  await registry.addUsage('del', 1, 'image:img:2');
  expect(await registry.delete('del', 1, { force: true })).toEqual({ deleted: ['del:1'] });
  await expect(registry.get('del')).rejects.toMatchObject({ code: 'ModelNotFound' });
  const blobs: string[] = [];
  for await (const b of storage.container(CONTAINERS.models).listBlobsFlat({ prefix: 'del/' })) blobs.push(b.name);
  expect(blobs).toEqual([]);
  const r3 = await registry.register({ name: 'del', files: [{ path: 'm', content: 'z' }], source: src('d3') });
  expect(r3.model.version).toBe(3);
});
