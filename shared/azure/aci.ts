/**
 * Azure Container Instances, shared by the ACI deploy target and the ACI batch pools: the container group body
 * (image pulled with the user-assigned identity, cpu/memory, port, DNS label, secure keys, probes on `GET /`),
 * create-and-wait with crash-loop / image-pull detection (reported with the container's log, not as a
 * timeout), deletion, listing by tag and log tails.
 */
import type { Container, ContainerGroup, EnvironmentVariable, Volume } from '@azure/arm-containerinstance';
import { AppError, redactSecrets } from '../errors';
import type { ErrorInfo } from '../seams';
import type { AzureClients, AzureTiming } from './clients';
import { DEFAULT_TIMING } from './clients';
import type { AzureConfig } from './config';
import { isNotFound } from '../errors';
import { AZURE_ERROR_CODES, azureCall, azureGetOptional, toAzureError } from './errors';
import { MANAGED_BY, TAGS } from './names';
import { pollUntil } from './poll';

/** The one container in every group this app creates. */
export const ACI_CONTAINER = 'model';

export interface ContainerGroupSpec {
  name: string;
  image: string;
  cpu: number;
  memoryGb: number;
  port: number;
  dnsNameLabel: string;
  /** Azure region of the group (manifest `location`); absent → AZURE_LOCATION. */
  location?: string;
  /** Plain settings. */
  env: Array<[string, string]>;
  /** Secure settings (keys): `secureValue`, never returned by ARM. */
  secureEnv: Array<[string, string]>;
  tags: Record<string, string>;
  /** Probes on `GET /` (the runtime's liveness route). */
  probes: boolean;
  /**
   * `ssl_enabled`: the runtime serves HTTPS itself (ACI has no TLS termination of its own). The certificate and key
   * are files of a `secret` volume (their content goes only in the volume's secret values, never returned by ARM;
   * the environment names the files, never the PEM); the probes use https.
   */
  tls?: { volume: string; mountPath: string; files: Record<string, string> };
  /** Overrides the image's entrypoint (the service front runs the runtime's front-cli.js from a scoring image). */
  command?: string[];
  /** An emptyDir volume mounted at this path: kept across container restarts of the group (the front's state). */
  emptyDirPath?: string;
  /** The group's user-assigned identity (image pulls, `DefaultAzureCredential` inside); absent → the app's. */
  identityResourceId?: string;
}

/** Where the TLS secret volume is mounted in the scoring container, and its files (runtime `MDF_TLS_*_FILE`). */
export const ACI_TLS = { volume: 'tls', mountPath: '/mnt/mdf-tls', cert: 'tls.crt', key: 'tls.key' } as const;

/** A secret volume's values as ARM wants them (base64). */
function secretVolume(tls: NonNullable<ContainerGroupSpec['tls']>): Volume {
  return { name: tls.volume, secret: Object.fromEntries(Object.entries(tls.files).map(([f, text]) => [f, Buffer.from(text, 'utf8').toString('base64')])) };
}

/** Name of the emptyDir volume of `ContainerGroupSpec.emptyDirPath`. */
export const ACI_STATE_VOLUME = 'state';

/** The ARM container group for a spec (SDK model; the SDK nests it under `properties` on the wire). */
export function containerGroupBody(
  spec: ContainerGroupSpec,
  config: Pick<AzureConfig, 'location' | 'acrLoginServer' | 'managedIdentityResourceId'>,
): ContainerGroup {
  const environmentVariables: EnvironmentVariable[] = [
    ...spec.env.map(([name, value]) => ({ name, value })),
    ...spec.secureEnv.map(([name, secureValue]) => ({ name, secureValue })),
  ];
  const probe = { httpGet: { path: '/', port: spec.port, scheme: spec.tls ? 'https' : 'http' }, periodSeconds: 10, timeoutSeconds: 5 };
  const container: Container = {
    name: ACI_CONTAINER,
    image: spec.image,
    ports: [{ port: spec.port, protocol: 'TCP' }],
    resources: { requests: { cpu: spec.cpu, memoryInGB: spec.memoryGb } },
    environmentVariables,
    ...(spec.command ? { command: spec.command } : {}),
    ...(spec.tls || spec.emptyDirPath
      ? {
          volumeMounts: [
            ...(spec.tls ? [{ name: spec.tls.volume, mountPath: spec.tls.mountPath, readOnly: true }] : []),
            ...(spec.emptyDirPath ? [{ name: ACI_STATE_VOLUME, mountPath: spec.emptyDirPath }] : []),
          ],
        }
      : {}),
    ...(spec.probes
      ? {
          livenessProbe: { ...probe, initialDelaySeconds: 30, failureThreshold: 3 },
          readinessProbe: { ...probe, initialDelaySeconds: 5, failureThreshold: 3 },
        }
      : {}),
  };
  const identity = spec.identityResourceId ?? config.managedIdentityResourceId;
  return {
    location: spec.location ?? config.location,
    tags: { [TAGS.managedBy]: MANAGED_BY, ...spec.tags },
    identity: { type: 'UserAssigned', userAssignedIdentities: { [identity]: {} } },
    osType: 'Linux',
    restartPolicy: 'Always',
    imageRegistryCredentials: [{ server: config.acrLoginServer, identity }],
    ipAddress: { type: 'Public', dnsNameLabel: spec.dnsNameLabel, ports: [{ port: spec.port, protocol: 'TCP' }] },
    containers: [container],
    ...(spec.tls || spec.emptyDirPath
      ? { volumes: [...(spec.tls ? [secretVolume(spec.tls)] : []), ...(spec.emptyDirPath ? [{ name: ACI_STATE_VOLUME, emptyDir: {} }] : [])] }
      : {}),
  };
}

/**
 * The REST form of a container group (what the SDK sends): resource properties nested under `properties`, each
 * container's under its own `properties`. Secure values are masked unless `revealSecrets`. Used by `plan`.
 */
export function containerGroupWireBody(group: ContainerGroup, revealSecrets = false): Record<string, unknown> {
  const { location, tags, identity, zones, containers, volumes, ...props } = group as ContainerGroup & { zones?: string[] };
  // Secret volume values (TLS keys) are masked like secure environment values.
  const properties = {
    ...props,
    ...(volumes ? { volumes: volumes.map((v) => (v.secret && !revealSecrets ? { ...v, secret: Object.fromEntries(Object.keys(v.secret).map((k) => [k, '***'])) } : v)) } : {}),
  };
  const wireContainers = containers.map(({ name, environmentVariables, ...rest }) => ({
    name,
    properties: {
      ...rest,
      ...(environmentVariables
        ? { environmentVariables: environmentVariables.map((e) => (e.secureValue !== undefined && !revealSecrets ? { name: e.name, secureValue: '***' } : e)) }
        : {}),
    },
  }));
  return {
    location,
    ...(tags ? { tags } : {}),
    ...(identity ? { identity } : {}),
    ...(zones ? { zones } : {}),
    properties: { ...properties, containers: wireContainers },
  };
}

/** Result of waiting for a group: running (with its FQDN) or a failure a user can act on. */
export type GroupOutcome = { ok: true; fqdn: string } | { ok: false; error: ErrorInfo };

export interface AciGroupsOptions {
  clients: Pick<AzureClients, 'containerInstance'>;
  config: Pick<AzureConfig, 'resourceGroup' | 'location' | 'acrLoginServer' | 'managedIdentityResourceId' | 'deployTimeoutSeconds'>;
  timing?: AzureTiming;
  /** Restarts after which a container counts as crash-looping. */
  crashLoopRestarts?: number;
  log?: (message: string) => void;
}

/** Errors worth an activity retry rather than a failed slot. */
export function isTransient(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === AZURE_ERROR_CODES.throttled || code === AZURE_ERROR_CODES.service || code === AZURE_ERROR_CODES.network;
}

const IMAGE_PULL = /ErrImagePull|ImagePullBackOff|Failed to pull image|InaccessibleImage|RegistryErrorResponse/i;

export class AciGroups {
  readonly timing: AzureTiming;
  constructor(readonly o: AciGroupsOptions) {
    this.timing = o.timing ?? DEFAULT_TIMING;
  }

  private get rg() {
    return this.o.config.resourceGroup;
  }
  private get ops() {
    return this.o.clients.containerInstance.containerGroups;
  }

  get(name: string): Promise<ContainerGroup | undefined> {
    return azureGetOptional(`read container group ${name}`, () => this.ops.get(this.rg, name));
  }

  /**
   * Creates (or, when the image changed, updates) the group and waits until its container runs. An existing group
   * with the same image is not re-created (idempotent). ARM rejections become `{ ok: false }` (the slot failed);
   * transient Azure errors are thrown (the activity is retried).
   */
  async ensureRunning(spec: ContainerGroupSpec, known?: { existing: ContainerGroup | undefined }): Promise<GroupOutcome> {
    const existing = known ? known.existing : await this.get(spec.name);
    const sameImage =
      existing?.containers?.[0]?.image === spec.image && existing.provisioningState !== 'Failed' && existing.provisioningState !== 'Deleting';
    if (!sameImage) {
      try {
        await azureCall(`create container group ${spec.name}`, async () => {
          const poller = await this.ops.beginCreateOrUpdate(this.rg, spec.name, containerGroupBody(spec, this.o.config), {
            updateIntervalInMs: this.timing.lroIntervalMs,
          });
          return poller.pollUntilDone();
        });
      } catch (e) {
        if (isTransient(e)) throw e;
        const info = toAzureError(e, `create container group ${spec.name}`);
        return { ok: false, error: { code: info.code, message: info.message } };
      }
      this.o.log?.(`container group ${spec.name} provisioned`);
    }
    return this.waitRunning(spec.name);
  }

  /** Polls the group's instance view until its container runs, crash-loops, fails to pull, or time runs out. */
  async waitRunning(name: string): Promise<GroupOutcome> {
    const crashAfter = this.o.crashLoopRestarts ?? 3;
    const r = await pollUntil<GroupOutcome>(
      async () => {
        const g = await azureCall(`read container group ${name}`, () => this.ops.get(this.rg, name));
        const c = g.containers?.find((x) => x.name === ACI_CONTAINER) ?? g.containers?.[0];
        const view = c?.instanceView;
        const state = view?.currentState?.state;
        const detail = view?.currentState?.detailStatus ?? '';
        const events = [...(view?.events ?? []), ...(g.instanceView?.events ?? [])];
        const pull = events.find((e) => IMAGE_PULL.test(`${e.name ?? ''} ${e.message ?? ''}`)) ?? (IMAGE_PULL.test(detail) ? { message: detail } : undefined);
        if (pull) {
          return {
            done: true,
            value: {
              ok: false,
              error: {
                code: 'ImagePullFailed',
                message: redactSecrets(
                  `Container group ${name} cannot pull ${c?.image}: ${pull.message ?? detail}. Check that the image exists and the identity has AcrPull on the registry.`,
                ),
              },
            },
          };
        }
        const restarts = view?.restartCount ?? 0;
        const crashed = restarts >= crashAfter || /CrashLoopBackOff/i.test(detail);
        if (crashed) {
          const exit = view?.currentState?.exitCode ?? view?.previousState?.exitCode;
          const tail = await this.logTail(name, 30);
          return {
            done: true,
            value: {
              ok: false,
              error: {
                code: 'ContainerCrashLoop',
                message: redactSecrets(
                  `Container in ${name} keeps crashing (${restarts} restarts${exit !== undefined ? `, exit code ${exit}` : ''}). ` +
                    `Fix the entry script or model; last log lines:\n${tail || '(no output)'}`,
                ),
              },
            },
          };
        }
        if (g.provisioningState === 'Failed' || g.instanceView?.state === 'Failed') {
          const why = events.map((e) => e.message).filter(Boolean).slice(-3).join('; ');
          return {
            done: true,
            value: { ok: false, error: { code: 'AciProvisioningFailed', message: redactSecrets(`Container group ${name} failed: ${why || 'no reason given by ACI'}.`) } },
          };
        }
        if (state === 'Running' && g.provisioningState === 'Succeeded') {
          return { done: true, value: { ok: true, fqdn: g.ipAddress?.fqdn ?? `${g.ipAddress?.dnsNameLabel}.${g.location ?? this.o.config.location}.azurecontainer.io` } };
        }
        return { done: false };
      },
      { intervalMs: this.timing.pollIntervalMs, timeoutMs: this.o.config.deployTimeoutSeconds * 1000, now: this.timing.now },
    );
    if (!r.timedOut) return r.value;
    const tail = await this.logTail(name, 30);
    return {
      ok: false,
      error: {
        code: 'DeployTimeout',
        message: `Container group ${name} did not start within ${this.o.config.deployTimeoutSeconds} s; last log lines:\n${tail || '(no output)'}`,
      },
    };
  }

  /** Last lines of the model container's log; '' when the group or its log is absent. Secrets removed. */
  async logTail(name: string, lines: number): Promise<string> {
    try {
      const logs = await this.o.clients.containerInstance.containers.listLogs(this.rg, name, ACI_CONTAINER, { tail: lines });
      return redactSecrets((logs.content ?? '').replace(/\s+$/, ''));
    } catch (e) {
      if (isNotFound(e)) return '';
      throw toAzureError(e, `read the logs of container group ${name}`);
    }
  }

  /**
   * Sets secure environment values of a running group in place (key rotation): the same group (same DNS name,
   * same URI) is PUT again with the new values — ACI cannot change a running container's environment, so its
   * container restarts — then waited for like a deployment (`deployTimeoutSeconds`). Other values, probes,
   * identity and ports are the group's own (ARM never returns secure values, so only those given are sent).
   */
  async updateSecureEnv(
    name: string,
    group: ContainerGroup,
    values: Record<string, string>,
    tags: Record<string, string>,
    opts: { dnsNameLabel?: string; tls?: ContainerGroupSpec['tls'] } = {},
  ): Promise<GroupOutcome> {
    // A secret volume's content is never returned by ARM either: the TLS volume is given again (or the update refused).
    const volumes = (group.volumes ?? []).map((v) => {
      if (!v.secret) return v;
      if (v.name === ACI_TLS.volume && opts.tls) return secretVolume(opts.tls);
      throw new AppError('TlsMaterialMissing', `Container group ${name} serves HTTPS; its certificate and key are needed to update it in place.`, 500);
    });
    const body: ContainerGroup = {
      location: group.location,
      tags,
      ...(group.identity ? { identity: group.identity } : {}),
      osType: group.osType,
      restartPolicy: group.restartPolicy,
      ...(group.imageRegistryCredentials ? { imageRegistryCredentials: group.imageRegistryCredentials } : {}),
      ...(group.ipAddress ? { ipAddress: { type: group.ipAddress.type, ports: group.ipAddress.ports, dnsNameLabel: opts.dnsNameLabel ?? group.ipAddress.dnsNameLabel } } : {}),
      ...(group.volumes ? { volumes: group.volumes } : {}),
      containers: group.containers.map(({ instanceView: _view, environmentVariables, ...c }) => ({
        ...c,
        environmentVariables: (environmentVariables ?? [])
          .filter((e) => e.value !== undefined || values[e.name] !== undefined)
          .map((e) => (values[e.name] !== undefined ? { name: e.name, secureValue: values[e.name] } : e)),
      })),
      ...(volumes.length ? { volumes } : {}),
    };
    try {
      await azureCall(`update container group ${name}`, async () => {
        const poller = await this.ops.beginCreateOrUpdate(this.rg, name, body, { updateIntervalInMs: this.timing.lroIntervalMs });
        return poller.pollUntilDone();
      });
    } catch (e) {
      if (isTransient(e)) throw e;
      const info = toAzureError(e, `update container group ${name}`);
      return { ok: false, error: { code: info.code, message: info.message } };
    }
    this.o.log?.(`container group ${name} updated in place (secure values)`);
    return this.waitRunning(name);
  }

  /** Deletes a group; absent is not an error. */
  async delete(name: string): Promise<void> {
    try {
      const poller = await this.ops.beginDelete(this.rg, name, { updateIntervalInMs: this.timing.lroIntervalMs });
      await poller.pollUntilDone();
      this.o.log?.(`container group ${name} deleted`);
    } catch (e) {
      if (isNotFound(e)) return;
      throw toAzureError(e, `delete container group ${name}`);
    }
  }

  /** Groups of this resource group carrying `tag = value`. */
  async listTagged(tag: string, value: string): Promise<ContainerGroup[]> {
    return azureCall('list container groups', async () => {
      const out: ContainerGroup[] = [];
      for await (const g of this.ops.listByResourceGroup(this.rg)) {
        if (g.tags?.[tag] === value && g.tags?.[TAGS.managedBy] === MANAGED_BY) out.push(g);
      }
      return out;
    });
  }

  /** Replaces the group's tags (PATCH). */
  async setTags(name: string, tags: Record<string, string>): Promise<void> {
    await azureCall(`tag container group ${name}`, () => this.ops.update(this.rg, name, { tags }));
  }
}
