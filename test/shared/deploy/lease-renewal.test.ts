/** A long rollout renews its run's hold on the service: the lease runs from the renewal; only the holder can renew. */
import { startAzurite, type AzuriteInstance } from '../../../local/azurite';
import { storageFromConnectionString } from '../../../shared/storage';
import { DEPLOYMENT_LEASE_MS, leaseAge, ServiceRegistry } from '../../../shared/registry/services';
import { deployConfigFor } from '../../../shared/manifest';

let azurite: AzuriteInstance;
let registry: ServiceRegistry;
beforeAll(async () => {
  azurite = await startAzurite();
  registry = new ServiceRegistry(storageFromConnectionString(azurite.connectionString));
}, 60_000);
afterAll(async () => {
  await azurite?.stop();
});

test('renewDeployment moves the lease start for the holding run only; beginDeployment of another run stays refused', async () => {
  const config = deployConfigFor({ kind: 'local' });
  await registry.beginDeployment({ name: 'lease-svc', runId: 'run-a', target: 'local', image: 'img:1', config });
  const before = (await registry.get('lease-svc')).currentDeployment!;
  expect(before.renewedTime).toBeUndefined();
  expect(await registry.renewDeployment('lease-svc', 'run-b')).toBe(false);
  expect(await registry.renewDeployment('lease-svc', 'run-a')).toBe(true);
  const after = (await registry.get('lease-svc')).currentDeployment!;
  expect(after.runId).toBe('run-a');
  expect(Date.parse(after.renewedTime!)).toBeGreaterThanOrEqual(Date.parse(before.startedTime));
  // The age counts from the renewal: a deployment started 3 h ago but renewed now is not stale.
  const started3hAgo = new Date(Date.now() - 3 * 3600_000).toISOString();
  expect(leaseAge({ startedTime: started3hAgo }, Date.now())).toBeGreaterThanOrEqual(DEPLOYMENT_LEASE_MS);
  expect(leaseAge({ startedTime: started3hAgo, renewedTime: after.renewedTime }, Date.now())).toBeLessThan(DEPLOYMENT_LEASE_MS);
  await expect(registry.beginDeployment({ name: 'lease-svc', runId: 'run-b', target: 'local', image: 'img:2', config })).rejects.toMatchObject({ code: 'DeploymentInProgress' });
  expect(await registry.renewDeployment('no-such-svc', 'run-a')).toBe(false);
}, 60_000);
