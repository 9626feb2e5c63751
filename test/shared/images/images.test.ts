import { startAzurite, type AzuriteInstance } from '../../../local/azurite';
import { storageFromConnectionString, CONTAINERS, sha256Hex, type StorageClients } from '../../../shared/storage';
import { ModelRegistry } from '../../../shared/registry';
import {
  ImageRegistry,
  LocalImageBuilder,
  createDeterministicTarGz,
  listTarGz,
  generateDockerfile,
  checkEnvironmentFile,
} from '../../../shared/images';

let azurite: AzuriteInstance;
let storage: StorageClients;
let models: ModelRegistry;
let images: ImageRegistry;

const SCORE_JS = 'let m; exports.init = () => { m = 2; }; exports.run = (d) => JSON.parse(d).data.map((x) => x * m);\n';

beforeAll(async () => {
  azurite = await startAzurite();
  storage = storageFromConnectionString(azurite.connectionString);
  models = new ModelRegistry(storage);
  images = new ImageRegistry(storage, models, new LocalImageBuilder(storage, 'python3'));
  await models.register({ name: 'lin', files: [{ path: 'model.json', content: '{"w":2}' }], source: { kind: 'api', eventId: 'm1' } });
});
afterAll(async () => {
  await azurite?.stop();
});

test('deterministic tar.gz: same entries in any order → same bytes', async () => {
  const a = await createDeterministicTarGz([
    { path: 'b/x.txt', data: Buffer.from('x') },
    { path: 'a.txt', data: Buffer.from('a') },
  ]);
  await new Promise((r) => setTimeout(r, 1100)); // a different wall-clock second must not matter
  const b = await createDeterministicTarGz([
    { path: 'a.txt', data: Buffer.from('a') },
    { path: 'b/x.txt', data: Buffer.from('x') },
  ]);
  expect(sha256Hex(a)).toBe(sha256Hex(b));
  expect(await listTarGz(a)).toEqual(['a.txt', 'b/x.txt']);
  const c = await createDeterministicTarGz([{ path: 'a.txt', data: Buffer.from('A') }, { path: 'b/x.txt', data: Buffer.from('x') }]);
  expect(sha256Hex(c)).not.toBe(sha256Hex(a));
  await expect(createDeterministicTarGz([{ path: '../x', data: Buffer.from('') }])).rejects.toMatchObject({ code: 'InvalidPath' });
});

test('node image: versions, identical digest for identical inputs, idempotent per event', async () => {
  const req = {
    name: 'lin-node',
    runtime: 'node' as const,
    models: ['lin:1'],
    entryScript: { path: 'score.js', content: SCORE_JS },
    environmentFile: { path: 'package.json', content: '{"name":"x","dependencies":{}}' },
    eventId: 'run-1/image',
  };
  const first = await images.create(req);
  expect(first.created).toBe(true);
  expect(first.image).toMatchObject({ id: 'lin-node:1', state: 'Succeeded', models: ['lin:1'], imageRef: 'local://images/lin-node/1', logBlob: 'images/lin-node/1.log' });
  expect(first.image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  const archive = await storage.container(CONTAINERS.images).getBlockBlobClient('lin-node/1.tar.gz').downloadToBuffer();
  expect(`sha256:${sha256Hex(archive)}`).toBe(first.image.digest);
  const entries = await listTarGz(archive);
  for (const e of ['Dockerfile', 'image.json', 'app/package.json', 'app/dist/runtime/cli.js', 'app/dist/runtime/errors.js', 'app/dist/runtime/front-cli.js', 'app/code/score.js', 'app/code/package.json', 'models/lin/1/model.json']) {
    expect(entries).toContain(e);
  }
  expect(entries.some((e) => e.startsWith('app/runtime/python/'))).toBe(true);
  // The runtime stands alone: the image ships none of the app's code.
  expect(entries.filter((e) => e.startsWith('app/dist/') && !e.startsWith('app/dist/runtime/'))).toEqual([]);

  const again = await images.create(req);
  expect(again).toMatchObject({ created: false, image: { id: 'lin-node:1' } });
  const second = await images.create({ ...req, eventId: 'run-2/image' });
  expect(second.image.id).toBe('lin-node:2');
  expect(second.image.digest).toBe(first.image.digest);
  const log = (await storage.container(CONTAINERS.images).getBlockBlobClient('lin-node/1.log').downloadToBuffer()).toString();
  expect(log).toMatch(/node --check ok/);
  expect((await images.list({ name: 'lin-node' })).map((i) => i.id)).toEqual(['lin-node:2', 'lin-node:1']);
  expect((await images.list({ model: 'lin:1' })).length).toBe(2);
});

test('python image that does not compile → Failed with the compiler message', async () => {
  const { image } = await images.create({
    name: 'lin-py',
    runtime: 'python',
    models: ['lin'],
    entryScript: { path: 'score.py', content: 'def init(:\n    pass\n' },
    eventId: 'py-bad',
  });
  expect(image.state).toBe('Failed');
  expect(image.error?.code).toBe('ImageBuildFailed');
  expect(image.error?.message).toMatch(/score\.py does not compile/);
  expect(image.error?.message).toMatch(/SyntaxError|invalid syntax/);
  const ok = await images.create({
    name: 'lin-py',
    runtime: 'python',
    models: ['lin'],
    entryScript: { path: 'score.py', content: 'import json\ndef init():\n    pass\ndef run(raw):\n    return json.loads(raw)\n' },
    environmentFile: { path: 'myenv.yml', content: 'name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - numpy\n' },
    eventId: 'py-ok',
  });
  expect(ok.image.state).toBe('Succeeded');
  expect(ok.image.version).toBe(2);
});

test('bad environment file → Failed; missing entry script → ManifestFileMissing without a new version', async () => {
  const { image } = await images.create({
    name: 'lin-env',
    runtime: 'node',
    models: ['lin:1'],
    entryScript: { path: 'score.js', content: SCORE_JS },
    environmentFile: { path: 'package.json', content: '{ not json' },
    eventId: 'env-bad',
  });
  expect(image.state).toBe('Failed');
  expect(image.error?.message).toMatch(/package\.json is not valid JSON/);
  await expect(
    images.create({ name: 'lin-env', runtime: 'node', models: ['lin:1'], entryScript: { path: 'score.js', blob: 'incoming/nothing/score.js' }, eventId: 'env-missing' }),
  ).rejects.toMatchObject({ code: 'ManifestFileMissing', httpStatus: 404 });
  expect((await images.list({ name: 'lin-env' })).length).toBe(1);
});

test('environment file checks', () => {
  expect(checkEnvironmentFile('requirements', 'numpy==1.24\nscikit-learn>=1.0,<2  # ml\n-r other.txt\ninference-schema[numpy-support]\n', 'r.txt')).toMatch(/4 requirements/);
  expect(() => checkEnvironmentFile('requirements', 'numpy ==\n', 'r.txt')).toThrow(/not a pip requirement/);
  expect(() => checkEnvironmentFile('conda', 'dependencies: python\n', 'env.yml')).toThrow(/must be a list/);
  expect(() => checkEnvironmentFile('npm', '{"dependencies": {"a": 1}}', 'package.json')).toThrow(/version strings/);
});

test('Dockerfile honours a custom base image', () => {
  const d = generateDockerfile({ schemaVersion: 1, runtime: 'python', runtimeEntry: 'app/dist/runtime/cli.js', entryScript: 'app/code/score.py', modelDir: 'models/m/1', models: ['m:1'], environmentFile: { path: 'app/code/env.yml', kind: 'conda' }, baseImage: 'myregistry.azurecr.io/base:1' });
  expect(d).toMatch(/^FROM myregistry\.azurecr\.io\/base:1$/m);
  expect(d).toMatch(/conda env update -n base -f \/var\/azureml-app\/app\/code\/env\.yml/);
  expect(d).toContain('"--entry-script","/var/azureml-app/app/code/score.py"');
  expect(generateDockerfile({ schemaVersion: 1, runtime: 'onnx', runtimeEntry: 'app/dist/runtime/cli.js', modelDir: 'models/m/1', models: ['m:1'] })).toMatch(/^FROM node:20/m);
});

test('in-use rules: model used by an image, image used by a service', async () => {
  await expect(models.delete('lin', 1)).rejects.toMatchObject({ code: 'ModelInUse', httpStatus: 409 });
  await images.addServiceUsage('lin-node', 1, 'svc-a');
  await expect(images.delete('lin-node', 1)).rejects.toMatchObject({ code: 'ImageInUse', httpStatus: 409 });
  await images.removeServiceUsage('lin-node', 1, 'svc-a');
  expect(await images.delete('lin-node')).toEqual({ deleted: ['lin-node:1', 'lin-node:2'] });
  expect(await storage.container(CONTAINERS.images).getBlockBlobClient('lin-node/1.tar.gz').exists()).toBe(false);
  for (const n of ['lin-py', 'lin-env']) await images.delete(n);
  expect(await models.delete('lin', 1)).toEqual({ deleted: ['lin:1'] });
});
