/**
 * What the three triggers share: turning a blob folder, an HTTP manifest or a training message into a
 * `DeployRunInput`, and starting the `deployModel` orchestration once per event.
 */
import { AppError, conflict, isNotFound, notFound } from '../errors';
import { checkSource, defaultOnnxManifest, parseManifest, resolveManifestFiles, type DeploymentManifest } from '../manifest/schema';
import { parseTrainingCompleted } from '../manifest/training';
import type { ModelSource } from '../registry/models';
import { parseBlobPath, type StorageClients } from '../storage';
import { getAppServices } from '../services/app';
import { recordRunStart } from '../telemetry';
import { loadTlsMaterial, resolveTlsRefs } from '../tls';
import { CLAIM_START_GRACE_MS, DEPLOYMENT_LEASE_MS, leaseAge, type ServiceClaim, type ServiceRecord } from '../registry/services';
import { DEPLOY_ORCHESTRATION, runIdFor, type DeployRunInput, type RunFiles } from './run-status';

/** The part of the durable client the triggers use. */
export interface RunClient {
  startNew(name: string, options: { instanceId: string; input: unknown }): Promise<string>;
  getStatus(instanceId: string): Promise<{ runtimeStatus?: unknown; customStatus?: unknown; input?: unknown; output?: unknown; createdTime?: Date | string; lastUpdatedTime?: Date | string; instanceId: string }>;
}

/** Status of a run, or undefined when there is none (the durable client throws on 404). */
export async function findRun(client: Pick<RunClient, 'getStatus'>, instanceId: string) {
  try {
    return await client.getStatus(instanceId);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

const ENDED = new Set(['Completed', 'Failed', 'Terminated', 'Canceled']);

/**
 * Whether `record`'s hold still blocks a deployment by `runId`: 409 `ServiceDeleting` / `DeploymentInProgress`
 * while the holder runs. Returns the id of a stale holder (its lease expired, or its run ended, was terminated or
 * purged) for the caller to release; undefined when the service is free.
 */
export async function checkServiceHold(client: Pick<RunClient, 'getStatus'>, record: ServiceRecord | undefined, runId: string, now = Date.now()): Promise<string | undefined> {
  if (record?.state === 'Deleting') throw conflict('ServiceDeleting', `Service ${record.name} is being deleted; wait until the delete finishes, then deploy again.`);
  const d = record?.currentDeployment;
  if (!record || !d || d.runId === runId) return undefined;
  if (leaseAge(d, now) >= DEPLOYMENT_LEASE_MS) return d.runId;
  const holder = await findRun(client, d.runId);
  if (!holder || holder.runtimeStatus === undefined || holder.runtimeStatus === null || ENDED.has(String(holder.runtimeStatus))) return d.runId;
  throw conflict('DeploymentInProgress', `Service ${record.name} is being deployed by run ${d.runId}; wait for it to finish, then retry.`);
}

/**
 * Whether a door claim (`ServiceRegistry.claim`) no longer blocks the service: its run ended (or was purged), its
 * lease expired, or its run never started within `CLAIM_START_GRACE_MS` (a refused or crashed request).
 */
export async function isClaimStale(client: Pick<RunClient, 'getStatus'>, holder: ServiceClaim, now = Date.now()): Promise<boolean> {
  const age = now - Date.parse(holder.claimedTime);
  if (!(age < DEPLOYMENT_LEASE_MS)) return true;
  const run = await findRun(client, holder.runId);
  if (!run || run.runtimeStatus === undefined || run.runtimeStatus === null) return !(age < CLAIM_START_GRACE_MS);
  return ENDED.has(String(run.runtimeStatus));
}

/** Starts the run unless this event already started one. Returns the run id and whether it is new. */
export async function startDeployRun(client: RunClient, instanceId: string, input: DeployRunInput): Promise<{ runId: string; started: boolean }> {
  const existing = await findRun(client, instanceId);
  if (existing && existing.runtimeStatus !== undefined && existing.runtimeStatus !== null) return { runId: instanceId, started: false };
  await client.startNew(DEPLOY_ORCHESTRATION, { instanceId, input: await withUserKeysStored(input) });
  recordDeployRunStart(instanceId, input);
  return { runId: instanceId, started: true };
}

/** The root span of deployment run `runId` (its trigger, or the claim of a settled lone model, started it). */
export function recordDeployRunStart(runId: string, input: DeployRunInput): void {
  recordRunStart({
    kind: 'deployment', runId, eventKind: input.source.kind, eventId: input.source.eventId, service: input.manifest?.service.name, model: input.model.name,
    traceparent: input.traceparent,
  });
}

/**
 * Keys a manifest supplies (`target.primary_key` / `secondary_key`) are stored with the service's keys when its run
 * starts, and removed from the run's input: they never reach the run's history, status or events.
 */
async function withUserKeysStored(input: DeployRunInput): Promise<DeployRunInput> {
  const userKeys = input.manifest?.userKeys;
  if (!input.manifest || !userKeys) return input;
  const { userKeys: _secret, ...manifest } = input.manifest;
  await getAppServices().services.setKeys(manifest.service.name, userKeys);
  return { ...input, manifest };
}

function runInput(manifest: DeploymentManifest, files: RunFiles, source: ModelSource): DeployRunInput {
  return { source, model: manifest.model, files, manifest };
}

/** The manifest with its TLS references resolved against its folder (shared/tls.ts); unchanged without TLS. */
function withTlsResolved(manifest: DeploymentManifest, base: string | undefined, accountUrl?: string): DeploymentManifest {
  const tls = manifest.deployConfig.tls;
  return tls ? { ...manifest, deployConfig: { ...manifest.deployConfig, tls: resolveTlsRefs(tls, base, accountUrl) } } : manifest;
}

/** Blob trigger on `incoming/<name>/deploy.json` (or .yaml/.yml): the run for that manifest version. */
export function runFromBlobManifest(folderName: string, fileName: string, text: string, etag: string, accountUrl?: string): { runId: string; input: DeployRunInput } {
  const manifest = withTlsResolved(parseManifest(text, { name: folderName, fileName: `incoming/${folderName}/${fileName}` }), `incoming/${folderName}`, accountUrl);
  const files = resolveManifestFiles(manifest, `incoming/${folderName}`, accountUrl);
  const eventId = `incoming/${folderName}/${fileName}@${etag}`;
  return { runId: runIdFor('blob', eventId), input: runInput(manifest, files, { kind: 'blob', eventId, location: `incoming/${folderName}/` }) };
}

/** Blob trigger on a lone `incoming/<name>/<file>.onnx`: defaults (runtime onnx, target local). */
export function runFromLoneOnnx(folderName: string, onnxFile: string, etag: string): { runId: string; input: DeployRunInput } {
  const manifest = defaultOnnxManifest(folderName, onnxFile);
  const files = resolveManifestFiles(manifest, `incoming/${folderName}`);
  const eventId = `incoming/${folderName}/${onnxFile}@${etag}`;
  return { runId: runIdFor('blob', eventId), input: runInput(manifest, files, { kind: 'blob', eventId, location: `incoming/${folderName}/` }) };
}

/** Whether a folder holds only `.onnx` files and exactly one of them (a "lone" ONNX model). */
export async function isLoneOnnx(storage: StorageClients, folderName: string, onnxFile: string): Promise<{ lone: boolean; why?: string }> {
  const container = storage.container('incoming');
  const names: string[] = [];
  for await (const b of container.listBlobsFlat({ prefix: `${folderName}/` })) names.push(b.name.slice(folderName.length + 1));
  const others = names.filter((n) => !n.endsWith('.onnx') && !n.startsWith('deploy.error') && !n.startsWith('deploy.status'));
  if (others.length) return { lone: false, why: `the folder also holds ${others.slice(0, 3).join(', ')} (a deploy.json deploys it)` };
  const onnx = names.filter((n) => n.endsWith('.onnx'));
  if (onnx.length !== 1 || onnx[0] !== onnxFile) return { lone: false, why: `the folder holds ${onnx.length} .onnx files; add a deploy.json naming the model files` };
  return { lone: true };
}

/** HTTP: a validated manifest whose files are blob references (or relative to `baseFolder`). */
export function runFromHttpManifest(manifest: DeploymentManifest, eventKey: string, baseFolder?: string, accountUrl?: string): { runId: string; input: DeployRunInput } {
  const files = resolveManifestFiles(manifest, baseFolder, accountUrl);
  const runId = runIdFor('http', eventKey);
  return { runId, input: runInput(withTlsResolved(manifest, baseFolder, accountUrl), files, { kind: 'http', eventId: runId }) };
}

/** Every blob the run input references, for an up-front existence check (400/404 before starting a run). */
export async function missingFiles(storage: StorageClients, input: DeployRunInput): Promise<string[]> {
  const refs = [...input.files.model, ...(input.files.entryScript ? [input.files.entryScript] : []), ...(input.files.environmentFile ? [input.files.environmentFile] : [])];
  const missing: string[] = [];
  await Promise.all(
    refs.map(async (f) => {
      try {
        const { container, blob } = parseBlobPath(f.blob, storage);
        if (!(await storage.container(container).getBlockBlobClient(blob).exists())) missing.push(`${f.path} (${container}/${blob})`);
      } catch (e) {
        if (e instanceof AppError && e.httpStatus === 400) throw e; // a SAS, another account: say so, not "missing"
        missing.push(`${f.path} (${f.blob.replace(/[?#].*$/, '')})`);
      }
    }),
  );
  return missing.sort();
}

/**
 * Throws 404 `ManifestFileMissing` naming every missing file; then, for `ssl_enabled`, reads and checks the
 * certificate and key (shared/tls.ts: 400/404 `Tls*`, `KeyVaultUnavailable`) so a bad pair is refused at the door.
 * The PEM read here is dropped: the deploy step reads it again (it never enters the run's input).
 */
export async function assertFilesExist(storage: StorageClients, input: DeployRunInput): Promise<void> {
  const missing = await missingFiles(storage, input);
  if (missing.length) throw notFound('ManifestFileMissing', `The manifest references files that do not exist: ${missing.join(', ')}. Upload them first or fix the references.`);
  const tls = input.manifest?.deployConfig.tls;
  if (tls) await loadTlsMaterial(tls, { storage, secrets: getAppServices().secrets });
}

/** Service Bus `training-completed`: one run per training run and model (re-deliveries and duplicates → one run). */
export function runFromTrainingMessage(body: unknown, opts: { accountUrl?: string } = {}): { runId: string; input: DeployRunInput } {
  const t = parseTrainingCompleted(body, opts);
  const eventId = `training:${t.modelName}:${t.trainingRunId}`;
  const runId = runIdFor('servicebus', eventId);
  const files: RunFiles = t.manifest
    ? resolveManifestFiles(t.manifest, undefined, opts.accountUrl)
    : { model: t.model.files.map((f, i) => ({ path: f.path, blob: checkSource(f.source!, `artifacts[${i}].uri`, opts.accountUrl) })) };
  return {
    runId,
    input: {
      source: { kind: 'servicebus', eventId, trainingRunId: t.trainingRunId, location: t.model.files[0]?.source?.replace(/[?#].*$/, '') },
      model: t.model,
      files,
      ...(t.manifest ? { manifest: withTlsResolved(t.manifest, undefined, opts.accountUrl) } : {}),
      training: { trainingRunId: t.trainingRunId, metrics: t.metrics, ...(t.promotion ? { promotion: t.promotion } : {}), ...(t.batch ? { batch: t.batch } : {}) },
    },
  };
}
