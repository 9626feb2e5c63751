/**
 * Start-up validation of the Azure settings, through the local host running the real app (functions/startup.ts):
 * a misconfigured Azure deployment logs one error naming every missing setting and answers /api/health with
 * 503 Unhealthy naming them, while the rest of the app keeps answering; a complete configuration reports its
 * Azure features; local mode checks nothing. Also: the ACR builder and the ACI/AKS targets are registered.
 */
import type { AzuriteInstance } from '../../local/azurite';
import { startAzurite } from '../../local/azurite';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { checkAzureStartup, withAzureStartupHealth } from '../../shared/azure/startup';
import { TEST_ENV } from './helpers';

const ACI_SETTINGS = ['AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_LOCATION', 'ACR_NAME', 'MANAGED_IDENTITY_RESOURCE_ID'];

let azurite: AzuriteInstance;
let env: TestEnvironment | undefined;
let lines: Array<Record<string, unknown>> = [];

/** The app's start-up lines (`{"event":"azure-config-..."}`) written to the console. */
function captureStartupLines(): void {
  lines = [];
  for (const method of ['log', 'error'] as const) {
    const original = console[method];
    jest.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      const text = args.map(String).join(' ');
      if (text.includes('"event":"azure-config-')) lines.push({ stream: method, ...JSON.parse(text) });
      else original.apply(console, args);
    });
  }
}

async function start(settings: Record<string, string>): Promise<TestEnvironment> {
  captureStartupLines();
  env = await startTestEnvironment({ azurite, settings });
  return env;
}

beforeAll(async () => {
  azurite = await startAzurite();
});

afterEach(async () => {
  await env?.stop();
  env = undefined;
  jest.restoreAllMocks();
});

afterAll(async () => {
  await azurite?.stop();
});

test('local defaults: nothing is checked, health is unchanged', async () => {
  const e = await start({ IMAGE_BUILDER: 'local', DEFAULT_TARGET: 'local' });
  const health = await e.request('GET', '/api/health');
  expect(health.status).toBe(200);
  expect(health.body.status).toBe('Healthy');
  expect(health.body.azure).toBeUndefined();
  expect(lines).toEqual([]);
});

test('DEFAULT_TARGET=aci without its settings: one error line and an Unhealthy health endpoint, both naming every missing setting; the app keeps serving', async () => {
  const e = await start({ DEFAULT_TARGET: 'aci', IMAGE_BUILDER: 'local' });
  const expectedMessage = `Missing Azure settings for aci: ${ACI_SETTINGS.join(', ')}.`;

  expect(lines).toEqual([
    { stream: 'error', event: 'azure-config-invalid', features: ['aci'], code: 'AzureConfigMissing', message: expect.stringContaining(expectedMessage) },
  ]);

  const health = await e.request('GET', '/api/health');
  expect(health.status).toBe(503);
  expect(health.body).toMatchObject({
    status: 'Unhealthy',
    storage: { reachable: true },
    error: { code: 'AzureConfigMissing', message: expect.stringContaining(expectedMessage) },
    azure: { features: ['aci'], error: { code: 'AzureConfigMissing' } },
  });

  // Read paths still answer (a throwing start hook would have taken every endpoint down).
  expect((await e.request('GET', '/api/models')).status).toBe(200);

  // The ACI target is registered: using it fails with the same error, not "target unavailable".
  const { getAppServices } = require('../../dist/shared/services/app') as typeof import('../../shared/services/app');
  expect(() => getAppServices().target('aci')).toThrow(expect.objectContaining({ code: 'AzureConfigMissing', message: expect.stringContaining(ACI_SETTINGS.join(', ')) }));
});

test('IMAGE_BUILDER=acr + DEFAULT_TARGET=aks with every setting: Healthy, the Azure features reported, the ACR builder and the Azure targets in use', async () => {
  const e = await start({ ...TEST_ENV, IMAGE_BUILDER: 'acr', DEFAULT_TARGET: 'aks' });
  expect(lines).toEqual([{ stream: 'log', event: 'azure-config-valid', features: ['acr', 'aks'] }]);

  const health = await e.request('GET', '/api/health');
  expect(health.status).toBe(200);
  expect(health.body).toMatchObject({ status: 'Healthy', azure: { features: ['acr', 'aks'] } });
  expect(health.body.error).toBeUndefined();

  const { getAppServices } = require('../../dist/shared/services/app') as typeof import('../../shared/services/app');
  const services = getAppServices();
  expect(services.builder.kind).toBe('acr');
  // (The AKS target loads @kubernetes/client-node, an ES module Jest cannot require; the ACI one shows the wiring.)
  expect(services.target('aci').kind).toBe('aci');
});

describe('the pieces', () => {
  test('a malformed setting is AzureConfigInvalid naming it; an earlier health error stays first', () => {
    const s = checkAzureStartup({ ...TEST_ENV, IMAGE_BUILDER: 'acr', AZURE_SUBSCRIPTION_ID: 'not-a-guid' });
    expect(s).toEqual({ features: ['acr'], error: { code: 'AzureConfigInvalid', message: expect.stringContaining('AZURE_SUBSCRIPTION_ID') } });
    const storageDown = { status: 503, jsonBody: { status: 'Unhealthy', error: { code: 'StorageUnavailable', message: 'x' } } };
    expect(withAzureStartupHealth(storageDown, s)).toEqual({
      status: 503,
      jsonBody: { status: 'Unhealthy', error: { code: 'StorageUnavailable', message: 'x' }, azure: { features: ['acr'], error: s.error } },
    });
    // Local mode leaves the result untouched.
    const ok = { jsonBody: { status: 'Healthy' } };
    expect(withAzureStartupHealth(ok, checkAzureStartup({}))).toBe(ok);
  });
});
