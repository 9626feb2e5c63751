/**
 * Service records (AML `Webservice`): one row per service in the `services` table, keys in a separate
 * `servicekeys` table (listings never read it). A deployment holds the service (`currentDeployment`) from
 * `beginDeployment` to `completeDeployment` / `failDeployment`: a second deployment meanwhile → 409
 * `DeploymentInProgress` (ETag-conditioned, so two starters cannot both win).
 */
import { randomBytes } from 'crypto';
import type { TableClient } from '@azure/data-tables';
import { AppError, conflict, isNotFound, notFound, statusOf } from '../errors';
import { checkServiceName } from '../manifest/names';
import { getEntityOrUndefined } from './versioned';
import type { DeployConfig, ErrorInfo, ServiceKeys, TargetKind } from '../seams';
import { TABLES, type StorageClients } from '../storage';

export type ServiceState = 'Transitioning' | 'Healthy' | 'Failed' | 'Deleting';

export interface ServiceDeployment {
  runId: string;
  slot: string;
  /** `name:version` of the image being deployed. */
  image: string;
  startedTime: string;
  /** Set by `renewDeployment` (long rollouts): the lease runs from here instead of `startedTime`. */
  renewedTime?: string;
}

/** Milliseconds since a deployment's lease started or was last renewed (compared with `DEPLOYMENT_LEASE_MS`). */
export function leaseAge(d: Pick<ServiceDeployment, 'startedTime' | 'renewedTime'>, now: number): number {
  return now - Date.parse(d.renewedTime ?? d.startedTime);
}

export interface ServiceRecord {
  name: string;
  state: ServiceState;
  target: TargetKind;
  /** `name:version` of the image serving traffic (absent before the first successful deployment). */
  image?: string;
  runtime?: string;
  models: string[];
  config: DeployConfig;
  scoringUri?: string;
  swaggerUri?: string;
  activeSlot?: string;
  authEnabled: boolean;
  description?: string;
  tags: Record<string, string>;
  createdTime: string;
  updatedTime: string;
  lastError?: ErrorInfo;
  /** The run that holds the service, while one runs. */
  currentDeployment?: ServiceDeployment;
  /** Run id of the last deployment that finished (succeeded, failed or rolled back). */
  lastRunId?: string;
  /**
   * Run id of the deployment (or update) that put the serving version in place: its input holds the smoke test an
   * update of the service runs again (shared/deploy/update.ts).
   */
  servingRunId?: string;
}

const PK = 'service';
const KEYS_PK = 'keys';
/** Row of a service's token signing secret (token auth), in the keys table. */
const TOKEN_PK = 'token';
/**
 * Row of the secret the service front's admin key is derived from on AKS (shared/azure/index.ts `frontSecrets`). Its
 * own secret, never the token secret: token-auth slots hold that one (their keys file), so user code could sign
 * admin writes to the front with it.
 */
const FRONT_PK = 'front';
/** Door claims (same table, own partition: listings never see them). */
const CLAIM_PK = 'claim';

/** A claim taken when a deployment is accepted, before its run starts (see `claimService`). */
export interface ServiceClaim {
  runId: string;
  claimedTime: string;
  /** The request that claimed it (HTTP): another request for the same run waits until this one has started it. */
  requestId?: string;
}

/**
 * A claim whose run has not started stops blocking the service after this (a refused or crashed request). A
 * request still receiving its files renews its claim every `CLAIM_RENEW_MS` (`renewClaim`).
 */
export const CLAIM_START_GRACE_MS = 2 * 60 * 1000;
export const CLAIM_RENEW_MS = 20 * 1000;

type Row = { data: string };

function newKey(): string {
  return randomBytes(32).toString('base64url');
}

/** Deployments older than this are considered abandoned and no longer block a new one. */
export const DEPLOYMENT_LEASE_MS = 2 * 60 * 60 * 1000;

export interface BeginDeploymentRequest {
  name: string;
  runId: string;
  target: TargetKind;
  image: string;
  runtime?: string;
  models?: string[];
  config: DeployConfig;
  description?: string;
  tags?: Record<string, string>;
  /** An in-place update: the run holds the serving slot itself (409 `ServiceNotDeployed` when nothing serves). */
  inPlace?: boolean;
}

export interface BeginDeploymentResult {
  service: ServiceRecord;
  /** The slot to deploy into (the one not serving). */
  slot: string;
  /** The slot serving now (an update), absent for a first deployment. */
  previousSlot?: string;
  previousImage?: string;
  isUpdate: boolean;
}

export class ServiceRegistry {
  constructor(private readonly storage: StorageClients) {}

  private table(): Promise<TableClient> {
    return this.storage.ensureTable(TABLES.services);
  }

  private async read(name: string): Promise<{ record: ServiceRecord; etag: string } | undefined> {
    const e = await getEntityOrUndefined<Row>(await this.table(), PK, name);
    return e ? { record: JSON.parse(e.data) as ServiceRecord, etag: e.etag } : undefined;
  }

  /** Conditional write: insert when `etag` is undefined, else replace If-Match. Returns false on a lost race. */
  private async write(record: ServiceRecord, etag: string | undefined): Promise<boolean> {
    const t = await this.table();
    const entity = { partitionKey: PK, rowKey: record.name, data: JSON.stringify(record) };
    try {
      if (etag === undefined) await t.createEntity(entity);
      else await t.updateEntity(entity, 'Replace', { etag });
      return true;
    } catch (e) {
      if (statusOf(e) === 409 || statusOf(e) === 412) return false;
      throw e;
    }
  }

  /** Read-modify-write with retries on concurrent changes. */
  private async mutate(name: string, change: (cur: ServiceRecord | undefined) => ServiceRecord | undefined): Promise<ServiceRecord | undefined> {
    for (let i = 0; i < 50; i++) {
      const cur = await this.read(name);
      const next = change(cur?.record);
      if (!next) return cur?.record;
      if (await this.write(next, cur?.etag)) return next;
      await new Promise((r) => setTimeout(r, Math.random() * 20));
    }
    throw conflict('UpdateContended', `Service ${name} is changing too often; retry.`);
  }

  async get(name: string): Promise<ServiceRecord> {
    checkServiceName(name, 'service');
    const r = await this.read(name);
    if (!r) throw notFound('ServiceNotFound', `Service ${name} does not exist.`);
    return r.record;
  }

  async find(name: string): Promise<ServiceRecord | undefined> {
    return (await this.read(name))?.record;
  }

  /** All services (never their keys). Optional filters: target, state, image (`name` or `name:version`), model. */
  async list(filter: { target?: TargetKind; state?: ServiceState; image?: string; model?: string } = {}): Promise<ServiceRecord[]> {
    const t = await this.table();
    const out: ServiceRecord[] = [];
    for await (const e of t.listEntities<Row>({ queryOptions: { filter: `PartitionKey eq '${PK}'` } })) out.push(JSON.parse(e.data) as ServiceRecord);
    const matchRef = (id: string | undefined, ref: string) => !!id && (id === ref || id.startsWith(`${ref}:`));
    return out
      .filter((s) => !filter.target || s.target === filter.target)
      .filter((s) => !filter.state || s.state === filter.state)
      .filter((s) => !filter.image || matchRef(s.image, filter.image))
      .filter((s) => !filter.model || s.models.some((m) => matchRef(m, filter.model!)))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /**
   * Claims the service for run `runId` (idempotent for the same run). Creates the record for a first deployment.
   * Another run holding it → 409 `DeploymentInProgress`; a service being deleted → 409 `ServiceDeleting`.
   * A different target than the existing service → 409.
   */
  async beginDeployment(req: BeginDeploymentRequest): Promise<BeginDeploymentResult> {
    checkServiceName(req.name);
    const now = new Date();
    let result: BeginDeploymentResult | undefined;
    await this.mutate(req.name, (cur) => {
      if (cur?.state === 'Deleting') {
        throw conflict('ServiceDeleting', `Service ${req.name} is being deleted; wait until the delete finishes, then deploy again.`);
      }
      if (cur?.currentDeployment) {
        if (cur.currentDeployment.runId === req.runId) {
          result = { service: cur, slot: cur.currentDeployment.slot, previousSlot: cur.activeSlot, previousImage: cur.image, isUpdate: !!cur.activeSlot };
          return undefined;
        }
        const age = leaseAge(cur.currentDeployment, now.getTime());
        if (age < DEPLOYMENT_LEASE_MS) {
          throw conflict(
            'DeploymentInProgress',
            `Service ${req.name} is being deployed by run ${cur.currentDeployment.runId} (image ${cur.currentDeployment.image}); wait for it to finish, then retry.`,
          );
        }
      }
      if (cur && cur.lastRunId === req.runId && !cur.currentDeployment) {
        throw conflict('DeploymentFinished', `Run ${req.runId} already finished its deployment of ${req.name}.`);
      }
      if (cur && cur.target !== req.target && cur.activeSlot) {
        throw conflict('TargetMismatch', `Service ${req.name} runs on ${cur.target}; delete it before deploying it to ${req.target}.`);
      }
      if (req.inPlace && !cur?.activeSlot) {
        throw conflict('ServiceNotDeployed', `Service ${req.name} has no serving slot to update in place; deploy it first (POST /api/deployments).`);
      }
      const slot = req.inPlace ? cur!.activeSlot! : cur?.activeSlot === 'blue' ? 'green' : 'blue';
      const deployment: ServiceDeployment = { runId: req.runId, slot, image: req.image, startedTime: now.toISOString() };
      const next: ServiceRecord = cur
        ? { ...cur, state: 'Transitioning', currentDeployment: deployment, updatedTime: now.toISOString() }
        : {
            name: req.name,
            state: 'Transitioning',
            target: req.target,
            models: req.models ?? [],
            config: req.config,
            authEnabled: req.config.authEnabled,
            tags: req.tags ?? {},
            ...(req.description !== undefined ? { description: req.description } : {}),
            createdTime: now.toISOString(),
            updatedTime: now.toISOString(),
            currentDeployment: deployment,
          };
      result = { service: next, slot, previousSlot: cur?.activeSlot, previousImage: cur?.image, isUpdate: !!cur?.activeSlot };
      return next;
    });
    // The record holds the service for this run now: its door claim has served its purpose.
    await this.releaseClaim(req.name, req.runId);
    return result!;
  }

  /**
   * Claims the service name for run `runId` when its deployment is accepted (HTTP request, blob event, training
   * message), before anything is stored or started: a conditional insert, so of two requests for one service exactly
   * one wins; the other gets 409 `ServiceBusy` naming the run that holds it. The same run claiming again is a no-op;
   * `beginDeployment` of that run adopts the claim (and removes it). A claim whose holder `isStale` (its run ended,
   * or never started) is replaced.
   */
  async claim(name: string, runId: string, isStale: (holder: ServiceClaim) => Promise<boolean>, requestId?: string): Promise<void> {
    checkServiceName(name);
    const t = await this.table();
    for (let i = 0; i < 10; i++) {
      try {
        await t.createEntity({ partitionKey: CLAIM_PK, rowKey: name, runId, claimedTime: new Date().toISOString(), ...(requestId ? { requestId } : {}) });
        return;
      } catch (e) {
        if (statusOf(e) !== 409) throw e;
      }
      const cur = await getEntityOrUndefined<ServiceClaim>(t, CLAIM_PK, name);
      if (!cur) continue;
      const holder: ServiceClaim = { runId: cur.runId, claimedTime: cur.claimedTime, ...(cur.requestId ? { requestId: cur.requestId } : {}) };
      if (cur.runId === runId) {
        // The same run: a re-delivered event adopts the claim; a second request with the same Idempotency-Key while
        // the first is still storing its files must not write (or remove) the same files.
        if (!requestId || !cur.requestId || cur.requestId === requestId || (await isStale(holder))) return;
        throw conflict('RequestInProgress', `A request with the same Idempotency-Key (run ${runId}) is still being received; retry once it has been answered.`);
      }
      if (!(await isStale(holder))) {
        throw conflict('ServiceBusy', `Service ${name} is taken by run ${cur.runId}, accepted before this request and not finished; wait for it (GET /api/runs/${cur.runId}), then retry.`);
      }
      try {
        await t.deleteEntity(CLAIM_PK, name, { etag: cur.etag });
      } catch (e) {
        if (!isNotFound(e) && statusOf(e) !== 412) throw e;
      }
    }
    throw conflict('UpdateContended', `Service ${name} is being claimed by several requests at once; retry.`);
  }

  /**
   * Renews run `runId`'s hold on the service (a rollout that bakes or waits for an approval longer than the lease).
   * False when the run does not hold it any more (its lease expired and another deployment took over, or it ended).
   */
  async renewDeployment(name: string, runId: string): Promise<boolean> {
    let held = false;
    await this.mutate(name, (cur) => {
      held = cur?.currentDeployment?.runId === runId;
      if (!cur?.currentDeployment || !held) return undefined;
      return { ...cur, currentDeployment: { ...cur.currentDeployment, renewedTime: new Date().toISOString() } };
    });
    return held;
  }

  /** Renews run `runId`'s claim (its request is still receiving files). False when the claim is not this request's any more. */
  async renewClaim(name: string, runId: string, requestId?: string): Promise<boolean> {
    const t = await this.table();
    const cur = await getEntityOrUndefined<ServiceClaim>(t, CLAIM_PK, name);
    if (!cur || cur.runId !== runId || (requestId && cur.requestId && cur.requestId !== requestId)) return false;
    try {
      await t.updateEntity({ partitionKey: CLAIM_PK, rowKey: name, claimedTime: new Date().toISOString() }, 'Merge', { etag: cur.etag });
      return true;
    } catch (e) {
      if (isNotFound(e) || statusOf(e) === 412) return false;
      throw e;
    }
  }

  /** Removes run `runId`'s claim on the service (absent, held by another run or request: nothing to do). */
  async releaseClaim(name: string, runId: string, requestId?: string): Promise<void> {
    const t = await this.table();
    const cur = await getEntityOrUndefined<ServiceClaim>(t, CLAIM_PK, name);
    if (!cur || cur.runId !== runId || (requestId && cur.requestId && cur.requestId !== requestId)) return;
    try {
      await t.deleteEntity(CLAIM_PK, name, { etag: cur.etag });
    } catch (e) {
      if (!isNotFound(e) && statusOf(e) !== 412) throw e;
    }
  }

  private holding(cur: ServiceRecord | undefined, name: string, runId: string): ServiceRecord {
    if (!cur) throw notFound('ServiceNotFound', `Service ${name} does not exist.`);
    if (cur.currentDeployment?.runId !== runId) {
      throw conflict('DeploymentNotHeld', `Run ${runId} does not hold service ${name}${cur.currentDeployment ? ` (run ${cur.currentDeployment.runId} does)` : ''}.`);
    }
    return cur;
  }

  /** Traffic now goes to the new slot: record the image, URIs and config; release the service. Idempotent. */
  async completeDeployment(
    name: string,
    runId: string,
    done: { slot: string; image: string; runtime?: string; models: string[]; config: DeployConfig; scoringUri: string; swaggerUri: string; description?: string; tags?: Record<string, string> },
  ): Promise<ServiceRecord> {
    const rec = await this.mutate(name, (cur) => {
      if (cur && cur.lastRunId === runId && !cur.currentDeployment) return undefined;
      const held = this.holding(cur, name, runId);
      const next: ServiceRecord = {
        ...held,
        state: 'Healthy',
        image: done.image,
        ...(done.runtime ? { runtime: done.runtime } : {}),
        models: done.models,
        config: done.config,
        authEnabled: done.config.authEnabled,
        scoringUri: done.scoringUri,
        swaggerUri: done.swaggerUri,
        activeSlot: done.slot,
        ...(done.description !== undefined ? { description: done.description } : {}),
        ...(done.tags ? { tags: done.tags } : {}),
        updatedTime: new Date().toISOString(),
        lastRunId: runId,
        servingRunId: runId,
      };
      delete next.currentDeployment;
      delete next.lastError;
      return next;
    });
    return rec!;
  }

  /**
   * The deployment failed. An update leaves the old version serving (state Healthy, `lastError` set: rolled back);
   * a first deployment leaves the service `Failed` with the reason. Idempotent.
   */
  async failDeployment(name: string, runId: string, error: ErrorInfo): Promise<{ service: ServiceRecord; rolledBack: boolean }> {
    let rolledBack = false;
    const rec = await this.mutate(name, (cur) => {
      if (cur && cur.lastRunId === runId && !cur.currentDeployment) {
        rolledBack = !!cur.activeSlot;
        return undefined;
      }
      const held = this.holding(cur, name, runId);
      rolledBack = !!held.activeSlot;
      const next: ServiceRecord = {
        ...held,
        state: held.activeSlot ? 'Healthy' : 'Failed',
        lastError: error,
        updatedTime: new Date().toISOString(),
        lastRunId: runId,
      };
      delete next.currentDeployment;
      return next;
    });
    return { service: rec!, rolledBack };
  }

  /**
   * Records new public URIs (e.g. after the local host restarted a service on another port). Without `lastError`
   * the service serves again: an earlier `RestoreFailed` error is cleared (other errors stay).
   */
  async setEndpoints(name: string, uris: { scoringUri: string; swaggerUri: string }, lastError?: ErrorInfo): Promise<ServiceRecord> {
    const rec = await this.mutate(name, (cur) => {
      if (!cur) throw notFound('ServiceNotFound', `Service ${name} does not exist.`);
      const next: ServiceRecord = { ...cur, ...uris, updatedTime: new Date().toISOString() };
      if (lastError) next.lastError = lastError;
      else if (cur.lastError?.code === 'RestoreFailed') delete next.lastError;
      return next;
    });
    return rec!;
  }

  /** Marks the service as being deleted (blocks deployments) — 409 while a deployment runs, unless `force`. */
  async beginDelete(name: string, opts: { force?: boolean } = {}): Promise<ServiceRecord> {
    const rec = await this.mutate(name, (cur) => {
      if (!cur) throw notFound('ServiceNotFound', `Service ${name} does not exist.`);
      if (cur.currentDeployment && !opts.force && cur.state !== 'Deleting') {
        throw conflict('DeploymentInProgress', `Service ${name} is being deployed by run ${cur.currentDeployment.runId}; wait for it or pass force=true.`);
      }
      if (cur.state === 'Deleting') return undefined;
      return { ...cur, state: 'Deleting', updatedTime: new Date().toISOString() };
    });
    return rec!;
  }

  /** Removes the record and its keys. Absent is not an error. */
  async remove(name: string): Promise<void> {
    for (const [table, pk] of [
      [await this.table(), PK],
      [await this.storage.ensureTable(TABLES.serviceKeys), KEYS_PK],
      [await this.storage.ensureTable(TABLES.serviceKeys), TOKEN_PK],
      [await this.storage.ensureTable(TABLES.serviceKeys), FRONT_PK],
    ] as const) {
      try {
        await table.deleteEntity(pk, name);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
  }

  // ------------------------------------------------------------ keys (secrets)

  /** The service's keys, created on first use. Never logged; only the keys endpoint returns them. */
  async ensureKeys(name: string): Promise<ServiceKeys> {
    checkServiceName(name, 'service');
    const t = await this.storage.ensureTable(TABLES.serviceKeys);
    const existing = await getEntityOrUndefined<ServiceKeys>(t, KEYS_PK, name);
    if (existing) return { primaryKey: existing.primaryKey, secondaryKey: existing.secondaryKey };
    const keys = { primaryKey: newKey(), secondaryKey: newKey() };
    try {
      await t.createEntity({ partitionKey: KEYS_PK, rowKey: name, ...keys });
      return keys;
    } catch (e) {
      if (statusOf(e) !== 409) throw e;
      const now = await t.getEntity<ServiceKeys>(KEYS_PK, name);
      return { primaryKey: now.primaryKey, secondaryKey: now.secondaryKey };
    }
  }

  /** The keys of an existing service (404 `ServiceNotFound`). */
  async getKeys(name: string): Promise<ServiceKeys> {
    await this.get(name);
    return this.ensureKeys(name);
  }

  /** Regenerates the primary or secondary key (AML `regen_key('Primary' | 'Secondary')`). */
  async regenerateKey(name: string, which: 'Primary' | 'Secondary'): Promise<ServiceKeys> {
    if (which !== 'Primary' && which !== 'Secondary') {
      throw new AppError('InvalidKeyType', `Key type "${String(which)}" is invalid; use Primary or Secondary.`, 400);
    }
    await this.get(name);
    return this.changeKeys(name, (cur) => ({
      primaryKey: which === 'Primary' ? newKey() : cur.primaryKey,
      secondaryKey: which === 'Secondary' ? newKey() : cur.secondaryKey,
    }));
  }

  /**
   * Sets keys a manifest supplies (AML `primary_key` / `secondary_key`; the other key is kept or generated).
   * Called when a run is accepted, before the run starts, so the keys never travel in the run's input.
   */
  async setKeys(name: string, given: { primaryKey?: string; secondaryKey?: string }): Promise<ServiceKeys> {
    checkServiceName(name, 'service');
    return this.changeKeys(name, (cur) => ({ primaryKey: given.primaryKey ?? cur.primaryKey, secondaryKey: given.secondaryKey ?? cur.secondaryKey }));
  }

  /**
   * Replaces the keys of `name` (created first if missing) by `next(current)`, conditioned on the row's ETag and tried
   * again when another writer came first (at most 20 times: 409 `UpdateContended`). Keys that do not change are not written.
   */
  private async changeKeys(name: string, next: (cur: ServiceKeys) => ServiceKeys): Promise<ServiceKeys> {
    const t = await this.storage.ensureTable(TABLES.serviceKeys);
    await this.ensureKeys(name);
    for (let i = 0; i < 20; i++) {
      const cur = await t.getEntity<ServiceKeys>(KEYS_PK, name);
      const keys = next(cur);
      if (keys.primaryKey === cur.primaryKey && keys.secondaryKey === cur.secondaryKey) return keys;
      try {
        await t.updateEntity({ partitionKey: KEYS_PK, rowKey: name, ...keys }, 'Replace', { etag: cur.etag });
        return keys;
      } catch (e) {
        if (statusOf(e) !== 412) throw e;
      }
    }
    throw conflict('UpdateContended', `Keys of ${name} are changing concurrently; retry.`);
  }

  /** The service's token signing secret (token auth), created on first use. Never returned by any route. */
  async ensureTokenSecret(name: string): Promise<string> {
    return this.ensureSecret(TOKEN_PK, name);
  }

  /**
   * The secret of the service front's admin key (AKS shadow phase), created on first use. Never returned by any
   * route and never given to a slot (unlike the token secret, which token-auth slots hold).
   */
  async ensureFrontSecret(name: string): Promise<string> {
    return this.ensureSecret(FRONT_PK, name);
  }

  /** One random secret per service in partition `pk` of the keys table, created on first use (a racing create wins). */
  private async ensureSecret(pk: string, name: string): Promise<string> {
    checkServiceName(name, 'service');
    const t = await this.storage.ensureTable(TABLES.serviceKeys);
    const existing = await getEntityOrUndefined<{ secret: string }>(t, pk, name);
    if (existing) return existing.secret;
    const secret = newKey();
    try {
      await t.createEntity({ partitionKey: pk, rowKey: name, secret });
      return secret;
    } catch (e) {
      if (statusOf(e) !== 409) throw e;
      return (await t.getEntity<{ secret: string }>(pk, name)).secret;
    }
  }

}
