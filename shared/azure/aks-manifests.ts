/**
 * Kubernetes objects of an AKS service, mapped from the AML AKS deploy configuration:
 * - Secret `<service>-keys` (primary/secondary key; referenced by the pods, never inlined);
 * - Deployment `<service>-<slot>` per slot: image, cpu/memory requests and limits (`cpu_cores_limit`,
 *   `memory_gb_limit`), readiness/liveness on `GET /` (AML probe settings: `period_seconds`, …),
 *   rolling update (maxUnavailable 0), replicas = num_replicas, or autoscale_min_replicas (raised by the seed's
 *   formula when the configuration gives a target rate);
 * - HorizontalPodAutoscaler (autoscaling/v2) per slot when autoscale is on: min/max replicas and target
 *   utilization, scale-down stabilised over 60 s (the seed: removing replicas takes about a minute);
 * - Service `<service>-<slot>` (direct URI for the smoke test) and Service `<service>` (public) whose selector
 *   points at the active slot.
 */
import type * as K8s from '@kubernetes/client-node';
import { planReplicas } from '../../runtime';
import { fromRuntime } from '../errors';
import { createHash } from 'node:crypto';
import type { DeployConfig, DeployRequest } from '../seams';
import type { TlsMaterial, TlsSettings } from '../tls';
import { dnsLabel, MANAGED_BY, serviceResourceName, slotResourceName, TAGS } from './names';
import { RUNTIME_ENV, runtimeSettings, scoringPort } from './runtime-env';
import { observabilityEnv } from '../targets/observability-env';

export const AKS_CONTAINER = 'model';
/** Port the Services listen on (the runtime's port is the target port). */
export const AKS_SERVICE_PORT = 80;

export function keysSecretName(serviceName: string): string {
  return `${serviceResourceName(serviceName).slice(0, 58)}-keys`;
}

/**
 * The TLS Secret (`kubernetes.io/tls`: `tls.crt`, `tls.key`) of one certificate and key of a service, mounted by the
 * pods of the slots that serve them: named by the digest of its content (`<service>-tls-<16 hex>`) and immutable, so
 * the slots of a blue/green with a new certificate each keep theirs (an old-slot pod that restarts loads the old
 * certificate, a rollback's pod template still names its Secret). Secrets no Deployment names any more are deleted
 * when a slot is retired and with the service (AksTarget). Without material (`plan`): the digest of the references.
 */
export function tlsSecretName(serviceName: string, tls: TlsMaterial | TlsSettings): string {
  const content = 'cert' in tls && typeof tls.cert === 'string' ? `${tls.cert}\n${(tls as TlsMaterial).key}` : JSON.stringify(tls);
  return `${serviceResourceName(serviceName).slice(0, 42)}-tls-${createHash('sha256').update(content).digest('hex').slice(0, 16)}`;
}

/** The name of the TLS Secret of releases before Secrets were named by content (one per service); deleted with it. */
export function legacyTlsSecretName(serviceName: string): string {
  return `${serviceResourceName(serviceName).slice(0, 58)}-tls`;
}

/** The TLS Secret a Deployment's pods mount (undefined without TLS). */
export function mountedTlsSecret(d: K8s.V1Deployment | undefined): string | undefined {
  return d?.spec?.template?.spec?.volumes?.find((v) => v.name === 'tls')?.secret?.secretName;
}

/** Where the TLS Secret is mounted in the scoring container (the runtime's `MDF_TLS_CERT_FILE` / `MDF_TLS_KEY_FILE`). */
export const AKS_TLS_MOUNT = '/var/run/secrets/mdf-tls';
/** Port of the Services of a service with `ssl_enabled` (https://<address>/score). */
export const AKS_TLS_SERVICE_PORT = 443;
/**
 * Pod template annotations of a TLS slot: the certificate's digest (a new certificate rolls the pods, which read it
 * at start) and the public host name (`ssl_cname`, else the Service's address: `address`), read back at the switch.
 */
export const TLS_DIGEST_ANNOTATION = 'model-deploy-flow/tls-digest';
export const TLS_HOST_ANNOTATION = 'model-deploy-flow/tls-host';

/**
 * The TLS Secret of a service: the certificate chain and key the deploy step read and checked (shared/tls.ts),
 * type `kubernetes.io/tls`; referenced by the pods as a volume, never inlined in the Deployment.
 */
export function tlsSecret(serviceName: string, namespace: string, tls: TlsMaterial): K8s.V1Secret {
  const b64 = (v: string) => Buffer.from(v, 'utf8').toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: tlsSecretName(serviceName, tls), namespace, labels: serviceLabels(serviceName) },
    type: 'kubernetes.io/tls',
    immutable: true,
    data: { 'tls.crt': b64(tls.cert), 'tls.key': b64(tls.key) },
  };
}

export function serviceLabels(serviceName: string): Record<string, string> {
  return { [TAGS.managedBy]: MANAGED_BY, [TAGS.service]: serviceResourceName(serviceName) };
}

export function slotSelector(serviceName: string, slot: string): Record<string, string> {
  return { [TAGS.service]: serviceResourceName(serviceName), [TAGS.slot]: dnsLabel(slot) };
}

/** `label=value,label=value` for list calls. */
export function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** 0.1 cores → `100m`; 1.5 GB → `1536Mi`. */
export function cpuQuantity(cores: number): string {
  return `${Math.max(1, Math.round(cores * 1000))}m`;
}
export function memoryQuantity(gb: number): string {
  return `${Math.max(1, Math.round(gb * 1024))}Mi`;
}

/** Initial replicas: fixed count, or the autoscale minimum raised by the seed's formula when a rate is given. */
export function initialReplicas(config: DeployConfig): number {
  if (config.numReplicas !== undefined) return config.numReplicas;
  const rps = config.extra?.targetRps;
  const secs = config.extra?.requestSeconds;
  if (typeof rps === 'number' && typeof secs === 'number') {
    return fromRuntime(() =>
      planReplicas({
        targetRps: rps,
        requestSeconds: secs,
        targetUtilization: config.autoscaleTargetUtilization,
        maxConcurrentPerReplica: config.replicaMaxConcurrentRequests,
        minReplicas: config.autoscaleMinReplicas,
        maxReplicas: config.autoscaleMaxReplicas,
      }),
    );
  }
  return config.autoscaleMinReplicas;
}

export function autoscaled(config: DeployConfig): boolean {
  return config.numReplicas === undefined && config.autoscaleEnabled;
}

/** Where the keys Secret is mounted in the scoring container; the runtime reads `keys.json` there again every 5 s. */
export const AKS_KEYS_MOUNT = '/var/run/secrets/mdf-keys';
export const AKS_KEYS_FILE = `${AKS_KEYS_MOUNT}/keys.json`;

/**
 * The keys Secret: `keys.json` (what the runtime reads, `{"primaryKey","secondaryKey"}`) plus each key on its own.
 * Pods mount it as a volume (never env: env values cannot change in a running pod), so a regenerated key reaches
 * the running replicas when the kubelet refreshes the mount (its sync period, 1 min by default, plus its cache TTL).
 */
export function keysSecret(serviceName: string, namespace: string, keys: { primaryKey: string; secondaryKey: string; tokenSecret?: string }): K8s.V1Secret {
  // Token auth: the runtime checks tokens signed with the service's token secret (runtime/auth-token.ts).
  const file = keys.tokenSecret ? { tokenSecret: keys.tokenSecret, service: serviceName } : { primaryKey: keys.primaryKey, secondaryKey: keys.secondaryKey };
  const b64 = (v: string) => Buffer.from(v, 'utf8').toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: keysSecretName(serviceName), namespace, labels: serviceLabels(serviceName) },
    type: 'Opaque',
    data: {
      'keys.json': b64(JSON.stringify(file)),
      primaryKey: b64(keys.primaryKey),
      secondaryKey: b64(keys.secondaryKey),
    },
  };
}

export function slotDeployment(request: DeployRequest, namespace: string, modelDataUrl?: string): K8s.V1Deployment {
  const { serviceName, slot, config } = request;
  const port = scoringPort(config);
  const labels = { ...serviceLabels(serviceName), ...slotSelector(serviceName, slot), [TAGS.image]: `${request.image.name}-${request.image.version}` };
  const tls = config.tls;
  const probe = (initialDelaySeconds: number, periodSeconds: number): K8s.V1Probe => ({
    httpGet: { path: '/', port, ...(tls ? { scheme: 'HTTPS' } : {}) },
    initialDelaySeconds,
    periodSeconds,
    timeoutSeconds: 5,
    failureThreshold: 3,
  });
  // AML probe settings: the liveness probe's timing and failure threshold; success_threshold goes to the readiness
  // probe (Kubernetes refuses any value but 1 on a liveness probe).
  const p = config.probe ?? {};
  const liveness: K8s.V1Probe = {
    ...probe(p.initialDelaySeconds ?? 30, p.periodSeconds ?? 10),
    ...(p.timeoutSeconds !== undefined ? { timeoutSeconds: p.timeoutSeconds } : {}),
    ...(p.failureThreshold !== undefined ? { failureThreshold: p.failureThreshold } : {}),
  };
  const readiness: K8s.V1Probe = { ...probe(5, 5), ...(p.successThreshold !== undefined ? { successThreshold: p.successThreshold } : {}) };
  const env: K8s.V1EnvVar[] = [
    ...runtimeSettings(config),
    // collect_model_data writes with the pod's identity (workload identity): the container URL carries no SAS.
    ...observabilityEnv(config, { serviceName: request.serviceName, slot: request.slot }, modelDataUrl),
  ].map(([name, value]) => ({ name, value }));
  const auth = config.authEnabled || !!config.tokenAuthEnabled;
  if (auth) env.push({ name: RUNTIME_ENV.keysFile, value: AKS_KEYS_FILE });
  // ssl_enabled: the pods terminate TLS with the service's TLS Secret (the variables name the files, never the PEM).
  if (tls) env.push({ name: RUNTIME_ENV.tlsCertFile, value: `${AKS_TLS_MOUNT}/tls.crt` }, { name: RUNTIME_ENV.tlsKeyFile, value: `${AKS_TLS_MOUNT}/tls.key` });
  const mounts: K8s.V1VolumeMount[] = [
    ...(auth ? [{ name: 'keys', mountPath: AKS_KEYS_MOUNT, readOnly: true }] : []),
    ...(tls ? [{ name: 'tls', mountPath: AKS_TLS_MOUNT, readOnly: true }] : []),
  ];
  const volumes: K8s.V1Volume[] = [
    ...(auth ? [{ name: 'keys', secret: { secretName: keysSecretName(serviceName), items: [{ key: 'keys.json', path: 'keys.json' }], defaultMode: 0o440 } }] : []),
    ...(tls ? [{ name: 'tls', secret: { secretName: tlsSecretName(serviceName, request.tls ?? tls), defaultMode: 0o440 } }] : []),
  ];
  const annotations: Record<string, string> = tls
    ? {
        [TLS_HOST_ANNOTATION]: tls.cname ?? 'address',
        // What the pods were started with (the PEM read by the deploy step; `plan` has none: the references then).
        [TLS_DIGEST_ANNOTATION]: createHash('sha256').update(request.tls ? request.tls.cert : JSON.stringify(tls)).digest('hex').slice(0, 32),
      }
    : {};
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: slotResourceName(serviceName, slot), namespace, labels },
    spec: {
      replicas: initialReplicas(config),
      selector: { matchLabels: slotSelector(serviceName, slot) },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      progressDeadlineSeconds: 600,
      template: {
        metadata: { labels, ...(tls ? { annotations } : {}) },
        spec: {
          // The runtime never calls the Kubernetes API: no service account token in the pods that run user code,
          // whichever service account they run as (the namespace's default one without REPLICA_IDENTITY_*).
          automountServiceAccountToken: false,
          containers: [
            {
              name: AKS_CONTAINER,
              image: request.image.imageRef,
              ports: [{ name: tls ? 'https' : 'http', containerPort: port }],
              env,
              resources: {
                requests: { cpu: cpuQuantity(config.cpuCores), memory: memoryQuantity(config.memoryGb) },
                // cpu_cores_limit / memory_gb_limit (AML); without them no cpu limit and memory limited to the request.
                limits: {
                  ...(config.cpuCoresLimit !== undefined ? { cpu: cpuQuantity(config.cpuCoresLimit) } : {}),
                  memory: memoryQuantity(config.memoryGbLimit ?? config.memoryGb),
                },
              },
              readinessProbe: readiness,
              livenessProbe: liveness,
              ...(mounts.length ? { volumeMounts: mounts } : {}),
            },
          ],
          ...(volumes.length ? { volumes } : {}),
        },
      },
    },
  };
}

export function slotAutoscaler(request: Pick<DeployRequest, 'serviceName' | 'slot' | 'config'>, namespace: string): K8s.V2HorizontalPodAutoscaler {
  const { serviceName, slot, config } = request;
  const name = slotResourceName(serviceName, slot);
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name, namespace, labels: { ...serviceLabels(serviceName), ...slotSelector(serviceName, slot) } },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      minReplicas: config.autoscaleMinReplicas,
      maxReplicas: config.autoscaleMaxReplicas,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: config.autoscaleTargetUtilization } } }],
      behavior: {
        scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Percent', value: 100, periodSeconds: Math.max(1, config.autoscaleRefreshSeconds) }] },
        scaleDown: { stabilizationWindowSeconds: 60 },
      },
    },
  };
}

/** A LoadBalancer (or ClusterIP) Service in front of one slot (`slot` given) or the active slot (public). */
export function kubeService(
  serviceName: string,
  namespace: string,
  selectSlot: string,
  opts: { public: boolean; port: number; type?: 'LoadBalancer' | 'ClusterIP'; tls?: boolean },
): K8s.V1Service {
  const name = opts.public ? serviceResourceName(serviceName) : slotResourceName(serviceName, selectSlot);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace,
      labels: { ...serviceLabels(serviceName), ...(opts.public ? { [TAGS.active]: dnsLabel(selectSlot) } : slotSelector(serviceName, selectSlot)) },
    },
    spec: {
      type: opts.type ?? 'LoadBalancer',
      selector: slotSelector(serviceName, selectSlot),
      // ssl_enabled: 443 passed through to the pods, which terminate TLS (an L4 load balancer does not).
      ports: [opts.tls ? { name: 'https', port: AKS_TLS_SERVICE_PORT, targetPort: opts.port, protocol: 'TCP' } : { name: 'http', port: AKS_SERVICE_PORT, targetPort: opts.port, protocol: 'TCP' }],
    },
  };
}
