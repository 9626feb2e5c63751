/**
 * Test helper: the AKS cluster the wire tests talk to — the @kubernetes/client-node module, the managed cluster's ARM
 * path, its API server (answered by nock with the fake ARM token), the models namespace, a kubeconfig like the one
 * `listClusterUserCredentials` returns (exec kubelogin, replaced by the app's token), and the API server's 404.
 */
import type { KubernetesModule } from '../../shared/azure/aks-cluster';
import { nock, rgPath, TOKEN } from './helpers';

// @kubernetes/client-node is ESM-only: load it with Node's own require (Jest's module system cannot).
export const k8s: KubernetesModule = (process as unknown as { getBuiltinModule(m: string): typeof import('module') })
  .getBuiltinModule('module')
  .createRequire(__filename)('@kubernetes/client-node');

export const AKS_API = '2026-04-01';
export const MC = rgPath('Microsoft.ContainerService', 'managedClusters/aks-mdf');
export const KUBE = 'https://aks-mdf-dns-1a2b.hcp.westeurope.azmk8s.io:443';
export const NS = '/namespaces/models';

export const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: aks-mdf
  cluster: { server: ${KUBE}, certificate-authority-data: ${Buffer.from('not a real CA').toString('base64')} }
contexts:
- name: aks-mdf
  context: { cluster: aks-mdf, user: u }
current-context: aks-mdf
users:
- name: u
  user:
    exec: { apiVersion: client.authentication.k8s.io/v1beta1, command: kubelogin, args: [get-token, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630] }
`;

/** The cluster's API server, requests carrying the app's token. */
export const kube = () => nock(KUBE, { reqheaders: { authorization: `Bearer ${TOKEN}` } });

export const notFound = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'not found' };
