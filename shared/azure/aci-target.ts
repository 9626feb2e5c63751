/**
 * `DeployTarget` on Azure Container Instances (the seed's dev/test target): one container group per service
 * slot, `<service>-<slot>`, with its own DNS name label → `http://<label>.<region>.azurecontainer.io:<port>`.
 * ACI has no router, so "switching traffic" marks the new slot's group as the service's active one (tag) and
 * deletes the previously active group; the service's public URI is the active slot's URI.
 */
import { createHash } from 'crypto';
import type { DeployConfig, DeployedSlot, DeployRequest, DeployTarget, ServiceKeys } from '../seams';
import { ACI_CONTAINER, AciGroups, type AciGroupsOptions, type ContainerGroupSpec } from './aci';
import type { AzureConfig } from './config';
import { aciDnsLabel, serviceResourceName, slotResourceName, TAGS } from './names';
import { endpointUris, RUNTIME_ENV, runtimeSettings, scoringPort } from './runtime-env';
import { AppError } from '../errors';
import { observabilityEnv } from '../targets/observability-env';

export type AciTargetOptions = AciGroupsOptions & {
  config: AciGroupsOptions['config'] & Pick<AzureConfig, 'subscriptionId'> & Partial<Pick<AzureConfig, 'managedIdentityClientId' | 'replicaIdentity'>>;
  /** URL of the app's `modeldata` container (no SAS): where replicas with collect_model_data write, with the group's identity. */
  modelDataUrl?: string;
};

/**
 * Tag of a container group naming the keys it was given: a short SHA-256 of both keys (never the keys), so a key
 * update knows whether the running group already has them (ARM never returns secure values).
 */
export const KEYS_DIGEST_TAG = 'mdf-keys-digest';
/** Tag of a container group naming the service's stable DNS name label (moved to the active group at each switch). */
export const STABLE_LABEL_TAG = 'mdf-stable-label';
export function keysDigestTag(keys: ServiceKeys): string {
  return createHash('sha256').update(`${keys.primaryKey}\n${keys.secondaryKey}`).digest('hex').slice(0, 32);
}

/** ACI allows up to 4 cores and 16 GB per container group in most regions. */
function checkSize(config: DeployConfig): void {
  if (config.cpuCores <= 0 || config.cpuCores > 4) {
    throw new AppError('DeployConfigInvalid', `ACI supports 0.1–4 cpu cores per service; cpu_cores is ${config.cpuCores}. Use AKS for more.`, 400);
  }
  if (config.memoryGb <= 0 || config.memoryGb > 16) {
    throw new AppError('DeployConfigInvalid', `ACI supports up to 16 GB per service; memory_gb is ${config.memoryGb}. Use AKS for more.`, 400);
  }
}

/**
 * The manifest's ACI `location` (AML `AciWebservice.deploy_configuration(location=…)`), normalised as ARM writes
 * region names (`West Europe` → `westeurope`); absent → the app's AZURE_LOCATION.
 */
export function aciLocation(config: DeployConfig): string | undefined {
  const raw = config.extra?.location;
  if (typeof raw !== 'string') return undefined;
  const loc = raw.toLowerCase().replace(/\s+/g, '');
  if (!/^[a-z][a-z0-9]{2,40}$/.test(loc)) throw new AppError('DeployConfigInvalid', `location "${raw.slice(0, 60)}" is not an Azure region name (e.g. westeurope).`, 400);
  return loc;
}

/** The container group spec of a slot (also printed by `plan`). */
export function aciSlotSpec(request: DeployRequest, config: AciTargetOptions['config'], modelDataUrl?: string): ContainerGroupSpec {
  checkSize(request.config);
  const name = slotResourceName(request.serviceName, request.slot);
  const label = typeof request.config.extra?.dnsNameLabel === 'string' ? `${request.config.extra.dnsNameLabel}-${request.slot}` : name;
  const scope = `${config.subscriptionId}/${config.resourceGroup}`;
  // The service's public name: `dns_name_label`, else the service name, with the same scope hash as slot labels.
  const stable = aciDnsLabel(typeof request.config.extra?.dnsNameLabel === 'string' ? request.config.extra.dnsNameLabel : serviceResourceName(request.serviceName), scope);
  const secureEnv: Array<[string, string]> =
    request.config.authEnabled && request.keys
      ? [
          [RUNTIME_ENV.primaryKey, request.keys.primaryKey],
          [RUNTIME_ENV.secondaryKey, request.keys.secondaryKey],
        ]
      : [];
  const location = aciLocation(request.config);
  const replicaClientId = config.replicaIdentity?.clientId ?? config.managedIdentityClientId;
  return {
    name,
    ...(location ? { location } : {}),
    image: request.image.imageRef,
    cpu: request.config.cpuCores,
    memoryGb: request.config.memoryGb,
    port: scoringPort(request.config),
    dnsNameLabel: aciDnsLabel(label, scope),
    env: [
      ...runtimeSettings(request.config),
      ...observabilityEnv(request.config, { serviceName: request.serviceName, slot: request.slot }, modelDataUrl),
      // The group's user-assigned identity (the replicas' own when configured) is the one DefaultAzureCredential picks in the container.
      ...(request.config.collectModelData && replicaClientId ? [['AZURE_CLIENT_ID', replicaClientId] as [string, string]] : []),
    ],
    secureEnv,
    tags: {
      [TAGS.service]: request.serviceName,
      [TAGS.slot]: request.slot,
      [TAGS.image]: `${request.image.name}:${request.image.version}`,
      [STABLE_LABEL_TAG]: stable,
      ...(secureEnv.length && request.keys ? { [KEYS_DIGEST_TAG]: keysDigestTag(request.keys) } : {}),
    },
    probes: true,
    ...(config.replicaIdentity ? { identityResourceId: config.replicaIdentity.resourceId } : {}),
  };
}

export class AciTarget implements DeployTarget {
  readonly kind = 'aci' as const;
  readonly groups: AciGroups;

  constructor(private readonly o: AciTargetOptions) {
    this.groups = new AciGroups(o);
  }

  async deploySlot(request: DeployRequest): Promise<DeployedSlot> {
    if (request.config.authEnabled && !request.keys) {
      throw new AppError('DeployKeysMissing', 'auth_enabled is true but no keys were given for the service.', 400);
    }
    const spec = aciSlotSpec(request, this.o.config, this.o.modelDataUrl);
    const before = await this.groups.get(spec.name);
    // Re-deploying the active slot in place keeps the service's public name on it (and its active tag).
    const active = before?.tags?.[TAGS.active] === 'true' && before.ipAddress?.dnsNameLabel ? before.ipAddress.dnsNameLabel : undefined;
    if (active) {
      spec.dnsNameLabel = active;
      spec.tags[TAGS.active] = 'true';
    }
    let outcome = await this.groups.ensureRunning(spec, { existing: before });
    const previousImage = before?.provisioningState === 'Succeeded' ? before.containers?.[0]?.image : undefined;
    if (!outcome.ok && previousImage && previousImage !== spec.image) {
      // In-place update of a running slot failed: put the previous image back (rollback), report the failure.
      const restored = await this.groups.ensureRunning({ ...spec, image: previousImage }, { existing: undefined });
      this.o.log?.(`container group ${spec.name} rolled back to ${previousImage}: ${restored.ok ? 'running' : 'failed'}`);
      outcome = { ok: false, error: { ...outcome.error, message: `${outcome.error.message}\nRolled back ${spec.name} to ${previousImage}${restored.ok ? '' : ' (which did not start either)'}.` } };
    }
    const base = outcome.ok ? `http://${outcome.fqdn}:${spec.port}` : `http://${spec.dnsNameLabel}.${spec.location ?? this.o.config.location}.azurecontainer.io:${spec.port}`;
    return {
      serviceName: request.serviceName,
      slot: request.slot,
      ...endpointUris(base),
      state: outcome.ok ? 'Healthy' : 'Failed',
      ...(outcome.ok ? {} : { error: outcome.error }),
    };
  }

  /**
   * ACI has no router: the service's public URI is a stable DNS name label (`dns_name_label`, else the service name,
   * + a scope hash; tag `mdf-stable-label`) that is moved to the new active group. DNS name labels are unique per
   * region, so the previously active group is deleted first (which releases the label), then the new group is
   * updated in place with that label (its container restarts; the keys are given again as secure values, ARM never
   * returns them). Between the two the public name does not answer: a gap of the restart plus DNS propagation,
   * typically under a minute (docs/azure.md). The slot's own label (used by the smoke test) is given up.
   */
  async switchTraffic(serviceName: string, slot: string, keys?: ServiceKeys): Promise<{ scoringUri: string; swaggerUri: string }> {
    const name = slotResourceName(serviceName, slot);
    const target = await this.groups.get(name);
    if (!target) {
      throw new AppError('SlotNotFound', `Service ${serviceName} has no slot ${slot} on ACI (container group ${name}); deploy it first.`, 404);
    }
    const previous = (await this.groups.listTagged(TAGS.service, serviceName)).filter(
      (g) => g.name !== name && g.tags?.[TAGS.active] === 'true',
    );
    const tags: Record<string, string> = { ...(target.tags ?? {}), [TAGS.active]: 'true' };
    await this.groups.setTags(name, tags);
    for (const g of previous) if (g.name) await this.groups.delete(g.name);
    const port = target.ipAddress?.ports?.[0]?.port ?? scoringPort({});
    const stable = target.tags?.[STABLE_LABEL_TAG];
    let fqdn = target.ipAddress?.fqdn ?? `${target.ipAddress?.dnsNameLabel}.${target.location ?? this.o.config.location}.azurecontainer.io`;
    if (stable && target.ipAddress?.dnsNameLabel !== stable) {
      const env = target.containers?.find((c) => c.name === ACI_CONTAINER)?.environmentVariables ?? [];
      const values: Record<string, string> = {};
      if (env.some((e) => e.name === RUNTIME_ENV.primaryKey && e.value === undefined)) {
        if (!keys) throw new AppError('DeployKeysMissing', `Container group ${name} uses key auth; its keys are needed to move the service's DNS name onto it.`, 500);
        values[RUNTIME_ENV.primaryKey] = keys.primaryKey;
        values[RUNTIME_ENV.secondaryKey] = keys.secondaryKey;
        tags[KEYS_DIGEST_TAG] = keysDigestTag(keys);
      }
      const outcome = await this.groups.updateSecureEnv(name, target, values, tags, { dnsNameLabel: stable });
      if (!outcome.ok) {
        throw new AppError('TrafficSwitchFailed', `Container group ${name} did not restart with the service's DNS name ${stable}: ${outcome.error.message}`, 502, { retryable: true });
      }
      fqdn = outcome.fqdn;
      this.o.log?.(`DNS name ${stable} moved to ${name}`);
    }
    const { scoringUri, swaggerUri } = endpointUris(`http://${fqdn}:${port}`);
    return { scoringUri, swaggerUri };
  }

  deleteSlot(serviceName: string, slot: string): Promise<void> {
    return this.groups.delete(slotResourceName(serviceName, slot));
  }

  async deleteService(serviceName: string): Promise<void> {
    for (const g of await this.groups.listTagged(TAGS.service, serviceName)) if (g.name) await this.groups.delete(g.name);
  }

  logTail(serviceName: string, slot: string, lines: number): Promise<string> {
    return this.groups.logTail(slotResourceName(serviceName, slot), lines);
  }

  /**
   * Key rotation on ACI. A running container group's environment cannot change, so the active group of a service
   * with key auth is updated in place with the new keys (same group, DNS name and scoring URI; its container
   * restarts, so the service answers 503/connection errors for the restart, typically under a minute and at most
   * AZURE_DEPLOY_TIMEOUT_SECONDS). A group that already has these keys (digest tag) is left alone, so the call
   * after each promotion costs one list and one read. The old key is refused as soon as the new container runs.
   */
  async updateKeys(serviceName: string, keys: ServiceKeys): Promise<void> {
    const digest = keysDigestTag(keys);
    const active = (await this.groups.listTagged(TAGS.service, serviceName)).filter((g) => g.tags?.[TAGS.active] === 'true' && g.name);
    for (const g of active) {
      const full = await this.groups.get(g.name!);
      if (!full || full.tags?.[KEYS_DIGEST_TAG] === digest) continue;
      const env = full.containers?.find((c) => c.name === ACI_CONTAINER)?.environmentVariables ?? [];
      if (!env.some((e) => e.name === RUNTIME_ENV.primaryKey)) continue; // no key auth on this group
      const outcome = await this.groups.updateSecureEnv(g.name!, full, { [RUNTIME_ENV.primaryKey]: keys.primaryKey, [RUNTIME_ENV.secondaryKey]: keys.secondaryKey }, {
        ...(full.tags ?? {}),
        [KEYS_DIGEST_TAG]: digest,
      });
      if (!outcome.ok) {
        throw new AppError('KeyRotationFailed', `The new keys were saved but container group ${g.name} did not restart with them: ${outcome.error.message}. Regenerate again or redeploy the service.`, 502);
      }
    }
  }
}
