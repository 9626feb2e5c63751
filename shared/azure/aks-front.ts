/**
 * The service front on AKS, for a rollout's shadow phase (docs/azure.md, "Progressive delivery on AKS"): the
 * Gateway API cannot compare a mirrored request's answer (its RequestMirror filter discards it), so during the
 * shadow phase the service's HTTPRoute sends all live traffic to the service's own front — the runtime's
 * `ServiceFront` (runtime/front.ts, the same code as the local and ACI fronts) run by `dist/runtime/front-cli.js`
 * from the front's own image (front-image.ts, `mdf-system/front:<n>`, the same as the ACI front's) — which serves every request from the serving slot's Service and copies
 * `mirror.percent` of them to the new slot's Service, comparing the answers off the client's path.
 *
 * Objects (all labelled with the service, so `deleteService` finds them):
 * - Secret `<service>-front`: the front's admin signing key (derived from the service's own front secret, never
 *   the token secret that token-auth slots hold: shared/azure/index.ts `frontSecrets`), given to the container as an env value from the Secret;
 * - Deployment `<service>-front`: two replicas spread over nodes (a node drain never takes both: with the
 *   PodDisruptionBudget below), the front's own image with the command `node /var/azureml-app/app/dist/runtime/front-cli.js`, the keys Secret
 *   mounted as the slots mount it (`MDF_KEYS_FILE`: key or token auth, reloaded), an emptyDir for its saved state, a
 *   TCP readiness probe (its `GET /` is the serving slot's liveness), no service account token;
 * - PodDisruptionBudget `<service>-front`: minAvailable 1, so a voluntary eviction (a node drain, an upgrade) waits
 *   until the other pod serves;
 * - Service `<service>-front` (ClusterIP, port 80 → 5001), the route's backend during the shadow phase.
 * Each pod holds its routing state and counters in its own process: the app writes the state to EACH pod and reads
 * each pod's figures through the API server's pod proxy (`…/pods/<pod>:5001/proxy`, as the gates read /metrics),
 * summing them; a pod that starts later (with the state at creation) gets the current state at the next call.
 * Pure code (objects); the calls are in aks-target.ts.
 */
import { createHash } from 'node:crypto';
import type * as K8s from '@kubernetes/client-node';
import { FRONT_ENV, type FrontState } from '../../runtime';
import { FRONT_COMMAND, FRONT_CPU, FRONT_MEMORY_GB, FRONT_ROLE, FRONT_STATE_DIR, frontGroupName, ROLE_TAG } from './aci-front';
import { AKS_KEYS_FILE, AKS_KEYS_MOUNT, AKS_SERVICE_PORT, cpuQuantity, keysSecretName, memoryQuantity, serviceLabels } from './aks-manifests';
import { serviceResourceName, slotResourceName, TAGS } from './names';
import { DEFAULT_SCORING_PORT, RUNTIME_ENV } from './runtime-env';

export const AKS_FRONT_CONTAINER = 'front';
/** Replicas of the front: two, so one serves while the other is evicted or rescheduled (see the PodDisruptionBudget). */
export const FRONT_REPLICAS = 2;
/** The key of the admin signing key in the front's Secret. */
export const FRONT_ADMIN_SECRET_KEY = 'adminKey';
/**
 * Pod template annotation: digest of what the front's pod is started with (its spec without the state at creation,
 * and the admin key). The Deployment is rewritten only when it changes, so a retried step never restarts the front.
 */
export const FRONT_DIGEST_ANNOTATION = 'model-deploy-flow/front-digest';

/** Name of the front's Deployment, Service and Secret: `<service>-front`. */
export function frontResourceName(serviceName: string): string {
  return frontGroupName(serviceName);
}

export function frontSelector(serviceName: string): Record<string, string> {
  return { [TAGS.service]: serviceResourceName(serviceName), [ROLE_TAG]: FRONT_ROLE };
}

/** Where the front (in the cluster) reaches a slot: its Service's cluster DNS name, port 80. */
export function slotServiceUrl(serviceName: string, namespace: string, slot: string): string {
  return `http://${slotResourceName(serviceName, slot)}.${namespace}.svc.cluster.local`;
}

/** The path of one front pod through the API server's pod proxy (`…/pods/<pod>:5001/proxy`): each pod has its own state. */
export function frontPodProxyPath(namespace: string, podName: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(podName)}:${DEFAULT_SCORING_PORT}/proxy`;
}

export function frontAdminSecret(serviceName: string, namespace: string, adminKey: string): K8s.V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: frontResourceName(serviceName), namespace, labels: { ...serviceLabels(serviceName), [ROLE_TAG]: FRONT_ROLE } },
    type: 'Opaque',
    data: { [FRONT_ADMIN_SECRET_KEY]: Buffer.from(adminKey, 'utf8').toString('base64') },
  };
}

/**
 * The front's Deployment. `state`: the routing it starts with (replaced by signed writes; saved on the emptyDir, so a
 * restarted container keeps the last one). `auth`: the service has key or token auth (its keys Secret is mounted).
 */
export function frontDeployment(o: { serviceName: string; namespace: string; image: string; state: FrontState; auth: boolean; adminKey: string }): K8s.V1Deployment {
  const name = frontResourceName(o.serviceName);
  const labels = { ...serviceLabels(o.serviceName), ...frontSelector(o.serviceName) };
  const env: K8s.V1EnvVar[] = [
    { name: FRONT_ENV.service, value: o.serviceName },
    { name: RUNTIME_ENV.port, value: String(DEFAULT_SCORING_PORT) },
    { name: FRONT_ENV.stateFile, value: `${FRONT_STATE_DIR}/state.json` },
    { name: FRONT_ENV.adminKey, valueFrom: { secretKeyRef: { name, key: FRONT_ADMIN_SECRET_KEY } } },
    ...(o.auth ? [{ name: RUNTIME_ENV.keysFile, value: AKS_KEYS_FILE }] : []),
  ];
  const spec: K8s.V1PodSpec = {
    automountServiceAccountToken: false,
    // The two replicas on different nodes when the cluster has them (a node's loss or drain leaves one serving).
    affinity: {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: frontSelector(o.serviceName) } } }],
      },
    },
    containers: [
      {
        name: AKS_FRONT_CONTAINER,
        image: o.image,
        command: FRONT_COMMAND,
        ports: [{ name: 'http', containerPort: DEFAULT_SCORING_PORT }],
        env,
        resources: { requests: { cpu: cpuQuantity(FRONT_CPU), memory: memoryQuantity(FRONT_MEMORY_GB) }, limits: { memory: memoryQuantity(FRONT_MEMORY_GB) } },
        // Listening is ready: its `GET /` would be the serving slot's liveness (a slot's fault is not the front's).
        readinessProbe: { tcpSocket: { port: DEFAULT_SCORING_PORT }, periodSeconds: 2, failureThreshold: 3 },
        volumeMounts: [{ name: 'state', mountPath: FRONT_STATE_DIR }, ...(o.auth ? [{ name: 'keys', mountPath: AKS_KEYS_MOUNT, readOnly: true }] : [])],
      },
    ],
    volumes: [
      { name: 'state', emptyDir: {} },
      ...(o.auth ? [{ name: 'keys', secret: { secretName: keysSecretName(o.serviceName), items: [{ key: 'keys.json', path: 'keys.json' }], defaultMode: 0o440 } }] : []),
    ],
  };
  const digest = createHash('sha256').update(JSON.stringify(spec)).update('\n').update(o.adminKey).digest('hex').slice(0, 32);
  // The state at creation is not part of the digest: it is set by the signed writes from then on.
  spec.containers[0].env = [...env, { name: FRONT_ENV.state, value: JSON.stringify(o.state) }];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: o.namespace, labels },
    spec: {
      replicas: FRONT_REPLICAS,
      selector: { matchLabels: frontSelector(o.serviceName) },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      progressDeadlineSeconds: 600,
      template: { metadata: { labels, annotations: { [FRONT_DIGEST_ANNOTATION]: digest } }, spec },
    },
  };
}

/** The front's digest as a Deployment (read back) carries it. */
export function frontDigestOf(d: K8s.V1Deployment | undefined): string | undefined {
  return d?.spec?.template?.metadata?.annotations?.[FRONT_DIGEST_ANNOTATION];
}

/** The front's PodDisruptionBudget: one pod always available through voluntary evictions (node drains, upgrades). */
export function frontDisruptionBudget(serviceName: string, namespace: string): K8s.V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: frontResourceName(serviceName), namespace, labels: { ...serviceLabels(serviceName), [ROLE_TAG]: FRONT_ROLE } },
    spec: { minAvailable: 1, selector: { matchLabels: frontSelector(serviceName) } },
  };
}

/** The front's ClusterIP Service: port 80 → the front's 5001. */
export function frontService(serviceName: string, namespace: string): K8s.V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: frontResourceName(serviceName), namespace, labels: { ...serviceLabels(serviceName), [ROLE_TAG]: FRONT_ROLE } },
    spec: {
      type: 'ClusterIP',
      selector: frontSelector(serviceName),
      ports: [{ name: 'http', port: AKS_SERVICE_PORT, targetPort: DEFAULT_SCORING_PORT, protocol: 'TCP' }],
    },
  };
}
