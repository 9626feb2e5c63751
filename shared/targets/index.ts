/**
 * Deploy targets by kind. The local target is a process-wide singleton (it owns running processes, so every
 * activity invocation must reach the same instance); `stopAllTargets()` stops everything at host shutdown.
 * Azure targets register themselves with `registerDeployTarget('aci' | 'aks', factory)`.
 */
import type { AppConfig } from '../config';
import { AppError } from '../errors';
import type { DeployTarget, TargetKind } from '../seams';
import type { StorageClients } from '../storage';
import { LocalDeployTarget } from './local';

export { LocalDeployTarget, readTail } from './local';
export type { LocalTargetOptions } from './local';
export { LocalFront, DEFAULT_FRONT_LIMITS, type FrontLimits } from './local-front';

export type DeployTargetFactory = (config: AppConfig, storage: StorageClients) => DeployTarget;

const factories: Partial<Record<TargetKind, DeployTargetFactory>> = {};
const instances = new Map<string, DeployTarget>();

/** Makes a target kind available (Azure side: `registerDeployTarget('aci', ...)`). */
export function registerDeployTarget(kind: TargetKind, factory: DeployTargetFactory): void {
  factories[kind] = factory;
}

/** The target for `kind` (one instance per kind and configuration per process). */
export function getDeployTarget(kind: TargetKind, config: AppConfig, storage: StorageClients): DeployTarget {
  const key = kind === 'local' ? `local|${config.local.workDir}` : kind;
  let t = instances.get(key);
  if (t) return t;
  if (kind === 'local') {
    t = new LocalDeployTarget(storage, {
      workDir: config.local.workDir,
      python: config.local.python,
      workersPerReplica: config.local.workersPerReplica,
      startTimeoutMs: config.local.startTimeoutMs,
      scoring: config.local.scoring,
    });
  } else {
    const f = factories[kind];
    if (!f) throw new AppError('TargetUnavailable', `Target "${kind}" is not available in this deployment of the app; use target "local" or configure the Azure targets.`, 400);
    t = f(config, storage);
  }
  instances.set(key, t);
  return t;
}

/** Stops every process started by local targets of this process (host shutdown, tests). */
export async function stopAllTargets(): Promise<void> {
  const all = [...instances.values()];
  instances.clear();
  await Promise.all(all.map((t) => (t instanceof LocalDeployTarget ? t.stopAll() : Promise.resolve())));
}
