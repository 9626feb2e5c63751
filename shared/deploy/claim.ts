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
export async function claimAndStart(client: RunClient, runId: string, input: DeployRunInput, requestId?: string): Promise<{ runId: string; started: boolean }> {
  if (await runExists(client, runId)) return { runId, started: false };
  const service = input.manifest?.service.name;
  if (service) await claimService(client, service, runId, requestId);
  try {
    return await startDeployRun(client, runId, input);
  } catch (e) {
    if (service) await getAppServices().services.releaseClaim(service, runId, requestId).catch(() => undefined);
    throw e;
  }
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
