/**
 * Dry run: the ARM and Kubernetes operations a deployment manifest would perform on Azure, built from the same
 * functions the Azure seams use (so the plan cannot drift from what is sent). Nothing is called.
 *
 *   node dist/shared/azure/plan.js incoming/diabetes/deploy.json [--version 3] [--slot blue] [--json]
 *
 * Azure names come from the usual settings (AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, ...); missing ones are
 * shown as `<SETTING>` placeholders. Secrets (keys, SAS URLs) are never printed.
 */
import * as fs from 'fs';
import { badRequest, toErrorInfo } from '../errors';
import { parseManifest, type DeploymentManifest } from '../manifest';
import type { DeployRequest, ImageBuildRequest } from '../seams';
import { containerGroupBody, containerGroupWireBody } from './aci';
import { aciSlotSpec, KEYS_DIGEST_TAG, STABLE_LABEL_TAG } from './aci-target';
import { aciFrontSpec, frontGroupName } from './aci-front';
import { FRONT_IMAGE_REPOSITORY } from './front-image';
import { FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH } from '../../runtime';
import { dockerBuildRequest, imageRepository } from './acr-builder';
import { autoscaled, keysSecretName, kubeService, slotAutoscaler, slotDeployment } from './aks-manifests';
import { DEFAULT_GATEWAY_NAME, frontRoute, GATEWAY_API, httpRoute } from './aks-traffic';
import { FEDERATED_CREDENTIAL_API_VERSION, federatedCredentialBody, federatedCredentialId, REPLICA_SERVICE_ACCOUNT, replicaServiceAccount, withReplicaIdentity } from './aks-identity';
import { frontAdminSecret, frontDeployment, frontDisruptionBudget, frontPodProxyPath, frontResourceName, frontService, slotServiceUrl } from './aks-front';
import { isProgressive } from '../rollout/spec';
import { loadAzureConfig, type AzureConfig } from './config';
import { serviceResourceName, slotResourceName } from './names';
import { scoringPort } from './runtime-env';

/** api-version of each REST API the Azure seams call (what the SDK versions in package.json send). */
export const API_VERSIONS = {
  acrTasks: '2019-06-01-preview',
  containerInstance: '2023-05-01',
  containerService: '2026-04-01',
} as const;

export interface PlannedOperation {
  api: 'arm' | 'kubernetes' | 'blob' | 'front';
  method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  apiVersion?: string;
  /** What the call is for. */
  purpose: string;
  body?: unknown;
}

export interface PlanOptions {
  /** Image version the build would get (the registry allocates it; default 1). */
  version?: number;
  slot?: string;
  env?: Record<string, string | undefined>;
}

/** Azure settings for a plan: real values where set, `<SETTING>` placeholders where not. */
export function planConfig(env: Record<string, string | undefined>): AzureConfig {
  const placeholders: Record<string, string> = {
    AZURE_SUBSCRIPTION_ID: '00000000-0000-0000-0000-000000000000',
    AZURE_RESOURCE_GROUP: '<AZURE_RESOURCE_GROUP>',
    AZURE_LOCATION: '<AZURE_LOCATION>',
    ACR_NAME: 'ACRNAME',
    MANAGED_IDENTITY_RESOURCE_ID: '/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<MANAGED_IDENTITY_RESOURCE_ID>',
    AKS_CLUSTER_NAME: '<AKS_CLUSTER_NAME>',
  };
  const merged: Record<string, string | undefined> = { ...env };
  for (const [k, v] of Object.entries(placeholders)) if (!merged[k]) merged[k] = v;
  // The plan shows what the settings give; without the replicas' identity an ACI deployment itself is refused
  // (AzureConfigMissing, also reported by GET /api/health), the plan still shows its operations.
  if (!merged.REPLICA_IDENTITY_RESOURCE_ID && !merged.REPLICA_IDENTITY_CLIENT_ID) merged.REPLICAS_USE_APP_IDENTITY = 'true';
  const config = loadAzureConfig(merged, ['acr', 'aci', 'aks']);
  if (!env.AZURE_SUBSCRIPTION_ID) config.subscriptionId = '<AZURE_SUBSCRIPTION_ID>';
  if (!env.ACR_NAME) {
    config.acrName = '<ACR_NAME>';
    config.acrLoginServer = '<ACR_NAME>.azurecr.io';
  }
  return config;
}

const rgScope = (c: AzureConfig, rg = c.resourceGroup) => `/subscriptions/${c.subscriptionId}/resourceGroups/${rg}`;

export function planDeployment(manifest: DeploymentManifest, config: AzureConfig, options: PlanOptions = {}): PlannedOperation[] {
  const version = options.version ?? 1;
  const slot = options.slot ?? 'blue';
  const ops: PlannedOperation[] = [];
  const registry = `${rgScope(config)}/providers/Microsoft.ContainerRegistry/registries/${config.acrName}`;
  const contextBlob = `images/${manifest.image.name}/${version}.tar.gz`;
  // A manifest naming a built image (`image: "name:version"`) is planned once the door has resolved its runtime.
  const runtime = manifest.image.runtime;
  if (!runtime) throw badRequest('ImageNotResolved', `The plan needs the image's runtime; image ${manifest.image.existing ?? manifest.image.name} is a reference to a built image: plan a manifest that builds one.`);
  const build: ImageBuildRequest = {
    name: manifest.image.name,
    version,
    runtime,
    contextBlob,
    contextDigest: '<sha256 of the context archive>',
    ...(manifest.image.baseImage ? { baseImage: manifest.image.baseImage } : {}),
  };
  const acr = (method: PlannedOperation['method'], sub: string, purpose: string, body?: unknown): PlannedOperation => ({
    api: 'arm',
    method,
    path: `${registry}${sub}`,
    apiVersion: API_VERSIONS.acrTasks,
    purpose,
    ...(body !== undefined ? { body } : {}),
  });
  ops.push(acr('POST', '/listBuildSourceUploadUrl', 'get a SAS URL to upload the build context'));
  ops.push({ api: 'blob', method: 'PUT', path: '<uploadUrl (SAS, not shown)>', purpose: `upload ${contextBlob} (x-ms-blob-type: BlockBlob)` });
  ops.push(acr('POST', '/scheduleRun', `build and push ${imageRepository(build.name)}:${version}`, dockerBuildRequest(build, '<relativePath>', { config })));
  ops.push(acr('GET', '/runs/{runId}', 'poll the run until Succeeded/Failed/Canceled/Error/Timeout'));
  ops.push(acr('POST', '/runs/{runId}/listLogSasUrl', `copy the build log to images/${build.name}/${version}.log`));

  const request: DeployRequest = {
    serviceName: manifest.service.name,
    slot,
    image: { name: build.name, version, imageRef: `${config.acrLoginServer}/${imageRepository(build.name)}:${version}`, runtime: build.runtime, contextBlob },
    config: manifest.deployConfig,
    ...(manifest.deployConfig.authEnabled ? { keys: { primaryKey: '<generated>', secondaryKey: '<generated>' } } : {}),
  };

  if (manifest.target === 'aci') {
    const cg = (name: string) => `${rgScope(config)}/providers/Microsoft.ContainerInstance/containerGroups/${name}`;
    const planned = aciSlotSpec(request, config);
    // The keys are generated at deployment time: their digest tag is not known yet.
    const spec = planned.tags[KEYS_DIGEST_TAG] ? { ...planned, tags: { ...planned.tags, [KEYS_DIGEST_TAG]: '<sha256 of the keys>' } } : planned;
    const a = (method: PlannedOperation['method'], path: string, purpose: string, body?: unknown): PlannedOperation => ({
      api: 'arm',
      method,
      path,
      apiVersion: API_VERSIONS.containerInstance,
      purpose,
      ...(body !== undefined ? { body } : {}),
    });
    ops.push(a('GET', cg(spec.name), 'read the slot (unchanged image → no PUT)'));
    ops.push(a('PUT', cg(spec.name), 'create the slot container group (long-running; Azure-AsyncOperation polled)', containerGroupWireBody(containerGroupBody(spec, config))));
    ops.push(a('GET', cg(spec.name), 'poll until the container runs (crash loop / image pull failures end it)'));
    ops.push(a('GET', `${cg(spec.name)}/containers/model/logs`, 'log tail on failure (tail=30)'));
    const rollout = manifest.rollout;
    if (isProgressive(rollout)) {
      // Progressive delivery (aci-front.ts): the service front, created at the first step, then one signed state
      // write per phase; the gate figures from each slot's /metrics.
      const previous = slot === 'blue' ? 'green' : 'blue';
      const prevName = slotResourceName(request.serviceName, previous);
      const stable = spec.tags[STABLE_LABEL_TAG];
      const frontUrl = `http://${stable}.${spec.location ?? config.location}.azurecontainer.io:${spec.port}`;
      const slotUrl = (n: string) => `http://<label of ${n}>.${spec.location ?? config.location}.azurecontainer.io:${spec.port}`;
      const f = (method: PlannedOperation['method'], path: string, purpose: string, body?: unknown): PlannedOperation => ({ api: 'front', method, path, purpose, ...(body !== undefined ? { body } : {}) });
      const frontImage = `${FRONT_IMAGE_REPOSITORY}:<runtime version>`;
      const front = aciFrontSpec({
        serviceName: request.serviceName,
        image: `${config.acrLoginServer}/${frontImage}`,
        port: spec.port,
        dnsNameLabel: stable,
        ...(spec.location ? { location: spec.location } : {}),
        state: { generation: 1, serving: previous, slots: { [previous]: slotUrl(prevName) }, weights: {} },
        adminKey: '<derived from the service token secret>',
        ...(request.keys ? { keys: request.keys } : {}),
        tags: { [STABLE_LABEL_TAG]: stable, [KEYS_DIGEST_TAG]: '<sha256 of the keys>' },
      });
      ops.push(a('GET', cg(frontGroupName(request.serviceName)), 'rollout: the service front (created at the first progressive rollout of the service)'));
      ops.push(acr('POST', '/scheduleRun', `first front of this app version only: build and push the front's own image ${frontImage} (the runtime alone, no model; upload and polling as above)`));
      ops.push(a('PUT', cg(prevName), 'first progressive rollout only: the serving group updated in place under its own DNS name (releases the stable name; it restarts)'));
      ops.push(a('PUT', cg(front.name), 'first progressive rollout only: the service front (front-cli.js from its own image, stable DNS name, emptyDir for its state)', containerGroupWireBody(containerGroupBody(front, config))));
      const phases: Array<[string, Record<string, number>, Record<string, unknown>]> = [
        ...(rollout.mirrorPercent ? [[`shadow ${rollout.mirrorPercent} %`, { [previous]: 100, [slot]: 0 }, { mirror: { slot, percent: rollout.mirrorPercent, tolerance: rollout.gates.tolerance } }] as [string, Record<string, number>, Record<string, unknown>]] : []),
        ...rollout.steps.map((w) => [`step ${w} %`, { [previous]: 100 - w, [slot]: w }, {}] as [string, Record<string, number>, Record<string, unknown>]),
      ];
      for (const [what, weights, extra] of phases) {
        ops.push(
          f('PUT', `${frontUrl}${FRONT_STATE_PATH}`, `rollout ${what}: signed state write (${FRONT_SIGNATURE_HEADER}; only when it changes); bake ${rollout.bakeSeconds} s`, {
            generation: '<current + 1>',
            serving: previous,
            slots: { [previous]: slotUrl(prevName), [slot]: slotUrl(spec.name) },
            weights,
            ...extra,
          }),
        );
        ops.push(f('GET', `${slotUrl(prevName)}/metrics, ${slotUrl(spec.name)}/metrics`, `rollout ${what}: gate figures (x-mdf-metrics-key); shadow figures from GET ${FRONT_STATE_PATH}`));
      }
      ops.push(f('PUT', `${frontUrl}${FRONT_STATE_PATH}`, 'switch traffic: the front serves this slot alone (no gap)', { generation: '<current + 1>', serving: slot, slots: { [slot]: slotUrl(spec.name) }, weights: {} }));
      ops.push(a('PATCH', cg(spec.name), 'switch traffic: tag this slot active', { tags: { ...spec.tags, 'mdf-active': 'true' } }));
      ops.push(a('DELETE', cg(prevName), 'retire: the previous slot (taken out of the front first)'));
    } else {
      ops.push(a('GET', `${rgScope(config)}/providers/Microsoft.ContainerInstance/containerGroups`, 'switch traffic: find the active slot (tags)'));
      ops.push(a('PATCH', cg(spec.name), 'switch traffic: tag this slot active', { tags: { ...spec.tags, 'mdf-active': 'true' } }));
      ops.push(a('DELETE', cg('<previous active slot>'), 'switch traffic: delete the previously active slot'));
    }
  } else if (manifest.target === 'aks') {
    const mc = `${rgScope(config, config.aks.resourceGroup)}/providers/Microsoft.ContainerService/managedClusters/${config.aks.clusterName}`;
    ops.push({ api: 'arm', method: 'GET', path: mc, apiVersion: API_VERSIONS.containerService, purpose: 'attach the cluster (provisioned, ≥ 12 vCPUs)' });
    ops.push({ api: 'arm', method: 'POST', path: `${mc}/listClusterUserCredential`, apiVersion: API_VERSIONS.containerService, purpose: 'cluster endpoint and CA (AAD token from the app identity)' });
    const ns = `/namespaces/${config.aks.namespace}`;
    const name = slotResourceName(request.serviceName, slot);
    const k = (method: PlannedOperation['method'], path: string, purpose: string, body?: unknown): PlannedOperation => ({
      api: 'kubernetes',
      method,
      path,
      purpose,
      ...(body !== undefined ? { body } : {}),
    });
    if (manifest.deployConfig.authEnabled) {
      ops.push(k('PUT', `/api/v1${ns}/secrets/${keysSecretName(request.serviceName)}`, 'keys Secret (create if absent, else replace)', { data: { primaryKey: '***', secondaryKey: '***' } }));
    }
    const identity = config.replicaIdentity;
    const workloadIdentity = !!identity && !!manifest.deployConfig.collectModelData;
    if (identity && workloadIdentity) {
      // aks-identity.ts: the cluster's OIDC issuer federated with the pods' ServiceAccount (read first, written when it differs).
      const fic = federatedCredentialId(identity, config.aks.clusterName, config.aks.namespace);
      ops.push({ api: 'arm', method: 'GET', path: mc, apiVersion: API_VERSIONS.containerService, purpose: 'replicas\' identity: the cluster\'s OIDC issuer and workload identity (AksOidcIssuerDisabled / AksWorkloadIdentityDisabled)' });
      ops.push({ api: 'arm', method: 'PUT', path: fic, apiVersion: FEDERATED_CREDENTIAL_API_VERSION, purpose: 'replicas\' identity: federated credential for the pods\' ServiceAccount (when absent or different)', body: federatedCredentialBody('<the cluster\'s oidcIssuerProfile.issuerURL>', config.aks.namespace) });
    }
    if (identity) {
      ops.push(k('PUT', `/api/v1${ns}/serviceaccounts/${REPLICA_SERVICE_ACCOUNT}`, 'replicas\' identity: the pods\' ServiceAccount (create if absent, update when it differs)', replicaServiceAccount(config.aks.namespace, identity)));
    }
    const deployment = slotDeployment(request, config.aks.namespace);
    ops.push(k('PUT', `/apis/apps/v1${ns}/deployments/${name}`, 'slot Deployment (create, or rolling update of an existing slot)', identity ? withReplicaIdentity(deployment, workloadIdentity) : deployment));
    if (autoscaled(manifest.deployConfig)) {
      ops.push(k('PUT', `/apis/autoscaling/v2${ns}/horizontalpodautoscalers/${name}`, 'autoscaler', slotAutoscaler(request, config.aks.namespace)));
    } else {
      ops.push(k('DELETE', `/apis/autoscaling/v2${ns}/horizontalpodautoscalers/${name}`, 'fixed replicas: no autoscaler'));
    }
    const port = scoringPort(manifest.deployConfig);
    ops.push(k('PUT', `/api/v1${ns}/services/${name}`, 'slot Service (smoke test URI)', kubeService(request.serviceName, config.aks.namespace, slot, { public: false, port })));
    ops.push(k('GET', `/apis/apps/v1${ns}/deployments/${name}`, 'poll the rollout; on failure restore the previous template (rollback)'));
    const rollout = manifest.rollout;
    if (isProgressive(rollout)) {
      // Progressive delivery (aks-traffic.ts): one HTTPRoute write per step, the gate figures read after each bake.
      const previous = slot === 'blue' ? 'green' : 'blue';
      const gw = `/apis/${GATEWAY_API.group}/${GATEWAY_API.version}${ns}`;
      ops.push(k('GET', `${gw}/gateways/${DEFAULT_GATEWAY_NAME}`, 'rollout: the Gateway the route attaches to must exist (AksGatewayMissing)'));
      const svc = request.serviceName;
      const front = frontResourceName(svc);
      if (rollout.mirrorPercent) {
        // Shadow phase (aks-front.ts): the service front behind the route, controlled through the pod proxy (each pod).
        const nsName = config.aks.namespace;
        const weights = { [previous]: 100, [slot]: 0 };
        const state = {
          serving: previous,
          slots: { [previous]: slotServiceUrl(svc, nsName, previous), [slot]: slotServiceUrl(svc, nsName, slot) },
          weights,
          mirror: { slot, percent: rollout.mirrorPercent, tolerance: rollout.gates.tolerance },
        };
        const frontImage = `${FRONT_IMAGE_REPOSITORY}:<runtime version>`;
        const frontStatePath = `${frontPodProxyPath(nsName, '<pod>').replace('%3Cpod%3E', '<pod>')}${FRONT_STATE_PATH}`;
        ops.push(acr('POST', '/scheduleRun', `first front of this app version only (before anything is written): build and push the front's own image ${frontImage} (the runtime alone, no model; the same image as the ACI front's; upload and polling as above)`));
        const secret = frontAdminSecret(svc, nsName, '***');
        ops.push(k('PUT', `/api/v1${ns}/secrets/${front}`, 'shadow phase: the front\'s admin key (derived from the service\'s front secret; create if absent)', { ...secret, data: { adminKey: '***' } }));
        const dep = frontDeployment({ serviceName: svc, namespace: nsName, image: `${config.acrLoginServer}/${frontImage}`, state: { ...state, generation: 1 }, auth: !!(manifest.deployConfig.authEnabled || manifest.deployConfig.tokenAuthEnabled), adminKey: '***' });
        ops.push(k('PUT', `/apis/apps/v1${ns}/deployments/${front}`, 'shadow phase: the service front (front-cli.js from its own image, two replicas; written only when its digest changes); wait until available', dep));
        ops.push(k('PUT', `/apis/policy/v1${ns}/poddisruptionbudgets/${front}`, 'shadow phase: the front\'s PodDisruptionBudget, minAvailable 1 (create if absent): a node drain leaves one pod serving', frontDisruptionBudget(svc, nsName)));
        ops.push(k('PUT', `/api/v1${ns}/services/${front}`, 'shadow phase: the front\'s ClusterIP Service (create if absent)', frontService(svc, nsName)));
        ops.push(k('GET', frontStatePath, `shadow phase: each front pod's state and what it checks (${FRONT_SIGNATURE_HEADER}, through the API server's pod proxy)`));
        ops.push(k('PUT', frontStatePath, 'shadow phase: signed state write to each front pod whose routing differs (its generation + 1)', { generation: '<current + 1>', ...state }));
        ops.push(k('PUT', `${gw}/httproutes/${serviceResourceName(svc)}`, `shadow ${rollout.mirrorPercent} %: HTTPRoute with all live traffic to ${front} (pin rules to each slot); bake ${rollout.bakeSeconds} s`, frontRoute(svc, nsName, weights, front)));
        ops.push(k('GET', frontStatePath, 'shadow phase: each front pod\'s comparison figures, summed (gate max_disagreement; a pod started later gets the current state first); gate figures of each running pod as below'));
      }
      for (const w of rollout.steps) {
        ops.push(k('PUT', `${gw}/httproutes/${serviceResourceName(request.serviceName)}`, `rollout step ${w} %: HTTPRoute weights and pin rules (create if absent, else replace); bake ${rollout.bakeSeconds} s`, httpRoute(request.serviceName, config.aks.namespace, { [previous]: 100 - w, [slot]: w })));
        ops.push(k('GET', `/api/v1${ns}/pods/<pod>:${port}/proxy/metrics`, `rollout step ${w} %: gate figures, each running pod of ${previous} and ${slot}`));
      }
    }
    ops.push(k('PUT', `/api/v1${ns}/services/${serviceResourceName(request.serviceName)}`, 'switch traffic: public Service selector → this slot', kubeService(request.serviceName, config.aks.namespace, slot, { public: true, port })));
    if (rollout?.mirrorPercent) {
      const front = frontResourceName(request.serviceName);
      ops.push(k('DELETE', `/api/v1${ns}/services/${front}`, 'switch traffic: the route no longer uses the service front: its Service, Deployment, PodDisruptionBudget and Secret are removed'));
      ops.push(k('DELETE', `/apis/apps/v1${ns}/deployments/${front}`, 'switch traffic: the service front\'s Deployment'));
      ops.push(k('DELETE', `/apis/policy/v1${ns}/poddisruptionbudgets/${front}`, 'switch traffic: the service front\'s PodDisruptionBudget'));
      ops.push(k('DELETE', `/api/v1${ns}/secrets/${front}`, 'switch traffic: the service front\'s Secret'));
    }
  }
  return ops;
}

export function formatPlan(ops: PlannedOperation[]): string {
  return ops
    .map((o, i) => {
      const head = `${i + 1}. [${o.api}] ${o.method} ${o.path}${o.apiVersion ? `?api-version=${o.apiVersion}` : ''}\n   ${o.purpose}`;
      return o.body === undefined ? head : `${head}\n${JSON.stringify(o.body, null, 2).replace(/^/gm, '     ')}`;
    })
    .join('\n');
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export function main(argv: string[], env: Record<string, string | undefined> = process.env, out: (s: string) => void = (s) => process.stdout.write(s + '\n')): number {
  const file = argv.find((a, i) => !a.startsWith('--') && !['--version', '--slot'].includes(argv[i - 1] ?? ''));
  if (!file || argv.includes('--help')) {
    out('usage: node dist/shared/azure/plan.js <deploy.json> [--version N] [--slot NAME] [--json]');
    return file ? 0 : 2;
  }
  try {
    const manifest = parseManifest(fs.readFileSync(file, 'utf8'), { fileName: file });
    const version = arg(argv, '--version');
    const ops = planDeployment(manifest, planConfig(env), { version: version ? Number(version) : undefined, slot: arg(argv, '--slot') });
    out(argv.includes('--json') ? JSON.stringify(ops, null, 2) : formatPlan(ops));
    return 0;
  } catch (e) {
    const info = toErrorInfo(e);
    out(JSON.stringify({ error: info }));
    return 1;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
