/**
 * The seams between the workflow and the infrastructure it runs on (docs/architecture.md, "Composition root").
 * One interface per concern, a local and an Azure implementation each, chosen by configuration in one place:
 * `shared/platform/compose.ts` (the only module that names an implementation). What callers need to know about an
 * implementation is on its interface (`dispose`, `filesAs`, `reap`), never asked with `instanceof` or its kind.
 * Orchestrations never see these: activities call them through `shared/`.
 *
 * Everything passed across a seam is a plain JSON-serialisable value (activities return them).
 * Secrets (keys, TLS private keys) travel only inside `DeployRequest.keys` / `.tls` (and the `keys` / `tls` arguments
 * of `switchTraffic` / `updateKeys`) and are never part of a result.
 */

import type { RuntimeKind } from '../runtime';
import type { TrafficSnapshot } from './rollout/traffic';
import type { TlsMaterial, TlsSettings } from './tls';

export type { RuntimeKind };
export type TargetKind = 'local' | 'aci' | 'aks';

/** A problem a user can act on. `code` is stable (e.g. `ImageBuildFailed`), `message` says what to do. */
export interface ErrorInfo {
  code: string;
  message: string;
}

// ---------------------------------------------------------------- image builder

export interface ImageBuildRequest {
  /** Image name and version: `myimage:3` is `{ name: 'myimage', version: 3 }`. */
  name: string;
  version: number;
  runtime: RuntimeKind;
  /** Blob path (container/blob) of the build context archive (`images/<name>/<version>.tar.gz`). */
  contextBlob: string;
  /** sha256 of the context archive: the image's content digest. */
  contextDigest: string;
  /** Custom base image, if the manifest set one (`registry/repo:tag`). */
  baseImage?: string;
  /**
   * The base image's registry (manifest `base_image_registry`): pulled with the app's identity, or with a user name
   * and a password kept in Key Vault (`passwordSecret` is the secret's URI, never the password).
   */
  baseImageRegistry?: { address: string; username?: string; passwordSecret?: string };
}

export interface ImageBuildResult {
  state: 'Succeeded' | 'Failed';
  /** Where a target pulls the image from: `local://images/<name>/<version>` or `<registry>.azurecr.io/<name>:<version>`. */
  imageRef: string;
  digest: string;
  /** Blob path of the build log, when the builder produced one. */
  logBlob?: string;
  error?: ErrorInfo;
}

export interface ImageBuilder {
  readonly kind: 'local' | 'acr';
  /** Idempotent: building the same name:version twice returns the first result. */
  build(request: ImageBuildRequest): Promise<ImageBuildResult>;
  /** Remove a built image (clean-up). Absent is not an error. */
  delete(name: string, version: number): Promise<void>;
}

// ---------------------------------------------------------------- deploy targets

/** The AML deploy configuration, already validated and defaulted (see the manifest schema). */
export interface DeployConfig {
  cpuCores: number;
  memoryGb: number;
  authEnabled: boolean;
  /** Token auth (AML `token_auth_enabled`): Bearer JWTs instead of keys; exclusive with `authEnabled`. */
  tokenAuthEnabled?: boolean;
  /** Fixed replica count; when set, autoscale is off. */
  numReplicas?: number;
  autoscaleEnabled: boolean;
  autoscaleMinReplicas: number;
  autoscaleMaxReplicas: number;
  autoscaleTargetUtilization: number;
  autoscaleRefreshSeconds: number;
  replicaMaxConcurrentRequests: number;
  scoringTimeoutMs: number;
  maxRequestWaitTimeMs: number;
  /** `collect_model_data`: replicas write scored inputs/outputs to the `modeldata` container (absent = off). */
  collectModelData?: boolean;
  /** `enable_app_insights`: replicas export an OpenTelemetry span per request (absent = off). */
  enableAppInsights?: boolean;
  /** AKS `cpu_cores_limit` / `memory_gb_limit`: the container's limits (absent: no cpu limit, memory limit = memoryGb). */
  cpuCoresLimit?: number;
  memoryGbLimit?: number;
  /**
   * AKS probe settings (AML `period_seconds`, `initial_delay_seconds`, `timeout_seconds`, `failure_threshold` for the
   * liveness probe; `success_threshold` for the readiness probe, since Kubernetes requires 1 on liveness probes).
   */
  probe?: { periodSeconds?: number; initialDelaySeconds?: number; timeoutSeconds?: number; successThreshold?: number; failureThreshold?: number };
  /**
   * `ssl_enabled`: the service serves HTTPS with this certificate and key, given as references (Key Vault secret URIs
   * or blobs: shared/tls.ts), never PEM; `cname` (`ssl_cname`) is the host name of its scoring URI.
   */
  tls?: TlsSettings;
  /** Anything target-specific (ACI dns label, AKS cluster/namespace, local port...). */
  extra?: Record<string, unknown>;
}

/** The `DeployConfig` fields of the replica pool's size (what `DeployTarget.resizeSlot` changes in place). */
export const POOL_FIELDS: ReadonlyArray<keyof DeployConfig> = ['numReplicas', 'autoscaleEnabled', 'autoscaleMinReplicas', 'autoscaleMaxReplicas', 'autoscaleTargetUtilization', 'autoscaleRefreshSeconds'];

export interface ServiceKeys {
  primaryKey: string;
  secondaryKey: string;
  /** With token auth: the service's token signing secret (the target's verifiers need it). Never returned by `/keys`. */
  tokenSecret?: string;
}

export interface DeployRequest {
  serviceName: string;
  /** Slot for blue/green: the new version is deployed beside the old one, then traffic switches. */
  slot: string;
  image: { name: string; version: number; imageRef: string; runtime: RuntimeKind; contextBlob: string };
  config: DeployConfig;
  keys?: ServiceKeys;
  /** With `config.tls`: the certificate and key read and checked by the deploy step (secrets, like `keys`). */
  tls?: TlsMaterial;
}

export interface DeployedSlot {
  serviceName: string;
  slot: string;
  /** Direct URI of this slot (used by the smoke test before traffic switches). */
  scoringUri: string;
  swaggerUri: string;
  healthUri: string;
  state: 'Healthy' | 'Unhealthy' | 'Failed';
  error?: ErrorInfo;
}

export interface DeployTarget {
  readonly kind: TargetKind;
  /** Create (or return the existing) deployment of one slot. Idempotent per serviceName+slot. */
  deploySlot(request: DeployRequest): Promise<DeployedSlot>;
  /**
   * Optional (targets whose slots can outlive or lose their host, i.e. local): brings back the slot a completed
   * `deploySlot` made, if the host restarted since, and returns its current direct URIs.
   */
  ensureSlot?(serviceName: string, slot: string): Promise<DeployedSlot>;
  /**
   * Route the service's public URI to `slot`; returns the public scoring URI. `keys` (the service's, when it has key
   * auth): for targets that must re-create the slot's endpoint to move the public name onto it (ACI).
   */
  switchTraffic(serviceName: string, slot: string, keys?: ServiceKeys, tls?: TlsMaterial): Promise<{ scoringUri: string; swaggerUri: string }>;
  /**
   * Optional (targets that can split a service's live traffic between its slots: local and aci through the service
   * front, aks through a Gateway API HTTPRoute; see docs/reference.md, "Progressive delivery"): `weights` is slot → percent (summing to 100; a slot at 0 takes only requests pinned to
   * it with the `azureml-model-deployment` header); `mirror` copies a share of requests to a shadow slot whose
   * answers are compared and discarded. Idempotent; starts the named slots again if the host restarted. Returns the
   * front's figures after the change.
   */
  setTrafficWeights?(serviceName: string, weights: Record<string, number>, options?: { mirror?: { slot: string; percent: number; tolerance: number } }): Promise<TrafficSnapshot>;
  /** Optional, with `setTrafficWeights`: the service front's cumulative per-slot figures (shared/rollout/traffic.ts). */
  trafficSnapshot?(serviceName: string): Promise<TrafficSnapshot>;
  /**
   * Optional (targets whose pool can be resized without restarting a replica: local, AKS): applies `config`'s replica
   * count and autoscale settings to a running slot in place — missing replicas start, extra ones stop once idle, the
   * others keep running — and records it, so a restart of the host restores that size. Every other field of
   * `config` must be the slot's own (the caller checks). Returns the slot's direct URIs.
   */
  resizeSlot?(serviceName: string, slot: string, config: DeployConfig): Promise<DeployedSlot>;
  /**
   * Optional, with `resizeSlot` (local, AKS): the serving slot's pool goes back to `config`'s replica count and autoscale
   * settings (the service record's) when an abandoned in-place update left it another size — called when a later
   * request takes the service over. Returns at once and runs without holding up the request (local: queued before
   * any later operation on the service, so a run started after the takeover sees the record's size; AKS: the
   * Deployment and autoscaler writes of `resizeSlot`, failures logged). A no-op when the pool already has that size.
   */
  resetSlotPool?(serviceName: string, slot: string, config: DeployConfig): void;
  /** Remove one slot (rollback or retiring the old version). Absent is not an error. */
  deleteSlot(serviceName: string, slot: string): Promise<void>;
  /** Remove the whole service. Absent is not an error. */
  deleteService(serviceName: string): Promise<void>;
  /** The last lines of a slot's log, for failure reasons. Never contains keys. */
  logTail(serviceName: string, slot: string, lines: number): Promise<string>;
  /**
   * Optional (targets that can reach each replica, i.e. local): the runtime's `/metrics` text of every replica of the
   * slot serving the service (`[]` when none runs). Without it the figures are read through the public endpoint.
   */
  replicaMetrics?(serviceName: string): Promise<{ slot: string; texts: string[] }>;
  /**
   * Optional: make the public endpoint accept new keys (after regeneration) without redeploying.
   * Targets without it pick new keys up at the next deployment.
   */
  updateKeys?(serviceName: string, keys: ServiceKeys, tls?: TlsMaterial): Promise<void>;
  /** Optional (targets that own processes, i.e. local): stop everything this instance started (host shutdown). */
  dispose?(): Promise<void>;
}

// ---------------------------------------------------------------- batch pools

export interface BatchPoolRequest {
  /** Deterministic pool id (derived from the batch run id). */
  poolId: string;
  image: { name: string; version: number; imageRef: string; runtime: RuntimeKind; contextBlob: string };
  nodeCount: number;
  processCountPerNode: number;
  runInvocationTimeoutMs: number;
  /**
   * Keys the nodes require on `POST /batch` (`Authorization: Bearer <key>`); generated per pool and kept in
   * storage only (never in orchestration input, output, history or status).
   */
  keys?: ServiceKeys;
}

export interface BatchPool {
  poolId: string;
  /** Endpoints that accept `POST /batch` with a mini-batch (one per node). */
  nodeUris: string[];
}

/**
 * How the pool's nodes want a mini-batch's files: `paths` (the node shares this machine's file system: files are
 * downloaded to a folder and run() gets their paths) or `content` (remote nodes: the files travel inline).
 */
export type FilesAs = 'paths' | 'content';

export interface BatchPoolProvider {
  readonly kind: TargetKind;
  /** How this provider's nodes want files passed (recorded in the provisioning result the orchestration reads). */
  readonly filesAs: FilesAs;
  provision(request: BatchPoolRequest): Promise<BatchPool>;
  /** Always safe to call; absent is not an error. */
  teardown(poolId: string): Promise<void>;
  /**
   * Optional (pools whose nodes can outlive their host, i.e. local): at app start, remove what a killed host left
   * behind, keeping the pools `keep` answers true for.
   */
  reap?(keep?: (poolId: string) => Promise<boolean>): Promise<{ removed: string[]; strays: number }>;
}
