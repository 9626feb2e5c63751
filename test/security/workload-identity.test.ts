/**
 * The replicas' identity on AKS (shared/azure/aks-identity.ts) against a hostile manifest, through the manifest parser
 * and the deployment plan (what the deploy step writes, `mdf plan`):
 * - a manifest cannot choose the ServiceAccount, the namespace, the identity, the pod labels (the workload identity
 *   label included), nor the federated credential's subject or issuer: such fields are refused, and a tag with the
 *   label's name reaches no pod;
 * - only a slot with collect_model_data gets the workload identity label (the projected token);
 * - no slot pod gets a Kubernetes API token (`automountServiceAccountToken: false`), whatever service account it runs
 *   as — before, without REPLICA_IDENTITY_* the pods ran as the namespace's default account with its token mounted;
 * - the plan shows no key the manifest gave;
 * - two installations sharing the replicas' identity never share a federated credential name (one would overwrite
 *   the other's issuer): `a-b` + `c` and `a` + `b-c` were both `mdf-a-b-c`.
 */
import { federatedCredentialName } from '../../shared/azure/aks-identity';
import { AksTarget } from '../../shared/azure/aks-target';
import { AppError } from '../../shared/errors';
import { planConfig, planDeployment } from '../../shared/azure/plan';
import { parseManifest } from '../../shared/manifest';
import type { DeployRequest } from '../../shared/seams';
import { FAST, FakeCredential, setupNock, testClients, testConfig } from '../azure/helpers';
import { k8s } from '../azure/aks-world';

setupNock(); // no network: anything the deploy step would call fails the test

const SUB = '00000000-0000-0000-0000-000000000001';
const RG = 'rg-mdf';
const REPLICA = {
  REPLICA_IDENTITY_RESOURCE_ID: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mdf-replica-x`,
  REPLICA_IDENTITY_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
};
const APP_CLIENT_ID = '99999999-8888-7777-6666-555555555555';
const SETTINGS = { AZURE_SUBSCRIPTION_ID: SUB, AZURE_RESOURCE_GROUP: RG, AKS_CLUSTER_NAME: 'aks-mdf', AKS_NAMESPACE: 'models', AZURE_CLIENT_ID: APP_CLIENT_ID };
const PRIMARY = 'manifest-primary-key-0123456789abcdef';
const SECONDARY = 'manifest-secondary-key-0123456789abcdef';

const manifest = (target: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  parseManifest(
    JSON.stringify({
      model: { name: 'diabetes', files: ['model.pkl'] },
      image: { name: 'img', runtime: 'python', entry_script: 'score.py' },
      target: { kind: 'aks', num_replicas: 1, ...target },
      service: { name: 'diabetes' },
      ...extra,
    }),
  );

/** The plan's slot Deployment and what it writes for the identity. */
function planned(m: ReturnType<typeof parseManifest>, replica: boolean) {
  const ops = planDeployment(m, planConfig({ ...SETTINGS, ...(replica ? REPLICA : {}) }));
  const dep = ops.find((o) => o.method !== 'GET' && /\/deployments\/diabetes-(blue|green)$/.test(o.path ?? ''));
  expect(dep).toBeDefined();
  const tpl = (dep!.body as { spec: { template: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> } } }).spec.template;
  const fic = ops.find((o) => o.method === 'PUT' && /federatedIdentityCredentials/.test(o.path ?? ''));
  return { ops, tpl, fic };
}

test.each([
  ['service_account', { service_account: 'cluster-admin-sa' }],
  ['serviceAccountName', { serviceAccountName: 'cluster-admin-sa' }],
  ['identity', { identity: APP_CLIENT_ID }],
  ['client_id', { client_id: APP_CLIENT_ID }],
  ['labels', { labels: { 'azure.workload.identity/use': 'true' } }],
  ['pod_labels', { pod_labels: { 'azure.workload.identity/use': 'true' } }],
  ['issuer', { oidc_issuer: 'https://evil.invalid/' }],
  ['subject', { federated_subject: 'system:serviceaccount:kube-system:default' }],
  ['environment_variables', { environment_variables: { AZURE_CLIENT_ID: APP_CLIENT_ID } }],
])('a target field %s that would choose the identity or its scope is refused', (_, field) => {
  let error: unknown;
  try {
    manifest(field);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).httpStatus).toBe(400);
});

test('the AML namespace field: any namespace but AKS_NAMESPACE is refused by the deploy step before any call', async () => {
  const m = manifest({ namespace: 'kube-system' });
  const config = testConfig({ ...REPLICA, AKS_NAMESPACE: 'models' });
  const target = new AksTarget({ clients: testClients(config, new FakeCredential()), config, timing: FAST, k8s });
  const request: DeployRequest = {
    serviceName: 'diabetes',
    slot: 'blue',
    image: { name: 'img', version: 1, imageRef: 'mdfregistry.azurecr.io/img:1', runtime: 'python', contextBlob: 'images/img/1.tar.gz' },
    config: m.deployConfig,
  };
  await expect(target.deploySlot(request)).rejects.toMatchObject({ code: 'AksNamespaceMismatch', httpStatus: 400 });
});

test('a tag named like the workload identity label reaches no pod; the subject and issuer are the app\'s', () => {
  const m = manifest({}, { service: { name: 'diabetes', tags: { 'azure.workload.identity/use': 'true' } } });
  for (const replica of [false, true]) {
    const { tpl, fic } = planned(m, replica);
    expect(tpl.metadata.labels['azure.workload.identity/use']).toBeUndefined();
    expect(fic).toBeUndefined(); // no collection: no federation at all
  }
  const { fic } = planned(manifest({ collect_model_data: true }), true);
  expect(fic!.body).toMatchObject({ properties: { subject: 'system:serviceaccount:models:mdf-replica', audiences: ['api://AzureADTokenExchange'] } });
});

test.each([
  [false, false],
  [false, true],
  [true, false],
  [true, true],
])('collect_model_data %s, replica identity %s: no API token in the pods; the token label only with both', (collect, replica) => {
  const { tpl } = planned(manifest(collect ? { collect_model_data: true } : {}), replica);
  expect(tpl.spec.automountServiceAccountToken).toBe(false);
  expect(tpl.spec.serviceAccountName).toBe(replica ? 'mdf-replica' : undefined);
  expect(tpl.metadata.labels['azure.workload.identity/use']).toBe(collect && replica ? 'true' : undefined);
  // The app's own identity is never handed to the pods.
  expect(JSON.stringify(tpl)).not.toContain(APP_CLIENT_ID);
});

test('the plan never shows a key the manifest gave', () => {
  for (const auth of [{ auth_enabled: true, primary_key: PRIMARY, secondary_key: SECONDARY }]) {
    const { ops } = planned(manifest({ ...auth, collect_model_data: true }), true);
    const text = JSON.stringify(ops);
    expect(text).not.toContain(PRIMARY);
    expect(text).not.toContain(SECONDARY);
    expect(text).not.toContain(Buffer.from(PRIMARY).toString('base64'));
  }
});

test('federated credential names: distinct per (cluster, namespace), ARM-valid, stable', () => {
  const pairs: Array<[string, string]> = [
    ['a-b', 'c'],
    ['a', 'b-c'],
    ['aks.mdf', 'models'],
    ['aks_mdf', 'models'],
    ['aks-mdf', 'models'],
    [`${'x'.repeat(100)}`, `${'n'.repeat(40)}-one`],
    [`${'x'.repeat(100)}`, `${'n'.repeat(40)}-two`],
  ];
  const names = pairs.map(([c, n]) => federatedCredentialName(c, n));
  expect(new Set(names).size).toBe(pairs.length);
  for (const n of names) expect(n).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/);
  expect(federatedCredentialName('a-b', 'c')).toBe(names[0]);
});
