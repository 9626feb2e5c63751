/**
 * `BatchPoolProvider` on ACI: `nodeCount` container groups (`<poolId>-n<i>`) running the image in batch mode,
 * each exposing `POST /batch` (behind the pool's keys, passed as secure environment values, when the request has
 * them); torn down by tag, so a teardown after a crash still finds every node.
 */
import { AppError } from '../errors';
import { nodeQueueWaitMs } from '../batch/score';
import type { BatchPool, BatchPoolProvider, BatchPoolRequest } from '../seams';
import { AciGroups, type AciGroupsOptions, type ContainerGroupSpec } from './aci';
import type { AzureConfig } from './config';
import { aciDnsLabel, poolNodeName, TAGS } from './names';
import { DEFAULT_SCORING_PORT, RUNTIME_ENV } from './runtime-env';

export type AciBatchPoolOptions = AciGroupsOptions & {
  /** `replicaIdentity`: the nodes (which run the user's entry script) run and pull with it, never with the app's identity. */
  config: AciGroupsOptions['config'] & Pick<AzureConfig, 'subscriptionId'> & Partial<Pick<AzureConfig, 'replicaIdentity'>>;
  /** Cores per node (default: processCountPerNode, at most 4) and memory per core. */
  cpuPerNode?: number;
  memoryGbPerCore?: number;
};

/** ACI container groups per pool this provider accepts (subscription quotas are usually 100 per region). */
export const MAX_ACI_POOL_NODES = 50;

/** The container group spec of batch node `i` (also printed by `plan`). */
export function aciPoolNodeSpec(request: BatchPoolRequest, i: number, o: Pick<AciBatchPoolOptions, 'config' | 'cpuPerNode' | 'memoryGbPerCore'>): ContainerGroupSpec {
  const cpu = o.cpuPerNode ?? Math.min(4, Math.max(1, request.processCountPerNode));
  const name = poolNodeName(request.poolId, i);
  return {
    name,
    image: request.image.imageRef,
    cpu,
    memoryGb: Math.min(16, cpu * (o.memoryGbPerCore ?? 2)),
    port: DEFAULT_SCORING_PORT,
    dnsNameLabel: aciDnsLabel(name, `${o.config.subscriptionId}/${o.config.resourceGroup}`),
    env: [
      [RUNTIME_ENV.port, String(DEFAULT_SCORING_PORT)],
      [RUNTIME_ENV.mode, 'batch'],
      [RUNTIME_ENV.workers, String(request.processCountPerNode)],
      [RUNTIME_ENV.timeoutMs, String(request.runInvocationTimeoutMs)],
      // Several mini-batches queue on a node (the orchestration's window): they must wait, not get 503.
      [RUNTIME_ENV.maxWaitMs, String(nodeQueueWaitMs(request.runInvocationTimeoutMs))],
    ],
    // Keys only as secure values (ARM never returns them); the runtime reads them from MDF_*_KEY (runtime/env.ts).
    secureEnv: request.keys
      ? [
          [RUNTIME_ENV.primaryKey, request.keys.primaryKey],
          [RUNTIME_ENV.secondaryKey, request.keys.secondaryKey],
        ]
      : [],
    tags: { [TAGS.pool]: request.poolId, [TAGS.image]: `${request.image.name}:${request.image.version}` },
    probes: true,
    // As the scoring slots: the replicas' identity (AcrPull and model data only), so user code holds none of the app's rights.
    ...(o.config.replicaIdentity ? { identityResourceId: o.config.replicaIdentity.resourceId } : {}),
  };
}

export class AciBatchPoolProvider implements BatchPoolProvider {
  readonly kind = 'aci' as const;
  /** Remote nodes: files travel inline. */
  readonly filesAs = 'content' as const;
  private readonly groups: AciGroups;

  constructor(private readonly o: AciBatchPoolOptions) {
    this.groups = new AciGroups(o);
  }

  async provision(request: BatchPoolRequest): Promise<BatchPool> {
    if (!Number.isInteger(request.nodeCount) || request.nodeCount < 1 || request.nodeCount > MAX_ACI_POOL_NODES) {
      throw new AppError('BatchPoolInvalid', `node_count must be 1–${MAX_ACI_POOL_NODES} on ACI; got ${request.nodeCount}.`, 400);
    }
    const specs = Array.from({ length: request.nodeCount }, (_, i) => aciPoolNodeSpec(request, i, this.o));
    const outcomes = await Promise.all(specs.map((s) => this.groups.ensureRunning(s)));
    const failed = outcomes.map((o, i) => ({ o, name: specs[i].name })).filter((x) => !x.o.ok);
    if (failed.length > 0) {
      await this.teardown(request.poolId);
      const first = failed[0].o;
      const info = first.ok ? undefined : first.error;
      throw new AppError(
        info?.code ?? 'BatchPoolFailed',
        `${failed.length} of ${request.nodeCount} batch nodes of pool ${request.poolId} did not start (the pool was removed): ${info?.message ?? ''}`,
        502,
      );
    }
    return {
      poolId: request.poolId,
      nodeUris: outcomes.map((o, i) => (o.ok ? `http://${o.fqdn}:${specs[i].port}/batch` : '')),
    };
  }

  async teardown(poolId: string): Promise<void> {
    const groups = await this.groups.listTagged(TAGS.pool, poolId);
    await Promise.all(groups.map((g) => (g.name ? this.groups.delete(g.name) : Promise.resolve())));
  }
}
