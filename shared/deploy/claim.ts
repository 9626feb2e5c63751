/**
 * Starting a deployment run at the door, the same way for every trigger (blob manifest, HTTP, training message, a
 * lone `.onnx` once its folder has settled): the service is claimed before anything is stored or started, so a
 * conflict is a 409 answered (or recorded beside the blob) there, never a run that fails at `prepare`.
 */
import { AppError, toErrorInfo } from '../errors';
import type { ErrorInfo } from '../seams';
import { CONTAINERS, type StorageClients } from '../storage';
import { getAppServices } from '../services/app';
import { releaseStaleDeployment } from './steps';
import type { DeployRunInput } from './run-status';
import { resolveRegistered } from './registered';
import { checkServiceHold, findRun, isClaimStale, startDeployRun, type RunClient } from './start-run';

/**
 * Takes the service for run `runId` at the door, before anything is stored or started: 409 when it is being
 * deleted, held by a run that still runs (`DeploymentInProgress`), or claimed by another accepted request whose run
 * has not finished (`ServiceBusy`). A hold whose run has ended, was terminated or purged, or whose lease expired
 * is stale: it is released here so the new run's `beginDeployment` can take the service.
 */
export async function claimService(client: RunClient, serviceName: string, runId: string, requestId?: string): Promise<void> {
  const app = getAppServices();
  const svc = await app.services.find(serviceName);
  const stale = await checkServiceHold(client, svc, runId);
  if (stale && svc) {
    await releaseStaleDeployment(app.deployContext(svc.target), serviceName, stale, {
      code: 'DeploymentAbandoned',
      message: `Run ${stale} ended without finishing its deployment of ${serviceName}; run ${runId} took the service over.`,
    });
  }
  await app.services.claim(serviceName, runId, (holder) => isClaimStale(client, holder), requestId);
}

export async function runExists(client: RunClient, runId: string): Promise<boolean> {
  const existing = await findRun(client, runId);
  return !!existing && existing.runtimeStatus !== undefined && existing.runtimeStatus !== null;
}

/** Starts a deployment run: claims its service first (when it deploys one), unless the run exists already. */
export async function claimAndStart(client: RunClient, runId: string, given: DeployRunInput, requestId?: string): Promise<{ runId: string; started: boolean }> {
  if (await runExists(client, runId)) return { runId, started: false };
  // A registered model or image the manifest names: 404 / 400 here, before the service is claimed.
  const input = await resolveRegistered(given);
  const service = input.manifest?.service.name;
  if (service) await claimService(client, service, runId, requestId);
  try {
    return await startDeployRun(client, runId, input);
  } catch (e) {
    if (service) await getAppServices().services.releaseClaim(service, runId, requestId).catch(() => undefined);
    throw e;
  }
}

/** The status URI of run `runId` on this app (`WEBSITE_HOSTNAME`, set by Azure and by the local host), else relative. */
export function runStatusUri(runId: string, hostname = process.env.WEBSITE_HOSTNAME): string {
  const path = `/api/runs/${encodeURIComponent(runId)}`;
  if (!hostname || !/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(hostname)) return path;
  const local = /^(127\.0\.0\.1|localhost)(:|$)/.test(hostname);
  return `${local ? 'http' : 'https'}://${hostname}${path}`;
}

/**
 * A blob-dropped manifest accepted: `incoming/<folder>/deploy.status.json` (`{ runId, statusUri, manifest, etag,
 * started }`) beside it says which run deploys it, and a `deploy.error.json` left by an earlier refused version is
 * removed (it no longer describes the folder).
 */
export async function recordBlobAcceptance(storage: StorageClients, folder: string, fileName: string, runId: string, etag: string, started: boolean): Promise<void> {
  const container = storage.container(CONTAINERS.incoming);
  const status = { runId, statusUri: runStatusUri(runId), manifest: `incoming/${folder}/${fileName}`, etag, started, acceptedTime: new Date().toISOString() };
  await container.getBlockBlobClient(`${folder}/deploy.status.json`).uploadData(Buffer.from(JSON.stringify(status, null, 2)), { blobHTTPHeaders: { blobContentType: 'application/json' } });
  await container.getBlockBlobClient(`${folder}/deploy.error.json`).deleteIfExists();
}

/**
 * A blob-triggered deployment refused for good (bad input, busy service): the reason goes beside the blob, in
 * `incoming/<folder>/deploy.error.json` (`{ error, manifest, etag }`), and to the log. `folder` is the trigger's
 * checked folder name.
 */
export async function recordBlobRefusal(storage: StorageClients, folder: string, fileName: string, e: AppError, etag: string, warn: (m: string) => void): Promise<ErrorInfo> {
  const error = toErrorInfo(e);
  warn(`incoming/${folder}/${fileName} rejected: ${error.code}: ${error.message}`);
  await storage.container(CONTAINERS.incoming).getBlockBlobClient(`${folder}/deploy.error.json`)
    .uploadData(Buffer.from(JSON.stringify({ error, manifest: `incoming/${folder}/${fileName}`, etag }, null, 2)), { blobHTTPHeaders: { blobContentType: 'application/json' } });
  return error;
}
