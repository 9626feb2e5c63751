/**
 * `PATCH /api/services/{name}` (AML `service.update(...)`): deploy-configuration fields and/or another built image,
 * turned into a deployment run of the service's current (or the given) image with the changed configuration — the
 * same run as any deployment (claim at the door, smoke test, promote or roll back), with nothing registered or built
 * (`DeployRunInput.registered`).
 *
 * How it runs (`DeployRunInput.update`): in place when every changed field is one no replica reads
 * (`IN_PLACE_FIELDS`: the service's tags and description, and `image` naming the serving image) or, on a target that
 * resizes a running pool (local, AKS), the pool's size (`POOL_SIZE_FIELDS`) — the serving slot stays, no replica restarts
 * (a resize starts the missing ones or stops the extra ones), the smoke test runs on it and the record changes at
 * promote; blue/green otherwise — a new slot with the new configuration, smoke-tested before traffic switches, as a
 * deployment. Every other field is read by the replicas when they start (runtime arguments and environment,
 * container resources, ACI's secure environment, the AKS keys mount), so it needs new replicas.
 *
 * The smoke test is the deployment's: the sample, expected output and schema of the run that put the serving
 * version in place (`ServiceRecord.servingRunId`; an update passes them on), or liveness only when that run is gone.
 */
import { z } from 'zod';
import { badRequest } from '../errors';
import { describeIssues, targetCommonFields, targetScalingFields, type DeploymentManifest } from '../manifest/schema';
import type { ServiceRecord } from '../registry/services';
import type { DeployConfig } from '../seams';
import type { DeployRunInput } from './contract';
import { resolveRegistered } from './registered';
import { findRun, type RunClient } from './start-run';

const { primary_key: _p, secondary_key: _s, ssl_enabled: _t, ssl_cert_pem_file: _c, ssl_key_pem_file: _k, ssl_cname: _n, ...common } = targetCommonFields;
/**
 * The fields a PATCH may carry (the manifest's `target` fields, keys excepted: they rotate through `/keys`; TLS
 * excepted: its references are resolved against a manifest's folder, so it changes with a new deployment — a PATCH
 * keeps the service's TLS settings as they are).
 */
export const servicePatchSchema = z.strictObject({ ...common, ...targetScalingFields, image: z.string().min(1).max(512).optional() });
export type ServicePatch = z.output<typeof servicePatchSchema>;

const SCALING = Object.keys(targetScalingFields);

/** Validates a PATCH body: 400 `InvalidServiceUpdate` naming each bad or unknown field, or when it changes nothing. */
export function parseServicePatch(body: unknown): ServicePatch {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('InvalidServiceUpdate', 'The body must be a JSON object of deploy-configuration fields (e.g. {"num_replicas": 2}) and/or "image".');
  const parsed = servicePatchSchema.safeParse(body);
  if (!parsed.success) throw badRequest('InvalidServiceUpdate', describeIssues(parsed.error.issues));
  if (Object.keys(parsed.data).length === 0) {
    throw badRequest('InvalidServiceUpdate', `The body changes nothing; give one or more of ${Object.keys(servicePatchSchema.shape).join(', ')}.`);
  }
  return parsed.data;
}

/** The service's configuration with the patch applied (the manifest's rules: num_replicas turns autoscale off, …). */
export function patchedConfig(record: ServiceRecord, p: ServicePatch): DeployConfig {
  if (record.target === 'aci') {
    const scaling = Object.keys(p).filter((k) => SCALING.includes(k));
    if (scaling.length) throw badRequest('InvalidServiceUpdate', `${scaling.join(', ')}: an ACI service has one container group with no scaling settings.`);
  }
  if (p.num_replicas !== undefined && p.autoscale_enabled === true) throw badRequest('InvalidServiceUpdate', 'num_replicas and autoscale_enabled=true are exclusive (num_replicas disables autoscale).');
  const c: DeployConfig = { ...record.config };
  if (p.cpu_cores !== undefined) c.cpuCores = p.cpu_cores;
  if (p.memory_gb !== undefined) c.memoryGb = p.memory_gb;
  if (p.auth_enabled !== undefined) c.authEnabled = p.auth_enabled;
  if (p.token_auth_enabled !== undefined) c.tokenAuthEnabled = p.token_auth_enabled;
  if (p.token_auth_enabled === true && p.auth_enabled === undefined) c.authEnabled = false;
  if (p.auth_enabled === true && p.token_auth_enabled === undefined) c.tokenAuthEnabled = false;
  if (c.authEnabled && c.tokenAuthEnabled) throw badRequest('AuthModesExclusive', 'auth_enabled and token_auth_enabled cannot both be true (as in AML): a service takes keys or tokens.');
  if (c.tokenAuthEnabled && record.target === 'aci') throw badRequest('TokenAuthNotSupported', 'ACI services support key auth only (as in AML).');
  if (p.collect_model_data !== undefined) c.collectModelData = p.collect_model_data;
  if (p.enable_app_insights !== undefined) c.enableAppInsights = p.enable_app_insights;
  if (p.num_replicas !== undefined) {
    c.numReplicas = p.num_replicas;
    c.autoscaleEnabled = false;
  }
  if (p.autoscale_enabled !== undefined) c.autoscaleEnabled = p.autoscale_enabled;
  if (c.autoscaleEnabled) delete c.numReplicas;
  else if (c.numReplicas === undefined) c.numReplicas = 1;
  if (p.autoscale_min_replicas !== undefined) c.autoscaleMinReplicas = p.autoscale_min_replicas;
  if (p.autoscale_max_replicas !== undefined) c.autoscaleMaxReplicas = p.autoscale_max_replicas;
  if (c.autoscaleMinReplicas > c.autoscaleMaxReplicas) throw badRequest('InvalidServiceUpdate', `autoscale_min_replicas (${c.autoscaleMinReplicas}) is greater than autoscale_max_replicas (${c.autoscaleMaxReplicas}).`);
  if (p.autoscale_target_utilization !== undefined) c.autoscaleTargetUtilization = p.autoscale_target_utilization;
  if (p.autoscale_refresh_seconds !== undefined) c.autoscaleRefreshSeconds = p.autoscale_refresh_seconds;
  if (p.replica_max_concurrent_requests !== undefined) c.replicaMaxConcurrentRequests = p.replica_max_concurrent_requests;
  if (p.scoring_timeout_ms !== undefined) c.scoringTimeoutMs = p.scoring_timeout_ms;
  if (p.max_request_wait_time !== undefined) c.maxRequestWaitTimeMs = p.max_request_wait_time;
  return c;
}

/** Fields an update applies in place on every target (no replica reads them). */
export const IN_PLACE_FIELDS: readonly string[] = ['tags', 'description'];
/**
 * The replica pool's size, applied in place where the target resizes a running pool without restarting a replica
 * (`DeployTarget.resizeSlot`: the local pool, an AKS Deployment's replicas and autoscaler). ACI has no scaling fields.
 */
export const POOL_SIZE_FIELDS: readonly string[] = ['num_replicas', 'autoscale_enabled', 'autoscale_min_replicas', 'autoscale_max_replicas', 'autoscale_target_utilization', 'autoscale_refresh_seconds'];

/** The PATCH fields applied in place on a service of `target`; any other field, or another image, is blue/green. */
export function inPlaceFields(target: ServiceRecord['target']): readonly string[] {
  return target === 'aci' ? IN_PLACE_FIELDS : [...IN_PLACE_FIELDS, ...POOL_SIZE_FIELDS];
}

/** The smoke test (and schema) of the run that put the serving version in place; none when that run is gone. */
export async function servingChecks(client: Pick<RunClient, 'getStatus'>, record: ServiceRecord): Promise<Pick<DeploymentManifest, 'smokeTest' | 'schema'>> {
  if (!record.servingRunId) return {};
  const run = await findRun(client, record.servingRunId);
  const input = run?.input as Partial<DeployRunInput> | undefined;
  const m = input && typeof input === 'object' ? input.manifest : undefined;
  if (!m || typeof m !== 'object' || m.service?.name !== record.name) return {};
  return { ...(m.smokeTest && typeof m.smokeTest === 'object' ? { smokeTest: m.smokeTest } : {}), ...(m.schema && typeof m.schema === 'object' ? { schema: m.schema } : {}) };
}

/**
 * The run input of an update of `record`: its serving image (or `patch.image`) with the patched configuration,
 * tags and description, the serving version's smoke test (`checks`), and how it runs (in place or blue/green).
 * 409 `ServiceNotDeployed` when nothing serves yet (no image to keep).
 */
export async function updateRunInput(record: ServiceRecord, patch: ServicePatch, runId: string, checks: Pick<DeploymentManifest, 'smokeTest' | 'schema'> = {}): Promise<DeployRunInput> {
  const image = patch.image ?? record.image;
  if (!image) throw badRequest('ServiceNotDeployed', `Service ${record.name} has no serving image yet; deploy it first (POST /api/deployments) or give "image".`);
  const manifest: DeploymentManifest = {
    model: { name: record.models[0]?.split(':')[0] ?? record.name, files: [], tags: {}, properties: {}, none: true },
    image: { name: image.split(':')[0], existing: image, tags: {} },
    target: record.target,
    deployConfig: patchedConfig(record, patch),
    service: {
      name: record.name,
      ...((patch.description ?? record.description) !== undefined ? { description: patch.description ?? record.description } : {}),
      tags: patch.tags ?? record.tags,
    },
    ...checks,
  };
  const input = await resolveRegistered({ source: { kind: 'http', eventId: runId }, model: manifest.model, files: { model: [] }, manifest });
  const fields = Object.keys(patch).sort();
  const sameImage = input.manifest?.image.existing === record.image && !!record.activeSlot;
  const inPlace = sameImage && fields.every((f) => inPlaceFields(record.target).includes(f) || f === 'image');
  return { ...input, update: { mode: inPlace ? 'inPlace' : 'blueGreen', fields } };
}
