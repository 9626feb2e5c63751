/**
 * `DeployTarget` on AKS (the seed's production target). The cluster is attached (never created implicitly) and
 * reached with its user credentials; the workload is managed with `@kubernetes/client-node`:
 * a Deployment (+ HPA) and a direct Service per slot, one public Service whose selector is switched to the
 * active slot, and the keys in a Secret. Re-deploying a slot with a new image is a rolling update; when that
 * rollout fails, the previous pod template is restored (rollback) and the slot is reported Failed. Progressive
 * delivery: a Gateway API HTTPRoute per service (aks-traffic.ts) and, for a shadow phase, the service front as a
 * Deployment behind it (aks-front.ts), controlled through the API server's pod proxy (each of its pods).
 */
import type * as https from 'node:https';
import type * as K8s from '@kubernetes/client-node';
import { AppError, redactSecrets } from '../errors';
import type { DeployConfig, DeployedSlot, DeployRequest, DeployTarget, ErrorInfo, ServiceKeys } from '../seams';
import type { SlotTraffic, TrafficSnapshot } from '../rollout/traffic';
import {
  addShadowTraffic,
  addSlotTraffic,
  checkWeights,
  DEFAULT_GATEWAY_NAME,
  frontRoute,
  GATEWAY_API,
  httpRoute,
  MAX_METRICS_BYTES,
  podsEpoch,
  ROUTE_SERVING_ANNOTATION,
  routesToFront,
  routeWeights,
  sameRoute,
  slotTrafficFromMetrics,
  type HTTPRouteObject,
} from './aks-traffic';
import {
  AKS_FRONT_CONTAINER,
  frontAdminSecret,
  frontDeployment,
  frontDigestOf,
  frontDisruptionBudget,
  frontPodProxyPath,
  frontResourceName,
  frontSelector,
  frontService,
  FRONT_ADMIN_SECRET_KEY,
  slotServiceUrl,
} from './aks-front';
import { callFront, sameRouting, type FrontAnswer } from './aci-front';
import { FRONT_IMAGE_REPOSITORY, type FrontImageSource } from './front-image';
import type { FrontState, ShadowTraffic } from '../../runtime';
import {
  AKS_CONTAINER,
  AKS_SERVICE_PORT,
  autoscaled,
  initialReplicas,
  keysSecret,
  keysSecretName,
  kubeService,
  TLS_HOST_ANNOTATION,
  legacyTlsSecretName,
  mountedTlsSecret,
  tlsSecret,
  labelSelector,
  slotAutoscaler,
  slotDeployment,
  slotSelector,
} from './aks-manifests';
import { attachAksCluster, kubeConfigFor, loadKubernetesModule, type AksClusterOptions, type KubernetesModule } from './aks-cluster';
import { DEFAULT_TIMING, type AzureTiming } from './clients';
import type { AzureConfig } from './config';
import { isNotFound } from '../errors';
import { toAzureError } from './errors';
import { METRICS_KEY_HEADER, metricsHeaderValue } from '../../runtime';
import { MANAGED_BY, serviceResourceName, slotResourceName, TAGS } from './names';
import { pollUntil } from './poll';
import { ensureReplicaIdentity, withReplicaIdentity } from './aks-identity';

/** Bound on the keys Secret's base64 keys.json before it is parsed (the runtime's keys file bound, in base64). */
const MAX_KEYS_SECRET_CHARS = 88 * 1024;
import { endpointUris, scoringPort } from './runtime-env';

export interface AksTargetOptions extends AksClusterOptions {
  /** `replicaIdentity`: the slot pods run with the replicas' own identity (workload identity, aks-identity.ts). */
  config: AksClusterOptions['config'] & Pick<AzureConfig, 'deployTimeoutSeconds' | 'armEndpoint'> & Partial<Pick<AzureConfig, 'replicaIdentity'>>;
  timing?: AzureTiming;
  /** The Kubernetes client module (tests pass the one they loaded). */
  k8s?: KubernetesModule;
  /** Type of the per-slot Services used by the smoke test (LoadBalancer by default: reachable from Functions). */
  slotServiceType?: 'LoadBalancer' | 'ClusterIP';
  /** Container restarts after which a pod counts as crash-looping. */
  crashLoopRestarts?: number;
  /** How long a cached cluster configuration (its token) is reused. */
  kubeConfigTtlMs?: number;
  /** The Gateway (Gateway API) the services' HTTPRoutes attach to, in the namespace (progressive delivery). */
  gatewayName?: string;
  log?: (message: string) => void;
  /** URL of the app's `modeldata` container (no SAS) for collect_model_data; pods write with their workload identity. */
  modelDataUrl?: string;
  /**
   * The service front's admin signing key (a rollout's shadow phase, aks-front.ts): derived from the service's token
   * secret (aci-front.ts `frontAdminKey`). Wired to the service registry in shared/azure/index.ts.
   */
  secrets?: { frontKey(serviceName: string): Promise<string> };
  /**
   * The service front's own image (front-image.ts: the runtime alone, built once per runtime version, the same image
   * as the ACI front's), never a model's: no image deletion can break a running front, and a serving image built by
   * an earlier release needs no front of its own. Wired to the ACR builder in shared/azure/index.ts.
   */
  frontImage?: FrontImageSource;
}

interface Apis {
  kc: K8s.KubeConfig;
  core: K8s.CoreV1Api;
  apps: K8s.AppsV1Api;
  autoscaling: K8s.AutoscalingV2Api;
  policy: K8s.PolicyV1Api;
  custom: K8s.CustomObjectsApi;
}

const POD_FAILURE = /CrashLoopBackOff|ErrImagePull|ImagePullBackOff|InvalidImageName|CreateContainerConfigError|CreateContainerError/;

/** Pods whose logs `logTail` reads (the newest ones of the slot). */
export const AKS_LOG_PODS = 5;
/**
 * Bytes of one pod's log read at most (the API server's `limitBytes`): `tailLines` alone does not bound a tail whose
 * lines are huge (the scoring code writes what it likes, and the runtime reassembles long lines), and the app holds
 * the answer in memory.
 */
export const MAX_POD_LOG_BYTES = 256 * 1024;

type Outcome = { ok: true } | { ok: false; error: ErrorInfo };
type FrontRouting = Omit<FrontState, 'generation'>;
/** One serving pod of the service front and its answer (its state after the call). */
type FrontPodAnswer = { pod: string; uid: string; restarts: number; answer: FrontAnswer };
/** The service front as its pods answered: the state they hold, their shadow figures summed, who answered. */
type FrontView = { state: FrontState; shadow?: Record<string, ShadowTraffic>; pods: FrontPodAnswer[] };
const routingOf = ({ generation: _g, ...routing }: FrontState): FrontRouting => routing;

/** What `waitRollout` and the log tails look at: a slot's Deployment and pods, or the service front's. */
interface Workload {
  name: string;
  selector: Record<string, string>;
  container: string;
  what: string;
}
const slotWorkload = (serviceName: string, slot: string): Workload => ({ name: slotResourceName(serviceName, slot), selector: slotSelector(serviceName, slot), container: AKS_CONTAINER, what: `${serviceName}/${slot}` });
const frontWorkload = (serviceName: string): Workload => ({ name: frontResourceName(serviceName), selector: frontSelector(serviceName), container: AKS_FRONT_CONTAINER, what: `the service front of ${serviceName}` });
const IMAGE_PULL = /ErrImagePull|ImagePullBackOff|InvalidImageName/;
/** The front (or the API server's proxy to it) did not answer, or answered 5xx: it may not be up yet. */
const notAnsweringYet = (e: unknown): boolean => e instanceof AppError && (e.code === 'FrontUnreachable' || e.code === 'FrontFailed');

export class AksTarget implements DeployTarget {
  readonly kind = 'aks' as const;
  private readonly timing: AzureTiming;
  private readonly k8s: KubernetesModule;
  private cached?: { apis: Apis; at: number };

  constructor(private readonly o: AksTargetOptions) {
    this.timing = o.timing ?? DEFAULT_TIMING;
    this.k8s = o.k8s ?? loadKubernetesModule();
  }

  private get ns(): string {
    return this.o.config.aks.namespace;
  }

  /** Attach the cluster (checks it) and build the API clients; cached for `kubeConfigTtlMs` (30 min). */
  private async apis(): Promise<Apis> {
    const now = (this.timing.now ?? Date.now)();
    if (this.cached && now - this.cached.at < (this.o.kubeConfigTtlMs ?? 30 * 60_000)) return this.cached.apis;
    await attachAksCluster(this.o);
    const kc = await kubeConfigFor(this.o, this.k8s);
    const apis = {
      kc,
      core: kc.makeApiClient(this.k8s.CoreV1Api),
      apps: kc.makeApiClient(this.k8s.AppsV1Api),
      autoscaling: kc.makeApiClient(this.k8s.AutoscalingV2Api),
      policy: kc.makeApiClient(this.k8s.PolicyV1Api),
      custom: kc.makeApiClient(this.k8s.CustomObjectsApi),
    };
    this.cached = { apis, at: now };
    return apis;
  }

  private async k<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw toAzureError(e, operation);
    }
  }

  private async optional<T>(operation: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw toAzureError(e, operation);
    }
  }

  private checkRequest(request: DeployRequest): void {
    const extra = request.config.extra ?? {};
    if (typeof extra.namespace === 'string' && extra.namespace !== this.ns) {
      throw new AppError('AksNamespaceMismatch', `This app deploys to namespace "${this.ns}" (AKS_NAMESPACE); the manifest asks for "${extra.namespace}". Remove it or change AKS_NAMESPACE.`, 400);
    }
    const cluster = extra.computeTargetName;
    if (typeof cluster === 'string' && cluster !== this.o.config.aks.clusterName) {
      throw new AppError('AksClusterMismatch', `This app deploys to AKS cluster "${this.o.config.aks.clusterName}" (AKS_CLUSTER_NAME); the manifest names "${cluster}".`, 400);
    }
    if (request.config.authEnabled && !request.keys) {
      throw new AppError('DeployKeysMissing', 'auth_enabled is true but no keys were given for the service.', 400);
    }
    if (request.config.tokenAuthEnabled && !request.keys?.tokenSecret) {
      throw new AppError('DeployKeysMissing', 'token_auth_enabled is true but no token secret was given for the service.', 400);
    }
  }

  async deploySlot(request: DeployRequest): Promise<DeployedSlot> {
    this.checkRequest(request);
    const { core, apps, autoscaling } = await this.apis();
    const ns = this.ns;
    const name = slotResourceName(request.serviceName, request.slot);

    if ((request.config.authEnabled || request.config.tokenAuthEnabled) && request.keys) await this.writeKeys(core, request.serviceName, request.keys);
    if (request.config.tls) {
      if (!request.tls) throw new AppError('TlsMaterialMissing', `ssl_enabled is set but no certificate and key were given for ${request.serviceName}.`, 400);
      // Named by its content and immutable: an existing one already holds this certificate and key.
      const secret = tlsSecret(request.serviceName, ns, request.tls);
      const secretName = secret.metadata!.name!;
      const existing = await this.optional(`read the TLS Secret of ${request.serviceName}`, () => core.readNamespacedSecret({ name: secretName, namespace: ns }));
      if (!existing) await this.k(`write the TLS Secret of ${request.serviceName}`, () => core.createNamespacedSecret({ namespace: ns, body: secret }));
    }

    let deployment = slotDeployment(request, ns, this.o.modelDataUrl);
    const identity = this.o.config.replicaIdentity;
    if (identity) {
      const workloadIdentity = !!request.config.collectModelData;
      await ensureReplicaIdentity({ clients: this.o.clients, config: { ...this.o.config, replicaIdentity: identity }, core, workloadIdentity, log: this.o.log });
      deployment = withReplicaIdentity(deployment, workloadIdentity);
    }
    const previous = await this.optional(`read Deployment ${name}`, () => apps.readNamespacedDeployment({ name, namespace: ns }));
    const sameImage = previous?.spec?.template?.spec?.containers?.[0]?.image === request.image.imageRef;
    if (previous) {
      // Keep the replica count the autoscaler chose; a rolling update replaces the pods.
      if (autoscaled(request.config) && previous.spec?.replicas) deployment.spec!.replicas = previous.spec.replicas;
      await this.k(`update Deployment ${name}`, () => apps.replaceNamespacedDeployment({ name, namespace: ns, body: withVersion(deployment, previous.metadata?.resourceVersion) }));
    } else {
      await this.k(`create Deployment ${name}`, () => apps.createNamespacedDeployment({ namespace: ns, body: deployment }));
    }

    if (autoscaled(request.config)) {
      const hpa = slotAutoscaler(request, ns);
      await this.apply(
        `write the autoscaler of ${name}`,
        () => autoscaling.readNamespacedHorizontalPodAutoscaler({ name, namespace: ns }),
        () => autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace: ns, body: hpa }),
        (rv) => autoscaling.replaceNamespacedHorizontalPodAutoscaler({ name, namespace: ns, body: withVersion(hpa, rv) }),
      );
    } else {
      await this.optional(`delete the autoscaler of ${name}`, () => autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name, namespace: ns }));
    }

    const port = scoringPort(request.config);
    const svc = kubeService(request.serviceName, ns, request.slot, { public: false, port, type: this.o.slotServiceType, tls: !!request.config.tls });
    await this.applyService(core, svc);

    let outcome = await this.waitRollout(apps, core, slotWorkload(request.serviceName, request.slot));
    if (!outcome.ok && previous && !sameImage) {
      // Rollback: restore the previous pod template (what `kubectl rollout undo` does).
      const current = await this.optional(`read Deployment ${name}`, () => apps.readNamespacedDeployment({ name, namespace: ns }));
      const restored: K8s.V1Deployment = { ...deployment, spec: { ...deployment.spec!, template: previous.spec!.template } };
      await this.k(`roll back Deployment ${name}`, () => apps.replaceNamespacedDeployment({ name, namespace: ns, body: withVersion(restored, current?.metadata?.resourceVersion) }));
      const prevImage = previous.spec?.template?.spec?.containers?.[0]?.image;
      outcome = { ok: false, error: { code: outcome.error.code, message: `${outcome.error.message}\nRolled back ${name} to ${prevImage}.` } };
      this.o.log?.(`rolled back ${name} to ${prevImage}`);
    }
    const svcName = svc.metadata!.name!;
    let error = outcome.ok ? undefined : outcome.error;
    const address = error ? undefined : await this.waitAddress(core, svcName);
    if (!error && !address) {
      error = { code: 'DeployTimeout', message: `Service ${svcName} got no external address within ${this.o.config.deployTimeoutSeconds} s.` };
    }
    const scheme = request.config.tls ? 'https' : 'http';
    const base = address ? `${scheme}://${address}` : `${scheme}://${svcName}.${ns}.svc.cluster.local`;
    return {
      serviceName: request.serviceName,
      slot: request.slot,
      ...endpointUris(base),
      state: error ? 'Failed' : 'Healthy',
      ...(error ? { error } : {}),
    };
  }

  /**
   * `DeployTarget.resizeSlot` on AKS: the running slot's Deployment gets the new replica count (its pod template is
   * untouched, so no pod restarts: Kubernetes adds or removes pods) and its autoscaler is written or removed; then
   * the rollout is awaited as for a deployment. Returns the slot's direct URIs.
   */
  async resizeSlot(serviceName: string, slot: string, config: DeployConfig): Promise<DeployedSlot> {
    const { core, apps, autoscaling } = await this.apis();
    const ns = this.ns;
    const name = slotResourceName(serviceName, slot);
    const failed = (error: ErrorInfo): DeployedSlot => ({ serviceName, slot, scoringUri: '', swaggerUri: '', healthUri: '', state: 'Failed', error });
    const dep = await this.optional(`read Deployment ${name}`, () => apps.readNamespacedDeployment({ name, namespace: ns }));
    if (!dep) return failed({ code: 'SlotNotFound', message: `Service ${serviceName} has no slot ${slot} on AKS (Deployment ${name} in ${ns}).` });
    if (autoscaled(config)) {
      const hpa = slotAutoscaler({ serviceName, slot, config }, ns);
      await this.apply(
        `write the autoscaler of ${name}`,
        () => autoscaling.readNamespacedHorizontalPodAutoscaler({ name, namespace: ns }),
        () => autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace: ns, body: hpa }),
        (rv) => autoscaling.replaceNamespacedHorizontalPodAutoscaler({ name, namespace: ns, body: withVersion(hpa, rv) }),
      );
    } else {
      await this.optional(`delete the autoscaler of ${name}`, () => autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name, namespace: ns }));
    }
    const current = dep.spec?.replicas ?? 1;
    const want = autoscaled(config) ? Math.min(config.autoscaleMaxReplicas, Math.max(config.autoscaleMinReplicas, current)) : initialReplicas(config);
    if (want !== current) {
      const body: K8s.V1Deployment = { ...dep, spec: { ...dep.spec!, replicas: want } };
      await this.k(`scale Deployment ${name}`, () => apps.replaceNamespacedDeployment({ name, namespace: ns, body }));
    }
    const outcome = await this.waitRollout(apps, core, slotWorkload(serviceName, slot));
    if (!outcome.ok) return failed(outcome.error);
    const svcName = slotResourceName(serviceName, slot);
    const address = await this.waitAddress(core, svcName);
    if (!address) return failed({ code: 'DeployTimeout', message: `Service ${svcName} got no address within ${this.o.config.deployTimeoutSeconds} s.` });
    this.o.log?.(`Deployment ${name} resized in place: ${current} → ${want} replica(s)${autoscaled(config) ? ` (autoscale ${config.autoscaleMinReplicas}..${config.autoscaleMaxReplicas})` : ''}`);
    return { serviceName, slot, ...endpointUris(`http://${address}`), state: 'Healthy' };
  }

  /**
   * `DeployTarget.resetSlotPool` on AKS: an abandoned in-place update may have scaled the serving Deployment (or
   * rewritten its autoscaler); they go back to `config` (the record's) with the same writes as `resizeSlot`. Not
   * awaited by the caller (the request taking the service over): a failure is logged, and the next deployment or
   * update of the service writes the pool again.
   */
  resetSlotPool(serviceName: string, slot: string, config: DeployConfig): void {
    const name = slotResourceName(serviceName, slot);
    this.resizeSlot(serviceName, slot, config).then(
      (r) => {
        if (r.state === 'Failed') this.o.log?.(`the pool of ${name} was not put back to the service's size: ${r.error?.message ?? 'failed'}`);
      },
      (e: unknown) => this.o.log?.(`the pool of ${name} was not put back to the service's size: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  private writeKeys(core: K8s.CoreV1Api, serviceName: string, keys: ServiceKeys): Promise<void> {
    const secret = keysSecret(serviceName, this.ns, keys);
    return this.apply(
      `write the keys Secret of ${serviceName}`,
      () => core.readNamespacedSecret({ name: keysSecretName(serviceName), namespace: this.ns }),
      () => core.createNamespacedSecret({ namespace: this.ns, body: secret }),
      (rv) => core.replaceNamespacedSecret({ name: keysSecretName(serviceName), namespace: this.ns, body: withVersion(secret, rv) }),
    );
  }

  /**
   * Regenerated keys reach the running pods without a restart: the Secret they mount is replaced; the kubelet
   * refreshes the mounted `keys.json` (sync period + cache TTL, about 1–2 min by default) and the runtime reads it
   * again within 5 s. Only when the Secret exists (a service with auth on).
   */
  async updateKeys(serviceName: string, keys: ServiceKeys): Promise<void> {
    const { core } = await this.apis();
    const name = keysSecretName(serviceName);
    const existing = await this.optional(`read the keys Secret of ${serviceName}`, () => core.readNamespacedSecret({ name, namespace: this.ns }));
    if (!existing) return;
    const secret = keysSecret(serviceName, this.ns, keys);
    if (JSON.stringify(existing.data ?? {}) === JSON.stringify(secret.data)) return;
    await this.k(`write the keys Secret of ${serviceName}`, () => core.replaceNamespacedSecret({ name, namespace: this.ns, body: withVersion(secret, existing.metadata?.resourceVersion) }));
    this.o.log?.(`keys Secret ${name} updated`);
  }

  async switchTraffic(serviceName: string, slot: string): Promise<{ scoringUri: string; swaggerUri: string }> {
    const { core, apps } = await this.apis();
    const name = slotResourceName(serviceName, slot);
    const dep = await this.optional(`read Deployment ${name}`, () => apps.readNamespacedDeployment({ name, namespace: this.ns }));
    if (!dep) throw new AppError('SlotNotFound', `Service ${serviceName} has no slot ${slot} on AKS (Deployment ${name} in ${this.ns}); deploy it first.`, 404);
    const port = dep.spec?.template?.spec?.containers?.[0]?.ports?.[0]?.containerPort ?? scoringPort({});
    // ssl_enabled (the slot's pods serve TLS): the public Service on 443, the URI https://<ssl_cname or address>.
    const tlsHost = dep.spec?.template?.metadata?.annotations?.[TLS_HOST_ANNOTATION];
    const svc = kubeService(serviceName, this.ns, slot, { public: true, port, tls: !!tlsHost });
    await this.applyService(core, svc);
    const address = await this.waitAddress(core, svc.metadata!.name!);
    if (!address) throw new AppError('DeployTimeout', `Service ${svc.metadata!.name} got no external address within ${this.o.config.deployTimeoutSeconds} s.`, 504);
    const { scoringUri, swaggerUri } = endpointUris(tlsHost ? `https://${tlsHost === 'address' ? address : tlsHost}` : `http://${address}`);
    // Promotion (or the switch back at a rollback): a service front left from a shadow phase is removed once the
    // route no longer sends traffic to it.
    const route = await this.readRoute(serviceName);
    if (route && !routesToFront(route)) await this.removeFront(serviceName);
    return { scoringUri, swaggerUri };
  }

  /**
   * Progressive delivery (docs/azure.md, "Progressive delivery on AKS"): writes the service's Gateway API HTTPRoute
   * with `weights` (slot → percent) and a pin rule per slot, then returns the figures. With `mirror` (a shadow phase)
   * the route sends all live traffic to the service front (aks-front.ts), started first from the front's own image
   * (front-image.ts, built first when this runtime version has none) and given its routing by a signed state write to each of its pods through the API server's pod proxy: it serves from the serving
   * slot and copies `mirror.percent` of requests to `mirror.slot`, comparing the answers. Needs the Gateway
   * `mdf-gateway` in the namespace. Idempotent: the route and the front's state are written only when they differ.
   * With key or token auth, the pods' /metrics are read with the metrics key (x-mdf-metrics-key, derived from the
   * keys Secret: runtime/auth-metrics.ts), since the API server's pod proxy drops the Authorization header.
   */
  async setTrafficWeights(serviceName: string, weights: Record<string, number>, options?: { mirror?: { slot: string; percent: number; tolerance: number } }): Promise<TrafficSnapshot> {
    const mirror = options?.mirror;
    const entries = checkWeights(serviceName, weights);
    if (mirror && (!(mirror.slot in weights) || !Number.isInteger(mirror.percent) || mirror.percent < 1 || mirror.percent > 100 || !(mirror.tolerance >= 0))) {
      throw new AppError('InvalidTrafficWeights', `The shadow slot must be one of the weighted slots (${Object.keys(weights).join(', ')}), with a whole percent 1–100 and a tolerance ≥ 0 (got ${JSON.stringify(mirror).slice(0, 200)}).`, 400);
    }
    const plain = httpRoute(serviceName, this.ns, weights, this.gatewayName);
    const { core, apps, custom } = await this.apis();
    const ns = this.ns;
    const deps: Record<string, K8s.V1Deployment> = {};
    for (const slot of new Set([...Object.keys(weights), ...(mirror ? [mirror.slot] : [])])) {
      const name = slotResourceName(serviceName, slot);
      const dep = await this.optional(`read Deployment ${name}`, () => apps.readNamespacedDeployment({ name, namespace: ns }));
      if (!dep) throw new AppError('SlotNotFound', `Service ${serviceName} has no slot ${slot} on AKS (Deployment ${name} in ${ns}); deploy it first.`, 404);
      deps[slot] = dep;
    }
    const gw = this.gatewayName;
    const gateway = await this.optional(`read Gateway ${gw}`, () => custom.getNamespacedCustomObject({ group: GATEWAY_API.group, version: GATEWAY_API.version, namespace: ns, plural: GATEWAY_API.gateways, name: gw }));
    if (!gateway) {
      throw new AppError(
        'AksGatewayMissing',
        `Traffic splitting on AKS uses a Gateway API HTTPRoute attached to the Gateway "${gw}" in namespace ${ns}, which does not exist. Install a Gateway controller (e.g. Application Gateway for Containers, Istio, Envoy Gateway) and create the Gateway (docs/azure.md, "Progressive delivery on AKS").`,
        400,
      );
    }
    const existing = await this.readRoute(serviceName);
    const shown = `${entries.map(([s, w]) => `${s}=${w}%`).join(', ')}${mirror ? `, ${mirror.percent}% mirrored to ${mirror.slot} through the service front` : ''}`;
    if (!mirror) {
      if (!sameRoute(existing, plain)) await this.writeRoute(existing, plain);
      this.o.log?.(`traffic of ${serviceName}: ${shown}`);
      return this.snapshot(serviceName, plain);
    }
    const serving = [...entries].sort((x, y) => y[1] - x[1])[0][0];
    const routing: FrontRouting = {
      slots: Object.fromEntries(Object.keys(deps).map((slot) => [slot, slotServiceUrl(serviceName, ns, slot)])),
      serving,
      weights,
      mirror,
    };
    const answer = await this.ensureFront(serviceName, deps[serving], routing, existing, plain);
    const route = frontRoute(serviceName, ns, weights, frontResourceName(serviceName), gw);
    if (!sameRoute(existing, route)) await this.writeRoute(existing, route);
    this.o.log?.(`traffic of ${serviceName}: ${shown}`);
    return this.snapshot(serviceName, route, answer);
  }

  private async readRoute(serviceName: string): Promise<Partial<HTTPRouteObject> | undefined> {
    const { custom } = await this.apis();
    const name = serviceResourceName(serviceName);
    return (await this.optional(`read HTTPRoute ${name}`, () =>
      custom.getNamespacedCustomObject({ group: GATEWAY_API.group, version: GATEWAY_API.version, namespace: this.ns, plural: GATEWAY_API.routes, name }),
    )) as Partial<HTTPRouteObject> | undefined;
  }

  /** Creates the route, or replaces `existing` (its resourceVersion: a concurrent change is a 409, not lost). */
  private async writeRoute(existing: Partial<HTTPRouteObject> | undefined, route: HTTPRouteObject): Promise<void> {
    const { custom } = await this.apis();
    const name = route.metadata.name;
    const where = { group: GATEWAY_API.group, version: GATEWAY_API.version, namespace: this.ns, plural: GATEWAY_API.routes };
    if (existing) {
      await this.k(`update HTTPRoute ${name}`, () => custom.replaceNamespacedCustomObject({ ...where, name, body: withVersion(route, existing.metadata?.resourceVersion) }));
    } else {
      await this.k(`create HTTPRoute ${name}`, () => custom.createNamespacedCustomObject({ ...where, body: route }));
    }
  }

  // ------------------------------------------------------------------ service front (shadow phase)

  private frontSecrets(): NonNullable<AksTargetOptions['secrets']> {
    if (!this.o.secrets) throw new AppError('FrontSecretsMissing', "This AKS target was built without access to the services' secrets; the service front cannot be controlled.", 500);
    return this.o.secrets;
  }

  private frontImage(): FrontImageSource {
    if (!this.o.frontImage) throw new AppError('FrontImageUnavailable', "This AKS target was built without the service front's image builder; the service front cannot be created.", 500);
    return this.o.frontImage;
  }

  /** One signed admin call to one pod of the front, through the API server's pod proxy (which forwards the signature header). */
  private async frontCall(serviceName: string, pod: string, method: 'GET' | 'PUT', state?: FrontState): Promise<FrontAnswer> {
    const { kc } = await this.apis();
    const server = kc.getCurrentCluster()?.server?.replace(/\/+$/, '');
    if (!server) throw new AppError('AksCredentialsMissing', `The kubeconfig of ${this.o.config.aks.clusterName} names no API server.`, 502);
    const requestOptions: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(requestOptions);
    const key = await this.frontSecrets().frontKey(serviceName);
    const what = `The service front of ${serviceName} (pod ${pod} in ${this.ns}, through the API server's pod proxy)`;
    return callFront(`${server}${frontPodProxyPath(this.ns, pod)}`, key, method, state, Date.now, { requestOptions, what });
  }

  /** The front's pods that serve (running, container ready), by name. */
  private async frontPods(serviceName: string): Promise<Array<{ pod: string; uid: string; restarts: number }>> {
    const { core } = await this.apis();
    const pods = await this.k('list pods of the service front', () => core.listNamespacedPod({ namespace: this.ns, labelSelector: labelSelector(frontSelector(serviceName)) }));
    const out: Array<{ pod: string; uid: string; restarts: number }> = [];
    for (const p of pods.items) {
      const cs = p.status?.containerStatuses?.find((c) => c.name === AKS_FRONT_CONTAINER);
      const pod = p.metadata?.name;
      if (!pod || p.metadata?.deletionTimestamp || p.status?.phase !== 'Running' || !cs?.ready) continue;
      out.push({ pod, uid: p.metadata?.uid ?? pod, restarts: cs.restartCount ?? 0 });
    }
    return out.sort((a, b) => a.pod.localeCompare(b.pod));
  }

  /**
   * Each serving pod of the front, its state brought to `routing` where it differs (a signed PUT, that pod's
   * generation + 1). Without `routing` (a read of the figures), the pods are brought to the newest state among them
   * (the highest generation): a pod started later (a drain, a reschedule) holds the state at creation until then.
   * Idempotent: a pod already right is only read. No serving pod: `FrontUnreachable` (retryable). `check` sees the
   * pods' answers before anything is written to them.
   */
  private async syncFront(serviceName: string, routing?: FrontRouting, check?: (answers: FrontPodAnswer[]) => Promise<void>): Promise<FrontView> {
    const pods = await this.frontPods(serviceName);
    if (!pods.length) throw new AppError('FrontUnreachable', `The service front of ${serviceName} (Deployment ${frontResourceName(serviceName)} in ${this.ns}) has no serving pod.`, 502, { retryable: true });
    const answers: FrontPodAnswer[] = [];
    for (const p of pods) answers.push({ ...p, answer: await this.frontCall(serviceName, p.pod, 'GET') });
    await check?.(answers);
    const newest = answers.reduce((a, b) => (b.answer.state.generation > a.answer.state.generation ? b : a));
    const target = routing ?? routingOf(newest.answer.state);
    for (const a of answers) {
      if (sameRouting(a.answer.state, target)) continue;
      a.answer = await this.frontCall(serviceName, a.pod, 'PUT', { ...target, generation: a.answer.state.generation + 1 });
      this.o.log?.(`service front of ${serviceName}: pod ${a.pod} given the current state`);
    }
    let shadow: Record<string, ShadowTraffic> | undefined;
    for (const a of answers) {
      for (const [slot, figures] of Object.entries(a.answer.snapshot.shadow ?? {})) {
        shadow ??= {};
        shadow[slot] = shadow[slot] ? addShadowTraffic(shadow[slot], figures) : figures;
      }
    }
    return { state: answers[0].answer.state, ...(shadow ? { shadow } : {}), pods: answers };
  }

  /**
   * The front's pods' answers once they listen (retryable errors — no serving pod yet, a pod not answering yet — are
   * tried again until the deploy timeout), each brought to `routing`.
   */
  private async firstFrontAnswers(serviceName: string, routing: FrontRouting, check: (answers: FrontPodAnswer[]) => Promise<void>): Promise<FrontView> {
    let last: unknown;
    const r = await pollUntil<FrontView>(
      async () => {
        try {
          return { done: true, value: await this.syncFront(serviceName, routing, check) };
        } catch (e) {
          if (!notAnsweringYet(e)) throw e;
          last = e;
          return { done: false };
        }
      },
      { intervalMs: Math.max(this.timing.pollIntervalMs, 0), timeoutMs: this.o.config.deployTimeoutSeconds * 1000, now: this.timing.now },
    );
    if (r.timedOut) throw last instanceof Error ? last : new AppError('FrontUnreachable', `The service front of ${serviceName} did not answer within ${this.o.config.deployTimeoutSeconds} s.`, 502, { retryable: true });
    return r.value;
  }

  /**
   * Starts the service front if needed: its own image first (built when this runtime version has none: a failed build
   * leaves everything as it was, `FrontImageBuildFailed`), then Secret, Deployment, PodDisruptionBudget, Service (each written only when it
   * differs, in that order, and removed in the reverse order); waits for it, checks that it checks callers as the
   * serving slot does, and writes `routing` when the front's differs (generation + 1).
   * If the front cannot serve, the route is put back on the slots (`plain`) when it pointed at the front, the front is
   * removed, and the step fails with the reason: live traffic never goes to a front that does not work.
   */
  private async ensureFront(serviceName: string, servingDep: K8s.V1Deployment, routing: FrontRouting, route: Partial<HTTPRouteObject> | undefined, plain: HTTPRouteObject): Promise<FrontView> {
    const { core, apps, policy } = await this.apis();
    const ns = this.ns;
    const name = frontResourceName(serviceName);
    // The front's own image before anything is written: nothing has moved if its build fails.
    const image = await this.frontImage().ref();
    const auth = !!servingDep.spec?.template?.spec?.volumes?.some((v) => v.name === 'keys');
    const adminKey = await this.frontSecrets().frontKey(serviceName);

    const secret = frontAdminSecret(serviceName, ns, adminKey);
    const curSecret = await this.optional(`read Secret ${name}`, () => core.readNamespacedSecret({ name, namespace: ns }));
    if (!curSecret) await this.k(`create Secret ${name}`, () => core.createNamespacedSecret({ namespace: ns, body: secret }));
    else if (curSecret.data?.[FRONT_ADMIN_SECRET_KEY] !== secret.data![FRONT_ADMIN_SECRET_KEY]) {
      await this.k(`update Secret ${name}`, () => core.replaceNamespacedSecret({ name, namespace: ns, body: withVersion(secret, curSecret.metadata?.resourceVersion) }));
    }
    const dep = frontDeployment({ serviceName, namespace: ns, image, state: { ...routing, generation: 1 }, auth, adminKey });
    const curDep = await this.optional(`read Deployment ${name}`, () => apps.readNamespacedDeployment({ name, namespace: ns }));
    if (!curDep) await this.k(`create Deployment ${name}`, () => apps.createNamespacedDeployment({ namespace: ns, body: dep }));
    else if (frontDigestOf(curDep) !== frontDigestOf(dep)) {
      await this.k(`update Deployment ${name}`, () => apps.replaceNamespacedDeployment({ name, namespace: ns, body: withVersion(dep, curDep.metadata?.resourceVersion) }));
    }
    const curPdb = await this.optional(`read PodDisruptionBudget ${name}`, () => policy.readNamespacedPodDisruptionBudget({ name, namespace: ns }));
    if (!curPdb) await this.k(`create PodDisruptionBudget ${name}`, () => policy.createNamespacedPodDisruptionBudget({ namespace: ns, body: frontDisruptionBudget(serviceName, ns) }));
    const curSvc = await this.optional(`read Service ${name}`, () => core.readNamespacedService({ name, namespace: ns }));
    if (!curSvc) await this.k(`create Service ${name}`, () => core.createNamespacedService({ namespace: ns, body: frontService(serviceName, ns) }));

    const giveUp = async (why: string): Promise<never> => {
      if (routesToFront(route)) await this.writeRoute(route, plain);
      await this.removeFront(serviceName);
      throw new AppError('FrontStartFailed', `The service front of ${serviceName} (Deployment ${name}, image ${image}) cannot serve the shadow phase: ${why} It was removed; the serving version keeps serving.`, 502, { retryable: false });
    };
    const outcome = await this.waitRollout(apps, core, frontWorkload(serviceName));
    if (!outcome.ok) return giveUp(`${outcome.error.code}: ${outcome.error.message}`);
    const expected = auth ? ['keys', 'token'] : ['none'];
    return this.firstFrontAnswers(serviceName, routing, async (answers) => {
      for (const { pod, answer } of answers) {
        if (answer.auth && expected.includes(answer.auth)) continue;
        await giveUp(
          answer.auth
            ? `its pod ${pod} checks ${answer.auth} where the serving slot checks ${auth ? 'keys or tokens' : 'nothing'}.`
            : `its pod ${pod} does not say what it checks of callers: the image does not hold this release's front (was ${FRONT_IMAGE_REPOSITORY} overwritten in the registry outside the app?).`,
        );
      }
    });
  }

  /**
   * The front's figures for a snapshot; when the front does not answer because its pod cannot pull its image (deleted
   * from the registry, say) the error says so and what to do (the rollout then rolls back: its route leaves the front).
   */
  private async frontFigures(serviceName: string): Promise<FrontView> {
    try {
      return await this.syncFront(serviceName);
    } catch (e) {
      if (!notAnsweringYet(e)) throw e;
      const { core } = await this.apis();
      const pods = await this.optional('list pods of the service front', () => core.listNamespacedPod({ namespace: this.ns, labelSelector: labelSelector(frontSelector(serviceName)) }));
      for (const pod of pods?.items ?? []) {
        for (const cs of pod.status?.containerStatuses ?? []) {
          const reason = cs.state?.waiting?.reason ?? '';
          if (IMAGE_PULL.test(reason)) {
            throw new AppError(
              'FrontImageUnavailable',
              redactSecrets(
                `The service front of ${serviceName} cannot start: pod ${pod.metadata?.name} cannot pull ${cs.image} (${reason}: ${cs.state?.waiting?.message ?? ''}). The rollout rolls back (its route goes back to the slots, the front is removed). The front runs its own image (${FRONT_IMAGE_REPOSITORY}, which no image deletion of the app reaches): check that the cluster's kubelet identity still has AcrPull on the registry and that the image was not removed from the registry by hand, then deploy again.`,
              ),
              502,
              { retryable: false },
            );
          }
        }
      }
      throw e;
    }
  }

  /** Removes the service front (Service, Deployment, PodDisruptionBudget, then Secret: the Secret, created first, marks a front). */
  private async removeFront(serviceName: string): Promise<void> {
    const { core, apps, policy } = await this.apis();
    const name = frontResourceName(serviceName);
    const ns = this.ns;
    const secret = await this.optional(`read Secret ${name}`, () => core.readNamespacedSecret({ name, namespace: ns }));
    if (!secret) return;
    await this.optional(`delete Service ${name}`, () => core.deleteNamespacedService({ name, namespace: ns }));
    await this.optional(`delete Deployment ${name}`, () => apps.deleteNamespacedDeployment({ name, namespace: ns, propagationPolicy: 'Foreground' }));
    await this.optional(`delete PodDisruptionBudget ${name}`, () => policy.deleteNamespacedPodDisruptionBudget({ name, namespace: ns }));
    await this.optional(`delete Secret ${name}`, () => core.deleteNamespacedSecret({ name, namespace: ns }));
    this.o.log?.(`service front ${name} of ${serviceName} removed`);
  }

  /** The per-slot figures (each pod's runtime /metrics, summed per slot), the weights in force and, in a shadow phase, the front's comparison. */
  async trafficSnapshot(serviceName: string): Promise<TrafficSnapshot> {
    return this.snapshot(serviceName, await this.readRoute(serviceName));
  }

  private get gatewayName(): string {
    return this.o.gatewayName ?? DEFAULT_GATEWAY_NAME;
  }

  /**
   * Figures: the weights the route applies (or, when it sends live traffic to the service front, the front's state,
   * mirror and shadow comparison), and each weighted (or mirrored) slot's pods' /metrics. The epoch is the set of
   * pods read, and each front pod's identity, restarts and own epoch (a restarted or replaced front pod counts from zero).
   */
  private async snapshot(serviceName: string, route: Partial<HTTPRouteObject> | undefined, front?: FrontView): Promise<TrafficSnapshot> {
    const { core } = await this.apis();
    const answer = routesToFront(route) ? (front ?? (await this.frontFigures(serviceName))) : undefined;
    const st = answer?.state;
    const weights = st ? st.weights : routeWeights(serviceName, route);
    const names = [...new Set([...Object.keys(weights), ...(st?.mirror ? [st.mirror.slot] : [])])];
    const slots: Record<string, SlotTraffic> = {};
    // The epoch is the front pods' (their shadow counters are summed); slot pods are parts, each diffed on its own.
    const seen: Array<{ uid: string; restarts: number }> = (answer?.pods ?? []).map((p) => ({ uid: `front:${p.uid}:${p.answer.snapshot.epoch}`, restarts: p.restarts }));
    const parts: NonNullable<TrafficSnapshot['parts']> = {};
    const proxyOptions = await this.metricsProxyOptions(core, serviceName);
    for (const slot of names) {
      const pods = await this.k(`list pods of ${serviceName}/${slot}`, () => core.listNamespacedPod({ namespace: this.ns, labelSelector: labelSelector(slotSelector(serviceName, slot)) }));
      let sum: SlotTraffic = { requests: 0, errors: 0, latency: {} };
      for (const pod of pods.items) {
        const podName = pod.metadata?.name;
        const cs = pod.status?.containerStatuses?.find((c) => c.name === AKS_CONTAINER);
        // Only pods that serve (running and ready) are read; each is a part whose counters start over with a restart.
        if (!podName || pod.status?.phase !== 'Running' || !cs?.ready) continue;
        const port = pod.spec?.containers?.find((c) => c.name === AKS_CONTAINER)?.ports?.[0]?.containerPort ?? scoringPort({});
        const text = await this.k(`read /metrics of pod ${podName}`, () => core.connectGetNamespacedPodProxyWithPath({ name: `${podName}:${port}`, namespace: this.ns, path: 'metrics' }, proxyOptions));
        const body = String(text ?? '');
        if (body.length > MAX_METRICS_BYTES) throw new AppError('MetricsTooLarge', `Pod ${podName}'s /metrics answer is larger than ${MAX_METRICS_BYTES} bytes.`, 502);
        const traffic = slotTrafficFromMetrics(body);
        parts[`${pod.metadata?.uid ?? podName}:${cs.restartCount ?? 0}`] = { slot, traffic };
        sum = addSlotTraffic(sum, traffic);
      }
      slots[slot] = sum;
    }
    const serving = st?.serving ?? route?.metadata?.annotations?.[ROUTE_SERVING_ANNOTATION];
    return {
      epoch: podsEpoch(seen),
      weights,
      ...(serving ? { serving } : {}),
      ...(st?.mirror ? { mirror: { slot: st.mirror.slot, percent: st.mirror.percent } } : {}),
      slots,
      parts,
      ...(answer?.shadow ? { shadow: answer.shadow } : {}),
    };
  }

  /**
   * A service with key or token auth: the metrics key header (runtime/auth-metrics.ts) on each pod proxy call, derived
   * from the keys Secret the pods mount (one value per key, so a rotation of either key never locks the gates out).
   */
  private async metricsProxyOptions(core: K8s.CoreV1Api, serviceName: string): Promise<K8s.ConfigurationOptions | undefined> {
    const secret = await this.optional('read the keys Secret', () => core.readNamespacedSecret({ name: keysSecretName(serviceName), namespace: this.ns }));
    const file = secret?.data?.['keys.json'];
    if (!secret) return undefined;
    let value: string | undefined;
    try {
      value = file && file.length <= MAX_KEYS_SECRET_CHARS ? metricsHeaderValue(JSON.parse(Buffer.from(file, 'base64').toString('utf8'))) : undefined;
    } catch {
      value = undefined;
    }
    if (!value) throw new AppError('RolloutNeedsMetrics', `The keys Secret ${keysSecretName(serviceName)} of ${serviceName} holds no valid keys.json: the gates cannot read the pods' /metrics. Regenerate the service's keys.`, 502);
    const header = value;
    const { Observable } = this.k8s;
    const pass = <T>(v: T) => new Observable(Promise.resolve(v));
    return { middleware: [{ pre: (ctx) => (ctx.setHeaderParam(METRICS_KEY_HEADER, header), pass(ctx)), post: pass }], middlewareMergeStrategy: 'append' };
  }

  async deleteSlot(serviceName: string, slot: string): Promise<void> {
    const { core, apps, autoscaling } = await this.apis();
    const name = slotResourceName(serviceName, slot);
    const ns = this.ns;
    // A rollout's HTTPRoute names the slot: take it out first (its weight is 0 by then: rolled back, or retired after
    // the promotion), so the route never points at a deleted Service. A route still on the service front (a shadow
    // phase whose rollback did not reach the route) goes back to the slots, then the front is removed.
    const route = await this.readRoute(serviceName);
    const weights = routeWeights(serviceName, route);
    let viaFront = routesToFront(route);
    if (slot in weights) {
      const rest = Object.fromEntries(Object.entries(weights).filter(([s]) => s !== slot));
      if (Object.values(rest).reduce((a, b) => a + b, 0) === 100) {
        await this.writeRoute(route, httpRoute(serviceName, ns, rest, this.gatewayName));
        viaFront = false;
      } else {
        this.o.log?.(`HTTPRoute ${serviceResourceName(serviceName)} still sends ${weights[slot]} % to ${slot}; left as is (the rollout sets the weights)`);
      }
    }
    if (route && !viaFront) await this.removeFront(serviceName);
    const tlsSecretOfSlot = mountedTlsSecret(await this.optional(`read Deployment ${name}`, () => apps.readNamespacedDeployment({ name, namespace: ns })));
    await this.optional(`delete the autoscaler ${name}`, () => autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name, namespace: ns }));
    await this.optional(`delete Service ${name}`, () => core.deleteNamespacedService({ name, namespace: ns }));
    await this.optional(`delete Deployment ${name}`, () => apps.deleteNamespacedDeployment({ name, namespace: ns, propagationPolicy: 'Foreground' }));
    if (tlsSecretOfSlot) {
      // The slot's TLS Secret, unless another slot (not being deleted) mounts the same certificate.
      const selector = labelSelector({ [TAGS.service]: serviceResourceName(serviceName), [TAGS.managedBy]: MANAGED_BY });
      const others = await this.k('list Deployments', () => apps.listNamespacedDeployment({ namespace: ns, labelSelector: selector }));
      const inUse = others.items.some((d) => d.metadata?.name !== name && !d.metadata?.deletionTimestamp && mountedTlsSecret(d) === tlsSecretOfSlot);
      if (!inUse) await this.optional('delete the TLS Secret', () => core.deleteNamespacedSecret({ name: tlsSecretOfSlot, namespace: ns }));
    }
  }

  async deleteService(serviceName: string): Promise<void> {
    const { core, apps, autoscaling } = await this.apis();
    const ns = this.ns;
    const selector = labelSelector({ [TAGS.service]: serviceResourceName(serviceName), [TAGS.managedBy]: 'model-deploy-flow' });
    const hpas = await this.k('list autoscalers', () => autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: ns, labelSelector: selector }));
    for (const h of hpas.items) await this.optional('delete an autoscaler', () => autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name: h.metadata!.name!, namespace: ns }));
    const svcs = await this.k('list Services', () => core.listNamespacedService({ namespace: ns, labelSelector: selector }));
    for (const s of svcs.items) await this.optional('delete a Service', () => core.deleteNamespacedService({ name: s.metadata!.name!, namespace: ns }));
    const deps = await this.k('list Deployments', () => apps.listNamespacedDeployment({ namespace: ns, labelSelector: selector }));
    for (const d of deps.items) await this.optional('delete a Deployment', () => apps.deleteNamespacedDeployment({ name: d.metadata!.name!, namespace: ns, propagationPolicy: 'Foreground' }));
    await this.optional('delete the keys Secret', () => core.deleteNamespacedSecret({ name: keysSecretName(serviceName), namespace: ns }));
    // The service front's PodDisruptionBudget and Secret (its Deployment and Service carry the service's label: deleted above).
    const { policy } = await this.apis();
    await this.optional('delete the PodDisruptionBudget of the service front', () => policy.deleteNamespacedPodDisruptionBudget({ name: frontResourceName(serviceName), namespace: ns }));
    await this.optional('delete the Secret of the service front', () => core.deleteNamespacedSecret({ name: frontResourceName(serviceName), namespace: ns }));
    // The TLS Secrets its slots mounted, and the one Secret of earlier releases.
    const tlsSecrets = new Set([...deps.items.map(mountedTlsSecret).filter((n): n is string => !!n), legacyTlsSecretName(serviceName)]);
    for (const s of tlsSecrets) await this.optional('delete a TLS Secret', () => core.deleteNamespacedSecret({ name: s, namespace: ns }));
    // The progressive-delivery route, if a rollout made one (404 too when the cluster has no Gateway API).
    const { custom } = await this.apis();
    await this.optional('delete the HTTPRoute', () =>
      custom.deleteNamespacedCustomObject({ group: GATEWAY_API.group, version: GATEWAY_API.version, namespace: ns, plural: GATEWAY_API.routes, name: serviceResourceName(serviceName) }),
    );
  }

  /** The last `lines` lines of the slot's newest pods (up to `AKS_LOG_PODS`), for the logs route and failure reasons. */
  async logTail(serviceName: string, slot: string, lines: number): Promise<string> {
    const { core } = await this.apis();
    return this.podLogTail(core, slotWorkload(serviceName, slot), lines, AKS_LOG_PODS);
  }

  // ------------------------------------------------------------------ helpers

  private async apply<T extends { metadata?: K8s.V1ObjectMeta }>(
    operation: string,
    read: () => Promise<T>,
    create: () => Promise<unknown>,
    replace: (resourceVersion: string | undefined) => Promise<unknown>,
  ): Promise<void> {
    const existing = await this.optional(operation, read);
    if (existing) await this.k(operation, () => replace(existing.metadata?.resourceVersion));
    else await this.k(operation, create);
  }

  /** Create or replace a Service, keeping the cluster IP the API server allocated (immutable). */
  private async applyService(core: K8s.CoreV1Api, svc: K8s.V1Service): Promise<void> {
    const name = svc.metadata!.name!;
    const existing = await this.optional(`read Service ${name}`, () => core.readNamespacedService({ name, namespace: this.ns }));
    if (!existing) {
      await this.k(`create Service ${name}`, () => core.createNamespacedService({ namespace: this.ns, body: svc }));
      return;
    }
    const body: K8s.V1Service = {
      ...withVersion(svc, existing.metadata?.resourceVersion),
      spec: { ...svc.spec, clusterIP: existing.spec?.clusterIP, clusterIPs: existing.spec?.clusterIPs },
    };
    await this.k(`update Service ${name}`, () => core.replaceNamespacedService({ name, namespace: this.ns, body }));
  }

  /** Waits for a rollout (a slot's or the front's): all replicas updated and available, or a pod failure, or the deadline. */
  private async waitRollout(apps: K8s.AppsV1Api, core: K8s.CoreV1Api, w: Workload): Promise<Outcome> {
    const name = w.name;
    const crashAfter = this.o.crashLoopRestarts ?? 3;
    const r = await pollUntil<Outcome>(
      async () => {
        const d = await this.k(`read Deployment ${name}`, () => apps.readNamespacedDeployment({ name, namespace: this.ns }));
        const want = d.spec?.replicas ?? 1;
        const st = d.status ?? {};
        const progressing = st.conditions?.find((c) => c.type === 'Progressing');
        if (progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded') {
          return { done: true, value: await this.failure('DeployTimeout', `Deployment ${name} exceeded its progress deadline.`, core, w) };
        }
        if ((st.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) && (st.updatedReplicas ?? 0) >= want && (st.availableReplicas ?? 0) >= want && (st.unavailableReplicas ?? 0) === 0) {
          return { done: true, value: { ok: true } };
        }
        const pods = await this.k(`list pods of ${name}`, () => core.listNamespacedPod({ namespace: this.ns, labelSelector: labelSelector(w.selector) }));
        for (const pod of pods.items) {
          for (const cs of pod.status?.containerStatuses ?? []) {
            const reason = cs.state?.waiting?.reason ?? '';
            if (IMAGE_PULL.test(reason)) {
              return {
                done: true,
                value: { ok: false, error: { code: 'ImagePullFailed', message: redactSecrets(`Pod ${pod.metadata?.name} cannot pull ${cs.image}: ${cs.state?.waiting?.message ?? reason}. Check the image and that the cluster's kubelet identity has AcrPull.`) } },
              };
            }
            if (POD_FAILURE.test(reason) || (cs.restartCount ?? 0) >= crashAfter) {
              const exit = cs.lastState?.terminated?.exitCode;
              return {
                done: true,
                value: await this.failure('ContainerCrashLoop', `Pod ${pod.metadata?.name} keeps crashing (${cs.restartCount ?? 0} restarts${exit !== undefined ? `, exit code ${exit}` : ''}${reason ? `, ${reason}` : ''}).`, core, w),
              };
            }
          }
        }
        return { done: false };
      },
      { intervalMs: this.timing.pollIntervalMs, timeoutMs: this.o.config.deployTimeoutSeconds * 1000, now: this.timing.now },
    );
    if (!r.timedOut) return r.value;
    return this.failure('DeployTimeout', `Deployment ${name} did not become available within ${this.o.config.deployTimeoutSeconds} s.`, core, w);
  }

  private async failure(code: string, message: string, core: K8s.CoreV1Api, w: Workload): Promise<Outcome> {
    const tail = await this.podLogTail(core, w, 30).catch((e) => {
      this.o.log?.(`log of ${w.what} unavailable: ${(e as Error).message}`);
      return '';
    });
    return { ok: false, error: { code, message: redactSecrets(`${message} Last log lines:\n${tail || '(no output)'}`) } };
  }

  /**
   * Log tail of the slot's pods, newest first, at most `maxPods` of them (previous container instance when one
   * crashed). One pod: its lines as they are; several: each line prefixed `[pod <name>]`, at most `lines` in all.
   */
  private async podLogTail(core: K8s.CoreV1Api, w: Workload, lines: number, maxPods = 1): Promise<string> {
    const pods = await this.optional('list pods', () => core.listNamespacedPod({ namespace: this.ns, labelSelector: labelSelector(w.selector) }));
    const newest = [...(pods?.items ?? [])]
      .filter((p) => p.metadata?.name)
      .sort((a, b) => String(b.metadata?.creationTimestamp ?? '').localeCompare(String(a.metadata?.creationTimestamp ?? '')))
      .slice(0, Math.max(1, maxPods));
    const out: string[] = [];
    for (const pod of newest.reverse()) {
      const podName = pod.metadata!.name!;
      const crashed = (pod.status?.containerStatuses?.[0]?.restartCount ?? 0) > 0 && !pod.status?.containerStatuses?.[0]?.ready;
      const text = await this.optional(`read the log of pod ${podName}`, () =>
        core.readNamespacedPodLog({ name: podName, namespace: this.ns, container: w.container, tailLines: lines, previous: crashed, limitBytes: MAX_POD_LOG_BYTES }),
      );
      const raw = String(text ?? '');
      const podLines = (raw.length > MAX_POD_LOG_BYTES ? raw.slice(-MAX_POD_LOG_BYTES) : raw).replace(/\s+$/, '');
      if (!podLines) continue;
      out.push(...(newest.length > 1 ? podLines.split('\n').map((l) => `[pod ${podName}] ${l}`) : [podLines]));
    }
    return redactSecrets(newest.length > 1 ? out.slice(-lines).join('\n') : out.join('\n'));
  }

  /** External address (`ip` or hostname) of a LoadBalancer Service, or the cluster IP of a ClusterIP one. */
  private async waitAddress(core: K8s.CoreV1Api, name: string): Promise<string | undefined> {
    const r = await pollUntil<string>(
      async () => {
        const s = await this.k(`read Service ${name}`, () => core.readNamespacedService({ name, namespace: this.ns }));
        if (s.spec?.type !== 'LoadBalancer') return s.spec?.clusterIP ? { done: true, value: `${s.spec.clusterIP}:${AKS_SERVICE_PORT}` } : { done: false };
        const ing = s.status?.loadBalancer?.ingress?.[0];
        const addr = ing?.ip ?? ing?.hostname;
        return addr ? { done: true, value: addr } : { done: false };
      },
      { intervalMs: this.timing.pollIntervalMs, timeoutMs: this.o.config.deployTimeoutSeconds * 1000, now: this.timing.now },
    );
    return r.timedOut ? undefined : r.value;
  }
}

function withVersion<T extends { metadata?: K8s.V1ObjectMeta }>(obj: T, resourceVersion: string | undefined): T {
  return { ...obj, metadata: { ...obj.metadata, ...(resourceVersion ? { resourceVersion } : {}) } };
}
