/**
 * `DeployTarget` on Azure Container Instances (the seed's dev/test target): one container group per service
 * slot, `<service>-<slot>`, with its own DNS name label → `http://<label>.<region>.azurecontainer.io:<port>`.
 * ACI has no router, so "switching traffic" marks the new slot's group as the service's active one (tag) and
 * deletes the previously active group; the service's public URI is the active slot's URI.
 */
import { createHash } from 'crypto';
import type { ContainerGroup } from '@azure/arm-containerinstance';
import type { DeployConfig, DeployedSlot, DeployRequest, DeployTarget, ServiceKeys } from '../seams';
import type { SlotTraffic, TrafficSnapshot } from '../rollout/traffic';
import { METRICS_KEY_HEADER, metricsHeaderValue, type FrontState } from '../../runtime';
import { ACI_CONTAINER, ACI_TLS, AciGroups, type AciGroupsOptions, type ContainerGroupSpec } from './aci';
import type { TlsMaterial } from '../tls';
import {
  aciFrontSpec,
  callFront,
  causeOf,
  frontGroupName,
  frontKeysDigest,
  frontSecureEnv,
  groupBaseUrl,
  groupCallUrl,
  httpCall,
  hasKeyAuth,
  isFrontGroup,
  sameRouting,
  type FrontAnswer,
} from './aci-front';
import { checkWeights, slotTrafficFromMetrics } from './aks-traffic';
import type { AzureConfig } from './config';
import type { FrontImageSource } from './front-image';
import { aciDnsLabel, serviceResourceName, slotResourceName, TAGS } from './names';
import { endpointUris, RUNTIME_ENV, runtimeSettings, scoringPort } from './runtime-env';
import { AppError } from '../errors';
import { observabilityEnv } from '../targets/observability-env';

export type AciTargetOptions = AciGroupsOptions & {
  config: AciGroupsOptions['config'] & Pick<AzureConfig, 'subscriptionId'> & Partial<Pick<AzureConfig, 'managedIdentityClientId' | 'replicaIdentity'>>;
  /** URL of the app's `modeldata` container (no SAS): where replicas with collect_model_data write, with the group's identity. */
  modelDataUrl?: string;
  /**
   * The service's secrets the service front needs (progressive delivery, aci-front.ts): the service's keys (for a
   * service with key auth) and the front's admin signing key. Wired to the service registry in shared/azure/index.ts.
   */
  secrets?: { keys(serviceName: string): Promise<ServiceKeys>; frontKey(serviceName: string): Promise<string> };
  /**
   * The service front's own image (front-image.ts: the runtime alone, built once per runtime version, never a
   * model's image, so no image deletion can leave a front Azure cannot restart). Wired to the ACR builder in
   * shared/azure/index.ts.
   */
  frontImage?: FrontImageSource;
};

type FrontRouting = Omit<FrontState, 'generation'>;

/**
 * Tag of a container group naming the keys it was given: a short SHA-256 of both keys (never the keys), so a key
 * update knows whether the running group already has them (ARM never returns secure values).
 */
export const KEYS_DIGEST_TAG = 'mdf-keys-digest';
/** Tag of a container group naming the service's stable DNS name label (moved to the active group at each switch). */
export const STABLE_LABEL_TAG = 'mdf-stable-label';
/** Tag of a container group that serves HTTPS: its public host name (`ssl_cname`, else its FQDN: `fqdn`). */
export const TLS_HOST_TAG = 'mdf-tls-host';
/** Port of a container group that serves HTTPS (AML's ACI TLS: https://<host>/score). */
export const ACI_TLS_PORT = 443;

/** Base URL of a group: `https://<ssl_cname or fqdn>` when it serves HTTPS (tag), else `http://<fqdn>:<port>`. */
function baseUrl(fqdn: string, port: number, tlsHost: string | undefined): string {
  if (!tlsHost) return `http://${fqdn}:${port}`;
  const host = tlsHost === 'fqdn' ? fqdn : tlsHost;
  return port === ACI_TLS_PORT ? `https://${host}` : `https://${host}:${port}`;
}

/** The TLS volume of a slot: the PEM when the deploy step read it, else (`plan`) where it is read from. */
function tlsVolume(tls: TlsMaterial | undefined, config?: DeployConfig): NonNullable<ContainerGroupSpec['tls']> {
  const shown = (r: object | undefined) => `(read from ${r ? Object.values(r)[0] : '?'} at deploy time)`;
  const files = tls ? { [ACI_TLS.cert]: tls.cert, [ACI_TLS.key]: tls.key } : { [ACI_TLS.cert]: shown(config?.tls?.cert), [ACI_TLS.key]: shown(config?.tls?.key) };
  return { volume: ACI_TLS.volume, mountPath: ACI_TLS.mountPath, files };
}

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
  const tls = request.config.tls;
  const port = tls ? ACI_TLS_PORT : scoringPort(request.config);
  const replicaClientId = config.replicaIdentity?.clientId ?? config.managedIdentityClientId;
  return {
    name,
    ...(location ? { location } : {}),
    image: request.image.imageRef,
    cpu: request.config.cpuCores,
    memoryGb: request.config.memoryGb,
    port,
    dnsNameLabel: aciDnsLabel(label, scope),
    env: [
      ...runtimeSettings(request.config).map(([k, v]): [string, string] => (k === RUNTIME_ENV.port ? [k, String(port)] : [k, v])),
      // ssl_enabled: the runtime serves HTTPS with the files of the secret volume (the variables name files, never PEM).
      ...(tls
        ? ([
            [RUNTIME_ENV.tlsCertFile, `${ACI_TLS.mountPath}/${ACI_TLS.cert}`],
            [RUNTIME_ENV.tlsKeyFile, `${ACI_TLS.mountPath}/${ACI_TLS.key}`],
          ] as Array<[string, string]>)
        : []),
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
      ...(tls ? { [TLS_HOST_TAG]: tls.cname ?? 'fqdn' } : {}),
    },
    probes: true,
    ...(tls ? { tls: tlsVolume(request.tls, request.config) } : {}),
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
    if (request.config.tls && !request.tls) {
      throw new AppError('TlsMaterialMissing', `ssl_enabled is set but no certificate and key were given for ${request.serviceName}.`, 400);
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
    const fqdn = outcome.ok ? outcome.fqdn : `${spec.dnsNameLabel}.${spec.location ?? this.o.config.location}.azurecontainer.io`;
    // The slot's direct URI (smoke test) is its own FQDN; the ssl_cname names the public endpoint only.
    const base = baseUrl(fqdn, spec.port, spec.tls ? 'fqdn' : undefined);
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
  async switchTraffic(serviceName: string, slot: string, keys?: ServiceKeys, tls?: TlsMaterial): Promise<{ scoringUri: string; swaggerUri: string }> {
    const name = slotResourceName(serviceName, slot);
    const target = await this.groups.get(name);
    if (!target) {
      throw new AppError('SlotNotFound', `Service ${serviceName} has no slot ${slot} on ACI (container group ${name}); deploy it first.`, 404);
    }
    const all = await this.groups.listTagged(TAGS.service, serviceName);
    const front = all.find((g) => isFrontGroup(g) && g.provisioningState !== 'Failed' && g.provisioningState !== 'Deleting');
    if (front) return this.switchThroughFront(serviceName, slot, target, front, all);
    const previous = all.filter((g) => g.name !== name && g.tags?.[TAGS.active] === 'true' && !isFrontGroup(g));
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
      const outcome = await this.groups.updateSecureEnv(name, target, values, tags, { dnsNameLabel: stable, ...this.tlsOf(target.tags, tls) });
      if (!outcome.ok) {
        throw new AppError('TrafficSwitchFailed', `Container group ${name} did not restart with the service's DNS name ${stable}: ${outcome.error.message}`, 502, { retryable: true });
      }
      fqdn = outcome.fqdn;
      this.o.log?.(`DNS name ${stable} moved to ${name}`);
    }
    const { scoringUri, swaggerUri } = endpointUris(baseUrl(fqdn, port, target.tags?.[TLS_HOST_TAG]));
    return { scoringUri, swaggerUri };
  }

  /** The TLS volume to give again when a group that serves HTTPS (tag) is updated in place; none for a plain one. */
  private tlsOf(tags: Record<string, string> | undefined, tls: TlsMaterial | undefined): { tls?: ContainerGroupSpec['tls'] } {
    if (!tags?.[TLS_HOST_TAG] || !tls) return {};
    return { tls: tlsVolume(tls) };
  }

  /**
   * Removes a slot's group. With a service front, the slot is first taken out of the front's state when no live
   * traffic goes to it (weight 0 or absent: rolled back, or retired after the promotion), so the front never
   * forwards to a deleted group.
   */
  async deleteSlot(serviceName: string, slot: string): Promise<void> {
    const front = await this.liveFront(serviceName);
    if (front) {
      const key = await this.secrets().frontKey(serviceName);
      const cur = await callFront(groupCallUrl(front, this.o.config.location), key, 'GET');
      const st = cur.state;
      if (Object.prototype.hasOwnProperty.call(st.slots, slot)) {
        if ((st.weights[slot] ?? 0) > 0 || (st.serving === slot && !Object.keys(st.weights).length)) {
          this.o.log?.(`the front of ${serviceName} still sends traffic to ${slot}; its state is left as is (the rollout sets the weights)`);
        } else {
          const slots = Object.fromEntries(Object.entries(st.slots).filter(([s]) => s !== slot));
          const weights = Object.fromEntries(Object.entries(st.weights).filter(([s]) => s !== slot));
          const live = Object.keys(weights).length > 1 ? weights : {};
          const serving = st.serving !== slot ? st.serving : Object.keys(weights)[0];
          await this.putFrontState(serviceName, front, key, { slots, weights: live, ...(serving ? { serving } : {}), ...(st.mirror && st.mirror.slot !== slot ? { mirror: st.mirror } : {}) }, cur);
        }
      }
    }
    await this.groups.delete(slotResourceName(serviceName, slot));
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
  async updateKeys(serviceName: string, keys: ServiceKeys, tls?: TlsMaterial): Promise<void> {
    const digest = keysDigestTag(keys);
    const groups = await this.groups.listTagged(TAGS.service, serviceName);
    const active = groups.filter((g) => g.tags?.[TAGS.active] === 'true' && g.name && !isFrontGroup(g));
    const front = groups.find((g) => isFrontGroup(g) && g.name);
    if (front && front.tags?.[KEYS_DIGEST_TAG] !== frontKeysDigest(keys)) await this.updateFrontKeys(serviceName, front.name!, keys);
    for (const g of active) {
      const full = await this.groups.get(g.name!);
      if (!full || full.tags?.[KEYS_DIGEST_TAG] === digest) continue;
      const env = full.containers?.find((c) => c.name === ACI_CONTAINER)?.environmentVariables ?? [];
      if (!env.some((e) => e.name === RUNTIME_ENV.primaryKey)) continue; // no key auth on this group
      const outcome = await this.groups.updateSecureEnv(g.name!, full, { [RUNTIME_ENV.primaryKey]: keys.primaryKey, [RUNTIME_ENV.secondaryKey]: keys.secondaryKey }, {
        ...(full.tags ?? {}),
        [KEYS_DIGEST_TAG]: digest,
      }, this.tlsOf(full.tags, tls));
      if (!outcome.ok) {
        throw new AppError('KeyRotationFailed', `The new keys were saved but container group ${g.name} did not restart with them: ${outcome.error.message}. Regenerate again or redeploy the service.`, 502);
      }
    }
  }

  // ------------------------------------------------------------------ service front (progressive delivery)

  private secrets(): NonNullable<AciTargetOptions['secrets']> {
    if (!this.o.secrets) throw new AppError('FrontSecretsMissing', 'This ACI target was built without access to the services\' secrets; the service front cannot be controlled.', 500);
    return this.o.secrets;
  }

  private frontImage(): FrontImageSource {
    if (!this.o.frontImage) throw new AppError('FrontImageUnavailable', 'This ACI target was built without the service front\'s image builder; the service front cannot be created.', 500);
    return this.o.frontImage;
  }

  private get scope(): string {
    return `${this.o.config.subscriptionId}/${this.o.config.resourceGroup}`;
  }

  /** The service's front group, when it has one that did not fail. */
  private async liveFront(serviceName: string): Promise<ContainerGroup | undefined> {
    const g = await this.groups.get(frontGroupName(serviceName));
    return g && g.provisioningState !== 'Failed' && g.provisioningState !== 'Deleting' ? g : undefined;
  }

  private async slotGroup(serviceName: string, slot: string): Promise<ContainerGroup> {
    const name = slotResourceName(serviceName, slot);
    const g = await this.groups.get(name);
    if (!g) throw new AppError('SlotNotFound', `Service ${serviceName} has no slot ${slot} on ACI (container group ${name}); deploy it first.`, 404);
    return g;
  }

  /** The service's keys when `g` runs with key auth (the front forwards with them, the gates read /metrics with them). */
  private async keysFor(serviceName: string, groups: ContainerGroup[]): Promise<ServiceKeys | undefined> {
    return groups.some(hasKeyAuth) ? this.secrets().keys(serviceName) : undefined;
  }

  /**
   * Progressive delivery on ACI (docs/azure.md, "Progressive delivery on ACI"): the service front (aci-front.ts)
   * splits live traffic by `weights` (slot → percent) and copies `mirror.percent` of requests to the shadow slot,
   * comparing its answers. The first call of a service creates the front: the service's stable DNS name moves from
   * the serving group to it (the serving group restarts under its own name: a gap like a blue/green switch's, once
   * per service). Idempotent: the state is only written when it differs. Returns the figures after the change.
   */
  async setTrafficWeights(serviceName: string, weights: Record<string, number>, options?: { mirror?: { slot: string; percent: number; tolerance: number } }): Promise<TrafficSnapshot> {
    const entries = checkWeights(serviceName, weights);
    const mirror = options?.mirror;
    const names = [...new Set([...Object.keys(weights), ...(mirror ? [mirror.slot] : [])])];
    const serving = [...entries].sort((a, b) => b[1] - a[1])[0][0];
    let groups: Record<string, ContainerGroup> = {};
    for (const slot of names) groups[slot] = await this.slotGroup(serviceName, slot);
    let front = await this.liveFront(serviceName);
    if (!front) {
      front = await this.createFront(serviceName, groups, serving);
      groups = {};
      for (const slot of names) groups[slot] = await this.slotGroup(serviceName, slot);
    }
    const key = await this.secrets().frontKey(serviceName);
    const routing: FrontRouting = {
      slots: Object.fromEntries(names.map((s) => [s, groupBaseUrl(groups[s], this.o.config.location)])),
      serving,
      weights,
      ...(mirror ? { mirror } : {}),
    };
    const answer = await this.putFrontState(serviceName, front, key, routing);
    this.o.log?.(`traffic of ${serviceName}: ${entries.map(([s, w]) => `${s}=${w}%`).join(', ')}${mirror ? `, ${mirror.percent}% mirrored to ${mirror.slot}` : ''}`);
    return this.snapshotOf(serviceName, answer, groups);
  }

  /** The front's figures (weights, shadow comparison) and each weighted slot's runtime /metrics (gate figures). */
  async trafficSnapshot(serviceName: string): Promise<TrafficSnapshot> {
    const front = await this.liveFront(serviceName);
    if (!front) {
      throw new AppError('FrontNotFound', `Service ${serviceName} has no service front on ACI (container group ${frontGroupName(serviceName)}): its traffic is not split.`, 404);
    }
    const answer = await callFront(groupCallUrl(front, this.o.config.location), await this.secrets().frontKey(serviceName), 'GET');
    return this.snapshotOf(serviceName, answer);
  }

  /** Writes the front's routing when it differs from what the front has (generation + 1). */
  private async putFrontState(serviceName: string, front: ContainerGroup, key: string, routing: FrontRouting, current?: FrontAnswer): Promise<FrontAnswer> {
    const base = groupCallUrl(front, this.o.config.location);
    const cur = current ?? (await callFront(base, key, 'GET'));
    if (sameRouting(cur.state, routing)) return cur;
    return callFront(base, key, 'PUT', { ...routing, generation: cur.state.generation + 1 });
  }

  /**
   * A snapshot from the front's answer: weights and shadow figures are the front's; each slot's figures are its
   * runtime's /metrics (read directly from the slot's group, with the metrics key when it has key auth). The epoch is
   * the front's (its shadow counters start again when it restarts: the rollout restarts its window); each slot's
   * container is a part, keyed by group, start time and restart count, so a slot that restarts counts from zero in
   * the window rather than restarting it (as AKS pods: shared/rollout/traffic.ts `windowOf`).
   */
  private async snapshotOf(serviceName: string, answer: FrontAnswer, known: Record<string, ContainerGroup> = {}): Promise<TrafficSnapshot> {
    const st = answer.state;
    const weighted = Object.keys(st.weights).length ? Object.keys(st.weights) : st.serving ? [st.serving] : [];
    const names = [...new Set([...weighted, ...(st.mirror ? [st.mirror.slot] : [])])];
    const groups: Record<string, ContainerGroup> = {};
    for (const slot of names) groups[slot] = known[slot] ?? (await this.slotGroup(serviceName, slot));
    const keys = await this.keysFor(serviceName, Object.values(groups));
    const header = keys ? metricsHeaderValue(keys) : undefined;
    const slots: Record<string, SlotTraffic> = {};
    const parts: NonNullable<TrafficSnapshot['parts']> = {};
    for (const slot of names) {
      const g = groups[slot];
      const view = (g.containers?.find((c) => c.name === ACI_CONTAINER) ?? g.containers?.[0])?.instanceView;
      const part = `${g.name}:${String(view?.currentState?.startTime ?? '')}:${view?.restartCount ?? 0}`;
      const url = `${groupCallUrl(g, this.o.config.location)}/metrics`;
      let res: { status: number; text: string };
      try {
        res = await httpCall(url, { headers: header ? { [METRICS_KEY_HEADER]: header } : {}, what: `Slot ${slot}'s /metrics` });
      } catch (e) {
        if (e instanceof AppError) throw e;
        throw new AppError('MetricsUnreachable', `Slot ${slot} of ${serviceName} did not answer GET /metrics: ${causeOf(e)}`, 502, { retryable: true });
      }
      const text = res.text;
      if (res.status !== 200) {
        throw new AppError('RolloutNeedsMetrics', `Slot ${slot} of ${serviceName} answered ${res.status} to GET /metrics; the gates cannot read its figures.`, 502, { retryable: res.status >= 500 });
      }
      slots[slot] = slotTrafficFromMetrics(text);
      parts[part] = { slot, traffic: slots[slot] };
    }
    return {
      epoch: `aci-${answer.snapshot.epoch}`,
      weights: st.weights,
      ...(answer.snapshot.serving ? { serving: answer.snapshot.serving } : st.serving ? { serving: st.serving } : {}),
      ...(st.mirror ? { mirror: { slot: st.mirror.slot, percent: st.mirror.percent } } : {}),
      slots,
      parts,
      ...(answer.snapshot.shadow ? { shadow: answer.snapshot.shadow } : {}),
    };
  }

  /**
   * Creates the service front: the service's stable DNS name is taken off the group that holds it (that group is
   * updated in place under its own name: it restarts), then the front group is created with it, serving the
   * serving slot. If the front does not start, the name goes back to the serving group (the service answers at its
   * URI again) and the rollout fails with the reason.
   */
  private async createFront(serviceName: string, groups: Record<string, ContainerGroup>, serving: string): Promise<ContainerGroup> {
    const s = groups[serving];
    const stable = s.tags?.[STABLE_LABEL_TAG] ?? aciDnsLabel(serviceResourceName(serviceName), this.scope);
    const keys = await this.keysFor(serviceName, Object.values(groups));
    const adminKey = await this.secrets().frontKey(serviceName);
    // The front's own image first (built at the first front of this runtime version): nothing has moved yet if it fails.
    const image = await this.frontImage().ref();
    const holder = Object.values(groups).find((g) => g.ipAddress?.dnsNameLabel === stable);
    const keyValues = (g: ContainerGroup): Record<string, string> =>
      hasKeyAuth(g) && keys ? { [RUNTIME_ENV.primaryKey]: keys.primaryKey, [RUNTIME_ENV.secondaryKey]: keys.secondaryKey } : {};
    if (holder?.name) {
      const own = aciDnsLabel(holder.name, this.scope);
      const moved = await this.groups.updateSecureEnv(holder.name, holder, keyValues(holder), holder.tags ?? {}, { dnsNameLabel: own });
      if (!moved.ok) throw new AppError('FrontSetupFailed', `Container group ${holder.name} did not restart under its own DNS name ${own}: ${moved.error.message}`, 502, { retryable: true });
      this.o.log?.(`DNS name ${stable} taken off ${holder.name} (now ${own}) for the service front`);
    }
    const servingNow = await this.slotGroup(serviceName, serving);
    const port = servingNow.ipAddress?.ports?.[0]?.port ?? scoringPort({});
    const spec = aciFrontSpec({
      serviceName,
      image,
      port,
      dnsNameLabel: stable,
      ...(servingNow.location ? { location: servingNow.location } : {}),
      state: { generation: 1, serving, slots: { [serving]: groupBaseUrl(servingNow, this.o.config.location) }, weights: {} },
      adminKey,
      ...(keys ? { keys } : {}),
      tags: { [STABLE_LABEL_TAG]: stable, [KEYS_DIGEST_TAG]: frontKeysDigest(keys) },
    });
    const outcome = await this.groups.ensureRunning(spec, { existing: undefined });
    if (!outcome.ok) {
      await this.groups.delete(spec.name);
      let back = '';
      if (holder?.name) {
        const restored = await this.groups.updateSecureEnv(holder.name, servingNow, keyValues(servingNow), servingNow.tags ?? {}, { dnsNameLabel: stable });
        back = restored.ok ? ` The DNS name ${stable} is back on ${holder.name}.` : ` The DNS name ${stable} could not be put back on ${holder.name}: ${restored.error.message}`;
      }
      throw new AppError('FrontStartFailed', `The service front of ${serviceName} (container group ${spec.name}, image ${image}) did not start: ${outcome.error.message}.${back}`, 502);
    }
    this.o.log?.(`service front ${spec.name} of ${serviceName} runs with DNS name ${stable}`);
    const created = await this.groups.get(spec.name);
    if (!created) throw new AppError('FrontSetupFailed', `Container group ${spec.name} vanished after it started.`, 502, { retryable: true });
    return created;
  }

  /** Blue/green switch of a service with a front: the front serves `slot` (one state change: no gap), tags follow. */
  private async switchThroughFront(serviceName: string, slot: string, target: ContainerGroup, front: ContainerGroup, all: ContainerGroup[]): Promise<{ scoringUri: string; swaggerUri: string }> {
    const name = slotResourceName(serviceName, slot);
    await this.putFrontState(serviceName, front, await this.secrets().frontKey(serviceName), {
      slots: { [slot]: groupBaseUrl(target, this.o.config.location) },
      serving: slot,
      weights: {},
    });
    if (target.tags?.[TAGS.active] !== 'true') await this.groups.setTags(name, { ...(target.tags ?? {}), [TAGS.active]: 'true' });
    for (const g of all) {
      if (g.name && g.name !== name && !isFrontGroup(g) && g.tags?.[TAGS.active] === 'true') {
        const { [TAGS.active]: _was, ...rest } = g.tags;
        await this.groups.setTags(g.name, rest);
      }
    }
    const { scoringUri, swaggerUri } = endpointUris(groupBaseUrl(front, this.o.config.location));
    return { scoringUri, swaggerUri };
  }

  /**
   * New keys for the front: its group is updated in place (it restarts with its current state and the new keys). A
   * front created before the front had its own image (it ran a model's scoring image) moves to the front image in the
   * same restart — no restart of its own — when that image is already built (a key regeneration never waits for a
   * build); else it keeps its image (logged) until a later rotation.
   */
  private async updateFrontKeys(serviceName: string, name: string, keys: ServiceKeys): Promise<void> {
    const full = await this.groups.get(name);
    if (!full || !hasKeyAuth(full)) return;
    const adminKey = await this.secrets().frontKey(serviceName);
    const cur = await callFront(groupCallUrl(full, this.o.config.location), adminKey, 'GET');
    let group = full;
    const running = full.containers?.[0]?.image;
    const image = this.o.frontImage ? await this.o.frontImage.ready().catch((e: unknown) => (this.o.log?.(`service front ${name}: its own image is not known: ${(e as Error).message}`), undefined)) : undefined;
    if (!image && running) this.o.log?.(`service front ${name} keeps its image ${running} (its own image is not built yet)`);
    if (image && running !== image) {
      group = { ...full, containers: full.containers.map((c) => (c.name === ACI_CONTAINER ? { ...c, image } : c)) };
      this.o.log?.(`service front ${name} moves from ${running} to its own image ${image} with the new keys`);
    }
    const outcome = await this.groups.updateSecureEnv(name, group, frontSecureEnv(adminKey, cur.state, keys), { ...(full.tags ?? {}), [KEYS_DIGEST_TAG]: frontKeysDigest(keys) });
    if (!outcome.ok) {
      throw new AppError('KeyRotationFailed', `The new keys were saved but the service front ${name} did not restart with them: ${outcome.error.message}. Regenerate again or redeploy the service.`, 502);
    }
  }
}
