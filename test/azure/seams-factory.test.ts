/** azureSeams(): picks the Azure implementations, validating only the settings each needs; blob access on Azurite. */
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { azureSeams, blobIoFromStorage } from '../../shared/azure';
import { storageFromConnectionString } from '../../shared/storage';
import { FakeCredential, TEST_ENV, nock } from './helpers';

let azurite: AzuriteInstance;
beforeAll(async () => {
  expect(nock.isActive()).toBe(false); // helpers leave nock off outside setupNock()
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

test('each seam validates its own settings and is of the Azure kind', () => {
  const storage = storageFromConnectionString(azurite.connectionString);
  const none = azureSeams(storage, { env: {}, credential: new FakeCredential() });
  expect(() => none.imageBuilder()).toThrow(expect.objectContaining({ code: 'AzureConfigMissing' }));
  expect(() => none.target('aci')).toThrow(/AZURE_LOCATION/);
  const { AKS_CLUSTER_NAME, ...noAks } = TEST_ENV;
  const partial = azureSeams(storage, { env: noAks, credential: new FakeCredential() });
  expect(partial.imageBuilder().kind).toBe('acr');
  expect(partial.target('aci').kind).toBe('aci');
  expect(partial.batchPools().kind).toBe('aci');
  expect(() => partial.target('aks')).toThrow(/AKS_CLUSTER_NAME/);
  expect(partial.target('aci')).toBe(partial.target('aci'));
});

test('blobIoFromStorage reads, writes, deletes; absent blobs are undefined / BlobNotFound', async () => {
  const io = blobIoFromStorage(storageFromConnectionString(azurite.connectionString));
  expect(await io.tryRead('images/x/1.acr.json')).toBeUndefined();
  await expect(io.read('images/x/1.tar.gz')).rejects.toMatchObject({ code: 'BlobNotFound' });
  await io.write('images/x/1.acr.json', '{"runId":"r1"}');
  expect((await io.read('images/x/1.acr.json')).toString()).toBe('{"runId":"r1"}');
  await io.delete('images/x/1.acr.json');
  await io.delete('images/x/1.acr.json');
  expect(await io.tryRead('images/x/1.acr.json')).toBeUndefined();
});
