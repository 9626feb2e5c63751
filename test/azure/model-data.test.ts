/**
 * collect_model_data on Azure: the replicas' environment (ACI container group, AKS Deployment) and the collector's
 * writes to the app's storage with the replica's identity, at the wire (nock): a Bearer token, no SAS, no key; the
 * container created once when missing.
 */
import { blobSink, ModelDataCollector } from '../../runtime/collector';
import { aciSlotSpec } from '../../shared/azure/aci-target';
import { containerGroupBody } from '../../shared/azure/aci';
import { slotDeployment } from '../../shared/azure/aks-manifests';
import { deployConfigFor } from '../../shared/manifest/schema';
import type { DeployRequest } from '../../shared/seams';
import { FakeCredential, nock, setupNock, testConfig, TOKEN } from './helpers';

const ACCOUNT = 'https://mdfstorage.blob.core.windows.net';
const CONTAINER_URL = `${ACCOUNT}/modeldata`;

function request(config = deployConfigFor({ kind: 'aci', collect_model_data: true, enable_app_insights: true } as never)): DeployRequest {
  return {
    serviceName: 'diabetes',
    slot: 'green',
    image: { name: 'diabetesimage', version: 3, imageRef: 'mdfregistry.azurecr.io/diabetesimage:3', runtime: 'python', contextBlob: 'images/diabetesimage/3.tar.gz' },
    config,
  };
}

describe('replica environment', () => {
  test('ACI: collection on → MDF_* labels, the container URL without a SAS, the group identity\'s client id; off → nothing added', () => {
    const env = Object.fromEntries(aciSlotSpec(request(), testConfig(), CONTAINER_URL).env);
    expect(env).toMatchObject({
      MDF_SERVICE_NAME: 'diabetes', MDF_SLOT: 'green', MDF_COLLECT_MODEL_DATA: 'true', MDF_MODEL_DATA_URL: CONTAINER_URL,
      MDF_ENABLE_APP_INSIGHTS: 'true', AZURE_CLIENT_ID: testConfig().managedIdentityClientId,
    });
    const off = Object.fromEntries(aciSlotSpec(request(deployConfigFor({ kind: 'aci' } as never)), testConfig(), CONTAINER_URL).env);
    expect(Object.keys(off).filter((k) => /MODEL_DATA|APP_INSIGHTS|SLOT|AZURE_CLIENT_ID/.test(k))).toEqual([]);
  });

  test('ACI with the replicas\' own identity (REPLICA_IDENTITY_*, infra/): the group runs, pulls and collects with it, never with the app\'s', () => {
    const replica = { resourceId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mdf-replica-x', clientId: '11111111-2222-3333-4444-555555555555' };
    const config = { ...testConfig(), replicaIdentity: replica };
    const spec = aciSlotSpec(request(), config, CONTAINER_URL);
    expect(Object.fromEntries(spec.env).AZURE_CLIENT_ID).toBe(replica.clientId);
    const group = containerGroupBody(spec, config);
    expect(group.identity).toEqual({ type: 'UserAssigned', userAssignedIdentities: { [replica.resourceId]: {} } });
    expect(group.imageRegistryCredentials).toEqual([{ server: config.acrLoginServer, identity: replica.resourceId }]);
    expect(JSON.stringify(group)).not.toContain(config.managedIdentityResourceId);
    expect(JSON.stringify(group)).not.toContain(String(config.managedIdentityClientId));
  });

  test('AKS: the Deployment\'s container gets the same variables', () => {
    const d = slotDeployment(request(deployConfigFor({ kind: 'aks', collect_model_data: true } as never)), 'models', CONTAINER_URL);
    const env = Object.fromEntries((d.spec!.template.spec!.containers[0].env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ MDF_COLLECT_MODEL_DATA: 'true', MDF_MODEL_DATA_URL: CONTAINER_URL, MDF_SERVICE_NAME: 'diabetes', MDF_SLOT: 'green' });
    expect(env.MDF_ENABLE_APP_INSIGHTS).toBeUndefined();
  });
});

describe('writes with the replica identity (wire)', () => {
  setupNock();

  test('a batch is one PUT of a block blob with a Bearer token; a missing container is created once', async () => {
    const credential = new FakeCredential();
    const bodies: string[] = [];
    const auths: string[] = [];
    const logs: string[] = [];
    const blobPath = /^\/modeldata\/diabetes\/diabetes-linear\/2\/requests\/\d{4}\/\d{2}\/\d{2}\/r1-\w+-000000\.jsonl$/;
    nock(ACCOUNT)
      .put((uri: string) => blobPath.test(uri))
      .reply(404, '<?xml version="1.0" encoding="utf-8"?><Error><Code>ContainerNotFound</Code><Message>The specified container does not exist.</Message></Error>', { 'x-ms-error-code': 'ContainerNotFound', 'content-type': 'application/xml' })
      .put('/modeldata')
      .query({ restype: 'container' })
      .reply(201)
      .put((uri: string) => blobPath.test(uri))
      .reply(function (_uri, body) {
        auths.push(String(this.req.headers.authorization));
        bodies.push(typeof body === 'string' ? body : JSON.stringify(body));
        return [201, ''];
      });
    const sink = blobSink({ containerUrl: CONTAINER_URL, credential });
    expect(sink.describe).toBe(CONTAINER_URL);
    const c = new ModelDataCollector({ sink, service: 'diabetes', slot: 'green', model: 'diabetes-linear', modelVersion: '2', replicaId: 'r1', flushMs: 60_000, closeTimeoutMs: 3000, onLog: (r) => logs.push(r.message) });
    c.captureRequest({ requestId: 'req-1', status: 200, input: Buffer.from('{"data":[[1,2]]}'), inputType: 'application/json', output: Buffer.from('[3]'), outputType: 'application/json' });
    c.captureRequest({ requestId: 'req-2', status: 200, input: Buffer.from('{"data":[[3,4]]}'), inputType: 'application/json', output: Buffer.from('[7]'), outputType: 'application/json' });
    await c.close();
    expect(logs).toEqual([]);
    expect(auths).toEqual([`Bearer ${TOKEN}`]);
    expect(credential.scopes).toContain('https://storage.azure.com/.default');
    const lines = bodies[0].trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.requestId, l.input, l.output])).toEqual([['req-1', { data: [[1, 2]] }, [3]], ['req-2', { data: [[3, 4]] }, [7]]]);
    expect(c.stats).toMatchObject({ written: 2, dropped: 0 });
  });
});
