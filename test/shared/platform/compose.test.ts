/**
 * The composition root (shared/platform/compose.ts): the one place that picks local or Azure implementations.
 * Azure kinds are unavailable until the app entry enables them; then each validates its settings (targets when asked
 * for, the ACR builder and ACI pools at first use); what callers used to branch on is on the interface.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { azureSeams } from '../../../shared/azure';
import { loadConfig } from '../../../shared/config';
import {
  batchPoolKind,
  disposeAll,
  enableAzure,
  getBatchPoolProvider,
  getDeployTarget,
  getImageBuilder,
  recordedPoolFilesAs,
} from '../../../shared/platform/compose';
import { getStorage } from '../../../shared/storage';
import { FakeCredential, TEST_ENV } from '../../azure/helpers';

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-'));
const base = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', LOCAL_WORK_DIR: workDir };
const config = loadConfig(base);
const storage = getStorage(config);
const azureSettings = Object.keys(TEST_ENV).filter((k) => k.startsWith('AZURE_'));
const saved = Object.fromEntries(azureSettings.map((k) => [k, process.env[k]]));

beforeAll(() => {
  for (const k of azureSettings) delete process.env[k]; // the Azure implementations read process.env
});
afterAll(async () => {
  await disposeAll();
  for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  fs.rmSync(workDir, { recursive: true, force: true });
});

test('before enableAzure(): local kinds only; Azure kinds answer "unavailable" with an actionable message', () => {
  expect(getDeployTarget('local', config, storage).kind).toBe('local');
  expect(getImageBuilder(config, storage).kind).toBe('local');
  expect(() => getDeployTarget('aci', config, storage)).toThrow(expect.objectContaining({ code: 'TargetUnavailable', message: expect.stringContaining('use target "local"') }));
  expect(() => getImageBuilder({ ...config, imageBuilder: 'acr' }, storage)).toThrow(expect.objectContaining({ code: 'ImageBuilderUnavailable' }));
  expect(() => getBatchPoolProvider('aci', config, storage)).toThrow(expect.objectContaining({ code: 'BatchPoolUnavailable' }));
});

test('one deploy target per kind and work dir; disposeAll() disposes each and forgets it', async () => {
  const local = getDeployTarget('local', config, storage);
  expect(getDeployTarget('local', config, storage)).toBe(local);
  const other = getDeployTarget('local', loadConfig({ ...base, LOCAL_WORK_DIR: path.join(workDir, 'other') }), storage);
  expect(other).not.toBe(local);
  const disposed: string[] = [];
  for (const [name, t] of [['a', local], ['b', other]] as const) {
    const original = t.dispose!.bind(t);
    jest.spyOn(t, 'dispose').mockImplementation(() => (disposed.push(name), original()));
  }
  await disposeAll();
  expect(disposed.sort()).toEqual(['a', 'b']);
  expect(getDeployTarget('local', config, storage)).not.toBe(local);
});

test('the pool kind follows DEFAULT_TARGET; local pools take paths and reap at start', () => {
  expect(batchPoolKind(config)).toBe('local');
  expect(batchPoolKind(loadConfig({ ...base, DEFAULT_TARGET: 'aks' }))).toBe('aci');
  const pool = getBatchPoolProvider('local', config, storage);
  expect(pool).toBe(getBatchPoolProvider('local', config, storage));
  expect(pool.filesAs).toBe('paths');
  expect(typeof pool.reap).toBe('function');
  expect(recordedPoolFilesAs('local')).toBe(pool.filesAs);
});

test('after enableAzure(): the Azure kinds are chosen and validate their settings; ACI pools take content, have no reap', async () => {
  enableAzure();
  expect(() => getDeployTarget('aci', config, storage)).toThrow(expect.objectContaining({ code: 'AzureConfigMissing' }));
  const builder = getImageBuilder({ ...config, imageBuilder: 'acr' }, storage);
  expect(builder.kind).toBe('acr');
  await expect(Promise.resolve().then(() => builder.delete('m', 1))).rejects.toMatchObject({ code: 'AzureConfigMissing' });
  const pools = getBatchPoolProvider('aci', config, storage);
  expect(pools.kind).toBe('aci');
  expect(pools.reap).toBeUndefined();
  await expect(Promise.resolve().then(() => pools.teardown('bp-x'))).rejects.toMatchObject({ code: 'AzureConfigMissing' });
  // What the lazy ACI pool and the replay fallback say matches the ACI implementation itself.
  const real = azureSeams(storage, { env: TEST_ENV, credential: new FakeCredential() }).batchPools();
  expect(pools.filesAs).toBe(real.filesAs);
  expect(recordedPoolFilesAs('aci')).toBe(real.filesAs);
});
