/**
 * The composition root: the only module that names a concrete implementation of a seam (`shared/seams.ts`).
 * Everything else asks here for "the deploy target of kind K", "the configured image builder", "the batch pools of
 * kind K" and talks to the interface; what callers used to branch on is on the interface (`DeployTarget.dispose`,
 * `BatchPoolProvider.filesAs`, `BatchPoolProvider.reap`).
 *
 * - Local implementations (target + front, builder, batch pool) are always available.
 * - Azure implementations (ACR builder, ACI/AKS targets, ACI batch pools) are available once the app entry has
 *   called `enableAzure()` (`functions/startup.ts`); the ARM SDKs are loaded at first use only, so local runs never
 *   load them. The ACR builder and the ACI pools validate their settings at first use (a misconfiguration never
 *   breaks the app's read paths); a target validates them when it is asked for.
 *
 * Instances: a deploy target or a batch pool provider owns running processes (local) or clients (Azure), so there
 * is one per kind and configuration per process; `disposeAll()` releases them (host shutdown, tests).
 */
import type { AppConfig } from '../config';
import { AppError } from '../errors';
import type { BatchPool, BatchPoolProvider, BatchPoolRequest, DeployTarget, FilesAs, ImageBuilder, TargetKind } from '../seams';
import type { StorageClients } from '../storage';
import { noKeyVault, type SecretReader } from '../tls';
import { LocalBatchPoolProvider } from '../batch/pool-local';
import { LocalImageBuilder } from '../images/local-builder';
import { LocalDeployTarget } from '../targets/local';

/** The pool kinds: ACI pools serve every Azure target (AKS has no batch pool of its own). */
export type BatchPoolKind = Extract<TargetKind, 'local' | 'aci'>;

type AzureModule = typeof import('../azure');

/** The Azure implementations, loaded on first use (local runs never load the ARM SDKs). */
function azure(): AzureModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../azure') as AzureModule;
}

let azureEnabled = false;

/** Makes the Azure implementations available (the app entry, `functions/startup.ts`; idempotent). */
export function enableAzure(): void {
  azureEnabled = true;
}

interface Choice<T> {
  /** Instances are shared per key (undefined: a new one per call). */
  key?: (config: AppConfig) => string;
  azure?: boolean;
  make: (config: AppConfig, storage: StorageClients) => T;
}

const TARGETS: Record<TargetKind, Choice<DeployTarget>> = {
  local: {
    key: (config) => `local|${config.local.workDir}`,
    make: (config, storage) =>
      new LocalDeployTarget(storage, {
        workDir: config.local.workDir,
        python: config.local.python,
        workersPerReplica: config.local.workersPerReplica,
        startTimeoutMs: config.local.startTimeoutMs,
        shadowCpuPriority: config.local.shadowCpuPriority,
        scoring: config.local.scoring,
      }),
  },
  aci: { key: () => 'aci', azure: true, make: (_config, storage) => azure().azureSeams(storage).target('aci') },
  aks: { key: () => 'aks', azure: true, make: (_config, storage) => azure().azureSeams(storage).target('aks') },
};

const BUILDERS: Record<AppConfig['imageBuilder'], Choice<ImageBuilder>> = {
  local: { make: (config, storage) => new LocalImageBuilder(storage, config.local.python) },
  acr: { azure: true, make: (_config, storage) => lazy<ImageBuilder>('acr', () => azure().azureSeams(storage).imageBuilder(), ['build', 'delete']) },
};

const POOLS: Record<BatchPoolKind, Choice<BatchPoolProvider>> = {
  local: {
    key: (config) => `local|${config.local.workDir}`,
    make: (config, storage) =>
      new LocalBatchPoolProvider(storage, { workDir: config.local.workDir, python: config.local.python, startTimeoutMs: config.local.startTimeoutMs }),
  },
  aci: {
    key: () => 'aci|',
    azure: true,
    make: (_config, storage) => {
      let real: BatchPoolProvider | undefined;
      const get = () => (real ??= azure().azureSeams(storage).batchPools());
      return {
        kind: 'aci',
        filesAs: 'content',
        provision: (request: BatchPoolRequest): Promise<BatchPool> => get().provision(request),
        teardown: (poolId: string) => get().teardown(poolId),
      };
    },
  },
};

/** An implementation whose settings are validated (and clients built) at its first use. */
function lazy<T extends { kind: string }>(kind: T['kind'], make: () => T, methods: Array<keyof T & string>): T {
  let real: T | undefined;
  const out: Record<string, unknown> = { kind };
  for (const m of methods) out[m] = (...args: unknown[]) => ((real ??= make())[m] as (...a: unknown[]) => unknown)(...args);
  return out as T;
}

const targets = new Map<string, DeployTarget>();
const pools = new Map<string, BatchPoolProvider>();

function choose<T>(choice: Choice<T> | undefined, cache: Map<string, T> | undefined, config: AppConfig, storage: StorageClients, unavailable: () => AppError): T {
  if (!choice || (choice.azure && !azureEnabled)) throw unavailable();
  const key = choice.key?.(config);
  let t = key !== undefined ? cache?.get(key) : undefined;
  if (t) return t;
  t = choice.make(config, storage);
  if (key !== undefined) cache?.set(key, t);
  return t;
}

/** The deploy target of `kind` (one instance per kind and configuration per process). */
export function getDeployTarget(kind: TargetKind, config: AppConfig, storage: StorageClients): DeployTarget {
  return choose(TARGETS[kind], targets, config, storage, () =>
    new AppError('TargetUnavailable', `Target "${kind}" is not available in this deployment of the app; use target "local" or configure the Azure targets.`, 400),
  );
}

/** The image builder selected by configuration (`IMAGE_BUILDER`). */
export function getImageBuilder(config: AppConfig, storage: StorageClients): ImageBuilder {
  return choose(BUILDERS[config.imageBuilder], undefined, config, storage, () =>
    new AppError('ImageBuilderUnavailable', `IMAGE_BUILDER=${config.imageBuilder} is not available in this build; use IMAGE_BUILDER=local or install the Azure builders.`, 500),
  );
}

/** The pool kind new batch runs use under this configuration (`DEFAULT_TARGET`: local → local, aci/aks → aci). */
export function batchPoolKind(config: AppConfig): BatchPoolKind {
  return config.defaultTarget === 'local' ? 'local' : 'aci';
}

/** The batch pool provider of `kind` (one per kind and configuration per process). */
export function getBatchPoolProvider(kind: BatchPoolKind, config: AppConfig, storage: StorageClients): BatchPoolProvider {
  return choose(POOLS[kind], pools, config, storage, () =>
    new AppError('BatchPoolUnavailable', `Batch pools of kind "${kind}" are not available in this deployment; set DEFAULT_TARGET=local or configure ACI.`, 500),
  );
}

/**
 * How a pool of `kind` wants files passed, for runs whose provisioning result predates `filesAs` (an orchestration
 * replaying a history recorded before pools reported it). Pure: orchestrations may call it.
 */
export function recordedPoolFilesAs(kind: BatchPoolKind): FilesAs {
  return kind === 'local' ? 'paths' : 'content';
}

/**
 * Where Key Vault secrets (TLS certificates and keys) are read: with the app's identity when the app runs with Azure
 * settings (`AZURE_SUBSCRIPTION_ID`) and only in the vaults `ALLOWED_KEY_VAULTS` names (else 400 `KeyVaultNotAllowed`),
 * else nowhere (400 `KeyVaultUnavailable`: locally, keep the PEM in a blob).
 */
export function getSecretReader(env: Record<string, string | undefined> = process.env): SecretReader {
  if (!azureEnabled || !env.AZURE_SUBSCRIPTION_ID) return noKeyVault;
  let reader: SecretReader | undefined;
  return {
    read: (uri) => {
      const a = azure();
      const config = a.loadAzureConfig(env, []);
      return (reader ??= new a.KeyVaultSecretReader(a.createAzureCredential(config), { allowedVaults: config.allowedKeyVaults })).read(uri);
    },
  };
}

/** Releases every deploy target of this process (stops local scoring processes): host shutdown, tests. */
export async function disposeAll(): Promise<void> {
  const all = [...targets.values()];
  targets.clear();
  await Promise.all(all.map((t) => (t.dispose ? t.dispose() : Promise.resolve())));
}
