/**
 * The deploy → smoke-test → promote / roll back steps for one service, each idempotent and JSON-in/JSON-out so
 * an activity wraps each one (activities/*.ts; the workflow is orchestrations/deployModel.ts).
 *
 * First deployment: slot `blue` → smoke test → traffic → `Healthy` (or `Failed` with the reason + log tail).
 * Update: the other slot starts beside the serving one → smoke test → atomic switch → old slot removed; on failure
 * the new slot is removed, the old one keeps serving and the outcome is `RolledBack` with the reason.
 */
import { AppError, redactSecrets, toErrorInfo } from '../errors';
import type { ImageRegistry } from '../images/image-registry';
import { runSmokeTest, type SmokeTestResult } from '../scoring/smoke';
import { issueToken } from '../../runtime';
import { POOL_FIELDS, type DeployConfig, type DeployTarget, type DeployedSlot, type ErrorInfo, type ServiceKeys } from '../seams';
import type { DeployServiceInput } from './contract';
import type { BeginDeploymentResult, ServiceRecord, ServiceRegistry } from '../registry/services';
import type { StorageClients } from '../storage';
import { loadTlsMaterial, type SecretReader, type TlsMaterial } from '../tls';

export interface DeployContext {
  services: ServiceRegistry;
  images: ImageRegistry;
  target: DeployTarget;
  livenessTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Log lines added to failure reasons (default 20). */
  logLines?: number;
  /** Where `ssl_enabled` services' certificates and keys are read from (shared/tls.ts); absent: TLS is refused. */
  tls?: { storage: StorageClients; secrets: SecretReader };
}

/**
 * The certificate and key of a service with `ssl_enabled`, read and checked (undefined without TLS). Read in the
 * step that needs them, never returned from it: the run's history holds only the references.
 */
export async function tlsFor(ctx: Pick<DeployContext, 'tls'>, config: Pick<DeployConfig, 'tls'>): Promise<TlsMaterial | undefined> {
  if (!config.tls) return undefined;
  if (!ctx.tls) throw new AppError('TlsUnavailable', 'This deployment of the app cannot read TLS certificates (no storage or Key Vault access configured).', 500);
  return loadTlsMaterial(config.tls, ctx.tls);
}

export type { DeployServiceInput } from './contract';

/**
 * Why a deployment must stop because its service is going away: a (forced) `DELETE` marked it `Deleting` or
 * removed it while the run held it. Undefined while the service still exists.
 */
export async function serviceDeletedError(ctx: Pick<DeployContext, 'services'>, input: Pick<DeployServiceInput, 'serviceName' | 'runId'>): Promise<ErrorInfo | undefined> {
  const rec = await ctx.services.find(input.serviceName);
  if (rec && rec.state !== 'Deleting') return undefined;
  return {
    code: 'ServiceDeleted',
    message: `Service ${input.serviceName} was deleted while run ${input.runId} was deploying it; the deployment stopped and its slot was removed.`,
  };
}

/** Step 1: claim the service (409 `DeploymentInProgress` if another run holds it) and pick the slot. */
export function prepareDeployment(ctx: DeployContext, input: DeployServiceInput): Promise<BeginDeploymentResult> {
  return ctx.services.beginDeployment({
    name: input.serviceName,
    runId: input.runId,
    target: input.target,
    image: input.image.id,
    runtime: input.image.runtime,
    models: input.image.models,
    config: input.config,
    ...(input.description !== undefined ? { description: input.description } : {}),
    ...(input.tags ? { tags: input.tags } : {}),
    ...(input.inPlace ? { inPlace: true } : {}),
  });
}

/**
 * Step 2 of an in-place update (instead of `deploySlotStep`): the change touches no replica (record-only fields,
 * shared/deploy/update.ts), so nothing starts or stops; the serving slot is checked (on targets whose slots can lose
 * their host, brought back as `ensureSlot` does) and its URIs returned for the smoke test. On ACI/AKS, whose serving
 * slot is reached through the service's public URI, those are the public URIs. `Failed` when the run does not hold
 * the serving slot (another run took it over) or the service was deleted meanwhile.
 */
export async function updateInPlaceStep(ctx: DeployContext, input: DeployServiceInput, slot: string): Promise<DeployedSlot> {
  const failed = (error: ErrorInfo): DeployedSlot => ({ serviceName: input.serviceName, slot, scoringUri: '', swaggerUri: '', healthUri: '', state: 'Failed', error });
  const deleted = await serviceDeletedError(ctx, input);
  if (deleted) return failed(deleted);
  const rec = await ctx.services.get(input.serviceName);
  if (rec.activeSlot !== slot || rec.currentDeployment?.runId !== input.runId || !rec.scoringUri) {
    return failed({ code: 'DeploymentNotHeld', message: `Run ${input.runId} does not hold the serving slot ${slot} of ${input.serviceName} (serving: ${rec.activeSlot ?? 'none'}).` });
  }
  if (stableConfig(input.config) !== stableConfig(rec.config)) {
    // The replica count or autoscale settings (the door allows no other change in place): resized where it runs.
    if (stableConfig(input.config, POOL_FIELDS) !== stableConfig(rec.config, POOL_FIELDS) || !ctx.target.resizeSlot) {
      return failed({ code: 'NotUpdatableInPlace', message: `This change of ${input.serviceName}'s configuration needs new replicas on ${input.target}; update it blue/green.` });
    }
    return ctx.target.resizeSlot(input.serviceName, slot, input.config);
  }
  if (ctx.target.ensureSlot) return ctx.target.ensureSlot(input.serviceName, slot);
  const base = new URL(rec.scoringUri);
  return {
    serviceName: input.serviceName,
    slot,
    scoringUri: rec.scoringUri,
    swaggerUri: rec.swaggerUri ?? new URL('swagger.json', base).toString(),
    healthUri: new URL('/', base).toString(),
    state: 'Healthy',
  };
}

/** A configuration as comparable JSON (sorted keys), without the `omit` fields. */
function stableConfig(c: DeployConfig, omit: ReadonlyArray<keyof DeployConfig> = []): string {
  const o = Object.fromEntries(Object.entries(c).filter(([k, v]) => v !== undefined && !omit.includes(k as keyof DeployConfig)));
  return JSON.stringify(o, Object.keys(o).sort());
}

/** Step 2: start the slot (idempotent per service + slot). Keys go to the target only when auth is on. */
export async function deploySlotStep(ctx: DeployContext, input: DeployServiceInput, slot: string): Promise<DeployedSlot> {
  if (input.image.state !== 'Succeeded' || !input.image.imageRef) {
    return {
      serviceName: input.serviceName,
      slot,
      scoringUri: '',
      swaggerUri: '',
      healthUri: '',
      state: 'Failed',
      error: { code: 'ImageNotReady', message: `Image ${input.image.id} is ${input.image.state}; only Succeeded images can be deployed.` },
    };
  }
  const failed = (error: ErrorInfo): DeployedSlot => ({ serviceName: input.serviceName, slot, scoringUri: '', swaggerUri: '', healthUri: '', state: 'Failed', error });
  const deletedBefore = await serviceDeletedError(ctx, input);
  if (deletedBefore) return failed(deletedBefore);
  const keys = await authFor(ctx, input);
  // ssl_enabled: the certificate and key are read and checked before anything starts (a bad pair fails the slot).
  let tls: TlsMaterial | undefined;
  try {
    tls = await tlsFor(ctx, input.config);
  } catch (e) {
    if (e instanceof AppError && !e.retryable && e.httpStatus < 500) return failed(toErrorInfo(e));
    throw e;
  }
  const deployed = await ctx.target.deploySlot({
    serviceName: input.serviceName,
    slot,
    image: { name: input.image.name, version: input.image.version, imageRef: input.image.imageRef, runtime: input.image.runtime, contextBlob: input.image.contextBlob },
    config: input.config,
    ...(keys ? { keys } : {}),
    ...(tls ? { tls } : {}),
  });
  // Deleted while the slot started (its start may have failed because of it): report the deletion (the rollback removes the slot).
  const deletedDuring = await serviceDeletedError(ctx, input);
  return deletedDuring ? failed(deletedDuring) : deployed;
}

/** Step 3: smoke-test the slot's direct URIs. */
export async function smokeTestStep(ctx: DeployContext, input: DeployServiceInput, deployed: DeployedSlot): Promise<SmokeTestResult> {
  const deleted = await serviceDeletedError(ctx, input);
  if (deleted) return { ok: false, code: deleted.code, reason: deleted.message, swagger: 'skipped', checks: [] };
  const keys = await authFor(ctx, input);
  // After a host restart the slot's URIs in the run's history may name processes that are gone: ensure it first.
  if (ctx.target.ensureSlot) {
    const live = await ctx.target.ensureSlot(input.serviceName, deployed.slot);
    if (live.state !== 'Healthy') {
      return {
        ok: false,
        reason: `slot ${deployed.slot} is not running: ${live.error?.message ?? live.state}`,
        swagger: 'skipped',
        checks: [],
        logTail: await ctx.target.logTail(input.serviceName, deployed.slot, ctx.logLines ?? 20).catch(() => ''),
      };
    }
    deployed = live;
  }
  return runSmokeTest({
    healthUri: deployed.healthUri,
    scoringUri: deployed.scoringUri,
    swaggerUri: deployed.swaggerUri,
    ...(keys ? { key: keys.tokenSecret ? (await issueToken(input.serviceName, keys.tokenSecret)).accessToken : keys.primaryKey } : {}),
    ...(input.smokeTest ?? {}),
    ...(input.schema ?? {}),
    ...(ctx.livenessTimeoutMs ? { livenessTimeoutMs: ctx.livenessTimeoutMs } : {}),
    ...(ctx.requestTimeoutMs ? { requestTimeoutMs: ctx.requestTimeoutMs } : {}),
    logTail: () => ctx.target.logTail(input.serviceName, deployed.slot, ctx.logLines ?? 20),
    stopIf: () => serviceDeletedError(ctx, input),
  });
}

/**
 * Step 4 (success): switch traffic and record the new state (the service is released: the deployment worked).
 * Everything that can fail and must not undo a working deployment (retiring the previous slot) is in
 * `retirePreviousStep`, which the caller runs after this one and never rolls back for.
 */
export async function promoteStep(ctx: DeployContext, input: DeployServiceInput, slot: string): Promise<ServiceRecord> {
  // A service deleted after its smoke test gets no traffic switch (which would start a public endpoint again).
  const deleted = await serviceDeletedError(ctx, input);
  if (deleted) throw new AppError(deleted.code, deleted.message, 409);
  // Usage first: a failure here (retried, then rolled back) happens before any traffic reaches the new slot.
  await ctx.images.addServiceUsage(input.image.name, input.image.version, input.serviceName);
  let uris: { scoringUri: string; swaggerUri: string };
  const serving = input.inPlace ? await ctx.services.get(input.serviceName) : undefined;
  if (serving?.scoringUri && serving.swaggerUri && serving.activeSlot === slot) {
    // In place: traffic already goes to this slot with these keys; only the record changes.
    uris = { scoringUri: serving.scoringUri, swaggerUri: serving.swaggerUri };
  } else {
    const keys = await authFor(ctx, input);
    const tls = await tlsFor(ctx, input.config);
    uris = await ctx.target.switchTraffic(input.serviceName, slot, keys, tls);
    if (keys && ctx.target.updateKeys) await ctx.target.updateKeys(input.serviceName, keys, tls);
  }
  return ctx.services.completeDeployment(input.serviceName, input.runId, {
    slot,
    image: input.image.id,
    runtime: input.image.runtime,
    models: input.image.models,
    config: input.config,
    scoringUri: uris.scoringUri,
    swaggerUri: uris.swaggerUri,
    ...(input.description !== undefined ? { description: input.description } : {}),
    ...(input.tags ? { tags: input.tags } : {}),
  });
}

/**
 * Step 5 (after a promotion, best effort): remove the previous slot and free the previous image. Never touches
 * the slot the service record says is serving. Returns what it could not do (empty when all went well).
 */
export async function retirePreviousStep(ctx: DeployContext, input: DeployServiceInput, slot: string, previous: { slot?: string; image?: string }): Promise<{ notes: string[] }> {
  const notes: string[] = [];
  const active = (await ctx.services.find(input.serviceName))?.activeSlot;
  if (previous.slot && previous.slot !== slot && previous.slot !== active) {
    try {
      await ctx.target.deleteSlot(input.serviceName, previous.slot);
    } catch (e) {
      notes.push(`previous slot ${previous.slot} was not removed: ${toErrorInfo(e).message}`);
    }
  }
  if (previous.image && previous.image !== input.image.id) {
    try {
      const i = previous.image.lastIndexOf(':');
      await ctx.images.removeServiceUsage(previous.image.slice(0, i), Number(previous.image.slice(i + 1)), input.serviceName);
    } catch (e) {
      notes.push(`image ${previous.image} is still marked as used by ${input.serviceName}: ${toErrorInfo(e).message}`);
    }
  }
  return { notes };
}

/**
 * What the target needs to check callers of a service with this configuration: its keys (key auth), its keys and
 * token secret (token auth: the keys stay for a later switch back), nothing without auth.
 */
export async function serviceAuth(services: Pick<ServiceRegistry, 'ensureKeys' | 'ensureTokenSecret'>, name: string, config: Pick<DeployConfig, 'authEnabled' | 'tokenAuthEnabled'>): Promise<ServiceKeys | undefined> {
  if (config.tokenAuthEnabled) return { ...(await services.ensureKeys(name)), tokenSecret: await services.ensureTokenSecret(name) };
  return config.authEnabled ? services.ensureKeys(name) : undefined;
}

async function authFor(ctx: DeployContext, input: DeployServiceInput): Promise<ServiceKeys | undefined> {
  if (!input.config.authEnabled && !input.config.tokenAuthEnabled) return undefined;
  await requireKeys(ctx, input.serviceName);
  return serviceAuth(ctx.services, input.serviceName, input.config);
}

/** The keys of a service whose record exists (a deleted service's keys are never recreated). */
async function requireKeys(ctx: DeployContext, serviceName: string) {
  const rec = await ctx.services.find(serviceName);
  if (!rec || rec.state === 'Deleting') {
    throw new AppError('ServiceNotFound', `Service ${serviceName} ${rec ? 'is being deleted' : 'no longer exists'}; its keys are not recreated.`, 409);
  }
  return ctx.services.ensureKeys(serviceName);
}

/**
 * Step 4 (failure): keep the log tail in the reason, remove the new slot, restore/mark the service.
 * Never removes the slot the service record says is serving (a promotion that completed is not undone); if
 * traffic may already have reached the new slot, it is switched back to the serving slot first.
 */
export async function rollbackStep(
  ctx: DeployContext,
  input: DeployServiceInput,
  slot: string,
  reason: ErrorInfo,
  logTail?: string,
): Promise<{ service: ServiceRecord | undefined; rolledBack: boolean; error: ErrorInfo }> {
  const rec0 = await ctx.services.find(input.serviceName);
  if (!rec0 || rec0.state === 'Deleting') {
    // The service was deleted meanwhile: nothing serves any more, so remove whatever this run started on the
    // target (the delete may have run before the slot existed) and leave the record to the delete.
    await ctx.target.deleteService(input.serviceName);
    return { service: rec0, rolledBack: false, error: { code: reason.code, message: redactSecrets(reason.message) } };
  }
  let tail = logTail;
  if (tail === undefined) {
    try {
      tail = await ctx.target.logTail(input.serviceName, slot, ctx.logLines ?? 20);
    } catch {
      tail = '';
    }
  }
  const message = redactSecrets(tail ? `${reason.message}\nLast log lines of slot ${slot}:\n${tail}` : reason.message);
  const error = { code: reason.code, message };
  const rec = await ctx.services.find(input.serviceName);
  if (rec?.activeSlot === slot) {
    // The slot serves traffic (this run's promotion completed, or another run's): leave it running.
    if (rec.currentDeployment?.runId !== input.runId) return { service: rec, rolledBack: false, error };
    // An in-place update that resized the pool: back to the size the record (not promoted) still says.
    if (input.inPlace && ctx.target.resizeSlot && stableConfig(input.config) !== stableConfig(rec.config)) {
      const back = await ctx.target.resizeSlot(input.serviceName, slot, rec.config).catch((e: unknown) => ({ state: 'Failed' as const, error: toErrorInfo(e) }));
      if (back.state !== 'Healthy') error.message += `\nThe replica pool of slot ${slot} could not be resized back: ${redactSecrets(back.error?.message ?? back.state)}`;
    }
  } else {
    if (rec?.activeSlot) {
      // Traffic back on the serving slot, which the target starts again if a host restart stopped it.
      try {
        await ctx.target.switchTraffic(input.serviceName, rec.activeSlot);
      } catch (e) {
        error.message += `\nThe serving slot ${rec.activeSlot} could not be started again: ${redactSecrets(toErrorInfo(e).message)}`;
      }
    }
    await ctx.target.deleteSlot(input.serviceName, slot);
  }
  const { service, rolledBack } = await ctx.services.failDeployment(input.serviceName, input.runId, error);
  return { service, rolledBack, error };
}

/**
 * Releases a hold whose run has ended without releasing it (crashed host, terminated or purged run): removes the
 * slot that run was starting (never the serving one; an in-place run's resized serving pool goes back to the
 * record's size, `DeployTarget.resetSlotPool`) and records the failure, so a new deployment can start.
 * A no-op when `runId` no longer holds the service.
 */
export async function releaseStaleDeployment(ctx: DeployContext, name: string, runId: string, reason: ErrorInfo): Promise<void> {
  const rec = await ctx.services.find(name);
  const held = rec?.currentDeployment;
  if (!rec || !held || held.runId !== runId) return;
  if (held.slot !== rec.activeSlot) {
    try {
      await ctx.target.deleteSlot(name, held.slot);
    } catch {
      /* the next deployment into this slot replaces it */
    }
  } else {
    // An in-place update held the serving slot and may have resized its pool: the pool follows the record again
    // (queued on the target, not awaited: the caller is the request taking the service over).
    ctx.target.resetSlotPool?.(name, held.slot, rec.config);
  }
  try {
    await ctx.services.failDeployment(name, runId, reason);
  } catch (e) {
    if (!(e instanceof AppError && e.code === 'DeploymentNotHeld')) throw e; // someone else released it first
  }
}

/** Deletes a service: 409 while a deployment runs (unless forced); stops it on its target; frees its image. */
export async function deleteService(ctx: DeployContext, name: string, opts: { force?: boolean } = {}): Promise<void> {
  const rec = await ctx.services.beginDelete(name, opts);
  await ctx.target.deleteService(name);
  if (rec.image) {
    const i = rec.image.lastIndexOf(':');
    await ctx.images.removeServiceUsage(rec.image.slice(0, i), Number(rec.image.slice(i + 1)), name);
  }
  if (rec.currentDeployment) {
    const i = rec.currentDeployment.image.lastIndexOf(':');
    await ctx.images.removeServiceUsage(rec.currentDeployment.image.slice(0, i), Number(rec.currentDeployment.image.slice(i + 1)), name);
  }
  await ctx.services.remove(name);
}

/** Regenerates a key and applies it to the running endpoint when the target supports it. */
export async function regenerateServiceKey(ctx: Pick<DeployContext, 'services' | 'target' | 'tls'>, name: string, which: 'Primary' | 'Secondary') {
  const keys = await ctx.services.regenerateKey(name, which);
  const rec = await ctx.services.find(name);
  if (ctx.target.updateKeys && rec && (rec.config.authEnabled || rec.config.tokenAuthEnabled)) {
    // A target that restarts the endpoint with the new keys (ACI) needs its certificate again (never kept by Azure).
    await ctx.target.updateKeys(name, (await serviceAuth(ctx.services, name, rec.config)) ?? keys, await tlsFor(ctx, rec.config));
  }
  return keys;
}
