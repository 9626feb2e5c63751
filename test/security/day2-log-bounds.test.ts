/**
 * Bad-input class: scoring code that writes huge log lines, read back by `GET /api/services/{name}/logs` on AKS. The
 * route asks for `tail` lines, but a line can be megabytes (the runtime reassembles long lines): the app asks the API
 * server for at most MAX_POD_LOG_BYTES per pod (`limitBytes`) and keeps no more than that of any answer, so the app's
 * memory does not follow what the user's code prints. At the wire (nock).
 */
import { AKS_LOG_PODS, AksTarget, MAX_POD_LOG_BYTES } from '../../shared/azure/aks-target';
import { FakeCredential, FAST, arm, nock, q, setupNock, testClients, testConfig } from '../azure/helpers';
import { k8s, AKS_API, MC, NS, kube, kubeconfig } from '../azure/aks-world';


describe('AKS service logs', () => {
  setupNock();

  test('each pod log is asked with limitBytes and kept within it, whatever the answer', async () => {
    const credential = new FakeCredential();
    arm().get(MC).query(q(AKS_API)).reply(200, { id: MC, name: 'aks-mdf', location: 'westeurope', properties: { provisioningState: 'Succeeded', agentPoolProfiles: [{ name: 'system', count: 3, vmSize: 'Standard_D3_v2' }] } });
    arm()
      .post(`${MC}/listClusterUserCredential`)
      .query(q(AKS_API))
      .reply(200, { kubeconfigs: [{ name: 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') }] });
    const target = new AksTarget({ clients: testClients(testConfig(), credential), config: testConfig(), timing: FAST, k8s });
    const pods = Array.from({ length: AKS_LOG_PODS }, (_, i) => ({
      metadata: { name: `diabetes-green-${i}`, creationTimestamp: `2026-11-24T0${i}:00:00Z` },
      status: { containerStatuses: [{ name: 'model', image: 'x', imageID: '', ready: true, restartCount: 0, state: { running: {} } }] },
    }));
    kube().get(`/api/v1${NS}/pods`).query(true).reply(200, { apiVersion: 'v1', kind: 'PodList', metadata: {}, items: pods });
    const asked: string[] = [];
    // An API server that ignores the limit: each pod answers 2 MB lines.
    const huge = `${'x'.repeat(2 * 1024 * 1024)}\n${'y'.repeat(2 * 1024 * 1024)}\n`;
    for (const p of pods) {
      kube()
        .get(`/api/v1${NS}/pods/${p.metadata.name}/log`)
        .query((qq) => (asked.push(String(qq.limitBytes)), true))
        .reply(200, huge, { 'Content-Type': 'text/plain' });
    }
    const text = await target.logTail('diabetes', 'green', 1000);
    expect(asked).toEqual(Array(AKS_LOG_PODS).fill(String(MAX_POD_LOG_BYTES)));
    expect(text.length).toBeLessThanOrEqual(AKS_LOG_PODS * (MAX_POD_LOG_BYTES + 64));
    expect(text.length).toBeGreaterThan(0);
  });
});
