/** Azure settings: validated per feature, with one message naming every missing or malformed setting. */
import * as fs from 'fs';
import * as path from 'path';
import { AZURE_ONLY_SETTINGS, AZURE_SETTING_NAMES, loadAzureConfig } from '../../shared/azure/config';
import { SETTING_NAMES } from '../../shared/config';
import { TEST_ENV } from './helpers';

describe('loadAzureConfig', () => {
  test('reads the app settings, derives the login server and defaults', () => {
    const c = loadAzureConfig(TEST_ENV, ['acr', 'aci', 'aks']);
    expect(c).toMatchObject({
      subscriptionId: TEST_ENV.AZURE_SUBSCRIPTION_ID,
      resourceGroup: 'rg-mdf',
      location: 'westeurope',
      acrName: 'mdfregistry',
      acrLoginServer: 'mdfregistry.azurecr.io',
      managedIdentityClientId: TEST_ENV.AZURE_CLIENT_ID,
      aks: { clusterName: 'aks-mdf', resourceGroup: 'rg-mdf', namespace: 'models' },
      armEndpoint: 'https://management.azure.com',
      acrBuildTimeoutSeconds: 3600,
      deployTimeoutSeconds: 900,
    });
    expect(loadAzureConfig({ ...TEST_ENV, ACR_NAME: 'myreg.azurecr.io' }).acrName).toBe('myreg');
  });

  test('names every missing setting of the requested features', () => {
    expect(() => loadAzureConfig({}, ['acr'])).toThrow(
      expect.objectContaining({ code: 'AzureConfigMissing', message: expect.stringContaining('AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, ACR_NAME') }),
    );
    const { MANAGED_IDENTITY_RESOURCE_ID, AZURE_LOCATION, ...rest } = TEST_ENV;
    expect(() => loadAzureConfig(rest, ['aci'])).toThrow(/AZURE_LOCATION, .*MANAGED_IDENTITY_RESOURCE_ID|MANAGED_IDENTITY_RESOURCE_ID.*AZURE_LOCATION/);
    // What ACR needs is there: the ACR feature alone loads.
    expect(loadAzureConfig(rest, ['acr']).acrName).toBe('mdfregistry');
  });

  test('malformed settings are AzureConfigInvalid naming the setting', () => {
    expect(() => loadAzureConfig({ ...TEST_ENV, AZURE_SUBSCRIPTION_ID: 'not-a-guid' })).toThrow(
      expect.objectContaining({ code: 'AzureConfigInvalid', message: expect.stringContaining('AZURE_SUBSCRIPTION_ID') }),
    );
    expect(() => loadAzureConfig({ ...TEST_ENV, MANAGED_IDENTITY_RESOURCE_ID: 'id-mdf' })).toThrow(/MANAGED_IDENTITY_RESOURCE_ID/);
    expect(() => loadAzureConfig({ ...TEST_ENV, ACR_BUILD_TIMEOUT_SECONDS: '5' })).toThrow(/ACR_BUILD_TIMEOUT_SECONDS/);
  });

  test("ACI needs the replicas' own identity, or an explicit opt-in to the app's (user code can get its group's token)", () => {
    const { REPLICAS_USE_APP_IDENTITY, ...noOptIn } = TEST_ENV;
    expect(REPLICAS_USE_APP_IDENTITY).toBe('true');
    expect(() => loadAzureConfig(noOptIn, ['aci'])).toThrow(
      expect.objectContaining({ code: 'AzureConfigMissing', message: expect.stringMatching(/REPLICA_IDENTITY_RESOURCE_ID, REPLICA_IDENTITY_CLIENT_ID.*REPLICAS_USE_APP_IDENTITY=true/) }),
    );
    // ACR and AKS never put the app's identity where user code runs: they load without it.
    expect(loadAzureConfig(noOptIn, ['acr', 'aks']).acrName).toBe('mdfregistry');
    const replica = { REPLICA_IDENTITY_RESOURCE_ID: `${TEST_ENV.MANAGED_IDENTITY_RESOURCE_ID}-replica`, REPLICA_IDENTITY_CLIENT_ID: '11111111-2222-3333-4444-555555555555' };
    expect(loadAzureConfig({ ...noOptIn, ...replica }, ['aci']).replicaIdentity).toEqual({ resourceId: replica.REPLICA_IDENTITY_RESOURCE_ID, clientId: replica.REPLICA_IDENTITY_CLIENT_ID });
    expect(() => loadAzureConfig({ ...noOptIn, REPLICAS_USE_APP_IDENTITY: 'false' }, ['aci'])).toThrow(expect.objectContaining({ code: 'AzureConfigMissing' }));
    expect(() => loadAzureConfig({ ...noOptIn, REPLICAS_USE_APP_IDENTITY: 'yes' }, ['aci'])).toThrow(
      expect.objectContaining({ code: 'AzureConfigInvalid', message: expect.stringContaining('REPLICAS_USE_APP_IDENTITY') }),
    );
    // The app's start-up check (GET /api/health reports it) names the settings too.
    const { validateAzureStartup } = require('../../shared/azure/config') as typeof import('../../shared/azure/config');
    expect(() => validateAzureStartup({ ...noOptIn, IMAGE_BUILDER: 'acr', DEFAULT_TARGET: 'aci' })).toThrow(/REPLICA_IDENTITY_RESOURCE_ID/);
  });

  test('every setting the Azure side reads is one of the app settings (SETTING_NAMES, local.settings.example.json)', () => {
    const example = Object.keys(JSON.parse(fs.readFileSync(path.join(__dirname, '../../local.settings.example.json'), 'utf8')).Values);
    expect(AZURE_SETTING_NAMES).toEqual(expect.arrayContaining([...AZURE_ONLY_SETTINGS, 'AZURE_SUBSCRIPTION_ID', 'ACR_NAME', 'AKS_CLUSTER_NAME']));
    expect(AZURE_SETTING_NAMES.filter((n) => !SETTING_NAMES.includes(n))).toEqual([]);
    expect(AZURE_SETTING_NAMES.filter((n) => !example.includes(n))).toEqual([]);
  });
});

describe('validateAzureStartup', () => {
  const { validateAzureStartup, azureFeaturesFor } = require('../../shared/azure/config') as typeof import('../../shared/azure/config');
  test('local mode needs nothing; acr + aks need their settings, named together', () => {
    expect(validateAzureStartup({ IMAGE_BUILDER: 'local', DEFAULT_TARGET: 'local' })).toBeUndefined();
    expect(azureFeaturesFor({ IMAGE_BUILDER: 'acr', DEFAULT_TARGET: 'aks' })).toEqual(['acr', 'aks']);
    expect(() => validateAzureStartup({ IMAGE_BUILDER: 'acr', DEFAULT_TARGET: 'aks', AZURE_SUBSCRIPTION_ID: TEST_ENV.AZURE_SUBSCRIPTION_ID })).toThrow(
      expect.objectContaining({ code: 'AzureConfigMissing', message: expect.stringMatching(/AZURE_RESOURCE_GROUP, ACR_NAME, AKS_CLUSTER_NAME/) }),
    );
    expect(validateAzureStartup({ ...TEST_ENV, IMAGE_BUILDER: 'acr', DEFAULT_TARGET: 'aci' })?.acrLoginServer).toBe('mdfregistry.azurecr.io');
  });
});
