/** ACI batch pools at the wire: node_count container groups in batch mode, node URIs, teardown by tag. */
import { AciBatchPoolProvider, aciPoolNodeSpec } from '../../shared/azure/aci-batch';
import type { BatchPoolRequest } from '../../shared/seams';
import { FAST, arm, q, rgPath, setupNock, testClients, testConfig } from './helpers';

const API = '2023-05-01';
const CG = (name: string) => rgPath('Microsoft.ContainerInstance', `containerGroups/${name}`);
const LIST = rgPath('Microsoft.ContainerInstance', 'containerGroups');

const request: BatchPoolRequest = {
  poolId: 'batch-run-42',
  image: { name: 'img', version: 2, imageRef: 'mdfregistry.azurecr.io/img:2', runtime: 'python', contextBlob: 'images/img/2.tar.gz' },
  nodeCount: 2,
  processCountPerNode: 2,
  runInvocationTimeoutMs: 60000,
};

function node(name: string, opts: { state?: string; restarts?: number } = {}) {
  return {
    id: CG(name),
    name,
    location: 'westeurope',
    tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-pool': 'batch-run-42' },
    properties: {
      provisioningState: 'Succeeded',
      osType: 'Linux',
      containers: [{ name: 'model', properties: { image: request.image.imageRef, resources: { requests: { cpu: 2, memoryInGB: 4 } }, instanceView: { restartCount: opts.restarts ?? 0, currentState: { state: opts.state ?? 'Running' } } } }],
      ipAddress: { type: 'Public', ports: [{ port: 5001 }], fqdn: `${name}.westeurope.azurecontainer.io` },
    },
  };
}

const provider = () => new AciBatchPoolProvider({ clients: testClients(), config: testConfig(), timing: FAST });

describe('AciBatchPoolProvider', () => {
  setupNock();

  test('provision creates node_count groups running the image in batch mode and returns their /batch URIs', async () => {
    const bodies: Record<string, any> = {};
    for (const n of ['batch-run-42-n0', 'batch-run-42-n1']) {
      arm().get(CG(n)).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
      arm()
        .put(CG(n), (b) => ((bodies[n] = b), true))
        .query(q(API))
        .reply(200, node(n));
      arm().get(CG(n)).query(q(API)).reply(200, node(n));
    }
    const pool = await provider().provision(request);
    expect(pool).toEqual({
      poolId: 'batch-run-42',
      nodeUris: ['http://batch-run-42-n0.westeurope.azurecontainer.io:5001/batch', 'http://batch-run-42-n1.westeurope.azurecontainer.io:5001/batch'],
    });
    const b = bodies['batch-run-42-n1'];
    expect(b.tags['mdf-pool']).toBe('batch-run-42');
    const c = b.properties.containers[0].properties;
    expect(c.image).toBe('mdfregistry.azurecr.io/img:2');
    expect(c.resources.requests).toEqual({ cpu: 2, memoryInGB: 4 });
    const env = Object.fromEntries(c.environmentVariables.map((e: any) => [e.name, e.value]));
    expect(env).toMatchObject({ MDF_MODE: 'batch', MDF_WORKERS: '2', MDF_SCORING_TIMEOUT_MS: '60000' });
  });

  test('with the replicas\' own identity (REPLICA_IDENTITY_*) every node runs and pulls with it, never with the app\'s identity', async () => {
    const replica = `/subscriptions/${testConfig().subscriptionId}/resourceGroups/rg-mdf/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mdf-replica-x`;
    const config = testConfig({ REPLICA_IDENTITY_RESOURCE_ID: replica, REPLICA_IDENTITY_CLIENT_ID: '11111111-2222-3333-4444-555555555555' });
    const bodies: Record<string, any> = {};
    for (const n of ['batch-run-42-n0', 'batch-run-42-n1']) {
      arm().get(CG(n)).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
      arm()
        .put(CG(n), (b) => ((bodies[n] = b), true))
        .query(q(API))
        .reply(200, node(n));
      arm().get(CG(n)).query(q(API)).reply(200, node(n));
    }
    await new AciBatchPoolProvider({ clients: testClients(config), config, timing: FAST }).provision(request);
    for (const n of ['batch-run-42-n0', 'batch-run-42-n1']) {
      expect(bodies[n].identity).toEqual({ type: 'UserAssigned', userAssignedIdentities: { [replica]: {} } });
      expect(bodies[n].properties.imageRegistryCredentials).toEqual([{ server: config.acrLoginServer, identity: replica }]);
      // The app's identity id (a prefix of the replicas' here) appears nowhere as a whole value.
      expect(JSON.stringify(bodies[n])).not.toContain(`"${config.managedIdentityResourceId}"`);
    }
  });

  test('pool keys go to every node as secure environment values only', async () => {
    const keys = { primaryKey: 'pk-batch-secret-1', secondaryKey: 'sk-batch-secret-2' };
    const bodies: Record<string, any> = {};
    for (const n of ['batch-run-42-n0', 'batch-run-42-n1']) {
      arm().get(CG(n)).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
      arm()
        .put(CG(n), (b) => ((bodies[n] = b), true))
        .query(q(API))
        .reply(200, node(n));
      arm().get(CG(n)).query(q(API)).reply(200, node(n));
    }
    const pool = await provider().provision({ ...request, keys });
    expect(JSON.stringify(pool)).not.toContain('secret');
    for (const n of ['batch-run-42-n0', 'batch-run-42-n1']) {
      const vars: Array<{ name: string; value?: string; secureValue?: string }> = bodies[n].properties.containers[0].properties.environmentVariables;
      expect(vars.filter((v) => v.name === 'MDF_PRIMARY_KEY' || v.name === 'MDF_SECONDARY_KEY')).toEqual([
        { name: 'MDF_PRIMARY_KEY', secureValue: keys.primaryKey },
        { name: 'MDF_SECONDARY_KEY', secureValue: keys.secondaryKey },
      ]);
      expect(vars.filter((v) => v.value !== undefined && /secret/.test(v.value))).toEqual([]);
      expect(JSON.stringify(bodies[n].tags)).not.toContain('secret');
    }
  });

  test('without keys no key variable is set', async () => {
    const spec = aciPoolNodeSpec(request, 0, { config: testConfig() });
    expect(spec.secureEnv).toEqual([]);
    expect(spec.env.map(([k]) => k)).not.toContain('MDF_PRIMARY_KEY');
  });

  test('a node that crash-loops fails the provision and the whole pool is torn down', async () => {
    arm().get(CG('batch-run-42-n0')).query(q(API)).reply(200, node('batch-run-42-n0'));
    arm().get(CG('batch-run-42-n0')).query(q(API)).reply(200, node('batch-run-42-n0'));
    arm().get(CG('batch-run-42-n1')).query(q(API)).reply(200, node('batch-run-42-n1'));
    arm().get(CG('batch-run-42-n1')).query(q(API)).reply(200, node('batch-run-42-n1', { state: 'Waiting', restarts: 5 }));
    arm().get(`${CG('batch-run-42-n1')}/containers/model/logs`).query(q(API, { tail: '30' })).reply(200, { content: 'boom' });
    arm().get(LIST).query(q(API)).reply(200, { value: [node('batch-run-42-n0'), node('batch-run-42-n1')] });
    arm().delete(CG('batch-run-42-n0')).query(q(API)).reply(200, {});
    arm().delete(CG('batch-run-42-n1')).query(q(API)).reply(200, {});
    await expect(provider().provision(request)).rejects.toMatchObject({ code: 'ContainerCrashLoop', message: expect.stringContaining('boom') });
  });

  test('teardown deletes only the groups tagged with the pool; an empty pool is fine', async () => {
    const stranger = { ...node('other'), tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-pool': 'another' } };
    arm().get(LIST).query(q(API)).reply(200, { value: [node('batch-run-42-n0'), stranger] });
    arm().delete(CG('batch-run-42-n0')).query(q(API)).reply(204);
    await provider().teardown('batch-run-42');
    arm().get(LIST).query(q(API)).reply(200, { value: [] });
    await provider().teardown('batch-run-42');
  });

  test('node_count outside 1..50 is rejected', async () => {
    await expect(provider().provision({ ...request, nodeCount: 0 })).rejects.toMatchObject({ code: 'BatchPoolInvalid' });
  });
});
