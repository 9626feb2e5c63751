/** How the local host reaches its storage account: connection string, identity settings, or Azurite. */
import { HostStorage, storageSettingsFrom } from '../../local/storage';

describe('storageSettingsFrom', () => {
  test('a connection string wins; the development shortcut means Azurite', () => {
    expect(storageSettingsFrom({ AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=k;EndpointSuffix=core.windows.net' })).toMatchObject({ kind: 'connectionString' });
    expect(storageSettingsFrom({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' })).toBeUndefined();
    expect(storageSettingsFrom({})).toBeUndefined();
  });

  test('identity-based settings: account name → the three service URIs, with a user-assigned identity', () => {
    expect(storageSettingsFrom({ AzureWebJobsStorage__accountName: 'mdfstore', AzureWebJobsStorage__clientId: 'c1' })).toEqual({
      kind: 'identity',
      blobServiceUri: 'https://mdfstore.blob.core.windows.net',
      queueServiceUri: 'https://mdfstore.queue.core.windows.net',
      tableServiceUri: 'https://mdfstore.table.core.windows.net',
      clientId: 'c1',
    });
  });

  test('explicit service URIs must name all three services', () => {
    expect(() => storageSettingsFrom({ AzureWebJobsStorage__blobServiceUri: 'https://x.blob.core.windows.net' })).toThrow(
      /AzureWebJobsStorage__queueServiceUri, AzureWebJobsStorage__tableServiceUri/,
    );
  });

  test('identity clients are built without secrets and described by host name only', () => {
    const fakeCredential = { getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 60_000 }) };
    const s = new HostStorage(storageSettingsFrom({ AzureWebJobsStorage__accountName: 'mdfstore' })!, fakeCredential);
    expect(s.blobService.url).toBe('https://mdfstore.blob.core.windows.net/');
    expect(s.table('FixtureHubInstances').url).toContain('https://mdfstore.table.core.windows.net');
    expect(s.describe()).toBe('mdfstore.blob.core.windows.net (identity)');
    const keyed = new HostStorage({ kind: 'connectionString', connectionString: 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net' });
    expect(keyed.describe()).toBe('acct (connection string)');
  });
});
