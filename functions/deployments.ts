/**
 * The three ways a deployment starts — all start the same `deployModel` orchestration, with an instance id
 * derived from the event so a re-delivered event never starts a second run:
 * - blob: `incoming/{name}/deploy.json` (or `deploy.yaml`) written last, files beside it; a lone `*.onnx`;
 * - HTTP: `POST /api/deployments` (JSON/YAML manifest with blob references, or multipart with the files);
 * - Service Bus queue `training-completed` (promotion policy checked by the run).
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { randomUUID } from 'crypto';
import { getConfig } from '../shared/config';
import { AppError, errorResponse, toErrorInfo, tooLarge, badRequest } from '../shared/errors';
import { checkRelativePath } from '../shared/manifest/names';
import { MAX_MANIFEST_BYTES, parseManifest } from '../shared/manifest/schema';
import { checkDeclaredSize } from '../shared/parse';
import { getAppServices, shutdownAppServices } from '../shared/services/app';
import { restoreLocalServices } from '../shared/services/restore';
import { DEPLOY_LONE_ONNX_ORCHESTRATION, runIdFor, type DeployLoneOnnxInput, type DeployRunInput } from '../shared/services/run';
import {
  assertFilesExist,
  checkServiceHold,
  findRun,
  isLoneOnnx,
  runFromBlobManifest,
  runFromHttpManifest,
  runFromLoneOnnx,
  runFromTrainingMessage,
  startDeployRun,
  type RunClient,
} from '../shared/services/triggers';
import { blobNameReason, canonicalBlobFolder, CONTAINERS } from '../shared/storage';
import { releaseStaleDeployment } from '../shared/services/deploy';

const clientInput = df.input.durableClient();

app.hook.appTerminate(() => shutdownAppServices());

// After a restart, local services run again from their records (in the background: the host keeps starting).
app.hook.appStart(() => {
  void Promise.resolve()
    .then(() => restoreLocalServices(getAppServices().deployContext('local')))
    .then((r) => {
      if (r.restored.length || r.failed.length) console.log(JSON.stringify({ event: 'local-services-restored', restored: r.restored, failed: r.failed }));
    })
    .catch((e) => console.warn(`restoring local services failed: ${toErrorInfo(e).message}`));
});

function metadataEtag(context: InvocationContext): string | undefined {
  const md = (context.triggerMetadata ?? {}) as Record<string, unknown>;
  const props = (md.properties ?? md.Properties) as { eTag?: string; ETag?: string } | undefined;
  const etag = props?.eTag ?? props?.ETag ?? (md.eTag as string | undefined);
  return etag ? String(etag).replace(/"/g, '') : undefined;
}

/**
 * 409 when the service is being deleted or held by a run that still runs (the run's own claim is the real lock;
 * this answers early). A hold whose run has ended, was terminated or purged, or whose lease expired is stale:
 * it is released here so the new run's `beginDeployment` can take the service.
 */
async function assertServiceFree(client: RunClient, serviceName: string, runId: string): Promise<void> {
  const app = getAppServices();
  const svc = await app.services.find(serviceName);
  const stale = await checkServiceHold(client, svc, runId);
  if (stale && svc) {
    await releaseStaleDeployment(app.deployContext(svc.target), serviceName, stale, {
      code: 'DeploymentAbandoned',
      message: `Run ${stale} ended without finishing its deployment of ${serviceName}; run ${runId} took the service over.`,
    });
  }
}

// ---------------------------------------------------------------- blob

async function onManifestBlob(blob: unknown, context: InvocationContext, fileName: string): Promise<void> {
  const name = String((context.triggerMetadata as Record<string, unknown>)?.name ?? '');
  // The folder name comes from the event: one the SDK would send as another path is neither read nor written beside.
  const unsafe = blobNameReason(`${name}/${fileName}`);
  if (unsafe) {
    context.warn(`incoming/${name.slice(0, 200)}/${fileName} ignored: the blob name ${unsafe}.`);
    return;
  }
  const { storage } = getAppServices();
  const etag = metadataEtag(context) ?? String((await storage.container(CONTAINERS.incoming).getBlockBlobClient(`${name}/${fileName}`).getProperties()).etag ?? '').replace(/"/g, '');
  const text = Buffer.isBuffer(blob) ? blob.toString('utf8') : typeof blob === 'string' ? blob : JSON.stringify(blob);
  let run: { runId: string; input: DeployRunInput };
  try {
    run = runFromBlobManifest(name, fileName, text, etag, storage.blobService.url);
    await assertFilesExist(storage, run.input);
  } catch (e) {
    if (!(e instanceof AppError) || e.httpStatus >= 500) throw e; // transient: the trigger retries
    // Bad input: no retry; the reason goes beside the manifest (and to the log).
    const error = toErrorInfo(e);
    context.warn(`incoming/${name}/${fileName} rejected: ${error.code}: ${error.message}`);
    await storage.container(CONTAINERS.incoming).getBlockBlobClient(`${name}/deploy.error.json`)
      .uploadData(Buffer.from(JSON.stringify({ error, manifest: `incoming/${name}/${fileName}`, etag }, null, 2)), { blobHTTPHeaders: { blobContentType: 'application/json' } });
    return;
  }
  const r = await startDeployRun(df.getClient(context) as unknown as RunClient, run.runId, run.input);
  context.log(`incoming/${name}/${fileName}: run ${run.runId} ${r.started ? 'started' : 'already exists'}`);
}

for (const fileName of ['deploy.json', 'deploy.yaml', 'deploy.yml']) {
  app.storageBlob(`deployFromBlob_${fileName.replace('.', '_')}`, {
    path: `incoming/{name}/${fileName}`,
    // Flex Consumption has only the event-based blob trigger (infra/hooks/postdeploy.sh subscribes it);
    // the local host polls for it.
    source: 'EventGrid',
    connection: 'AzureWebJobsStorage',
    extraInputs: [clientInput],
    handler: (blob, context) => onManifestBlob(blob, context, fileName),
  });
}

app.storageBlob('deployLoneOnnxFromBlob', {
  path: 'incoming/{name}/{file}.onnx',
  source: 'EventGrid',
  connection: 'AzureWebJobsStorage',
  extraInputs: [clientInput],
  handler: async (_blob, context) => {
    const md = context.triggerMetadata as Record<string, unknown>;
    const name = String(md?.name ?? '');
    const file = String(md?.file ?? '');
    if (!name || !file || file.includes('/') || blobNameReason(`${name}/${file}.onnx`)) return;
    const onnxFile = `${file}.onnx`;
    const { storage } = getAppServices();
    const lone = await isLoneOnnx(storage, name, onnxFile);
    if (!lone.lone) {
      context.log(`incoming/${name}/${onnxFile}: not deployed with defaults: ${lone.why}`);
      return;
    }
    const etag = metadataEtag(context) ?? String((await storage.container(CONTAINERS.incoming).getBlockBlobClient(`${name}/${onnxFile}`).getProperties()).etag ?? '').replace(/"/g, '');
    let run: { runId: string; input: DeployRunInput };
    try {
      run = runFromLoneOnnx(name, onnxFile, etag);
    } catch (e) {
      if (!(e instanceof AppError) || e.httpStatus >= 500) throw e;
      context.warn(`incoming/${name}/${onnxFile} rejected: ${e.code}: ${e.message}`);
      return;
    }
    // Deploy only if the folder is still a lone model once it has settled (a deploy.json may follow the model).
    const client = df.getClient(context);
    const waitId = `${run.runId}-settle`;
    const existing = await client.getStatus(waitId).catch(() => undefined);
    if (existing?.runtimeStatus) {
      context.log(`incoming/${name}/${onnxFile}: already handled by ${waitId}`);
      return;
    }
    const waitInput: DeployLoneOnnxInput = { folder: name, onnxFile, settleSeconds: getConfig().loneOnnxSettleSeconds, runId: run.runId, run: run.input };
    await client.startNew(DEPLOY_LONE_ONNX_ORCHESTRATION, { instanceId: waitId, input: waitInput });
    context.log(`incoming/${name}/${onnxFile}: deploys as run ${run.runId} if still alone in ${waitInput.settleSeconds} s`);
  },
});

// ---------------------------------------------------------------- HTTP

function accepted(request: HttpRequest, runId: string, started: boolean, input: DeployRunInput): HttpResponseInit {
  const base = new URL(request.url);
  const statusUri = `${base.origin}/api/runs/${runId}`;
  return {
    status: 202,
    headers: { location: statusUri, 'retry-after': '1' },
    jsonBody: {
      runId,
      started,
      statusUri,
      serviceName: input.manifest?.service.name,
      model: input.model.name,
      image: input.manifest?.image.name,
      target: input.manifest?.target,
    },
  };
}

app.http('startDeployment', {
  route: 'deployments',
  methods: ['POST'],
  authLevel: 'function',
  extraInputs: [clientInput],
  handler: async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    let uploaded: string | undefined;
    try {
      const config = getConfig();
      const { storage } = getAppServices();
      const client = df.getClient(context) as unknown as RunClient;
      const limit = config.limits.maxUploadBytes;
      const declared = Number(request.headers.get('content-length'));
      if (Number.isFinite(declared) && declared > limit) {
        throw tooLarge('PayloadTooLarge', `The upload is ${declared} bytes; the limit is ${limit} bytes (MAX_UPLOAD_BYTES). Upload large files to blob storage and reference them.`);
      }
      const eventKey = request.headers.get('idempotency-key') ?? request.headers.get('x-ms-client-request-id') ?? randomUUID();
      const runId = runIdFor('http', eventKey);
      const type = (request.headers.get('content-type') ?? '').toLowerCase();
      // The same Idempotency-Key again: the original 202, nothing read, written or checked again.
      const replay = async (input: DeployRunInput) => {
        const existing = await findRun(client, runId);
        return existing && existing.runtimeStatus !== undefined && existing.runtimeStatus !== null ? accepted(request, runId, false, input) : undefined;
      };

      if (type.startsWith('multipart/form-data')) {
        const form = await request.formData();
        const manifestPart = form.get('manifest');
        if (manifestPart === null) throw badRequest('ManifestMissing', 'The multipart body needs a "manifest" part (deploy.json or YAML text); every other part is a file named by its field name.');
        const manifestText = typeof manifestPart === 'string' ? manifestPart : await manifestPart.text();
        const manifestName = typeof manifestPart === 'string' ? 'deploy.json' : manifestPart.name || 'deploy.json';
        const manifest = parseManifest(manifestText, { fileName: manifestName });
        const run = runFromHttpManifest(manifest, eventKey, `${CONTAINERS.uploads}/${runId}`);
        const again = await replay(run.input);
        if (again) return again;
        const parts: Array<[string, File]> = [];
        form.forEach((value, field) => {
          if (field !== 'manifest' && typeof value !== 'string') parts.push([field, value]);
        });
        let total = 0;
        for (const [field, value] of parts) {
          checkRelativePath(field, `multipart part "${field}"`);
          total += value.size;
        }
        if (total > limit) throw tooLarge('PayloadTooLarge', `The uploaded files exceed ${limit} bytes (MAX_UPLOAD_BYTES).`);
        // Checks before any upload: a refused request leaves nothing behind.
        await assertServiceFree(client, manifest.service.name, runId);
        const uploads = await storage.ensureContainer(CONTAINERS.uploads);
        uploaded = `${runId}/`;
        for (const [field, value] of parts) await uploads.getBlockBlobClient(`${runId}/${field}`).uploadData(Buffer.from(await value.arrayBuffer()));
        await assertFilesExist(storage, run.input);
        const r = await startDeployRun(client, run.runId, run.input);
        uploaded = undefined;
        return accepted(request, run.runId, r.started, run.input);
      }
      const yamlBody = /yaml|yml/.test(type);
      // A manifest body is small: a larger declared length is refused before the body is read.
      checkDeclaredSize(request.headers.get('content-length'), { what: yamlBody ? 'deploy.yaml' : 'deploy.json', maxBytes: MAX_MANIFEST_BYTES });
      const text = await request.text();
      if (Buffer.byteLength(text) > limit) throw tooLarge('PayloadTooLarge', `The manifest is larger than ${limit} bytes (MAX_UPLOAD_BYTES).`);
      const manifest = parseManifest(text, { fileName: yamlBody ? 'deploy.yaml' : 'deploy.json' });
      const rawFolder = request.query.get('folder');
      // The folder is checked like any blob reference (traversal, encoding, system containers), then used as checked.
      const folder = rawFolder ? canonicalBlobFolder(rawFolder, 'folder') : undefined;
      const run = runFromHttpManifest(manifest, eventKey, folder, storage.blobService.url);
      const again = await replay(run.input);
      if (again) return again;
      await assertFilesExist(storage, run.input);
      await assertServiceFree(client, manifest.service.name, run.runId);
      const r = await startDeployRun(client, run.runId, run.input);
      return accepted(request, run.runId, r.started, run.input);
    } catch (e) {
      if (uploaded) await deleteUploads(uploaded).catch((d) => context.warn(`could not remove uploads/${uploaded}: ${toErrorInfo(d).message}`));
      if (!(e instanceof AppError)) context.error(`POST /api/deployments failed: ${toErrorInfo(e).message}`);
      return errorResponse(e);
    }
  },
});

/** Removes the files a refused multipart request uploaded (`uploads/<runId>/`). */
async function deleteUploads(prefix: string): Promise<void> {
  const c = getAppServices().storage.container(CONTAINERS.uploads);
  for await (const b of c.listBlobsFlat({ prefix })) await c.deleteBlob(b.name, { deleteSnapshots: 'include' }).catch(() => undefined);
}

// ---------------------------------------------------------------- Service Bus

app.serviceBusQueue('trainingCompleted', {
  connection: 'ServiceBusConnection',
  queueName: 'training-completed',
  extraInputs: [clientInput],
  handler: async (message: unknown, context: InvocationContext): Promise<void> => {
    // Not JSON / wrong shape → throw: after the delivery limit the message is dead-lettered with this reason.
    const run = runFromTrainingMessage(message, { accountUrl: getAppServices().storage.blobService.url });
    const r = await startDeployRun(df.getClient(context) as unknown as RunClient, run.runId, run.input);
    context.log(`training-completed ${run.input.training?.trainingRunId}: run ${run.runId} ${r.started ? 'started' : 'already exists'}`);
  },
});
